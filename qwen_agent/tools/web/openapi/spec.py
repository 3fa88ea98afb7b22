"""Reading an OpenAPI 3 document: load it, inline local ``$ref``s, and turn each operation into a tool definition."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict

from qwen_agent.tools.errors import ToolDefinitionError

logger = logging.getLogger(__name__)

METHODS = ("get", "put", "post", "delete", "patch")
PLACEHOLDER = re.compile(r"\{([^{}/]+)\}")
_MAX_REF_DEPTH = 20
# Headers that steer the connection or the request framing; a model-chosen value must never set them.
_UNSAFE_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection", "upgrade", "te",
                             "trailer", "keep-alive", "proxy-authorization", "proxy-connection", "expect"})


class Param(BaseModel):
    """One argument of an operation: the name the model sees, the name on the wire, and where it goes."""

    model_config = ConfigDict(frozen=True)

    name: str
    wire: str
    where: Literal["path", "query", "header", "body", "body_whole"]


class OperationDef(BaseModel):
    """What a tool needs to know about one operation."""

    name: str
    method: str
    path: str
    description: str
    input_schema: dict[str, Any]
    params: list[Param]


def load_spec(source: dict[str, Any] | str | Path) -> tuple[dict[str, Any], str | None]:
    """(spec, the URL it came from) from a dict, a JSON/YAML file path, a JSON/YAML string or an http(s) URL.

    A spec URL is the developer's configuration, not model input, so it is fetched directly (not through the
    address policy that guards the operations' calls)."""
    if isinstance(source, dict):
        return _checked(source), None
    text = str(source)
    origin = None
    if isinstance(source, str) and re.match(r"^https?://", text):
        response = httpx.get(text, timeout=30.0, follow_redirects=True, trust_env=False)
        response.raise_for_status()
        text, origin = response.text, str(response.url)
    elif isinstance(source, Path) or not text.lstrip().startswith(("{", "openapi", "swagger")):
        text = Path(text).read_text(encoding="utf-8")
    try:
        spec = json.loads(text)
    except ValueError:
        import yaml

        spec = yaml.safe_load(text)
    return _checked(spec), origin


def _checked(spec: Any) -> dict[str, Any]:
    if not isinstance(spec, dict) or not str(spec.get("openapi", "")).startswith("3"):
        raise ToolDefinitionError("not an OpenAPI 3 document (no 'openapi: 3.x' field)")
    return spec


def resolve_refs(node: Any, spec: dict[str, Any], depth: int = 0) -> Any:
    """Inline local ``$ref``s (``#/components/...``); deep or circular ones become a plain object."""
    if isinstance(node, list):
        return [resolve_refs(v, spec, depth) for v in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        if depth > _MAX_REF_DEPTH or not ref.startswith("#/"):
            return {"type": "object"}
        target: Any = spec
        for part in ref[2:].split("/"):
            target = target.get(part.replace("~1", "/").replace("~0", "~"), {}) if isinstance(target, dict) else {}
        return resolve_refs(target, spec, depth + 1)
    return {k: resolve_refs(v, spec, depth) for k, v in node.items()}


def tool_name(op: dict[str, Any], method: str, path: str) -> str:
    raw = op.get("operationId") or f"{method}_{path}"
    name = re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9_]+", "_", raw)).strip("_") or method
    if not re.match(r"[A-Za-z_]", name):
        name = "op_" + name
    return name[:64]


def operation(spec: dict[str, Any], method: str, path: str, op: dict[str, Any], path_params: list[Any]) -> OperationDef:
    """The tool definition of one operation: path, query and header parameters plus the JSON body's properties."""
    props: dict[str, Any] = {}
    required: list[str] = []
    params: list[Param] = []
    merged = {(p.get("in"), p.get("name")): p
              for p in resolve_refs(path_params, spec) + resolve_refs(op.get("parameters", []), spec)
              if isinstance(p, dict)}
    for (where, wire), p in merged.items():
        if where not in ("path", "query", "header") or not wire or not isinstance(wire, str):
            continue
        if where == "header" and wire.lower() in _UNSAFE_HEADERS:
            logger.warning("OpenAPI %s %s: header parameter %r is not offered to the model (it would steer the "
                           "connection)", method.upper(), path, wire)
            continue
        schema = dict(p.get("schema") or {"type": "string"})
        if p.get("description"):
            schema["description"] = p["description"]
        props[wire] = schema
        params.append(Param(name=wire, wire=wire, where=where))
        if p.get("required") or where == "path":
            required.append(wire)
    for wire in PLACEHOLDER.findall(path):  # a template variable the spec forgot to declare: a required string
        if (wire, "path") not in {(p.wire, p.where) for p in params}:
            props.setdefault(wire, {"type": "string"})
            params.append(Param(name=wire, wire=wire, where="path"))
            required.append(wire)
    body = resolve_refs(op.get("requestBody"), spec)
    if isinstance(body, dict):
        content = body.get("content", {})
        media = content.get("application/json") or next(iter(content.values()), None)
        schema = (media or {}).get("schema") or {}
        if schema.get("type", "object") == "object" and schema.get("properties") and \
                not set(schema["properties"]) & set(props):
            for wire, sub in schema["properties"].items():
                props[wire] = sub
                params.append(Param(name=wire, wire=wire, where="body"))
            required += [r for r in schema.get("required", []) if r in schema["properties"]]
        elif schema:
            props["body"] = {**schema, "description": body.get("description") or "the JSON request body"}
            params.append(Param(name="body", wire="body", where="body_whole"))
            if body.get("required"):
                required.append("body")
    description = (op.get("summary") or "").strip()
    extra = (op.get("description") or "").strip()
    if extra and extra != description:
        description = f"{description} {extra}".strip()
    description = description or f"{method.upper()} {path}"
    input_schema = {"type": "object", "properties": props, "required": required}
    return OperationDef(name=tool_name(op, method, path), method=method.upper(), path=path, description=description,
                        input_schema=input_schema, params=params)


__all__ = ["METHODS", "PLACEHOLDER", "OperationDef", "Param", "load_spec", "operation", "resolve_refs", "tool_name"]
