"""`run_batch(agent_factory, inputs)`: one agent run per input, in process or on Ray, recorded to a resumable JSONL.

    from qwen_agent.batch import RayOptions, run_batch

    def make_agent() -> Agent:                       # module level: Ray pickles it by reference
        return Agent(load_model("openai:http://gpu1:8000/v1,http://gpu2:8000/v1#Qwen/Qwen2.5-7B-Instruct"),
                     tools=["calculator"])

    records = run_batch(make_agent, questions, out="runs/batch.jsonl", resume=True,
                        ray=RayOptions(address="auto", workers=8, in_flight=4))

Each Ray actor calls ``agent_factory`` once and runs its items on that agent; in process, one agent serves every
item (``workers`` of them at once). Records come back and are appended in input order, one fsynced line each;
``resume=True`` skips inputs whose id is already in ``out`` (a torn last line from a kill is dropped).
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from qwen_agent.agents.agent import Agent
from qwen_agent.batch.cluster import RayError, RayOptions, connect_ray, disconnect_ray
from qwen_agent.batch.local import LocalPool
from qwen_agent.batch.pool import RayPool
from qwen_agent.sync import run_sync

__all__ = ["AgentFactory", "AgentWorker", "BatchInput", "BatchRecord", "arun_batch", "run_batch"]

logger = logging.getLogger(__name__)

#: Builds the agent a worker runs items on (its model, its tools). Picklable for Ray: a module-level function.
AgentFactory = Callable[[], Agent]


class BatchInput(BaseModel):
    """One input: its id (for resume and for joining results back) and the user message."""

    id: str
    input: str


class BatchRecord(BaseModel):
    """One agent run as recorded: the answer, how it ended, the transcript (OpenAI form), time and tokens."""

    id: str
    input: str
    answer: str = ""
    stop_reason: str | None = None
    steps: int = 0
    #: Set when the run raised (the record still counts as done; rerun with a new ``out`` to retry it).
    error: str | None = None
    messages: list[dict[str, Any]] = Field(default_factory=list)
    latency_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: Which process ran it (an actor's pid on Ray).
    worker_pid: int = 0


class AgentWorker:
    """What a worker runs: ``agent_factory()`` once, then `__call__` per input; a crash becomes the record's
    ``error`` instead of stopping the batch."""

    def __init__(self, agent_factory: AgentFactory) -> None:
        self.agent = agent_factory()

    async def __call__(self, item: BatchInput) -> BatchRecord:
        started = time.perf_counter()
        pid = os.getpid()
        try:
            result = await self.agent.arun(item.input)
        except Exception as exc:  # noqa: BLE001 - one failing input is recorded, the batch goes on
            return BatchRecord(id=item.id, input=item.input, error=f"{type(exc).__name__}: {exc}",
                               latency_s=time.perf_counter() - started, worker_pid=pid)
        return BatchRecord(id=item.id, input=item.input, answer=result.answer, stop_reason=result.stop_reason,
                           steps=result.steps, error=result.error, messages=result.to_openai(),
                           latency_s=time.perf_counter() - started, prompt_tokens=result.usage.prompt_tokens,
                           completion_tokens=result.usage.completion_tokens, worker_pid=pid)

    async def aclose(self) -> None:
        await self.agent.aclose()


def _inputs(inputs: Iterable[str | BatchInput | tuple[str, str]]) -> list[BatchInput]:
    items = []
    for n, value in enumerate(inputs):
        if isinstance(value, BatchInput):
            items.append(value)
        elif isinstance(value, tuple):
            items.append(BatchInput(id=str(value[0]), input=value[1]))
        else:
            items.append(BatchInput(id=str(n), input=value))
    ids = [i.id for i in items]
    if len(set(ids)) != len(ids):
        raise ValueError("batch inputs need distinct ids")
    return items


class _Log:
    """The JSONL output: read for resume (a torn last line is cut off), appended one fsynced line per record."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> list[BatchRecord]:
        if not self.path.exists():
            return []
        raw = self.path.read_bytes()
        records, good = [], 0
        for line in raw.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break
            try:
                records.append(BatchRecord.model_validate_json(line))
            except ValidationError as exc:
                raise ValueError(f"{self.path}: line {len(records) + 1} is not a batch record; use another out") \
                    from exc
            good += len(line)
        if good < len(raw):
            logger.warning("%s: dropping a torn last line left by an interrupted run", self.path)
            with open(self.path, "r+b") as f:
                f.truncate(good)
        return records

    def append(self, record: BatchRecord) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(record.model_dump_json() + "\n")
            f.flush()
            os.fsync(f.fileno())


def run_batch(agent_factory: AgentFactory, inputs: Iterable[str | BatchInput | tuple[str, str]],
              **kwargs: Any) -> list[BatchRecord]:
    """Blocking `arun_batch`."""
    return run_sync(arun_batch(agent_factory, inputs, **kwargs))


async def arun_batch(
    agent_factory: AgentFactory,
    inputs: Iterable[str | BatchInput | tuple[str, str]],
    *,
    out: Path | str | None = None,
    resume: bool = False,
    workers: int = 1,
    ray: RayOptions | str | None = None,
    on_record: Callable[[BatchRecord], None] | None = None,
) -> list[BatchRecord]:
    """Run the agent on every input and return the records in input order (earlier ones from ``out`` included).

    ``ray``: a `RayOptions`, or just an address (``"local"``, ``"auto"``, ``"ray://..."``); None runs in this
    process with ``workers`` inputs in flight. ``out`` without ``resume`` must not exist yet.
    """
    items = _inputs(inputs)
    log = _Log(Path(out)) if out is not None else None
    done: dict[str, BatchRecord] = {}
    if log is not None:
        if log.path.exists() and log.path.stat().st_size and not resume:
            raise FileExistsError(f"{log.path} already holds records; pass resume=True or another out")
        log.path.parent.mkdir(parents=True, exist_ok=True)
        done = {r.id: r for r in log.read()}
    pending = [item for item in items if item.id not in done]
    factory = functools.partial(AgentWorker, agent_factory)
    options = RayOptions(address=ray) if isinstance(ray, str) else ray
    started_cluster = False
    pool: RayPool[BatchInput, BatchRecord] | LocalPool[BatchInput, BatchRecord]
    if options is not None:
        started_cluster = connect_ray(options)
        try:
            pool = RayPool(factory, options)
        except Exception as exc:
            if started_cluster:
                disconnect_ray()
            raise RayError(f"cannot start the batch's actors: {exc}") from exc
    else:
        pool = LocalPool(factory, workers)
    try:
        async for index, record in pool.map(pending):
            done[pending[index].id] = record
            if log is not None:
                log.append(record)
            if on_record is not None:
                on_record(record)
    finally:
        if isinstance(pool, RayPool):
            pool.shutdown()
        if started_cluster:
            disconnect_ray()
    return [done[item.id] for item in items if item.id in done]
