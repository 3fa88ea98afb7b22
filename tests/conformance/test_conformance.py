"""Backend conformance: the same agent-level behaviour, with the same assertions, on every backend in `BACKENDS`.

The real backends run Qwen2.5-Coder-0.5B at temperature 0, so the prompts below are ones this small model handles
reliably (measured); the assertions are what a user of any backend relies on. The scripted backend answers with the
rule-based `RuleModel`, which reads the same requests.
"""

from __future__ import annotations

from qwen_agent.agents import Agent, AgentResult, StepFinished, ToolCallFinished
from qwen_agent.llm.base import ChatDelta, ChatModel, SamplingParams
from qwen_agent.messages import Message, ToolSchema
from qwen_agent.tools import tool

from .backends import N_CTX, Backend, ModelFactory

#: Prompt budget for the truncation tests: well under the backends' 4096-token window, so the history must be cut.
#: Not lower: where a server cannot count tokens (llama-cpp-python's), the context manager charges one token per
#: byte, and the parts it never cuts (system prompt, tool schemas, latest user turn) already take ~1,500 bytes.
BUDGET = 2000


async def run_agent(agent: Agent, messages: object) -> tuple[AgentResult, list[object]]:
    """Run to the end, keeping every event; the run must end with a `FinalAnswer` (never an exception)."""
    events = [e async for e in agent.astream(messages)]  # type: ignore[arg-type]
    result = events[-1].result  # type: ignore[union-attr]
    assert result.stop_reason != "model_error", result.error
    return result, events


def transcript(result: AgentResult) -> str:
    """The run as readable lines, for assertion messages."""
    lines = []
    for m in result.messages:
        calls = ", ".join(f"{c.name}({c.arguments})" for c in m.tool_calls or [])
        lines.append(f"{m.role:9} {calls or m.text[:300]!r}")
    return "\n".join(lines)


# ---- 1. plain chat ---------------------------------------------------------------------------------------------
async def test_plain_chat_answers_a_question_correctly(make_model: ModelFactory) -> None:
    model = make_model(params=SamplingParams(max_tokens=64))
    response = await model.achat("What is 17 + 25?")
    assert "42" in response.text, response.text
    assert response.tool_calls == []
    assert response.finish_reason == "stop"
    assert response.usage is not None and response.usage.prompt_tokens > 0 and response.usage.completion_tokens > 0


# ---- 2. streaming ----------------------------------------------------------------------------------------------
async def test_streaming_deltas_add_up_to_the_final_response(make_model: ModelFactory) -> None:
    model = make_model(params=SamplingParams(max_tokens=64))
    deltas: list[ChatDelta] = [d async for d in model.astream("What is 17 + 25?")]
    final = deltas[-1].response
    assert final is not None, "the last delta must carry the complete response"
    assert all(d.response is None for d in deltas[:-1]), "only the last delta carries the response"
    pieces = [d.content for d in deltas if d.content]
    assert len(pieces) > 1, f"expected several text deltas, got {pieces!r}"
    assert "".join(pieces) == final.text
    assert "42" in final.text
    assert final.finish_reason == "stop"


# ---- 3. one tool call ------------------------------------------------------------------------------------------
async def test_agent_calls_one_tool_and_answers_from_its_observation(make_model: ModelFactory) -> None:
    seen: list[str] = []

    @tool
    def get_order_status(order_id: str) -> str:
        """Look up the shipping status of an order.

        Args:
            order_id: the order number, e.g. A-1001
        """
        seen.append(order_id)
        return f"Order {order_id}: shipped, tracking number 88412, arriving in 6 days"

    agent = Agent(make_model(), tools=[get_order_status], max_steps=4)
    result, events = await run_agent(agent, "Where is my order A-1001?")
    assert seen and seen[0] == "A-1001", transcript(result)
    finished = [e for e in events if isinstance(e, ToolCallFinished)]
    assert finished and not finished[0].output.is_error
    assert result.stop_reason == "answer", transcript(result)
    assert "88412" in result.answer, f"the answer must use the observation:\n{transcript(result)}"


