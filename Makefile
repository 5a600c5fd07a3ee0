# Bakeoff: `make demo` and `make test` are all a fresh Debian machine with the Swift toolchain needs.
SHELL := /bin/bash
export PATH := $(PATH):/opt/swift/usr/bin
SWIFT ?= swift
# The tool is linked with the Swift runtime built in: one self-contained file to copy anywhere, and no dynamic
# symbol lookups at start (~9 ms saved per run). That flag changes how every module compiles, and Swift Testing
# exists only as a shared library, so the tests cannot link against this build: `make test` compiles the modules
# once more in .build (about 3 minutes on 2 cores the first time, incremental after), and this build keeps a
# directory of its own so neither relinks the other.
PRODUCT_BUILD := .build/product
BIN := $(PRODUCT_BUILD)/release/bakeoff
PYTHON_VENV := .venv
PY := $(PYTHON_VENV)/bin/python
OUT := out
# Python is used only for reference fixtures and benchmarks, never by the tool itself.
PY_PACKAGES := scipy statsmodels gbstats pandas numpy jsonschema rouge-score
TEST_VENV := .venv-test
TEST_PY := $(TEST_VENV)/bin/python
# LiteLLM's SDK and LangChain's ChatOpenAI are clients in e2e/gateway/test_clients.py. Playwright drives the
# dashboard's tests in e2e/browser, with Debian's chromium (browser-deps): its own browser download cannot be
# fetched here, and the pinned version is the one checked against that browser. DuckDB and chDB (ClickHouse in
# process; chdb-core is its engine, pandas comes with it) run the warehouse SQL in e2e/warehouse.
TEST_PY_PACKAGES := openai pytest 'litellm==1.108.7' 'langchain-openai==1.8.1' 'playwright==1.65.3' \
	'duckdb==2.0.1' 'chdb==4.4.0' 'chdb-core==26.9.0'
# Records what is installed, so an older .venv-test gets new packages when the list changes.
TEST_PY_STAMP := $(TEST_VENV)/.packages
# The LiteLLM proxy, the gateway `make bench` compares against, in its own venv (its pins clash with .venv's).
LITELLM_VENV := .venv-litellm
LITELLM := $(LITELLM_VENV)/bin/litellm
LITELLM_PACKAGES := 'litellm[proxy]==1.108.7'

.PHONY: all deps browser-deps build demo test bench fixtures venv clean screenshots

all: build

# Beyond the Swift toolchain: SQLite (event store), libmicrohttpd (HTTP server), libcurl (upstream client),
# from Debian's packages, installed here when missing.
APT_PACKAGES := pkg-config libsqlite3-dev libmicrohttpd-dev libcurl4-openssl-dev libpq-dev postgresql
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

deps:
	@command -v $(SWIFT) >/dev/null || { echo "Swift toolchain not found: install Swift 6 (see README)"; exit 1; }
	@missing="$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done)"; \
	if [ -n "$$missing" ]; then \
		echo "Installing from Debian: $$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

# The browser the dashboard's tests drive (e2e/browser launches it by path, /usr/bin/chromium), from Debian's
# package: only `make test` needs it, so `make build` and `make demo` do not install its ~480 MB. Its fonts are
# only a Recommends, named here so that text renders in screenshots on an apt that skips those.
BROWSER_APT_PACKAGES := chromium fonts-liberation
browser-deps:
	@missing="$$(for p in $(BROWSER_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done)"; \
	if [ -n "$$missing" ]; then \
		echo "Installing from Debian: $$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

build: deps
	$(SWIFT) build -c release --product bakeoff --static-swift-stdlib --scratch-path $(PRODUCT_BUILD)

demo: build
	@mkdir -p $(OUT)
	@echo "== Planning: users per group for task completion 0.75 -> 0.80 (the article's example)"
	@$(BIN) plan --baseline 0.75 --mde 0.05
	@echo
	@echo "== Simulating the case study (80/20 split, 14 days) -> $(OUT)/case-study.jsonl"
	@$(BIN) simulate --preset seed-case-study --output $(OUT)/case-study.jsonl
	@echo "   $$(wc -l < $(OUT)/case-study.jsonl) events"
	@echo
	@$(BIN) analyze $(OUT)/case-study.jsonl --split 0.2
	@$(BIN) analyze $(OUT)/case-study.jsonl --split 0.2 --format html > $(OUT)/case-study.html
	@echo "The same report as a page with a chart of every lift and its interval: $(OUT)/case-study.html"
	@echo
	@echo "== Offline: v1 and v2 on a sample of the support bot's requests, judged -> $(OUT)/offline/"
	@BAKEOFF_BIN=$(CURDIR)/$(BIN) bash scripts/demo/offline.sh $(OUT) before
	@echo
	@echo "== Live: the gateway between simulated users and two mock model servers -> $(OUT)/live/"
	@BAKEOFF_BIN=$(CURDIR)/$(BIN) bash scripts/demo/live.sh $(OUT)
	@echo
	@echo "== Offline and live together -> $(OUT)/offline/"
	@BAKEOFF_BIN=$(CURDIR)/$(BIN) bash scripts/demo/offline.sh $(OUT) after

