"""Run a `Suite` against a model: items concurrently, one JSONL record each, resumable, summarized at the end."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from qwen_agent.batch.cluster import RayOptions
from qwen_agent.eval.errors import EvalDataError, EvalRunError
from qwen_agent.eval.records import (
    ITEMS_FILE,
    SETTINGS_FILE,
    SUMMARY_FILE,
    TABLE_FILE,
    ItemLog,
    ItemRecord,
    RunSummary,
    summarize,
    write_json_atomic,
)
from qwen_agent.eval.report import markdown_summary
from qwen_agent.eval.suite import EvalItem, EvalSettings, ItemOutcome, RunContext, Suite
from qwen_agent.llm.base import ChatModel
from qwen_agent.llm.errors import ModelAuthError, ModelConnectionError, ModelNotFoundError
from qwen_agent.sync import run_sync
from qwen_agent.trajectories.record import Trajectory, TrajectoryRecorder

__all__ = ["EvalProgress", "ProgressCallback", "arun_eval", "read_settings", "rescore_run", "run_eval"]

logger = logging.getLogger(__name__)

#: Errors that say the whole run cannot work (server down, wrong model name, bad key): stop instead of recording
#: every item as failed; ``--resume`` continues once the cause is fixed.
FATAL_ERRORS: tuple[type[BaseException], ...] = (ModelConnectionError, ModelNotFoundError, ModelAuthError)


class EvalProgress(BaseModel):
    """Reported after every item: how far the run is and the running score over the items done so far."""

    done: int
    total: int
    score: float
    errors: int
    record: ItemRecord


ProgressCallback = Callable[[EvalProgress], None]


def run_eval(suite: Suite, settings: EvalSettings | None = None, out: Path | str | None = None, **kwargs: Any
             ) -> RunSummary:
    """Blocking `arun_eval`."""
    return run_sync(arun_eval(suite, settings, out, **kwargs))


async def arun_eval(
    suite: Suite,
    settings: EvalSettings | None = None,
    out: Path | str | None = None,
    *,
    resume: bool = False,
    model: ChatModel | None = None,
    progress: ProgressCallback | None = None,
    ray: RayOptions | None = None,
    recorder: TrajectoryRecorder | None = None,
) -> RunSummary:
    """Run ``suite`` and return its summary.

    With ``out``, each finished item is appended to ``out/items.jsonl`` and ``summary.json`` / ``summary.md`` are
    written at the end (also after an interruption, for the items done). ``resume=True`` continues a run in
    ``out`` without redoing its items; its settings must match, except ``limit``, ``workers`` and ``label``.
    ``model`` overrides ``settings.model`` (the caller then owns it and closes it).
    ``ray`` runs the items on Ray actors (``ray.workers`` of them, each building its own model from ``settings``;
    ``model`` must then be None): records arrive and are written in item order, and the items of an actor that
    dies are run again elsewhere, so a resumed or finished run holds each item exactly once. ``recorder`` gets every
    finished item's transcript as a `Trajectory` with its score (``qwen-agent eval --record``; on Ray without the
    tool schemas, which stay in the actors).
    """
    if ray is not None and model is not None:
        raise EvalRunError("a Ray run builds its model in each actor from settings.model; pass no model object")
    settings = settings or EvalSettings()
    folder = Path(out) if out is not None else None
    label = settings.label or (folder.name if folder is not None else suite.name)
    stored = _settings_record(suite, settings, model)
    items = suite.items(settings.limit)
    _check_unique(items)
    item_log: ItemLog | None = None
    previous: list[ItemRecord] = []
    elapsed_before = 0.0
    if folder is not None:
        item_log, previous, elapsed_before = _prepare_folder(folder, stored, resume)
    wanted = {item.id for item in items}
    done = {r.id: r for r in previous if r.id in wanted}
    pending = [item for item in items if item.id not in done]
    owned = model is None and ray is None
    if model is None and ray is None:
        model = build_model(settings, suite)
    params = settings.sampling(suite.default_max_tokens)
    ctx = RunContext(model, settings, params) if model is not None else None
    started = time.perf_counter()
    finished: dict[str, ItemRecord] = dict(done)
    state = {"score": sum(r.score for r in done.values()), "errors": sum(r.error is not None for r in done.values())}
    semaphore = asyncio.Semaphore(settings.workers)
    stopping = asyncio.Event()  # set by a fatal error: start no further items

    def record_done(item: EvalItem, record: ItemRecord, outcome: ItemOutcome | None = None) -> None:
        if recorder is not None and (record.transcript or (outcome is not None and outcome.transcript)):
            recorder.write(_trajectory(suite, settings, model, item, record, outcome))
        finished[item.id] = record
        if item_log is not None:
            item_log.append(record)
        state["score"] += record.score
        state["errors"] += record.error is not None
        if progress is not None:
            progress(EvalProgress(done=len(finished), total=len(items), score=state["score"] / len(finished),
                                  errors=int(state["errors"]), record=record))

    async def one(item: EvalItem) -> None:
        assert ctx is not None
        async with semaphore:
            if stopping.is_set():
                return
            try:
                record, outcome = await _run_item(suite, item, ctx)
            except BaseException:
                stopping.set()
                raise
        record_done(item, record, outcome)

    try:
        if ray is not None:
            await _run_on_ray(suite, settings, pending, ray, record_done)
        else:
            tasks = [asyncio.ensure_future(one(item)) for item in pending]
            try:
                await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        records = [finished[item.id] for item in items if item.id in finished]
        summary = summarize(suite.name, label, suite.primary, stored, records, suite.categories(),
                            elapsed_before + time.perf_counter() - started)
        if folder is not None and records:
            write_json_atomic(folder / SUMMARY_FILE, summary.model_dump_json(indent=1))
            write_json_atomic(folder / TABLE_FILE, markdown_summary(summary))
        if owned and model is not None:
            await model.aclose()
        await suite.aclose()
    return summary


async def _run_on_ray(suite: Suite, settings: EvalSettings, pending: list[EvalItem], options: RayOptions,
                      record_done: Callable[[EvalItem, ItemRecord], None]) -> None:
    """The items on Ray actors (`distributed.EvalWorker`), their records handed to ``record_done`` in order."""
    from qwen_agent.batch import RayPool, connect_ray, disconnect_ray
    from qwen_agent.eval.distributed import EvalWorker

    started_cluster = connect_ray(options)
    pool: RayPool[EvalItem, ItemRecord] | None = None
    try:
        pool = RayPool(functools.partial(EvalWorker, suite, settings), options)
        async for index, record in pool.map(pending):
            record_done(pending[index], record)
    finally:
        if pool is not None:
            pool.shutdown()
        if started_cluster:
            disconnect_ray()


def read_settings(folder: Path | str) -> dict[str, Any]:
    """The settings a run folder was made with (``run.json``)."""
    path = Path(folder) / SETTINGS_FILE
    if not path.exists():
        raise EvalRunError(f"{folder} holds no {SETTINGS_FILE}; pass a folder written by `qwen-agent eval ... --out`")
    settings: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return settings


def rescore_run(suite: Suite, folder: Path | str) -> RunSummary:
    """Score the predictions recorded in ``folder`` again with ``suite``'s current scorer (no model involved) and
    rewrite its records and summary; items that crashed stay as they are."""
    folder = Path(folder)
    stored = read_settings(folder)
    if stored.get("suite") != suite.name:
        raise EvalRunError(f"{folder} holds a {stored.get('suite')} run, not a {suite.name} run")
    items = {item.id: item for item in suite.items(None)}
    item_log = ItemLog(folder / ITEMS_FILE)
    records = item_log.read()
    for i, record in enumerate(records):
        if record.error is not None:
            continue
        if record.id not in items:
            raise EvalRunError(f"{folder}: item {record.id!r} is not in the suite's data any more")
        outcome = suite.rescore(items[record.id], record.prediction)
        if outcome is None:
            raise EvalRunError(f"the {suite.name} suite cannot score recorded predictions again; run it anew")
        records[i] = record.model_copy(update={"score": outcome.score, "metrics": outcome.metrics,
                                               "detail": outcome.detail})
    write_json_atomic(item_log.path, "".join(r.model_dump_json() + "\n" for r in records))
    previous = json.loads((folder / SUMMARY_FILE).read_text(encoding="utf-8")) if (folder / SUMMARY_FILE).exists() \
        else {}
    summary = summarize(suite.name, previous.get("label") or stored.get("label") or folder.name, suite.primary,
                        stored, records, suite.categories(), float(previous.get("elapsed_s", 0.0)))
    write_json_atomic(folder / SUMMARY_FILE, summary.model_dump_json(indent=1))
    write_json_atomic(folder / TABLE_FILE, markdown_summary(summary))
    return summary


async def run_one(suite: Suite, item: EvalItem, ctx: RunContext) -> ItemRecord:
    """One item's record (what a Ray actor returns)."""
    return (await _run_item(suite, item, ctx))[0]


