# `analyze --mlflow` and `eval --mlflow` end to end (e2e/mlflow): runs recorded in a real MLflow tracking server,
# read back through MLflow's own Python client.
#
# Included at the end of the main Makefile (it uses BIN, TEST_PY and TEST_PY_STAMP); it adds its venv to `make test`'s
# prerequisites itself, and `make test` runs $(MLFLOW_TEST) after the other suites. `make test-mlflow` runs the suite
# alone.
#
# MLflow lives in a venv of its own (about 46 s to install on an idle machine, ~860 MB): its pins stay away from
# .venv-test's. The tests run in .venv-test's pytest and call MLFLOW_PY for the server and the client.
MLFLOW_VENV := .venv-mlflow
MLFLOW_PY := $(MLFLOW_VENV)/bin/python
MLFLOW_PACKAGES := 'mlflow==3.18.0'
# Records what is installed, so the venv is remade when the list changes.
MLFLOW_STAMP := $(MLFLOW_VENV)/.packages

.PHONY: mlflow-venv test-mlflow

mlflow-venv: $(MLFLOW_STAMP)

$(MLFLOW_STAMP): mk/mlflow.mk
	@if [ "$$(cat $@ 2>/dev/null)" != "$(MLFLOW_PACKAGES)" ]; then \
		echo "== Making $(MLFLOW_VENV): MLflow (about a minute the first time)"; \
		start=$$(date +%s); \
		rm -rf $(MLFLOW_VENV) && python3 -m venv $(MLFLOW_VENV) && \
		$(MLFLOW_VENV)/bin/pip install --quiet --disable-pip-version-check $(MLFLOW_PACKAGES) && \
		echo "$(MLFLOW_PACKAGES)" > $@ && \
		echo "   $(MLFLOW_VENV) ready in $$(( $$(date +%s) - start )) s"; \
	else \
		touch $@; \
	fi

# `make test` needs it (a prerequisite added here, so the main Makefile's rule needs no variable defined below it).
test: $(MLFLOW_STAMP)

# The recipe `make test` and `make test-mlflow` share.
define MLFLOW_TEST
BAKEOFF_BIN=$(CURDIR)/$(BIN) MLFLOW_PY=$(CURDIR)/$(MLFLOW_PY) $(TEST_PY) -m pytest -q e2e/mlflow
endef

test-mlflow: build $(TEST_PY_STAMP) $(MLFLOW_STAMP)
	@echo "== Runs recorded in a real MLflow server (e2e/mlflow)"
	$(MLFLOW_TEST)
