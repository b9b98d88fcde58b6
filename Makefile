# lb: one non-recursive GNU Makefile. Outputs go under build/.
#   make                 build/lb, build/lbctl, build/lbq and the tools
#   make test            install missing packages, build everything, run every test
#   make run             install missing packages, start the demo
#   make fuzz            run each libFuzzer target for FUZZ_SECONDS (needs clang)
#   make bench           side-by-side benchmarks into BENCHMARKS.md (~11 min; QUICK=1 ~2 min)
#   make SAN=address,undefined test     the suite under sanitizers
#   CI=1 make ...        warnings are errors

CC      ?= cc
CLANG   ?= clang
B       := build
PKGS    := liburing openssl yaml-0.1 hiredis
# Recursive (=) so pkg-config runs when a recipe needs it, after tools/deps.sh installed things.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS = $(shell pkg-config --libs cmocka 2>/dev/null || echo -lcmocka)

OPT     ?= -O2
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter \
           -Wformat=2 -Wno-format-zero-length -Wvla
CFLAGS  ?=
CFLAGS  += -std=gnu11 $(OPT) -g -D_GNU_SOURCE -I. $(WARN) -fno-strict-aliasing
ifneq ($(CI),)
CFLAGS  += -Werror
endif
ifneq ($(SAN),)
CFLAGS  += -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SAN)
endif
LDLIBS  += -lpthread -lm

# Every .c in a module folder is part of that module; main files are kept apart.
CONF_SRCS   := $(wildcard conf/*.c)
HEALTH_SRCS := $(wildcard health/*.c)
STATIC_SRCS := $(wildcard static/*.c)
LB_SRCS     := $(filter-out lb/core/main.c,$(wildcard lb/*/*.c))
LIB_SRCS    := $(CONF_SRCS) $(HEALTH_SRCS) $(STATIC_SRCS) $(LB_SRCS)
CTL_SRCS    := $(wildcard tools/ctl_*.c) tools/lbctl.c
LIB_OBJS    := $(LIB_SRCS:%.c=$(B)/obj/%.o)
CONF_OBJS   := $(CONF_SRCS:%.c=$(B)/obj/%.o)

