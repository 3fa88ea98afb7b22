"""JSON schemas as a model reads them: pydantic's schemas cleaned up, and the one-line type labels of signatures."""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["clean_schema", "type_label"]


def clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Make a pydantic JSON schema easy for small models to read, without changing what it accepts in spirit.

    - ``$ref``s into ``$defs`` are inlined (recursive models keep their ``$defs``);
    - ``title`` keywords are dropped (pydantic adds one per field; they repeat the name and cost tokens);
    - ``anyOf: [X, null]`` (``Optional[X]``) becomes just ``X``: the field stays optional through ``required``
      and its ``default``, and an explicit ``null`` still validates on our side;
    - a single-item ``allOf`` is merged into its parent.
    Descriptions, ``required``, ``enum``, ``const``, ``default`` and numeric/string limits are kept.
    """
    schema = copy.deepcopy(schema)
    defs: dict[str, Any] = schema.pop("$defs", {})
    recursive = {name for name in defs if _refers_to(defs[name], name, defs, set())}
    out: dict[str, Any] = _clean(schema, defs, recursive, ())
    kept = {name: _clean(defs[name], defs, recursive, (name,)) for name in recursive}
    if kept:
        out["$defs"] = kept
    out.setdefault("type", "object")
    out.setdefault("properties", {})
    return out


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _refers_to(node: Any, target: str, defs: dict[str, Any], seen: set[str]) -> bool:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = _ref_name(ref)
            if name == target:
                return True
            if name not in seen and name in defs:
                seen.add(name)
                if _refers_to(defs[name], target, defs, seen):
                    return True
        return any(_refers_to(v, target, defs, seen) for v in node.values())
    if isinstance(node, list):
        return any(_refers_to(v, target, defs, seen) for v in node)
    return False


def _clean(node: Any, defs: dict[str, Any], recursive: set[str], stack: tuple[str, ...]) -> Any:
    if isinstance(node, list):
        return [_clean(v, defs, recursive, stack) for v in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    ref = node.get("$ref")
    if isinstance(ref, str) and _ref_name(ref) in defs and _ref_name(ref) not in recursive:
        name = _ref_name(ref)
        del node["$ref"]
        node = {**defs[name], **node}  # the referencing site's description/default win
        return _clean(node, defs, recursive, (*stack, name))
    all_of = node.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict):
        del node["allOf"]
        node = {**all_of[0], **node}
        return _clean(node, defs, recursive, stack)
    any_of = node.get("anyOf")
    if isinstance(any_of, list) and len(any_of) == 2 and {"type": "null"} in any_of:
        other = next(s for s in any_of if s != {"type": "null"})
        del node["anyOf"]
        node = {**other, **node} if isinstance(other, dict) else node
        return _clean(node, defs, recursive, stack)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title" and isinstance(value, str):
            continue
        if key in ("properties", "$defs", "patternProperties") and isinstance(value, dict):
            out[key] = {k: _clean(v, defs, recursive, stack) for k, v in value.items()}
        elif key in ("default", "enum", "const", "examples", "required"):
            out[key] = value
        else:
            out[key] = _clean(value, defs, recursive, stack)
    return out


def type_label(prop: dict[str, Any]) -> str:
    if "enum" in prop:
        return " | ".join(repr(v) for v in prop["enum"])
    t = prop.get("type")
    if t == "array" and isinstance(prop.get("items"), dict):
        return f"array of {type_label(prop['items'])}"
    if isinstance(t, str):
        return t
    if "anyOf" in prop:
        return " | ".join(type_label(p) for p in prop["anyOf"] if isinstance(p, dict))
    return "any"
