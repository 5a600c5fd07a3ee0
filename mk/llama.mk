# The gateway against a real OpenAI-compatible server that no one here wrote: llama.cpp's server, through
# llama-cpp-python from PyPI, serving a tiny random-weight model that the tests write themselves (e2e/llama).
#
# Included at the end of the main Makefile (it uses BIN, TEST_PY and TEST_PY_STAMP); it adds its venv to `make test`'s
# prerequisites itself, and `make test` runs $(LLAMA_TEST) after the other suites. `make test-llama` runs the suite
# alone (about 15 s once the venv exists).
#
# llama-cpp-python has no binary wheel on PyPI: pip compiles llama.cpp (about 4 minutes on 2 idle cores, 49 minutes
# once on a machine busy with other builds; cmake and ninja come from PyPI, so a C and a C++ compiler are all the
# machine needs). pip keeps the built wheel in its cache, so a venv made again later takes well under a minute.
# GGML_NATIVE=OFF: llama.cpp is otherwise compiled for this machine's CPU, and a cached wheel moved to another CPU
# could die of an illegal instruction.
# Without a C or C++ compiler the venv is not made and the tests say they are skipped, so `make test` still
# passes; LLAMA_REQUIRED=1 makes that an error instead.
LLAMA_VENV := .venv-llama
LLAMA_PY := $(LLAMA_VENV)/bin/python
# The server's own dependencies are pinned too: how its streams end (and break) is theirs (sse-starlette, uvicorn).
LLAMA_PACKAGES := 'llama-cpp-python[server]==0.3.36' 'gguf==0.19.0' 'numpy==2.4.6' \
	'uvicorn==0.55.0' 'fastapi==0.165.0' 'starlette==1.10.0' 'sse-starlette==3.7.1' 'starlette-context==0.3.6' \
	'pydantic==2.14.4' 'pydantic-settings==2.16.3' 'Jinja2==3.1.6'
# Records what is installed, so the venv is remade when the list changes.
LLAMA_STAMP := $(LLAMA_VENV)/.packages
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF
LLAMA_REQUIRED ?= 0
# What is missing for the build, empty when nothing is.
LLAMA_MISSING = $(strip $(if $(shell command -v cc 2>/dev/null),,cc) $(if $(shell command -v c++ 2>/dev/null),,c++))

.PHONY: llama-venv test-llama

llama-venv: $(LLAMA_STAMP)

$(LLAMA_STAMP): mk/llama.mk
	@if [ "$$(cat $@ 2>/dev/null)" = "$(LLAMA_PACKAGES) $(LLAMA_CMAKE_ARGS)" ]; then \
		touch $@; \
	elif [ -n "$(LLAMA_MISSING)" ]; then \
		echo "!! e2e/llama: missing on this machine: $(LLAMA_MISSING) (a C and a C++ compiler compile llama-cpp-python)"; \
		[ "$(LLAMA_REQUIRED)" != 1 ] || { echo "!! LLAMA_REQUIRED=1: stopping"; exit 1; }; \
		echo "!! the tests against llama.cpp's server are SKIPPED (apt-get install build-essential to run them)"; \
	else \
		echo "== Making $(LLAMA_VENV): llama-cpp-python compiles llama.cpp (about 4 minutes on 2 cores the first time)"; \
		start=$$(date +%s); \
		rm -rf $(LLAMA_VENV) && python3 -m venv $(LLAMA_VENV) && \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(LLAMA_VENV)/bin/pip install --quiet --disable-pip-version-check \
			$(LLAMA_PACKAGES) && \
		echo "$(LLAMA_PACKAGES) $(LLAMA_CMAKE_ARGS)" > $@ && \
		echo "   $(LLAMA_VENV) ready in $$(( $$(date +%s) - start )) s"; \
	fi

# `make test` needs it (a prerequisite added here, so the main Makefile's rule needs no variable defined below it).
test: $(LLAMA_STAMP)

# The recipe `make test` and `make test-llama` share; skips (loudly) when the venv could not be made.
define LLAMA_TEST
@if [ -f $(LLAMA_STAMP) ]; then \
	echo "BAKEOFF_BIN=$(CURDIR)/$(BIN) LLAMA_PY=$(CURDIR)/$(LLAMA_PY) $(TEST_PY) -m pytest -q e2e/llama"; \
	BAKEOFF_BIN=$(CURDIR)/$(BIN) LLAMA_PY=$(CURDIR)/$(LLAMA_PY) $(TEST_PY) -m pytest -q e2e/llama; \
else \
	echo "!! e2e/llama SKIPPED: $(LLAMA_VENV) could not be made (see above)"; \
fi
endef

test-llama: build $(TEST_PY_STAMP) $(LLAMA_STAMP)
	@echo "== The gateway against llama.cpp's server (llama-cpp-python), a tiny model it writes itself (e2e/llama)"
	$(LLAMA_TEST)
