"""The rag (RGB), code and plan scorers on hand-made cases: right answers score 1, each kind of mistake 0; RGB's
document selection; the plan matcher with the real embedding model; the math items' answers are what they claim."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qwen_agent.eval import EvalDataError
from qwen_agent.eval.code import CodeItem, CodeSuite, extract_number, numbers_match
from qwen_agent.eval.datafiles import load_records
from qwen_agent.eval.plan import Action, PlanSuite, match_plans, read_plan
from qwen_agent.eval.rag import RgbItem, RgbSuite, check_answer, select_documents

FIXTURES = Path(__file__).parent / "fixtures" / "eval"
MATH = Path(__file__).parent.parent / "benchmarks" / "data" / "code_math.jsonl"


# ---- RGB ------------------------------------------------------------------------------------------------------
def test_rgb_answer_check() -> None:
    assert check_answer("It was held in Tallinn.", [["Tallinn", "Tallin"]]) == [1]
    assert check_answer("It was held in Riga.", [["Tallinn"]]) == [0]
    assert check_answer("TALLINN", "tallinn") == [1]  # case-insensitive, a plain string answer
    # integration: every part must be there
    assert check_answer("Ines Halvorsen, in 2031", [["Ines Halvorsen"], ["2031"]]) == [1, 1]
    assert check_answer("Ines Halvorsen made it", [["Ines Halvorsen"], ["2031"]]) == [1, 0]


def item(**kw) -> RgbItem:
    base = {"id": 0, "query": "q", "answer": [["a"]], "positive": ["p1", "p2", "p3"], "negative": ["n1", "n2", "n3"]}
    return RgbItem.model_validate({**base, **kw})


def test_rgb_document_selection_follows_its_settings() -> None:
    docs = select_documents(item(), "plain", 0.4, 5, 0.0)
    assert sorted(docs) == ["n1", "n2", "p1", "p2", "p3"]  # ceil(5 * 0.4) = 2 noise documents
    assert docs == select_documents(item(), "plain", 0.4, 5, 0.0)  # seeded: the same order every time
    assert sorted(select_documents(item(), "plain", 1.0, 3, 0.0)) == ["n1", "n2", "n3"]  # rejection: noise only
    assert sorted(select_documents(item(), "plain", 0.0, 5, 0.0)) == ["n1", "n2", "p1", "p2", "p3"]  # 3 positives
    groups = item(positive=[["a1", "a2"], ["b1"]])
    assert sorted(select_documents(groups, "int", 0.0, 3, 0.0)) == ["a1", "a2", "b1"]
    fact = item(positive_wrong=["w1", "w2", "w3"])
    chosen = select_documents(fact, "fact", 0.2, 5, 0.0)
    assert sorted(chosen) == ["n1", "w1", "w2", "w3"]  # counterfactual versions plus noise


def test_rgb_files_load_with_their_variant_and_category() -> None:
    assert RgbSuite(FIXTURES / "rgb_en.json").category == "noise_robustness"
    assert RgbSuite(FIXTURES / "rgb_en.json", noise_rate=1.0).category == "negative_rejection"
    assert RgbSuite(FIXTURES / "rgb_en_int.json").category == "information_integration"
    fact = RgbSuite(FIXTURES / "rgb_en_fact.json")
    assert fact.category == "counterfactual_robustness"
    items = fact.items(None)
    wrong = json.loads((FIXTURES / "rgb_en_fact.json").read_text().splitlines()[0])["positive_wrong"]
    assert sorted(items[0].input["documents"]) == sorted(wrong)  # only the counterfactual documents
    assert len(RgbSuite(FIXTURES / "rgb_en.json").items(2)) == 2


def test_rgb_bad_items_name_their_line(tmp_path: Path) -> None:
    bad = tmp_path / "en_fact.json"
    bad.write_text(json.dumps({"id": 1, "query": "q", "answer": ["a"], "positive": ["p"]}) + "\n")
    with pytest.raises(EvalDataError, match=r"en_fact.json:1: a _fact item needs 'positive_wrong'"):
        RgbSuite(bad).items(None)
    bad.write_text(json.dumps({"id": 1, "answer": ["a"], "positive": ["p"]}) + "\n")
    with pytest.raises(EvalDataError, match=r"en_fact.json:1: query: Field required"):
        RgbSuite(bad).items(None)


# ---- code -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, number", [
    ("There are 61 muffins left. Answer: 61", 61.0),
    ("Answer: $1,234.50 in total", 1234.5),
    ("After 3 days the total is 50430.", 50430.0),
    ("The result is -4.", -4.0),
    ("I cannot solve this.", None),
])
def test_the_answer_number_is_read(text: str, number: float | None) -> None:
    assert extract_number(text) == number


def test_numbers_match_exactly_up_to_rounding_noise() -> None:
    assert numbers_match(50430.000000001, 50430)
    assert not numbers_match(50431, 50430)
    assert not numbers_match(None, 1)
    assert numbers_match(12.06, 12.06)


def test_the_math_items_answers_are_what_their_solutions_compute() -> None:
    items = [i for _, i in load_records(MATH, CodeItem)]
    assert len(items) == 50 and len({i.id for i in items}) == 50
    for i in items:
        assert i.solution is not None
        assert numbers_match(eval(i.solution, {}), i.answer), i.id


def test_code_items_check_their_files(tmp_path: Path) -> None:
    data = tmp_path / "items.jsonl"
    data.write_text('{"id": "c", "question": "plot it", "figure": true, "files": ["nowhere.csv"]}\n')
    with pytest.raises(EvalDataError, match=r"items.jsonl:1: file 'nowhere.csv' not found"):
        CodeSuite(data).items(None)
    assert [i.category for i in CodeSuite(FIXTURES / "code_items.jsonl").items(None)] == ["math"] * 4 + \
        ["visualization"]


# ---- plan -----------------------------------------------------------------------------------------------------
def test_plans_are_read_from_replies() -> None:
    text = ('Here is the plan:\n```json\n[{"id": 0, "name": "Maps.get_distance", "args": "{\'origin\': \'Berlin\'}"},'
            ' {"id": 1, "name": "FinishAction", "args": "{}"}]\n```')
    assert read_plan(text) == [Action(id=0, name="Maps.get_distance", args="{'origin': 'Berlin'}"),
                               Action(id=1, name="FinishAction", args="{}")]
    assert read_plan([{"id": 0, "name": "A", "args": {"x": 1}}]) == [Action(id=0, name="A", args="{'x': 1}")]
    assert read_plan("I would first check the weather.") == []
    assert read_plan('[{"name": "A"}]') == []  # no id, no args: not a plan


@pytest.fixture(scope="module")
def embed():
    import numpy as np

    from qwen_agent.retrieval import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder("all-MiniLM-L6-v2")  # the plan suite's own scorer model
    return lambda texts: np.asarray(embedder.embed_documents(texts))


def test_plan_matching(embed) -> None:
    gold = read_plan([{"id": 0, "name": "WeatherTool.get_forecast", "args": {"city": "Lyon", "days": 3}},
                      {"id": 1, "name": "Email.send", "args": {"to": "tom@example.com", "subject": "Lyon weather"}},
                      {"id": 2, "name": "FinishAction", "args": {}}])
    assert match_plans(gold, gold, embed) == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    swapped = [Action(id=0, name=gold[1].name, args=gold[1].args), Action(id=1, name=gold[0].name, args=gold[0].args)]
    order = match_plans(swapped, gold, embed)
    assert order["precision"] == 0.5 and order["recall"] == 0.5  # both matched, only one in order
    half = match_plans(gold[:1], gold, embed)
    assert half["precision"] == 1.0 and half["recall"] == 0.5
    wrong = [Action(id=0, name="Calendar.add_event", args="{'title': 'Dentist', 'date': '2031-02-11'}")]
    assert match_plans(wrong, gold, embed)["f1"] == 0.0  # nothing matches: nothing counts
    assert match_plans([], gold, embed)["f1"] == 0.0


def test_plan_files_load_as_t_eval_publishes_them(tmp_path: Path) -> None:
    items = PlanSuite(FIXTURES / "teval_plan.json").items(None)
    assert [i.id for i in items] == [f"plan_{n}" for n in range(1, 6)]
    assert items[0].input["messages"][0]["role"] == "system"
    bad = tmp_path / "plan.json"
    bad.write_text(json.dumps({"q1": {"origin_prompt": [{"role": "user", "content": "x"}],
                                      "ground_truth": [{"name": "A"}]}}))
    with pytest.raises(EvalDataError, match=r"plan.json\['q1'\]: 'ground_truth' is not a list of actions"):
        PlanSuite(bad).items(None)
