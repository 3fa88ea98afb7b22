"""Eval items on Ray: each actor builds its own model from the run's settings and runs the suite's items on it.

The suite object is pickled to every actor once (its items travel one by one); the model is built inside the
actor, so an embedded model loads once per actor and a server client keeps its own connection pool there.
Errors that make the whole run pointless (`runner.FATAL_ERRORS`) stop the run on the driver as they do in process.
"""

from __future__ import annotations

from qwen_agent.eval.records import ItemRecord
from qwen_agent.eval.suite import EvalItem, EvalSettings, RunContext, Suite

__all__ = ["EvalWorker"]


class EvalWorker:
    """`qwen_agent.batch.ItemWorker` for one suite and settings: ``EvalItem -> ItemRecord``."""

    def __init__(self, suite: Suite, settings: EvalSettings) -> None:
        from qwen_agent.eval.runner import build_model

        self.suite = suite
        model = build_model(settings, suite)
        self.ctx = RunContext(model, settings, settings.sampling(suite.default_max_tokens))

    async def __call__(self, item: EvalItem) -> ItemRecord:
        from qwen_agent.eval.runner import run_one

        return await run_one(self.suite, item, self.ctx)

    async def aclose(self) -> None:
        await self.ctx.model.aclose()
        await self.suite.aclose()
