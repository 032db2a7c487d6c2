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
#   make fixtures   regenerate tests/ref/*.bin and tests/ref/onnx/ with PyTorch (needs
#                   python3-torch; the ONNX ones also python3-onnx)
#   make install    install under PREFIX (default /usr/local; also DESTDIR, bindir, libdir,
#                   includedir, datadir, mandir); make uninstall removes it again
#   make deb        the Debian packages in build/deb/ (dpkg-buildpackage -us -uc -b)
#   make test-deps  install the packages the tests need (.ci/packages-test; as root)
CC      ?= cc
OPT     ?= -O3
CFLAGS  ?= $(OPT) -g
CAIRO_CFLAGS := $(shell pkg-config --cflags cairo 2>/dev/null || echo -I/usr/include/cairo)
CL_FLAGS = -std=c11 -D_DEFAULT_SOURCE -Wall -Wextra -fopenmp -Iinclude -Isrc -I$(GEN) $(CAIRO_CFLAGS) $(CFLAGS)
# zlib (gzip IDX files), libpng and libjpeg (image folders, PNG output), cairo
# (figures), libcurl (cnnlab fetch), libarchive (unpacking archives), nettle
# (checksums), jansson (safetensors headers), protobuf-c (ONNX files), pthreads (the
# batch loader) and OpenMP.
LDLIBS  += -ljansson -lcairo -lpng -ljpeg -lz -lcurl -larchive -lnettle -lprotobuf-c -lpthread -lm -fopenmp
BUILD   ?= build
PYTHON  ?= /usr/bin/python3
# The ONNX schema Debian's libonnx-dev ships; protoc-c turns it into C at build time
# (build/gen/onnx.pb-c.[ch], never committed), for the ONNX export and import.
ONNX_PROTO ?= /usr/include/onnx/onnx.proto
GEN     := $(BUILD)/gen

