# pipelines/mini.mk — the study in miniature, end to end on phantoms:
# cxrphantom pre-training pairs (mimic layout) -> pairpack shards -> vlptrain
# ConVIRT (a small ResNet and a small random BERT) -> the classification grid
# of pipelines/study.mk on three SEPARATE phantom worlds (other seeds) in the
# chexpert, rsna and covidx layouts, the ConVIRT checkpoint against --init
# random with the same architecture. `make demo` runs it; examples/study-mini.md
# records its result. Run from the repository root (or set BINDIR):
#
#   make -f pipelines/mini.mk OUT=mini-out JOBS=2
#
# Why these settings (one sentence each; README.md "Results in miniature" and
# examples/study-mini.md say more): images are 64 px with 56 px crops so that a 2-core CPU
# pre-trains for several epochs in minutes, and cxreval evaluates at the same
# scale (--image-size 64 --crop 56); a random-init model learns at 1e-3, not at
# the 2e-5 meant for fine-tuning pretrained encoders; 3,200 steps beat 1,600
# on the probe's validation split (cxreval's val_value); the rare classes
# (pneumonia, COVID-19) are raised towards the real datasets' rates so that
# 1 % of the labels and the test sets hold enough positives. Seeds are fixed
# (TRAIN_SEED: vlptrain's).
# Every step is a file target: a re-run redoes only what is missing.

BINDIR      ?= bin
OUT         ?= mini-out
JOBS        ?= 2
SIZE        ?= 64
CROP        ?= 56
PRE_COUNT   ?= 4000
PRE_SEED    ?= 100
PRE_PREV    ?= pneumonia=0.25,covid=0.2
EVAL_COUNT  ?= 5000
SEED_chexpert ?= 101
SEED_rsna     ?= 102
SEED_covidx   ?= 103
PREV_chexpert ?=
PREV_rsna     ?= pneumonia=0.25
PREV_covidx   ?= pneumonia=0.3,covid=0.3
ARCH        ?= {"layers":[1,1,1,1],"stem_width":16,"planes":16}
BERT        ?= examples/mini-bert
PRE_STEPS   ?= 3200
PRE_LR      ?= 1e-3
PRE_BATCH   ?= 64
TRAIN_SEED  ?= 0
PRE_ARGS    ?= --embed-dim 64 --proj-hidden 256 --warmup 0.1 --val-every 100 --log-every 50
FRACTIONS   ?= 0.01 0.1 1
EVAL_ARGS   ?= --batch 8 --lr 1e-3 --epochs 200 --patience 20
MINI_DIR    := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
NPROC       := $(shell nproc)
export ARCH   # JSON with quotes: recipes read it from the environment

DATASETS := chexpert rsna covidx
CKPT     := $(OUT)/convirt.safetensors

.PHONY: mini
mini: $(OUT)/study/table.md $(OUT)/recall.txt
	@cat $(OUT)/study/table.md $(OUT)/recall.txt

# Phantom worlds: one folder each, .done written last so an interrupted run is redone.
$(OUT)/phantom/mimic/.done:
	@rm -rf $(@D) && mkdir -p $(@D)
	$(BINDIR)/cxrphantom -q -o $(@D) -f mimic -n $(PRE_COUNT) --seed $(PRE_SEED) --size $(SIZE) \
	  $(if $(PRE_PREV),--prevalence $(PRE_PREV))
	@touch $@

$(OUT)/phantom/%/.done:
	@rm -rf $(@D) && mkdir -p $(@D)
	$(BINDIR)/cxrphantom -q -o $(@D) -f $* -n $(EVAL_COUNT) --seed $(SEED_$*) --size $(SIZE) \
	  $(if $(PREV_$*),--prevalence $(PREV_$*))
	@touch $@

# Pairs: the images are already SIZE px, so pairpack only pads and tokenises.
$(OUT)/shards/.done: $(OUT)/phantom/mimic/.done
	$(BINDIR)/pairpack -q --vocab $(BERT)/vocab.txt --mimic $(OUT)/phantom/mimic --image-size $(SIZE) \
	  --max-tokens 64 --force -o $(@D)
	@touch $@

# ConVIRT: JSON log lines (training and validation recall) beside the checkpoint.
$(CKPT): $(OUT)/shards/.done $(BERT)/config.json
	$(BINDIR)/vlptrain -q --method convirt --text-model $(BERT) --text-random --image-arch "$$ARCH" \
	  --crop $(CROP) --steps $(PRE_STEPS) --batch $(PRE_BATCH) --lr $(PRE_LR) --save-every 0 --seed $(TRAIN_SEED) \
	  $(PRE_ARGS) -o $@ '$(OUT)/shards/pairs-*.cxs' >$(OUT)/convirt.jsonl.tmp
	@mv $(OUT)/convirt.jsonl.tmp $(OUT)/convirt.jsonl

# The last validation of the log: image->text recall@10 against chance.
$(OUT)/recall.txt: $(CKPT)
	@jq -r 'select(.val) | "mini.mk: ConVIRT validation at step \(.step) (\(.n_val) held-out pairs): image->text recall@10 \(.i2t_r10), text->image \(.t2i_r10), chance \(.chance_r10)"' \
	  $(OUT)/convirt.jsonl | tail -n 1 >$@

$(OUT)/study/table.md: $(CKPT) $(foreach d,$(DATASETS),$(OUT)/phantom/$(d)/.done)
	@$(MAKE) --no-print-directory -f $(MINI_DIR)/study.mk BINDIR=$(BINDIR) OUT=$(OUT)/study JOBS=$(JOBS) \
	  CKPTS=$(CKPT) BASELINES=random RANDOM_ARCH="$$ARCH" FRACTIONS="$(FRACTIONS)" \
	  DATA_chexpert=$(OUT)/phantom/chexpert DATA_rsna=$(OUT)/phantom/rsna DATA_covidx=$(OUT)/phantom/covidx \
	  CXREVAL_ARGS="--image-size $(SIZE) --crop $(CROP) $(EVAL_ARGS)" >/dev/null
