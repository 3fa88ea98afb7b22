"""LLaMA-Factory and Axolotl in one cached private venv, so tests read our exports with the trainers' own loaders.

LLaMA-Factory 0.9.4 pins transformers <= 4.57 and datasets <= 4.0 (the project uses newer ones), hence a venv of its
own (~2.2 GB). Installing it pulls CUDA-linked torchvision / torchaudio / torchcodec builds that break
``import transformers`` beside the CPU torch, so they are uninstalled (as for vLLM); no torchaudio exists for this
torch, which is why ``tests/fixtures/llamafactory_load.py`` loads LLaMA-Factory's parser, converter and formatters
without the multimodal package init. Axolotl's full install pulls triton, bitsandbytes, CUDA kernels and lm-eval;
its ``chat_template`` prompt strategy (what tokenizes a ``type: chat_template`` dataset) needs only what is here
plus colorama and addict, so Axolotl itself is installed without its dependencies.

    python -m qwen_agent.testing.trainer_loaders   # build it (make test does)
"""

from __future__ import annotations

from pathlib import Path

from qwen_agent.testing.private_venv import ensure_private_venv

__all__ = ["AXOLOTL_VERSION", "LLAMAFACTORY_VERSION", "ensure_trainer_loaders_venv"]

LLAMAFACTORY_VERSION = "0.9.4"
AXOLOTL_VERSION = "0.19.0"
_REQUIREMENTS = (f"llamafactory=={LLAMAFACTORY_VERSION}", "torch==2.13.0", "colorama>=0.4", "addict>=2.4")
_NO_DEPS = (f"axolotl=={AXOLOTL_VERSION}",)
_REMOVE = ("torchvision", "torchaudio", "torchcodec")
_VERIFY = "import datasets, llamafactory.extras.misc, axolotl.prompt_strategies.chat_template"


def ensure_trainer_loaders_venv(root: Path | None = None) -> Path:
    return ensure_private_venv(f"trainer-loaders-lf{LLAMAFACTORY_VERSION}-ax{AXOLOTL_VERSION}", _REQUIREMENTS,
                               no_deps=_NO_DEPS, remove=_REMOVE, root=root, verify=_VERIFY)


if __name__ == "__main__":
    print(f"trainer loaders venv ready: {ensure_trainer_loaders_venv()}", flush=True)
