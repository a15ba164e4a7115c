# nbhub — plain Makefile (the redis way): pkg-config for dependencies,
# strict warnings as errors, one build dir per sanitizer.
#
#   make            build build/nbhub
#   make run        install what is missing, build, run the main job
#   make test       install what is missing, build, run every test
#   make SANITIZER=address|undefined test
#   make fuzz       build libFuzzer harnesses (clang) into build/fuzz/
#   make valgrind   run the unit tests under valgrind

CC        ?= cc
SANITIZER ?=
PKGS      := libuv jansson yaml-0.1 libssl libcrypto sqlite3 libargon2 libcurl zlib
BUILD     := build$(if $(SANITIZER),-$(SANITIZER))
PYTHON    := .venv/bin/python

WARN := -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes \
        -Wmissing-prototypes -Wno-unused-parameter -Werror
OPT  := -O2 -g
ifeq ($(SANITIZER),address)
OPT  := -O1 -g -fsanitize=address -fno-omit-frame-pointer
endif
ifeq ($(SANITIZER),undefined)
OPT  := -O1 -g -fsanitize=undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# libcurl is dlopen'ed on first use (src/util/dlcurl.h: it costs ~10 ms at
# every start of the binary), so only its headers are used at build time.
PKG_LIBS   := $(filter-out -lcurl,$(shell pkg-config --libs $(PKGS) 2>/dev/null))
CFLAGS  += -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) -Isrc $(PKG_CFLAGS) -MMD -MP
LDFLAGS += $(OPT)
# cmark-gfm ships a .pc for the core library only; its extensions are linked by name.
CMARK_LIBS := -lcmark-gfm-extensions -lcmark-gfm
LDLIBS  += $(PKG_LIBS) -lhttp_parser $(CMARK_LIBS) -lm
# nbhub speaks ZMTP itself (src/kernel/zmtp.h); libzmq is linked only into
# the unit tests, as the reference implementation they check us against.
TEST_LIBS := $(shell pkg-config --libs libzmq 2>/dev/null)

