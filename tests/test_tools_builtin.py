"""Built-in tools: the safe calculator, current_time, and the lazy name -> factory registry."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from qwen_agent.messages import ToolCall
from qwen_agent.tools import Tool, Toolbox, ToolDefinitionError, UnknownToolError
from qwen_agent.tools.builtin import BUILTIN_TOOLS, builtin_names, get_builtin, register_builtin
from qwen_agent.tools.builtin.calculator import evaluate


@pytest.fixture(scope="module")
def box() -> Toolbox:
    return Toolbox(["calculator", "current_time"])


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(3 + 4) * sqrt(16) / 2", 14.0),
        ("2^10", 1024),
        ("2**10", 1024),
        ("0.1 + 0.2", 0.3),
        ("7 // 2 + 7 % 2", 4),
        ("-2**2", -4),
        ("max(1, 5, 3) + abs(-2)", 7),
        ("round(pi, 3)", 3.142),
        ("factorial(10)", 3628800),
        ("log(e)", 1.0),
        ("12 × 3 ÷ 4", 9.0),
    ],
)
def test_calculator_arithmetic(expression: str, expected: float) -> None:
    assert evaluate(expression) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os')", "not allowed"),
        ("__import__('os').system('true')", "not allowed"),
        ("(1).__class__", "not allowed: Sorry, Attribute"),
        ("pi.real", "not allowed: Sorry, Attribute"),
        ("open('/etc/passwd')", "not allowed: Function 'open' not defined"),
        ("x + 1", "not allowed: 'x' is not defined"),
        ("'a' * 10", "only numbers are allowed"),
        ("[1, 2][0]", "not allowed"),
        ("9 ** 9 ** 9", "too large"),
        ("10 ** 5000", "result too large"),
        ("2 ^ 20000", "result too large"),
        ("10**3000 * 10**3000", "result too large"),
        ("factorial(100000)", "argument too large"),
        ("(-8) ** (1/3)", "complex"),
        ("1 +", "invalid syntax"),
        ("1+" * 600 + "1", "longer than 1000"),
    ],
)
def test_calculator_rejects_unsafe_or_huge_expressions(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("*", r"\*")):
        evaluate(expression)


async def test_calculator_through_toolbox(box: Toolbox) -> None:
    ok = await box.execute(ToolCall.make("calculator", {"expression": "23 * 19"}))
    assert (ok.is_error, ok.text, ok.data) == (False, "437", 437)
    bad = await box.execute(ToolCall.make("calculator", {"expression": "__import__('os')"}))
    assert bad.is_error and bad.text.startswith("calculator raised ValueError: not allowed")
    assert "sqrt" in bad.text  # the message tells the model what it may use
    zero = await box.execute(ToolCall.make("calculator", {"expression": "1/0"}))
    assert zero.text == "calculator raised ZeroDivisionError: division by zero"
    schema = box.get("calculator").schema()
    assert schema.parameters["required"] == ["expression"]
    assert "expression" in schema.parameters["properties"]["expression"]["description"].lower()


async def test_current_time(box: Toolbox) -> None:
    out = await box.execute(ToolCall.make("current_time", {"timezone": "Asia/Tokyo"}))
    assert not out.is_error
    assert out.data["timezone"] == "Asia/Tokyo"
    when = dt.datetime.fromisoformat(out.data["datetime"])
    assert when.utcoffset() == dt.timedelta(hours=9)
    assert abs(when.timestamp() - dt.datetime.now(dt.UTC).timestamp()) < 5
    assert out.data["weekday"] == when.strftime("%A")
    utc = await box.execute(ToolCall.make("current_time", {"timezone": "utc"}))
    assert utc.data["timezone"] == "UTC" and utc.data["datetime"].endswith("+00:00")
    local = await box.execute(ToolCall.make("current_time", {}))
    assert not local.is_error and dt.datetime.fromisoformat(local.data["datetime"]).tzinfo is not None
    bad = await box.execute(ToolCall.make("current_time", {"timezone": "Mars/Olympus"}))
    assert bad.is_error and "unknown timezone 'Mars/Olympus'" in bad.text and "Europe/Paris" in bad.text


def test_builtin_registry_is_lazy_and_extensible(monkeypatch: pytest.MonkeyPatch) -> None:
    from qwen_agent.tools import builtin

    monkeypatch.setattr(builtin, "_FACTORIES", dict(builtin._FACTORIES))  # registrations stay in this test
    assert {"calculator", "current_time"} <= set(BUILTIN_TOOLS)
    assert "calculator" in builtin_names()
    assert isinstance(get_builtin("calculator"), Tool)
    with pytest.raises(UnknownToolError, match="Unknown tool 'nope'"):
        get_builtin("nope")
    register_builtin("test_clock_alias", "qwen_agent.tools.builtin.clock:make_current_time")
    assert get_builtin("test_clock_alias").name == "current_time"
    with pytest.raises(ToolDefinitionError, match="already registered"):
        register_builtin("test_clock_alias", "qwen_agent.tools.builtin.calculator:make_calculator")
    register_builtin("test_missing", "qwen_agent.tools.no_such_module:factory")
    with pytest.raises(ToolDefinitionError, match="could not be loaded"):
        get_builtin("test_missing")


def test_importing_tools_stays_cheap() -> None:
    code = (
        "import sys, qwen_agent.tools; "
        "heavy = [m for m in ('simpleeval', 'qwen_agent.tools.builtin', 'httpx', 'numpy', 'qwen_agent.agents') "
        "if m in sys.modules]; print(heavy)"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert done.stdout.strip() == "[]"
