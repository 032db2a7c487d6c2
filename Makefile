# Makefile for cnnlab: the library (build/libcnnlab.a), the CLI (build/cnnlab) and the tests.
#   make            library and CLI
#   make mpi        build/cnnlab-mpi: the CLI with data-parallel training over MPI
#                   (needs mpicc: Debian's libopenmpi-dev; see docs/distributed.md)
#   make test       build and run every test (C only; fixtures are committed)
#   make asan       the tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   make portable   the tests with the fast kernels built without CPU dispatch
#   make check      all three (what CI runs)
#   make demo       train BN, GN and LN models and compare them (DEMO_EPOCHS, default 20;
#                   DEMO_DIR, default runs/demo; DEMO_FLAGS, more train options)
#   make fuzz       libFuzzer on the dataset, image, model-file and safetensors parsers,
#                   FUZZ_SECONDS each (needs clang)
#   make fixtures   regenerate tests/ref/*.bin with PyTorch (needs python3-torch)
CC      ?= cc
OPT     ?= -O3
CFLAGS  ?= $(OPT) -g
CAIRO_CFLAGS := $(shell pkg-config --cflags cairo 2>/dev/null || echo -I/usr/include/cairo)
CL_FLAGS := -std=c11 -D_DEFAULT_SOURCE -Wall -Wextra -fopenmp -Iinclude -Isrc $(CAIRO_CFLAGS) $(CFLAGS)
# zlib (gzip IDX files), libpng and libjpeg (image folders, PNG output), cairo
# (figures), libcurl (cnnlab fetch), libarchive (unpacking archives), nettle
# (checksums), jansson (safetensors headers), pthreads (the batch loader) and OpenMP.
LDLIBS  += -ljansson -lcairo -lpng -ljpeg -lz -lcurl -larchive -lnettle -lpthread -lm -fopenmp
BUILD   ?= build
PYTHON  ?= /usr/bin/python3

