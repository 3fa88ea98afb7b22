"""Fixtures of the conformance suite: each backend started once per module run, and per-test model factories.

``backend`` is module-scoped and parametrised from `backends.BACKENDS`, so pytest runs every test against one
backend, tears it down, then starts the next (one model load, one server process at a time on 2 cores).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import pytest

from qwen_agent.llm.base import ChatModel

from .backends import BACKENDS, Backend, ModelFactory, backend_params

#: backend name -> its notes, kept for the end-of-run summary.
_NOTES: dict[str, dict[str, str]] = {}


@pytest.fixture(scope="module", params=backend_params())
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    started = time.perf_counter()
    with BACKENDS[request.param].start(request) as b:
        b.notes["start-up"] = f"{time.perf_counter() - started:.1f} s"
        _NOTES[b.name] = b.notes
        yield b
    b.notes["total (start-up, tests, shut-down)"] = f"{time.perf_counter() - started:.1f} s"


@pytest.fixture
async def make_model(backend: Backend) -> AsyncIterator[ModelFactory]:
    """``backend.make_model``; the fresh models a test made are closed after it, on the test's event loop."""
    made: list[ChatModel] = []

    def make(**kwargs: object) -> ChatModel:
        model = backend.make_model(**kwargs)  # type: ignore[arg-type]
        made.append(model)
        return model

    yield make  # type: ignore[misc]
    if backend.fresh_models:
        for model in made:
            await model.aclose()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print how each backend did what the suite leaves open (parallel calls, recovery) and its run time."""
    if not _NOTES:
        return
    terminalreporter.section("backend conformance notes")
    for name, notes in _NOTES.items():
        for key, value in notes.items():
            terminalreporter.write_line(f"{name:16} {key}: {value}")
