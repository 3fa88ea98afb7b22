"""Short notes the framework writes to the model (answer now, a call could not be read), from .j2 templates."""

from __future__ import annotations

from typing import Any

from qwen_agent.prompting.jinja import template

__all__ = ["render_note"]


def render_note(name: str, **values: Any) -> str:
    """Render ``templates/notes/<name>.j2`` (strict: a missing value is an error, not an empty string)."""
    return template(f"notes/{name}.j2").render(**values).strip()
