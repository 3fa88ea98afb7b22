"""Grounded answers: an answer whose names or numbers are not in the passage sentence that answers the question is
not returned as fact (the wrong person from the right passage, an invented year); the right answer is, and the
`Assistant` streams exactly the text it returns."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from qwen_agent.agents import Assistant, TextDelta
from qwen_agent.agents.grounding import check_answer, grounded_answer, is_refusal, key_terms
from qwen_agent.llm.backends.openai_compat import OpenAICompatible
from qwen_agent.retrieval import Hit, KnowledgeBase
from qwen_agent.testing import ScriptedReply, ScriptedServer

DATA = json.loads((Path(__file__).parents[1] / "benchmarks" / "data" / "grounded_qa.json").read_text("utf-8"))
HITS = [Hit(text=text, source=name, path=f"/docs/{name}", citation=f"[{name}]")
        for name, text in DATA["documents"].items()]
QUAY = "Who built the eastern quay of the Port of Velmora?"


def ranked(source: str) -> list[Hit]:
    """The documents as retrieval would give them for a question on ``source``: that one first."""
    return sorted(HITS, key=lambda h: h.source != source)


@pytest.mark.parametrize("item", DATA["entity"], ids=lambda item: item["q"])
def test_every_gold_answer_of_the_set_is_supported(item: dict[str, object]) -> None:
    needles = item["needles"]
    assert isinstance(needles, list)
    for answer in (needles[0], f"It was {needles[0]} [{item['source']}].", f"{needles[0]} did."):
        found = check_answer(answer, str(item["q"]), ranked(str(item["source"])))
        assert found.supported, (answer, found)


@pytest.mark.parametrize(("question", "source", "wrong"), [
    (QUAY, "port_of_velmora.md", "Ilse Vandermeer."),  # the harbour master of the same passage: the failure
    (QUAY, "port_of_velmora.md", "It was built by Helena Storm [port_of_velmora.md]."),  # the lighthouse's architect
    ("Who kept the diary of the Teller Glacier Expedition?", "teller_glacier_expedition.md", "Mateo Ruiz took it."),
    ("Who started the Orrin library's travelling book van?", "orrin_library.md", "Lars Orrin"),  # "Orrin" is asked
    ("In what year was Ilse Vandermeer born?", "port_of_velmora.md", "She was born in 1851."),  # a year, misused
    ("How many seats does the Lantern concert hall have?", "amberley_music_festival.md", "It has 1,200 seats."),
])
def test_a_name_or_number_outside_the_answering_clause_is_not_supported(question: str, source: str,
                                                                        wrong: str) -> None:
    found = check_answer(wrong, question, ranked(source))
    assert not found.supported and found.unsupported, found
    assert found.sentence is not None and found.citation is not None


def test_the_unsupported_answer_becomes_the_documents_own_sentence_with_its_source() -> None:
    text = grounded_answer("Ilse Vandermeer. [port_of_velmora.md]", QUAY, ranked("port_of_velmora.md"))
    assert "Ilse" not in text and is_refusal(text)
    assert "was built by the engineer Tomas Brandt between 1874 and 1879" in text
    assert text.endswith("[port_of_velmora.md]")
    assert grounded_answer("Tomas Brandt built it.", QUAY, HITS) == "Tomas Brandt built it."


def test_a_record_answers_with_all_its_fields() -> None:
    stock = Hit(text="sku: WX-1003; item: copper watering can; aisle: A7; quantity: 96; supplier: Halloway Metalworks\n"
                     "sku: WX-1004; item: solar pond pump; aisle: C2; quantity: 8; supplier: Brightwater Pumps",
                source="stock.csv", path="/stock.csv", citation="[stock.csv]")
    assert check_answer("In aisle A7.", "In which aisle are the copper watering cans stored?", [stock]).supported
    assert not check_answer("In aisle C2.", "In which aisle are the copper watering cans stored?", [stock]).supported


def test_a_wrong_name_from_a_clause_nearly_as_good_passes_a_known_limit() -> None:
    # "It was designed by Clara Hesketh, and the contractor Bowden & Rye built it": both clauses are about the bridge
    # and score within ACCEPT_RATIO of each other, so the lexical check cannot tell the roles apart.
    assert check_answer("Clara Hesketh", "Which contractor built the Marrow River Bridge?",
                        ranked("marrow_river_bridge.md")).supported


def test_what_cannot_be_checked_passes() -> None:
    assert check_answer("yes, it was rebuilt after a storm", QUAY, HITS).supported  # no name, no number
    assert check_answer("I do not know; the documents do not say.", QUAY, HITS).supported  # a refusal
    assert check_answer("Tomas Brandt", "What is the capital of Peru?", HITS).supported  # no clause shares a word
    assert key_terms("The Port of Velmora's quay [port_of_velmora.md]", QUAY) == []  # all from the question


def test_key_terms_are_names_and_numbers_the_question_lacks() -> None:
    assert key_terms("According to the passage, Clare Abbott ran it from 1968 to 1988.",
                     "Who ran the piano school of the Amberley Music Festival in 1968?") == ["1988", "Clare Abbott"]
    assert key_terms("It has 4,200 books.", "How many books?") == ["4200"]


def test_a_pdf_line_break_does_not_cut_the_answering_sentence() -> None:
    kettle = Hit(text="Five presets are printed on the handle.\nGreen tea tastes best at the\n80 degree setting, "
                      "while the 90 degree setting suits oolong.", source="k.pdf", path="/k.pdf",
                 citation="[k.pdf p.2]")
    assert check_answer("Use 80 degrees.", "Which temperature setting should I use for green tea?", [kettle]).supported


@pytest.fixture(scope="module")
def velmora(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnowledgeBase]:
    sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
    import retrieval_docgen as docgen

    docs = tmp_path_factory.mktemp("grounded") / "docs"
    docs.mkdir()
    for name, text in DATA["documents"].items():
        (docs / name).write_text(text, encoding="utf-8")
    kb = KnowledgeBase.build(docs, tmp_path_factory.mktemp("store"), embedder=docgen.shared_embedder())
    yield kb
    kb.close()


@pytest.mark.parametrize(("reply", "grounding", "expected"), [
    ("Ilse Vandermeer.", "check", "was built by the engineer Tomas Brandt"),  # replaced by the passage's sentence
    ("Ilse Vandermeer.", "off", "Ilse Vandermeer."),  # unchecked: as written (too terse to cite)
    ("Tomas Brandt built it.", "check", "Tomas Brandt built it. [port_of_velmora.md]"),  # supported, cited
])
def test_the_assistant_streams_exactly_what_it_returns(velmora: KnowledgeBase, reply: str, grounding: str,
                                                       expected: str) -> None:
    with ScriptedServer(models=["qwen-test"]) as server:
        server.script(ScriptedReply.text(reply, chunk_size=3))
        assistant = Assistant(OpenAICompatible(server.base_url, model="qwen-test", max_retries=0), knowledge=velmora,
                              grounding=grounding)  # type: ignore[arg-type]
        events = list(assistant.stream(QUAY))
    result = events[-1].result
    assert expected in result.answer
    assert "".join(e.content for e in events if isinstance(e, TextDelta)) == result.answer
    assert result.messages[-1].text == result.answer
    if grounding == "check" and reply.startswith("Ilse"):
        assert "Ilse" not in result.answer and is_refusal(result.answer)
        assert len([e for e in events if isinstance(e, TextDelta)]) == 1  # held back, then sent once


def test_a_name_from_the_section_title_is_backed_but_a_number_is_not() -> None:
    kettle = Hit(text="Zephyr K2 Electric Kettle - Overview\nThe Zephyr K2 is a 1.7 litre kettle. Its 2200 watt "
                      "heating element brings one litre of water to a boil in about 94 seconds.", source="z.pdf",
                 path="/z.pdf", citation="[z.pdf p.1]")
    question = "How long does the Zephyr kettle take to boil a litre of water?"
    assert check_answer("The Zephyr K2 takes about 94 seconds.", question, [kettle]).supported
    found = check_answer("The Zephyr K2 takes about 1.7 minutes.", question, [kettle])  # 1.7 is the litres
    assert not found.supported and found.unsupported == ["1.7"]
