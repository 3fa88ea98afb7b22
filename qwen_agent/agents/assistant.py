"""`Assistant`: an agent that answers from the user's documents (RAG) with citations, plus any tools."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any, Literal

from qwen_agent.agents.agent import Agent
from qwen_agent.agents.citations import cite
from qwen_agent.agents.events import AgentEvent, AgentResult, FinalAnswer, StepFinished, TextDelta
from qwen_agent.agents.grounding import grounded_answer
from qwen_agent.llm.base import ChatModel
from qwen_agent.messages import Message, MessageLike, as_messages
from qwen_agent.prompting import render_note
from qwen_agent.tools import ToolLike
from qwen_agent.tracing.api import Span, attached

if TYPE_CHECKING:
    from qwen_agent.retrieval import Hit, KnowledgeBase

__all__ = ["DEFAULT_SYSTEM", "Assistant", "is_relevant", "passages_for", "passages_within"]

DEFAULT_SYSTEM = "You are a helpful assistant that answers questions about the user's documents."


class Assistant(Agent):
    """Retrieves passages for the latest user question and puts them, under their source markers, into the
    system message before the model answers; the model cites the markers (``[doc.pdf p.3]``) and says it does not
    know when the passages lack the answer.

    ``knowledge`` is a `KnowledgeBase` or the path of an index store. When the whole corpus fits ``token_budget``
    it is given whole. ``search_tool=True`` also offers the `retrieval` tool so the model can search again with
    its own query.

    Two guards for small models: when no passage is at least ``min_relevance`` similar to the question (cosine of
    the embeddings; default: the embedder's own ``min_relevance``, 0.25 for MiniLM, 0.775 for e5, whose cosines
    are compressed into a high band; else 0.25)
    the model is told the documents do not contain the answer (with no tools, the assistant says so itself
    without asking the model, which would guess); and ``cite="auto"`` appends the source marker of
    the passage an answer draws on when the model wrote none (see `citations`).

    ``grounding="check"`` (the default) returns an answer as fact only when the passage sentence that answers the
    question contains its names and numbers; otherwise the user gets that sentence with its source under a line
    saying the documents do not state the answer directly (see `grounding`). The answer's text is then held back
    until it is checked, so it streams as one piece; ``grounding="off"`` streams it token by token, unchecked.
    """

    def __init__(
        self,
        model: ChatModel | None = None,
        tools: Iterable[ToolLike] = (),
        *,
        knowledge: KnowledgeBase | str | os.PathLike[str],
        token_budget: int = 1500,
        min_relevance: float | None = None,
        cite: Literal["auto", "model"] = "auto",
        grounding: Literal["check", "off"] = "check",
        search_tool: bool = False,
        system: str | None = None,
        **kwargs: Any,
    ) -> None:
        from qwen_agent.retrieval import KnowledgeBase

        self.knowledge = knowledge if isinstance(knowledge, KnowledgeBase) else KnowledgeBase.open(knowledge)
        self.token_budget = token_budget
        if min_relevance is None:
            min_relevance = getattr(self.knowledge.embedder, "min_relevance", None)
        self.min_relevance = 0.25 if min_relevance is None else min_relevance
        self.cite = cite
        self.grounding = grounding
        tools = list(tools)
        if search_tool:
            from qwen_agent.tools.retrieval import RetrievalTool

            tools.append(RetrievalTool(self.knowledge))
        super().__init__(model, tools, system=system or DEFAULT_SYSTEM, **kwargs)

    async def _events(self, messages: Iterable[MessageLike] | str, span: Span) -> AsyncIterator[AgentEvent]:
        msgs = as_messages(messages)
        question = next((m.text for m in reversed(msgs) if m.role == "user"), "")
        with attached(span.context):  # the knowledge searches' spans belong to this run
            hits = await asyncio.to_thread(self.passages, question)
        if not hits and not len(self.toolbox):
            # Nothing relevant and no tool to find it: say so instead of letting a small model guess.
            answer = render_note("not_in_documents")
            yield TextDelta(step=1, content=answer)
            yield FinalAnswer(result=AgentResult(answer=answer, messages=[*msgs, Message.assistant(answer)], steps=0,
                                                 stop_reason="answer"))
            return
        knowledge = self.knowledge_note(hits)
        if msgs and msgs[0].role == "system":
            msgs[0] = Message.system(f"{msgs[0].text}\n\n{knowledge}")
        else:
            msgs.insert(0, Message.system(f"{self.system}\n\n{knowledge}"))
        held: list[TextDelta] = []  # the text of the step that may be the answer, until it is checked
        async for event in super()._events(msgs, span):
            if self.grounding == "check" and isinstance(event, TextDelta):
                held.append(event)
                continue
            if isinstance(event, StepFinished):
                r = event.response
                if event.discarded or r.tool_calls or r.refused_calls or r.parse_errors:  # not the answer
                    for delta in held:
                        yield delta
                    held = []
            if isinstance(event, FinalAnswer) and event.result.stop_reason == "answer":
                event, replaced, more = self._checked(event, question, hits)
                if not replaced:
                    for delta in held:
                        yield delta
                if more:
                    yield TextDelta(step=event.result.steps, content=more)
                held = []
            yield event

    def _checked(self, event: FinalAnswer, question: str, hits: list[Hit]) -> tuple[FinalAnswer, bool, str]:
        """The final answer grounded (`grounding`) and cited (`citations`); whether the model's text was replaced,
        and the text to send after what was streamed (the whole replacement, or the citation added)."""
        answer = event.result.answer
        final = grounded_answer(answer, question, hits) if self.grounding == "check" else answer
        replaced = final != answer
        more = final if replaced else ""
        if not replaced and self.cite == "auto":
            final = cite(answer, hits)
            more = final[len(answer.rstrip()):] if final != answer else ""
        if final == answer:
            return event, False, ""
        event.result.messages[-1] = Message.assistant(final)
        return FinalAnswer(result=event.result.model_copy(update={"answer": final})), replaced, more

    def passages(self, question: str) -> list[Hit]:
        """The passages for ``question`` within the token budget; none when nothing is relevant enough."""
        return passages_for(self.knowledge, question, self.token_budget, self.min_relevance)

    def knowledge_note(self, hits: list[Hit]) -> str:
        """The knowledge block: passages under their citation markers, or a "nothing found" note."""
        from qwen_agent.retrieval import format_passages

        example = hits[0].citation if hits else "[doc.pdf p.3]"
        return render_note("knowledge", passages=format_passages(hits), example=example)

    async def aclose(self) -> None:
        await super().aclose()
        self.knowledge.close()


def passages_for(knowledge: KnowledgeBase, question: str, token_budget: int, min_relevance: float) -> list[Hit]:
    """The passages of ``knowledge`` for ``question`` within ``token_budget``; none when no passage is at least
    ``min_relevance`` similar to it. Whole documents when they fit, ordered by how well they match."""
    if not is_relevant(knowledge, question, min_relevance):
        return []
    return passages_within(knowledge, question, token_budget)


def is_relevant(knowledge: KnowledgeBase, question: str, min_relevance: float) -> bool:
    """Whether some passage of ``knowledge`` is at least ``min_relevance`` similar to ``question`` (one vector
    search for the best passage)."""
    if not question.strip():
        return False
    best = knowledge.search(question, k=1, mode="vector")
    return bool(best) and best[0].score >= min_relevance


def passages_within(knowledge: KnowledgeBase, question: str, token_budget: int) -> list[Hit]:
    """The passages of ``knowledge`` for ``question`` within ``token_budget``, relevant or not: whole documents when
    they fit, ordered by how well they match."""
    hits = knowledge.context_for(question, token_budget)
    if any(h.chunk_id is None for h in hits):
        # Whole documents come in reading order; a small model answers from what it reads first, so put the
        # documents that match the question best first.
        ranked = knowledge.search(question, k=20)
        rank: dict[tuple[str, int | None, str | None], int] = {}
        for i, h in enumerate(ranked):
            rank.setdefault((h.source, h.page, h.sheet), i)
            rank.setdefault((h.source, None, None), i)
        hits.sort(key=lambda h: rank.get((h.source, h.page, h.sheet), rank.get((h.source, None, None), 99)))
    return hits
