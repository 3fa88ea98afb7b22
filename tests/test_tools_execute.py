"""Toolbox dispatch: every tool-side failure becomes a readable observation; calls run concurrently, in order."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from pydantic import BaseModel, Field

from qwen_agent.messages import ToolCall
from qwen_agent.tools import (
    DuplicateToolError,
    SandboxError,
    Tool,
    ToolArgumentsError,
    Toolbox,
    ToolExecutionError,
    ToolOutput,
    ToolTimeoutError,
    UnknownToolError,
    tool,
)


@tool
def add(a: int, b: int = 2) -> int:
    """Add two integers."""
    return a + b


@tool
def divide(a: float, b: float) -> float:
    """Divide a by b."""
    return a / b


@tool(timeout=0.2)
async def slow_async(seconds: float) -> str:
    """Sleep asynchronously."""
    await asyncio.sleep(seconds)
    return "woke"


_sync_sleeps_finished = threading.Event()


@tool(timeout=0.2)
def slow_sync(seconds: float) -> str:
    """Sleep in a thread."""
    time.sleep(seconds)
    _sync_sleeps_finished.set()
    return "woke"


@tool
def nap(seconds: float, tag: str) -> dict[str, str | float]:
    """Sleep, blocking, then say who woke up."""
    t0 = time.perf_counter()
    time.sleep(seconds)
    return {"tag": tag, "thread": threading.current_thread().name, "started": t0, "ended": time.perf_counter()}


@tool
def report_thread() -> str:
    """Name the thread this ran on."""
    return threading.current_thread().name


def call(name: str, **arguments: object) -> ToolCall:
    return ToolCall.make(name, arguments)


@pytest.fixture
def box() -> Toolbox:
    return Toolbox([add, divide, slow_async, slow_sync, nap, report_thread])


async def test_ok_call_and_lax_coercion(box: Toolbox) -> None:
    out = await box.execute(call("add", a="3", b=4))  # models often send numbers as strings
    assert (out.is_error, out.text, out.data) == (False, "7", 7)
    assert out.elapsed_s > 0
    assert (await box.execute(call("add", a=1))).data == 3
    # spurious extra keys are ignored rather than failing the whole call
    assert (await box.execute(call("add", a=1, b=1, description="x"))).data == 2


async def test_validation_errors_are_readable_observations(box: Toolbox) -> None:
    out = await box.execute(call("add", b="two"))
    assert out.is_error
    assert out.text.startswith("Invalid arguments for tool 'add': ")
    assert "argument 'a': field required" in out.text
    assert "argument 'b': input should be a valid integer" in out.text and "(got 'two')" in out.text
    assert out.text.endswith("Expected: add(a: integer, b: integer = 2).")
    with pytest.raises(ToolArgumentsError) as info:
        add.validate_args({"a": [1]})
    assert info.value.problems == ["argument 'a': input should be a valid integer (got [1])"]


async def test_unparseable_argument_text_is_named_as_such(box: Toolbox) -> None:
    garbled = ToolCall.from_openai({"id": "c1", "function": {"name": "add", "arguments": '{"a": 1,,'}})
    out = await box.execute(garbled)
    assert out.is_error
    assert out.text.startswith("Invalid arguments for tool 'add': the arguments are not a JSON object: {\"a\": 1,,")
    not_object = ToolCall.from_openai({"id": "c2", "function": {"name": "add", "arguments": "[1, 2]"}})
    assert "not a JSON object: [1, 2]" in (await box.execute(not_object)).text
    empty = ToolCall.from_openai({"id": "c3", "function": {"name": "report_thread", "arguments": ""}})
    assert not (await box.execute(empty)).is_error


async def test_nested_validation_error_location() -> None:
    class Line(BaseModel):
        sku: str
        qty: int = Field(ge=1)

    @tool
    def order(lines: list[Line]) -> int:
        """Order."""
        return len(lines)

    box = Toolbox([order])
    out = await box.execute(call("order", lines=[{"sku": "a", "qty": 1}, {"sku": "b", "qty": 0}]))
    assert out.is_error
    assert "argument 'lines[1].qty': input should be greater than or equal to 1 (got 0)" in out.text


async def test_unknown_tool_lists_available_names(box: Toolbox) -> None:
    out = await box.execute(call("multiply", a=1))
    assert out.is_error
    assert out.text == (
        "Unknown tool 'multiply'. Available tools: add, divide, nap, report_thread, slow_async, slow_sync. "
        "Call one of these by its exact name."
    )
    with pytest.raises(UnknownToolError):
        box.get("multiply")


async def test_exception_inside_tool(box: Toolbox) -> None:
    out = await box.execute(call("divide", a=1, b=0))
    assert out.is_error
    assert out.text == "divide raised ZeroDivisionError: float division by zero"
    with pytest.raises(ToolExecutionError) as info:
        await divide.execute({"a": 1, "b": 0})
    assert info.value.exc_type == "ZeroDivisionError"
    assert isinstance(info.value.__cause__, ZeroDivisionError)


async def test_long_exception_message_is_shortened() -> None:
    @tool
    def boom() -> None:
        """Fail loudly."""
        raise RuntimeError("x" * 5000)

    out = await Toolbox([boom]).execute(call("boom"))
    assert out.is_error and out.text.startswith("boom raised RuntimeError: xxx")
    assert len(out.text) < 800 and "more characters]" in out.text


async def test_timeout_of_async_tool_cancels_it(box: Toolbox) -> None:
    t0 = time.perf_counter()
    out = await box.execute(call("slow_async", seconds=30))
    assert time.perf_counter() - t0 < 25, "cancelled, not waited for (bound far below the 30 s sleep)"
    assert out.is_error
    assert out.text.startswith("Tool 'slow_async' timed out after 0.2 s")
    assert (await box.execute(call("slow_async", seconds=0.01))).text == "woke"
    with pytest.raises(ToolTimeoutError):
        await slow_async.execute({"seconds": 5})


async def test_timeout_of_sync_tool_returns_while_thread_runs_on(box: Toolbox) -> None:
    _sync_sleeps_finished.clear()
    out = await box.execute(call("slow_sync", seconds=3))
    assert out.is_error and "timed out after 0.2 s" in out.text
    # execute returned while the thread still sleeps (no timed bound needed): it cannot be killed, only left
    assert not _sync_sleeps_finished.is_set()
    assert await asyncio.to_thread(_sync_sleeps_finished.wait, 60)


async def test_timeout_raised_by_tool_code_is_not_reported_as_our_timeout() -> None:
    @tool
    async def inner() -> None:
        """Fails with its own timeout."""
        raise TimeoutError("upstream did not answer")

    out = await Toolbox([inner]).execute(call("inner"))
    assert out.text == "inner raised TimeoutError: upstream did not answer"


async def test_sync_tools_run_in_parallel_threads_and_keep_call_order(box: Toolbox) -> None:
    calls = [call("nap", seconds=0.3, tag="first"), call("nap", seconds=0.3, tag="second"), call("add", a=1)]
    outs = await box.execute_many(calls)
    assert [o.data["tag"] for o in outs[:2]] == ["first", "second"]
    assert outs[2].data == 3
    assert all(o.data["thread"].startswith("qwen-agent-tool") for o in outs[:2])
    assert outs[0].data["thread"] != outs[1].data["thread"]
    # Overlap, not speed: the later nap started before the earlier one ended (run one after the other, it could not).
    first, second = sorted((o.data for o in outs[:2]), key=lambda d: d["started"])
    assert second["started"] < first["ended"], "the naps ran one after the other"
    assert all(o.elapsed_s >= 0.29 for o in outs[:2])


async def test_failures_in_a_batch_do_not_affect_the_others(box: Toolbox) -> None:
    outs = await box.execute_many([call("divide", a=1, b=0), call("nope"), call("add", a=2), call("add")])
    assert [o.is_error for o in outs] == [True, True, False, True]
    assert outs[2].text == "4"
    assert await box.execute_many([]) == []


async def test_sync_tool_does_not_block_the_event_loop(box: Toolbox) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.02)
            ticks += 1

    task = asyncio.create_task(ticker())
    await box.execute(call("nap", seconds=0.3, tag="x"))
    task.cancel()
    assert ticks >= 5


def test_execute_sync_wrapper(box: Toolbox) -> None:
    assert box.execute_sync(call("add", a=40)).text == "42"
    assert [o.text for o in box.execute_many_sync([call("add", a=1), call("add", a=2)])] == ["3", "4"]


class Counter(Tool):
    """A stateful tool: started lazily once, calls serialised, closed by the Toolbox."""

    name = "counter"
    description = "Count calls."
    parallel_safe = False

    class Args(BaseModel):
        step: int = 1

    def __init__(self) -> None:
        super().__init__()
        self.starts = 0
        self.closed = False
        self.value = 0
        self.active = 0
        self.max_active = 0

    async def start(self) -> None:
        await asyncio.sleep(0.01)
        self.starts += 1

    async def aclose(self) -> None:
        self.closed = True

    async def run(self, args: Counter.Args) -> int:
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        await asyncio.sleep(0.01)
        self.value += args.step
        self.active -= 1
        return self.value


async def test_stateful_tool_lifecycle_and_serialisation() -> None:
    counter = Counter()
    async with Toolbox([counter]) as box:
        outs = await box.execute_many([call("counter", step=1) for _ in range(4)])
        assert sorted(o.data for o in outs) == [1, 2, 3, 4]
        assert counter.starts == 1
        assert counter.max_active == 1
    assert counter.closed


async def test_start_failure_and_tool_raised_tool_errors_pass_through() -> None:
    class Broken(Tool):
        name = "kernel"
        description = "A kernel that cannot boot."

        async def start(self) -> None:
            raise OSError("no such binary: bwrap")

        async def run(self, args: object) -> str:
            return "never"

    class Jail(Tool):
        name = "jail"

        def run(self, args: object) -> str:
            raise SandboxError("sandbox died; the session was restarted, run the code again")

    box = Toolbox([Broken(), Jail()])
    out = await box.execute(call("kernel"))
    assert out.is_error and out.text == "Tool 'kernel' could not start: OSError: no such binary: bwrap"
    out = await box.execute(call("jail"))
    assert out.text == "sandbox died; the session was restarted, run the code again"


def test_registry_accepts_functions_instances_and_builtin_names() -> None:
    def mul(a: int, b: int) -> int:
        """Multiply."""
        return a * b

    box = Toolbox([add, mul, "calculator"])
    assert box.names == ["add", "mul", "calculator"]
    assert "mul" in box and len(box) == 3
    assert [s.name for s in box.schemas()] == ["add", "mul", "calculator"]
    assert box.execute_sync(call("mul", a=6, b=7)).data == 42
    with pytest.raises(DuplicateToolError, match="already in this Toolbox"):
        box.add(add)
    with pytest.raises(UnknownToolError, match=r"Available tools: calculator, code_interpreter, current_time"):
        box.add("no_such_builtin")


async def test_tool_returning_tool_output_and_budget() -> None:
    @tool(max_output_chars=100)
    def verbose() -> str:
        """Say a lot."""
        return "a" * 1000

    @tool
    def custom() -> ToolOutput:
        """Decide everything."""
        return ToolOutput(text="custom", data={"k": 1})

    box = Toolbox([verbose, custom])
    out = await box.execute(call("verbose"))
    assert len(out.text) <= 100 and out.truncated_chars == 900
    out = await box.execute(call("custom"))
    assert (out.text, out.data) == ("custom", {"k": 1})
