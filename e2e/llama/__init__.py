"""The gateway against llama.cpp's server (llama-cpp-python). A package, so that its conftest is imported as
llama.conftest and never replaces the `conftest` module that e2e/gateway's tests import names from."""
