"""Schema generation for @tool functions and Tool subclasses: type hints + docstrings -> clean JSON schema."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Literal, Optional

import pytest
from pydantic import BaseModel, Field

from qwen_agent.messages import ToolSchema
from qwen_agent.tools import FunctionTool, NoArgs, Tool, ToolDefinitionError, clean_schema, tool


class Color(str, Enum):  # noqa: UP042 - the classic str-enum pattern users write
    RED = "red"
    BLUE = "blue"


class Item(BaseModel):
    """One line of an order."""

    name: str = Field(description="product name")
    qty: int = 1


@tool
def place_order(
    items: list[Item],
    color: Color,
    speed: Literal["fast", "slow"] = "fast",
    note: Optional[str] = None,  # noqa: UP045 - Optional[...] spelling is under test
    tags: list[str] | None = None,
    count: Annotated[int, Field(description="how many orders", ge=1)] = 1,
) -> str:
    """Place an order for some items.

    The order is queued, not paid.

    Args:
        items: the items to order
        color: colour of the packaging
        note: free text for the courier
        count: ignored: Annotated description wins
    """
    return "ok"


def test_google_docstring_and_hints_become_schema() -> None:
    s = place_order.schema()
    assert isinstance(s, ToolSchema)
    assert s.name == "place_order"
    assert s.description == "Place an order for some items.\n\nThe order is queued, not paid."
    p = s.parameters
    assert p["type"] == "object"
    assert p["required"] == ["items", "color"]
    props = p["properties"]
    # nested model inlined, its docstring and field descriptions kept
    assert props["items"]["type"] == "array"
    assert props["items"]["description"] == "the items to order"
    item = props["items"]["items"]
    assert item["type"] == "object"
    assert item["description"] == "One line of an order."
    assert item["properties"]["name"] == {"type": "string", "description": "product name"}
    assert item["properties"]["qty"] == {"type": "integer", "default": 1}
    assert item["required"] == ["name"]
    # enum class inlined with the docstring description
    assert props["color"]["enum"] == ["red", "blue"]
    assert props["color"]["description"] == "colour of the packaging"
    assert props["speed"] == {"type": "string", "enum": ["fast", "slow"], "default": "fast"}
    # Optional[X] collapses to X with its default
    assert props["note"] == {"type": "string", "default": None, "description": "free text for the courier"}
    assert props["tags"] == {"type": "array", "items": {"type": "string"}, "default": None}
    assert props["count"] == {"type": "integer", "minimum": 1, "default": 1, "description": "how many orders"}
    # no $defs / $ref / title noise anywhere
    text = str(p)
    assert "$ref" not in text and "$defs" not in text and "'title'" not in text


def test_numpy_and_rest_docstrings() -> None:
    @tool
    def scale(x: float, factor: float = 2.0) -> float:
        """Scale a number.

        Parameters
        ----------
        x : float
            the number
        factor : float
            the multiplier
        """
        return x * factor

    @tool(name="shift_it", description="Custom description.", timeout=3)
    def shift(x: int, by: int = 1) -> int:
        """Ignored summary.

        :param x: the number
        :param by: the offset
        """
        return x + by

    sp = scale.schema().parameters["properties"]
    assert scale.schema().description == "Scale a number."
    assert sp["x"]["description"] == "the number" and sp["factor"]["description"] == "the multiplier"
    s = shift.schema()
    assert (s.name, s.description, shift.timeout) == ("shift_it", "Custom description.", 3)
    assert s.parameters["properties"]["by"] == {"type": "integer", "default": 1, "description": "the offset"}


def test_property_named_title_is_kept() -> None:
    @tool
    def make_note(title: str, body: str = "") -> str:
        """Make a note."""
        return title

    props = make_note.schema().parameters["properties"]
    assert props["title"] == {"type": "string"}
    assert set(props) == {"title", "body"}


def test_recursive_model_keeps_its_defs() -> None:
    class Node(BaseModel):
        value: int
        children: list[Node] = []

    @tool
    def walk(root: Node) -> int:
        """Walk a tree."""
        return root.value

    p = walk.schema().parameters
    assert "Node" in p["$defs"]
    assert p["properties"]["root"] == {"$ref": "#/$defs/Node"}
    assert p["$defs"]["Node"]["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}


def test_no_argument_tool_has_empty_object_schema() -> None:
    @tool
    def ping() -> str:
        """Check liveness."""
        return "pong"

    assert ping.schema().parameters == {"type": "object", "properties": {}}
    assert NoArgs.model_validate({"junk": 1}) == NoArgs()


def test_decorated_function_is_still_callable() -> None:
    @tool
    def add(a: int, b: int = 2) -> int:
        """Add."""
        return a + b

    @tool
    async def aadd(a: int, b: int) -> int:
        """Add, asynchronously."""
        return a + b

    assert isinstance(add, FunctionTool) and isinstance(add, Tool)
    assert add(1, 2) == 3 and add(a=5) == 7
    assert add.__name__ == "add" and add.__doc__ == "Add."
    import asyncio

    assert asyncio.run(aadd(2, 3)) == 5


def test_unsupported_signatures_fail_at_decoration() -> None:
    with pytest.raises(TypeError, match=r"\*args"):

        @tool
        def f1(*args: int) -> None:
            """x"""

    with pytest.raises(TypeError, match=r"\*\*kw"):

        @tool
        def f2(a: int, **kw: int) -> None:
            """x"""

    with pytest.raises(ToolDefinitionError, match=r"'b' has no type annotation.*b: Any"):

        @tool
        def f3(a: int, b) -> None:  # type: ignore[no-untyped-def]
            """x"""

    with pytest.raises(ToolDefinitionError, match="invalid tool name"):
        tool(lambda: 1)  # '<lambda>' is not a valid function name for a model

    @tool
    def any_ok(x: Any) -> Any:
        """Explicit Any is accepted."""
        return x

    assert any_ok.schema().parameters["properties"]["x"] == {}


def test_tool_subclass_schema_and_definition_checks() -> None:
    class Search(Tool):
        name = "search"
        description = "Search the notes."

        class Args(BaseModel):
            query: str = Field(description="what to look for")
            k: int = Field(3, description="number of hits", ge=1, le=20)

        def run(self, args: Search.Args) -> list[str]:
            return [args.query] * args.k

    s = Search().schema()
    assert s.name == "search" and s.description == "Search the notes."
    assert s.parameters == {
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "what to look for"},
            "k": {"type": "integer", "default": 3, "description": "number of hits", "minimum": 1, "maximum": 20},
        },
        "required": ["query"],
    }
    assert Search(name="notes_search").schema().name == "notes_search"
    with pytest.raises(ToolDefinitionError, match="invalid tool name"):
        Search(name="has space")
    with pytest.raises(ToolDefinitionError, match="timeout must be positive"):
        Search(timeout=0)


def test_clean_schema_merges_single_allof_and_keeps_site_description() -> None:
    raw = {
        "type": "object",
        "title": "X",
        "properties": {"c": {"allOf": [{"$ref": "#/$defs/C"}], "description": "site", "default": "a"}},
        "$defs": {"C": {"title": "C", "enum": ["a", "b"], "type": "string", "description": "def"}},
    }
    assert clean_schema(raw) == {
        "type": "object",
        "properties": {"c": {"enum": ["a", "b"], "type": "string", "description": "site", "default": "a"}},
    }
