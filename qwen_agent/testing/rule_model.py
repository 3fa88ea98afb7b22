"""A deterministic rule-based stand-in for a small cooperative chat model, served through `ScriptedServer`.

Scripted replies fix a conversation in advance; a conformance suite needs a double that *reacts* to whatever the
framework sends, like a model would, so the same agent-level test runs unchanged against it and against real
models. `RuleModel` reads an OpenAI chat request (the tools offered natively or rendered in the system prompt in
the ``nous`` format, the latest user turn, the calls already made and their results) and answers as a
cooperative model does:

* it calls the tool whose name and description best match the request, with arguments taken from the request
  (quoted strings, ids such as ``A-1001``, file names, capitalised names, numbers), and writes one call per entity
  when the request names several (``Paris and Tokyo``) -- in one reply, or one per reply when told "at most one";
* when an observation says ``call ... again with key=value`` (an error that explains the fix, a paged result) it
  calls that tool again with those arguments;
* otherwise it answers from the observations, or, without tools, answers simple arithmetic;
* it honours ``stop`` and ``max_tokens`` (finish reasons ``stop`` / ``length``) and, like vLLM, rejects a request
  whose prompt plus ``max_tokens`` exceeds its context length with HTTP 400 "maximum context length".

    with ScriptedServer(responder=RuleModel(context_length=4096), models=["rule-model"]) as server:
        model = OpenAICompatible(server.base_url, model="rule-model")

Token counts use a GPT-2-style pre-tokenisation (a word with its leading space, single digits, runs of
punctuation, special tokens as one), close to Qwen's BPE on English text and never more tokens than UTF-8 bytes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from qwen_agent.prompting import render_note
from qwen_agent.testing.script import ScriptedReply, ScriptedToolCall

__all__ = ["RuleModel", "count_tokens", "prompt_length", "split_tokens"]

_TOKEN = re.compile(r"<\|[a-z_]+\|>|\s+(?=<\|)| ?[^\W\d_]+| ?\d| ?[^\s\w]+| ?_+|\s+(?!\S)|\s+")
_TOOLS_BLOCK = re.compile(r"<tools>\s*(.*?)\s*</tools>", re.DOTALL)
_CALL_TAG = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)
_RESPONSE_TAG = re.compile(r"<tool_response>\n?(.*?)\n?</tool_response>", re.DOTALL)
_ONE_CALL_ONLY = "Call at most one function per reply."
_AGAIN = re.compile(r"call(?:\s+\w+)?\s+again\s+with\s+([^\n]*)", re.IGNORECASE)
_KEY_VALUE = re.compile(r"(\w+)\s*=\s*(?:'([^']*)'|\"([^\"]*)\"|(-?\d+(?:\.\d+)?|\w[\w\-]*))")
_QUOTED = re.compile(r"(?<!\w)'([^']+)'(?!\w)|\"([^\"]+)\"")
_REFERENCE = re.compile(r"\b[A-Z]{1,5}-\d+\b|\b[\w\-]+\.[a-z0-9]{1,5}\b")  # A-1001, backup.log
_NAME = re.compile(r"\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)*\b")
_NUMBER = re.compile(r"(?<![\w-])-?\d+(?:\.\d+)?(?![\w-])")
_ARITHMETIC = re.compile(
    r"(-?\d+(?:\.\d+)?)\s*(\+|-|\*|/|x|×|plus|minus|times|multiplied by|divided by)\s*(-?\d+(?:\.\d+)?)",
    re.IGNORECASE)
_ERROR = re.compile(r"\braised \w+|^Invalid arguments|^Unknown tool|timed out", re.MULTILINE)
#: Words that say nothing about which tool fits or which value is meant.
_STOPWORD_TEXT = (
    "a an and are at be by call can could do does for from get give how i in is it its me my now of on or please "
    "right show tell that the then this to use what whats which with would you your compare find search two both "
    "current currently"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def split_tokens(text: str) -> list[str]:
    """``text`` cut into the pieces `RuleModel` counts as tokens; they join back to ``text`` exactly."""
    return _TOKEN.findall(text)


def count_tokens(text: str) -> int:
    return len(split_tokens(text))


@dataclass
class _Call:
    name: str
    arguments: dict[str, Any]

    def key(self) -> str:
        return self.name + json.dumps(self.arguments, sort_keys=True, default=str)


@dataclass
class _Request:
    """What the rule model takes from one chat request."""

    tools: list[dict[str, Any]]
    native: bool
    parallel: bool
    question: str
    calls: list[_Call] = field(default_factory=list)
    observations: list[str] = field(default_factory=list)
    answer_now: bool = False


class RuleModel:
    """A `ScriptedServer` responder (``responder=RuleModel()``): one reply per request, decided by rules."""

    def __init__(self, *, context_length: int = 4096, default_max_tokens: int = 1024, chunk_size: int = 4) -> None:
        #: Prompt plus ``max_tokens`` above this is rejected with HTTP 400, as vLLM does.
        self.context_length = context_length
        self.default_max_tokens = default_max_tokens
        #: Characters per SSE delta, so streaming clients see several deltas.
        self.chunk_size = chunk_size
        self._answer_now_note = render_note("answer_now")

    def __call__(self, body: dict[str, Any]) -> ScriptedReply:
        messages = list(body.get("messages") or [])
        prompt_tokens = prompt_length(messages, body.get("tools"))
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        if prompt_tokens + (max_tokens or 0) > self.context_length:
            return ScriptedReply.fail(400, (
                f"This model's maximum context length is {self.context_length} tokens. However, you requested "
                f"{prompt_tokens + (max_tokens or 0)} tokens ({prompt_tokens} in the messages, {max_tokens or 0} in "
                "the completion). Please reduce the length of the messages or completion."))
        request = self._read(messages, body)
        calls = [] if request.answer_now else self._decide_calls(request)
        if calls and request.native:
            text = ""
            tool_calls = [ScriptedToolCall(name=c.name, arguments=c.arguments) for c in calls]
        elif calls:
            text = "\n".join(f"<tool_call>\n{json.dumps({'name': c.name, 'arguments': c.arguments})}\n</tool_call>"
                             for c in calls)
            tool_calls = []
        else:
            text, tool_calls = _answer(request), []
        text, finish = _limit(text, body.get("stop"), max_tokens or self.default_max_tokens)
        if tool_calls and finish == "length":
            tool_calls = []  # a call cut by max_tokens never completes
        return ScriptedReply(
            content=text if text or not tool_calls else None, tool_calls=tool_calls,
            finish_reason="tool_calls" if tool_calls else finish, prompt_tokens=prompt_tokens,
            completion_tokens=count_tokens(text) + sum(count_tokens(json.dumps(c.arguments)) for c in tool_calls),
            chunk_size=self.chunk_size,
        )

    # ---- reading the request ---------------------------------------------------------------------------------
    def _read(self, messages: list[dict[str, Any]], body: dict[str, Any]) -> _Request:
        native_tools = [t.get("function", t) for t in body.get("tools") or []]
        system = " ".join(_text(m.get("content")) for m in messages if m.get("role") == "system")
        prompted_tools = _tools_in(system)
        request = _Request(
            tools=native_tools or prompted_tools,
            native=bool(native_tools),
            parallel=body.get("parallel_tool_calls", True) if native_tools else _ONE_CALL_ONLY not in system,
            question="",
            answer_now=body.get("tool_choice") == "none",
        )
        # Everything after the latest real user turn belongs to the current exchange.
        for m in messages:
            role, text = m.get("role"), _text(m.get("content"))
            if role == "user" and text.strip() == self._answer_now_note:
                request.answer_now = True
            elif role == "user" and not _RESPONSE_TAG.search(text):
                request.question, request.calls, request.observations = text, [], []
                request.answer_now = body.get("tool_choice") == "none"
            elif role == "user":
                request.observations += _RESPONSE_TAG.findall(text)
            elif role == "tool":
                request.observations.append(text)
            elif role == "assistant":
                request.calls += _calls_in(m, text)
        return request

    # ---- deciding ----------------------------------------------------------------------------------------------
    def _decide_calls(self, request: _Request) -> list[_Call]:
        if not request.tools:
            return []
        made = {c.key() for c in request.calls}
        if request.observations and len(request.calls) >= len(request.observations):
            last_call, last_obs = request.calls[len(request.observations) - 1], request.observations[-1]
            again = _follow_up(last_call, last_obs, request.tools)
            if again is not None and again.key() not in made:
                return [again]
        remaining = [c for c in _plan(request.question, request.tools) if c.key() not in made]
        return remaining if request.parallel else remaining[:1]


def prompt_length(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> int:
    """Tokens of the ChatML prompt these messages (and native tools, rendered into the system turn) make."""
    parts = []
    if tools:
        parts.append("<|im_start|>system\n" + "\n".join(json.dumps(t) for t in tools) + "<|im_end|>\n")
    for m in messages:
        calls = "".join(json.dumps(c.get("function", c)) for c in m.get("tool_calls") or [])
        parts.append(f"<|im_start|>{m.get('role', 'user')}\n{_text(m.get('content'))}{calls}<|im_end|>\n")
    parts.append("<|im_start|>assistant\n")
    return sum(count_tokens(p) for p in parts)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _tools_in(system: str) -> list[dict[str, Any]]:
    """Tool schemas the ``nous`` format lists in the system prompt, one JSON object per line."""
    tools = []
    # Every block: the format's own wording ("within <tools></tools> XML tags") contains an empty one.
    for line in "\n".join(_TOOLS_BLOCK.findall(system)).splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict):
            tools.append(item.get("function", item))
    return tools


def _calls_in(message: dict[str, Any], text: str) -> list[_Call]:
    calls = []
    for tc in message.get("tool_calls") or []:
        fn = tc.get("function") or {}
        args = fn.get("arguments")
        calls.append(_Call(fn.get("name", ""), json.loads(args) if isinstance(args, str) and args else args or {}))
    for raw in _CALL_TAG.findall(text):
        try:
            data = json.loads(raw)
        except ValueError:
            continue
        calls.append(_Call(str(data.get("name", "")), dict(data.get("arguments") or {})))
    return calls


def _follow_up(call: _Call, observation: str, tools: list[dict[str, Any]]) -> _Call | None:
    """The call an observation asks for ("call again with page=2"), with values typed by the tool's schema."""
    match = _AGAIN.search(observation)
    tool = next((t for t in tools if t.get("name") == call.name), None)
    if match is None or tool is None:
        return None
    props = (tool.get("parameters") or {}).get("properties") or {}
    args = dict(call.arguments)
    for key, single, double, bare in _KEY_VALUE.findall(match.group(1)):
        if key in props:
            args[key] = _typed(single or double or bare, props[key])
    return _Call(call.name, args) if args != call.arguments else None


