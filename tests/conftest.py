"""Shared fixtures: the real embedded model, loaded once per test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from qwen_agent.llm.errors import ModelNotFoundError


@pytest.fixture(scope="session")
def embedded_model_path():
    """The default GGUF. Missing is a failure, not a skip: `make test` pulls it first."""
    from qwen_agent.llm.model_store import default_model_path

    try:
        return default_model_path()
    except ModelNotFoundError as exc:
        pytest.fail(f"the embedded model is missing ({exc}); run `qwen-agent models pull` (make test does)")


@pytest.fixture(scope="session")
def embedded_model(embedded_model_path) -> Iterator[object]:
    """One shared LlamaCpp instance (temperature 0) for the end-to-end tests."""
    from qwen_agent.llm.base import SamplingParams
    from qwen_agent.llm.llamacpp import LlamaCpp
    from qwen_agent.sync import run_sync

    model = LlamaCpp(embedded_model_path, n_ctx=4096, params=SamplingParams(temperature=0.0, seed=0, max_tokens=256))
    yield model
    run_sync(model.aclose())
