"""MCP client: expose the tools of Model Context Protocol servers (stdio or streamable HTTP) as framework Tools."""

from qwen_agent.tools.mcp.client import MCPTool, MCPToolset, load_mcp_tools
from qwen_agent.tools.mcp.config import HttpServerConfig, MCPConfig, StdioServerConfig
from qwen_agent.tools.mcp.connection import MCPConnection, MCPServerError, MCPTimeoutError

__all__ = [
    "HttpServerConfig",
    "MCPConfig",
    "MCPConnection",
    "MCPServerError",
    "MCPTimeoutError",
    "MCPTool",
    "MCPToolset",
    "StdioServerConfig",
    "load_mcp_tools",
]