def _typed(value: str, schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    try:
        if kind == "integer":
            return int(float(value))
        if kind == "number":
            return float(value)
    except ValueError:
        return value
    if kind == "boolean":
        return value.lower() in ("true", "yes", "1")
    return value


def _words(text: str) -> set[str]:
    out = set()
    for w in re.findall(r"[a-z]+", text.lower().replace("_", " ")):
        if len(w) > 2 and w not in _STOPWORDS:
            out.add(w[:-1] if w.endswith("s") and len(w) > 3 else w)
    return out


def _plan(question: str, tools: list[dict[str, Any]]) -> list[_Call]:
    """The calls a cooperative model makes for ``question``: the best-matching tool, once per named entity."""
    asked = _words(question)
    best, best_score = None, 0
    for tool in tools:
        name = str(tool.get("name", ""))
        score = len(asked & _words(name + " " + str(tool.get("description", ""))))
        score += 10 if name and name in question else 0
        if score > best_score:
            best, best_score = tool, score
    if best is None:
        return []
    params = best.get("parameters") or {}
    props: dict[str, Any] = params.get("properties") or {}
    required = set(params.get("required") or [])
    entities = _entities(question, set(props))
    numbers = [n for n in _NUMBER.findall(question) if not any(n in e for e in entities)]
    fixed: dict[str, Any] = {}
    string_params = []
    for key, schema in props.items():
        kind = schema.get("type")
        if "enum" in schema:
            chosen = next((v for v in schema["enum"] if str(v).lower() in question.lower()), None)
            if chosen is not None or key in required:
                fixed[key] = chosen if chosen is not None else schema["enum"][0]
        elif kind in ("integer", "number"):
            if numbers:
                fixed[key] = _typed(numbers.pop(0), schema)
        elif kind == "string" or kind is None:
            string_params.append(key)
    if len(string_params) == 1 and string_params[0] in required and len(entities) > 1:
        return [_Call(str(best["name"]), {**fixed, string_params[0]: e}) for e in entities]
    args = dict(fixed)
    for key, value in zip(string_params, entities, strict=False):
        args[key] = value
    if not required <= set(args):
        return []  # a required value is nowhere in the request: answer (and say so) instead of guessing
    return [_Call(str(best["name"]), args)]


def _entities(question: str, param_names: set[str]) -> list[str]:
    """Values a request names, best kind first: quoted strings, then references (A-1001, backup.log), then
    capitalised names (a sentence's first word is capitalised anyway, so it only counts as part of a longer name)."""
    quoted = [a or b for a, b in _QUOTED.findall(question)]
    if quoted:
        return quoted
    references = _REFERENCE.findall(question)
    if references:
        return references
    names = []
    for match in _NAME.finditer(question):
        words = match.group(0).split()
        if not question[:match.start()].strip() or question[:match.start()].rstrip()[-1] in ".?!":
            words = words[1:]
        words = [w for w in words if w.lower() not in _STOPWORDS and w not in param_names]
        if words:
            names.append(" ".join(words))
    return list(dict.fromkeys(names))


def _answer(request: _Request) -> str:
    if request.observations:
        last = request.observations[-1]
        if _ERROR.search(last) and not _AGAIN.search(last):
            return f"I could not get the result: the tool reported an error ({_first_line(last)})."
        return "Based on the tool results: " + " ".join(_first_line(o) for o in request.observations)
    match = _ARITHMETIC.search(request.question)
    if match:
        a, op, b = float(match.group(1)), match.group(2).lower(), float(match.group(3))
        if b == 0 and op in ("/", "divided by"):
            return "Division by zero is undefined."
        ops = {"+": a + b, "plus": a + b, "-": a - b, "minus": a - b, "*": a * b, "x": a * b, "×": a * b,
               "times": a * b, "multiplied by": a * b, "/": a / b if b else 0.0, "divided by": a / b if b else 0.0}
        value = ops[op]
        shown = str(int(value)) if value.is_integer() else f"{value:g}"
        return f"{match.group(1)} {match.group(2)} {match.group(3)} equals {shown}."
    return "I do not know the answer to that."


def _first_line(text: str, limit: int = 300) -> str:
    line = next((x.strip() for x in text.splitlines() if x.strip()), "")
    return line[:limit]


def _limit(text: str, stop: Any, max_tokens: int) -> tuple[str, str]:
    """Cut at the first stop string (finish "stop") or after ``max_tokens`` tokens (finish "length")."""
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    if cut >= 0:
        text = text[:cut]
    pieces = split_tokens(text)
    if len(pieces) > max_tokens:
        return "".join(pieces[:max_tokens]), "length"
    return text, "stop"
