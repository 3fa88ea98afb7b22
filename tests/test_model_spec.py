"""Model specs: one string picks the backend, for the Python API and the CLI, with errors that say what to write."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from qwen_agent.llm.backends.llamacpp import LlamaCpp
from qwen_agent.llm.backends.openai_compat import OpenAICompatible
from qwen_agent.llm.errors import ModelConnectionError, ModelNotFoundError
from qwen_agent.llm.spec import ModelSpec, ModelSpecError, load_model
from qwen_agent.testing import ScriptedReply, ScriptedServer


@pytest.mark.parametrize(("text", "backend", "target", "served"), [
    ("", "llamacpp", "", ""),
    ("llamacpp:", "llamacpp", "", ""),
    ("llamacpp:qwen2.5-coder-1.5b", "llamacpp", "qwen2.5-coder-1.5b", ""),
    ("llamacpp:/models/q.gguf", "llamacpp", "/models/q.gguf", ""),
    ("qwen2.5-coder-0.5b", "llamacpp", "qwen2.5-coder-0.5b", ""),
    ("/models/other.gguf", "llamacpp", "/models/other.gguf", ""),
    ("openai:http://127.0.0.1:8000/v1#Qwen/Qwen1.5-7B-Chat", "openai", "http://127.0.0.1:8000/v1",
     "Qwen/Qwen1.5-7B-Chat"),
    ("openai:http://127.0.0.1:8000/v1/", "openai", "http://127.0.0.1:8000/v1", ""),
    ("http://127.0.0.1:8000/v1#m", "openai", "http://127.0.0.1:8000/v1", "m"),
    ("transformers:", "transformers", "", ""),
    ("transformers:/data/hf/qwen", "transformers", "/data/hf/qwen", ""),
    ("transformers:Qwen/Qwen2.5-0.5B-Instruct", "transformers", "Qwen/Qwen2.5-0.5B-Instruct", ""),
])
def test_specs_parse(text: str, backend: str, target: str, served: str) -> None:
    spec = ModelSpec.parse(text)
    assert (spec.backend, spec.target, spec.served_name) == (backend, target, served)
    assert ModelSpec.parse(str(spec)) == spec, "a spec prints as a spec that parses back to itself"


@pytest.mark.parametrize(("text", "message"), [
    ("ollama:qwen", "unknown backend 'ollama'"),
    ("openai:127.0.0.1:8000", "needs the server's base URL"),
    ("some-model-name", "cannot tell which backend"),
])
def test_bad_specs_say_what_to_write(text: str, message: str) -> None:
    with pytest.raises(ModelSpecError, match=message) as info:
        ModelSpec.parse(text)
    assert "openai:http://" in str(info.value)


def test_spec_comes_from_the_environment_when_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QWEN_AGENT_MODEL_SPEC", "openai:http://127.0.0.1:9/v1#x")
    assert ModelSpec.parse(None) == ModelSpec(backend="openai", target="http://127.0.0.1:9/v1", served_name="x")
    assert ModelSpec.parse("llamacpp:").backend == "llamacpp", "an explicit spec wins"


def test_load_model_builds_each_backend_without_loading_anything() -> None:
    embedded = load_model("llamacpp:", n_ctx=2048, max_input_tokens=1000)
    assert isinstance(embedded, LlamaCpp) and embedded.n_ctx == 2048 and embedded.max_input_tokens == 1000
    assert not embedded.loaded, "models load on first use"
    server = load_model("openai:http://127.0.0.1:9/v1#served", api_key="k")
    assert isinstance(server, OpenAICompatible)
    assert (server.base_url, server.model, server.api_key) == ("http://127.0.0.1:9/v1", "served", "k")


async def test_a_wrong_served_name_lists_what_the_server_offers() -> None:
    async with ScriptedServer(models=["qwen-a", "qwen-b"]) as srv:
        model = load_model(f"openai:{srv.base_url}#qwen-c")
        with pytest.raises(ModelNotFoundError) as info:
            await model.achat("hi")
        await model.aclose()
    assert "qwen-c" in str(info.value) and "qwen-a" in str(info.value) and "qwen-b" in str(info.value)


async def test_a_server_that_is_down_is_a_connection_error_naming_it() -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    model = load_model(f"openai:http://127.0.0.1:{port}/v1#m", max_retries=0)
    with pytest.raises(ModelConnectionError, match=str(port)):
        await model.achat("hi")
    await model.aclose()


def test_the_cli_takes_a_spec() -> None:
    with ScriptedServer(models=["qwen-test"]) as srv:
        srv.script(ScriptedReply.text("pong"))
        proc = subprocess.run([sys.executable, "-m", "qwen_agent.cli", "run", "ping", "--model",
                               f"openai:{srv.base_url}#qwen-test"],
                              capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr
        assert "pong" in proc.stdout
        assert srv.chat_requests[-1].body["model"] == "qwen-test"
