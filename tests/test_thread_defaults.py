"""Default llama.cpp thread counts: every usable core decodes and reads prompts (no model is loaded)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qwen_agent.llm.backends import llamacpp_runtime
from qwen_agent.llm.backends.llamacpp import LlamaCpp
from qwen_agent.llm.backends.llamacpp_runtime import default_thread_counts


@pytest.mark.parametrize(("cores", "expected"), [(1, (1, 1)), (2, (2, 2)), (3, (3, 3)), (8, (8, 8))])
def test_every_usable_core_decodes_and_reads_prompts(monkeypatch: pytest.MonkeyPatch, cores: int,
                                                           expected: tuple[int, int]) -> None:
    monkeypatch.setattr(llamacpp_runtime.os, "sched_getaffinity", lambda pid: set(range(cores)))
    assert default_thread_counts() == expected


def test_the_affinity_mask_counts_not_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llamacpp_runtime.os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert default_thread_counts() == (2, 2)


def test_the_embedded_backend_uses_the_defaults_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llamacpp_runtime.os, "sched_getaffinity", lambda pid: set(range(4)))
    model = LlamaCpp(model_path="/nonexistent/model.gguf")  # nothing is loaded until the first request
    assert (model.n_threads, model.n_threads_batch) == (4, 4)
    model = LlamaCpp(model_path="/nonexistent/model.gguf", n_threads=3, n_threads_batch=1)
    assert (model.n_threads, model.n_threads_batch) == (3, 1)


def test_the_llamacpp_server_gets_the_same_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from qwen_agent.serving.llamacpp import LlamaCppServer

    monkeypatch.setattr(llamacpp_runtime.os, "sched_getaffinity", lambda pid: set(range(2)))
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"")  # never started: only its command line is read
    argv = LlamaCppServer(gguf, log_path=tmp_path / "log").command()
    assert argv[argv.index("--n_threads") + 1] == "2"
    assert argv[argv.index("--n_threads_batch") + 1] == "2"
