"""Short notes the framework writes to the model (answer now, a call could not be read), from .j2 templates."""

from __future__ import annotations

import functools
from typing import Any

import jinja2

__all__ = ["render_note"]

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("qwen_agent.prompting", "templates/notes"),
    autoescape=False,
    keep_trailing_newline=False,
    undefined=jinja2.StrictUndefined,
)


@functools.cache
def _template(name: str) -> jinja2.Template:
    return _env.get_template(f"{name}.j2")


def render_note(name: str, **values: Any) -> str:
    """Render ``templates/notes/<name>.j2`` (strict: a missing value is an error, not an empty string)."""
    return _template(name).render(**values).strip()
