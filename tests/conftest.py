"""Shared session fixtures: the real embedded model, its Hugging Face conversion, one loaded `Transformers` and
one real vLLM server, each made once per test session; and an order that runs the vLLM tests last.

The vLLM server is expensive (its own venv, ~1 min to start, a KV cache held in RAM), so every test that needs it
shares one instance, and those tests run at the end of the session: the server starts once, late, and does not
sit beside the rest of the suite.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from qwen_agent.llm.errors import ModelNotFoundError

# Everything the tests load is local; make transformers fail instead of ever asking the Hugging Face hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Move the tests marked ``vllm`` to the end, keeping their order (module-scoped groups stay together)."""
    items[:] = [i for i in items if i.get_closest_marker("vllm") is None] + \
               [i for i in items if i.get_closest_marker("vllm") is not None]


@pytest.fixture(scope="session")
def embedded_model_path():
    """The default GGUF. Missing is a failure, not a skip: `make test` pulls it first."""
    from qwen_agent.llm.distribution.store import default_model_path

    try:
        return default_model_path()
    except ModelNotFoundError as exc:
        pytest.fail(f"the embedded model is missing ({exc}); run `qwen-agent models pull` (make test does)")


@pytest.fixture(scope="session")
def embedded_model(embedded_model_path) -> Iterator[object]:
    """One shared LlamaCpp instance (temperature 0) for the end-to-end tests."""
    from qwen_agent.llm.backends.llamacpp import LlamaCpp
    from qwen_agent.llm.base import SamplingParams
    from qwen_agent.sync import run_sync

    model = LlamaCpp(embedded_model_path, n_ctx=4096, params=SamplingParams(temperature=0.0, seed=0, max_tokens=256))
    yield model
    run_sync(model.aclose())


@pytest.fixture(scope="session")
def hf_folder(embedded_model_path: Path) -> Path:
    """The default model converted to a Hugging Face folder (converted now if the cache lacks it, ~1 min;
    verified otherwise). Used by the transformers backend and served by vLLM, which cannot read the GGUF."""
    from qwen_agent.llm.distribution.hf_convert import ensure_hf_model

    return ensure_hf_model()


@pytest.fixture(scope="session")
def hf_model(hf_folder: Path) -> Iterator[object]:
    """One `Transformers` on the converted folder (CPU, default dtype), greedy, loaded once."""
    from qwen_agent.llm.backends.transformers import Transformers
    from qwen_agent.llm.base import SamplingParams
    from qwen_agent.sync import run_sync

    model = Transformers(hf_folder, params=SamplingParams(temperature=0.0, seed=0, max_tokens=96))
    model.load()
    yield model
    run_sync(model.aclose())


@pytest.fixture(scope="session")
def vllm_server(hf_folder: Path) -> Iterator[object]:
    """The real vLLM OpenAI-compatible server on 127.0.0.1 serving the converted model, with tool calling on.

    Its venv is built on first use (`make test` builds it beforehand). A server that cannot be built or started
    fails the tests that need it with the reason and the server log's tail; it never skips them."""
    from qwen_agent.serving.venv import ensure_vllm_venv
    from qwen_agent.serving.vllm import VLLMServer

    server = VLLMServer(hf_folder, "qwen2.5-coder-0.5b", python=ensure_vllm_venv(), kv_cache_space_gib=1,
                        max_model_len=4096)
    with server:
        yield server
    assert not server.group_alive(), "vLLM processes survived stop()"


@pytest.fixture(scope="session")
def phoenix() -> Iterator[object]:
    """One real Arize Phoenix trace backend on 127.0.0.1 for the whole session (its private venv is built on first
    use, a few minutes; `make test` builds it beforehand). A failure to build or start it fails the tests."""
    from qwen_agent.testing.phoenix import PhoenixServer

    with PhoenixServer() as server:
        yield server