LIB_SRC  := $(wildcard src/*/*.c src/nn/ops/*.c)
CLI_SRC  := $(wildcard cli/*.c cli/draw/*.c)
TEST_SRC := $(wildcard tests/test_*.c)
HARNESS  := tests/harness.c
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
LIB64_OBJ := $(LIB_SRC:%.c=$(BUILD)/f64/%.o)
TESTS    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

all: $(BUILD)/cnnlab

HEADERS  := $(wildcard include/*.h src/*/*.h cli/*.h cli/draw/*.h) Makefile

$(BUILD)/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CL_FLAGS) -c $< -o $@

# The same library in double precision, for the finite-difference gradient check.
$(BUILD)/f64/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CL_FLAGS) -DCL_REAL=double -c $< -o $@

$(BUILD)/f64/libcnnlab.a: $(LIB64_OBJ)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/libcnnlab.a: $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/cnnlab: $(CLI_OBJ) $(BUILD)/libcnnlab.a
	$(CC) $(CL_FLAGS) $^ -o $@ $(LDLIBS)

# The MPI build differs from the plain one in cli/dist.c alone (-DCNNLAB_MPI); the
# library stays free of MPI.
MPICC   ?= mpicc
MPI_CLI_OBJ := $(filter-out $(BUILD)/cli/dist.o,$(CLI_OBJ)) $(BUILD)/mpi/cli/dist.o

$(BUILD)/mpi/cli/dist.o: cli/dist.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(MPICC) $(CL_FLAGS) -DCNNLAB_MPI -c $< -o $@

$(BUILD)/cnnlab-mpi: $(MPI_CLI_OBJ) $(BUILD)/libcnnlab.a
	$(MPICC) $(CL_FLAGS) $^ -o $@ $(LDLIBS)

mpi: $(BUILD)/cnnlab-mpi

$(BUILD)/tests/%: tests/%.c $(HARNESS) tests/harness.h $(BUILD)/libcnnlab.a
	@mkdir -p $(dir $@)
	$(CC) $(CL_FLAGS) -Itests $< $(HARNESS) $(BUILD)/libcnnlab.a -o $@ $(LDLIBS)

$(BUILD)/tests/test_gradcheck: tests/test_gradcheck.c $(HARNESS) tests/harness.h $(BUILD)/f64/libcnnlab.a
	@mkdir -p $(dir $@)
	$(CC) $(CL_FLAGS) -DCL_REAL=double -Itests $< $(HARNESS) $(BUILD)/f64/libcnnlab.a -o $@ $(LDLIBS)

# The plot tests also link the figure code of the CLI (every file of cli/draw).
DRAW_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard cli/draw/*.c))
$(BUILD)/tests/test_plot: tests/test_plot.c $(HARNESS) tests/harness.h $(DRAW_OBJ) $(BUILD)/libcnnlab.a
	@mkdir -p $(dir $@)
	$(CC) $(CL_FLAGS) -Itests -Icli/draw $< $(HARNESS) $(DRAW_OBJ) $(BUILD)/libcnnlab.a -o $@ $(LDLIBS)

# Not a test (run_all.sh runs only tests/test_*): prints a PNG's size, colour count
# and share of ink, for the shell tests of figures.
$(BUILD)/tests/pngstat: tests/pngstat.c
	@mkdir -p $(dir $@)
	$(CC) $(CL_FLAGS) $< -o $@ $(LDLIBS)

tests: $(TESTS) $(BUILD)/cnnlab $(BUILD)/tests/pngstat

# Runs every test binary from the repository root, then the CLI tests; prints
# "N passed, N failed" and fails if any did.
test: tests
	@BUILD=$(BUILD) sh tests/run_all.sh $(TESTS) tests/test_cli.sh tests/test_options.sh tests/test_fetch.sh tests/test_train.sh tests/test_reliability.sh tests/test_kill.sh tests/test_report.sh tests/test_files.sh tests/test_mpi.sh

# fontconfig (under cairo's text) keeps a few hundred bytes until exit: not ours.
asan:
	CNNLAB_QUICK=1 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp $(MAKE) BUILD=build-asan OPT="-O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	        LDLIBS="$(LDLIBS) -fsanitize=address,undefined" test

# The portable build: no run-time dispatch, plain x86-64 (or any CPU) vector code.
portable:
	CNNLAB_QUICK=1 $(MAKE) BUILD=build-portable OPT="-O2 -DCL_NO_CLONES" test

check: test asan portable

# The course's comparison in one command: the three normalizations trained with the
# same recipe, then `cnnlab compare` (runs/demo/compare/compare.html). A run already
# in runs/demo is resumed (and left as it is when finished).
DEMO_EPOCHS ?= 20
DEMO_AUG    ?= crop:4:reflect,hflip
DEMO_DIR    ?= runs/demo
DEMO_FLAGS  ?=
demo: $(BUILD)/cnnlab
	for norm in bn gn ln; do \
	    run=$(DEMO_DIR)/cifar10_$$norm; \
	    if [ -f $$run/last.safetensors ]; then $(BUILD)/cnnlab train --resume $$run || exit 1; \
	    else $(BUILD)/cnnlab train models/cifar10_$$norm.net --epochs $(DEMO_EPOCHS) --aug $(DEMO_AUG) \
	        $(DEMO_FLAGS) --out $$run || exit 1; fi; \
	done
	$(BUILD)/cnnlab compare $(DEMO_DIR)/cifar10_bn $(DEMO_DIR)/cifar10_gn $(DEMO_DIR)/cifar10_ln

# Coverage-guided fuzzing of the dataset parsers, the image decoders, the model-file
# parser and the safetensors reader (with checkpoint loading) with
# libFuzzer (clang): each target in tests/fuzz/ runs FUZZ_SECONDS from its corpus.
FUZZ_SECONDS ?= 60
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZERS  := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_FLAGS := -std=c11 -D_DEFAULT_SOURCE -g -O1 -fopenmp -Iinclude -Isrc -fsanitize=fuzzer,address,undefined

$(BUILD)/fuzz/%: tests/fuzz/%.c $(LIB_SRC) $(HEADERS)
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) $< $(LIB_SRC) -o $@ $(LDLIBS)

fuzz: $(FUZZERS)
	@for f in $(FUZZERS); do \
	    name=$${f##*/}; corpus=tests/fuzz/corpus/$${name#fuzz_}; work=$(BUILD)/fuzz/work-$$name; \
	    mkdir -p $$work; echo "== $$name ($(FUZZ_SECONDS) s)"; \
	    $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $$work $$corpus > $$work.log 2>&1 \
	        || { tail -n 30 $$work.log; echo "FAIL - $$name: see $$work.log"; exit 1; }; \
	    grep -E '^(Done|stat::number_of_executed_units|stat::average_exec_per_sec)' $$work.log; \
	done

fixtures:
	$(PYTHON) tests/ref/gen_fixtures.py
	$(PYTHON) tests/ref/gen_augment.py
	$(PYTHON) tests/ref/gen_gn_precision.py

clean:
	rm -rf build build-asan build-portable

.PHONY: all mpi tests test asan portable check demo fuzz fixtures clean
