"""The documents a user uploaded into a session, indexed for the server's RAG profiles.

A ``rag`` profile answers from its own documents (``--docs``/``--store``) and from what the user uploaded into the
session. Uploads are indexed into a store of the session's own (a hidden folder in its uploads folder, gone when the
session ends), one per embedding model, so a question is embedded once per store with the model that store was built
with. Indexing is incremental (by sha256), so each upload costs only its own embedding; a file that cannot be read
is reported and the rest stays searchable. Only this session's requests ever search it, and its citations link to the
session's own file URLs, never to the profile's shared document route.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qwen_agent.retrieval import IndexReport, KnowledgeBase, KnowledgeBaseConfig
    from qwen_agent.retrieval.embeddings import Embedder

logger = logging.getLogger(__name__)

__all__ = ["SessionDocuments", "is_document"]


def is_document(name: str) -> bool:
    """Whether an uploaded file is something the knowledge base can index (PDF, DOCX, HTML, Markdown, text...)."""
    from qwen_agent.retrieval.loaders import is_supported

    return is_supported(Path(name))


class SessionDocuments:
    """A session's uploaded documents as knowledge bases, keyed by the embedding model that indexed them."""

    def __init__(self, uploads_dir: Path) -> None:
        self.uploads_dir = uploads_dir
        self._stores: dict[str, KnowledgeBase] = {}

    def update(self, embedder: Embedder, config: KnowledgeBaseConfig | None = None) -> IndexReport:
        """Index new and changed uploads with ``embedder`` (blocking: call it in a thread)."""
        kb = self._stores.get(embedder.model_id)
        if kb is None:
            from qwen_agent.retrieval import KnowledgeBase

            digest = hashlib.sha256(embedder.model_id.encode()).hexdigest()[:12]
            kb = KnowledgeBase.open(self.uploads_dir / f".index-{digest}", create=True, embedder=embedder,
                                    config=config)
            self._stores[embedder.model_id] = kb
        return kb.add(self.uploads_dir)

    def knowledge(self, model_id: str) -> KnowledgeBase | None:
        """The store indexed with ``model_id``, if any upload was indexed with it."""
        return self._stores.get(model_id)

    def close(self) -> None:
        for kb in self._stores.values():
            try:
                kb.close()
            except Exception as exc:  # noqa: BLE001 - keep closing the rest
                logger.debug("closing a session's document store failed: %r", exc)
        self._stores.clear()
