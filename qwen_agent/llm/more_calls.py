"""Asking a small model for the calls after its first one, when it would write them if it went on.

Asked for the same operation on several inputs ("the BMI of a 6 ft, 80 kg person and of a 5.6 ft, 60 kg one"),
the 0.5B model writes the first call right and ends its turn: 0 of 50 on BFCL's parallel category, whatever the
prompt says about several calls. Yet made to go on after that call, it writes the next one, and right after its
last needed call its own probability of opening another block falls (on BFCL's tuning items: above 0.8 after a
call that leaves work to do, mostly below 0.3 after the last one). So a reply that ends in a call is continued,
one call at a time, while the model itself would open another with at least `FunctionCalling.next_call_threshold`.

A continuation is kept only if it adds exactly one valid call (an offered function, arguments that fit) that is
not a repeat of an earlier one and leaves the reply's text as it was; otherwise the reply stands as written. The
cost is one next-token probability per call (a few tokens on top of the KV cache) plus the tokens of the calls
that are added.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from qwen_agent.llm.planning import Plan
from qwen_agent.llm.types import RawChunk, SamplingParams
from qwen_agent.messages import Message, ToolCall
from qwen_agent.prompting.call_check import check_calls
from qwen_agent.prompting.turn_markers import MARKERS

__all__ = ["CALL_MAX_TOKENS", "MAX_EXTRA_CALLS", "Continued", "continue_calls"]

#: At most this many calls are added to one reply (BFCL's parallel items ask for up to 6 in all).
MAX_EXTRA_CALLS = 7
#: One added call may take this many tokens; a longer one is dropped (it is not a call the model meant).
CALL_MAX_TOKENS = 256

Probability = Callable[[list[Message], str], Awaitable[float]]
Complete = Callable[[list[Message], SamplingParams], Awaitable[RawChunk]]


@dataclass
class Continued:
    """The reply's text with the calls that were added, and what asking for them cost."""

    text: str
    #: Calls added to the reply.
    added: int = 0
    #: Tokens generated for continuations, kept or not.
    completion_tokens: int = 0
    #: Next-token probabilities asked for.
    probes: int = 0


async def continue_calls(plan: Plan, text: str, *, probability: Probability, complete: Complete) -> Continued:
    """``text`` (a complete reply to ``plan``) with the further calls the model would write after its last one."""
    out = Continued(text)
    threshold = plan.next_call_threshold
    if threshold is None or not plan.messages or plan.messages[-1].role == "assistant":
        return out
    if any(marker in text for marker in MARKERS):  # it would go back to the model as turn structure
        return out
    first = plan.fmt.parse(text, plan.parse_tools)
    calls = check_calls(first.tool_calls, plan.parse_tools).calls
    if not calls or first.errors:
        return out
    seen = {_key(call) for call in calls}
    for _ in range(MAX_EXTRA_CALLS):
        opener = plan.fmt.call_opener(out.text)
        if opener is None:
            break
        base = out.text.rstrip()
        out.probes += 1
        if await probability([*plan.messages, Message.assistant(base + "\n")], opener.probe) < threshold:
            break
        params = plan.params.model_copy(update={"stop": [opener.stop], "max_tokens": CALL_MAX_TOKENS})
        raw = await complete([*plan.messages, Message.assistant(base + opener.opener)], params)
        out.completion_tokens += raw.usage.completion_tokens if raw.usage else 0
        if raw.finish_reason == "length":
            break
        candidate = base + opener.opener + raw.text + opener.closer
        reread = plan.fmt.parse(candidate, plan.parse_tools)
        now = check_calls(reread.tool_calls, plan.parse_tools).calls
        if (len(now) != len(calls) + 1 or _key(now[-1]) in seen or reread.errors
                or reread.content.strip() != first.content.strip()):
            break
        calls, out.text, out.added = now, candidate, out.added + 1
        seen.add(_key(now[-1]))
    return out


def _key(call: ToolCall) -> str:
    return json.dumps([call.name, call.arguments], sort_keys=True, default=str)
