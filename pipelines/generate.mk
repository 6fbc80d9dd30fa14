# pipelines/generate.mk — a folder of PNGs and one manifest from a reports file:
# rep2lat | denoise | lat2png sharded over JOBS shards with GNU parallel,
# resumable, on one host or several. Run from the repository root (or set BINDIR):
#
#   make -f pipelines/generate.mk MODEL=/path/to/roentgen REPORTS=reports.jsonl OUT=png JOBS=4
#   make -f pipelines/generate.mk MODEL=... REPORTS=... OUT=png JOBS=16 SSHLOGINFILE=hosts.txt
#
# Shard s (1..JOBS) runs pipelines/generate-shard.sh on the records i (counting
# the non-empty reports of REPORTS from 0) with i mod JOBS = s-1. rep2lat
# --shard gives every record the id and seed (SEED + i) that one whole run
# gives it, so the images do not depend on JOBS, and --skip-existing OUT leaves
# out the records whose PNG (lat2png's file name rule) is already there, so a
# re-run only makes what is missing. Each shard appends its manifest lines to
# OUT/.parts/; at the end they are merged with OUT/manifest.jsonl (one line per
# id, the newest; in the order of REPORTS) and removed.
#
# GPUs: GPUS=n (default auto: the GPUs nvidia-smi -L lists on the host a shard
# runs on) > 0 gives each shard one GPU of its host, CUDA_VISIBLE_DEVICES=g,
# the first free one by a flock(1) on a lock file per GPU in GPU_LOCKDIR (the
# shard script says how), so JOBS=n uses each GPU once; with 0 nothing is set,
# so CPU runs are unaffected. DEVICE, PRECISION and BATCH are passed on as
# --device, --precision and --batch (BATCH auto: 8 on a GPU, 1 on the CPU).
#
# Several hosts: SSHLOGINFILE=FILE is GNU parallel's --sshloginfile (one
# [N/]host a line, ':' the local host; N shards at once there, else HOSTJOBS).
# MODEL, REPORTS, OUT and BINDIR must be on a filesystem every host sees at
# the same path, and so must this directory: each job runs in it (parallel's
# --workdir), so relative paths mean the same on every host.

MODEL     ?=
REPORTS   ?= examples/reports.jsonl
OUT       ?= generate-out
JOBS      ?= 1
STEPS     ?= 50
GUIDANCE  ?= 7.5
SCHEDULER ?=
SEED      ?= 0
BINDIR    ?= bin
GPUS      ?= auto
DEVICE    ?= auto
PRECISION ?=
BATCH     ?= auto
GPU_LOCKDIR ?= /tmp
SSHLOGINFILE ?=
HOSTJOBS  ?= 100%
NPROC     := $(shell nproc)
ifeq ($(SSHLOGINFILE),)
THREADS   ?= $(shell j=$(JOBS); n=$(NPROC); t=$$((n / (j > 0 ? j : 1))); echo $$((t > 0 ? t : 1)))
HOSTS     := -j $(JOBS)
else
# each host counts its own cores (divided by its GPUs when it has some)
THREADS   ?= auto
HOSTS     := -j $(HOSTJOBS) --sshloginfile "$(SSHLOGINFILE)" --workdir "$(CURDIR)"
endif

GEN_DIR   := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))

.PHONY: generate
generate:
	@test -n "$(MODEL)" || { echo "generate.mk: set MODEL=DIR (a diffusers model folder)" >&2; exit 1; }
	@test -f "$(REPORTS)" || { echo "generate.mk: REPORTS=$(REPORTS): no such file" >&2; exit 1; }
	@mkdir -p "$(OUT)/.parts"
	@$(GEN_DIR)/generate-merge.sh "$(OUT)"
	@test -z "$(SSHLOGINFILE)" || test -f "$(SSHLOGINFILE)" || { echo "generate.mk: SSHLOGINFILE=$(SSHLOGINFILE): no such file" >&2; exit 1; }
	@seq 1 $(JOBS) | parallel --will-cite -q --halt now,fail=1 $(HOSTS) \
	  $(GEN_DIR)/generate-shard.sh {} $(JOBS) "$(BINDIR)" "$(MODEL)" "$(REPORTS)" "$(OUT)" $(STEPS) $(GUIDANCE) "$(SCHEDULER)" $(SEED) $(GPUS) $(THREADS) \
	  "$(DEVICE)" "$(PRECISION)" "$(BATCH)" "$(GPU_LOCKDIR)"
	@$(GEN_DIR)/generate-merge.sh "$(OUT)"
	@echo "generate.mk: $$(ls "$(OUT)" | grep -c '\.png$$') PNG files in $(OUT)/, manifest $(OUT)/manifest.jsonl" >&2
