"""An agent against an OpenAI-compatible server (vLLM, SGLang, Ollama, LM Studio, llama.cpp server, ...).

Give the server with ``--base-url`` (or QWEN_AGENT_BASE_URL) and its model name with ``--model``. Without a URL the
example starts llama.cpp's own OpenAI-compatible server on 127.0.0.1 with the embedded model (extra ``[server]``),
so it runs offline as written:

    python examples/openai_server.py                                   # starts a local llama.cpp server
    python examples/openai_server.py --base-url http://127.0.0.1:8000/v1 --model Qwen/Qwen2.5-7B-Instruct --native
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx

from qwen_agent.agents import Agent
from qwen_agent.llm.base import FunctionCalling, SamplingParams
from qwen_agent.llm.model_store import default_model_path
from qwen_agent.llm.openai_compat import OpenAICompatible
from qwen_agent.tools import tool


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
def local_llama_server() -> Iterator[str]:
    """Start `python -m llama_cpp.server` on a free loopback port; yield its base URL; stop it afterwards."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(default_model_path()), "--host", "127.0.0.1",
           "--port", str(port), "--n_ctx", "4096", "--model_alias", "qwen2.5-coder-0.5b"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError("llama_cpp.server exited; is the [server] extra installed?")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base_url}/models", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("llama_cpp.server did not start within 60 s")
            time.sleep(0.2)
        yield base_url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-url", default=os.environ.get("QWEN_AGENT_BASE_URL"))
    ap.add_argument("--model", default=os.environ.get("QWEN_AGENT_MODEL", "qwen2.5-coder-0.5b"))
    ap.add_argument("--native", action="store_true", help="use the server's tool parser (vLLM --tool-call-parser)")
    ap.add_argument("question", nargs="?", default="Where is my order A-1001?")
    a = ap.parse_args()
    with contextlib.ExitStack() as stack:
        base_url = a.base_url or stack.enter_context(local_llama_server())
        model = OpenAICompatible(base_url, model=a.model, params=SamplingParams(temperature=0.0, max_tokens=256),
                                 function_calling=FunctionCalling(mode="native" if a.native else "prompted"))
        with Agent(model, tools=[get_order_status]) as agent:
            result = agent.run(a.question)
        for m in result.messages:
            calls = ", ".join(f"{c.name}({c.arguments})" for c in m.tool_calls or [])
            print(f"{m.role:9} {calls or m.text}")
    return 0 if result.tool_calls else 1


if __name__ == "__main__":
    sys.exit(main())
