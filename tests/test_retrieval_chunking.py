"""Chunking by tokens on paragraph/sentence boundaries with overlap, including Chinese text without spaces."""

from __future__ import annotations

import itertools

import pytest

from qwen_agent.retrieval.bm25 import tokenize
from qwen_agent.retrieval.chunking import ChunkingConfig, chunk_sections, count_tokens
from qwen_agent.retrieval.models import Section, make_citation

SENTENCES = [f"Sentence number {i} talks about topic {i} in some detail." for i in range(60)]


def test_chunks_respect_limit_and_sentence_boundaries() -> None:
    config = ChunkingConfig(max_tokens=50, overlap_tokens=20)  # one 14-token sentence fits
    chunks = chunk_sections([Section(text=" ".join(SENTENCES), page=4, heading="H")], config)
    assert len(chunks) > 5
    for chunk in chunks:
        assert chunk.n_tokens <= 50
        assert chunk.text.startswith("Sentence number") and chunk.text.endswith(".")
        assert (chunk.page, chunk.heading) == (4, "H")
    assert [c.position for c in chunks] == list(range(len(chunks)))
    # overlap: each chunk starts with the last sentence(s) of the previous one
    for prev, nxt in itertools.pairwise(chunks):
        assert nxt.text.split(". ")[0] in prev.text
    # nothing lost
    joined = " ".join(c.text for c in chunks)
    assert all(s in joined for s in SENTENCES)


def test_paragraphs_are_kept_whole_when_they_fit() -> None:
    text = "First paragraph is short.\n\nSecond paragraph is short too.\n\nThird one."
    (chunk,) = chunk_sections([Section(text=text)], ChunkingConfig(max_tokens=100, overlap_tokens=10))
    assert chunk.text == text


def test_chunks_never_cross_sections() -> None:
    sections = [Section(text="Alpha text here.", page=1), Section(text="Beta text here.", page=2)]
    chunks = chunk_sections(sections)
    assert [(c.page, c.text) for c in chunks] == [(1, "Alpha text here."), (2, "Beta text here.")]
    assert [c.position for c in chunks] == [0, 1]


def test_cjk_chunking_without_spaces() -> None:
    sentence = "检索增强生成先从文档库中找到相关段落，再让模型根据这些段落回答问题。"
    text = sentence * 30
    chunks = chunk_sections([Section(text=text)], ChunkingConfig(max_tokens=80, overlap_tokens=20))
    assert len(chunks) >= 8
    for chunk in chunks:
        assert chunk.n_tokens <= 80
        assert " " not in chunk.text  # no spaces are invented between Chinese characters
        assert chunk.text.endswith("。")
    assert count_tokens(sentence) == len(sentence)  # one token per CJK character or punctuation mark


def test_cjk_run_without_punctuation_is_windowed() -> None:
    text = "数据" * 200
    chunks = chunk_sections([Section(text=text)], ChunkingConfig(max_tokens=64, overlap_tokens=0))
    assert all(c.n_tokens <= 64 for c in chunks)
    assert "".join(c.text for c in chunks) == text


def test_custom_token_counter_is_used() -> None:
    words = " ".join(["word"] * 100)
    chunks = chunk_sections([Section(text=words)], ChunkingConfig(max_tokens=20, overlap_tokens=0), count=len)
    # the counter (characters here) decides: 5 four-letter words per chunk
    assert len(chunks) == 20 and all(c.text == "word word word word word" for c in chunks)


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        ChunkingConfig(max_tokens=50, overlap_tokens=50)


def test_bm25_tokenizer_english_and_chinese() -> None:
    assert tokenize("The kettles are boiling quickly") == ["kettl", "boil", "quick"]
    terms = tokenize("云间茶馆每周二休息 on Tuesdays")
    assert "茶馆" in terms and "休息" in terms and "tuesday" in terms


def test_citations() -> None:
    assert make_citation("docs/doc.pdf", page=3) == "[doc.pdf p.3]"
    assert make_citation("deck.pptx", page=2) == "[deck.pptx slide 2]"
    assert make_citation("t.xlsx", sheet="Q1") == "[t.xlsx sheet Q1]"
    assert make_citation("a/notes.md") == "[notes.md]"
