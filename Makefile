# synthcxr — one Makefile for the library, the programs, the tests and the docs.
#   make            build libcommon.a and bin/* (CUDA objects too when nvcc is found)
#   make CUDA=0     CPU only          make SAN=1   ASan + UBSan build
#   make check      install missing Debian packages, build, run all tests
#   make check-gpu  CUDA ops against their CPU twins (skipped without a GPU)
#   make gpu-check  on a GPU host: build, check-gpu, GPU benchmarks -> gpu-check-out/
#   make bench      kernel benchmarks, then generation against diffusers
#                   (BENCH_GEN=0 skips it; figures as JSON in bench-out/), then
#                   ConVIRT training steps against PyTorch (BENCH_VLP=0 skips them)
#   make demo       images from examples/reports.jsonl into demo-out/ (MODEL=DIR for a real model)
#   make install PREFIX=/usr/local    make man-lint

PREFIX   ?= /usr/local
VERSION  := 0.1.0
CC       ?= gcc
NVCC     ?= $(firstword $(wildcard /usr/local/cuda/bin/nvcc) $(shell command -v nvcc 2>/dev/null))
ifeq ($(NVCC),)
CUDA     ?= 0
else
CUDA     ?= 1
endif
SAN      ?= 0

BLAS_INC := /usr/include/x86_64-linux-gnu/openblas-openmp
BLAS_LIB := /usr/lib/x86_64-linux-gnu/openblas-openmp

CPPFLAGS := -Ilibcommon -I$(BLAS_INC) -D_GNU_SOURCE -DSYNTHCXR_VERSION='"$(VERSION)"'
CFLAGS   := -std=c11 -O3 -march=native -g -fopenmp -Wall -Wextra -Werror -MMD -MP
LDFLAGS  := -fopenmp -L$(BLAS_LIB) -Wl,-rpath,$(BLAS_LIB)
LDLIBS   := -lopenblas -lmsgpackc -ljansson -lpng -ljpeg -lm -lpthread

ifeq ($(SAN),1)
CFLAGS   += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=address,undefined
BUILD    ?= build/san
BINDIR   ?= build/san/bin
else
BUILD    ?= build/rel
BINDIR   ?= bin
endif

