"""End-to-end tests of the gateway's OTLP trace export (a package, as e2e/eval and e2e/browser are, so its helper modules import relatively)."""