LIB_SRC  := $(wildcard src/*/*.c src/nn/ops/*.c)
CLI_SRC  := $(wildcard cli/*.c cli/draw/*.c)
TEST_SRC := $(wildcard tests/test_*.c)
HARNESS  := tests/harness.c
# `cnnlab export --format c` copies src/deploy/kernels.h into the model.c it writes:
# the library holds that file's text as a generated array of bytes.
KERNELS_TEXT := $(BUILD)/gen/deploy_kernels_text.c
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o) $(GEN)/onnx.pb-c.o $(KERNELS_TEXT:.c=.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
LIB64_OBJ := $(LIB_SRC:%.c=$(BUILD)/f64/%.o) $(GEN)/onnx.pb-c.o $(KERNELS_TEXT:.c=.o)
TESTS    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

all: $(BUILD)/cnnlab

HEADERS  := $(wildcard include/*.h src/*/*.h cli/*.h cli/draw/*.h) Makefile

$(GEN)/onnx.pb-c.c $(GEN)/onnx.pb-c.h &: $(ONNX_PROTO)
	@mkdir -p $(GEN)
	protoc-c --c_out=$(GEN) --proto_path=$(dir $(ONNX_PROTO)) $(notdir $(ONNX_PROTO))

$(GEN)/onnx.pb-c.o: $(GEN)/onnx.pb-c.c $(GEN)/onnx.pb-c.h
	$(CC) $(CL_FLAGS) -c $< -o $@

# The ONNX code (src/deploy/) includes the generated header.
DEPLOY_SRC := $(wildcard src/deploy/*.c)
$(DEPLOY_SRC:%.c=$(BUILD)/%.o) $(DEPLOY_SRC:%.c=$(BUILD)/f64/%.o): $(GEN)/onnx.pb-c.h

# The fast convolution kernels (conv2d_direct.c, conv2d_depthwise.c) write their
# inner products as acc += x * w and mean fused multiply-adds: in ISO C mode
# (-std=c11) GCC does not contract them (-ffp-contract=off), and each became a
# multiply and an add, two instructions on the FMA ports instead of one. The same
# holds for `cnnlab bench`'s FMA-peak loop (cli/bench.c): without contraction it
# measured multiply-add pairs, half the peak on CPUs whose adds and multiplies
# share the FMA ports (Intel), the same on those with separate add pipes (Zen).
$(BUILD)/src/nn/ops/conv2d_%.o $(BUILD)/f64/src/nn/ops/conv2d_%.o $(BUILD)/cli/bench.o: CL_FLAGS += -ffp-contract=fast

$(BUILD)/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CL_FLAGS) -c $< -o $@

$(KERNELS_TEXT): src/deploy/kernels.h
	@mkdir -p $(dir $@)
	{ echo '/* generated from src/deploy/kernels.h by the Makefile */'; \
	  echo 'const char cl_deploy_kernels_text[] = {'; \
	  od -An -v -tx1 $< | sed 's/[0-9a-f][0-9a-f]/0x&,/g'; echo '0};'; } > $@

$(KERNELS_TEXT:.c=.o): $(KERNELS_TEXT)
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
	$(CC) $(CL_FLAGS) $(LDFLAGS) $^ -o $@ $(LDLIBS)

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
	@BUILD=$(BUILD) sh tests/run_all.sh $(TESTS) tests/test_cli.sh tests/test_options.sh tests/test_lr_find.sh tests/test_fetch.sh tests/test_train.sh tests/test_val_ema.sh tests/test_reliability.sh tests/test_kill.sh tests/test_report.sh \
	    tests/test_files.sh tests/test_symbols.sh tests/test_install.sh tests/test_deb.sh tests/test_onnx.sh tests/test_deploy.sh tests/test_mpi.sh

# The sanitized and portable passes compile on every core first (CI calls `make check`
# without -j, and their builds are a large share of its 30 minutes), then test in order.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
# fontconfig (under cairo's text) keeps a few hundred bytes until exit: not ours.
ASAN_MAKE = LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp $(MAKE) BUILD=build-asan OPT="-O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	        LDLIBS="$(LDLIBS) -fsanitize=address,undefined"
asan:
	$(ASAN_MAKE) -j$(JOBS) tests
	CNNLAB_QUICK=1 $(ASAN_MAKE) test

# The portable build: no run-time dispatch, plain x86-64 (or any CPU) vector code.
portable:
	$(MAKE) -j$(JOBS) BUILD=build-portable OPT="-O2 -DCL_NO_CLONES" tests
	CNNLAB_QUICK=1 $(MAKE) BUILD=build-portable OPT="-O2 -DCL_NO_CLONES" test

check:
	$(MAKE) -j$(JOBS) tests
	$(MAKE) test
	$(MAKE) asan
	$(MAKE) portable

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

$(BUILD)/fuzz/%: tests/fuzz/%.c $(LIB_SRC) $(HEADERS) $(GEN)/onnx.pb-c.c $(KERNELS_TEXT)
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) -I$(GEN) $< $(LIB_SRC) $(GEN)/onnx.pb-c.c $(KERNELS_TEXT) -o $@ $(LDLIBS)

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
	$(PYTHON) tests/ref/gen_onnx.py
	$(PYTHON) tests/ref/gen_init.py
	$(PYTHON) tests/ref/gen_lr_find.py
	$(PYTHON) tests/ref/gen_gn_precision.py

# ---- the shared library, installation and the Debian package ------------------------
# The version is set once, in include/cnnlab.h (CNNLAB_VERSION "MAJOR.MINOR.PATCH").
VERSION  := $(shell sed -n 's/^.define CNNLAB_VERSION "\([0-9.]*\)"$$/\1/p' include/cnnlab.h)
SOMAJOR  := $(firstword $(subst ., ,$(VERSION)))
SONAME   := libcnnlab.so.$(SOMAJOR)
SHLIB    := $(BUILD)/libcnnlab.so.$(VERSION)
# The .so is linked with LDLIBS and --as-needed, so it records only the libraries it
# calls (today zlib, libpng, libjpeg, libm and OpenMP; not the CLI's cairo, curl,
# libarchive or nettle). cnnlab.pc.in's Requires.private / Libs.private list them for
# static linking: tests/test_install.sh links the static library through it.

