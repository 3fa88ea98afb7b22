"""The package's public names are pinned: adding or removing one is a deliberate change of this list (as httpx does)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import qwen_agent
import qwen_agent.llm

ROOT = Path(__file__).resolve().parent.parent

PUBLIC = [
    "Agent",
    "Assistant",
    "ChatModel",
    "CodeInterpreter",
    "FunctionCalling",
    "KnowledgeBase",
    "Message",
    "ModelError",
    "QwenAgentError",
    "ReActAgent",
    "RetrievalError",
    "SamplingParams",
    "Tool",
    "ToolError",
    "__version__",
    "load_model",
    "tool",
]

LLM_PUBLIC = [
    "Capabilities",
    "ChatDelta",
    "ChatModel",
    "ChatResponse",
    "ContextLengthError",
    "FunctionCalling",
    "LlamaCpp",
    "ModelConnectionError",
    "ModelError",
    "ModelNotFoundError",
    "ModelSpec",
    "ModelSpecError",
    "OpenAICompatible",
    "OpenAIReplicas",
    "SamplingParams",
    "ToolChoice",
    "Transformers",
    "TruncationReport",
    "Usage",
    "load_model",
]

#: Where each top-level name is defined and re-exported: ``from qwen_agent.<home> import <name>`` works too.
HOMES = {
    "Agent": "agents", "Assistant": "agents", "ReActAgent": "agents", "Tool": "tools", "tool": "tools",
    "ToolError": "tools", "CodeInterpreter": "tools.code_interpreter", "ChatModel": "llm", "FunctionCalling": "llm",
    "SamplingParams": "llm", "load_model": "llm", "ModelError": "llm", "Message": "messages",
    "KnowledgeBase": "retrieval", "RetrievalError": "retrieval", "QwenAgentError": "errors",
}


def test_the_exported_names_are_pinned() -> None:
    assert qwen_agent.__all__ == PUBLIC
    assert qwen_agent.llm.__all__ == LLM_PUBLIC


@pytest.mark.parametrize("name", [n for n in PUBLIC if n != "__version__"])
def test_each_name_is_the_one_its_sub_package_exports(name: str) -> None:
    home = __import__(f"qwen_agent.{HOMES[name]}", fromlist=[name])
    assert getattr(qwen_agent, name) is getattr(home, name)
    assert name in dir(qwen_agent)


@pytest.mark.parametrize("name", LLM_PUBLIC)
def test_llm_names_resolve(name: str) -> None:
    assert getattr(qwen_agent.llm, name) is not None
    assert name in dir(qwen_agent.llm)


def test_error_roots_descend_from_the_framework_root() -> None:
    for name in ("ModelError", "ToolError", "RetrievalError"):
        assert issubclass(getattr(qwen_agent, name), qwen_agent.QwenAgentError)


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = qwen_agent.Nope  # type: ignore[attr-defined]
    with pytest.raises(ImportError):
        exec("from qwen_agent import Nope")


def test_version_matches_the_project_metadata() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert qwen_agent.__version__ == project["version"]


def _modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return set(out.stdout.split())


def test_import_qwen_agent_loads_nothing_else() -> None:
    loaded = _modules_after("import qwen_agent")
    assert {m for m in loaded if m.startswith("qwen_agent")} == {"qwen_agent", "qwen_agent._lazy"}
    assert "pydantic" not in loaded


def test_the_agent_does_not_load_backends_or_heavy_stacks() -> None:
    loaded = _modules_after("from qwen_agent import Agent, tool, load_model")
    heavy = {"llama_cpp", "torch", "transformers", "httpx", "faiss", "sentence_transformers", "jupyter_client"}
    assert not heavy & loaded


PACKAGE = Path(qwen_agent.__file__).parent


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.name not in ("__init__.py", "__main__.py")
                  and p.name != "reference_driver.py")  # runs only inside bfcl-eval's private venv


def test_every_module_declares_its_public_names_and_names_its_logger_logger() -> None:
    """The conventions the package follows (ARCHITECTURE.md), checked so that merged code keeps them."""
    import ast

    no_all, other_logger = [], []
    for path in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        targets = [t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
                   if isinstance(t, ast.Name)]
        if "__all__" not in targets:
            no_all.append(str(path.relative_to(PACKAGE)))
        for node in tree.body:
            if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                    and ast.unparse(node.value.func) == "logging.getLogger"):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
                if names != ["logger"]:
                    other_logger.append(f"{path.relative_to(PACKAGE)}: {names}")
    assert no_all == [], f"modules without __all__: {no_all}"
    assert other_logger == [], f"module loggers not named `logger`: {other_logger}"
