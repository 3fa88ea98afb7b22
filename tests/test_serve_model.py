"""`qwen-agent serve` with the real embedded model (Qwen2.5-Coder-0.5B on llama.cpp): an agent answer with a tool
step, a client-side tool call round trip through the `openai` client, and a RAG answer with annotations."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from qwen_agent.server import BackgroundServer, ServeConfig

pytestmark = pytest.mark.model

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}},
                   "required": ["city"]}}}


@pytest.fixture(scope="module")
def knowledge(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from qwen_agent.retrieval import KnowledgeBase

    docs = tmp_path_factory.mktemp("docs")
    (docs / "handbook.md").write_text(
        "# Staff handbook\n\n## Holidays\n\nEvery employee gets 28 days of paid holiday per calendar year. "
        "Unused days expire on 31 March.\n\n## Expenses\n\nTravel expenses are refunded within 14 days.\n")
    store = tmp_path_factory.mktemp("store")
    KnowledgeBase.build(docs, store).close()
    return store


@pytest.fixture(scope="module")
def server(embedded_model, knowledge: Path) -> Iterator[BackgroundServer]:
    config = ServeConfig.model_validate({
        "server": {"port": 0, "kernel_pool": 0},
        "profiles": {
            "assistant": {"tools": ["calculator"], "max_steps": 4,
                          "function_calling": {"format": "nous", "constrained": True}},
            "proxy": {},
            "rag": {"knowledge": str(knowledge), "max_steps": 2},
        }})
    with BackgroundServer(config, model_factory=lambda spec: embedded_model) as srv:
        yield srv


@pytest.fixture
def client(server: BackgroundServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=300) as c:
        yield c


def test_an_agent_answer_with_a_tool_step(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": "What is 1234 * 5678? Use the calculator."}])
    events = reply.model_extra["x_agent_events"]
    results = [e for e in events if e["type"] == "tool_result"]
    assert results and results[0]["tool"] == "calculator" and results[0]["result"] == "7006652"
    assert "calculator" in reply.choices[0].message.model_extra["reasoning_content"]
    assert reply.choices[0].message.content.strip() and not reply.choices[0].message.tool_calls


def test_a_client_side_tool_call_round_trip(client: openai.OpenAI) -> None:
    messages: list[dict] = [{"role": "user", "content": "What's the weather in Paris right now?"}]
    first = client.chat.completions.create(model="proxy", messages=messages, tools=[WEATHER])
    assert first.choices[0].finish_reason == "tool_calls"
    call = first.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments)["city"].lower().startswith("paris")
    messages += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": '{"temperature_c": 18, "sky": "sunny"}'}]
    final = client.chat.completions.create(model="proxy", messages=messages, tools=[WEATHER])
    text = final.choices[0].message.content or ""
    assert final.choices[0].finish_reason == "stop" and ("18" in text or "sunny" in text.lower()), text


def test_a_rag_answer_carries_annotations(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="rag", stream=True, messages=[{"role": "user", "content": "How many days of paid holiday do I get?"}])
    content, annotations = "", []
    for chunk in stream:
        for choice in chunk.choices:
            content += choice.delta.content or ""
            annotations += choice.delta.model_extra.get("annotations") or []
    assert "28" in content
    assert annotations, content
    citation = annotations[0]["url_citation"]
    assert annotations[0]["type"] == "url_citation" and citation["source"] == "handbook.md"
    assert content[citation["start_index"]:citation["end_index"]].startswith("[handbook.md")
    document = httpx.get(citation["url"])
    assert document.status_code == 200 and "28 days" in document.text
    wrong = re.sub(r"/v1/knowledge/[^/]+/", "/v1/knowledge/guessed-token/", citation["url"])
    assert httpx.get(wrong).status_code == 404


def _ask_rag(client: openai.OpenAI, question: str, session: str) -> tuple[str, list[dict]]:
    stream = client.chat.completions.create(model="rag", stream=True, extra_headers={"X-Session-Id": session},
                                            messages=[{"role": "user", "content": question}])
    content, annotations = "", []
    for chunk in stream:
        for choice in chunk.choices:
            content += choice.delta.content or ""
            annotations += choice.delta.model_extra.get("annotations") or []
    return content, annotations


def test_a_document_uploaded_into_a_session_is_answered_from_and_cited(
        server: BackgroundServer, client: openai.OpenAI) -> None:
    """The web page's "documents for rag" upload: indexed for the session, cited with the session's own file URL,
    and invisible to every other session."""
    text = ("# Visitor guide\n\n## Parking\n\nVisitors park on level 3 of the north garage, in bay 41. "
            "The gate code is given at reception.\n")
    up = httpx.post(f"{server.base_url}/files?filename=visitors.md", content=text.encode(),
                    headers={"X-Session-Id": "uploader"})
    assert up.status_code == 200, up.text
    assert up.json()["x_indexed_for"] == ["rag"] and up.json()["x_index_errors"] == []

    question = "Which garage, level and bay do visitors park in?"
    content, annotations = _ask_rag(client, question, "uploader")
    assert "41" in content or "north garage" in content, content
    cited = [a["url_citation"] for a in annotations if a["url_citation"]["source"] == "visitors.md"]
    assert cited, (content, annotations)
    assert "/v1/files/" in cited[0]["url"] and "/v1/knowledge/" not in cited[0]["url"]
    document = httpx.get(cited[0]["url"].split("#")[0])
    assert document.status_code == 200 and "bay 41" in document.text

    other, other_notes = _ask_rag(client, question, "someone-else")
    assert all(a["url_citation"]["source"] != "visitors.md" for a in other_notes), other_notes
    assert "41" not in other and "north garage" not in other, other


def test_an_unreadable_document_upload_is_kept_and_reported(server: BackgroundServer, client: openai.OpenAI) -> None:
    up = httpx.post(f"{server.base_url}/files?filename=broken.pdf", content=b"%PDF-1.7 not really a pdf",
                    headers={"X-Session-Id": "broken-upload"})
    assert up.status_code == 200, up.text
    body = up.json()
    assert body["x_indexed_for"] == [] and body["x_index_errors"], body
    assert "/tmp" not in body["x_index_errors"][0]  # the server's own paths are not shown
    assert httpx.get(body["url"]).content.startswith(b"%PDF-1.7")  # the file itself is kept
    content, _ = _ask_rag(client, "How many days of paid holiday do I get?", "broken-upload")
    assert "28" in content, content
