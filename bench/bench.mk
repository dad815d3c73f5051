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
# cached. BENCH_ONLY=latency|crashloop|memory runs one part.
bench-e2e:
	bench/bench_e2e.sh
