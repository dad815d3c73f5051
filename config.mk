# config.mk — what every makefile of kvrecover shares: the layers of
# controller/, the system packages each layer links, the warning flags and
# defines, and the pkg-config results. Included by the Makefile,
# bench/bench.mk and tests/fuzz/fuzz.mk, so that the three build the same
# code the same way; change a flag or a package here, never in a copy.

CC      ?= cc

# The layers of controller/, lowest first (README, "Development"; the rule
# of who may include whom is checked by tests/layers.sh). Each layer's
# controller/LAYER/*.c, the mains excepted, is one static library,
# BUILD/lib/libkvr-LAYER.a, so that a program links only the layers it uses.
LAYERS  := base sim kube web reconcile cmd
MAINS   := controller/cmd/kvrecover-controller.c controller/cmd/kvrecover.c

# The pkg-config packages each layer's code calls (uthash is header-only).
PKGS_base      := libcjson yaml-0.1
PKGS_sim       :=
PKGS_kube      := libcurl
PKGS_web       := libwebsockets
PKGS_reconcile := zlib
PKGS_cmd       :=
PKGS           := $(foreach l,$(LAYERS),$(PKGS_$(l)))
PKG_CFLAGS     := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)

# Warnings (the Makefile and the benchmark add -Werror; the fuzzers do not, so
# that a warning one compiler has and the other lacks never stops a run), the
# feature-test macros, and where our includes start ("base/buf.h").
WARN    := -std=c11 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wformat=2 -Wno-format-nonliteral
WERROR  := -Werror
DEFS    := -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
INCS    := -iquote controller
SYSLIBS := -lpthread -lm

# $(call kvr_objs,LAYER,BUILD): the objects of LAYER's library under BUILD.
kvr_objs = $(patsubst controller/%.c,$(2)/obj/%.o,\
             $(filter-out $(MAINS),$(wildcard controller/$(1)/*.c)))

# $(call kvr_libs,LAYERS,BUILD): those layers' libraries, in the order given
# (name the highest first: that is the order a static link needs).
kvr_libs = $(foreach l,$(1),$(2)/lib/libkvr-$(l).a)

# $(call kvr_pkg_libs,LAYERS): the linker flags of those layers' packages.
kvr_pkg_libs = $(shell pkg-config --libs $(foreach l,$(1),$(PKGS_$(l))) 2>/dev/null)

# $(call kvr_lib_rule,LAYER,BUILD): the rule that archives LAYER's objects.
# Evaluate it once per layer; how the objects are compiled is each makefile's.
define kvr_lib_rule
$(2)/lib/libkvr-$(1).a: $(call kvr_objs,$(1),$(2))
	@mkdir -p $$(@D)
	@rm -f $$@
	ar rcs $$@ $$^
endef
