"""Where the framework keeps its files: one cache root for models, indexes, private venvs and logs.

At floor 0 so that ``llm`` (the model store), ``retrieval`` (the embedding model, default index folders) and the
server all agree on the root without importing each other.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["cache_dir", "default_index_dir"]


def cache_dir() -> Path:
    """The framework's cache root: ``$QWEN_AGENT_HOME`` or the platform's user cache dir (~/.cache/qwen-agent)."""
    env = os.environ.get("QWEN_AGENT_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs  # imported here: `import qwen_agent` stays free of it

    return Path(platformdirs.user_cache_dir("qwen-agent", appauthor=False))


def default_index_dir(docs: Path | str) -> Path:
    """Where the index of a documents folder lives unless told otherwise: one folder per documents folder (named
    after it, plus a hash of its absolute path so two ``docs/`` folders never share an index), in the cache."""
    path = Path(docs).resolve()
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    return cache_dir() / "indexes" / f"{path.name}-{digest}"
