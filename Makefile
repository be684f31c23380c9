# questbench — build, test, benchmark.  `make help` lists the targets.
CC      ?= gcc
PREFIX  ?= /usr/local
# make MPI=1: `questbench run` under mpirun/srun splits the images over the ranks (docs/cluster.md).
# Built with mpicc and -DQB_MPI in its own folder; the default build has no MPI in it.
MPI     ?= 0
ifeq ($(MPI),1)
BUILD   ?= build-mpi
CC      := mpicc
MPI_CFLAGS := -DQB_MPI
endif
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
# -Wno-psabi: corruptions/prims.h passes 4-double vectors between static inline helpers; a build
# without -march=native (test-asan) notes an ABI change that cannot matter for inline code
CFLAGS  += -std=c11 -D_GNU_SOURCE $(MPI_CFLAGS) $(OPT) $(SAN) -fopenmp -Wall -Wextra -Wno-psabi -g -Ilib -Iattacks -Icorruptions -Ireports $(BLAS_CFLAGS) $(PKG_CFLAGS)
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

.PHONY: all test test-asan bench install deps fuzz fuzz-deps fuzz-build valgrind clean help demo
all: $(BIN)

# -MMD -MP: each object's header dependencies in a .d file beside it, so editing a header
# rebuilds exactly what includes it
$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CHECK_CFLAGS) -Itests -MMD -MP -c $< -o $@

-include $(LIB_OBJ:.o=.d) $(CMD_OBJ:.o=.d) $(TEST_OBJ:.o=.d)

$(LIBQB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN): $(CMD_OBJ) $(LIBQB)
	$(CC) $(CFLAGS) $(CMD_OBJ) $(LIBQB) $(LDLIBS) -o $@

$(BUILD)/run_tests: $(TEST_OBJ) $(LIBQB)
	$(CC) $(CFLAGS) $(TEST_OBJ) $(LIBQB) $(CHECK_LIBS) $(LDLIBS) -o $@

$(BUILD)/bench/%: bench/%.c $(LIBQB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP $< $(LIBQB) $(LDLIBS) -o $@

-include $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%.d)

# The test binary finds the CLI through QB_BIN and fixtures through QB_FIXTURES. check's
# per-case timeouts are guards against hangs, not speed tests: x4 so a loaded machine passes.
test: $(BIN) $(BUILD)/run_tests
	CK_TIMEOUT_MULTIPLIER=$${CK_TIMEOUT_MULTIPLIER:-4} QB_BIN=$(abspath $(BIN)) QB_FIXTURES=$(abspath tests/fixtures) $(BUILD)/run_tests

# The MPI test (tests/cmd/test_mpi.c): builds the MPI binary in build-mpi/ and runs the `mpi`
# check suite, which compares `mpirun -n 2 questbench run` with the single-process run.
MPI_BUILD ?= build-mpi
test-mpi: $(BIN) $(BUILD)/run_tests
	$(MAKE) --no-print-directory MPI=1 BUILD=$(MPI_BUILD) $(MPI_BUILD)/questbench
	CK_RUN_SUITE=mpi QB_MPI_BIN=$(abspath $(MPI_BUILD)/questbench) QB_BIN=$(abspath $(BIN)) \
	  QB_FIXTURES=$(abspath tests/fixtures) $(BUILD)/run_tests

# Benchmarks print ratios against references measured in the same run (bench/run.sh).
# The whole suite under AddressSanitizer + UndefinedBehaviorSanitizer, in its own build dir.
test-asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer" SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined" test

# valgrind memcheck on one predict, eval, corrupt and attack run of the 32-px fixture models over
# an ImageFolder of committed fixture PNGs (build/valgrind/); any error or leak fails.
# tests/valgrind.supp hides libgomp's thread-pool TLS ("possibly lost" until exit). ~3 min.
VG_M := tests/fixtures/vit/cifar_sdpa.safetensors
VG_Q := tests/fixtures/vit/cifar_quest.safetensors
VG_A := ev_13x17_s32_c1.25_bicubic.png ev_37x23_s64_c0.9_bicubic.png ev_248x331_s224_c0.9_bicubic.png
VG_B := ev_333x500_s224_c0.875_bicubic.png ev_500x375_s224_c0.875_bilinear.png ev_500x375_s224_c0.9_bicubic.png
VALGRIND := valgrind --tool=memcheck --suppressions=tests/valgrind.supp --leak-check=full \
  --show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99 -q
