"""The eval suites' prompts, from ``templates/*.j2`` (strict: a missing value is an error)."""

from __future__ import annotations

import functools
from typing import Any

import jinja2

__all__ = ["render_prompt"]

_env = jinja2.Environment(loader=jinja2.PackageLoader("qwen_agent.eval", "templates"), autoescape=False,
                          undefined=jinja2.StrictUndefined, keep_trailing_newline=False)


@functools.cache
def _template(name: str) -> jinja2.Template:
    return _env.get_template(f"{name}.j2")


def render_prompt(name: str, **values: Any) -> str:
    return _template(name).render(**values).strip()