# ---- 4. parallel tool calls ------------------------------------------------------------------------------------
async def test_agent_makes_two_calls_and_uses_both_observations(make_model: ModelFactory, backend: Backend) -> None:
    cities: list[str] = []
    temperatures = {"paris": 17, "tokyo": 23}

    @tool
    def get_weather(city: str) -> str:
        """Get the current weather for a city.

        Args:
            city: the city name, e.g. Paris
        """
        cities.append(city)
        return f"{city}: {temperatures.get(city.strip().lower(), 11)} °C, light rain"

    agent = Agent(make_model(), tools=[get_weather], max_steps=4)
    result, events = await run_agent(agent, "Call get_weather for Paris and for Tokyo, then compare the two "
                                            "temperatures.")
    assert {c.strip().lower() for c in cities} >= {"paris", "tokyo"}, transcript(result)
    assert result.stop_reason == "answer", transcript(result)
    # The backend's contract: both observations went back to the model, and its answer is built on them. Whether
    # a 0.5B model's comparison quotes both numbers or only the larger is its quality; the note records which.
    fed_back = " ".join(m.text for m in result.messages if m.role == "tool")
    assert "17 °C" in fed_back and "23 °C" in fed_back, transcript(result)
    used = [t for t in ("17", "23") if t in result.answer]
    assert used, f"the answer must use the observations:\n{transcript(result)}"
    steps_with_calls = [e.step for e in events if isinstance(e, ToolCallFinished)]
    backend.notes["parallel calls"] = (
        "both calls in one reply" if len(set(steps_with_calls)) == 1
        else f"one call per reply, across steps {sorted(set(steps_with_calls))}") + (
        "; the answer quotes both" if len(used) == 2 else f"; the answer quotes only {used[0]}")


# ---- 5. recovering from a tool error ---------------------------------------------------------------------------
async def test_agent_feeds_a_tool_error_back_and_still_answers(make_model: ModelFactory, backend: Backend) -> None:
    """'Recovers' for a 0.5B model means: the loop does not crash, the error text reaches the model, and the run
    ends with an answer. Whether the model then retries correctly (it does, at temperature 0, with this prompt:
    city='Oslo, NO') or apologises is the model's quality, not the backend's contract; the note records it."""
    countries = {"oslo": "NO"}
    calls: list[str] = []

    @tool
    def get_temperature(city: str) -> str:
        """Get the current temperature in a city.

        Args:
            city: the city
        """
        calls.append(city)
        if "," not in city:
            code = countries.get(city.strip().lower(), "XX")
            raise ValueError(f"ambiguous city {city!r}: give the city with its country code; "
                             f"call again with city='{city.strip()}, {code}'")
        return f"{city}: 4 °C"

    agent = Agent(make_model(), tools=[get_temperature], max_steps=4)
    result, events = await run_agent(agent, "What is the temperature in Oslo?")
    finished = [e for e in events if isinstance(e, ToolCallFinished)]
    assert finished and finished[0].output.is_error, f"the first call should fail:\n{transcript(result)}"
    error_index = next(i for i, m in enumerate(result.messages) if m.role == "tool" and "call again" in m.text)
    assert any(m.role == "assistant" for m in result.messages[error_index + 1:]), (
        f"the model must be asked again with the error in its prompt:\n{transcript(result)}")
    assert result.stop_reason == "answer", transcript(result)
    assert result.answer.strip(), transcript(result)
    retried = any(not e.output.is_error for e in finished[1:])
    backend.notes["tool error"] = f"retried with {calls[1:]!r}" if retried else f"answered after {calls!r}"


# ---- 6. stop words ---------------------------------------------------------------------------------------------
async def test_stop_words_cut_the_reply(make_model: ModelFactory) -> None:
    question = "What is 17 + 25?"
    full = await make_model(params=SamplingParams(max_tokens=64)).achat(question)
    assert "42" in full.text, full.text
    cut = await make_model(params=SamplingParams(max_tokens=64, stop=["42"])).achat(question)
    assert "42" not in cut.text, cut.text
    assert cut.text.strip(), "the reply should keep the text before the stop word"
    assert full.text.startswith(cut.text.strip()), (full.text, cut.text)
    assert cut.finish_reason == "stop"


# ---- 7. max steps ----------------------------------------------------------------------------------------------
async def test_max_steps_ends_a_run_that_keeps_calling(make_model: ModelFactory) -> None:
    pages: list[int] = []

    @tool
    def search_logs(query: str, page: int = 1) -> str:
        """Search the server logs. Results come in pages.

        Args:
            query: what to search for
            page: the page number
        """
        pages.append(page)
        return (f"Page {page} of many: 50 matches for {query!r}, none conclusive. More results: call search_logs "
                f"again with page={page + 1}.")

    agent = Agent(make_model(), tools=[search_logs], max_steps=2)
    result, events = await run_agent(agent, "Search the server logs for 'disk full' and tell me what caused it.")
    assert result.stop_reason == "max_steps", transcript(result)
    assert result.steps == 2
    assert {e.step for e in events if isinstance(e, ToolCallFinished)} == {1, 2}, transcript(result)
    assert len(pages) == 2, pages