test: build browser-deps $(TEST_PY_STAMP)
	$(SWIFT) build -c release --build-tests
	BAKEOFF_BIN=$(CURDIR)/$(BIN) $(SWIFT) test -c release --skip-build --disable-xctest
	@echo "== The gateway through the official openai client (e2e/gateway)"
	BAKEOFF_BIN=$(CURDIR)/$(BIN) $(TEST_PY) -m pytest -q e2e/gateway
	@echo "== Offline evals end to end, hostile cases included (e2e/eval)"
	BAKEOFF_BIN=$(CURDIR)/$(BIN) $(TEST_PY) -m pytest -q e2e/eval
	@echo "== The warehouse SQL on DuckDB and ClickHouse (chDB) against SQLite's (e2e/warehouse)"
	BAKEOFF_BIN=$(CURDIR)/$(BIN) $(TEST_PY) -m pytest -q e2e/warehouse
	@echo "== The dashboard in headless Chromium (e2e/browser)"
	BAKEOFF_BIN=$(CURDIR)/$(BIN) $(TEST_PY) -m pytest -q e2e/browser
	@echo "== OTLP trace export into Arize Phoenix and a capturing collector (e2e/otlp)"
	$(OTLP_TEST)
	@echo "== Runs recorded in a real MLflow server (e2e/mlflow)"
	$(MLFLOW_TEST)
	@echo "== The gateway against llama.cpp's server (llama-cpp-python), a tiny model the tests write (e2e/llama)"
	$(LLAMA_TEST)

# The dashboard's pages at 1280 and 390 px for the README (docs/screenshots/), from two weeks of the case study
# and the demo's offline eval, through headless Chromium.
screenshots: build browser-deps $(TEST_PY_STAMP)
	BAKEOFF_BIN=$(CURDIR)/$(BIN) TEST_PY=$(CURDIR)/$(TEST_PY) bash scripts/demo/screenshots.sh $(OUT) docs/screenshots

# The gateway's end-to-end tests use the official openai package as a real client.
$(TEST_PY):
	python3 -m venv $(TEST_VENV)
$(TEST_PY_STAMP): $(TEST_PY) Makefile
	@[ "$$(cat $@ 2>/dev/null)" = "$(TEST_PY_PACKAGES)" ] || \
		$(TEST_VENV)/bin/pip install --quiet --disable-pip-version-check $(TEST_PY_PACKAGES)
	@echo "$(TEST_PY_PACKAGES)" > $@

venv: $(PY)
$(PY):
	python3 -m venv $(PYTHON_VENV)
	$(PYTHON_VENV)/bin/pip install --quiet --disable-pip-version-check $(PY_PACKAGES)

# Regenerates the committed reference values (scipy, statsmodels, gbstats).
fixtures: venv
	$(PY) scripts/reference/stats_fixtures.py
	$(PY) scripts/reference/assignment_fixture.py
	$(PY) scripts/reference/analysis_fixture.py
	$(PY) scripts/reference/sequential_fixtures.py
	$(PY) scripts/reference/bayesian_fixtures.py
	$(PY) scripts/reference/multiple_comparisons_fixtures.py
	$(PY) scripts/reference/cuped_fixtures.py
	$(PY) scripts/reference/ratio_cuped_fixtures.py
	$(PY) scripts/reference/quantile_fixtures.py
	$(PY) scripts/reference/non_inferiority_fixtures.py
	$(PY) scripts/reference/mde_fixtures.py
	$(PY) scripts/reference/paired_fixtures.py
	$(PY) scripts/reference/scorer_fixtures.py
	$(PY) scripts/reference/kappa_fixtures.py
	$(GS_PY) scripts/reference/group_sequential_fixtures.py

# spotify-confidence (the group-sequential reference) pins its own pandas and statsmodels: a venv of its own.
GS_VENV := .venv-gs
GS_PY := $(GS_VENV)/bin/python
fixtures: $(GS_PY)
$(GS_PY):
	python3 -m venv $(GS_VENV)
	$(GS_VENV)/bin/pip install --quiet --disable-pip-version-check 'spotify-confidence==4.1.0' 'scipy==1.17.1' 'numpy==2.4.6' 'pandas==2.3.3'