UNIT_SRCS   := $(wildcard tests/unit/test_*.c)
UNIT_BINS   := $(UNIT_SRCS:tests/unit/%.c=$(B)/tests/%)
FUZZ_SRCS   := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS   := $(FUZZ_SRCS:tests/fuzz/%.c=$(B)/fuzz/%)
FUZZ_LIB_OBJS := $(LIB_SRCS:%.c=$(B)/fuzzobj/%.o)
LBQ_SRCS    := $(wildcard tools/lbq/*.c)
TOOL_BINS   := $(if $(wildcard tools/demo/main.c),$(B)/demo-backend) \
               $(if $(wildcard tools/bench/stream.c),$(B)/bench-stream) \
               $(if $(wildcard tools/bench/rate.c),$(B)/bench-rate) \
               $(if $(wildcard tools/lbq/main.c),$(B)/lbq)

.PHONY: all deps test check run fuzz fuzz-build clean bench
all: $(B)/lb $(B)/lbctl $(TOOL_BINS)

deps:
	@tools/deps.sh

$(B)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -MMD -MP -c $< -o $@

$(B)/lb: $(B)/obj/lb/core/main.o $(LIB_OBJS)
	$(CC) $(LDFLAGS) $^ -o $@ $(PKG_LIBS) $(LDLIBS)

$(B)/lbctl: $(CTL_SRCS:%.c=$(B)/obj/%.o) $(CONF_OBJS)
	$(CC) $(LDFLAGS) $^ -o $@ $(PKG_LIBS) $(LDLIBS)

# The demo backend: every .c in tools/demo/.
$(B)/demo-backend: $(patsubst %.c,$(B)/obj/%.o,$(wildcard tools/demo/*.c))
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

# The queue consumer: every .c in tools/lbq/, with conf/ for -c FILE.
$(B)/lbq: $(LBQ_SRCS:%.c=$(B)/obj/%.o) $(B)/obj/tools/ctl_json.o $(CONF_OBJS)
	$(CC) $(LDFLAGS) $^ -o $@ $(PKG_LIBS) $(LDLIBS)

# The bulk-transfer client and server of tools/bench/l4_stream.sh.
$(B)/bench-stream: $(B)/obj/tools/bench/stream.o
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

# The open-loop HTTP load generator of tools/bench/ramp.sh.
$(B)/bench-rate: $(B)/obj/tools/bench/rate.o $(B)/obj/tools/bench/rate_rsp.o
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(B)/tests/%: $(B)/obj/tests/unit/%.o $(LIB_OBJS)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) $^ -o $@ $(PKG_LIBS) $(CMOCKA_LIBS) $(LDLIBS)

# Fuzz targets: the library rebuilt with clang and libFuzzer's instrumentation.
FUZZ_CFLAGS := -std=gnu11 -O1 -g -D_GNU_SOURCE -I. -fsanitize=fuzzer-no-link,address,undefined \
               -fno-sanitize-recover=undefined
$(B)/fuzzobj/%.o: %.c
	@mkdir -p $(@D)
	$(CLANG) $(FUZZ_CFLAGS) $(PKG_CFLAGS) -MMD -MP -c $< -o $@

$(B)/fuzz/%: tests/fuzz/%.c $(FUZZ_LIB_OBJS)
	@mkdir -p $(@D)
	$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer $^ -o $@ $(PKG_LIBS) $(LDLIBS)

# Tools are not in the library: the lbq entry decoder (with tools/ctl_json.c for its UTF-8
# writer) and bench-rate's response framing are added to their unit test and fuzz targets as
# extra prerequisites, which the pattern rules' $^ picks up.
$(B)/tests/test_lbq: $(B)/obj/tools/lbq/entry.o $(B)/obj/tools/ctl_json.o
$(B)/fuzz/fuzz_lbq_entry: $(B)/fuzzobj/tools/lbq/entry.o $(B)/fuzzobj/tools/ctl_json.o
$(B)/tests/test_rate: $(B)/obj/tools/bench/rate_rsp.o
$(B)/fuzz/fuzz_rate_rsp: $(B)/fuzzobj/tools/bench/rate_rsp.o

fuzz-build: $(FUZZ_BINS)

# New inputs go to build/fuzz/corpus/NAME; the committed seeds in tests/fuzz/corpus/NAME are
# only read, so a run never rewrites them. Crashes land in build/fuzz/NAME-crash-*.
FUZZ_SECONDS ?= 60
fuzz: fuzz-build
	@for f in $(FUZZ_BINS); do n=$$(basename $$f); \
	  mkdir -p tests/fuzz/corpus/$$n $(B)/fuzz/corpus/$$n; \
	  echo "fuzz: $$n for $(FUZZ_SECONDS)s (log $(B)/fuzz/$$n.log)"; \
	  d=tests/fuzz/$$n.dict; [ -f $$d ] && d=-dict=$$d || d=; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 $$d \
	      -artifact_prefix=$(B)/fuzz/$$n- $(B)/fuzz/corpus/$$n tests/fuzz/corpus/$$n \
	      >/dev/null 2>$(B)/fuzz/$$n.log || { tail -40 $(B)/fuzz/$$n.log; exit 1; }; \
	  tail -n 3 $(B)/fuzz/$$n.log; \
	done

# `make test` installs what is missing first, then re-reads this file so that pkg-config
# sees the freshly installed packages.
test: deps
	@$(MAKE) --no-print-directory check

check: all $(UNIT_BINS)
	@if command -v $(CLANG) >/dev/null 2>&1 && [ -z "$(SAN)" ]; then \
	  $(MAKE) --no-print-directory fuzz-build >/dev/null || exit 1; fi
	@tests/run.sh

run: deps
	@$(MAKE) --no-print-directory all
	@tools/demo.sh

bench: deps
	@$(MAKE) --no-print-directory all
	@tools/bench/run.sh

clean:
	rm -rf $(B)

# Objects reached only through pattern rules would count as intermediate and be deleted
# after each link, making every build a full rebuild.
.PRECIOUS: $(B)/obj/%.o $(B)/fuzzobj/%.o

-include $(shell find $(B) -name '*.d' 2>/dev/null)
