"""Backend conformance suite: the same agent-level tests, run unchanged against every model backend."""
