"""Our BFCL checker agrees with bfcl-eval's own, case for case: the possible answers of the first items of every
category and one-change variations of them (wrong types, left-out and extra parameters, other names, counts and
orders, and the spellings BFCL accepts), run through bfcl-eval's checker in its private venv."""

from __future__ import annotations

import pytest

from qwen_agent.eval.bfcl import CATEGORIES, load_category
from qwen_agent.eval.bfcl.agreement import compare_with_reference, variation_cases
from qwen_agent.eval.bfcl.reference import ReferenceCase, reference_check

pytestmark = pytest.mark.bfcl_reference


def test_our_checker_agrees_with_bfcl_eval_on_every_case() -> None:
    cases = [c for category in CATEGORIES for c in variation_cases(load_category(category)[:12])]
    report = compare_with_reference(cases)
    assert report.n >= 500
    assert 0.2 * report.n < report.reference_valid < 0.8 * report.n  # both verdicts are well represented
    assert {source.split(":")[1] for source in report.by_source} >= {
        "answer", "no_call", "wrong_name", "extra_param", "param_left_out", "int_as_string", "int_as_float",
        "float_param_as_int", "string_case_and_punctuation", "reversed_order", "a_call"}
    assert report.disagreements == [], report.disagreements[:5]
    assert report.agree == report.n


def test_the_reference_checker_reads_the_cases_we_send() -> None:
    fn = {"name": "get_weather", "description": "", "parameters": {
        "type": "dict", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
    answer = [{"get_weather": {"city": ["Paris"]}}]
    verdicts = reference_check([
        ReferenceCase(category="simple_python", functions=[fn], calls=[{"get_weather": {"city": "paris"}}],
                      ground_truth=answer),
        ReferenceCase(category="simple_python", functions=[fn], calls=[{"get_weather": {"city": 3}}],
                      ground_truth=answer),
        ReferenceCase(category="irrelevance", functions=[fn], calls=[]),
    ])
    assert [v.valid for v in verdicts] == [True, False, True]
    assert verdicts[1].error_type == "type_error:simple"
