"""Checking an OpenAPI tool's arguments before any request: the operation's JSON schema, path segments, headers.

The schema check uses ``jsonschema`` (the reference Python implementation; pydantic only sees top-level types, so
``pattern``, ``maxLength``, ``minimum``, nested ``required`` ... were never enforced before). Path values are
judged the way a server (or a proxy in front of it) might read them: after up to four rounds of percent-decoding
(``%2e%2e``, ``%252e``), IIS ``%u002e`` decoding and NFKC folding (fullwidth ``．．``, ``／``), and with
``;`` matrix parameters cut off (``..;``). A value that would then be empty, ``.``/``..`` (any run of dots and
spaces), contain a path separator (``/``, ``\\``), ``?``/``#``, a control character, or invalid UTF-8 (overlong
``%c0%ae``) is refused; everything else is percent-encoded as one segment.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import unicodedata
from typing import Any
from urllib.parse import quote, unquote_to_bytes

from jsonschema import Draft4Validator, Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator

from qwen_agent.tools.web.openapi.spec import PLACEHOLDER

logger = logging.getLogger(__name__)

_MAX_DECODE_ROUNDS = 4
_MAX_MESSAGE = 200
_U_ESCAPE = re.compile(r"%u([0-9a-fA-F]{4})")
_SEPARATORS = {"/": "a slash '/'", "\\": "a backslash", "?": "a '?'", "#": "a '#'"}
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_SELF_EXPLAINED = frozenset({"required", "type", "enum", "pattern", "const"})
_SCALARS = frozenset({"string", "integer", "number", "boolean"})
_ANNOTATIONS = frozenset({"type", "description", "title", "default", "example", "examples", "deprecated",
                          "readOnly", "writeOnly", "xml", "externalDocs", "format", "nullable"})


class SchemaChecker:
    """Validates wire arguments against an operation's input schema (OpenAPI 3.0: draft 4 rules; 3.1: 2020-12).

    Each top-level property gets its own validator (``required`` at the top is pydantic's job), and a property
    whose schema says no more than a scalar ``type`` is skipped: pydantic has already enforced exactly that, and
    jsonschema costs ~10 us per property per call. A property schema that is itself invalid (common in
    hand-written specs: ``required: true`` on a property, an ECMA-only regex) falls back to pydantic's type check
    alone, with a warning, so one sloppy property does not make the whole operation unusable.
    """

    def __init__(self, schema: dict[str, Any], openapi_version: str = "3.0") -> None:
        cls: type[Validator] = Draft4Validator if openapi_version.startswith("3.0") else Draft202012Validator
        self._validators: list[tuple[str, Validator]] = []
        for name, prop in (schema.get("properties") or {}).items():
            if not isinstance(prop, dict) or _covered_by_pydantic(prop):
                continue
            try:
                cls.check_schema(prop)
            except SchemaError as exc:
                logger.warning("OpenAPI property %r: schema not checked beyond its type (%s)", name, exc.message)
                continue
            self._validators.append((name, cls(prop)))

    def problems(self, arguments: dict[str, Any]) -> list[str]:
        """One model-readable line per violation; empty when the arguments conform."""
        out: list[str] = []
        for name, validator in self._validators:
            value = arguments.get(name)
            if value is None:  # None means "not sent"
                continue
            for err in sorted(validator.iter_errors(value), key=lambda e: [str(p) for p in e.absolute_path]):
                loc = _location([name, *err.absolute_path])
                msg = err.message if len(err.message) <= _MAX_MESSAGE else err.message[:_MAX_MESSAGE] + "..."
                if err.validator not in _SELF_EXPLAINED:
                    msg += f" ({err.validator}: {json.dumps(err.validator_value, default=str)[:80]})"
                out.append(f"argument '{loc}': {msg}")
        return out


def _covered_by_pydantic(prop: dict[str, Any]) -> bool:
    """A plain scalar type with annotations only: ``args_model_from_schema`` already enforces all of it."""
    return prop.get("type") in _SCALARS and set(prop) <= _ANNOTATIONS


def _location(parts: list[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else ("." if text else "") + str(part)
    return text


# ---- path parameters ------------------------------------------------------------------------------------------------


def expand_path(template: str, values: dict[str, Any]) -> tuple[str, list[str]]:
    """(the path with every placeholder replaced by its percent-encoded value, problems). Problems name the
    argument and say what to change; when there are any the path must not be used."""
    problems: list[str] = []
    segments: list[str] = []
    for segment in template.split("/"):
        names = PLACEHOLDER.findall(segment)
        if not names:
            segments.append(segment)
            continue
        raw: dict[str, str] = {}
        for name in names:
            if values.get(name) is None:
                problems.append(f"argument '{name}': required (it is part of the URL path)")
                continue
            text, problem = _path_text(values[name])
            if problem is None:
                problem = _value_problem(text)
            if problem:
                problems.append(f"argument '{name}': {problem}; give the plain value")
            raw[name] = text
        if any(n not in raw for n in names) or problems:
            continue
        if _dot_or_empty(segment, raw):
            problems.append(f"argument{'s' if len(names) > 1 else ''} {', '.join(repr(n) for n in names)}: the URL "
                            "path segment would be empty or a '.'/'..' segment; give the plain value")
            continue
        segments.append(PLACEHOLDER.sub(functools.partial(_encoded_value, raw), segment))
    return "/".join(segments), problems


def _path_text(value: Any) -> tuple[str, str | None]:
    """The text of a path value (OpenAPI 'simple' style: arrays joined with commas) or a problem."""
    if isinstance(value, bool):
        return str(value).lower(), None
    if isinstance(value, (int, float, str)):
        return str(value), None
    if isinstance(value, list) and all(isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in value):
        return ",".join(str(v) for v in value), None
    return "", "a URL path value must be a string, a number or a list of them"


def _decodings(text: str) -> tuple[list[str], str | None]:
    """``text`` and each further-decoded form of it (percent and %u escapes), or a problem."""
    forms = [text]
    current = text
    for _ in range(_MAX_DECODE_ROUNDS):
        step = _U_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), current)
        try:
            step = unquote_to_bytes(step).decode("utf-8")
        except UnicodeDecodeError:
            return forms, "after percent-decoding it is not valid UTF-8 (overlong or broken escapes are refused)"
        if step == current:
            return forms, None
        forms.append(step)
        current = step
    return forms, f"it is percent-encoded more than {_MAX_DECODE_ROUNDS} times over"


def _variants(text: str) -> tuple[list[str], str | None]:
    forms, problem = _decodings(text)
    out: list[str] = []
    for form in forms:
        out.append(form)
        folded = unicodedata.normalize("NFKC", form)
        if folded != form:
            out.append(folded)
    return out, problem


def _value_problem(text: str) -> str | None:
    if text == "":
        return "an empty value cannot be a URL path segment"
    variants, problem = _variants(text)
    if problem:
        return problem
    for form in variants:
        for char, label in _SEPARATORS.items():
            if char in form:
                shown = "" if form == text else f" once decoded ({form[:40]!r})"
                return f"{text[:60]!r} contains {label}{shown}, which would change the URL path"
        if any(unicodedata.category(c) in _BAD_CATEGORIES for c in form):
            return f"{text[:60]!r} contains a control or invisible formatting character"
    return None


def _dot_or_empty(segment: str, raw: dict[str, str]) -> bool:
    """Whether the composed segment, at any decoding level, is empty or dots and spaces only (``..;x`` too)."""
    per_name = {name: _decodings(text)[0] for name, text in raw.items()}
    levels = max(len(v) for v in per_name.values())
    for level in range(levels):
        composed = PLACEHOLDER.sub(functools.partial(_form_at, per_name, level), segment)
        for form in (composed, unicodedata.normalize("NFKC", composed)):
            core = form.split(";", 1)[0]
            if set(core) <= {".", " "}:
                return True
    return False


def _encoded_value(raw: dict[str, str], m: re.Match[str]) -> str:
    return _encode(raw[m.group(1)])


def _form_at(per_name: dict[str, list[str]], level: int, m: re.Match[str]) -> str:
    return _at(per_name[m.group(1)], level)


def _at(forms: list[str], level: int) -> str:
    return forms[min(level, len(forms) - 1)]


def _encode(text: str) -> str:
    """Percent-encode one segment value: only unreserved characters stay literal (commas joining a list too)."""
    return ",".join(quote(part, safe="") for part in text.split(","))


# ---- header parameters ----------------------------------------------------------------------------------------------


def header_problem(name: str, value: str) -> str | None:
    """Header values must be printable ASCII on one line (no CR/LF injection, nothing httpx cannot encode)."""
    if any(not (" " <= c <= "~") for c in value):
        return f"argument '{name}': a header value must be printable ASCII on one line"
    return None


__all__ = ["SchemaChecker", "expand_path", "header_problem"]
