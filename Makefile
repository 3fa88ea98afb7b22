# One-command set-up: `make demo` runs the demo on the embedded model, `make test` runs every test.
# Both create the virtualenv, install the project and fetch (and verify) the embedded model on first use.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
# torch is pinned to the CPU build 2.13.0 wherever it comes in (sentence-transformers would pull a CUDA one).
TEST_EXTRAS ?= local,server,code,rag,mcp,web,transformers,serve,eval,ray,pgvector,trace,dev
PYTEST_ARGS ?=

.PHONY: demo lint test test-vllm test-sandbox-nonroot vllm-env phoenix-env trainer-loaders-env browser venv install-demo install-test model bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

venv: $(BIN)/python

$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e '.[local]'
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e '.[$(TEST_EXTRAS)]'
	touch $@

install-demo: $(VENV)/.demo-installed
install-test: $(VENV)/.test-installed

model: install-demo
	$(BIN)/qwen-agent models pull qwen2.5-coder-0.5b

demo: install-demo model
	$(BIN)/python examples/quickstart.py

# The lint and type policy (pyproject.toml: ruff's rule sets, strict mypy on qwen_agent/); seconds, so it runs first.
lint: install-test
	$(BIN)/ruff check .
	$(BIN)/mypy

# Everything, the real vLLM server included: its own cached venv is built and the model converted to a bf16
# Hugging Face folder first (once per machine; later runs reuse both), so a failure there shows up as such.
test: install-test lint vllm-env phoenix-env trainer-loaders-env browser
	$(BIN)/python -m pytest -rs $(PYTEST_ARGS)
	.ci/sandbox-nonroot

# The sandbox tests as an unprivileged user (created when run as root): bwrap's own uid mapping, the quota watchdog.
test-sandbox-nonroot:
	.ci/sandbox-nonroot

# Only the tests against the real vLLM server (the conformance suite's vLLM backend and the server's own tests).
test-vllm: install-test vllm-env
	$(BIN)/python -m pytest -rs -m vllm $(PYTEST_ARGS)

# Debian's chromium and its driver for the chat page's browser tests (Playwright drives it through
# executable_path; `playwright install` is never run). Idempotent: apt only runs when the browser is missing.
browser:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; \
	else echo "chromium is missing: install Debian's chromium and chromium-driver (as root: make browser)"; fi

# Arize Phoenix, the real trace backend of the tracing tests, in its own cached venv (~850 MB, once per machine).
phoenix-env: install-test
	$(BIN)/python -m qwen_agent.testing.phoenix --prepare-only

# LLaMA-Factory's and Axolotl's loaders for the export tests, in their own cached venv (~2.2 GB, once per machine).
trainer-loaders-env: install-test
	$(BIN)/python -m qwen_agent.testing.trainer_loaders

vllm-env: install-test
	$(BIN)/qwen-agent models pull qwen2.5-coder-0.5b
	$(BIN)/qwen-agent models convert qwen2.5-coder-0.5b
	$(BIN)/python -m qwen_agent.serving.vllm --prepare-only

# Every script in benchmarks/ with its defaults (each prints its figures next to a baseline measured in the same run;
# the README's "Measured" rows come from this output). vLLM rows need vLLM's venv (vllm-env). Output is also kept
# in bench-results/ (one file per script). Slow parts: bench_retrieval (recall over 4 embedders, HNSW at 100k) and
# bench_backends / bench_serve (vLLM start-up); about an hour on 2 quiet cores.
BENCH_SCRIPTS := $(sort $(wildcard benchmarks/bench_*.py))

bench: SHELL := /bin/bash
bench: install-test model vllm-env
	@mkdir -p bench-results
	@set -eo pipefail; for script in $(BENCH_SCRIPTS); do \
		name=$$(basename $$script .py); echo "== $$name"; \
		$(BIN)/python $$script 2>&1 | tee bench-results/$$name.txt; \
	done

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache .ruff_cache bench-results