# Library objects are position-independent (the same objects go into libcnnlab.a and
# libcnnlab.so) with hidden symbols, so the .so exports only what include/cnnlab.h
# marks CL_API; -fno-semantic-interposition lets the library call its own public
# functions directly, as before. Debian's gcc already builds everything -fPIE: the
# kernels' machine code is the same instruction for instruction (objdump -d of
# every src/nn/ops object), -O3 and the target clones are unchanged.
$(LIB_OBJ): CL_FLAGS += -fPIC -fvisibility=hidden -fno-semantic-interposition

# GCC exports the target_clones dispatchers (ifuncs) whatever their visibility, so a
# version script, made from the CL_API lines of include/cnnlab.h, keeps everything
# else local.
$(BUILD)/libcnnlab.map: include/cnnlab.h
	@mkdir -p $(dir $@)
	{ echo '{ global:'; grep -E '^CL_API ' $< | sed -E 's/^[^(]*[^a-z0-9_](cl_[a-z0-9_]+) *\(.*/    \1;/'; \
	  echo '  local: *;'; echo '};'; } > $@

# bin/cnnlab stays linked to libcnnlab.a (no run-time path to set up, and the CLI may
# use internal functions that the .so hides).
$(SHLIB): $(LIB_OBJ) $(BUILD)/libcnnlab.map
	$(CC) $(CL_FLAGS) -shared -Wl,-soname,$(SONAME) -Wl,--version-script,$(BUILD)/libcnnlab.map \
	    -Wl,--no-undefined -Wl,--as-needed $(LDFLAGS) $(LIB_OBJ) -o $@ $(LDLIBS)

$(BUILD)/$(SONAME): $(SHLIB)
	ln -sf $(notdir $<) $@

$(BUILD)/libcnnlab.so: $(BUILD)/$(SONAME)
	ln -sf $(notdir $<) $@

shared: $(SHLIB) $(BUILD)/$(SONAME) $(BUILD)/libcnnlab.so
all: shared
tests: shared

# The man page and the bash completion come from the commands' option tables, as
# --help does, so they cannot drift from the program.
$(BUILD)/cnnlab.1: $(BUILD)/cnnlab
	$(BUILD)/cnnlab help --man > $@.tmp || { rm -f $@.tmp; echo "cnnlab help --man failed" >&2; exit 1; }
	mv $@.tmp $@

$(BUILD)/cnnlab.bash: $(BUILD)/cnnlab
	$(BUILD)/cnnlab help --bash-completion > $@.tmp || { rm -f $@.tmp; echo "cnnlab help --bash-completion failed" >&2; exit 1; }
	mv $@.tmp $@

doc: $(BUILD)/cnnlab.1 $(BUILD)/cnnlab.bash

