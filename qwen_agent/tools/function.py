"""The ``@tool`` decorator: turn a typed Python function (sync or async) into a Tool, schema from hints + docstring.

Decision on unannotated parameters: they are rejected with a ``ToolDefinitionError`` (a ``TypeError``) at
decoration time. A parameter without a type gives the model no hint of what to send and gives us nothing to validate
against, which is exactly where small models go wrong; write ``x: Any`` to accept anything on purpose.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any, TypeVar, get_args, get_origin, get_type_hints, overload

import docstring_parser
from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.fields import FieldInfo

from qwen_agent.tools.base import UNSET, Tool, Unset
from qwen_agent.tools.errors import ToolDefinitionError

__all__ = ["FunctionTool", "as_tool", "build_args_model", "tool"]

F = TypeVar("F", bound=Callable[..., Any])

# Extra keys are ignored, not rejected: small models often add a spurious key (e.g. a copied "description"), and
# rejecting the whole call costs a model turn. Missing or ill-typed arguments are still reported.
_ARGS_CONFIG = ConfigDict(extra="ignore", protected_namespaces=(), arbitrary_types_allowed=False)


class FunctionTool(Tool):
    """A Tool wrapping a plain function. Still callable like the function itself: ``add(1, 2)`` calls ``add``."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | Unset | None = UNSET,
        max_output_chars: int | Unset | None = UNSET,
    ) -> None:
        if not callable(fn):
            raise ToolDefinitionError(f"@tool needs a function, got {fn!r}")
        self.fn = fn
        doc = docstring_parser.parse(inspect.getdoc(fn) or "")
        args_model, positional = build_args_model(fn, {p.arg_name: p.description or "" for p in doc.params})
        self._positional = positional
        super().__init__(
            name=name or getattr(fn, "__name__", ""),
            description=description if description is not None else _doc_description(doc),
            args=args_model,
            timeout=timeout,
            max_output_chars=max_output_chars,
        )
        functools.update_wrapper(self, fn, updated=())  # __name__, __doc__, __wrapped__ ... for introspection

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def _run_is_async(self) -> bool:
        call = type(self.fn).__call__ if not inspect.isroutine(self.fn) else None  # an async callable object
        return inspect.iscoroutinefunction(self.fn) or inspect.iscoroutinefunction(call)

    def run(self, args: Any) -> Any:
        """Call the function with the validated arguments (nested models stay model instances)."""
        values = {fname: getattr(args, fname) for fname in type(args).model_fields}
        positional = [values.pop(p) for p in self._positional]
        return self.fn(*positional, **values)


@overload
def tool(fn: Callable[..., Any], /) -> FunctionTool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | Unset | None = ...,
    max_output_chars: int | Unset | None = ...,
) -> Callable[[Callable[..., Any]], FunctionTool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | Unset | None = UNSET,
    max_output_chars: int | Unset | None = UNSET,
) -> FunctionTool | Callable[[Callable[..., Any]], FunctionTool]:
    """Declare a tool from a typed function: ``@tool`` or ``@tool(name=..., description=..., timeout=...)``.

    The description is the docstring's summary and body; parameter descriptions come from its Args/Parameters/
    ``:param:`` section (Google, NumPy or reST style) unless ``Annotated[T, Field(description=...)]`` gives one.
    """

    def wrap(f: Callable[..., Any]) -> FunctionTool:
        return FunctionTool(f, name=name, description=description, timeout=timeout, max_output_chars=max_output_chars)

    return wrap(fn) if fn is not None else wrap


def as_tool(obj: Tool | Callable[..., Any]) -> Tool:
    """A Tool as is; a plain typed function wrapped as if decorated with ``@tool``."""
    if isinstance(obj, Tool):
        return obj
    if isinstance(obj, type) and issubclass(obj, Tool):
        return obj()
    if callable(obj):
        return FunctionTool(obj)
    raise ToolDefinitionError(f"expected a Tool, a Tool subclass or a typed function, got {obj!r}")


def build_args_model(fn: Callable[..., Any], param_docs: dict[str, str]) -> tuple[type[BaseModel], list[str]]:
    """The pydantic model of ``fn``'s parameters, and the names that must be passed positionally."""
    fname = getattr(fn, "__name__", type(fn).__name__)
    try:
        sig = inspect.signature(fn)
        try:
            hints = get_type_hints(fn, include_extras=True)
        except NameError:  # string annotations naming classes local to the function that applies @tool
            hints = get_type_hints(fn, localns=_decoration_site_locals(), include_extras=True)
    except (TypeError, ValueError, NameError) as exc:
        raise ToolDefinitionError(f"@tool {fname}: cannot read the signature/type hints: {exc}") from exc
    fields: dict[str, Any] = {}
    positional: list[str] = []
    for pname, param in sig.parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ToolDefinitionError(
                f"@tool {fname}: *{pname}/**{pname} is not supported; declare each argument with a type"
            )
        if pname.startswith("_"):
            raise ToolDefinitionError(f"@tool {fname}: parameter {pname!r} starts with '_'; rename it")
        if pname not in hints:
            hint = " (methods are not supported: subclass Tool)" if pname in ("self", "cls") else ""
            raise ToolDefinitionError(
                f"@tool {fname}: parameter {pname!r} has no type annotation{hint}; annotate it "
                f"(e.g. `{pname}: str`, or `{pname}: Any` to accept anything)"
            )
        if param.kind is param.POSITIONAL_ONLY:
            positional.append(pname)
        annotation = hints[pname]
        default = ... if param.default is inspect.Parameter.empty else param.default
        doc = param_docs.get(pname, "").strip()
        if doc and not _annotated_description(annotation):
            fields[pname] = (annotation, Field(default, description=doc))
        else:
            fields[pname] = (annotation, default)
    model_name = "".join(part.capitalize() for part in fname.split("_")) + "Args"
    try:
        model = create_model(model_name, __config__=_ARGS_CONFIG, **fields)
        model.model_json_schema()  # fail now, not when the model first asks for the schema
    except Exception as exc:  # any pydantic schema problem is a definition error here
        raise ToolDefinitionError(f"@tool {fname}: unsupported parameter types: {exc}") from exc
    return model, positional


def _annotated_description(annotation: Any) -> bool:
    if get_origin(annotation) is not Annotated:
        return False
    return any(isinstance(m, FieldInfo) and m.description for m in get_args(annotation)[1:])


def _doc_description(doc: docstring_parser.Docstring) -> str:
    parts = [p.strip() for p in (doc.short_description, doc.long_description) if p and p.strip()]
    return "\n\n".join(parts)


def _decoration_site_locals() -> dict[str, Any]:
    """The local variables of the first frame outside this package: where ``@tool`` or ``Toolbox(...)`` was used."""
    frame = inspect.currentframe()
    try:
        while frame is not None and str(frame.f_globals.get("__name__", "")).startswith("qwen_agent.tools"):
            frame = frame.f_back
        return dict(frame.f_locals) if frame is not None else {}
    finally:
        del frame
