# questbench — build, test, benchmark.  `make help` lists the targets.
CC      ?= gcc
PREFIX  ?= /usr/local
BUILD   ?= build

# OpenBLAS: Debian's pthread build, run with one BLAS thread per call; questbench threads
# the GEMMs itself with a tiling fixed by the shape, so results are bit-identical at any
# --threads (OpenBLAS's own threading changes the rounding with the thread count, and
# Debian's serial build is not safe to call from several threads). See README.
BLAS_DIR ?= $(firstword $(wildcard /usr/lib/*/openblas-pthread))
ifneq ($(BLAS_DIR),)
BLAS_CFLAGS := -I$(subst /lib/,/include/,$(BLAS_DIR))
BLAS_LIBS   := -L$(BLAS_DIR) -Wl,-rpath,$(BLAS_DIR) -lopenblas
else
BLAS_CFLAGS := $(shell pkg-config --cflags openblas 2>/dev/null)
BLAS_LIBS   := $(shell pkg-config --libs openblas 2>/dev/null || echo -lopenblas)
endif

PKGS        := libpng zlib libjpeg yaml-0.1
PKG_CFLAGS  := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS    := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_CFLAGS:= $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS  := $(shell pkg-config --libs check 2>/dev/null)

# No -ffast-math: numerics must match PyTorch and PIL (erf GELU, exact resize).
# -fno-trapping-math only lets GCC if-convert float selects so kernels vectorise; it
# changes no value (no reassociation, no contraction).
OPT     ?= -O2 -march=native -fno-trapping-math
CFLAGS  += -std=c11 -D_GNU_SOURCE $(OPT) $(SAN) -fopenmp -Wall -Wextra -g -Ilib -Iattacks -Icorruptions -Ireports $(BLAS_CFLAGS) $(PKG_CFLAGS)
LDLIBS  += $(PKG_LIBS) $(BLAS_LIBS) -fopenmp -lm

LIB_SRC  := $(wildcard lib/*.c corruptions/*.c attacks/*.c reports/*.c)
CMD_SRC  := $(wildcard cmd/*.c)
TEST_SRC := tests/qbtest.c $(wildcard tests/lib/*.c tests/cmd/*.c tests/corruptions/*.c tests/attacks/*.c tests/reports/*.c) tests/run_tests.c
BENCH_SRC:= $(wildcard bench/*.c)

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CMD_OBJ  := $(CMD_SRC:%.c=$(BUILD)/%.o)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)
LIBQB    := $(BUILD)/libquestbench.a
BIN      := $(BUILD)/questbench

.PHONY: all test test-asan bench install deps clean help demo
all: $(BIN)

$(BUILD)/%.o: %.c $(wildcard lib/*.h attacks/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/tests/%.o: tests/%.c $(wildcard lib/*.h attacks/*.h tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CHECK_CFLAGS) -Itests -c $< -o $@

$(LIBQB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN): $(CMD_OBJ) $(LIBQB)
	$(CC) $(CFLAGS) $(CMD_OBJ) $(LIBQB) $(LDLIBS) -o $@

$(BUILD)/run_tests: $(TEST_OBJ) $(LIBQB)
	$(CC) $(CFLAGS) $(TEST_OBJ) $(LIBQB) $(CHECK_LIBS) $(LDLIBS) -o $@

$(BUILD)/bench/%: bench/%.c $(LIBQB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< $(LIBQB) $(LDLIBS) -o $@

# The test binary finds the CLI through QB_BIN and fixtures through QB_FIXTURES.
test: $(BIN) $(BUILD)/run_tests
	QB_BIN=$(abspath $(BIN)) QB_FIXTURES=$(abspath tests/fixtures) $(BUILD)/run_tests

# Benchmarks print ratios against references measured in the same run (bench/run.sh).
# The whole suite under AddressSanitizer + UndefinedBehaviorSanitizer, in its own build dir.
test-asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer" SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined" test

bench: $(BIN) $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
	BUILD=$(BUILD) bash bench/run.sh

install: $(BIN)
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/questbench

DEB_PKGS := gcc make pkg-config libopenblas-pthread-dev libpng-dev zlib1g-dev libjpeg-dev libyaml-dev check
deps:
	@missing=""; for p in $(DEB_PKGS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then echo "deps: all present"; \
	elif [ "$$(id -u)" = 0 ]; then echo "deps: installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || exit 1; \
	else echo "deps: missing$$missing"; echo "run: sudo apt-get install -y$$missing"; exit 1; fi

# The demo job: `questbench run configs/demo.yaml` (clean, 19 corruptions x 5 severities,
# FGSM/PGD at 4 eps, report in reports/demo/). Needs CIFAR-10 as an image folder under
# $(QUESTBENCH_DATA)/cifar10/test (default ../shared/data).
DATA ?= $(or $(QUESTBENCH_DATA),$(abspath $(wildcard ../shared/data)))
demo: deps
	@$(MAKE) --no-print-directory all >/dev/null
	@if [ ! -d "$(DATA)/cifar10/test" ]; then \
	  echo "demo: CIFAR-10 not found: put the test images as cifar10/test/<class>/*.png|jpg under a folder and set QUESTBENCH_DATA to it"; exit 4; fi
	QUESTBENCH_DATA=$(DATA) $(BIN) run configs/demo.yaml

clean:
	rm -rf $(BUILD)

help:
	@echo "make [all]    build $(BIN)"
	@echo "make deps     install missing Debian packages (root) or print the command"
	@echo "make test     build and run the check test suite"
	@echo "make bench    run the benchmarks (not tests)"
	@echo "make install PREFIX=/usr/local"