valgrind: $(BIN)
	@command -v valgrind >/dev/null || { echo "valgrind: not installed (apt-get install valgrind)"; exit 1; }
	@rm -rf $(BUILD)/valgrind && mkdir -p $(BUILD)/valgrind/data/a $(BUILD)/valgrind/data/b
	@cp $(addprefix tests/fixtures/images/,$(VG_A)) $(BUILD)/valgrind/data/a/
	@cp $(addprefix tests/fixtures/images/,$(VG_B)) $(BUILD)/valgrind/data/b/
	$(VALGRIND) $(BIN) predict --model $(VG_M) $(addprefix tests/fixtures/images/,$(VG_A)) >/dev/null
	$(VALGRIND) $(BIN) eval --model $(VG_M) --data $(BUILD)/valgrind/data --batch 4 --threads 2 \
	  --out $(BUILD)/valgrind/r.csv --per-image $(BUILD)/valgrind/eval.csv >/dev/null
	$(VALGRIND) $(BIN) corrupt --model $(VG_M) --model q=$(VG_Q) --data $(BUILD)/valgrind/data --limit 4 \
	  --preset cifar --corruptions all --severities 3 --threads 2 --out $(BUILD)/valgrind/r.csv >/dev/null
	$(VALGRIND) $(BIN) attack --model $(VG_M) --model q=$(VG_Q) --data $(BUILD)/valgrind/data --limit 4 --batch 2 \
	  --attack fgsm,pgd,apgd-ce,square --eps 2/255,8/255 --steps 3 --threads 2 --out $(BUILD)/valgrind/r.csv \
	  --per-image $(BUILD)/valgrind/attack.csv >/dev/null
	@echo "valgrind: predict, eval, corrupt and attack clean"

bench: $(BIN) $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
	BUILD=$(BUILD) bash bench/run.sh

install: $(BIN)
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/questbench

DEB_PKGS := gcc make pkg-config libopenblas-pthread-dev libpng-dev zlib1g-dev libjpeg-dev libyaml-dev check
ifeq ($(MPI),1)
DEB_PKGS += libopenmpi-dev openmpi-bin
endif
# Optional: only `make fuzz` needs these (clang's libFuzzer runtime), and installs them itself.
FUZZ_DEB_PKGS := clang libclang-rt-14-dev
# $(call apt_ensure,what,packages): install the missing ones as root, else print the command
define apt_ensure
@missing=""; for p in $(2); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then echo "$(1): all present"; \
	elif [ "$$(id -u)" = 0 ]; then echo "$(1): installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || exit 1; \
	else echo "$(1): missing$$missing"; echo "run: sudo apt-get install -y$$missing"; exit 1; fi
endef
deps:
	$(call apt_ensure,deps,$(DEB_PKGS))
fuzz-deps: deps
	$(call apt_ensure,fuzz-deps,$(FUZZ_DEB_PKGS))

# libFuzzer harnesses (tests/fuzz/fuzz_*.c), built with clang under ASan + UBSan in build-fuzz/
# and run one after the other for FUZZ_SECONDS each from the committed seeds in
# tests/fuzz/corpus/<harness>/ (new inputs go to build-fuzz/corpus/, crashes to
# build-fuzz/crashes/; any crash fails the target). FUZZ_RUNS=N runs N inputs instead.
FUZZ_SECONDS ?= 60
FUZZ_HARNESSES := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined
fuzz: fuzz-deps
	$(MAKE) --no-print-directory CC=clang BUILD=build-fuzz OPT="-O1 -g -fno-omit-frame-pointer -Wno-pass-failed" \
	  SAN="-fsanitize=fuzzer-no-link $(FUZZ_SAN)" fuzz-build
	@mkdir -p build-fuzz/crashes; for h in $(FUZZ_HARNESSES); do \
	  mkdir -p build-fuzz/corpus/$$h; echo "fuzz: $$h ($(if $(FUZZ_RUNS),$(FUZZ_RUNS) runs,$(FUZZ_SECONDS) s))"; \
	  build-fuzz/fuzz/$$h $(if $(FUZZ_RUNS),-runs=$(FUZZ_RUNS),-max_total_time=$(FUZZ_SECONDS)) -rss_limit_mb=2048 \
	    -timeout=10 -print_final_stats=1 -artifact_prefix=build-fuzz/crashes/$$h- \
	    build-fuzz/corpus/$$h tests/fuzz/corpus/$$h 2>build-fuzz/$$h.log || { tail -40 build-fuzz/$$h.log; exit 1; }; \
	  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" build-fuzz/$$h.log; \
	done
