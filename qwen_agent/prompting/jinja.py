"""The one jinja2 environment every prompt template renders in: strict, no HTML escaping, trimmed block lines.

Templates live in ``templates/`` (formats and the system prompt) and ``templates/notes/`` (short notes to the model).
A missing value is an error, never an empty string; ``|json`` is plain ``json.dumps`` (jinja's ``|tojson`` escapes
``<``, ``>`` and ``'`` for HTML, which would change what the model reads). Compiled templates are cached.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, Template

__all__ = ["environment", "macros", "template"]

environment = Environment(
    loader=PackageLoader("qwen_agent.prompting", "templates"),
    autoescape=False,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=StrictUndefined,
)
environment.filters["json"] = lambda value: json.dumps(value, ensure_ascii=False)


@functools.cache
def template(name: str) -> Template:
    """The template ``templates/<name>``, compiled once per process."""
    return environment.get_template(name)


@functools.cache
def macros(name: str) -> Any:
    """The macros of ``templates/<name>`` (render is on the agent's hot path: compiled and evaluated once)."""
    return template(name).module
