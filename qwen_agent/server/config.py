"""The typed configuration of `qwen-agent serve`: server limits and agent profiles, read from ``agents.toml``.

    model = "llamacpp:"                  # default model spec of every profile

    [server]
    host = "127.0.0.1"
    port = 8080
    api_keys = ["sk-local-..."]          # or --api-key / $QWEN_AGENT_SERVE_API_KEY
    max_sessions = 64

    [profiles.analyst]
    description = "Data analysis in a sandboxed Python kernel"
    code_interpreter = true
    tools = ["calculator"]
    max_steps = 6
    function_calling = { format = "nous", constrained = true }

Every field is checked (unknown names too); `ConfigError` lists each bad field as ``profiles.analyst.max_steps:
... (got 0)``, so a typo never silently becomes a default.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from qwen_agent.errors import QwenAgentError
from qwen_agent.llm.types import FunctionCalling, SamplingParams

__all__ = ["ConfigError", "Profile", "ServeConfig", "ServerSettings", "is_loopback", "load_config"]

API_KEY_ENV = "QWEN_AGENT_SERVE_API_KEY"
_PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
#: Tools a profile may name in ``tools``; ``code_interpreter`` and ``retrieval`` have their own switches.
_SESSION_TOOLS = {"code_interpreter"}


class ConfigError(QwenAgentError, ValueError):
    """The configuration file (or a command-line override) has bad fields; the message lists each one."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ServerSettings(_Strict):
    """Where to listen, who may call, and the limits that keep the server's memory and work bounded."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    #: Bearer keys accepted on /v1/*. Empty: no key needed, which is only allowed on a loopback address.
    api_keys: list[Annotated[str, Field(min_length=8, max_length=256)]] = Field(default_factory=list)
    #: Sessions (one code-interpreter kernel and work dir each) kept at once; a new one beyond this gets 503.
    max_sessions: int = Field(32, ge=1, le=10_000)
    #: A session unused this long is closed (its kernel stopped, its files deleted).
    session_idle_s: float = Field(900.0, gt=0)
    #: Agent runs working at once; further requests wait in a queue of ``max_queued_runs`` (then 429).
    max_concurrent_runs: int = Field(32, ge=1, le=4096)
    max_queued_runs: int = Field(64, ge=0, le=100_000)
    #: A queued request that has not started after this long gets 503 with Retry-After.
    queue_timeout_s: float = Field(30.0, gt=0)
    #: A whole run (all model steps and tool calls) longer than this is stopped: 504.
    run_timeout_s: float = Field(600.0, gt=0)
    #: Timeout and retries of each request to an OpenAI-compatible backend.
    backend_timeout_s: float = Field(300.0, gt=0)
    backend_retries: int = Field(2, ge=0, le=10)
    max_request_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    max_upload_bytes: int = Field(32 * 1024 * 1024, ge=1024)
    max_messages: int = Field(512, ge=1)
    #: Largest figure or file served from a session's work dir.
    max_file_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    #: Context size of embedded llama.cpp models.
    n_ctx: int = Field(8192, ge=512)
    #: Sandboxed kernels kept warm for new sessions (0: start one when a session first runs code).
    kernel_pool: int = Field(1, ge=0, le=32)
    #: Base of the figure URLs put into replies (default: the URL the request came in on).
    public_url: str | None = None

    @field_validator("public_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http(s) URL such as https://agents.example.com")
        return value.rstrip("/") if value else value


class Profile(_Strict):
    """One agent offered as a model: its model spec, tools, prompt, documents and limits."""

    name: str = ""
    description: str = ""
    #: A model spec (``llamacpp:``, ``openai:http://127.0.0.1:8000/v1#name`` ...); None: the file's ``model``.
    model: str | None = None
    #: Built-in tools by name (``calculator``, ``current_time``, ``web_fetch`` ...).
    tools: list[str] = Field(default_factory=list)
    #: A sandboxed Python kernel per session (its figures are served to the client).
    code_interpreter: bool = False
    sandbox: Literal["bwrap", "none"] = "bwrap"
    exec_timeout_s: float = Field(60.0, gt=0, le=3600)
    system: str | None = None
    #: An index store made by `qwen-agent index` (answers cite it), or a documents folder indexed at start-up.
    knowledge: Path | None = None
    docs: Path | None = None
    token_budget: int = Field(1500, ge=100, le=100_000)
    max_steps: int = Field(8, ge=1, le=64)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1, le=32768)
    seed: int | None = None
    function_calling: FunctionCalling = Field(default_factory=FunctionCalling)

    @field_validator("tools")
    @classmethod
    def _known_tools(cls, tools: list[str]) -> list[str]:
        from qwen_agent.tools.builtin import builtin_names

        known = [n for n in builtin_names() if n not in _SESSION_TOOLS]
        for name in tools:
            if name in _SESSION_TOOLS:
                raise ValueError(f"{name!r} is switched on with `code_interpreter = true`, not listed in tools")
            if name not in known:
                raise ValueError(f"unknown tool {name!r}; built-in tools: {', '.join(known)}")
        if len(set(tools)) != len(tools):
            raise ValueError("a tool is listed twice")
        return tools

    @model_validator(mode="after")
    def _one_source(self) -> Profile:
        if self.knowledge is not None and self.docs is not None:
            raise ValueError("give either `knowledge` (an index store) or `docs` (a folder to index), not both")
        return self

    @property
    def has_knowledge(self) -> bool:
        return self.knowledge is not None or self.docs is not None

    def sampling(self) -> SamplingParams:
        fields: dict[str, Any] = {"temperature": self.temperature, "top_p": self.top_p,
                                  "max_tokens": self.max_tokens, "seed": self.seed}
        return SamplingParams.model_validate({k: v for k, v in fields.items() if v is not None})

    def describe(self, default_model: str) -> dict[str, Any]:
        """What ``GET /v1/models`` tells about this profile (no secrets: a spec holds none)."""
        tools = [*self.tools, *(["code_interpreter"] if self.code_interpreter else [])]
        return {
            "description": self.description, "model": self.model or default_model, "tools": tools,
            "system": self.system, "knowledge": str(self.knowledge or self.docs) if self.has_knowledge else None,
            "code_interpreter": self.code_interpreter,
            "limits": {"max_steps": self.max_steps, "max_tokens": self.max_tokens,
                       "exec_timeout_s": self.exec_timeout_s if self.code_interpreter else None},
            "function_calling": self.function_calling.model_dump(),
        }


class ServeConfig(_Strict):
    """The whole file: a default model spec, the server section and the profiles by name."""

    model: str = ""
    server: ServerSettings = Field(default_factory=ServerSettings)
    profiles: dict[str, Profile] = Field(default_factory=dict)

    @field_validator("model")
    @classmethod
    def _spec(cls, value: str) -> str:
        _check_spec(value)
        return value

    @model_validator(mode="after")
    def _names(self) -> ServeConfig:
        for name, profile in self.profiles.items():
            if not _PROFILE_NAME.match(name):
                raise ValueError(f"profile name {name!r}: use 1-64 letters, digits, '.', '_', ':' or '-'")
            if profile.model is not None:
                try:
                    _check_spec(profile.model)
                except ValueError as exc:
                    raise ValueError(f"profiles.{name}.model: {exc}") from None
            profile.name = name
        return self

    def with_defaults(self, *, docs: Path | None = None, store: Path | None = None) -> ServeConfig:
        """Without profiles: ``assistant`` (calculator, code interpreter) and, given documents, ``rag``."""
        if self.profiles:
            if docs is not None or store is not None:
                raise ConfigError("--docs/--store add the default `rag` profile; with a config file, give the "
                                  "profile `docs = ...` or `knowledge = ...` there instead")
            return self
        profiles = {"assistant": Profile(name="assistant", description="Calculator and a sandboxed Python kernel",
                                         tools=["calculator"], code_interpreter=True)}
        if docs is not None or store is not None:
            profiles["rag"] = Profile(name="rag", description="Answers from your documents, with citations",
                                      docs=docs, knowledge=store, max_steps=4)
        return self.model_copy(update={"profiles": profiles})


def _check_spec(spec: str) -> None:
    from qwen_agent.llm.spec import ModelSpec, ModelSpecError

    try:
        ModelSpec.parse(spec or None)
    except ModelSpecError as exc:
        raise ValueError(str(exc)) from None


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; any other name or address counts as reachable by others."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def describe_errors(exc: ValidationError, source: str) -> str:
    """One line per bad field: ``source: profiles.rag.max_steps: Input should be ... (got 0)``."""
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling)"
        got = err.get("input")
        shown = "" if err["type"] in ("extra_forbidden", "missing") or isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"{source}: {where}: {msg}{shown}")
    return "\n".join(lines)


def load_config(path: Path | str | None = None, overrides: dict[str, Any] | None = None) -> ServeConfig:
    """Read ``path`` (TOML; None: no file) and apply ``overrides`` to the server section (command-line flags).

    API keys also come from ``$QWEN_AGENT_SERVE_API_KEY`` (comma-separated) when neither gives any.
    """
    data: dict[str, Any] = {}
    source = "command line"
    if path is not None:
        source = str(path)
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    server = dict(data.get("server") or {}) if isinstance(data.get("server", {}), dict) else data.get("server")
    if isinstance(server, dict):
        server.update({k: v for k, v in (overrides or {}).items() if v is not None})
        if not server.get("api_keys") and os.environ.get(API_KEY_ENV):
            server["api_keys"] = [k.strip() for k in os.environ[API_KEY_ENV].split(",") if k.strip()]
        data = {**data, "server": server}
    try:
        return ServeConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, source)) from None
