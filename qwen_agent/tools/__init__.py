"""Tools the agent can call: the Tool base class, the @tool decorator, ToolOutput, the Toolbox and typed errors.

Importing this package is cheap: built-in and heavy tools (code interpreter, retrieval, web, MCP) live in
subpackages that are imported only when used (``qwen_agent.tools.builtin.get_builtin("calculator")``).
"""

from qwen_agent.tools.base import DEFAULT_TIMEOUT, NoArgs, Tool, clean_schema, run_in_tool_thread
from qwen_agent.tools.errors import (
    DuplicateToolError,
    SandboxError,
    ToolArgumentsError,
    ToolDefinitionError,
    ToolError,
    ToolExecutionError,
    ToolStartError,
    ToolTimeoutError,
    UnknownToolError,
)
from qwen_agent.tools.function import FunctionTool, as_tool, tool
from qwen_agent.tools.output import DEFAULT_MAX_CHARS, ToolOutput
from qwen_agent.tools.registry import Toolbox, ToolLike

__all__ = [
    "DEFAULT_MAX_CHARS",
    "DEFAULT_TIMEOUT",
    "DuplicateToolError",
    "FunctionTool",
    "NoArgs",
    "SandboxError",
    "Tool",
    "ToolArgumentsError",
    "ToolDefinitionError",
    "ToolError",
    "ToolExecutionError",
    "ToolLike",
    "ToolOutput",
    "ToolStartError",
    "ToolTimeoutError",
    "Toolbox",
    "UnknownToolError",
    "as_tool",
    "clean_schema",
    "run_in_tool_thread",
    "tool",
]
