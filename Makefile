# kvrecover — build, test, lint, fuzz and benchmark.
#
# Sources are discovered, not listed: every controller/LAYER/*.c except the
# two mains goes into that layer's library, build/lib/libkvr-LAYER.a (the
# layers, packages and flags are in config.mk); every tests/unit/test_*.c
# becomes one test binary linked with the libraries and tests/unit/harness.c.
# Adding a module or a test file needs no Makefile edit.

include config.mk

BUILD   ?= build
BIN     ?= bin
OPT     ?= -O2
SAN     ?=
CFLAGS  ?= $(OPT) -g
ALL_CFLAGS := $(WARN) $(WERROR) $(DEFS) $(CFLAGS) $(SAN) $(INCS) $(PKG_CFLAGS) -MMD -MP

# What each program links, highest layer first: the controller every layer
# but cmd; the offline CLI cmd, sim and base only, so that it needs neither
# libcurl nor libwebsockets nor zlib (tests/cli/test_cli.sh checks with ldd).
# Tests and the e2e helpers link every library: a static link takes only the
# objects a program uses.
CONTROLLER_LAYERS := reconcile web kube sim base
CLI_LAYERS        := cmd sim base
TEST_LAYERS       := cmd reconcile web kube sim base
TEST_ARCHIVES     := $(call kvr_libs,$(TEST_LAYERS),$(BUILD))
TEST_LDLIBS       := $(call kvr_pkg_libs,$(TEST_LAYERS)) $(SYSLIBS)
LIB_OBJS          := $(foreach l,$(LAYERS),$(call kvr_objs,$(l),$(BUILD)))

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
HARNESS   := $(BUILD)/tests/harness.o
# Test support linked into every unit test: the harness, and fakeapi, an
# HTTPS server on 127.0.0.1 (OpenSSL) for the API client and reflector tests.
TEST_SUPPORT := $(HARNESS) $(BUILD)/tests/fakeapi.o
TEST_LIBS := $(shell pkg-config --libs openssl 2>/dev/null)

