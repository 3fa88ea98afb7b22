"""Batch agent runs and eval items on a real local Ray cluster (started here on 127.0.0.1, once for the module):
results in order, resume, an actor that dies mid-run (its item retried, nothing lost, nothing counted twice), fatal
errors stopping the run, and the cluster listening on loopback only."""

from __future__ import annotations

import functools
import ipaddress
import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psutil
import pytest

from qwen_agent.agents import Agent
from qwen_agent.batch import BatchRecord, RayOptions, connect_ray, disconnect_ray, run_batch
from qwen_agent.eval import EvalSettings, run_eval
from qwen_agent.llm.base import ChatModel
from qwen_agent.llm.errors import ModelConnectionError
from qwen_agent.llm.types import RawChunk, SamplingParams
from qwen_agent.messages import Message, ToolSchema
from qwen_agent.testing import InstantModel
from tests.support_eval import UNUSED_MODEL_SPEC, CountingSuite

QUESTIONS = [f"question {i}" for i in range(10)]


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    assert connect_ray(RayOptions(address="local", num_cpus=2)), "the test starts its own cluster"
    try:
        yield
    finally:
        disconnect_ray()


def instant_agent() -> Agent:
    return Agent(InstantModel(), max_steps=1)


class CrashOnceModel(InstantModel):
    """Kills its own process (as a crash or the OOM killer would) the first time it sees ``victim``."""

    def __init__(self, marker: str, victim: str) -> None:
        super().__init__()
        self.marker, self.victim = marker, victim

    async def _stream_raw(self, messages: list[Message], params: SamplingParams, *,
                          tools: list[ToolSchema] | None = None, grammar: str | None = None) -> AsyncIterator[RawChunk]:
        if messages[-1].text == self.victim and not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            os._exit(1)
        async for chunk in super()._stream_raw(messages, params, tools=tools, grammar=grammar):
            yield chunk


def crash_once_agent(marker: str, victim: str) -> Agent:
    model: ChatModel = CrashOnceModel(marker, victim)
    return Agent(model, max_steps=1)


def _lines(path: Path) -> list[BatchRecord]:
    return [BatchRecord.model_validate_json(line) for line in path.read_text().splitlines()]


