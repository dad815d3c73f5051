# libFuzzer targets: every tests/fuzz/fuzz_*.c becomes $(BUILD)/fuzz_*, linked
# with our controller sources compiled with the fuzzer's coverage and with
# AddressSanitizer and UndefinedBehaviorSanitizer. The system libraries
# (libyaml, cJSON, libcurl, libwebsockets) are linked as they are: we fuzz our
# code, not theirs.
#
#   make -f tests/fuzz/fuzz.mk BUILD=build/fuzz     (what `make fuzz-build` runs)
#   tests/fuzz/run.sh build/fuzz SECONDS             (what `make fuzz` runs)

BUILD   ?= build/fuzz
FUZZ_CC ?= clang
PKGS    := libcurl libcjson yaml-0.1 libwebsockets
FUZZ_PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
FUZZ_PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
FUZZ_SAN  := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
# No -Werror: a warning clang has and gcc lacks must not stop a fuzzing run.
FUZZ_CFLAGS := -std=c11 -g -O1 -Wall -Wextra -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE \
               -iquote controller $(FUZZ_PKG_CFLAGS) $(FUZZ_SAN) -MMD -MP

FUZZ_SRCS    := $(filter-out controller/cmd/kvrecover-controller.c controller/cmd/kvrecover.c,\
                  $(wildcard controller/*.c controller/*/*.c))
FUZZ_OBJS    := $(patsubst controller/%.c,$(BUILD)/obj/%.o,$(FUZZ_SRCS))
FUZZ_LIB     := $(BUILD)/libkvrecover-fuzz.a
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,$(BUILD)/%,$(wildcard tests/fuzz/fuzz_*.c))

.PHONY: all
all: $(FUZZ_TARGETS)

$(BUILD)/obj/%.o: controller/%.c | $(BUILD)/obj
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_LIB): $(FUZZ_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIB)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIB) $(FUZZ_PKG_LIBS) -lpthread -lm

$(BUILD)/obj:
	@mkdir -p $@

-include $(FUZZ_OBJS:.o=.d) $(FUZZ_TARGETS:=.d)