def _trajectory(suite: Suite, settings: EvalSettings, model: ChatModel | None, item: EvalItem, record: ItemRecord,
                outcome: ItemOutcome | None) -> Trajectory:
    fc = settings.function_calling()
    fields: dict[str, Any] = {
        "agent": f"eval:{suite.name}", "model": model.model if model is not None else (settings.model or ""),
        "provider": model.trace_provider if model is not None else "", "format": fc.format, "mode": fc.mode,
        "prompt_tokens": record.prompt_tokens, "completion_tokens": record.completion_tokens, "score": record.score,
        "task_id": item.id, "metadata": {"suite": suite.name, "category": item.category or ""}}
    if outcome is not None:
        return Trajectory.build(outcome.transcript, outcome.tools, **fields)
    return Trajectory(messages=list(record.transcript or []), **fields)


async def _run_item(suite: Suite, item: EvalItem, ctx: RunContext) -> tuple[ItemRecord, ItemOutcome | None]:
    started = time.perf_counter()
    try:
        outcome = await suite.run_item(item, ctx)
    except FATAL_ERRORS:
        raise
    except Exception as exc:  # noqa: BLE001 - one crashing item is recorded and the run goes on
        logger.warning("item %s failed: %s: %s", item.id, type(exc).__name__, exc)
        return ItemRecord(id=item.id, category=item.category, input=item.input, score=0.0,
                          error=f"{type(exc).__name__}: {exc}", latency_s=time.perf_counter() - started), None
    return ItemRecord(
        id=item.id, category=item.category, input=item.input,
        transcript=[m.to_openai() for m in outcome.transcript], prediction=outcome.prediction,
        score=outcome.score, metrics=outcome.metrics, detail=outcome.detail,
        latency_s=time.perf_counter() - started, prompt_tokens=outcome.prompt_tokens,
        completion_tokens=outcome.completion_tokens,
    ), outcome


