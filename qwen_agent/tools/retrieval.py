"""The `retrieval` tool: lets the model search the user's indexed documents and read passages with citations."""

from __future__ import annotations

import os
from typing import Annotated, Any

from pydantic import BaseModel, Field

from qwen_agent.retrieval import KnowledgeBase, format_passages
from qwen_agent.retrieval.models import SearchMode
from qwen_agent.tools.base import Tool, ToolOutput

__all__ = ["NOTHING_FOUND", "RetrievalArgs", "RetrievalTool", "make_retrieval_tool"]

NOTHING_FOUND = "No passage in the documents matches this query. Say that the documents do not contain the answer."


class RetrievalArgs(BaseModel):
    query: Annotated[str, Field(description="What to look for, in the user's words or as keywords.", min_length=1)]
    k: Annotated[int, Field(description="How many passages to return.", ge=1, le=20)] = 5


class RetrievalTool(Tool):
    """Searches a KnowledgeBase (hybrid vector + BM25 by default) and returns passages under citation markers.

    ``run`` is a plain function, so the Tool base runs it in a worker thread: embedding the query and the FAISS
    search never block the event loop.
    """

    name = "retrieval"
    description = (
        "Search the user's documents. Returns passages, each under a citation marker like [doc.pdf p.3]; "
        "cite the marker of every passage you use in your answer."
    )
    Args = RetrievalArgs

    def __init__(self, knowledge_base: KnowledgeBase, *, mode: SearchMode = "hybrid", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.knowledge_base = knowledge_base
        self.mode: SearchMode = mode

    def run(self, args: RetrievalArgs) -> ToolOutput:
        hits = self.knowledge_base.search(args.query, k=args.k, mode=self.mode)
        if not hits:
            return ToolOutput(text=NOTHING_FOUND, data=[])
        return ToolOutput(text=format_passages(hits), data=[h.model_dump(mode="json") for h in hits])


def make_retrieval_tool(
    store: str | os.PathLike[str] | None = None,
    docs: str | os.PathLike[str] | None = None,
    *,
    model: str | None = None,
    mode: SearchMode = "hybrid",
) -> RetrievalTool:
    """Factory for the built-in registry: open ``store`` or index ``docs`` (into ``store`` or ``DOCS/.qwen-index``)."""
    if store is None and docs is None:
        raise ValueError("the retrieval tool needs store= (an index folder) or docs= (a documents folder)")
    if docs is not None:
        store_path = store if store is not None else os.path.join(docs, ".qwen-index")
        kb = KnowledgeBase.build(docs, store_path, model=model)
    else:
        assert store is not None
        kb = KnowledgeBase.open(store, model=model)
    return RetrievalTool(kb, mode=mode)
