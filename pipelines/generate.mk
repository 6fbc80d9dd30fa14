# pipelines/generate.mk — a folder of PNGs and one manifest from a reports file:
# rep2lat | denoise | lat2png sharded over JOBS job slots with GNU parallel,
# resumable. Run from the repository root (or set BINDIR):
#
#   make -f pipelines/generate.mk MODEL=/path/to/roentgen REPORTS=reports.jsonl OUT=png JOBS=4
#
# Slot s (1..JOBS) runs pipelines/generate-shard.sh on the records i (counting
# the non-empty reports of REPORTS from 0) with i mod JOBS = s-1. rep2lat
# --shard gives every record the id and seed (SEED + i) that one whole run
# gives it, so the images do not depend on JOBS, and --skip-existing OUT leaves
# out the records whose PNG (lat2png's file name rule) is already there, so a
# re-run only makes what is missing. Each slot appends its manifest lines to
# OUT/.parts/; at the end they are merged with OUT/manifest.jsonl (one line per
# id, the newest; in the order of REPORTS) and removed.
#
# GPUs: with GPUS=n (default: the GPUs nvidia-smi lists, 0 without it) slot s
# runs with CUDA_VISIBLE_DEVICES=(s-1) mod n, one GPU per slot: JOBS=n uses
# each GPU once. With 0 nothing is set, so CPU runs are unaffected.

MODEL     ?=
REPORTS   ?= examples/reports.jsonl
OUT       ?= generate-out
JOBS      ?= 1
STEPS     ?= 50
GUIDANCE  ?= 7.5
SCHEDULER ?=
SEED      ?= 0
BINDIR    ?= bin
GPUS      ?= $(shell nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
NPROC     := $(shell nproc)
THREADS   ?= $(shell j=$(JOBS); n=$(NPROC); t=$$((n / (j > 0 ? j : 1))); echo $$((t > 0 ? t : 1)))

GEN_DIR   := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))

.PHONY: generate
generate:
	@test -n "$(MODEL)" || { echo "generate.mk: set MODEL=DIR (a diffusers model folder)" >&2; exit 1; }
	@test -f "$(REPORTS)" || { echo "generate.mk: REPORTS=$(REPORTS): no such file" >&2; exit 1; }
	@mkdir -p "$(OUT)/.parts"
	@$(GEN_DIR)/generate-merge.sh "$(OUT)"
	@seq 1 $(JOBS) | parallel --will-cite -q --halt now,fail=1 -j $(JOBS) \
	  $(GEN_DIR)/generate-shard.sh {} $(JOBS) "$(BINDIR)" "$(MODEL)" "$(REPORTS)" "$(OUT)" \
	  $(STEPS) $(GUIDANCE) "$(SCHEDULER)" $(SEED) $(GPUS) $(THREADS)
	@$(GEN_DIR)/generate-merge.sh "$(OUT)"
	@echo "generate.mk: $$(ls "$(OUT)" | grep -c '\.png$$') PNG files in $(OUT)/, manifest $(OUT)/manifest.jsonl" >&2
