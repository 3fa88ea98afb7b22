"""Retrieval over a user's documents: loaders, chunking, embeddings, FAISS + BM25 hybrid search, on-disk store.

Importing this package is cheap: torch, sentence-transformers, faiss, bm25s, jieba and the document parsers
are imported only when they are first needed.
"""

from qwen_agent.retrieval.chunking import ChunkingConfig, chunk_sections, count_tokens
from qwen_agent.retrieval.embeddings import Embedder, SentenceTransformerEmbedder
from qwen_agent.retrieval.errors import EmbeddingError, LoaderError, RetrievalError, StoreError
from qwen_agent.retrieval.formatting import format_passages
from qwen_agent.retrieval.fusion import FusionConfig, adaptive_fusion, reciprocal_rank_fusion
from qwen_agent.retrieval.knowledge_base import KnowledgeBase, KnowledgeBaseConfig
from qwen_agent.retrieval.models import Chunk, FileError, Hit, IndexReport, SearchMode, Section, make_citation
from qwen_agent.retrieval.search import CrossEncoderReranker, Reranker

__all__ = [
    "Chunk",
    "ChunkingConfig",
    "CrossEncoderReranker",
    "Embedder",
    "EmbeddingError",
    "FileError",
    "FusionConfig",
    "Hit",
    "IndexReport",
    "KnowledgeBase",
    "KnowledgeBaseConfig",
    "LoaderError",
    "Reranker",
    "RetrievalError",
    "SearchMode",
    "Section",
    "SentenceTransformerEmbedder",
    "StoreError",
    "adaptive_fusion",
    "chunk_sections",
    "count_tokens",
    "format_passages",
    "make_citation",
    "reciprocal_rank_fusion",
]
