"""Recorded runs and their export: real agent runs on the scripted server, recorded, exported to the three formats,
checked against LLaMA-Factory's ordering rules, round-tripped, and rendered with the embedded model's own Qwen chat
template (transformers' ``apply_chat_template(tools=...)``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support_trajectories import record_runs

from qwen_agent.trajectories import TrajectoryFormatError, TrajectoryRecorder, export_trajectories, read_trajectories
from qwen_agent.trajectories.formats import OBSERVATION_JOIN, read_openai_record

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record_runs(tmp_path_factory.mktemp("runs"))


def test_recorded_runs_hold_messages_tools_model_and_outcome(runs: Path) -> None:
    recorded = list(read_trajectories([runs]))
    assert [r.stop_reason for r in recorded] == ["answer", "answer", "max_steps", "answer"]
    first = recorded[0]
    assert first.agent == "travel" and first.model == "qwen-test" and first.provider == "openai"
    assert (first.format, first.mode) == ("nous", "native")
    assert [t["function"]["name"] for t in first.tools] == ["get_weather", "get_time"]
    assert [m["role"] for m in first.messages] == ["system", "user", "assistant", "tool", "tool", "assistant"]
    assert first.steps == 2 and first.prompt_tokens == 20 and first.score is None
    assert recorded[3].tools == []


def _export(runs: Path, tmp_path: Path, fmt: str, **kw: Any) -> list[dict[str, Any]]:
    out = tmp_path / f"{fmt}.jsonl"
    report = export_trajectories([runs], out, fmt, **kw)  # type: ignore[arg-type]
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert report.written == len(lines)
    return lines


def test_openai_export_round_trips(runs: Path, tmp_path: Path) -> None:
    recorded = list(read_trajectories([runs]))
    records = _export(runs, tmp_path, "openai")
    assert len(records) == 4
    for run, record in zip(recorded, records, strict=True):
        messages, tools = read_openai_record(json.loads(json.dumps(record)))
        original = run.typed_messages()
        assert [(m.role, m.text, m.tool_call_id) for m in messages] == \
               [(m.role, m.text, m.tool_call_id) for m in original]
        assert [[(c.name, c.arguments, c.id) for c in m.tool_calls or []] for m in messages] == \
               [[(c.name, c.arguments, c.id) for c in m.tool_calls or []] for m in original]
        assert tools == run.typed_tools()
    tool_msg = records[0]["messages"][3]
    assert tool_msg["role"] == "tool" and tool_msg["name"] == "get_weather" and tool_msg["tool_call_id"]
    assert isinstance(records[0]["messages"][2]["tool_calls"][0]["function"]["arguments"], str)


def _llamafactory_accepts(record: dict[str, Any]) -> bool:
    """LLaMA-Factory's SharegptDatasetConverter checks (non-ranking data): human/observation at even indexes
    (1st, 3rd ... turn), gpt/function_call at odd ones, an even number of turns."""
    odd, even = ("human", "observation"), ("gpt", "function_call")
    turns = record["conversations"]
    return all(t["from"] in (odd, even)[i % 2] for i, t in enumerate(turns)) and len(turns) % 2 == 0


def test_llamafactory_export_follows_the_converter_rules(runs: Path, tmp_path: Path) -> None:
    records = _export(runs, tmp_path, "llamafactory")
    assert len(records) == 4 and all(_llamafactory_accepts(r) for r in records)
    parallel = records[0]
    assert parallel["system"] == "You are a travel helper."
    assert [t["from"] for t in parallel["conversations"]] == ["human", "function_call", "observation", "gpt"]
    calls = json.loads(parallel["conversations"][1]["value"])
    assert calls == [{"name": "get_weather", "arguments": {"city": "Paris"}},
                     {"name": "get_weather", "arguments": {"city": "Tokyo"}}]
    results = ["Paris: 21 degrees celsius", "Tokyo: 21 degrees celsius"]
    assert parallel["conversations"][2]["value"] == OBSERVATION_JOIN.join(results)
    assert [t["name"] for t in json.loads(parallel["tools"])] == ["get_weather", "get_time"]
    sequential = records[1]["conversations"]
    assert [t["from"] for t in sequential] == ["human", "function_call", "observation", "function_call",
                                              "observation", "gpt"]
    assert json.loads(sequential[1]["value"]) == {"name": "get_time", "arguments": {"tz": "Europe/Paris"}}
    cut = records[2]["conversations"]  # max_steps: the trailing observation is dropped, the call is kept
    assert [t["from"] for t in cut] == ["human", "function_call"]
    assert records[3]["tools"] == "[]"
    info = json.loads((tmp_path / "dataset_info.json").read_text(encoding="utf-8"))
    assert info["llamafactory"]["file_name"] == "llamafactory.jsonl"
    assert info["llamafactory"]["formatting"] == "sharegpt"
    assert info["llamafactory"]["columns"] == {"messages": "conversations", "system": "system", "tools": "tools"}
    assert info["llamafactory"]["tags"]["function_tag"] == "function_call"


def test_axolotl_export_has_object_arguments_and_tool_call_ids(runs: Path, tmp_path: Path) -> None:
    records = _export(runs, tmp_path, "axolotl")
    msgs = records[0]["messages"]
    call = msgs[2]["tool_calls"][0]
    assert call["type"] == "function" and call["function"] == {"name": "get_weather", "arguments": {"city": "Paris"}}
    assert msgs[3] == {"role": "tool", "content": "Paris: 21 degrees celsius", "tool_call_id": call["id"],
                       "name": "get_weather"}
    assert records[0]["tools"][0]["function"]["name"] == "get_weather"
    yaml_text = (tmp_path / "axolotl.axolotl.yaml").read_text(encoding="utf-8")
    import yaml

    config = yaml.safe_load(yaml_text)
    [ds] = config["datasets"]
    assert ds["type"] == "chat_template" and ds["field_tools"] == "tools" and ds["path"].endswith("axolotl.jsonl")


def test_min_score_keeps_only_good_scored_runs(tmp_path: Path) -> None:
    from qwen_agent.messages import Message
    from qwen_agent.trajectories import Trajectory

    recorder = TrajectoryRecorder(tmp_path / "scored")
    for score in (None, 0.0, 0.5, 1.0):
        recorder.write(Trajectory.build([Message.user("q"), Message.assistant("a")], [], score=score))
    recorder.close()
    report = export_trajectories([tmp_path / "scored"], tmp_path / "good.jsonl", "openai", min_score=0.5)
    assert (report.written, report.below_score, report.unscored) == (2, 1, 1)


def test_corrupt_run_files_raise_a_typed_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"schema_version": 1, "messages": []}\n{"messages": [\n', encoding="utf-8")
    with pytest.raises(TrajectoryFormatError, match=r"bad\.jsonl:2: not a recorded run"):
        list(read_trajectories([bad]))
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text('{"schema_version": 7, "messages": []}\n', encoding="utf-8")
    with pytest.raises(TrajectoryFormatError, match=r"wrong\.jsonl:1"):
        list(read_trajectories([wrong]))
    binary = tmp_path / "blob.jsonl"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(TrajectoryFormatError, match="not UTF-8"):
        list(read_trajectories([binary]))
    with pytest.raises(TrajectoryFormatError, match="does not exist"):
        list(read_trajectories([tmp_path / "missing"]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrajectoryFormatError, match="no recorded runs"):
        list(read_trajectories([tmp_path / "empty"]))


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def test_cli_export(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli" / "data.jsonl"
    proc = subprocess.run([sys.executable, "-m", "qwen_agent.cli", "export", "--format", "llamafactory", str(runs),
                           "-o", str(out)], env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "4 runs" in proc.stdout and (tmp_path / "cli" / "dataset_info.json").exists()
    assert len(out.read_text(encoding="utf-8").splitlines()) == 4
    bad = tmp_path / "corrupt.jsonl"
    bad.write_text("not json\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "qwen_agent.cli", "export", str(bad), "-o", str(tmp_path / "x")],
                          env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "TrajectoryFormatError" in proc.stderr and "corrupt.jsonl:1" in proc.stderr


# ---- rendering through the embedded model's Qwen chat template ------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer(hf_folder: Path) -> Iterator[Any]:
    from transformers import AutoTokenizer

    yield AutoTokenizer.from_pretrained(hf_folder)


def _as_template_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a trainer hands the template: tool-call arguments as objects (HF's documented shape)."""
    out = []
    for m in messages:
        m = dict(m)
        if m.get("tool_calls"):
            m["tool_calls"] = [{**c, "function": {**c["function"], "arguments": json.loads(c["function"]["arguments"])
                                                  if isinstance(c["function"]["arguments"], str)
                                                  else c["function"]["arguments"]}} for c in m["tool_calls"]]
        out.append(m)
    return out


