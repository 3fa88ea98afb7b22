"""Batch agent runs over a dataset, in process or on a Ray cluster: `run_batch`, `RayOptions`, and the pools the
eval runner shares (`RayPool`, `LocalPool`). Ray itself is imported only when a run asks for it."""

from __future__ import annotations

from qwen_agent.batch.cluster import LOCAL, RayError, RayOptions, connect_ray, disconnect_ray
from qwen_agent.batch.local import LocalPool
from qwen_agent.batch.pool import ItemWorker, PoolStats, RayPool, WorkerFactory
from qwen_agent.batch.runner import AgentFactory, AgentWorker, BatchInput, BatchRecord, arun_batch, run_batch

__all__ = [
    "LOCAL", "AgentFactory", "AgentWorker", "BatchInput", "BatchRecord", "ItemWorker", "LocalPool", "PoolStats",
    "RayError", "RayOptions", "RayPool", "WorkerFactory", "arun_batch", "connect_ray", "disconnect_ray", "run_batch",
]
