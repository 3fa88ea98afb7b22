"""The function-calling agent loop: ask the model, run the tools it calls, feed results back, stop at an answer."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable, Iterator

from qwen_agent.agents.errors import AgentModelError
from qwen_agent.agents.events import (
    AgentEvent,
    AgentResult,
    FinalAnswer,
    ReasoningDelta,
    StepFinished,
    StopReason,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
)
from qwen_agent.llm.base import ChatModel, ChatResponse, FunctionCalling, SamplingParams, Usage
from qwen_agent.llm.errors import ModelError
from qwen_agent.messages import Message, MessageLike, ToolCall, as_messages
from qwen_agent.sync import iterate_sync, run_sync
from qwen_agent.tools import ToolLike, Toolbox, ToolOutput

log = logging.getLogger(__name__)

#: Told to the model when its reply looked like a call but could not be read, so it can try again.
UNREADABLE_CALL_NOTE = (
    "Your last reply contained a tool call that could not be read ({errors}). "
    "Write the call again as valid JSON, or answer without a tool."
)


class Agent:
    """A function-calling agent over any `ChatModel` and any set of tools.

    ``model`` defaults to the embedded llama.cpp model. ``tools`` takes `Tool` instances, ``@tool`` functions,
    plain typed functions, or names of built-in tools (``"calculator"``). Tool calls from one reply run
    concurrently and their results are fed back in call order; tool failures become observations for the model.
    """

    def __init__(
        self,
        model: ChatModel | None = None,
        tools: Iterable[ToolLike] = (),
        *,
        system: str | None = None,
        max_steps: int = 8,
        params: SamplingParams | None = None,
        function_calling: FunctionCalling | None = None,
    ) -> None:
        if max_steps < 1:
            raise ValueError("max_steps must be at least 1")
        self.model = model if model is not None else _default_model()
        self.toolbox = Toolbox(tools)
        self.system = system
        self.max_steps = max_steps
        self.params = params
        self.function_calling = function_calling

    # ---- public API ----------------------------------------------------------------------------------------
    async def astream(self, messages: Iterable[MessageLike] | str) -> AsyncIterator[AgentEvent]:
        """Run the loop, yielding events; the last event is always `FinalAnswer` (also after a model error)."""
        transcript = self._start(messages)
        schemas = self.toolbox.schemas()
        usage = Usage(prompt_tokens=0, completion_tokens=0)
        for step in range(1, self.max_steps + 1):
            started = time.perf_counter()
            response: ChatResponse | None = None
            try:
                async for delta in self.model.astream(
                    transcript, schemas, params=self.params, function_calling=self.function_calling
                ):
                    if delta.content:
                        yield TextDelta(step=step, content=delta.content)
                    if delta.reasoning:
                        yield ReasoningDelta(step=step, content=delta.reasoning)
                    if delta.response is not None:
                        response = delta.response
            except ModelError as exc:
                log.warning("model failed at step %d: %s", step, exc)
                yield FinalAnswer(result=self._result(transcript, step, "model_error", usage, error=str(exc)))
                return
            assert response is not None, "ChatModel.astream must end with a response"
            _add_usage(usage, response)
            transcript.append(response.message)
            yield StepFinished(step=step, response=response, elapsed_s=time.perf_counter() - started)

            calls = response.tool_calls
            if not calls:
                if response.parse_errors and step < self.max_steps:
                    note = UNREADABLE_CALL_NOTE.format(errors="; ".join(response.parse_errors))
                    transcript.append(Message.user(note))
                    continue
                yield FinalAnswer(result=self._result(transcript, step, "answer", usage))
                return
            async for event in self._run_tools(step, calls, transcript):
                yield event
        yield FinalAnswer(result=self._result(transcript, self.max_steps, "max_steps", usage))

    async def arun(self, messages: Iterable[MessageLike] | str) -> AgentResult:
        """Run to the end and return the result. Raises `AgentModelError` (with the partial result) if the
        model failed; tool failures never raise, they are observations."""
        result: AgentResult | None = None
        async for event in self.astream(messages):
            if isinstance(event, FinalAnswer):
                result = event.result
        assert result is not None
        if result.stop_reason == "model_error":
            raise AgentModelError(result.error or "model error", result=result)
        return result

    def run(self, messages: Iterable[MessageLike] | str) -> AgentResult:
        """Blocking `arun`."""
        return run_sync(self.arun(messages))

    def stream(self, messages: Iterable[MessageLike] | str) -> Iterator[AgentEvent]:
        """Blocking `astream`."""
        return iterate_sync(self.astream(messages))

    async def aclose(self) -> None:
        """Close stateful tools (kernels, MCP sessions) and the model."""
        await self.toolbox.aclose()
        await self.model.aclose()

    def close(self) -> None:
        run_sync(self.aclose())

    async def __aenter__(self) -> Agent:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- internals -----------------------------------------------------------------------------------------
    def _start(self, messages: Iterable[MessageLike] | str) -> list[Message]:
        transcript = as_messages(messages)
        if self.system and not (transcript and transcript[0].role == "system"):
            transcript.insert(0, Message.system(self.system))
        return transcript

    async def _run_tools(
        self, step: int, calls: list[ToolCall], transcript: list[Message]
    ) -> AsyncIterator[AgentEvent]:
        """Run one reply's calls concurrently; report each as it finishes; append results in call order."""
        for call in calls:
            yield ToolCallStarted(step=step, call=call)
        tasks = {asyncio.ensure_future(self._timed(call)): i for i, call in enumerate(calls)}
        outputs: list[ToolOutput | None] = [None] * len(calls)
        try:
            pending = set(tasks)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in sorted(done, key=tasks.__getitem__):
                    i = tasks[task]
                    output, elapsed = task.result()
                    outputs[i] = output
                    yield ToolCallFinished(step=step, call=calls[i], output=output, elapsed_s=elapsed)
        finally:
            for task in tasks:
                task.cancel()
        for call, output in zip(calls, outputs):
            assert output is not None
            transcript.append(output.to_message(call))

    async def _timed(self, call: ToolCall) -> tuple[ToolOutput, float]:
        started = time.perf_counter()
        output = await self.toolbox.execute(call)
        return output, time.perf_counter() - started

    @staticmethod
    def _result(
        transcript: list[Message], steps: int, reason: StopReason, usage: Usage, error: str | None = None
    ) -> AgentResult:
        last = transcript[-1] if transcript else None
        answer = last.text if last is not None and last.role == "assistant" else ""
        return AgentResult(answer=answer, messages=transcript, steps=steps, stop_reason=reason, usage=usage,
                           error=error)


def _add_usage(total: Usage, response: ChatResponse) -> None:
    if response.usage is not None:
        total.prompt_tokens += response.usage.prompt_tokens
        total.completion_tokens += response.usage.completion_tokens


def _default_model() -> ChatModel:
    from qwen_agent.llm.llamacpp import LlamaCpp

    return LlamaCpp()