LIB_SRC  := $(wildcard libcommon/*.c)
LIB_OBJ  := $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRC))
CU_SRC   := $(wildcard libcommon/*.cu)

ifeq ($(CUDA),1)
CUDA_HOME := $(patsubst %/bin/nvcc,%,$(NVCC))
# the per-thread default stream, in the .cu files and the C files alike: it can
# be captured into a CUDA graph (cuda_util.h)
CPPFLAGS  += -DSYNTHCXR_CUDA=1 -DCUDA_API_PER_THREAD_DEFAULT_STREAM=1 -isystem $(CUDA_HOME)/include
NVFLAGS   := -O3 -std=c++17 -Ilibcommon -DSYNTHCXR_CUDA=1 --default-stream per-thread -Werror all-warnings -MMD -MP \
             -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
             -gencode arch=compute_90,code=compute_90 -Xcompiler -Wall,-Wextra
LIB_OBJ   += $(patsubst %.cu,$(BUILD)/%.cu.o,$(CU_SRC))
LDFLAGS   += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64
LDLIBS    += -lcublas -lcudart -lstdc++
endif

# A build folder remembers whether it was built with CUDA (SYNTHCXR_CUDA
# changes what the objects hold): after a CUDA=0/1 switch its outputs are
# removed, so everything is rebuilt rather than mixed. The "-pts" marks the
# per-thread default stream (older folders are rebuilt once).
ifeq ($(wildcard $(BUILD)/.config-cuda$(CUDA)-pts),)
ifneq ($(wildcard $(BUILD)/.config-cuda*),)
$(shell rm -rf $(BUILD)/libcommon $(BUILD)/libcommon.a $(BUILD)/tools $(BUILD)/tests $(BUILD)/bench \
        $(BUILD)/.config-cuda* $(patsubst tools/%.c,$(BINDIR)/%,$(wildcard tools/*.c)))
endif
$(shell mkdir -p $(BUILD) && touch $(BUILD)/.config-cuda$(CUDA)-pts)
endif

LIB      := $(BUILD)/libcommon.a
PROGS    := $(patsubst tools/%.c,$(BINDIR)/%,$(wildcard tools/*.c))
UNIT     := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(wildcard tests/unit/test_*.c))
HELPERS  := $(patsubst tests/helpers/%.c,$(BUILD)/tests/helpers/%,$(wildcard tests/helpers/*.c))
BENCH    := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))
MAN1     := $(wildcard man/man1/*.1)
MAN5     := $(wildcard man/man5/*.5)

.SECONDARY:
.PHONY: all deps check check-gpu gpu-check bench demo install man-lint clean tests
all: $(PROGS)

# Programs land in bin/ (the sanitizer build keeps its own in build/san/bin).
$(BINDIR)/%: $(BUILD)/tools/%.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/%.cu.o: %.cu
	@mkdir -p $(@D)
	$(NVCC) $(NVFLAGS) -c -o $@ $<

$(BUILD)/tests/unit/%: $(BUILD)/tests/unit/%.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)
$(BUILD)/tests/helpers/%: $(BUILD)/tests/helpers/%.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)
$(BUILD)/bench/%: $(BUILD)/bench/%.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

tests: $(PROGS) $(UNIT) $(HELPERS)

deps:
	@tools/install-deps.sh

# check: install what is missing, build, run every unit and bats test; ends with "N passed, N failed".
check:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory tests
	@BUILD=$(BUILD) BINDIR=$(BINDIR) SAN=$(SAN) tests/run.sh

check-gpu:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory tests
	@BUILD=$(BUILD) BINDIR=$(BINDIR) tests/run.sh --gpu

# gpu-check: on a GPU host, build (CUDA), check-gpu, cuBLAS and diffusers figures,
# a log and a JSON in OUT (default gpu-check-out/); see tools/gpu-check.sh.
gpu-check:
	@OUT="$(or $(OUT),gpu-check-out)" tools/gpu-check.sh

bench: $(PROGS) $(BENCH)
	@BUILD=$(BUILD) BINDIR=$(BINDIR) bench/run.sh
	@if [ "$${BENCH_GEN:-1}" != 0 ]; then BINDIR=$(BINDIR) bench/generation.sh; \
	else echo "bench: BENCH_GEN=0: generation against diffusers skipped" >&2; fi
	@if [ "$${BENCH_VLP:-1}" != 0 ]; then BUILD=$(BUILD) bench/vlptrain.sh; \
	else echo "bench: BENCH_VLP=0: pre-training against PyTorch skipped" >&2; fi

# demo: examples/reports.jsonl through rep2lat | denoise | lat2png
# (pipelines/generate.mk) with the bundled tiny random-weight model, or
# MODEL=/path/to/roentgen; images and manifest.jsonl in demo-out/<model>/.
# A re-run makes only the images that are missing (rm -rf demo-out to redo).
# Then the study in miniature (pipelines/mini.mk) in demo-out/study-mini/,
# ending with its table (examples/study-mini.md is the committed copy).
MODEL    ?= examples/tiny-model
STEPS    ?= 25
JOBS     ?= 2
demo:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory -f pipelines/generate.mk BINDIR=$(BINDIR) MODEL="$(MODEL)" \
	  REPORTS=examples/reports.jsonl OUT="demo-out/$(notdir $(patsubst %/,%,$(MODEL)))" JOBS=$(JOBS) STEPS=$(STEPS)
	@out="demo-out/$(notdir $(patsubst %/,%,$(MODEL)))"; \
	  echo "make demo: $$(ls "$$out" | grep -c '\.png$$') images from examples/reports.jsonl in $$out/"; \
	  echo "make demo: manifest (one JSON line per image: id, path, report text, model, seed, ...): $$out/manifest.jsonl"
	@echo "make demo: the study in miniature (pipelines/mini.mk): phantoms -> pairpack -> vlptrain ConVIRT -> cxreval"
	@$(MAKE) --no-print-directory -f pipelines/mini.mk BINDIR=$(BINDIR) OUT=demo-out/study-mini JOBS=$(JOBS)

install: $(PROGS)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5
	install -m 755 $(PROGS) $(DESTDIR)$(PREFIX)/bin/
	$(if $(MAN1),install -m 644 $(MAN1) $(DESTDIR)$(PREFIX)/share/man/man1/)
	$(if $(MAN5),install -m 644 $(MAN5) $(DESTDIR)$(PREFIX)/share/man/man5/)

man-lint:
	@fail=0; for m in $(MAN1) $(MAN5); do \
	  out=$$(LC_ALL=C groff -man -ww -z $$m 2>&1); \
	  if [ -n "$$out" ]; then echo "$$m: $$out"; fail=1; fi; done; \
	  [ $$fail = 0 ] && echo "man-lint: $(words $(MAN1) $(MAN5)) pages clean"; exit $$fail

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)
