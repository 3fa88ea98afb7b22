"""LLaMA-Factory in a cached private venv, so tests can read our ShareGPT exports with its own loader code.

It pins transformers <= 4.57 and datasets <= 4.0 (the project uses newer ones), hence its own venv (~2.2 GB).
Installing it pulls CUDA-linked torchvision / torchaudio / torchcodec builds that break ``import transformers``
beside the CPU torch, so they are uninstalled (as for vLLM); no torchaudio exists for this torch, which is why the
loader driver (``tests/fixtures/llamafactory_load.py``) bypasses the multimodal part of ``llamafactory.data``.

    python -m qwen_agent.testing.llamafactory_env   # build it (make test does)
"""

from __future__ import annotations

from pathlib import Path

from qwen_agent.testing.private_venv import ensure_private_venv

__all__ = ["LLAMAFACTORY_VERSION", "ensure_llamafactory_venv"]

LLAMAFACTORY_VERSION = "0.9.4"
_REQUIREMENTS = (f"llamafactory=={LLAMAFACTORY_VERSION}", "torch==2.13.0")
_REMOVE = ("torchvision", "torchaudio", "torchcodec")


def ensure_llamafactory_venv(root: Path | None = None) -> Path:
    return ensure_private_venv(f"llamafactory-{LLAMAFACTORY_VERSION}", _REQUIREMENTS, remove=_REMOVE, root=root,
                               verify="import datasets, llamafactory.extras.misc")


if __name__ == "__main__":
    print(f"LLaMA-Factory venv ready: {ensure_llamafactory_venv()}", flush=True)
