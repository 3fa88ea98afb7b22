"""Recorded agent runs (trajectories) and their export to fine-tuning formats (OpenAI, LLaMA-Factory, Axolotl)."""

from __future__ import annotations

from qwen_agent._lazy import TYPE_CHECKING, lazy_exports

__all__ = ["ExportFormat", "Trajectory", "TrajectoryFormatError", "TrajectoryRecorder", "export_trajectories",
           "read_trajectories"]

_EXPORTS = {
    "Trajectory": "qwen_agent.trajectories.record",
    "TrajectoryFormatError": "qwen_agent.trajectories.record",
    "TrajectoryRecorder": "qwen_agent.trajectories.record",
    "read_trajectories": "qwen_agent.trajectories.record",
    "ExportFormat": "qwen_agent.trajectories.export",
    "export_trajectories": "qwen_agent.trajectories.export",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

if TYPE_CHECKING:
    from qwen_agent.trajectories.export import ExportFormat, export_trajectories
    from qwen_agent.trajectories.record import (
        Trajectory,
        TrajectoryFormatError,
        TrajectoryRecorder,
        read_trajectories,
    )