# ---- 8. prompts longer than the budget -------------------------------------------------------------------------
_TOPICS = ["sourdough bread", "tidal energy", "medieval castles", "honey bees", "glacier formation",
           "jazz history", "chess openings", "coral reefs", "paper making", "railway signals",
           "volcano monitoring", "origami design", "lighthouse keepers", "wool dyeing"]


def _long_history() -> list[Message]:
    """Fourteen earlier exchanges: ~5,600 Qwen tokens, more than the backends' 4096-token window (so without
    truncation the request itself would fail), and almost three times the budget."""
    history = [Message.system("You are a helpful assistant.")]
    for topic in _TOPICS:
        paragraph = " ".join(f"Note {i} about {topic}: it has a long history, many practitioners, regional "
                             f"variations and a vocabulary of its own." for i in range(1, 15))
        history.append(Message.user(f"Here are my notes on {topic}. {paragraph} Please keep them in mind."))
        history.append(Message.assistant(f"Understood, I will keep your notes on {topic} in mind."))
    return history


async def reported_prompt_tokens(model: ChatModel, messages: list[Message], tools: list[ToolSchema] | None) -> int:
    """Prompt tokens the backend says it evaluated for this request. Asked without streaming: llama_cpp.server's
    streams carry no usage at all (even with ``stream_options.include_usage``)."""
    response = await model.achat(messages, tools, params=SamplingParams(max_tokens=1))
    assert response.usage is not None and response.usage.prompt_tokens > 0, response.usage
    return response.usage.prompt_tokens


def check_streamed_usage(events: list[object], backend: Backend) -> None:
    """Where a backend reports usage in its streams, every agent step must be within the budget too."""
    usages = [e.response.usage for e in events if isinstance(e, StepFinished)]
    reported = [u for u in usages if u is not None and u.prompt_tokens > 0]
    backend.notes["usage in streams"] = "reported" if reported else "not reported"
    for usage in reported:
        assert usage.prompt_tokens <= BUDGET, usage


async def test_long_history_is_truncated_to_the_budget(make_model: ModelFactory) -> None:
    """Contract of ``ChatModel(max_input_tokens=...)``: old turns are dropped, the system prompt and the latest
    user turn are kept, and the prompt the backend evaluates fits the budget."""
    model = make_model(params=SamplingParams(max_tokens=64), max_input_tokens=BUDGET)
    response = await model.achat([*_long_history(), Message.user("What is 36 + 27?")])
    assert "63" in response.text, f"the answer must address the latest turn: {response.text!r}"
    assert response.usage is not None and 0 < response.usage.prompt_tokens <= BUDGET, response.usage


async def test_huge_tool_observation_is_truncated_to_the_budget(make_model: ModelFactory, backend: Backend) -> None:
    @tool(max_output_chars=None)
    def read_log(filename: str) -> str:
        """Read a log file.

        Args:
            filename: the file name, e.g. backup.log
        """
        filler = "".join(f"\n{i:05d} INFO checked block {i} of the archive, status ok" for i in range(360))
        return f"{filename}: the nightly backup FAILED with error code 7431 (disk quota exceeded).{filler}"

    model = make_model(max_input_tokens=BUDGET)
    agent = Agent(model, tools=[read_log], max_steps=4)
    result, events = await run_agent(agent, "Read the log file backup.log and tell me the error code of the "
                                            "failed backup.")
    observations = [e.output.text for e in events if isinstance(e, ToolCallFinished)]
    # ~20,000 characters, ~6,500 tokens: over the budget and over the 4096-token window itself.
    assert observations and len(observations[0]) > 4 * N_CTX, "the observation alone must exceed the window"
    assert result.stop_reason == "answer", transcript(result)
    assert "7431" in result.answer, transcript(result)
    check_streamed_usage(events, backend)
    # The last step's request (the whole run so far, observation included), as the backend counts it.
    assert await reported_prompt_tokens(model, result.messages[:-1], agent.toolbox.schemas()) <= BUDGET
