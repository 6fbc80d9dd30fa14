# pipelines/study.mk — the study's classification grid in one make: every
# pre-training source (checkpoint, plus the random and ImageNet baselines) x
# dataset x label fraction, one cxreval run each, run by GNU parallel; the JSON
# lines gathered into a CSV, a Markdown table laid out as the paper's
# (datasets x fractions across, methods down) and a gnuplot PNG.
# Run from the repository root (or set BINDIR):
#
#   make -f pipelines/study.mk CKPTS="a.safetensors b.safetensors" \
#        DATA_chexpert=phantom/chexpert DATA_rsna=phantom/rsna DATA_covidx=phantom/covidx \
#        OUT=study-out JOBS=2
#
# Two phases, so that features are computed once per encoder and dataset:
# first the largest fraction of every (source, dataset), which fills
# cxreval's feature cache, then every other fraction, which reads it. A run
# whose result file exists is not repeated (delete it to redo it); a failed
# run stops the grid (GNU parallel --halt now,fail=1) and leaves no file.
# Outputs: OUT/runs/*.json (one line each), OUT/results.jsonl, OUT/results.csv,
# OUT/table.md, OUT/study.png.

CKPTS         ?=
BASELINES     ?= random
IMAGE_WEIGHTS ?=
RANDOM_ARCH   ?= resnet50
DATASETS      ?= chexpert rsna covidx
FRACTIONS     ?= 0.01 0.1 1
DATA_chexpert ?= data/chexpert
DATA_rsna     ?= data/rsna
DATA_covidx   ?= data/covidx
SEED          ?= 0
OUT           ?= study-out
JOBS          ?= 1
CXREVAL_ARGS  ?=
CACHE         ?= $(OUT)/feature-cache
BINDIR        ?= bin
NPROC         := $(shell nproc)
THREADS       ?= $(shell j=$(JOBS); n=$(NPROC); t=$$((n / (j > 0 ? j : 1))); echo $$((t > 0 ? t : 1)))
STUDY_DIR     := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
export RANDOM_ARCH   # a JSON config holds quotes: the recipe reads it from the environment

# The sources: a checkpoint is named by its file name without .safetensors.
SOURCES := $(foreach c,$(CKPTS),ckpt:$(c)) $(foreach b,$(BASELINES),$(b):)
LARGEST := $(lastword $(sort $(FRACTIONS)))

.PHONY: study
study: $(OUT)/table.md $(OUT)/results.csv $(OUT)/study.png
	@cat $(OUT)/table.md

# One line per run: NAME<TAB>cxreval arguments. NAME = source_dataset_fraction.
$(OUT)/jobs.tsv: FORCE
	@test -n "$(strip $(SOURCES))" || { echo "study.mk: set CKPTS and/or BASELINES" >&2; exit 1; }
	@mkdir -p $(OUT)/runs
	@: >$@.tmp
	@for s in $(SOURCES); do kind=$${s%%:*}; ck=$${s#*:}; \
	  case $$kind in \
	    ckpt) name=$$(basename "$$ck" .safetensors); enc="--checkpoint $$ck";; \
	    random) name=random; enc="--init random --image-arch '$$RANDOM_ARCH'";; \
	    imagenet) test -n "$(IMAGE_WEIGHTS)" || { echo "study.mk: BASELINES has imagenet: set IMAGE_WEIGHTS" >&2; exit 1; }; \
	      name=imagenet; enc="--init imagenet --image-weights $(IMAGE_WEIGHTS)";; \
	    *) echo "study.mk: unknown baseline $$kind (random or imagenet)" >&2; exit 1;; \
	  esac; \
	  for d in $(DATASETS); do \
	    case $$d in chexpert) data="$(DATA_chexpert)";; rsna) data="$(DATA_rsna)";; covidx) data="$(DATA_covidx)";; \
	      *) echo "study.mk: unknown dataset $$d" >&2; exit 1;; esac; \
	    for f in $(FRACTIONS); do \
	      printf '%s_%s_%s\t%s\t--dataset %s --data %s --fraction %s --seed %s --cache-dir %s --threads %s -q %s\n' \
	        "$$name" "$$d" "$$f" "$$f" "$$d" "$$data" "$$f" "$(SEED)" "$(CACHE)" "$(THREADS)" "$$enc $(CXREVAL_ARGS)" >>$@.tmp; \
	    done; \
	  done; \
	done
	@mv $@.tmp $@

# Run the grid: phase 1 the largest fraction (fills the caches), phase 2 the rest.
$(OUT)/results.jsonl: $(OUT)/jobs.tsv
	@for phase in 1 2; do \
	  awk -F'\t' -v p=$$phase -v L=$(LARGEST) '(p == 1) == ($$2 == L)' $< | \
	    parallel --colsep '\t' --jobs $(JOBS) --halt now,fail=1 \
	      '[ -s $(OUT)/runs/{1}.json ] || { $(BINDIR)/cxreval {=3 uq() =} >$(OUT)/runs/{1}.json.tmp && mv $(OUT)/runs/{1}.json.tmp $(OUT)/runs/{1}.json; } || { rm -f $(OUT)/runs/{1}.json.tmp; echo "study.mk: run {1} failed" >&2; exit 1; }' \
	    || exit 1; \
	done
	@cut -f1 $< | while read -r n; do cat $(OUT)/runs/$$n.json; done >$@.tmp && mv $@.tmp $@

$(OUT)/results.csv: $(OUT)/results.jsonl $(STUDY_DIR)/study-table.sh
	@$(STUDY_DIR)/study-table.sh --csv $< >$@.tmp && mv $@.tmp $@

$(OUT)/table.md: $(OUT)/results.csv $(STUDY_DIR)/study-table.sh
	@$(STUDY_DIR)/study-table.sh $< "$(DATASETS)" "$(FRACTIONS)" >$@.tmp && mv $@.tmp $@

$(OUT)/study.png: $(OUT)/results.csv $(STUDY_DIR)/study.gp
	@$(STUDY_DIR)/study-table.sh --plot-data $< $(OUT)/plot >/dev/null
	@gnuplot -e "dir='$(OUT)/plot'; out='$@.tmp'; datasets='$(DATASETS)'" $(STUDY_DIR)/study.gp && mv $@.tmp $@

.PHONY: FORCE
FORCE:
