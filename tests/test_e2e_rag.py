"""End-to-end RAG with the real embedded model and real MiniLM embeddings over generated md/html/pdf/docx/... files:
answers carry the right citation, absent answers are refused; the `index` / `ask` commands do the same."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import retrieval_docgen as docgen

from qwen_agent.agents import Assistant
from qwen_agent.retrieval import KnowledgeBase

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    docs = tmp_path_factory.mktemp("rag") / "docs"
    docgen.write_corpus(docs)
    return docs


@pytest.fixture(scope="module")
def knowledge(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    kb = KnowledgeBase.build(corpus, tmp_path_factory.mktemp("store"), embedder=docgen.shared_embedder())
    assert kb.last_report is not None and kb.last_report.ok
    return kb


@pytest.mark.parametrize(("question", "needle", "citation"), [
    ("How long does the Zephyr kettle take to boil a litre of water?", "94", "[zephyr_kettle_manual.pdf p.1]"),
    ("Which temperature setting should I use for green tea?", "80", "[zephyr_kettle_manual.pdf p.2]"),
])
async def test_answer_uses_the_document_and_cites_it(embedded_model, knowledge, question, needle, citation) -> None:
    assistant = Assistant(embedded_model, knowledge=knowledge)
    result = await assistant.arun(question)
    assert needle in result.answer, result.answer
    assert citation in result.answer, result.answer
    assert result.tool_calls == []


async def test_question_not_in_the_documents_is_refused(embedded_model, knowledge) -> None:
    assistant = Assistant(embedded_model, knowledge=knowledge)
    result = await assistant.arun("What is the capital of Mongolia?")
    assert "could not find" in result.answer.lower() or "do not know" in result.answer.lower(), result.answer
    assert "[" not in result.answer, "a refusal must not cite a source"


def test_index_and_ask_commands(corpus: Path, tmp_path: Path, embedded_model_path) -> None:
    env = {**os.environ, "QWEN_AGENT_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    store = tmp_path / "store"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "qwen_agent.cli", *args], capture_output=True, text=True,
                              timeout=600, env=env)

    idx = cli("index", str(corpus), "--store", str(store))
    assert idx.returncode == 0, idx.stderr[-2000:]
    assert "12 documents" in idx.stdout
    again = cli("index", str(corpus), "--store", str(store))
    assert again.returncode == 0 and "0 new, 0 changed, 0 removed, 12 unchanged" in again.stdout
    # The GGUF is given by path because QWEN_AGENT_HOME points at an empty cache here.
    ask = cli("ask", "How long does the Zephyr kettle take to boil a litre of water?", "--store", str(store),
              "-m", str(embedded_model_path), "--temperature", "0", "--n-ctx", "4096")
    assert ask.returncode == 0, ask.stderr[-2000:]
    assert "94" in ask.stdout and "[zephyr_kettle_manual.pdf p.1]" in ask.stdout
