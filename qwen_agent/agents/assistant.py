"""`Assistant`: an agent that answers from the user's documents (RAG) with citations, plus any tools."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

from qwen_agent.agents.agent import Agent
from qwen_agent.agents.events import AgentEvent
from qwen_agent.llm.base import ChatModel
from qwen_agent.messages import Message, MessageLike, as_messages
from qwen_agent.prompting import render_note
from qwen_agent.tools import ToolLike

if TYPE_CHECKING:
    from qwen_agent.retrieval import KnowledgeBase

DEFAULT_SYSTEM = "You are a helpful assistant that answers questions about the user's documents."


class Assistant(Agent):
    """Retrieves passages for the latest user question and puts them, under their source markers, into the
    system message before the model answers; the model cites the markers (``[doc.pdf p.3]``) and says it does not
    know when the passages lack the answer.

    ``knowledge`` is a `KnowledgeBase` or the path of an index store. When the whole corpus fits ``token_budget``
    it is given whole. ``search_tool=True`` also offers the `retrieval` tool so the model can search again with
    its own query.
    """

    def __init__(
        self,
        model: ChatModel | None = None,
        tools: Iterable[ToolLike] = (),
        *,
        knowledge: KnowledgeBase | str | os.PathLike[str],
        token_budget: int = 1500,
        search_tool: bool = False,
        system: str | None = None,
        **kwargs: Any,
    ) -> None:
        from qwen_agent.retrieval import KnowledgeBase

        self.knowledge = knowledge if isinstance(knowledge, KnowledgeBase) else KnowledgeBase.open(knowledge)
        self.token_budget = token_budget
        tools = list(tools)
        if search_tool:
            from qwen_agent.tools.retrieval import RetrievalTool

            tools.append(RetrievalTool(self.knowledge))
        super().__init__(model, tools, system=system or DEFAULT_SYSTEM, **kwargs)

    async def astream(self, messages: Iterable[MessageLike] | str) -> AsyncIterator[AgentEvent]:
        msgs = as_messages(messages)
        question = next((m.text for m in reversed(msgs) if m.role == "user"), "")
        knowledge = await asyncio.to_thread(self.knowledge_note, question)
        if msgs and msgs[0].role == "system":
            msgs[0] = Message.system(f"{msgs[0].text}\n\n{knowledge}")
        else:
            msgs.insert(0, Message.system(f"{self.system}\n\n{knowledge}"))
        async for event in super().astream(msgs):
            yield event

    def knowledge_note(self, question: str) -> str:
        """The knowledge block for ``question``: passages under their citation markers, or a "nothing found" note."""
        from qwen_agent.retrieval import format_passages

        hits = self.knowledge.context_for(question, self.token_budget) if question.strip() else []
        example = hits[0].citation if hits else "[doc.pdf p.3]"
        return render_note("knowledge", passages=format_passages(hits), example=example)

    async def aclose(self) -> None:
        await super().aclose()
        self.knowledge.close()
