# bench/bench.mk — benchmarks, not timed tests. The top-level Makefile builds
# build/libkvrecover.a and then runs `$(MAKE) -f bench/bench.mk <target>`.
# Figures and how to read them: bench/README.md.

CC      ?= cc
BUILD   ?= build
PKGS    := libcurl libcjson yaml-0.1 libwebsockets
BENCH_CFLAGS := -std=c11 -O2 -g -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
                -Wmissing-prototypes -Wformat=2 -Wno-format-nonliteral \
                -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -iquote controller \
                $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
BENCH_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm
LIB     := $(BUILD)/libkvrecover.a

.PHONY: bench-sim

# bench-sim: rank generated pools of 1k, 10k and 100k members in memory, then
# load a 100k-member pool from a multi-document YAML file it writes under
# $(BUILD). One core: the program is single-threaded.
$(BUILD)/bench/bench_sim: bench/bench_sim.c $(LIB)
	@mkdir -p $(BUILD)/bench
	$(CC) $(BENCH_CFLAGS) -o $@ $< $(LIB) $(BENCH_LIBS)

bench-sim: $(BUILD)/bench/bench_sim
	$(BUILD)/bench/bench_sim $(BUILD)/bench

.PHONY: bench-e2e

# bench-e2e: the controller against a real kube-apiserver on a private control
# plane (tests/cluster/up): failure->replacement latency, 1,000 failures at
# once beside the API server's raw create rate, RSS with 10,000 VMIs and
# 10,000 pool members cached. BENCH_ONLY=latency|burst|memory runs one part.
bench-e2e:
	bench/bench_e2e.sh
