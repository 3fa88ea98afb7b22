"""Test doubles of the *model* for users' and our own tests: a scripted OpenAI-compatible server on 127.0.0.1,
answering from a script or from `RuleModel`, a deterministic stand-in that reads the request like a model would."""

from __future__ import annotations

from qwen_agent.testing.instant import InstantModel
from qwen_agent.testing.rule_model import RuleModel
from qwen_agent.testing.script import RecordedRequest, ScriptedReply, ScriptedToolCall
from qwen_agent.testing.scripted_server import ScriptedServer

__all__ = ["InstantModel", "RecordedRequest", "RuleModel", "ScriptedReply", "ScriptedServer", "ScriptedToolCall"]