# GNU installation directories; PREFIX and prefix are the same thing.
PREFIX       ?= /usr/local
prefix       ?= $(PREFIX)
exec_prefix  ?= $(prefix)
bindir       ?= $(exec_prefix)/bin
libdir       ?= $(exec_prefix)/lib
includedir   ?= $(prefix)/include
datarootdir  ?= $(prefix)/share
datadir      ?= $(datarootdir)
mandir       ?= $(datarootdir)/man
man1dir      ?= $(mandir)/man1
pkgconfigdir ?= $(libdir)/pkgconfig
bashcompdir  ?= $(datarootdir)/bash-completion/completions
modelsdir    ?= $(datadir)/cnnlab/models
INSTALL      ?= install
MODELS       := $(wildcard models/*.net)

# cnnlab.pc is written at install time, since it names the installation directories.
$(BUILD)/cnnlab.pc: cnnlab.pc.in include/cnnlab.h FORCE
	@mkdir -p $(dir $@)
	sed -e 's|@prefix@|$(prefix)|' -e 's|@libdir@|$(libdir)|' -e 's|@includedir@|$(includedir)|' \
	    -e 's|@VERSION@|$(VERSION)|' cnnlab.pc.in > $@

install: all doc $(BUILD)/cnnlab.pc
	$(INSTALL) -d $(DESTDIR)$(bindir) $(DESTDIR)$(libdir) $(DESTDIR)$(pkgconfigdir) \
	    $(DESTDIR)$(includedir) $(DESTDIR)$(man1dir) $(DESTDIR)$(bashcompdir) $(DESTDIR)$(modelsdir)
	$(INSTALL) -m 755 $(BUILD)/cnnlab $(DESTDIR)$(bindir)/cnnlab
	$(INSTALL) -m 644 $(SHLIB) $(DESTDIR)$(libdir)/libcnnlab.so.$(VERSION)
	ln -sf libcnnlab.so.$(VERSION) $(DESTDIR)$(libdir)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(libdir)/libcnnlab.so
	$(INSTALL) -m 644 $(BUILD)/libcnnlab.a $(DESTDIR)$(libdir)/libcnnlab.a
	$(INSTALL) -m 644 $(BUILD)/cnnlab.pc $(DESTDIR)$(pkgconfigdir)/cnnlab.pc
	$(INSTALL) -m 644 include/cnnlab.h $(DESTDIR)$(includedir)/cnnlab.h
	$(INSTALL) -m 644 $(BUILD)/cnnlab.1 $(DESTDIR)$(man1dir)/cnnlab.1
	$(INSTALL) -m 644 $(BUILD)/cnnlab.bash $(DESTDIR)$(bashcompdir)/cnnlab
	$(INSTALL) -m 644 $(MODELS) $(DESTDIR)$(modelsdir)

# Removes exactly what install put there, and the models folder if it is then empty.
uninstall:
	rm -f $(DESTDIR)$(bindir)/cnnlab $(DESTDIR)$(libdir)/libcnnlab.so.$(VERSION) \
	    $(DESTDIR)$(libdir)/$(SONAME) $(DESTDIR)$(libdir)/libcnnlab.so $(DESTDIR)$(libdir)/libcnnlab.a \
	    $(DESTDIR)$(pkgconfigdir)/cnnlab.pc $(DESTDIR)$(includedir)/cnnlab.h \
	    $(DESTDIR)$(man1dir)/cnnlab.1 $(DESTDIR)$(bashcompdir)/cnnlab \
	    $(addprefix $(DESTDIR)$(modelsdir)/,$(notdir $(MODELS)))
	-rmdir $(DESTDIR)$(modelsdir) $(DESTDIR)$(datadir)/cnnlab 2>/dev/null

# The Debian packages (cnnlab, libcnnlab0, libcnnlab-dev) from a copy of the source
# files (git's tracked and untracked, not ignored, files; outside git, the tree less
# build output), so the working tree is not touched: build/deb/*.deb and .changes.
DEB_FLAGS ?= -Jauto
deb:
	rm -rf $(BUILD)/deb && mkdir -p $(BUILD)/deb/src
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
	    git ls-files --cached --others --exclude-standard | while read -r f; do [ ! -e "$$f" ] || echo "$$f"; done | \
	        xargs -d '\n' cp -P --parents -t $(BUILD)/deb/src; \
	else \
	    tar -c --exclude=./build --exclude=./build-asan --exclude=./build-portable --exclude=./runs \
	        --exclude=./data . | tar -x -C $(BUILD)/deb/src; \
	fi
	cd $(BUILD)/deb/src && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL dpkg-buildpackage -us -uc -b $(DEB_FLAGS)

# The packages the tests need beyond .ci/packages (run as root). npm comes with some
# nodejs builds (nodesource's, which conflicts with Debian's npm) and apart from
# Debian's, so it is installed only when missing.
test-deps:
	apt-get install -y --no-install-recommends $$(cat .ci/packages-test)
	command -v npm >/dev/null || apt-get install -y --no-install-recommends npm

FORCE:

clean:
	rm -rf build build-asan build-portable

.PHONY: all mpi tests test asan portable check demo fuzz fixtures clean shared doc install uninstall deb \
        test-deps FORCE
