"""`export_trajectories`: recorded runs -> one JSONL training file, plus the trainer config that loads it.

Runs are filtered by ``min_score`` (runs without a score are left out when a minimum is asked for: an unscored run
is not known to be good) and converted by `formats`. LLaMA-Factory needs a ``dataset_info.json`` entry naming the
file and its columns; Axolotl a ``datasets:`` block in its YAML config. Both are returned and written next to the
output (``dataset_info.json``, ``<name>.axolotl.yaml``), merged into an existing ``dataset_info.json``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from qwen_agent.trajectories.formats import axolotl_record, llamafactory_record, openai_record
from qwen_agent.trajectories.record import Trajectory, TrajectoryFormatError, read_trajectories

__all__ = ["ExportFormat", "ExportReport", "axolotl_yaml", "dataset_info_entry", "export_trajectories"]

ExportFormat = Literal["openai", "llamafactory", "axolotl"]

_CONVERTERS: dict[str, Callable[[Trajectory], dict[str, Any] | None]] = {
    "openai": openai_record, "llamafactory": llamafactory_record, "axolotl": axolotl_record,
}


class ExportReport(BaseModel):
    """What an export wrote and what it left out (and why)."""

    output: str
    format: str
    written: int
    below_score: int
    unscored: int
    no_model_turn: int
    config_file: str | None = None


def dataset_info_entry(data_file: str | Path, name: str | None = None) -> dict[str, Any]:
    """LLaMA-Factory's ``dataset_info.json`` entry for a ``llamafactory`` export (ShareGPT with tools)."""
    path = Path(data_file)
    return {name or path.stem: {
        "file_name": path.name,
        "formatting": "sharegpt",
        "columns": {"messages": "conversations", "system": "system", "tools": "tools"},
        "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                 "observation_tag": "observation", "function_tag": "function_call"},
    }}


def axolotl_yaml(data_file: str | Path) -> str:
    """The ``datasets:`` block of an Axolotl config that loads an ``axolotl`` export with the model's template."""
    return (
        "# Axolotl: chat_template rows with tool calls (the model's own chat template renders `tools`)\n"
        "chat_template: tokenizer_default\n"
        "datasets:\n"
        f"  - path: {Path(data_file).resolve()}\n"
        "    ds_type: json\n"
        "    type: chat_template\n"
        "    field_messages: messages\n"
        "    field_tools: tools\n"
        "    message_property_mappings:\n"
        "      role: role\n"
        "      content: content\n"
        "    roles_to_train: [assistant]\n"
    )


def export_trajectories(runs: Iterable[str | Path], output: str | Path, fmt: ExportFormat = "openai", *,
                        min_score: float | None = None) -> ExportReport:
    """Write every run in ``runs`` (files or folders) that passes ``min_score`` to ``output`` in ``fmt``."""
    convert = _CONVERTERS[fmt]
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    counts = {"written": 0, "below_score": 0, "unscored": 0, "no_model_turn": 0}
    tmp = out.with_name(out.name + ".tmp")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            for run in read_trajectories(runs):
                if min_score is not None:
                    if run.score is None:
                        counts["unscored"] += 1
                        continue
                    if run.score < min_score:
                        counts["below_score"] += 1
                        continue
                try:
                    record = convert(run)
                except (ValueError, ValidationError, KeyError) as exc:
                    raise TrajectoryFormatError(f"run {run.id}: its messages or tools are malformed ({exc})") from exc
                if record is None:
                    counts["no_model_turn"] += 1
                    continue
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
                counts["written"] += 1
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    config: str | None = None
    if fmt == "llamafactory":
        info = out.parent / "dataset_info.json"
        existing: dict[str, Any] = {}
        if info.exists():
            try:
                existing = json.loads(info.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise TrajectoryFormatError(f"{info} exists but is not JSON; move it away or fix it") from exc
        existing.update(dataset_info_entry(out))
        info.write_text(json.dumps(existing, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        config = str(info)
    elif fmt == "axolotl":
        cfg = out.with_name(out.stem + ".axolotl.yaml")
        cfg.write_text(axolotl_yaml(out), encoding="utf-8")
        config = str(cfg)
    return ExportReport(output=str(out), format=fmt, config_file=config, **counts)
