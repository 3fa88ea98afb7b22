"""Build the model the CLI talks to from its options: a model spec (`qwen_agent.llm.spec`), embedded by default."""

from __future__ import annotations

import argparse
import os
from typing import Any

from qwen_agent.llm.base import ChatModel
from qwen_agent.llm.spec import ModelSpec, load_model
from qwen_agent.llm.types import FunctionCalling, SamplingParams

__all__ = ["add_model_options", "add_next_call_option", "build_model", "model_spec"]


def add_model_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model")
    g.add_argument("--model", "-m", default=None,
                   help="model spec: llamacpp:[NAME|FILE.gguf], openai:URL[#served-name], transformers:[DIR|NAME], "
                        "or a bare catalogue name, .gguf path or URL (env QWEN_AGENT_MODEL_SPEC; default: the "
                        "embedded model). With --base-url: the server's model name (env QWEN_AGENT_MODEL)")
    g.add_argument("--base-url", default=os.environ.get("QWEN_AGENT_BASE_URL"),
                   help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1 (env QWEN_AGENT_BASE_URL); "
                        "same as --model openai:URL")
    g.add_argument("--api-key", default=None, help="API key for a server (env QWEN_AGENT_API_KEY/OPENAI_API_KEY)")
    g.add_argument("--mode", choices=["prompted", "native"], default="prompted",
                   help="prompted: our templates + parser; native: the server's tool parser (with our fallback)")
    g.add_argument("--format", dest="fc_format", choices=["nous", "qwen", "react"], default="nous",
                   help="function-calling prompt format")
    g.add_argument("--constrained", action="store_true",
                   help="constrain decoding to 'answer or valid call' (llama.cpp grammar; vLLM structured outputs)")
    add_next_call_option(g)
    g.add_argument("--temperature", type=float, default=None)
    g.add_argument("--max-tokens", type=int, default=None)
    g.add_argument("--max-input-tokens", type=int, default=None,
                   help="prompt budget in tokens; older turns and long tool results are left out to fit "
                        "(default 32768, or less if the model's context is smaller)")
    g.add_argument("--n-ctx", type=int, default=8192, help="embedded model context size")


def add_next_call_option(group: argparse._ArgumentGroup) -> None:
    """``--next-call-threshold``: how sure the model must be before a reply's first call is followed by more."""
    group.add_argument("--next-call-threshold", type=_threshold, default=FunctionCalling().next_call_threshold,
                       metavar="P|off", help="continue a reply that ends in a call with another while the model "
                                             "would open one with at least this probability (prompted mode, "
                                             "embedded model; default %(default)s; 'off': one reply as written)")


def _threshold(text: str) -> float | None:
    if text.lower() in {"off", "none"}:
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a probability between 0 and 1 or 'off', got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability between 0 and 1, got {value}")
    return value


def model_spec(args: argparse.Namespace) -> ModelSpec:
    """The spec the options name: ``--base-url`` (with ``--model`` as the served name) or ``--model``."""
    if args.base_url:
        return ModelSpec(backend="openai", target=args.base_url.rstrip("/"),
                         served_name=args.model or os.environ.get("QWEN_AGENT_MODEL", ""))
    return ModelSpec.parse(args.model)


def build_model(args: argparse.Namespace) -> ChatModel:
    params = SamplingParams(temperature=args.temperature, max_tokens=args.max_tokens)
    fc = FunctionCalling(mode=args.mode, format=args.fc_format, constrained=args.constrained,
                         next_call_threshold=args.next_call_threshold)
    spec = model_spec(args)
    options: dict[str, Any] = {}
    if spec.backend == "llamacpp":
        options["n_ctx"] = args.n_ctx
    elif spec.backend == "openai" and args.api_key:
        options["api_key"] = args.api_key
    return load_model(spec, params=params, function_calling=fc, max_input_tokens=args.max_input_tokens, **options)
