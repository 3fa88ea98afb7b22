"""`qwen-agent serve`: agent profiles behind an OpenAI-compatible API (``/v1/chat/completions``) and a chat page.

Layers, bottom up: ``config`` (typed agents.toml) and ``errors`` (OpenAI error JSON) -> ``protocol`` (the wire
format) -> ``sessions`` (kernels, files), ``admission`` (bounded queue), ``citations`` (RAG annotations) ->
``profiles`` (models, tools, agents) -> ``agent_run`` / ``proxy_run`` (runs as chunks) -> ``response`` (SSE, JSON,
disconnects) -> ``app`` (routes) and ``static`` (the page) -> ``background`` (uvicorn).
"""

from qwen_agent.server.app import create_app
from qwen_agent.server.background import BackgroundServer, check_exposure, serve
from qwen_agent.server.config import ConfigError, Profile, ServeConfig, ServerSettings, load_config

__all__ = ["BackgroundServer", "ConfigError", "Profile", "ServeConfig", "ServerSettings", "check_exposure",
           "create_app", "load_config", "serve"]
