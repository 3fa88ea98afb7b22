"""The function-calling agent loop: ask the model, run the tools it calls, feed results back, stop at an answer."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Self

from qwen_agent.agents.adoption import adopt_refused, refusal_lines, shown_refused
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
from qwen_agent.llm.base import ChatModel
from qwen_agent.llm.errors import ModelError
from qwen_agent.llm.types import ChatResponse, FunctionCalling, SamplingParams, ToolChoice, Usage
from qwen_agent.messages import Message, MessageLike, ToolCall, as_messages
from qwen_agent.prompting import render_note
from qwen_agent.sync import iterate_sync, run_sync
from qwen_agent.tools import Toolbox, ToolLike, ToolOutput
from qwen_agent.tracing import genai
from qwen_agent.tracing.api import NO_SPAN, Span, aiter_with_parent, attached, capture_content, start_span

if TYPE_CHECKING:  # imported when a run is recorded: an agent that records nothing does not load them
    from qwen_agent.trajectories.record import Trajectory, TrajectoryRecorder

__all__ = ["Agent"]

logger = logging.getLogger(__name__)


class Agent:
    """A function-calling agent over any `ChatModel` and any set of tools.

    ``model`` defaults to the embedded llama.cpp model. ``tools`` takes `Tool` instances, ``@tool`` functions,
    plain typed functions, or names of built-in tools (``"calculator"``). Tool calls from one reply run
    concurrently and their results are fed back in call order; tool failures become observations for the model.

    Small models often repeat the call they just made instead of answering. Identical calls within one reply run
    once; with ``answer_on_repeat`` (default) a reply that repeats a call already made in this run is dropped and
    the step is asked again with ``tool_choice="none"``, i.e. for the answer (the embedded backend starts the reply
    as an answer; other backends get a short instruction). Turn it off if your tools are meant to be called again
    with identical arguments (polling a job, reading a clock).

    Every run is traced (``invoke_agent`` with ``chat`` and ``execute_tool`` children, OpenTelemetry GenAI
    conventions) when a tracer provider is configured (`qwen_agent.tracing.configure_tracing`), and recorded for
    fine-tuning when ``record`` is a folder or a `TrajectoryRecorder` (see `qwen_agent.trajectories`). ``name``
    names the agent in both (default: the class name).
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
        answer_on_repeat: bool = True,
        name: str | None = None,
        record: str | Path | TrajectoryRecorder | None = None,
    ) -> None:
        if max_steps < 1:
            raise ValueError("max_steps must be at least 1")
        self.model = model if model is not None else _default_model()
        self.toolbox = Toolbox(tools)
        self.system = system
        self.max_steps = max_steps
        self.params = params
        self.function_calling = function_calling
        self.answer_on_repeat = answer_on_repeat
        self.name = name or type(self).__name__
        if isinstance(record, str | Path):
            from qwen_agent.trajectories.record import TrajectoryRecorder

            record = TrajectoryRecorder(record)
        self.recorder: TrajectoryRecorder | None = record
        #: Extra span attributes for the next runs (the server sets ``gen_ai.conversation.id``).
        self.trace_attributes: dict[str, str] = {}

    # ---- public API ----------------------------------------------------------------------------------------
    async def astream(self, messages: Iterable[MessageLike] | str) -> AsyncIterator[AgentEvent]:
        """Run the loop, yielding events; the last event is always `FinalAnswer` (also after a model error)."""
        span = start_span(f"invoke_agent {self.name}", {
            genai.OPERATION: "invoke_agent", genai.AGENT_NAME: self.name, genai.PROVIDER: self.model.trace_provider,
            genai.REQUEST_MODEL: self.model.model or None, **self.trace_attributes,
        })
        ended = False
        try:
            async for event in self._events(messages, span):
                if isinstance(event, FinalAnswer):
                    # Before the consumer sees it: one that stops reading at the answer still gets the run
                    # recorded and its span ended now, not whenever the generator is collected.
                    ended = True
                    self._finish_run(span, event.result)
                yield event
        except BaseException as exc:
            if not ended and not isinstance(exc, GeneratorExit):
                span.error(type(exc).__name__, str(exc)[:500])
            raise
        finally:
            if not ended:
                span.end()

    def _finish_run(self, span: Span, result: AgentResult) -> None:
        """Outcome attributes on the run's span, which ends here; the trajectory to the recorder."""
        if span.recording:
            span.set_many({genai.USAGE_INPUT: result.usage.prompt_tokens,
                           genai.USAGE_OUTPUT: result.usage.completion_tokens,
                           "qwen_agent.stop_reason": result.stop_reason, "qwen_agent.steps": result.steps})
            if result.error_type:
                span.error(result.error_type, result.error)
            if capture_content():
                span.set(genai.OUTPUT_MESSAGES, genai.messages_json([Message.assistant(result.answer)]))
        span.end()
        if self.recorder is not None:
            self.recorder.write(self.trajectory(result))

    def trajectory(self, result: AgentResult, **fields: object) -> Trajectory:
        """``result`` as a training record: its messages, this agent's tools, model and format."""
        from qwen_agent.trajectories.record import Trajectory

        fc = self.function_calling or self.model.function_calling
        return Trajectory.build(
            result.messages, self.toolbox.schemas(), agent=self.name, model=self.model.model,
            provider=self.model.trace_provider, format=fc.format, mode=fc.mode, stop_reason=result.stop_reason,
            steps=result.steps, prompt_tokens=result.usage.prompt_tokens,
            completion_tokens=result.usage.completion_tokens, error=result.error, **fields)

    def _events(self, messages: Iterable[MessageLike] | str, span: Span) -> AsyncIterator[AgentEvent]:
        """The run's events inside its ``invoke_agent`` span (subclasses add steps around the loop here)."""
        return self._loop(messages, span)

    async def _loop(self, messages: Iterable[MessageLike] | str, span: Span) -> AsyncIterator[AgentEvent]:
        transcript = self._start(messages)
        schemas = self.toolbox.schemas()
        adopting = self.toolbox.adopting_schemas()
        offered = {s.name for s in schemas}
        parent = span.context
        usage = Usage(prompt_tokens=0, completion_tokens=0)
        made: set[str] = set()  # keys of the calls already run in this run
        tool_choice: ToolChoice = "auto"
        corrected = False  # a refused call (unknown function, arguments that break its schema) is told once
        for step in range(1, self.max_steps + 1):
            started = time.perf_counter()
            response: ChatResponse | None = None
            try:
                async for delta in aiter_with_parent(self.model.astream(
                    transcript, schemas, params=self.params, function_calling=self.function_calling,
                    tool_choice=tool_choice,
                ), parent):
                    if delta.content:
                        yield TextDelta(step=step, content=delta.content)
                    if delta.reasoning:
                        yield ReasoningDelta(step=step, content=delta.reasoning)
                    if delta.response is not None:
                        response = delta.response
            except ModelError as exc:
                logger.warning("model failed at step %d: %s", step, exc)
                yield FinalAnswer(result=self._result(transcript, step, "model_error", usage, error=str(exc),
                                                     error_type=type(exc).__name__))
                return
            assert response is not None, "ChatModel.astream must end with a response"
            _add_usage(usage, response)
            response = adopt_refused(response, adopting, offered)
            calls = _unique_calls(response)
            if self.answer_on_repeat and any(_call_key(c) in made for c in calls):
                # The model repeats a call whose result it already has (small models loop like this): drop the
                # reply and ask again, this time for the answer.
                logger.info("step %d repeated an earlier call; asking for the answer instead", step)
                yield StepFinished(step=step, response=response, elapsed_s=time.perf_counter() - started,
                                   discarded=True)
                tool_choice = "none"
                continue
            if response.refused_calls and not calls and corrected:
                # Told once already and still no valid call: this reply is dropped and an answer is required.
                logger.info("step %d made only refused calls again; asking for the answer instead", step)
                yield StepFinished(step=step, response=response, elapsed_s=time.perf_counter() - started,
                                   discarded=True)
                tool_choice = "none"
                continue
            transcript.append(response.message)
            yield StepFinished(step=step, response=response, elapsed_s=time.perf_counter() - started)
            refusal = None
            if response.refused_calls and not corrected and step < self.max_steps:
                corrected = True
                errors = refusal_lines(response, offered, self.toolbox.adoption_hints())
                refusal = Message.user(render_note("call_refused", errors=errors))
            if not calls:
                if refusal is not None:
                    transcript[-1] = shown_refused(response).message
                    transcript.append(refusal)
                    continue
                if response.parse_errors and step < self.max_steps:
                    transcript.append(Message.user(render_note("unreadable_call", errors=response.parse_errors)))
                    continue
                yield FinalAnswer(result=self._result(transcript, step, "answer", usage))
                return
            made.update(_call_key(c) for c in calls)
            async for event in self._run_tools(step, calls, transcript, parent):
                yield event
            if refusal is not None:  # some calls ran, others were refused: the results, then why
                transcript.append(refusal)
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

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __enter__(self) -> Self:
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
        self, step: int, calls: list[ToolCall], transcript: list[Message], parent: object = None
    ) -> AsyncIterator[AgentEvent]:
        """Run one reply's calls concurrently; report each as it finishes; append results in call order."""
        for call in calls:
            yield ToolCallStarted(step=step, call=call)
        tasks = {asyncio.ensure_future(self._timed(call, parent)): i for i, call in enumerate(calls)}
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
        for call, finished in zip(calls, outputs, strict=True):
            assert finished is not None
            transcript.append(finished.to_message(call))

    async def _timed(self, call: ToolCall, parent: object = None) -> tuple[ToolOutput, float]:
        span = NO_SPAN if parent is None else start_span(f"execute_tool {call.name}", {
            genai.OPERATION: "execute_tool", genai.TOOL_NAME: call.name, genai.TOOL_CALL_ID: call.id,
            genai.TOOL_TYPE: "function",
        }, parent=parent)
        started = time.perf_counter()
        try:
            with attached(span.context):  # this task's own context: spans inside the tool get it as parent
                output = await self.toolbox.execute(call)
        except BaseException as exc:
            span.error(type(exc).__name__, str(exc)[:500])
            span.end()
            raise
        if span.recording:
            if output.is_error:
                span.error(output.error_type or "ToolError", output.text[:500])
            if capture_content():
                span.set(genai.TOOL_ARGUMENTS, call.function.arguments_json())
                span.set(genai.TOOL_RESULT, output.text)
        span.end()
        return output, time.perf_counter() - started

    @staticmethod
    def _result(
        transcript: list[Message], steps: int, reason: StopReason, usage: Usage, error: str | None = None,
        error_type: str | None = None,
    ) -> AgentResult:
        last = transcript[-1] if transcript else None
        answer = last.text if last is not None and last.role == "assistant" else ""
        return AgentResult(answer=answer, messages=transcript, steps=steps, stop_reason=reason, usage=usage,
                           error=error, error_type=error_type)


def _call_key(call: ToolCall) -> str:
    return call.name + json.dumps(call.arguments, sort_keys=True, ensure_ascii=False, default=str)


def _unique_calls(response: ChatResponse) -> list[ToolCall]:
    """The reply's calls without exact duplicates (small models sometimes write the same call many times)."""
    seen: set[str] = set()
    unique = []
    for call in response.tool_calls:
        key = _call_key(call)
        if key not in seen:
            seen.add(key)
            unique.append(call)
    if len(unique) < len(response.tool_calls):
        response.message.tool_calls = unique
        response.message.set_generated_text(None)  # the text holds the duplicates: re-render canonically
    return unique


def _add_usage(total: Usage, response: ChatResponse) -> None:
    if response.usage is not None:
        total.prompt_tokens += response.usage.prompt_tokens
        total.completion_tokens += response.usage.completion_tokens


def _default_model() -> ChatModel:
    """``$QWEN_AGENT_MODEL_SPEC`` when set (e.g. ``openai:http://127.0.0.1:8000/v1``), else the embedded model."""
    from qwen_agent.llm.spec import load_model

    return load_model()
