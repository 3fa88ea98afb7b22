"""Loading llama-cpp-python safely: OpenMP waits, a crash-prone buffer type, KV-cache metering, grammar checks.

Everything here works around or measures a behaviour of llama-cpp-python 0.3.36 / llama.cpp itself; the
`LlamaCpp` backend (llamacpp.py) only calls these functions from its worker thread.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from collections.abc import Generator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from qwen_agent.llm.backends.local import continuation_text
from qwen_agent.llm.errors import ModelError, ModelRequestError

__all__ = [
    "CallStats",
    "chat_prompt",
    "checked_grammar",
    "continuation_prompt",
    "default_thread_counts",
    "import_llama_cpp",
    "load_llama",
    "metered_llama_class",
    "next_token_probability",
    "perf_counters",
]

_load_patch_lock = threading.Lock()


def import_llama_cpp() -> ModuleType:
    """Import llama_cpp with OpenMP told to sleep, not spin, at its barriers.

    llama.cpp's CPU backend runs its threads through OpenMP, whose workers spin while waiting at the hundreds of
    barriers of each token. When the cores are shared (CI, a laptop compiling, a sandboxed kernel running),
    spinning threads starve each other (on 2 busy cores a reply took many times longer spinning than sleeping). libgomp
    reads OMP_WAIT_POLICY once, when llama_cpp loads it; the variable is set only for that moment (a user's own
    value wins) so other OpenMP libraries loaded later (torch) keep their defaults.
    """
    if "llama_cpp" in sys.modules:
        return sys.modules["llama_cpp"]
    added = "OMP_WAIT_POLICY" not in os.environ
    if added:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        import llama_cpp
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ModelError("the embedded backend needs llama-cpp-python: pip install 'llama-cpp-python==0.3.36'") \
            from exc
    finally:
        if added:
            os.environ.pop("OMP_WAIT_POLICY", None)
    return sys.modules[llama_cpp.__name__]


def default_thread_counts() -> tuple[int, int]:
    """Default (decode, prompt) thread counts: every usable core for both.

    Measured side by side in fresh processes (benchmarks/bench_embedded_model.py, 2 cores, Qwen2.5-0.5B, 96 tokens):
    2 decode threads with the PASSIVE wait policy set above decoded at 20.4 tok/s where llama-cpp-python's own
    rule (``cpu_count // 2`` = 1 decode thread) gave 13.7 (1.50x), and with two CPU hogs running both gave the same
    (0.90x vs 0.89x of llama-cpp-python's default). An earlier idle measurement had the 1-thread default ahead
    (36 vs 19-20 tok/s); it did not reproduce, so the faster measured setting stays. Spinning waits are not an
    option: bounded spinning (``GOMP_SPINCOUNT`` 10k / 100k) fell to 0.63x / 0.18x on busy cores, and unbounded
    spinning stalled a busy machine (6 s -> 97 s). Cores are those this process may run on (its affinity mask).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(cores, 1), max(cores, 1)


class CallStats:
    """Filled by the metered `generate` during one request: what the prompt cost and what came out."""

    def __init__(self) -> None:
        self.prompt_tokens = 0
        self.cached_prompt_tokens: int | None = None
        self.completion_tokens = 0


@functools.cache
def metered_llama_class() -> type:
    """A `Llama` that counts the tokens it really evaluates, to report what the KV cache spared.

    Llama.generate keeps the longest common prefix of the previous tokens in the KV cache and passes only the
    rest to `eval`; every generated token goes through `eval` too. Counting eval'd tokens until the first token
    is sampled (all prompt evaluation is done by then, no generated token yet) gives the prompt tokens evaluated;
    the remainder of the prompt came from the cache. The figures land in ``llm.stats`` (a `CallStats`).
    """
    llama_cpp = import_llama_cpp()

    class MeteredLlama(llama_cpp.Llama):  # type: ignore[misc,name-defined]  # llama_cpp is not analysed
        stats = CallStats()
        evaluated = 0

        def eval(self, tokens: Sequence[int]) -> None:
            self.evaluated += len(tokens)
            super().eval(tokens)

        def generate(self, tokens: Sequence[int], *args: Any, **kwargs: Any) -> Generator[int, Any, None]:
            prompt = list(tokens)
            stats = self.stats = CallStats()
            stats.prompt_tokens = len(prompt)
            before = self.evaluated
            inner = super().generate(prompt, *args, **kwargs)
            vocab = self._model.vocab

            def measure() -> None:
                if stats.cached_prompt_tokens is None:
                    stats.cached_prompt_tokens = max(0, len(prompt) - (self.evaluated - before))

            def metered() -> Generator[int, Any, None]:
                sent = None
                try:
                    while True:
                        try:
                            token = inner.send(sent)
                        except StopIteration:
                            return
                        measure()
                        if not llama_cpp.llama_vocab_is_eog(vocab, token):  # counted like llama.cpp's usage
                            stats.completion_tokens += 1
                        sent = yield token
                finally:
                    measure()
                    inner.close()

            return metered()

    return MeteredLlama


def load_llama(path: Path, *, extra_buffer_types: bool, **kwargs: Any) -> Any:
    """Construct a metered `Llama`; a file llama.cpp refuses becomes a `ModelError` instead of a traceback.

    ``extra_buffer_types=False`` turns off llama.cpp's weight-repacking buffers (AMX, CPU repack): on virtual
    machines that advertise AMX the AMX path crashed the process with a segfault at the first decode, and the
    quantisations we ship gain little from repacking. Llama() builds its model params from
    llama_model_default_params() and loads at once, with no argument for this, so the default is patched for
    the duration of the construction only.
    """
    cls = metered_llama_class()
    llama_module = sys.modules["llama_cpp.llama"]
    with _load_patch_lock:
        original = llama_module.llama_cpp.llama_model_default_params

        def default_params() -> Any:
            params = original()
            params.use_extra_bufts = extra_buffer_types
            return params

        llama_module.llama_cpp.llama_model_default_params = default_params
        try:
            return cls(model_path=str(path), **kwargs)
        except ValueError as exc:
            raise ModelError(f"llama.cpp could not load {path} ({exc}): it is not a valid GGUF model or is "
                             "damaged. Download it again (`qwen-agent models pull NAME` for a catalogue model)") \
                from exc
        finally:
            llama_module.llama_cpp.llama_model_default_params = original


def checked_grammar(llm: Any, text: str) -> Any:
    """A `LlamaGrammar` for GBNF ``text``, parsed by llama.cpp first.

    llama-cpp-python hands the grammar to llama.cpp unchecked, and a grammar that fails to parse becomes a null
    sampler that crashes the process; parsing it once here turns that into a readable `ModelRequestError`.
    """
    llama_cpp = import_llama_cpp()
    sampler = llama_cpp.llama_sampler_init_grammar(llm._model.vocab, text.encode("utf-8"), b"root")
    if not sampler:
        raise ModelRequestError("llama.cpp could not parse the GBNF grammar (it needs a `root` rule); grammar starts "
                                f"with: {text[:200]!r}")
    llama_cpp.llama_sampler_free(sampler)
    return llama_cpp.LlamaGrammar.from_string(text, verbose=False)


def perf_counters(llm: Any) -> Any:
    """llama.cpp's cumulative evaluation counters for ``llm``'s context (llama_perf_context_data)."""
    return import_llama_cpp().llama_perf_context(llm._ctx.ctx)


def _formatter(llm: Any, *, add_generation_prompt: bool) -> Any:
    """A Jinja2 formatter for the GGUF's own chat template (cached on the model object)."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        raise ModelRequestError("this GGUF has no chat template, so its prompt cannot be rendered here")
    cache = llm.__dict__.setdefault("_qwen_agent_formatters", {})
    key = (template, add_generation_prompt)
    formatter = cache.get(key)
    if formatter is None:
        eos_id, bos_id = llm.token_eos(), llm.token_bos()
        eos = llm._model.token_get_text(eos_id) if eos_id != -1 else ""
        bos = llm._model.token_get_text(bos_id) if bos_id != -1 else ""
        formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos,
                                        add_generation_prompt=add_generation_prompt)
        cache[key] = formatter
    return formatter


def chat_prompt(llm: Any, messages: list[dict[str, Any]]) -> str:
    """The exact prompt text a request for ``messages`` sends: a new assistant turn is opened after the last
    message, or, when the last message is an assistant's, the prompt ends inside it (`continuation_prompt`)."""
    if messages and messages[-1]["role"] == "assistant":
        return continuation_prompt(llm, messages)
    return str(_formatter(llm, add_generation_prompt=True)(messages=messages).prompt)


def continuation_prompt(llm: Any, messages: list[dict[str, Any]]) -> str:
    """The prompt, rendered with the GGUF's own chat template, that ends *inside* the final assistant message.

    llama-cpp-python's chat API always opens a new assistant turn after the last message; to continue a given
    assistant prefix (answer prefill) the template is rendered here without a generation prompt and cut where the
    prefix ends (`local.continuation_text`).
    """
    formatter = _formatter(llm, add_generation_prompt=False)
    return continuation_text(lambda request: str(formatter(messages=request).prompt), messages)


def next_token_probability(llm: Any, prompt: str, token: str) -> float:
    """The probability that the token after ``prompt`` is ``token`` (its first token, if it takes several).

    Evaluated the way `Llama.generate` would: the longest prefix already in the KV cache is kept and only the rest
    is evaluated (at least one token, so the logits are this prompt's). llama-cpp-python keeps no logits unless
    the model was loaded with ``logits_all`` (which costs a row of vocabulary size per token), so the last row is
    read from the llama.cpp context directly.
    """
    import numpy as np

    ids = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
    wanted = llm.tokenize(token.encode("utf-8"), add_bos=False, special=True)
    if not ids or not wanted:
        raise ModelRequestError("an empty prompt or token has no next-token probability")
    if len(ids) > llm.n_ctx():
        raise ModelRequestError(f"the prompt takes {len(ids)} tokens, over the context window of {llm.n_ctx()}")
    cached = llm.input_ids[: llm.n_tokens]
    keep, limit = 0, min(len(cached), len(ids) - 1)
    while keep < limit and cached[keep] == ids[keep]:
        keep += 1
    llm.n_tokens = keep
    llm.eval(ids[keep:])
    logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).astype(np.float64)
    exp = np.exp(logits - logits.max())
    return float(exp[wanted[0]] / exp.sum())
