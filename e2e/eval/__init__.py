"""End-to-end tests of `bakeoff eval`. A package, so that its conftest is imported as eval.conftest and never
replaces the `conftest` module that e2e/gateway's tests import names from (`from conftest import ...`)."""
