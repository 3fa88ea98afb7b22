"""KnowledgeBase with the real default embedder and real FAISS/BM25: build, reload, incremental, search."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import retrieval_docgen as docgen

from qwen_agent.retrieval import KnowledgeBase, KnowledgeBaseConfig, StoreError, format_passages
from qwen_agent.retrieval.embeddings import DEFAULT_MODEL, default_model_path
from qwen_agent.retrieval.search import CrossEncoderReranker
from qwen_agent.tools import ToolArgumentsError
from qwen_agent.tools.retrieval import NOTHING_FOUND, RetrievalTool


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("docs")
    docgen.write_corpus(folder)
    docgen.write_encrypted_pdf(folder / "secret.pdf")
    docgen.write_corrupt_files(folder / "broken")
    return folder


@pytest.fixture(scope="module")
def kb(docs: Path, tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    return KnowledgeBase.build(docs, tmp_path_factory.mktemp("store") / "kb", embedder=docgen.shared_embedder())


def test_build_reports_per_file_errors_and_indexes_the_rest(kb: KnowledgeBase) -> None:
    report = kb.last_report
    assert report is not None
    assert len(report.added) == 12 and report.total_documents == 12
    assert sorted((Path(e.path).name, e.kind) for e in report.errors) == [
        ("broken.docx", "corrupt"), ("broken.pdf", "corrupt"), ("broken.xlsx", "corrupt"), ("secret.pdf", "encrypted")
    ]
    assert report.total_chunks >= 30 and report.index_kind == "flat"


def test_hybrid_ranks_the_labelled_chunk_first(kb: KnowledgeBase) -> None:
    questions = docgen.load_corpus()["questions"]
    first = top5 = 0
    vectors = docgen.shared_embedder().embed_documents([q["q"] for q in questions])  # one batch: faster
    for q, vector in zip(questions, vectors, strict=True):
        hits = kb.search(q["q"], k=5, mode="hybrid", query_vector=vector)
        ranks = [i for i, h in enumerate(hits) if h.source == q["source"] and q["needle"] in h.text]
        first += bool(ranks and ranks[0] == 0)
        top5 += bool(ranks)
    assert len(questions) >= 50
    assert first / len(questions) >= 0.9, first
    assert top5 == len(questions)


def test_hits_carry_citations_and_metadata(kb: KnowledgeBase) -> None:
    hit = kb.search("Which temperature preset is best for green tea?", k=1)[0]
    assert (hit.source, hit.page, hit.citation) == ("zephyr_kettle_manual.pdf", 2, "[zephyr_kettle_manual.pdf p.2]")
    assert hit.chunk_id is not None and hit.path.endswith("zephyr_kettle_manual.pdf")
    slide = kb.search("on-device bird recognition model size", k=1, mode="vector")[0]
    assert slide.citation == "[heron_roadmap.pptx slide 3]" and slide.heading == "Q3: Species Recognition"
    sheet = kb.search("Ruby Moon sweet pea sowing", k=1, mode="bm25")[0]
    assert sheet.citation == "[seed_prices.xlsx sheet Flowers]"
    zh = kb.search("茶艺课的学费", k=1)[0]
    assert zh.source == "cloud_tea_house.md" and "一百八十元" in zh.text
    text = format_passages([hit, slide])
    assert text.startswith("[zephyr_kettle_manual.pdf p.2]") and "[heron_roadmap.pptx slide 3] (Q3" in text


def test_search_modes_and_edge_cases(kb: KnowledgeBase) -> None:
    vector = kb.search("stolen laptop", k=3, mode="vector")
    bm25 = kb.search("stolen laptop", k=3, mode="bm25")
    assert vector[0].source == bm25[0].source == "helpdesk_faq.html"
    assert 0 < vector[0].score <= 1.0
    assert kb.search("zzqx unknownword", k=3, mode="bm25") == []
    assert kb.search("   ", k=3) == []
    with pytest.raises(ValueError):
        kb.search("x", mode="fuzzy")  # type: ignore[arg-type]


def test_context_for_whole_documents_or_best_hits(kb: KnowledgeBase) -> None:
    whole = kb.context_for("anything", token_budget=100_000)
    assert all(h.chunk_id is None for h in whole)
    assert {h.source for h in whole} == {d["name"] for d in docgen.load_corpus()["documents"]}
    assert [h.page for h in whole if h.source == "travel_policy.pdf"] == [1, 2, 3]
    small = kb.context_for("How long is parental leave?", token_budget=250)
    assert small and small[0].source == "larkspur_handbook.docx" and small[0].chunk_id is not None
    assert sum(len(h.text.split()) for h in small) <= 250


def test_reload_and_incremental_update(docs: Path, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ("brackenford_history.md", "garden_guide.md", "maple_bakery_recipes.txt", "seed_prices.xlsx"):
        shutil.copy(docs / name, folder / name)
    store = tmp_path / "kb"
    embedder = docgen.shared_embedder()
    KnowledgeBase.build(folder, store, embedder=embedder).close()
    reopened = KnowledgeBase.open(store, embedder=embedder)
    assert reopened.stats()["documents"] == 4
    assert reopened.search("Who designed the three-arch bridge?", k=1)[0].source == "brackenford_history.md"
    generation = reopened._store.generation

    again = reopened.add(folder)
    assert again.added == [] and again.updated == [] and len(again.unchanged) == 4
    assert reopened._store.generation == generation  # nothing changed, nothing rewritten

    (folder / "garden_guide.md").write_text("# Allotment Guide\n\n## Rules\n\nPlot rent is 61 pounds a year now.\n")
    (folder / "maple_bakery_recipes.txt").unlink()
    (folder / "new_note.md").write_text("# Parking\n\nVisitors park in the violet car park behind the depot.\n")
    report = reopened.add(folder)
    assert report.updated == ["garden_guide.md"] and report.added == ["new_note.md"]
    assert report.removed == ["maple_bakery_recipes.txt"] and report.total_documents == 4
    assert "61 pounds" in reopened.search("yearly plot rent", k=1)[0].text
    assert all(h.source != "maple_bakery_recipes.txt" for h in reopened.search("sourdough starter Gertrude", k=10))
    assert reopened.search("where do visitors park?", k=1)[0].source == "new_note.md"
    reopened.close()

    # another process' view: a fresh open sees the same state, stale generation files are gone
    fresh = KnowledgeBase.open(store, embedder=embedder)
    assert fresh.search("where do visitors park?", k=1, mode="bm25")[0].source == "new_note.md"
    assert sorted(p.name for p in store.glob("vectors.*")) == [f"vectors.{fresh._store.generation}.faiss"]


def test_damaged_index_file_is_rebuilt_from_the_store(docs: Path, tmp_path: Path) -> None:
    store = tmp_path / "kb"
    kb = KnowledgeBase.build(docs / "zephyr_kettle_manual.pdf", store, embedder=docgen.shared_embedder())
    gen = kb._store.generation
    kb.close()
    (store / f"vectors.{gen}.faiss").write_bytes(b"garbage")
    shutil.rmtree(store / f"bm25.{gen}")
    kb = KnowledgeBase.open(store, embedder=docgen.shared_embedder())
    assert kb.search("dry boil sensor", k=1)[0].page == 3
    assert kb.search("dry boil sensor", k=1, mode="bm25")[0].page == 3


def test_hnsw_and_ivf_can_be_forced(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    corpus = {d["name"]: d for d in docgen.load_corpus()["documents"]}
    for name in ("helpdesk_faq.html", "travel_policy.pdf"):
        docgen.write_document(docs, corpus[name])
    for kind in ("hnsw", "ivf"):
        config = KnowledgeBaseConfig(index_kind=kind)
        kb = KnowledgeBase.build(docs, tmp_path / kind, embedder=docgen.shared_embedder(), config=config)
        # IVF needs >= 256 vectors to train; the small corpus falls back to flat, and says so
        assert kb.last_report is not None and kb.last_report.index_kind == ("hnsw" if kind == "hnsw" else "flat")
        assert kb.search("guest wifi voucher validity", k=1)[0].source == "helpdesk_faq.html"
        (docs / "zz_extra.md").write_text("# Extra\n\nThe extra note mentions a turquoise umbrella.\n")
        try:
            kb.add(docs)  # HNSW cannot delete but can add in place
            assert kb.search("turquoise umbrella", k=1)[0].source == "zz_extra.md"
            (docs / "zz_extra.md").unlink()
            report = kb.add(docs)  # deletion: HNSW is rebuilt from the stored vectors
            assert report.removed == ["zz_extra.md"] and kb.stats()["chunks"] == report.total_chunks
        finally:
            (docs / "zz_extra.md").unlink(missing_ok=True)


def test_store_errors_are_clear(tmp_path: Path, kb: KnowledgeBase) -> None:
    with pytest.raises(StoreError, match="build one first"):
        KnowledgeBase.open(tmp_path / "missing")

    class OtherModel:
        model_id = "BAAI/bge-small-en-v1.5"
        dim = 384

    with pytest.raises(StoreError, match=f"indexed with embedding model '{DEFAULT_MODEL}'"):
        KnowledgeBase.open(kb.store_path, embedder=OtherModel())  # type: ignore[arg-type]


def test_cross_encoder_reranker_reorders(kb: KnowledgeBase) -> None:
    """A real CrossEncoder built from the shipped MiniLM weights (untrained head): the plumbing, not its quality."""
    reranker = CrossEncoderReranker(default_model_path(), max_length=128)
    hits = kb.search("telescope loan deposit", k=5, rerank=False)
    kb.reranker = reranker
    try:
        reranked = kb.search("telescope loan deposit", k=5)
    finally:
        kb.reranker = None
    expected = reranker.score("telescope loan deposit", [h.text for h in reranked])
    assert [h.score for h in reranked] == pytest.approx(expected, rel=1e-4)
    assert [h.score for h in reranked] == sorted((h.score for h in reranked), reverse=True)
    assert {h.chunk_id for h in reranked} <= {h.chunk_id for h in kb.search("telescope loan deposit", k=50)}
    assert hits


async def test_retrieval_tool(kb: KnowledgeBase) -> None:
    tool = RetrievalTool(kb)
    out = await tool.execute({"query": "How long are guest Wi-Fi vouchers valid?", "k": "2"})
    assert not out.is_error
    assert out.text.startswith("[helpdesk_faq.html]") and "12 hours" in out.text
    assert out.data[0]["citation"] == "[helpdesk_faq.html]" and len(out.data) == 2
    empty = await tool.execute({"query": "zzqx", "k": 1})
    assert empty.text in (NOTHING_FOUND,) or empty.data  # vector search always returns something
    bad = tool.validate_args
    with pytest.raises(ToolArgumentsError):
        bad({"k": 3})
    assert asyncio.iscoroutinefunction(tool.execute)