# Small C programs the end-to-end scripts drive (tests/e2e/*.c), e.g. to
# exercise the API client against the real server. Linked with the libraries.
E2E_SRCS  := $(wildcard tests/e2e/*.c)
E2E_BINS  := $(patsubst tests/e2e/%.c,$(BUILD)/e2e/%,$(E2E_SRCS))

# Keep the test objects: without this make deletes them as intermediates and
# recompiles every test on each run.
.SECONDARY:

.PHONY: all deps test test-unit test-e2e test-asan test-valgrind lint fuzz fuzz-build \
        bench-sim bench-e2e bench-soak bench-storm demo cluster-up cluster-down clean format
all: $(BIN)/kvrecover-controller $(BIN)/kvrecover $(UNIT_BINS) $(E2E_BINS)

# The dashboard's files, compiled in: controller/web/dashboard_assets.c is
# committed and regenerated whenever a file under controller/web/dashboard/
# changes.
DASHBOARD_FILES := $(wildcard controller/web/dashboard/*)
controller/web/dashboard_assets.c: $(DASHBOARD_FILES)
	controller/web/dashboard/embed.sh controller/web/dashboard > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/%.o: controller/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(foreach l,$(LAYERS),$(eval $(call kvr_lib_rule,$(l),$(BUILD))))

$(BIN)/kvrecover-controller: $(BUILD)/obj/cmd/kvrecover-controller.o \
                             $(call kvr_libs,$(CONTROLLER_LAYERS),$(BUILD)) | $(BIN)
	$(CC) $(SAN) -o $@ $^ $(call kvr_pkg_libs,$(CONTROLLER_LAYERS)) $(SYSLIBS)

$(BIN)/kvrecover: $(BUILD)/obj/cmd/kvrecover.o $(call kvr_libs,$(CLI_LAYERS),$(BUILD)) | $(BIN)
	$(CC) $(SAN) -o $@ $^ $(call kvr_pkg_libs,$(CLI_LAYERS)) $(SYSLIBS)

$(BUILD)/tests/harness.o: tests/unit/harness.c tests/unit/harness.h | $(BUILD)/tests
	$(CC) $(ALL_CFLAGS) -Itests/unit -c $< -o $@

$(BUILD)/tests/fakeapi.o: tests/unit/fakeapi.c tests/unit/fakeapi.h | $(BUILD)/tests
	$(CC) $(ALL_CFLAGS) -Itests/unit -c $< -o $@

$(BUILD)/tests/test_%.o: tests/unit/test_%.c | $(BUILD)/tests
	$(CC) $(ALL_CFLAGS) -Itests/unit -c $< -o $@

$(BUILD)/tests/test_%: $(BUILD)/tests/test_%.o $(TEST_SUPPORT) $(TEST_ARCHIVES)
	$(CC) $(SAN) -o $@ $^ $(TEST_LDLIBS) $(TEST_LIBS)

$(BUILD)/e2e/%: tests/e2e/%.c $(TEST_ARCHIVES) | $(BUILD)/e2e
	$(CC) $(ALL_CFLAGS) $(SAN) -o $@ $< $(TEST_ARCHIVES) $(TEST_LDLIBS)

$(BUILD)/tests $(BUILD)/e2e $(BIN):
	@mkdir -p $@

# Debian packages the build and the tests need; quick and quiet when present.
deps:
	@tests/deps.sh

# The README's test command: unit tests, then end-to-end tests against a real
# kube-apiserver; the last line is "N passed, N failed". Like `make demo` it
# works on a fresh machine: the packages are installed first (tests/deps.sh
# is quick when they are present), then a sub-make builds with the
# pkg-config flags those packages provide.
test:
	@tests/deps.sh
	@$(MAKE) --no-print-directory all
	@KVR_BIN=$(abspath $(BIN)) KVR_TESTS=$(abspath $(BUILD)/tests) KVR_E2E_BIN=$(abspath $(BUILD)/e2e) tests/run unit cli e2e

test-unit: all
	@KVR_BIN=$(abspath $(BIN)) KVR_TESTS=$(abspath $(BUILD)/tests) KVR_E2E_BIN=$(abspath $(BUILD)/e2e) tests/run unit cli

test-e2e: all
	@KVR_BIN=$(abspath $(BIN)) KVR_TESTS=$(abspath $(BUILD)/tests) KVR_E2E_BIN=$(abspath $(BUILD)/e2e) tests/run e2e

# The same suite with AddressSanitizer and UndefinedBehaviorSanitizer.
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
test-asan:
	@$(MAKE) --no-print-directory BUILD=build/asan BIN=build/asan/bin OPT=-O1 SAN="$(SANFLAGS)" \
	    test

# The unit suite under valgrind: any leak or error fails the test binary.
test-valgrind: all
	@KVR_BIN=$(abspath $(BIN)) KVR_TESTS=$(abspath $(BUILD)/tests) \
	    KVR_WRAP="valgrind -q --leak-check=full --show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99" \
	    tests/run unit cli

lint:
	@tests/lint.sh

format:
	clang-format -i controller/*/*.[ch] tests/unit/*.[ch] tests/fuzz/*.c

# libFuzzer targets; FUZZ_TIME seconds each (default 60).
FUZZ_TIME ?= 60
fuzz-build:
	@$(MAKE) --no-print-directory -f tests/fuzz/fuzz.mk BUILD=build/fuzz
fuzz: fuzz-build
	@tests/fuzz/run.sh build/fuzz $(FUZZ_TIME)

bench-sim: all
	@$(MAKE) --no-print-directory -f bench/bench.mk bench-sim

bench-e2e: all
	@$(MAKE) --no-print-directory -f bench/bench.mk bench-e2e

bench-soak: all
	@$(MAKE) --no-print-directory -f bench/bench.mk bench-soak

bench-storm: all
	@$(MAKE) --no-print-directory -f bench/bench.mk bench-storm

demo:
	@tests/deps.sh
	@$(MAKE) --no-print-directory all
	@tests/demo.sh

cluster-up:
	@tests/cluster/up
cluster-down:
	@tests/cluster/down

clean:
	rm -rf build bin

-include $(LIB_OBJS:.o=.d) $(MAINS:controller/%.c=$(BUILD)/obj/%.d)
-include $(UNIT_BINS:=.d) $(BUILD)/tests/harness.d $(BUILD)/tests/fakeapi.d
