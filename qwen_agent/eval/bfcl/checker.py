"""BFCL's AST checker for Python function calls, re-implemented rule for rule (bfcl-eval ``ast_checker.py``,
Apache-2.0), so scoring needs no second environment; `reference` runs bfcl-eval's own checker to show they agree.

A prediction is a list of calls ``[{name: {param: value}}]``. The rules: the right number of calls; the expected
function name; every required parameter present, no parameter the function or the answer does not know; each value
of the declared type — exactly (``True`` is not an integer), except that an integer is accepted for a float, and a
value of the answer's own type is accepted when the answer holds a variable name instead of a literal; strings
compared after dropping spaces and ``,./-_*^`` and case; lists, dicts and lists of dicts compared element-wise
the same way; and every parameter the answer lists must be given unless ``""`` is among its acceptable values
(the optional-parameter rule). Parallel categories match calls to answers in any order.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

__all__ = ["CheckResult", "check_prediction", "standardize_string"]

Call = dict[str, dict[str, Any]]

PYTHON_TYPES: dict[str, type] = {"string": str, "integer": int, "float": float, "boolean": bool, "array": list,
                                 "tuple": list, "dict": dict, "any": str}
_NESTED = ("array", "tuple")


class CheckResult(BaseModel):
    valid: bool
    error: str | None = None
    error_type: str | None = None


_OK = CheckResult(valid=True)


def _fail(error_type: str, error: str) -> CheckResult:
    return CheckResult(valid=False, error=error, error_type=error_type)


def check_prediction(category: str, functions: list[dict[str, Any]], calls: list[Call],
                     ground_truth: list[Call] | None) -> CheckResult:
    """Score one prediction as BFCL does for ``category``."""
    if "relevance" in category:  # irrelevance, live_irrelevance, live_relevance
        made = bool(calls) and not (len(calls) == 1 and not calls[0])
        if "irrelevance" in category:
            return _fail("irrelevance_error:decoder_success", "a function was called although none fits") \
                if made else _OK
        return _OK if made else _fail("relevance_error:decoder_failed", "no function was called")
    assert ground_truth is not None, f"{category} needs possible answers"
    if "parallel" in category:
        return _parallel_no_order(functions, calls, ground_truth)
    if "multiple" in category:
        if len(calls) != len(ground_truth):
            return _fail("multiple_function_checker:wrong_count", "Wrong number of functions.")
        return _simple(_find(functions, next(iter(ground_truth[0]))), calls[0], ground_truth[0])
    if len(calls) != 1:
        return _fail("simple_function_checker:wrong_count", "Wrong number of functions.")
    return _simple(functions[0], calls[0], ground_truth[0])


def _find(functions: list[dict[str, Any]], name: str) -> dict[str, Any]:
    for fn in functions:
        if fn["name"] == name:
            return fn
    raise KeyError(f"the possible answer names {name!r}, which is not among the functions")


def _parallel_no_order(functions: list[dict[str, Any]], calls: list[Call], answers: list[Call]) -> CheckResult:
    if len(calls) != len(answers):
        return _fail("parallel_function_checker_no_order:wrong_count", "Wrong number of functions.")
    matched: list[int] = []
    for i, answer in enumerate(answers):
        fn = _find(functions, next(iter(answer)))
        result = _OK
        errors = []
        for index, call in enumerate(calls):
            if index in matched:
                continue
            result = _simple(fn, call, answer)
            if result.valid:
                matched.append(index)
                break
            errors.append(f"call {index}: {result.error}")
        if not result.valid:
            return _fail("parallel_function_checker_no_order:cannot_find_match",
                         f"no call matches answer {i} ({next(iter(answer))}): " + "; ".join(errors))
    return _OK


def _simple(fn: dict[str, Any], call: Call, answer: Call) -> CheckResult:
    expected = next(iter(answer.values()))
    name = fn["name"]
    props = fn["parameters"]["properties"]
    if name not in call:
        return _fail("simple_function_checker:wrong_func_name", f"Function name {name!r} not found in model output.")
    given = call[name]
    for param in fn["parameters"].get("required", []):
        if param not in given:
            return _fail("simple_function_checker:missing_required", f"Missing required parameter: {param!r}.")
    for param, value in given.items():
        if param not in props or param not in expected:
            return _fail("simple_function_checker:unexpected_param", f"Unexpected parameter: {param!r}.")
        declared = props[param]["type"]
        python_type = PYTHON_TYPES[declared]
        nested = PYTHON_TYPES[props[param]["items"]["type"]] if declared in _NESTED else None
        if declared == "tuple" and type(value) is tuple:
            value = list(value)
        if declared == "float" and type(value) is int:
            value = float(value)  # an integer is fine where a float is asked for
        typed = _type_check(param, value, expected[param], declared, python_type, nested)
        if not typed.valid:
            return typed.result
        if not typed.is_variable:
            if python_type is dict:
                result = _dict_check(param, value, expected[param])
            elif python_type is list and nested is dict:
                result = _list_of_dicts_check(param, value, expected[param])
            elif python_type is str:
                result = _string_check(param, value, expected[param])
            elif python_type is list:
                result = _list_check(param, value, expected[param])
            else:
                result = None
            if result is not None:
                if not result.valid:
                    return result
                continue
        if value not in expected[param]:
            return _fail("value_error:others",
                         f"Invalid value for parameter {param!r}: {value!r}. Expected one of {expected[param]}.")
    for param, values in expected.items():
        if param not in given and "" not in values:
            return _fail("simple_function_checker:missing_optional",
                         f"Optional parameter {param!r} not provided and not marked as optional.")
    return _OK


class _Typed:
    def __init__(self, valid: bool, is_variable: bool = False, result: CheckResult = _OK) -> None:
        self.valid, self.is_variable, self.result = valid, is_variable, result


def _answer_type(values: list[Any]) -> type | None:
    for v in values:
        if v != "":
            return type(v)
    return None


def _type_check(param: str, value: Any, values: Any, declared: str, python_type: type,
                nested: type | None) -> _Typed:
    """BFCL's ``type_checker``: the declared type, one level of nesting, and the variable-name exception."""
    answer_type = _answer_type(values)
    # An answer whose type differs from the declared one holds a variable name, not a literal.
    is_variable = answer_type is not None and answer_type != python_type
    if type(value) is python_type:
        if nested is None:
            return _Typed(True, is_variable)
        for option in values:
            fits = True
            if type(option) is list:
                elements: Any = value  # a list here: its type is python_type (list), narrowed to object by mypy
                for element in elements:
                    if not _type_check(param, element, option, str(nested), nested, None).valid:
                        fits = False
                        break
            if fits:
                return _Typed(True, is_variable)
        # No acceptable value fits element by element: wrong, whatever the answer's type.
        message = (f"Nested type checking failed for parameter {param!r}. Expected outer type {declared} with inner "
                   f"type {nested}. Parameter value: {value!r}.")
        return _Typed(False, result=_fail("type_error:nested", message))
    if answer_type is not None and type(value) is answer_type:
        return _Typed(True, True)
    return _Typed(False, result=_fail("type_error:simple", f"Incorrect type for parameter {param!r}. Expected type "
                                      f"{declared}, got {type(value).__name__}. Parameter value: {value!r}."))


