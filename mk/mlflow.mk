# MLflow for e2e/mlflow: a real tracking server that `analyze --mlflow` and `eval --mlflow` record runs in, and
# MLflow's Python client that reads them back. In a venv of its own (~46 s, ~860 MB): mlflow's pins must not move
# those of .venv-test, which runs pytest. Included by the Makefile, after BIN and TEST_PY are defined.
MLFLOW_VENV := .venv-mlflow
MLFLOW_PY := $(MLFLOW_VENV)/bin/python
MLFLOW_PACKAGES := 'mlflow==3.18.0'
# Records what is installed, so an older .venv-mlflow gets the new version when the pin changes.
MLFLOW_STAMP := $(MLFLOW_VENV)/.packages

.PHONY: mlflow-venv test-mlflow

mlflow-venv: $(MLFLOW_STAMP)

$(MLFLOW_STAMP): mk/mlflow.mk
	@[ -x $(MLFLOW_PY) ] || python3 -m venv $(MLFLOW_VENV)
	@[ "$$(cat $@ 2>/dev/null)" = "$(MLFLOW_PACKAGES)" ] || \
		$(MLFLOW_VENV)/bin/pip install --quiet --disable-pip-version-check $(MLFLOW_PACKAGES)
	@echo "$(MLFLOW_PACKAGES)" > $@

# Runs recorded in a real `mlflow server` (started and stopped by the tests), read back through MLflow's client.
MLFLOW_E2E := BAKEOFF_BIN=$(CURDIR)/$(BIN) MLFLOW_PY=$(CURDIR)/$(MLFLOW_PY) $(TEST_PY) -m pytest -q e2e/mlflow

test-mlflow: build $(TEST_PY_STAMP) $(MLFLOW_STAMP)
	@echo "== Runs recorded in a real MLflow server (e2e/mlflow)"
	$(MLFLOW_E2E)
