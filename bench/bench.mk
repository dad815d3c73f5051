# bench/bench.mk — benchmarks, not timed tests. The top-level Makefile builds
# the layer libraries under build/lib and then runs
# `$(MAKE) -f bench/bench.mk <target>`. Figures and how to read them:
# bench/README.md.

include config.mk

BUILD   ?= build
BENCH_CFLAGS := $(WARN) $(WERROR) $(DEFS) -O2 -g $(INCS) $(PKG_CFLAGS)
# bench_sim measures the paper's method alone: the sim and base layers.
BENCH_SIM_LAYERS := sim base

.PHONY: bench-sim

# bench-sim: rank generated pools of 1k, 10k and 100k members in memory, then
# load a 100k-member pool from a multi-document YAML file it writes under
# $(BUILD). One core: the program is single-threaded.
$(BUILD)/bench/bench_sim: bench/bench_sim.c $(call kvr_libs,$(BENCH_SIM_LAYERS),$(BUILD))
	@mkdir -p $(BUILD)/bench
	$(CC) $(BENCH_CFLAGS) -o $@ $< $(call kvr_libs,$(BENCH_SIM_LAYERS),$(BUILD)) \
	    $(call kvr_pkg_libs,$(BENCH_SIM_LAYERS)) $(SYSLIBS)

bench-sim: $(BUILD)/bench/bench_sim
	$(BUILD)/bench/bench_sim $(BUILD)/bench

.PHONY: bench-e2e

# bench-e2e: the controller on a private real-KubeVirt control plane
# (tests/cluster/up): failure->replacement latency, a crash loop beside
# KubeVirt's own restarts, RSS with 10,000 VMs and 10,000 pool members
# cached, and a lost host's timeline. BENCH_ONLY=latency|crashloop|memory|nodeloss
# runs one part.
bench-e2e:
	bench/bench_e2e.sh

.PHONY: bench-soak

# bench-soak: issue 13's soak, in process and without a cluster: the real
# controller (reconcile, web, kube, sim, base) against an in-memory API
# server on tests/unit/fakeapi.c (OpenSSL), in a child process so that the
# RSS read is the controller's. SOAK_SECS (1800) bounds the run, SOAK_VMS
# (10000) is the VMs per round; SOAK_SMOKE=1 runs two rounds of 500.
BENCH_SOAK_LAYERS := reconcile web kube sim base
$(BUILD)/bench/fakeapi.o: tests/unit/fakeapi.c tests/unit/fakeapi.h
	@mkdir -p $(BUILD)/bench
	$(CC) $(BENCH_CFLAGS) -iquote tests/unit -c -o $@ $<

$(BUILD)/bench/bench_soak: bench/bench_soak.c $(BUILD)/bench/fakeapi.o \
    $(call kvr_libs,$(BENCH_SOAK_LAYERS),$(BUILD))
	@mkdir -p $(BUILD)/bench
	$(CC) $(BENCH_CFLAGS) -iquote tests/unit -o $@ $< $(BUILD)/bench/fakeapi.o \
	    $(call kvr_libs,$(BENCH_SOAK_LAYERS),$(BUILD)) \
	    $(call kvr_pkg_libs,$(BENCH_SOAK_LAYERS)) $(shell pkg-config --libs openssl) $(SYSLIBS)

bench-soak: $(BUILD)/bench/bench_soak
	SOAK_LOG=$(BUILD)/bench/soak-controller.log $(BUILD)/bench/bench_soak $(if $(SOAK_SMOKE),--smoke)

.PHONY: bench-storm

# bench-storm: issue 11 (d), what a mass failure costs the storm check: N of
# 2N protected VMs fail at once and the real incident_reconcile() runs for
# each against an in-process fake API server (tests/unit/fakeapi.c).
# STORM_NS (1000,10000) lists the N; STORM_BUDGET_S (300) bounds each case.
BENCH_STORM_LAYERS := reconcile web kube sim base
$(BUILD)/bench/bench_storm: bench/bench_storm.c $(BUILD)/bench/fakeapi.o \
    $(call kvr_libs,$(BENCH_STORM_LAYERS),$(BUILD))
	@mkdir -p $(BUILD)/bench
	$(CC) $(BENCH_CFLAGS) -iquote tests/unit -o $@ $< $(BUILD)/bench/fakeapi.o \
	    $(call kvr_libs,$(BENCH_STORM_LAYERS),$(BUILD)) \
	    $(call kvr_pkg_libs,$(BENCH_STORM_LAYERS)) $(shell pkg-config --libs openssl) $(SYSLIBS)

bench-storm: $(BUILD)/bench/bench_storm
	$(BUILD)/bench/bench_storm
