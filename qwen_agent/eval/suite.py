"""The contract between the runner and a benchmark: `Suite` (items, run one, score it) and the common settings."""

from __future__ import annotations

import abc
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from qwen_agent.llm.base import ChatModel
from qwen_agent.llm.types import FunctionCalling, SamplingParams
from qwen_agent.messages import Message, ToolSchema

__all__ = ["EvalItem", "EvalSettings", "ItemOutcome", "RunContext", "Suite"]


class EvalSettings(BaseModel):
    """Options every suite shares (the CLI's common flags)."""

    model_config = ConfigDict(extra="forbid")

    #: A model spec (`qwen_agent.llm.spec`); None: ``$QWEN_AGENT_MODEL_SPEC`` or the embedded model.
    model: str | None = None
    mode: Literal["prompted", "native"] = "prompted"
    format: Literal["nous", "qwen", "react"] = "nous"
    constrained: bool = False
    #: `FunctionCalling.next_call_threshold`: further calls after a reply's first (None: one reply as written).
    next_call_threshold: float | None = Field(default=FunctionCalling().next_call_threshold, ge=0.0, le=1.0)
    #: Run only the first N items (of each category where the suite has categories).
    limit: int | None = Field(default=None, ge=1)
    #: Items in flight at once: useful against servers that batch (vLLM); the embedded model runs one at a time.
    workers: int = Field(default=1, ge=1)
    seed: int = 0
    temperature: float = 0.0
    #: Tokens per reply; None: the suite's default.
    max_tokens: int | None = Field(default=None, ge=1)
    #: Context window of an embedded (llamacpp:) model.
    n_ctx: int = Field(default=8192, ge=512)
    #: Name of the run in summaries and `compare` (default: the output folder's name).
    label: str | None = None

    #: Settings that may change when a run is resumed (they do not change what an item scores).
    RESUMABLE: ClassVar[frozenset[str]] = frozenset({"limit", "workers", "label"})

    def function_calling(self) -> FunctionCalling:
        return FunctionCalling(mode=self.mode, format=self.format, constrained=self.constrained,
                               next_call_threshold=self.next_call_threshold)

    def sampling(self, default_max_tokens: int | None) -> SamplingParams:
        return SamplingParams(temperature=self.temperature, seed=self.seed,
                              max_tokens=self.max_tokens or default_max_tokens)


class EvalItem(BaseModel):
    """One benchmark item: its id, category, the view of it that goes into the record, and the suite's payload."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    id: str
    category: str
    input: dict[str, Any] = Field(default_factory=dict)
    data: Any = None


class ItemOutcome(BaseModel):
    """What a suite reports for one item; the runner adds id, category, timing and errors."""

    transcript: list[Message] = Field(default_factory=list)
    #: The tool schemas the model was offered (recorded with the transcript by ``eval --record``).
    tools: list[ToolSchema] = Field(default_factory=list)
    prediction: Any = None
    score: float
    metrics: dict[str, float | None] = Field(default_factory=dict)
    detail: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


class RunContext:
    """What a suite gets to run an item with: the model and the request settings of this run."""

    def __init__(self, model: ChatModel, settings: EvalSettings, params: SamplingParams) -> None:
        self.model = model
        self.settings = settings
        self.params = params
        self.function_calling = settings.function_calling()


class Suite(abc.ABC):
    """A benchmark. Subclasses load their items (raising `EvalDataError` on bad data), run one item, and score it."""

    #: The suite's name on the command line and in summaries.
    name: ClassVar[str]
    #: What the primary score means (e.g. "accuracy").
    primary: ClassVar[str] = "accuracy"
    #: max_tokens per reply unless the run sets one.
    default_max_tokens: ClassVar[int | None] = 512

    @abc.abstractmethod
    def options(self) -> BaseModel:
        """The suite's own settings, stored with the run so that a resumed run uses the same ones."""

    @abc.abstractmethod
    def items(self, limit: int | None) -> list[EvalItem]:
        """The items to run, in order (the first ``limit`` of each category)."""

    def categories(self) -> list[str]:
        """Categories in the order summaries list them (default: as the items come)."""
        return []

    @abc.abstractmethod
    async def run_item(self, item: EvalItem, ctx: RunContext) -> ItemOutcome:
        """Run and score one item. Exceptions are recorded as the item's error; the run goes on."""

    def rescore(self, item: EvalItem, prediction: Any) -> ItemOutcome | None:
        """Score a recorded prediction again (after a scorer changed) without the model; None: not supported."""
        return None

    async def aclose(self) -> None:  # noqa: B027 - optional hook: most suites hold nothing
        """Release what the suite holds (indexes, kernels)."""