def _settings_record(suite: Suite, settings: EvalSettings, model: ChatModel | None) -> dict[str, Any]:
    stored = {"suite": suite.name, **settings.model_dump(mode="json"),
              "options": suite.options().model_dump(mode="json")}
    if model is not None and settings.model is None:  # a model object: name its backend and model in the record
        stored["model"] = f"{type(model).__name__}:{model.model}"
    return stored


def _prepare_folder(folder: Path, stored: dict[str, Any], resume: bool) -> tuple[ItemLog, list[ItemRecord], float]:
    folder.mkdir(parents=True, exist_ok=True)
    item_log = ItemLog(folder / ITEMS_FILE)
    settings_path = folder / SETTINGS_FILE
    has_run = settings_path.exists() or item_log.path.exists()
    previous: list[ItemRecord] = []
    elapsed = 0.0
    if has_run and not resume:
        raise EvalRunError(f"{folder} already holds a run; pass --resume to continue it, or choose another --out")
    if has_run:
        if settings_path.exists():
            before = json.loads(settings_path.read_text(encoding="utf-8"))
            changed = [k for k in sorted(set(before) | set(stored))
                       if k not in EvalSettings.RESUMABLE and before.get(k) != stored.get(k)]
            if changed:
                diffs = ", ".join(f"{k}: {before.get(k)!r} -> {stored.get(k)!r}" for k in changed)
                raise EvalRunError(f"cannot resume the run in {folder} with other settings ({diffs}); use the "
                                   "same settings or another --out")
        previous = item_log.read()
        summary = folder / SUMMARY_FILE
        # The time of earlier sessions: from their summary, or, when a kill left none, the items' own latencies.
        elapsed = sum(r.latency_s for r in previous)
        if summary.exists():
            with contextlib.suppress(ValueError):
                elapsed = max(elapsed, float(json.loads(summary.read_text(encoding="utf-8")).get("elapsed_s", 0.0)))
        logger.info("resuming %s: %d items already done", folder, len(previous))
    write_json_atomic(settings_path, json.dumps(stored, indent=1))
    return item_log, previous, elapsed


def _check_unique(items: list[EvalItem]) -> None:
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise EvalDataError(f"item id {item.id!r} appears twice; every item needs its own id")
        seen.add(item.id)


def build_model(settings: EvalSettings, suite: Suite) -> ChatModel:
    from qwen_agent.llm.spec import ModelSpec, load_model

    spec = ModelSpec.parse(settings.model)
    options: dict[str, Any] = {"n_ctx": settings.n_ctx} if spec.backend == "llamacpp" else {}
    return load_model(spec, params=settings.sampling(suite.default_max_tokens),
                      function_calling=settings.function_calling(), **options)
