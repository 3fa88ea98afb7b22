"""Test doubles of the *model* for users' and our own tests: a scripted OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

from qwen_agent.testing.script import RecordedRequest, ScriptedReply, ScriptedToolCall
from qwen_agent.testing.scripted_server import ScriptedServer

__all__ = ["RecordedRequest", "ScriptedReply", "ScriptedServer", "ScriptedToolCall"]
