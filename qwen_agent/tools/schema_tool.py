"""SchemaTool: a Tool whose arguments are described by a foreign JSON schema (an MCP tool, an OpenAPI operation).

``Tool.Args`` must be a pydantic model, so one is built from the schema's top-level properties (lax validation
keeps ``"3"`` -> ``3`` for small models), while the schema offered to the model is the original one, cleaned up:
nested constraints the pydantic model does not copy are still shown to the model and still checked by the server.
"""

from __future__ import annotations

import keyword
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from qwen_agent.messages import ToolSchema
from qwen_agent.tools.base import Tool
from qwen_agent.tools.schemas import clean_schema

_SIMPLE: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "array": list[Any],
    "object": dict[str, Any],
    "null": type(None),
}
_RESERVED = set(dir(BaseModel)) | {"model_config"}


def python_type(prop: dict[str, Any]) -> Any:
    """A permissive Python type for one JSON-schema property (unknown shapes become ``Any``)."""
    enum = prop.get("enum")
    if isinstance(enum, list) and enum and all(isinstance(v, (str, int, bool)) for v in enum):
        return Literal[tuple(enum)]
    kind = prop.get("type")
    if isinstance(kind, list):
        types = [_SIMPLE[k] for k in kind if k in _SIMPLE]
        if not types:
            return Any
        out = types[0]
        for t in types[1:]:
            out = out | t
        return out
    if isinstance(kind, str) and kind in _SIMPLE:
        return _SIMPLE[kind]
    return Any


def args_model_from_schema(model_name: str, schema: dict[str, Any]) -> type[BaseModel]:
    """A pydantic model with one field per top-level property; required ones are required, others default.

    Property names that are not Python identifiers (``user-id``) or clash with BaseModel attributes (``schema``)
    get a safe field name and keep the original as alias, so dumping ``by_alias`` gives back the wire names.
    """
    props: dict[str, Any] = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    fields: dict[str, Any] = {}
    for i, (wire, prop) in enumerate(props.items()):
        prop = prop if isinstance(prop, dict) else {}
        field_name = wire
        if not wire.isidentifier() or keyword.iskeyword(wire) or wire in _RESERVED or wire.startswith("_"):
            field_name = f"f{i}_" + re.sub(r"\W", "_", wire)
        typ = python_type(prop)
        desc = prop.get("description")
        if wire in required:
            fields[field_name] = (typ, Field(..., alias=wire, description=desc))
        else:
            fields[field_name] = (typ | None, Field(prop.get("default"), alias=wire, description=desc))
    config = ConfigDict(extra="ignore", populate_by_name=True, coerce_numbers_to_str=True)
    return create_model(re.sub(r"\W", "_", model_name) or "Args", __config__=config, **fields)


class SchemaTool(Tool):
    """A Tool described by a JSON schema it did not generate. Subclasses implement ``run`` with ``wire_args``."""

    def __init__(self, *, name: str, description: str, input_schema: dict[str, Any], timeout: float | None,
                 max_output_chars: int | None) -> None:
        self.input_schema = input_schema or {"type": "object", "properties": {}}
        super().__init__(name=name, description=description,
                         args=args_model_from_schema(f"{name}_args", self.input_schema), timeout=timeout,
                         max_output_chars=max_output_chars)

    def schema(self) -> ToolSchema:
        if self._schema is None:
            self._schema = ToolSchema(name=self.name, description=self.description,
                                      parameters=clean_schema(self.input_schema))
        return self._schema

    @staticmethod
    def wire_args(args: BaseModel) -> dict[str, Any]:
        """Arguments under their original names; optional ones the model did not give are left out."""
        return args.model_dump(by_alias=True, exclude_unset=True, mode="json")


__all__ = ["SchemaTool", "args_model_from_schema", "python_type"]
