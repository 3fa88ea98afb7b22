"""Agent profiles at run time: one shared model per spec, the profiles' tools and documents, and a fresh agent
per request wired to the request's session."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qwen_agent.agents import Agent
from qwen_agent.llm.base import ChatModel
from qwen_agent.llm.spec import ModelSpec, load_model
from qwen_agent.llm.types import SamplingParams
from qwen_agent.messages import Message
from qwen_agent.prompting.notes import render_note
from qwen_agent.server.citations import CitingAssistant, SourceIndex
from qwen_agent.server.config import Profile, ServeConfig
from qwen_agent.server.errors import APIError
from qwen_agent.server.sessions import Session

logger = logging.getLogger(__name__)

__all__ = ["ProfileRuntime", "Profiles"]

ModelFactory = Callable[[str], ChatModel]


class ProfileRuntime:
    """A profile with its model, its stateless tools and its knowledge base."""

    def __init__(self, profile: Profile, model: ChatModel, knowledge: Any = None) -> None:
        from qwen_agent.tools.builtin import get_builtin

        self.profile = profile
        self.model = model
        self.tools = [get_builtin(name) for name in profile.tools]
        self.knowledge = knowledge
        self.sources = SourceIndex()

    @property
    def name(self) -> str:
        return self.profile.name

    def agent(self, session: Session | None, params: SamplingParams, pool: Any = None) -> Agent:
        """A new agent for one request; the session's interpreter is its only stateful tool."""
        p = self.profile
        tools: list[Any] = list(self.tools)
        if p.code_interpreter and session is not None:
            tools.append(session.interpreter_for(p.sandbox, p.exec_timeout_s, pool))
        merged = p.sampling().merged(params)
        if self.knowledge is not None:
            docs = session.documents if session is not None else None
            uploads = docs.knowledge(self.knowledge.embedder.model_id) if docs is not None else None
            return CitingAssistant(self.model, tools, knowledge=self.knowledge, uploads=uploads,
                                   token_budget=p.token_budget, system=p.system, max_steps=p.max_steps,
                                   params=merged, function_calling=p.function_calling)
        return Agent(self.model, tools, system=p.system, max_steps=p.max_steps, params=merged,
                     function_calling=p.function_calling)

    def prepare(self, messages: list[Message], session: Session | None) -> list[Message]:
        """The request's messages plus a note naming the files the user uploaded into the session's kernel."""
        if session is None or not session.uploads or not self.profile.code_interpreter:
            return messages
        note = _uploads_note(session)
        if messages and messages[0].role == "system":
            return [Message.system(f"{messages[0].text}\n\n{note}"), *messages[1:]]
        system = self.profile.system
        return [Message.system(f"{system}\n\n{note}" if system else note), *messages]


def _uploads_note(session: Session) -> str:
    from qwen_agent.agents.analyst import describe_columns

    files = []
    for name in session.uploads:
        columns = ""
        if session.uploads_dir is not None and name.lower().endswith((".csv", ".xlsx", ".xls")):
            try:
                columns = describe_columns(session.uploads_dir / name)[:500]
            except Exception:  # noqa: BLE001 - a file pandas cannot read is still listed
                columns = ""
        files.append({"name": name, "columns": columns})
    return render_note("uploads", files=files)


class Profiles:
    """The profiles a server offers, built from the config; models are shared between profiles of one spec."""

    def __init__(self, config: ServeConfig, model_factory: ModelFactory | None = None) -> None:
        self.config = config
        self._factory = model_factory or self._load_model
        self._owns_models = model_factory is None  # models handed in by a factory belong to the caller
        self._models: dict[str, ChatModel] = {}
        self._runtimes: dict[str, ProfileRuntime] = {}
        self._knowledge: list[Any] = []

    def _load_model(self, spec: str) -> ChatModel:
        parsed = ModelSpec.parse(spec or None)
        s = self.config.server
        if parsed.backend == "llamacpp":
            return load_model(parsed, n_ctx=s.n_ctx)
        if parsed.backend == "openai":
            return load_model(parsed, timeout=s.backend_timeout_s, max_retries=s.backend_retries)
        return load_model(parsed)

    def model_for(self, spec: str) -> ChatModel:
        if spec not in self._models:
            self._models[spec] = self._factory(spec)
        return self._models[spec]

    async def start(self) -> None:
        """Build every profile: models are created (they load on first use), documents indexed or opened."""
        for name, profile in self.config.profiles.items():
            spec = profile.model if profile.model is not None else self.config.model
            knowledge = await asyncio.to_thread(self._open_knowledge, profile) if profile.has_knowledge else None
            self._runtimes[name] = ProfileRuntime(profile, self.model_for(spec), knowledge)

    def _open_knowledge(self, profile: Profile) -> Any:
        from qwen_agent.retrieval import KnowledgeBase

        if profile.docs is not None:
            from qwen_agent.paths import default_index_dir

            kb = KnowledgeBase.build(Path(profile.docs), default_index_dir(profile.docs))
        else:
            kb = KnowledgeBase.open(Path(profile.knowledge))  # type: ignore[arg-type]
        self._knowledge.append(kb)
        return kb

    def names(self) -> list[str]:
        return list(self._runtimes)

    def get(self, name: str) -> ProfileRuntime:
        runtime = self._runtimes.get(name)
        if runtime is None:
            raise APIError.not_found(f"The model `{name}` does not exist; this server offers: "
                                     f"{', '.join(self._runtimes)}.", param="model", code="model_not_found")
        return runtime

    def runtimes(self) -> list[ProfileRuntime]:
        return list(self._runtimes.values())

    async def aclose(self) -> None:
        for model in self._models.values() if self._owns_models else []:
            try:
                await model.aclose()
            except Exception as exc:  # noqa: BLE001 - keep closing the rest
                logger.warning("closing a model failed: %r", exc)
        for kb in self._knowledge:
            kb.close()