fuzz-build: $(FUZZ_HARNESSES:%=$(BUILD)/fuzz/%)
$(BUILD)/fuzz/%: tests/fuzz/%.c $(BUILD)/cmd/suite.o $(LIBQB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Icmd -fsanitize=fuzzer $< $(BUILD)/cmd/suite.o $(LIBQB) $(LDLIBS) -o $@

# The demo job: `questbench run configs/demo.yaml` (clean, 19 corruptions x 5 severities,
# FGSM/PGD at 4 eps, report in reports/demo/). Needs CIFAR-10 as an image folder under
# $(QUESTBENCH_DATA)/cifar10/test.
DATA ?= $(QUESTBENCH_DATA)
demo: deps
	@$(MAKE) --no-print-directory all >/dev/null
	@if [ ! -d "$(DATA)/cifar10/test" ]; then \
	  echo "demo: CIFAR-10 not found: put the test images as cifar10/test/<class>/*.png|jpg under a folder and set QUESTBENCH_DATA to it"; exit 4; fi
	QUESTBENCH_DATA=$(DATA) $(BIN) run configs/demo.yaml

.PHONY: data instability
data: ; @bash scripts/data.sh "$(DATA)"

# The instability experiment (issue 7, docs/train.md): configs/instability-{sdpa,qknorm,quest}.yaml
# one after another (a stopped run resumes; a finished one is skipped), then the chart and table
# in reports/instability/ from their logs, which are copied to reports/instability/<run>/.
INSTABILITY_RUNS := sdpa qknorm quest
instability: all
	@for a in $(INSTABILITY_RUNS); do d=runs/instability-$$a; \
	  if [ -f $$d/epochs.csv ] && [ $$(($$(wc -l < $$d/epochs.csv) - 1)) -ge $$(awk '/^epochs:/ {print $$2}' configs/instability-$$a.yaml) ]; then \
	    echo "instability: $$d is complete"; continue; fi; \
	  r=; [ -f $$d/model.optim.safetensors ] && r=--resume; \
	  QUESTBENCH_DATA=$(DATA) $(BIN) train --config configs/instability-$$a.yaml $$r || exit $$?; done
	$(BIN) report $(foreach a,$(INSTABILITY_RUNS),--training $(a)=runs/instability-$(a)) --out reports/instability
	@for a in $(INSTABILITY_RUNS); do mkdir -p reports/instability/$$a && \
	  cp runs/instability-$$a/train_log.csv runs/instability-$$a/epochs.csv reports/instability/$$a/; done

clean:
	rm -rf $(BUILD) $(MPI_BUILD)

help:
	@echo "make [all]    build $(BIN)"
	@echo "make deps     install missing Debian packages (root) or print the command"
	@echo "make test     build and run the check test suite"
	@echo "make instability  train the three instability runs (resumable) and chart them in reports/instability/"
	@echo "make data     find CIFAR-10 under \$$QUESTBENCH_DATA (or fetch it), else say where to put it"
	@echo "make MPI=1    build build-mpi/questbench with mpicc (mpirun questbench run; docs/cluster.md)"
	@echo "make test-mpi build the MPI binary and run the 2-rank test (deps: make deps MPI=1)"
	@echo "make bench    run the benchmarks (not tests)"
	@echo "make test-asan  the test suite under ASan + UBSan (build-asan/)"
	@echo "make fuzz     libFuzzer harnesses, FUZZ_SECONDS (60) each (clang, build-fuzz/)"
	@echo "make valgrind memcheck on a predict, eval, corrupt and attack run"
	@echo "make install PREFIX=/usr/local"