def standardize_string(text: str) -> str:
    """BFCL's string normalisation: drop spaces and ``,./-_*^``, lower-case, single quotes as double quotes."""
    return re.sub(r"[ \,\.\/\-\_\*\^]", "", text).lower().replace("'", '"')


def _std(value: Any) -> Any:
    return standardize_string(value) if type(value) is str else value


def _string_check(param: str, value: str, values: list[Any]) -> CheckResult:
    if standardize_string(value) not in [standardize_string(v) for v in values if type(v) is str]:
        return _fail("value_error:string", f"Invalid value for parameter {param!r}: {value!r}. Expected one of "
                                           f"{values}. Case insensitive.")
    return _OK


def _list_check(param: str, value: list[Any], values: list[Any]) -> CheckResult:
    given = [_std(v) for v in value]
    # As in BFCL, each acceptable value is iterated element by element ("" becomes the empty list).
    options = [[_std(v) for v in option] for option in values]
    if given not in options:
        return _fail("value_error:list/tuple",
                     f"Invalid value for parameter {param!r}: {value!r}. Expected one of {values}.")
    return _OK


def _dict_check(param: str, value: dict[str, Any], values: list[Any]) -> CheckResult:
    result = _fail("dict_checker:unclear", f"no acceptable value for {param!r}")
    for option in values:
        if option == "":
            continue
        result = _fail("dict_checker:unclear", f"no acceptable value for {param!r}")
        fits = True
        for key, v in value.items():
            if key not in option:
                result, fits = _fail("value_error:dict_key", f"Unexpected dict key parameter: '{key}'."), False
                break
            if _std(v) not in [_std(o) for o in option[key]]:
                result = _fail("value_error:dict_value", f"Invalid value for parameter {key!r}: {v!r}. "
                                                         f"Expected one of {option[key]}.")
                fits = False
                break
        for key, acceptable in option.items():
            if key not in value and "" not in acceptable:
                result, fits = _fail("value_error:dict_key", f"Missing dict key parameter: '{key}'."), False
                break
        if fits:
            return _OK
    return result


def _list_of_dicts_check(param: str, value: list[Any], values: list[Any]) -> CheckResult:
    result = _fail("list_dict_checker:unclear", f"no acceptable value for {param!r}")
    for option in values:
        if len(value) != len(option):
            result = _fail("value_error:list_dict_count", "Wrong number of dictionaries in the list.")
            continue
        fits = True
        for i, element in enumerate(value):
            result = _dict_check(param, element, [option[i]])
            if not result.valid:
                fits = False
                break
        if fits:
            return _OK
    return result
