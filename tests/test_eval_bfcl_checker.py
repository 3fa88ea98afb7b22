"""BFCL's AST rules as our checker applies them, on hand-made functions and answers: the answer scores 1, each kind
of mistake scores 0, and the variations BFCL accepts (int for float, spelling of strings, optional parameters
marked with "", any order in parallel categories) score 1."""

from __future__ import annotations

import pytest

from qwen_agent.eval.bfcl.checker import check_prediction, standardize_string
from qwen_agent.eval.bfcl.metrics import answer_calls, tool_metrics

AREA = {
    "name": "geometry.area",
    "description": "Area of a shape.",
    "parameters": {
        "type": "dict",
        "properties": {
            "shape": {"type": "string", "description": "circle or square"},
            "size": {"type": "float", "description": "radius or side"},
            "count": {"type": "integer", "description": "how many"},
            "exact": {"type": "boolean", "description": "no rounding"},
            "units": {"type": "array", "items": {"type": "string"}, "description": "units"},
            "options": {"type": "dict", "description": "extra", "properties": {"precision": {"type": "integer"}}},
            "points": {"type": "array", "items": {"type": "dict"}, "description": "vertices"},
        },
        "required": ["shape", "size"],
    },
}
WEATHER = {
    "name": "get_weather",
    "description": "Weather in a city.",
    "parameters": {"type": "dict", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
ANSWER = [{"geometry.area": {
    "shape": ["circle"], "size": [2.5], "count": [3, ""], "exact": [True, ""], "units": [["cm", "mm"], ""],
    "options": [{"precision": [2]}, ""], "points": [[{"x": [1], "y": [2]}], ""],
}}]
GOOD = {"shape": "circle", "size": 2.5, "count": 3, "exact": True, "units": ["cm", "mm"],
        "options": {"precision": 2}, "points": [{"x": 1, "y": 2}]}


def simple(args: dict, name: str = "geometry.area", category: str = "simple_python") -> bool:
    return check_prediction(category, [AREA], [{name: args}], ANSWER).valid


def test_the_answer_scores_1() -> None:
    assert simple(GOOD)
    assert simple({"shape": "circle", "size": 2.5})  # every optional parameter left out: "" allows it


@pytest.mark.parametrize("change, expected_type", [
    ({"size": "2.5"}, "type_error:simple"),          # a number written as a string
    ({"count": 3.0}, "type_error:simple"),           # a float where an integer is declared
    ({"count": True}, "type_error:simple"),          # a bool is not an integer here
    ({"exact": 1}, "type_error:simple"),             # nor an integer a bool
    ({"units": "cm, mm"}, "type_error:simple"),      # a list written as a string
    ({"options": "precision=2"}, "type_error:simple"),
])
def test_type_mistakes_score_0(change: dict, expected_type: str) -> None:
    result = check_prediction("simple_python", [AREA], [{"geometry.area": {**GOOD, **change}}], ANSWER)
    assert not result.valid
    assert result.error_type == expected_type


def test_list_elements_are_type_checked() -> None:
    answer = [{"geometry.area": {"shape": ["circle"], "size": [2.5], "units": [["cm", "mm"]]}}]
    args = {"shape": "circle", "size": 2.5, "units": ["cm", 3]}
    assert check_prediction("simple_python", [AREA], [{"geometry.area": args}], answer).error_type == \
        "type_error:nested"
    # With "" among the acceptable values BFCL's type check lets any list through; the value check still fails it.
    result = check_prediction("simple_python", [AREA], [{"geometry.area": {**GOOD, "units": ["cm", 3]}}], ANSWER)
    assert result.error_type == "value_error:list/tuple"


def test_an_integer_is_accepted_for_a_float() -> None:
    answer = [{"geometry.area": {"shape": ["circle"], "size": [3.0]}}]
    assert check_prediction("simple_python", [AREA], [{"geometry.area": {"shape": "circle", "size": 3}}], answer).valid


@pytest.mark.parametrize("change, expected_type", [
    ({"size": 2.0}, "value_error:others"),
    ({"count": 4}, "value_error:others"),
    ({"shape": "square"}, "value_error:string"),
    ({"units": ["mm", "cm"]}, "value_error:list/tuple"),   # order matters in a list
    ({"options": {"precision": 3}}, "value_error:dict_value"),
    ({"options": {"precision": 2, "mode": "x"}}, "value_error:dict_key"),
    # a key of a dict in a list left out (BFCL reports the last acceptable value it tried: "" has no dicts)
    ({"points": [{"x": 1}]}, "value_error:list_dict_count"),
    ({"points": [{"x": 1, "y": 2}, {"x": 1, "y": 2}]}, "value_error:list_dict_count"),
])
def test_wrong_values_score_0(change: dict, expected_type: str) -> None:
    result = check_prediction("simple_python", [AREA], [{"geometry.area": {**GOOD, **change}}], ANSWER)
    assert not result.valid
    assert result.error_type == expected_type


def test_strings_compare_without_case_spaces_and_punctuation() -> None:
    assert simple({**GOOD, "shape": "  Cir-cle. "})
    assert simple({**GOOD, "units": ["CM", "m_m"]})
    assert standardize_string("New York, NY") == "newyorkny"
    assert standardize_string("it's") == 'it"s'


def test_parameter_mistakes_score_0() -> None:
    assert check_prediction("simple_python", [AREA], [{"geometry.area": {"shape": "circle"}}],
                            ANSWER).error_type == "simple_function_checker:missing_required"
    assert check_prediction("simple_python", [AREA], [{"geometry.area": {**GOOD, "color": "red"}}],
                            ANSWER).error_type == "simple_function_checker:unexpected_param"
    assert check_prediction("simple_python", [AREA], [{"geometry.area_v2": GOOD}],
                            ANSWER).error_type == "simple_function_checker:wrong_func_name"


def test_the_optional_parameter_rule() -> None:
    # A parameter the answer lists without "" must be given, even when the function does not require it.
    answer = [{"geometry.area": {"shape": ["circle"], "size": [2.5], "count": [3]}}]
    result = check_prediction("simple_python", [AREA], [{"geometry.area": {"shape": "circle", "size": 2.5}}], answer)
    assert result.error_type == "simple_function_checker:missing_optional"
    # A parameter the function knows but the answer does not list may not be given.
    narrow = [{"geometry.area": {"shape": ["circle"], "size": [2.5]}}]
    result = check_prediction("simple_python", [AREA], [{"geometry.area": {"shape": "circle", "size": 2.5,
                                                                            "count": 3}}], narrow)
    assert result.error_type == "simple_function_checker:unexpected_param"


def test_a_variable_name_in_the_answer_accepts_its_own_type() -> None:
    # The answer holds a variable's name (a string) for an integer parameter: a string is then accepted as is.
    answer = [{"geometry.area": {"shape": ["circle"], "size": [2.5], "count": ["n_items"]}}]
    args = {"shape": "circle", "size": 2.5, "count": "n_items"}
    assert check_prediction("simple_python", [AREA], [{"geometry.area": args}], answer).valid
    assert not check_prediction("simple_python", [AREA], [{"geometry.area": {**args, "count": "m"}}], answer).valid


def test_call_counts() -> None:
    call = {"geometry.area": GOOD}
    assert check_prediction("simple_python", [AREA], [], ANSWER).error_type == "simple_function_checker:wrong_count"
    assert not check_prediction("simple_python", [AREA], [call, call], ANSWER).valid
    assert check_prediction("multiple", [WEATHER, AREA], [call], ANSWER).valid
    assert check_prediction("multiple", [WEATHER, AREA], [{"get_weather": {"city": "Paris"}}],
                            ANSWER).error_type == "simple_function_checker:wrong_func_name"


def test_parallel_calls_match_in_any_order() -> None:
    answer = [{"get_weather": {"city": ["Paris"]}}, {"get_weather": {"city": ["Rome"]}}]
    paris, rome = {"get_weather": {"city": "Paris"}}, {"get_weather": {"city": "Rome"}}
    assert check_prediction("parallel", [WEATHER], [rome, paris], answer).valid
    assert check_prediction("parallel", [WEATHER], [paris], answer).error_type == \
        "parallel_function_checker_no_order:wrong_count"
    assert check_prediction("parallel", [WEATHER], [paris, paris], answer).error_type == \
        "parallel_function_checker_no_order:cannot_find_match"
    mixed = answer + ANSWER
    assert check_prediction("parallel_multiple", [WEATHER, AREA], [{"geometry.area": GOOD}, rome, paris], mixed).valid


def test_relevance_categories_score_whether_a_call_was_made() -> None:
    call = [{"get_weather": {"city": "Paris"}}]
    assert check_prediction("irrelevance", [WEATHER], [], None).valid
    assert not check_prediction("irrelevance", [WEATHER], call, None).valid
    assert not check_prediction("live_irrelevance", [WEATHER], call, None).valid
    assert check_prediction("live_relevance", [WEATHER], call, None).valid
    assert not check_prediction("live_relevance", [WEATHER], [], None).valid


def test_tool_use_metrics() -> None:
    gold = [{"get_weather": {"city": ["Paris"], "unit": ["", "celsius"]}}]
    assert answer_calls(gold) == [{"get_weather": {"city": "Paris", "unit": "celsius"}}]
    right = tool_metrics("simple_python", [{"get_weather": {"city": "Paris", "unit": "celsius"}}], gold)
    assert right == {"tool_selection_acc": 1.0, "tool_input_rougeL": 1.0, "false_positive_acc": None}
    wrong_tool = tool_metrics("simple_python", [{"get_time": {"city": "Paris"}}], gold)
    assert wrong_tool["tool_selection_acc"] == 0.0
    assert 0.0 < wrong_tool["tool_input_rougeL"] < 1.0  # "city paris" shared, "unit celsius" missing
    nothing = tool_metrics("simple_python", [], gold)
    assert nothing["tool_selection_acc"] == 0.0 and nothing["tool_input_rougeL"] == 0.0
    assert tool_metrics("irrelevance", [], None)["false_positive_acc"] == 1.0
    assert tool_metrics("irrelevance", [{"get_weather": {}}], None)["false_positive_acc"] == 0.0