# BENCH_ONLY=perf: only the gateway's cost per request, tails at 1,000 and 5,000 req/s, 10,000 open streams
# (scripts/bench/gateway_perf.py, ~12 minutes; BENCH_PERF_QUICK=1 for ~3); BENCH_PERF=0 skips it.
# BENCH_ONLY=tls: only HTTPS upstreams against plain HTTP, connection reuse (scripts/bench/tls_bench.py); BENCH_TLS=0 skips it.
# BENCH_ONLY=storebench: only the store's bytes per event and writer throughput, old layout against new
# (scripts/bench/store_bench.py); BENCH_STORE=0 skips it.
# BENCH_ONLY=gateway: only the gateway benchmark (no pandas venv needed); BENCH_GATEWAY=0 skips it.
# BENCH_ONLY=soak: only the gateway soak (slowloris, full disk, kill -9; scripts/bench/soak.py, as root for its
# tmpfs); BENCH_SOAK=0 skips it.
# BENCH_ONLY=eval: only `bakeoff eval` vs the openai client on asyncio (scripts/bench/eval_bench.py, 10,000
# requests, ~3 minutes); BENCH_EVAL=0 skips it, BENCH_EVAL_REQUESTS sets its size.
# BENCH_ONLY=dashboard: only the dashboard's first load against one `analyze --db`, and its refreshes, on a store of
# about 10 million events (scripts/bench/dashboard_bench.py, ~5 minutes); BENCH_DASHBOARD=0 skips it,
# BENCH_DASHBOARD_USERS sets its size (600,000 users: about 10 million events).
# BENCH_ONLY=stats: only bakeoff vs gbstats on 100 metrics' sufficient statistics (scripts/bench/stats.py);
# BENCH_STATS=0 skips it; BENCH_STATS_RUNS sets its timed bakeoff runs (default 11).
# BENCH_ONLY=pgstore: only the gateway with a PostgreSQL store against SQLite at the same load, one and two gateways,
# every request counted in the store (scripts/bench/pg_store_bench.py, ~8 minutes); BENCH_PGSTORE=0 skips it,
# BENCH_PGSTORE_QUICK=1 for short runs (written to out/bench/BENCHMARKS.quick.md).
# BENCH_ONLY=pganalyze: only `analyze --db postgresql://` on about 10 million events against export-then-analyse, SQLite,
# the log and the warehouse SQL (scripts/bench/pg_analyze_bench.py, ~20 minutes, ~25 GB in /tmp); BENCH_PGANALYZE=0
# skips it, BENCH_PGANALYZE_USERS sets its size (600,000 users: about 10 million events).
bench: build $(if $(filter gateway soak dashboard pgstore pganalyze otlp perf tls storebench,$(BENCH_ONLY)),,venv) $(if $(filter 0,$(BENCH_GATEWAY))$(filter stats soak eval dashboard pgstore pganalyze otlp perf tls storebench,$(BENCH_ONLY)),,$(LITELLM)) $(TEST_PY_STAMP)
	@[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time; }
	@command -v taskset >/dev/null || { apt-get update -qq && apt-get install -y -qq util-linux; }
	$(if $(filter stats eval dashboard pgstore pganalyze otlp perf tls storebench,$(BENCH_ONLY)),@true,BAKEOFF_BIN=$(CURDIR)/$(BIN) PY=$(CURDIR)/$(PY) LITELLM_BIN=$(CURDIR)/$(LITELLM) bash scripts/bench/run.sh)
	$(if $(filter gateway soak eval dashboard pgstore pganalyze otlp perf tls storebench,$(BENCH_ONLY))$(filter 0,$(BENCH_STATS)),@true,BENCH_COMMAND="$(if $(BENCH_ONLY),BENCH_ONLY=$(BENCH_ONLY) )make bench" \
		$(PY) scripts/bench/stats.py --bin $(CURDIR)/$(BIN) --out $(OUT)/bench --markdown BENCHMARKS.md $(if $(BENCH_STATS_RUNS),--runs $(BENCH_STATS_RUNS)))
	$(if $(filter gateway soak stats dashboard pgstore pganalyze otlp perf tls storebench,$(BENCH_ONLY))$(filter 0,$(BENCH_EVAL)),@true,BENCH_COMMAND="$(if $(BENCH_ONLY),BENCH_ONLY=$(BENCH_ONLY) )make bench" \
		$(PY) scripts/bench/eval_bench.py --bin $(CURDIR)/$(BIN) --client-python $(CURDIR)/$(TEST_PY) --out $(OUT)/bench --markdown BENCHMARKS.md $(if $(BENCH_EVAL_REQUESTS),--requests $(BENCH_EVAL_REQUESTS)))
	$(if $(filter gateway soak stats eval pgstore pganalyze otlp perf tls storebench,$(BENCH_ONLY))$(filter 0,$(BENCH_DASHBOARD)),@true,BENCH_COMMAND="$(if $(BENCH_ONLY),BENCH_ONLY=$(BENCH_ONLY) )make bench" \
		python3 scripts/bench/dashboard_bench.py --bin $(CURDIR)/$(BIN) --out $(OUT)/bench --markdown BENCHMARKS.md $(if $(BENCH_DASHBOARD_USERS),--users $(BENCH_DASHBOARD_USERS)))
	$(if $(filter gateway soak stats eval dashboard pganalyze otlp perf tls storebench,$(BENCH_ONLY))$(filter 0,$(BENCH_PGSTORE)),@true,BENCH_COMMAND="$(if $(BENCH_ONLY),BENCH_ONLY=$(BENCH_ONLY) )make bench" \
		python3 scripts/bench/pg_store_bench.py --bin $(CURDIR)/$(BIN) --out $(OUT)/bench --markdown BENCHMARKS.md)
	$(if $(filter gateway soak stats eval dashboard pgstore otlp perf tls storebench,$(BENCH_ONLY))$(filter 0,$(BENCH_PGANALYZE)),@true,BENCH_COMMAND="$(if $(BENCH_ONLY),BENCH_ONLY=$(BENCH_ONLY) )make bench" \
		python3 scripts/bench/pg_analyze_bench.py --bin $(CURDIR)/$(BIN) --out $(OUT)/bench --markdown BENCHMARKS.md $(if $(BENCH_PGANALYZE_USERS),--users $(BENCH_PGANALYZE_USERS)))
	$(if $(filter gateway soak stats eval dashboard pgstore pganalyze perf tls storebench,$(BENCH_ONLY))$(filter 0,$(BENCH_OTLP)),@true,BENCH_COMMAND="$(if $(BENCH_ONLY),BENCH_ONLY=$(BENCH_ONLY) )make bench" \
		python3 scripts/bench/otlp_bench.py --bin $(CURDIR)/$(BIN) --out $(OUT)/bench --markdown BENCHMARKS.md)
	$(if $(filter gateway soak stats eval dashboard pgstore pganalyze otlp tls storebench,$(BENCH_ONLY))$(filter 0,$(BENCH_PERF)),@true,BENCH_COMMAND="$(if $(BENCH_ONLY),BENCH_ONLY=$(BENCH_ONLY) )make bench" \
		python3 scripts/bench/gateway_perf.py --bin $(CURDIR)/$(BIN) --out $(OUT)/bench --markdown BENCHMARKS.md $(if $(BENCH_PERF_QUICK),--quick))
	$(if $(filter gateway soak stats eval dashboard pgstore pganalyze otlp perf storebench,$(BENCH_ONLY))$(filter 0,$(BENCH_TLS)),@true,BENCH_COMMAND="$(if $(BENCH_ONLY),BENCH_ONLY=$(BENCH_ONLY) )make bench" \
		python3 scripts/bench/tls_bench.py --bin $(CURDIR)/$(BIN) --markdown BENCHMARKS.md)
	$(if $(filter gateway soak stats eval dashboard pgstore pganalyze otlp perf tls,$(BENCH_ONLY))$(filter 0,$(BENCH_STORE)),@true,BENCH_COMMAND="$(if $(BENCH_ONLY),BENCH_ONLY=$(BENCH_ONLY) )make bench" \
		python3 scripts/bench/store_bench.py --bin $(CURDIR)/$(BIN) --markdown BENCHMARKS.md)

$(LITELLM):
	python3 -m venv $(LITELLM_VENV)
	$(LITELLM_VENV)/bin/pip install --quiet --disable-pip-version-check $(LITELLM_PACKAGES)

clean:
	rm -rf .build $(OUT)

# Integrations run by `make test`: OpenTelemetry traces into Phoenix (mk/otlp.mk).
include mk/otlp.mk

# Integrations run by `make test`: runs recorded in MLflow (mk/mlflow.mk).
include mk/mlflow.mk

# Integrations run by `make test`: llama.cpp's server through llama-cpp-python (mk/llama.mk).
include mk/llama.mk