LIB_SRC  := $(sort $(wildcard src/*/*.c))
LIB_SRC  := $(filter-out src/cli/main.c,$(LIB_SRC))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
# Each fuzz harness linked with fuzz/replay.c: replays its corpus in make test.
REPLAY_BIN := $(patsubst fuzz/%.c,$(BUILD)/replay/%,$(sort $(wildcard fuzz/fuzz_*.c)))

.PHONY: all deps run test unit blackbox fuzz valgrind bench clean

all: $(BUILD)/nbhub

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC $<"
	@$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libnbhub.a: $(LIB_OBJ)
	ar rcs $@ $^

$(BUILD)/nbhub: $(BUILD)/src/cli/main.o $(BUILD)/libnbhub.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(BUILD)/libnbhub.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(TEST_LIBS) -lcmocka

$(BUILD)/replay/%: $(BUILD)/fuzz/%.o $(BUILD)/fuzz/replay.o $(BUILD)/libnbhub.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The web UI is compiled into api_ui.o with .incbin (src/api/api_ui.c).
$(BUILD)/src/api/api_ui.o: $(wildcard web/*)
# So is the OpenAPI document into api_openapi.o (src/api/api_openapi.c).
$(BUILD)/src/api/api_openapi.o: src/api/openapi.json

deps:
	@scripts/install-deps.sh

run: deps all
	scripts/run-main.sh $(BUILD)/nbhub

unit: $(UNIT_BIN)
	@VIRTUAL_ENV=$(CURDIR)/.venv PATH=$(CURDIR)/.venv/bin:$$PATH scripts/run-unit.sh $(UNIT_BIN)

blackbox: all
	NBHUB_BIN=$(CURDIR)/$(BUILD)/nbhub $(PYTHON) -m pytest -q -p no:cacheprovider tests/blackbox

test: deps
	@$(MAKE) --no-print-directory all $(UNIT_BIN) $(REPLAY_BIN)
	@scripts/run-tests.sh $(BUILD)

FUZZ_CC := clang
FUZZ_SRC := $(sort $(wildcard fuzz/fuzz_*.c))
fuzz: $(FUZZ_SRC:fuzz/%.c=build-fuzz/%)
build-fuzz/%: fuzz/%.c $(LIB_SRC)
	@mkdir -p build-fuzz
	$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Isrc $(PKG_CFLAGS) \
	  -o $@ $< $(LIB_SRC) $(PKG_LIBS) -lhttp_parser $(CMARK_LIBS) -lm

valgrind: $(UNIT_BIN)
	@for t in $(UNIT_BIN); do valgrind -q --leak-check=full --error-exitcode=1 $$t || exit 1; done

# The ID-token check against PyJWT (bench/sso/, seconds; pyjwt[crypto] from requirements-dev.txt).
$(BUILD)/bench/bench_jwt: bench/sso/bench_jwt.c $(BUILD)/libnbhub.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(BUILD)/libnbhub.a $(LDLIBS)
.PHONY: bench-sso
bench-sso: $(BUILD)/bench/bench_jwt
	PYTHON=$(PYTHON) $(BUILD)/bench/bench_jwt

# Benchmarks run as one person's server (isolation shared), also as root.
bench bench-spark bench-render bench-serve: export NBHUB_ISOLATION = shared
bench: deps all
	$(PYTHON) bench/bench_run.py --nbhub $(CURDIR)/$(BUILD)/nbhub --write

# nbhub serve vs Apache Airflow (bench/bench_serve.py, ~25 min).  The script creates
# bench/.venv-airflow from bench/requirements-airflow.txt when it is missing, and
# records in bench/RESULTS.md why the anchor is absent if that fails.
.PHONY: bench-spark
bench-spark: deps all
	$(PYTHON) bench/bench_spark.py --nbhub $(CURDIR)/$(BUILD)/nbhub --write

.PHONY: bench-render
bench-render: deps all
	$(PYTHON) bench/bench_render.py --nbhub $(CURDIR)/$(BUILD)/nbhub --write

.PHONY: bench-serve
bench-serve: deps all
	$(PYTHON) bench/bench_serve.py --nbhub $(CURDIR)/$(BUILD)/nbhub --write

# The Livy API (issue 19): session start (cold, warm) against spark-submit by hand, and a
# statement's round trip over the kernel's own (bench/livy/, ~5 min).
.PHONY: bench-livy
bench-livy: export NBHUB_ISOLATION = shared
bench-livy: deps all
	$(PYTHON) bench/livy/bench_livy.py --nbhub $(CURDIR)/$(BUILD)/nbhub --write

# The hub against JupyterHub 6 + configurable-http-proxy (bench/hub/, ~25 min).  The
# scripts start both sides themselves (nbhub serve with bench/hub/nbhub.yaml); or, with
# HUB_URL and HUB_TOKEN, nbhub's side is a running `nbhub serve` with a hub: config and
# an admin API token of it:  make bench-hub HUB_URL=http://127.0.0.1:8888 HUB_TOKEN=...
.PHONY: bench-hub
HUB_ARGS = $(if $(HUB_URL),--nbhub $(HUB_URL) --nbhub-token $(HUB_TOKEN),--nbhub-bin $(CURDIR)/$(BUILD)/nbhub)
bench-hub: deps all
	$(PYTHON) bench/hub/bench_proxy.py $(HUB_ARGS) --write
	$(PYTHON) bench/hub/bench_start.py $(HUB_ARGS) --write
	$(PYTHON) bench/hub/bench_memory.py $(HUB_ARGS) --write

clean:
	rm -rf build build-address build-undefined build-fuzz

-include $(LIB_OBJ:.o=.d) $(BUILD)/src/cli/main.d $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/unit/%.d)
