"""Build the model the CLI talks to from its options: the embedded llama.cpp model unless a server URL is given."""

from __future__ import annotations

import argparse
import os

from qwen_agent.llm.base import ChatModel, FunctionCalling, SamplingParams


def add_model_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model")
    g.add_argument("--model", "-m", default=None,
                   help="embedded: a catalogue name (see `models list`) or a GGUF path; with --base-url: the "
                        "server's model name (env QWEN_AGENT_MODEL)")
    g.add_argument("--base-url", default=os.environ.get("QWEN_AGENT_BASE_URL"),
                   help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1 (env QWEN_AGENT_BASE_URL); "
                        "default: the embedded model")
    g.add_argument("--api-key", default=None, help="API key for --base-url (env QWEN_AGENT_API_KEY/OPENAI_API_KEY)")
    g.add_argument("--mode", choices=["prompted", "native"], default="prompted",
                   help="prompted: our templates + parser; native: the server's tool parser (with our fallback)")
    g.add_argument("--format", dest="fc_format", choices=["nous", "qwen", "react"], default="nous",
                   help="function-calling prompt format")
    g.add_argument("--constrained", action="store_true",
                   help="constrain decoding to 'answer or valid call' (embedded model: llama.cpp grammar)")
    g.add_argument("--temperature", type=float, default=None)
    g.add_argument("--max-tokens", type=int, default=None)
    g.add_argument("--n-ctx", type=int, default=8192, help="embedded model context size")


def build_model(args: argparse.Namespace) -> ChatModel:
    params = SamplingParams(temperature=args.temperature, max_tokens=args.max_tokens)
    fc = FunctionCalling(mode=args.mode, format=args.fc_format, constrained=args.constrained)
    if args.base_url:
        from qwen_agent.llm.openai_compat import OpenAICompatible

        return OpenAICompatible(
            base_url=args.base_url,
            model=args.model or os.environ.get("QWEN_AGENT_MODEL", ""),
            api_key=args.api_key,
            params=params,
            function_calling=fc,
        )
    from qwen_agent.llm.llamacpp import LlamaCpp
    from qwen_agent.llm.model_store import resolve

    return LlamaCpp(model_path=resolve(args.model) if args.model else None, n_ctx=args.n_ctx, params=params,
                    function_calling=fc)
