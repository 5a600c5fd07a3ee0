# The gateway's OTLP trace export end to end (e2e/otlp): spans into a real Arize Phoenix, read back through its
# REST API, and into a capturing collector written in the tests that decodes both OTLP/HTTP encodings.
#
# Included at the end of the main Makefile (it uses BIN, TEST_VENV, TEST_PY and TEST_PY_STAMP); it adds its venvs to
# `make test`'s prerequisites itself, and `make test` runs $(OTLP_TEST) after the other suites. `make test-otlp`
# runs the suite alone; `make test-otlp-harness` only the harness's own tests (Phoenix, the collector), which need
# no bakeoff binary.
#
# Phoenix lives in a venv of its own (about 55 s to install on an idle machine, ~860 MB): its hundred-odd
# dependencies stay away from .venv-test's pins. The tests start it through a few lines that keep its gRPC server on
# 127.0.0.1 (Phoenix binds it to every interface otherwise) by wrapping grpc.aio's add_insecure_port, so grpcio is
# pinned with it: a grpcio that moved that method would break the wrapper (test_harness.py would say so).
#
# The collector's protobuf decoder runs in the tests' own python: opentelemetry-proto and protobuf go into .venv-test.
# Nothing there requires protobuf (litellm, langchain-openai, playwright, duckdb and chdb do not), so it cannot clash
# with their pins; `pip check` passed after adding them. They get a stamp of their own so that the main package list
# (TEST_PY_PACKAGES) needs no change.
PHOENIX_VENV := .venv-phoenix
PHOENIX_PY := $(PHOENIX_VENV)/bin/python
PHOENIX_PACKAGES := 'arize-phoenix==20.26.1' 'grpcio==1.85.4'
# Records what is installed, so the venv is remade when the list changes.
PHOENIX_STAMP := $(PHOENIX_VENV)/.packages
OTLP_TEST_PACKAGES := 'opentelemetry-proto==1.45.2' 'protobuf==7.36.2'
OTLP_TEST_STAMP := $(TEST_VENV)/.otlp-packages

.PHONY: phoenix-venv test-otlp test-otlp-harness

phoenix-venv: $(PHOENIX_STAMP)

$(PHOENIX_STAMP): mk/otlp.mk
	@if [ "$$(cat $@ 2>/dev/null)" != "$(PHOENIX_PACKAGES)" ]; then \
		echo "== Making $(PHOENIX_VENV): Arize Phoenix (about a minute the first time)"; \
		start=$$(date +%s); \
		rm -rf $(PHOENIX_VENV) && python3 -m venv $(PHOENIX_VENV) && \
		$(PHOENIX_VENV)/bin/pip install --quiet --disable-pip-version-check $(PHOENIX_PACKAGES) && \
		echo "$(PHOENIX_PACKAGES)" > $@ && \
		echo "   $(PHOENIX_VENV) ready in $$(( $$(date +%s) - start )) s"; \
	else \
		touch $@; \
	fi

$(OTLP_TEST_STAMP): $(TEST_PY_STAMP) mk/otlp.mk
	@[ "$$(cat $@ 2>/dev/null)" = "$(OTLP_TEST_PACKAGES)" ] || \
		$(TEST_VENV)/bin/pip install --quiet --disable-pip-version-check $(OTLP_TEST_PACKAGES)
	@echo "$(OTLP_TEST_PACKAGES)" > $@

# `make test` needs both (a prerequisite added here, so the main Makefile's rule needs no variable defined below it).
test: $(OTLP_TEST_STAMP) $(PHOENIX_STAMP)

# The recipe `make test` and `make test-otlp` share.
define OTLP_TEST
BAKEOFF_BIN=$(CURDIR)/$(BIN) PHOENIX_PY=$(CURDIR)/$(PHOENIX_PY) $(TEST_PY) -m pytest -q e2e/otlp
endef

test-otlp: build $(TEST_PY_STAMP) $(OTLP_TEST_STAMP) $(PHOENIX_STAMP)
	@echo "== OTLP trace export into Arize Phoenix and a capturing collector (e2e/otlp)"
	$(OTLP_TEST)

test-otlp-harness: $(TEST_PY_STAMP) $(OTLP_TEST_STAMP) $(PHOENIX_STAMP)
	PHOENIX_PY=$(CURDIR)/$(PHOENIX_PY) $(TEST_PY) -m pytest -q e2e/otlp/test_harness.py
