# libFuzzer targets: every tests/fuzz/fuzz_*.c becomes $(BUILD)/fuzz_*, linked
# with our controller sources compiled with the fuzzer's coverage and with
# AddressSanitizer and UndefinedBehaviorSanitizer, one library per layer as
# the Makefile builds them (config.mk). The system libraries (libyaml,
# cJSON, libcurl, ...) are linked as they are: we fuzz our code, not theirs.
#
#   make -f tests/fuzz/fuzz.mk BUILD=build/fuzz     (what `make fuzz-build` runs)
#   tests/fuzz/run.sh build/fuzz SECONDS             (what `make fuzz` runs)

include config.mk

BUILD   ?= build/fuzz
FUZZ_CC ?= clang
FUZZ_SAN  := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS := $(WARN) $(DEFS) -g -O1 $(INCS) $(PKG_CFLAGS) $(FUZZ_SAN) -MMD -MP

# The layers a target's code under test lives in, highest first: it links
# those libraries and their packages only (the CLI's fuzzer no libcurl, the
# reflector's no libwebsockets). A target not named here links them all.
fuzz_cli_LAYERS           := cmd sim base
fuzz_features_json_LAYERS := sim base
fuzz_kubeconfig_LAYERS    := kube base
fuzz_quantity_LAYERS      := sim base
fuzz_watch_lines_LAYERS   := kube base
fuzz_yaml_LAYERS          := sim base
fuzz_layers = $(or $($(1)_LAYERS),cmd reconcile web kube sim base)

FUZZ_OBJS    := $(foreach l,$(LAYERS),$(call kvr_objs,$(l),$(BUILD)))
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,$(BUILD)/%,$(wildcard tests/fuzz/fuzz_*.c))

.PHONY: all
all: $(FUZZ_TARGETS)

$(BUILD)/obj/%.o: controller/%.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(foreach l,$(LAYERS),$(eval $(call kvr_lib_rule,$(l),$(BUILD))))

.SECONDEXPANSION:
$(BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $$(call kvr_libs,$$(call fuzz_layers,fuzz_$$*),$(BUILD))
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(filter %.a,$^) \
	    $(call kvr_pkg_libs,$(call fuzz_layers,fuzz_$*)) $(SYSLIBS)

-include $(FUZZ_OBJS:.o=.d) $(FUZZ_TARGETS:=.d)
