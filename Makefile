# lb: one non-recursive GNU Makefile. Outputs go under build/.
#   make                 build/lb, build/lbctl, build/lbq and the tools
#   make test            install missing packages, build everything, run every test
#   make run             install missing packages, start the demo
#   make fuzz            run each libFuzzer target for FUZZ_SECONDS (needs clang)
#   make bench           side-by-side benchmarks into BENCHMARKS.md (~26 min; QUICK=1 ~3 min)
#   make install         binaries, man pages, unit, logrotate, completion; PREFIX, DESTDIR
#   make uninstall       removes them (the config only when it is still the example)
#   make deb             the Debian package, into build/ (installs debhelper if missing)
#   make SAN=address,undefined test     the suite under sanitizers
#   CI=1 make ...        warnings are errors

CC      ?= cc
CLANG   ?= clang
B       := build
PKGS    := liburing openssl yaml-0.1 hiredis libsystemd
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
               $(if $(wildcard tools/bench/floor.c),$(B)/bench-floor) \
               $(if $(wildcard tools/bench/rate.c),$(B)/bench-rate) \
               $(if $(wildcard tools/lbq/main.c),$(B)/lbq)

.PHONY: all deps test check run fuzz fuzz-build clean bench install uninstall deb
all: $(B)/lb $(B)/lbctl $(TOOL_BINS)

deps:
	@tools/deps.sh

$(B)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -MMD -MP -c $< -o $@

$(B)/lb: $(B)/obj/lb/core/main.o $(LIB_OBJS)
	$(CC) $(LDFLAGS) $^ -o $@ $(PKG_LIBS) $(LDLIBS)

# lbctl reads queues in Redis with lbq's store (queue stats).
$(B)/lbctl: $(CTL_SRCS:%.c=$(B)/obj/%.o) $(B)/obj/tools/lbq/store.o $(B)/obj/tools/lbq/entry.o \
            $(CONF_OBJS)
	$(CC) $(LDFLAGS) $^ -o $@ $(PKG_LIBS) $(LDLIBS)

# The demo backend: every .c in tools/demo/.
$(B)/demo-backend: $(patsubst %.c,$(B)/obj/%.o,$(wildcard tools/demo/*.c))
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

# The queue consumer: every .c in tools/lbq/, with conf/ for -c FILE.
$(B)/lbq: $(LBQ_SRCS:%.c=$(B)/obj/%.o) $(B)/obj/tools/ctl_json.o $(CONF_OBJS)
	$(CC) $(LDFLAGS) $^ -o $@ $(PKG_LIBS) $(LDLIBS)

# The cheapest servers this machine can run, the floor of tools/bench/floor.sh.
$(B)/bench-floor: $(B)/obj/tools/bench/floor.o
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

# The status page's HTML is assembled into page.o (.incbin), which -MMD does not see.
$(B)/obj/lb/metrics/page.o $(B)/fuzzobj/lb/metrics/page.o: lb/metrics/page.html

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

# ---- install -------------------------------------------------------------------------------
# The config and logrotate live under /etc whatever PREFIX is; the unit's paths are rewritten
# to where the binaries and config went. The Debian package runs this with PREFIX=/usr.
PREFIX     ?= /usr/local
DESTDIR    ?=
SYSCONFDIR ?= /etc
BINDIR     ?= $(PREFIX)/bin
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
UNITDIR    ?= $(PREFIX)/lib/systemd/system
COMPLETIONDIR ?= $(PREFIX)/share/bash-completion/completions
MANPAGES   := packaging/man/lb.8 packaging/man/lbctl.8 packaging/man/lbq.1 packaging/man/lb.yaml.5
INSTALLED  := $(SBINDIR)/lb $(SBINDIR)/lbctl $(BINDIR)/lbq $(UNITDIR)/lb.service \
              $(SYSCONFDIR)/logrotate.d/lb $(COMPLETIONDIR)/lbctl \
              $(foreach m,$(MANPAGES),$(MANDIR)/man$(subst .,,$(suffix $(m)))/$(notdir $(m)))

install: $(B)/lb $(B)/lbctl $(B)/lbq
	install -D -m 0755 $(B)/lb $(DESTDIR)$(SBINDIR)/lb
	install -D -m 0755 $(B)/lbctl $(DESTDIR)$(SBINDIR)/lbctl
	install -D -m 0755 $(B)/lbq $(DESTDIR)$(BINDIR)/lbq
	@for m in $(MANPAGES); do s=$${m##*.}; \
	  echo "install -D -m 0644 $$m $(DESTDIR)$(MANDIR)/man$$s/$${m##*/}"; \
	  install -D -m 0644 $$m $(DESTDIR)$(MANDIR)/man$$s/$${m##*/} || exit 1; done
	install -d $(DESTDIR)$(UNITDIR)
	sed -e 's#/usr/sbin/#$(SBINDIR)/#g' -e 's#/etc/lb/#$(SYSCONFDIR)/lb/#g' \
	  packaging/lb.service >$(DESTDIR)$(UNITDIR)/lb.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/lb.service
	install -D -m 0644 packaging/lb.logrotate $(DESTDIR)$(SYSCONFDIR)/logrotate.d/lb
	install -D -m 0644 packaging/lbctl.bash-completion $(DESTDIR)$(COMPLETIONDIR)/lbctl
	@# An operator's config is never overwritten.
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/lb/lb.yaml ]; then \
	  echo "$(DESTDIR)$(SYSCONFDIR)/lb/lb.yaml exists: kept"; else \
	  echo "install -D -m 0644 packaging/lb.yaml $(DESTDIR)$(SYSCONFDIR)/lb/lb.yaml"; \
	  install -D -m 0644 packaging/lb.yaml $(DESTDIR)$(SYSCONFDIR)/lb/lb.yaml; fi

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	@c=$(DESTDIR)$(SYSCONFDIR)/lb/lb.yaml; if [ -e $$c ]; then \
	  if cmp -s $$c packaging/lb.yaml; then echo "rm -f $$c"; rm -f $$c; \
	  else echo "$$c was edited: kept"; fi; fi
	-@rmdir $(DESTDIR)$(SYSCONFDIR)/lb 2>/dev/null || true

# The .deb and its companions land in build/ (dpkg-buildpackage writes them to ..). The
# package is built from a copy of the files git tracks, with packaging/debian as debian/.
deb:
	@tools/deps.sh deb
	rm -rf $(B)/deb && mkdir -p $(B)/deb/src
	git ls-files -z | xargs -0 cp --parents -t $(B)/deb/src
	cp -r packaging/debian $(B)/deb/src/debian
	@# A clean environment: this make's variables (B=, SAN=, CI=..., which make exports) must
	@# not reach the package's build.
	cd $(B)/deb/src && env -i PATH="$$PATH" HOME="$$HOME" LC_ALL=C.UTF-8 dpkg-buildpackage -b -us -uc
	mv $(B)/deb/*.deb $(B)/deb/*.buildinfo $(B)/deb/*.changes $(B)/
	rm -rf $(B)/deb
	@ls -1 $(B)/*.deb

# Objects reached only through pattern rules would count as intermediate and be deleted
# after each link, making every build a full rebuild.
.PRECIOUS: $(B)/obj/%.o $(B)/fuzzobj/%.o

# Only the compilers' dependency files: make deb's tree under $(B)/deb has its own, and
# directories such as etc/logrotate.d.
-include $(shell find $(B)/obj $(B)/fuzzobj -name '*.d' -type f 2>/dev/null)
