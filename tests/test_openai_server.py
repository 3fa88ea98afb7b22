"""Server-kind detection from ``GET /models`` and the request fields each kind gets (pure; the real vLLM server
is exercised by the conformance suite)."""

from __future__ import annotations

from qwen_agent.llm.backends.openai_server import ServerInfo, apply_dialect, server_root, tokenize_body
from qwen_agent.messages import Message, ToolSchema

VLLM_MODELS = {"object": "list", "data": [{"id": "qwen", "object": "model", "owned_by": "vllm", "root": "/m",
                                           "max_model_len": 4096}]}
LLAMA_CPP_PYTHON_MODELS = {"object": "list", "data": [{"id": "m.gguf", "object": "model", "owned_by": "me",
                                                       "permissions": []}]}


def test_vllm_is_recognised_with_its_context_length() -> None:
    info = ServerInfo.from_models(VLLM_MODELS, "qwen")
    assert (info.kind, info.models, info.max_model_len) == ("vllm", ["qwen"], 4096)


def test_llama_cpp_and_unknown_servers() -> None:
    assert ServerInfo.from_models(LLAMA_CPP_PYTHON_MODELS, "").kind == "llamacpp"
    assert ServerInfo.from_models({"data": [{"id": "gpt", "owned_by": "openai"}]}, "gpt").kind == "generic"
    assert ServerInfo.from_models(None, "x") == ServerInfo()
    assert ServerInfo.from_models("not json", "x") == ServerInfo()
    assert ServerInfo.from_models(LLAMA_CPP_PYTHON_MODELS, "", forced="vllm").kind == "vllm"


def test_vllm_gets_structured_outputs_and_answer_prefill() -> None:
    body = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "Final Answer: "}]}
    apply_dialect(body, "vllm", "root ::= \"x\"", None)
    assert body["structured_outputs"] == {"grammar": "root ::= \"x\""}
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
    assert "grammar" not in body


def test_llama_cpp_gets_a_top_level_grammar_and_no_vllm_fields() -> None:
    body = {"messages": [{"role": "assistant", "content": "x"}]}
    apply_dialect(body, "llamacpp", "g", None)
    assert body == {"messages": [{"role": "assistant", "content": "x"}], "grammar": "g"}
    body = {"messages": []}
    apply_dialect(body, "vllm", "g", "guided_grammar")
    assert body == {"messages": [], "guided_grammar": "g"}, "an explicit grammar_key wins"


def test_tokenize_request_and_root() -> None:
    assert server_root("http://127.0.0.1:8000/v1/") == "http://127.0.0.1:8000"
    assert server_root("http://127.0.0.1:8000") == "http://127.0.0.1:8000"
    tool = ToolSchema(name="f", description="d", parameters={"type": "object", "properties": {}})
    body = tokenize_body("qwen", [Message.user("hi")], [tool])
    assert body["model"] == "qwen" and body["messages"] == [{"role": "user", "content": "hi"}]
    assert body["tools"][0]["function"]["name"] == "f" and "continue_final_message" not in body
    assert tokenize_body("", [Message.assistant("so")], None)["continue_final_message"] is True
