"""Connecting to Ray: an existing cluster by address, or a private local one that listens on 127.0.0.1 only.

Why the environment is set before Ray is imported: Ray turns ``node_ip_address="127.0.0.1"`` into the machine's
routable address (so that other nodes could join) unless its single-machine mode is on
(``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, the mode it uses on laptops); only then do GCS, raylet, the object manager,
the runtime-env agent and every worker bind to loopback. Usage statistics are off (``RAY_USAGE_STATS_ENABLED=0``)
and the dashboard is not started: a local batch run sends nothing beyond 127.0.0.1.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from qwen_agent.errors import QwenAgentError

__all__ = ["LOCAL", "RayError", "RayOptions", "connect_ray", "disconnect_ray"]

logger = logging.getLogger(__name__)

#: ``--ray`` without an address: start a private single-machine cluster for this run.
LOCAL = "local"


class RayError(QwenAgentError):
    """Ray is missing, the cluster cannot be reached, or a batch cannot run on it."""


class RayOptions(BaseModel):
    """Where and how wide a batch runs on Ray.

    ``address``: ``"local"`` starts a private cluster on 127.0.0.1 (stopped after the run); ``"auto"`` or
    ``"ray://host:10001"`` / ``"host:6379"`` joins a running one. ``workers``: actors, each with its own agent and
    model client (or embedded model). ``in_flight``: items each actor runs at once (>1 pays off against a server
    that batches, e.g. vLLM; keep 1 for an embedded model). ``num_cpus``: the local cluster's CPUs and
    ``actor_cpus`` what each actor reserves. ``max_attempts``: how often an item is tried when its actor dies.
    """

    model_config = ConfigDict(extra="forbid")

    address: str = LOCAL
    workers: int = Field(default=2, ge=1)
    in_flight: int = Field(default=1, ge=1)
    num_cpus: int | None = Field(default=None, ge=1)
    actor_cpus: float = Field(default=0.0, ge=0.0)
    max_attempts: int = Field(default=3, ge=1)


def _loopback_only() -> None:
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    if "ray" in sys.modules:  # imported already: its constant was read at import, set it where it is read
        import ray._private.ray_constants as constants

        constants.ENABLE_RAY_CLUSTER = False


def connect_ray(options: RayOptions) -> bool:
    """Initialise Ray in this process for ``options``; True when this call started a local cluster (then
    `disconnect_ray` stops it). Joining an already initialised Ray (a notebook, a test's cluster) is a no-op."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    local = options.address == LOCAL
    if local:
        _loopback_only()
    try:
        import ray
    except ImportError as exc:
        raise RayError("Ray is not installed: pip install 'qwen-agent[ray]'") from exc
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    if local:
        # Workers import what the driver imports (tests, scripts next to it): hand them the driver's path.
        path = os.pathsep.join(p for p in [os.getcwd(), *sys.path] if p and os.path.isdir(p))
        kwargs.update(address="local", _node_ip_address="127.0.0.1", num_cpus=options.num_cpus or os.cpu_count(),
                      runtime_env={"env_vars": {"PYTHONPATH": path, "RAY_USAGE_STATS_ENABLED": "0"}})
    else:
        kwargs.update(address=options.address)
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise RayError(f"cannot start or reach Ray at {options.address!r}: {exc}") from exc
    logger.info("ray %s at %s", "started" if local else "joined", options.address)
    return local


def disconnect_ray() -> None:
    """Stop what `connect_ray` started (the local cluster and its workers)."""
    import ray

    ray.shutdown()