def test_the_cluster_listens_on_loopback_only(cluster: None) -> None:
    processes = psutil.Process().children(recursive=True)
    assert processes, "the local cluster runs as child processes of this one"
    listening = []
    for proc in processes:
        try:
            listening += [c.laddr for c in proc.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
        except psutil.Error:
            continue
    assert listening, "Ray's servers were found"
    for addr in listening:
        ip = ipaddress.ip_address(addr.ip)
        mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
        assert (mapped or ip).is_loopback, f"a Ray process listens on {addr.ip}:{addr.port}"
    assert os.environ["RAY_USAGE_STATS_ENABLED"] == "0"


def test_run_batch_on_ray_gives_what_the_in_process_run_gives(cluster: None, tmp_path: Path) -> None:
    local = run_batch(instant_agent, QUESTIONS)
    remote = run_batch(instant_agent, QUESTIONS, ray=RayOptions(workers=2), out=tmp_path / "out.jsonl")
    assert [r.answer for r in remote] == [r.answer for r in local] == [f"echo: {q}" for q in QUESTIONS]
    assert [r.id for r in _lines(tmp_path / "out.jsonl")] == [str(i) for i in range(10)], "written in input order"
    pids = {r.worker_pid for r in remote}
    assert len(pids) == 2 and os.getpid() not in pids, "two actors, neither of them this process"


def test_resume_runs_only_what_is_missing(cluster: None, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    run_batch(instant_agent, QUESTIONS[:4], ray="local", out=out)
    with pytest.raises(FileExistsError):
        run_batch(instant_agent, QUESTIONS, ray="local", out=out)
    ran: list[str] = []
    records = run_batch(instant_agent, QUESTIONS, ray="local", out=out, resume=True,
                        on_record=lambda r: ran.append(r.id))
    assert ran == [str(i) for i in range(4, 10)]
    assert [r.id for r in records] == [r.id for r in _lines(out)] == [str(i) for i in range(10)]


def test_an_actor_that_dies_mid_run_loses_nothing_and_counts_nothing_twice(cluster: None, tmp_path: Path) -> None:
    marker = tmp_path / "died"
    out = tmp_path / "out.jsonl"
    factory = functools.partial(crash_once_agent, str(marker), "question 5")
    records = run_batch(factory, QUESTIONS, ray=RayOptions(workers=2), out=out)
    assert marker.exists(), "an actor died running question 5"
    written = _lines(out)
    assert [r.id for r in written] == [str(i) for i in range(10)], "every item exactly once, in order"
    assert all(r.answer == f"echo: {q}" and r.error is None for r, q in zip(written, QUESTIONS, strict=True))
    dead = int(marker.read_text())
    assert records[5].worker_pid != dead and records[5].worker_pid > 0, "question 5 was answered by a new actor"


def test_eval_on_ray_writes_each_item_once_and_resumes(cluster: None, tmp_path: Path) -> None:
    settings = EvalSettings(model=UNUSED_MODEL_SPEC, workers=2)
    first = run_eval(CountingSuite(6), settings.model_copy(update={"limit": 3}), tmp_path, ray=RayOptions(workers=2))
    assert first.overall.n == 3
    summary = run_eval(CountingSuite(6), settings, tmp_path, resume=True, ray=RayOptions(workers=2))
    lines = [json.loads(line) for line in (tmp_path / "items.jsonl").read_text().splitlines()]
    assert [r["id"] for r in lines] == [f"item-{i}" for i in range(6)]
    assert summary.overall.n == 6 and summary.overall.score == pytest.approx(0.75)
    assert os.getpid() not in {r["prediction"]["pid"] for r in lines}, "items ran in the actors"


def test_a_fatal_error_in_an_actor_stops_the_eval(cluster: None, tmp_path: Path) -> None:
    with pytest.raises(ModelConnectionError, match="connection refused"):
        run_eval(CountingSuite(6, special={1: "down"}), EvalSettings(model=UNUSED_MODEL_SPEC), tmp_path,
                 ray=RayOptions(workers=2))
    log = tmp_path / "items.jsonl"
    ids = [json.loads(line)["id"] for line in log.read_text().splitlines()] if log.exists() else []
    assert "item-1" not in ids and ids == sorted(set(ids), key=ids.index), "no record for the fatal item, no dups"


def _pool_actors() -> list[str]:
    """Ids of every batch-pool actor the cluster has had (from the GCS: the state API needs the dashboard, which
    the test cluster does not run)."""
    import ray._private.state

    return [aid for aid, info in ray._private.state.actors().items() if info.get("ActorClassName") == "_Actor"]


def test_the_eval_cli_runs_on_a_cluster_by_address_and_resumes(cluster: None, tmp_path: Path) -> None:
    """`qwen-agent eval --ray ADDRESS` as a user runs it: a separate process joins the running cluster, its actors
    ask the (loopback) model server, records land in order, and --resume asks nothing again."""
    import subprocess
    import sys

    import ray

    from qwen_agent.eval.bfcl.dataset import bfcl_wheel
    from qwen_agent.testing import RuleModel, ScriptedServer

    bfcl_wheel()  # fetched (or found) here, so the subprocess's time goes to the run
    address = ray.get_runtime_context().gcs_address
    actors_before = set(_pool_actors())
    out = tmp_path / "run"
    with ScriptedServer(models=["rule-model"], responder=RuleModel(context_length=8192)) as server:
        args = [sys.executable, "-m", "qwen_agent.cli", "eval", "bfcl", "-c", "simple_python,irrelevance", "--limit",
                "2", "--model", f"openai:{server.base_url}#rule-model", "--out", str(out), "--no-progress",
                "--ray", address, "--workers", "2"]
        env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
        first = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env)
        assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
        assert len(server.chat_requests) == 4
        again = subprocess.run([*args, "--resume"], capture_output=True, text=True, timeout=600, env=env)
        assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
        assert len(server.chat_requests) == 4  # nothing was asked again
    new_actors = [a for a in _pool_actors() if a not in actors_before]
    assert len(new_actors) >= 2, new_actors  # the CLI's workers were actors on this cluster
    records = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == ["simple_python_0", "simple_python_1", "irrelevance_0", "irrelevance_1"]
    assert all(r["error"] is None for r in records)