def _from_llamafactory(record: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rebuild chat messages from a ShareGPT record as LLaMA-Factory's Qwen template would lay them out."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": record["system"]}] if record["system"] else []
    for turn in record["conversations"]:
        kind, value = turn["from"], turn["value"]
        if kind == "human":
            messages.append({"role": "user", "content": value})
        elif kind == "gpt":
            messages.append({"role": "assistant", "content": value})
        elif kind == "function_call":
            calls = json.loads(value)
            calls = calls if isinstance(calls, list) else [calls]
            messages.append({"role": "assistant", "content": "", "tool_calls": [
                {"type": "function", "function": c} for c in calls]})
        else:
            messages += [{"role": "tool", "content": part} for part in value.split(OBSERVATION_JOIN)]
    tools = [{"type": "function", "function": t} for t in json.loads(record["tools"])]
    return messages, tools


def _check_rendered(text: str, messages: list[dict[str, Any]]) -> None:
    assert text.startswith("<|im_start|>system")
    conversation = text.split("<|im_end|>", 1)[1]  # the system turn describes the <tool_call> format itself
    calls = [c["function"] for m in messages for c in m.get("tool_calls") or []]
    assert conversation.count("<tool_call>") == len(calls) == conversation.count("</tool_call>")
    for c in calls:
        call = json.dumps({"name": c["name"], "arguments": c["arguments"]}, ensure_ascii=False)
        assert f"<tool_call>\n{call}\n</tool_call>" in conversation
    results = [m for m in messages if m["role"] == "tool"]
    assert conversation.count("<tool_response>") == len(results)
    assert text.rstrip().endswith("<|im_end|>")


@pytest.mark.transformers
@pytest.mark.parametrize("fmt", ["openai", "axolotl", "llamafactory"])
def test_every_exported_record_renders_through_the_qwen_template(runs: Path, tmp_path: Path, tokenizer: Any,
                                                                 fmt: str) -> None:
    for record in _export(runs, tmp_path, fmt):
        if fmt == "llamafactory":
            messages, tools = _from_llamafactory(record)
        else:
            messages, tools = _as_template_messages(record["messages"]), record["tools"]
        text = tokenizer.apply_chat_template(messages, tools=tools or None, tokenize=False)
        _check_rendered(text, messages)
        if tools:
            assert "<tools>" in text and '"name": "get_weather"' in text


def test_eval_record_keeps_each_items_score(tmp_path: Path) -> None:
    from support_eval import UNUSED_MODEL_SPEC, CountingSuite

    from qwen_agent.eval import EvalSettings, run_eval
    from qwen_agent.llm import load_model

    model = load_model(UNUSED_MODEL_SPEC)
    recorder = TrajectoryRecorder(tmp_path / "rec")
    try:
        run_eval(CountingSuite(4, special={3: "crash"}), EvalSettings(), tmp_path / "run", model=model,
                 recorder=recorder)
    finally:
        model.close()
        recorder.close()
    recorded = {r.task_id: r for r in read_trajectories([tmp_path / "rec"])}
    assert set(recorded) == {"item-0", "item-1", "item-2"}  # the crashed item has no transcript to learn from
    assert [recorded[i].score for i in ("item-0", "item-1", "item-2")] == [1.0, 0.5, 1.0]
    assert recorded["item-1"].agent == "eval:counting" and recorded["item-1"].metadata["category"] == "odd"
    report = export_trajectories([tmp_path / "rec"], tmp_path / "best.jsonl", "openai", min_score=1.0)
    assert (report.written, report.below_score) == (2, 1)
