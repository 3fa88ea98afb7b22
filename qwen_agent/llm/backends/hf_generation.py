"""What one `Transformers` request needs around `model.generate`: the prompt ids, stop words, streaming, cancelling.

Kept apart from the backend class so the pieces that decide what text the caller sees (stop-word cutting with a
held-back partial match, incremental decoding) are small and readable on their own.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Any

from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from qwen_agent.llm.backends.local import continuation_text, template_message
from qwen_agent.llm.types import SamplingParams
from qwen_agent.messages import Message

__all__ = ["StopCutter", "build_generation", "prompt_ids"]

#: GenerationConfig fields SamplingParams does not have that ``extra_body`` may set.
_EXTRA_FIELDS = frozenset({"min_p", "typical_p", "epsilon_cutoff", "eta_cutoff", "no_repeat_ngram_size",
                           "encoder_repetition_penalty", "length_penalty", "min_new_tokens", "top_h"})
_UNDERSTOOD = "generation-config fields such as " + ", ".join(sorted(_EXTRA_FIELDS))


def prompt_ids(tokenizer: Any, messages: list[Message]) -> list[int]:
    """The exact token ids of the prompt: the chat template with a generation prompt, or, when the last message is
    an assistant message (answer prefill), the template cut right after that message's text.

    transformers' own ``continue_final_message`` strips the final message's whitespace before cutting, and our
    answer prefixes end with a space ("Based on the tool results, "), so the cut is `local.continuation_text`'s, as for
    llama.cpp.
    """
    request = [template_message(m) for m in messages]
    if request and request[-1]["role"] == "assistant":
        text = continuation_text(
            lambda r: str(tokenizer.apply_chat_template(r, tokenize=False, add_generation_prompt=False)), request)
    else:
        text = tokenizer.apply_chat_template(request, tokenize=False, add_generation_prompt=True)
    return list(tokenizer.encode(text, add_special_tokens=False))


class StopCutter:
    """Cuts streamed text before the first stop word; holds back a tail that could be the start of one.

    ``feed`` returns what may be shown now; once a stop word is complete, ``stopped`` is set and everything from the
    stop word on is dropped. ``flush`` releases the held-back tail at the end of a stream that did not stop.
    """

    def __init__(self, stop: list[str]) -> None:
        self.stop = [s for s in stop if s]
        self.stopped = False
        self._held = ""

    def feed(self, text: str) -> str:
        if self.stopped or not text:
            return ""
        buf = self._held + text
        hits = [i for i in (buf.find(s) for s in self.stop) if i >= 0]
        if hits:
            self.stopped, self._held = True, ""
            return buf[:min(hits)]
        keep = self._partial_tail(buf)
        self._held = buf[len(buf) - keep:] if keep else ""
        return buf[:len(buf) - keep]

    def _partial_tail(self, buf: str) -> int:
        """Length of the longest suffix of ``buf`` that is a proper prefix of some stop word."""
        best = 0
        for word in self.stop:
            for n in range(min(len(word) - 1, len(buf)), best, -1):
                if buf.endswith(word[:n]):
                    best = n
                    break
        return best

    def flush(self) -> str:
        held, self._held = self._held, ""
        return "" if self.stopped else held


class _DeltaStreamer(BaseStreamer):
    """Decodes generated tokens incrementally and passes each new piece of text through the `StopCutter`.

    transformers calls ``put`` from inside ``generate`` (on our worker thread) once with the prompt, then once per
    new token, before the stopping criteria run, so a stop word is noticed at the very token that completes it.
    Text ending in U+FFFD is an incomplete UTF-8 character split across tokens and waits for the next token.
    """

    def __init__(self, tokenizer: Any, cutter: StopCutter, on_text: Callable[[str], None]) -> None:
        self.tokenizer = tokenizer
        self.cutter = cutter
        self.on_text = on_text
        self._ids: list[int] = []
        self._sent = 0
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self._ids.extend(int(x) for x in value.reshape(-1).tolist())
        self._emit(final=False)

    def end(self) -> None:
        self._emit(final=True)

    def _emit(self, *, final: bool) -> None:
        text = self.tokenizer.decode(self._ids, skip_special_tokens=True)
        if not final and text.endswith("\ufffd"):
            return
        if len(text) > self._sent:
            shown = self.cutter.feed(text[self._sent:])
            self._sent = len(text)
            if shown:
                self.on_text(shown)


class _StopWhen(StoppingCriteria):
    """Ends generation when the request is cancelled or a stop word was completed."""

    def __init__(self, cancel: threading.Event, cutter: StopCutter) -> None:
        self.cancel = cancel
        self.cutter = cutter

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        done = self.cancel.is_set() or self.cutter.stopped
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


class Generation:
    """The keyword arguments for ``model.generate`` and how to read why it ended."""

    def __init__(self, kwargs: dict[str, Any], streamer: _DeltaStreamer, cancel: threading.Event, cutter: StopCutter,
                 eos_ids: set[int]) -> None:
        self.kwargs = kwargs
        self.streamer = streamer
        self.cancel = cancel
        self.cutter = cutter
        self.eos_ids = eos_ids

    def finish_reason(self, generated: list[int], completion_tokens: int, max_new_tokens: int) -> str:
        if self.cutter.stopped or (generated and generated[-1] in self.eos_ids):
            return "stop"
        if self.cancel.is_set():
            return "cancelled"
        return "length" if completion_tokens >= max_new_tokens else "stop"


def build_generation(model: Any, tokenizer: Any, params: SamplingParams, max_new_tokens: int,
                     cancel: threading.Event, cutter: StopCutter, on_text: Callable[[str], None],
                     warn_extra: Callable[[str, str], None]) -> Generation:
    """Map `SamplingParams` onto a copy of the model's generation config (None keeps the model's default;
    temperature 0 means greedy)."""
    config: GenerationConfig = copy.deepcopy(model.generation_config)
    settings: dict[str, Any] = {"max_new_tokens": max_new_tokens}
    if params.temperature is not None:
        settings["do_sample"] = params.temperature > 0
        if params.temperature > 0:
            settings["temperature"] = params.temperature
    for ours, theirs in (("top_p", "top_p"), ("top_k", "top_k"), ("repeat_penalty", "repetition_penalty")):
        value = getattr(params, ours)
        if value is not None:
            settings[theirs] = value
    for name in ("presence_penalty", "frequency_penalty"):
        if getattr(params, name) is not None:
            warn_extra(name, _UNDERSTOOD)
    for key, value in params.extra_body.items():
        if key in _EXTRA_FIELDS:
            settings[key] = value
        else:
            warn_extra(key, _UNDERSTOOD)
    config.update(**settings)
    if not config.do_sample:  # greedy: sampling knobs left from the model's defaults would only raise warnings
        config.temperature = config.top_p = config.top_k = None
    if config.pad_token_id is None:
        config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos = config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    streamer = _DeltaStreamer(tokenizer, cutter, on_text)
    kwargs = {"generation_config": config, "streamer": streamer,
              "stopping_criteria": StoppingCriteriaList([_StopWhen(cancel, cutter)])}
    return Generation(kwargs, streamer, cancel, cutter, eos_ids)
