"""MCP server configuration in the familiar ``{"mcpServers": {name: {...}}}`` shape, as typed pydantic models.

A server entry is either a command to launch (stdio: ``command``, ``args``, ``env``, ``cwd``) or a ``url``
(streamable HTTP, with optional ``headers``). Secrets belong in ``env`` / ``headers`` values, which may name
environment variables as ``${VAR}`` so configuration files need not hold them.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from qwen_agent.tools.errors import ToolDefinitionError

_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _ServerCommon(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    timeout: float = Field(default=30.0, gt=0, description="seconds allowed for one tool call")
    startup_timeout: float = Field(default=20.0, gt=0, description="seconds allowed to connect and list tools")
    tool_prefix: str | None = Field(default=None, description="prepended to every tool name, e.g. 'files.'")
    include_tools: list[str] | None = Field(default=None, description="only these tools (default: all)")
    exclude_tools: list[str] = Field(default_factory=list)
    resources: bool = Field(default=False, description="also offer a read_resource tool for this server")


class StdioServerConfig(_ServerCommon):
    """Launch ``command args...`` and talk MCP over its stdin/stdout."""

    command: str
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None


class HttpServerConfig(_ServerCommon):
    """Connect to a streamable-HTTP MCP endpoint."""

    url: str
    headers: dict[str, str] = Field(default_factory=dict)


ServerConfig = StdioServerConfig | HttpServerConfig


class MCPConfig(BaseModel):
    """``{"mcpServers": {"name": {"command": ...} | {"url": ...}}}``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    servers: dict[str, ServerConfig] = Field(default_factory=dict, alias="mcpServers")

    @model_validator(mode="before")
    @classmethod
    def _pick_kind(cls, data: Any) -> Any:
        """Choose stdio vs HTTP by the keys present, so errors name the right fields."""
        if isinstance(data, dict):
            raw = data.get("mcpServers", data.get("servers"))
            if isinstance(raw, dict):
                servers: dict[str, Any] = {}
                for name, entry in raw.items():
                    if isinstance(entry, dict) and not isinstance(entry, BaseModel):
                        if "url" in entry and "command" in entry:
                            raise ValueError(f"MCP server {name!r}: give either 'command' or 'url', not both")
                        kind = HttpServerConfig if "url" in entry else StdioServerConfig
                        entry = kind.model_validate(entry)
                    servers[name] = entry
                data = {"mcpServers": servers}
        return data

    @classmethod
    def load(cls, source: MCPConfig | dict[str, Any] | str | Path) -> MCPConfig:
        """From a model, a dict, a JSON string or a path to a JSON file."""
        if isinstance(source, MCPConfig):
            return source
        if isinstance(source, Path) or (isinstance(source, str) and not source.lstrip().startswith("{")):
            path = Path(source)
            if not path.is_file():
                raise ToolDefinitionError(f"MCP config file {path} does not exist")
            source = path.read_text(encoding="utf-8")
        if isinstance(source, str):
            source = json.loads(source)
        return cls.model_validate(source)


def expand_env(values: dict[str, str]) -> dict[str, str]:
    """Replace ``${VAR}`` with the environment's value; a missing variable is an error that names it."""
    out: dict[str, str] = {}
    for key, value in values.items():
        missing = [v for v in _VAR_RE.findall(value) if v not in os.environ]
        if missing:
            raise ToolDefinitionError(f"MCP config value {key!r} refers to ${{{missing[0]}}}, which is not set")
        out[key] = _VAR_RE.sub(lambda m: os.environ[m.group(1)], value)
    return out


__all__ = ["HttpServerConfig", "MCPConfig", "ServerConfig", "StdioServerConfig", "expand_env"]
