"""The ``rag`` suite on RGB's data (Chen et al., 2023): noise robustness, negative rejection, information
integration and counterfactual robustness, answered by our `Assistant` over an index of each item's documents.

Data: RGB's JSON Lines files as published (``en.json``, ``en_int.json``, ``en_fact.json`` and the ``zh`` ones):
``{"id", "query", "answer", "positive": [...], "negative": [...]}``; in ``_int`` files ``positive`` holds one list of
documents per part of the answer; ``_fact`` files add ``positive_wrong`` (counterfactual versions of ``positive``).
The kind of file is read from its name, as RGB does (``--variant`` overrides it).

RGB's settings and scoring rules, as in its ``evalue.py``: ``passage_num`` documents per question, of which
``ceil(passage_num * noise_rate)`` are noise (``noise_rate=1.0`` is the rejection test); documents chosen and shuffled
with ``random.seed(2333)`` per item; an answer is right when, for every part of the answer, one of its acceptable
strings occurs in the reply (case-insensitive; spaces removed for Chinese); a reply containing "insufficient
information" or 信息不足 is a rejection, one containing "factual errors" or 事实性错误 flags an error. Our Assistant's
own "not in your documents" reply also counts as a rejection.
"""

from __future__ import annotations

import math
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from qwen_agent.eval.datafiles import load_records
from qwen_agent.eval.errors import EvalDataError
from qwen_agent.eval.prompts import render_prompt
from qwen_agent.eval.suite import EvalItem, ItemOutcome, RunContext, Suite

__all__ = ["RgbItem", "RgbOptions", "RgbSuite", "check_answer", "select_documents"]

Variant = Literal["plain", "int", "fact"]
REJECTION = {"en": "insufficient information", "zh": "信息不足"}
FACT_ERROR = {"en": "factual errors", "zh": "事实性错误"}


class RgbItem(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: int | str
    query: str
    answer: list[Any] | str
    positive: list[Any]
    negative: list[str] = Field(default_factory=list)
    positive_wrong: list[str] | None = None


class RgbOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: str
    variant: Variant
    language: Literal["en", "zh"]
    noise_rate: float = Field(ge=0.0, le=1.0)
    passage_num: int = Field(ge=1)
    correct_rate: float = Field(ge=0.0, le=1.0)
    seed: int = 2333


def select_documents(item: RgbItem, variant: Variant, noise_rate: float, passage_num: int, correct_rate: float,
                     seed: int = 2333) -> list[str]:
    """RGB's ``processdata``: which documents an item gets, in which order."""
    rng = random.Random(seed)
    neg_num = math.ceil(passage_num * noise_rate)
    pos_num = passage_num - neg_num
    if variant == "int":
        groups = [list(g) for g in item.positive]
        for g in groups:
            rng.shuffle(g)
        docs = [g[0] for g in groups if g]
        if len(docs) < pos_num:
            longest = max(len(g) for g in groups)
            for i in range(1, longest):
                for g in groups:
                    if len(g) > i:
                        docs.append(g[i])
                        if len(docs) == pos_num:
                            break
                if len(docs) == pos_num:
                    break
        neg_num = passage_num - len(docs)
        if neg_num > 0:
            docs += item.negative[:neg_num]
    elif variant == "fact":
        correct_num = math.ceil(passage_num * correct_rate)
        pos_num = passage_num - neg_num - correct_num
        indexes = list(range(len(item.positive)))
        selected = rng.sample(indexes, min(len(indexes), pos_num))
        wrong = item.positive_wrong or []
        docs = [wrong[i] for i in selected]
        remain = [i for i in indexes if i not in selected]
        if correct_num > 0 and remain:
            docs += [item.positive[i] for i in rng.sample(remain, min(len(remain), correct_num))]
        if neg_num > 0:
            docs += item.negative[:neg_num]
    else:
        if noise_rate == 1:
            neg_num, pos_num = passage_num, 0
        elif neg_num > len(item.negative):
            neg_num = len(item.negative)
            pos_num = passage_num - neg_num
        elif pos_num > len(item.positive):
            pos_num = len(item.positive)
            neg_num = passage_num - pos_num
        docs = list(item.positive[:pos_num]) + item.negative[:neg_num]
    rng.shuffle(docs)
    return docs


def check_answer(prediction: str, ground_truth: list[Any] | str) -> list[int]:
    """RGB's ``checkanswer``: one label per part of the answer (1: one of its strings occurs in the reply)."""
    prediction = prediction.lower()
    parts = ground_truth if isinstance(ground_truth, list) else [ground_truth]
    labels = []
    for part in parts:
        if isinstance(part, list):
            labels.append(int(any(str(p).lower() in prediction for p in part)))
        else:
            labels.append(int(str(part).lower() in prediction))
    return labels


class RgbSuite(Suite):
    """One `Assistant` per item over an index of the item's selected documents."""

    name = "rag"
    primary = "accuracy"
    default_max_tokens = 256

    def __init__(self, data: Path | str, *, noise_rate: float = 0.0, passage_num: int = 5,
                 correct_rate: float = 0.0, variant: Variant | None = None,
                 language: Literal["en", "zh"] | None = None) -> None:
        self.data = Path(data)
        stem = self.data.name
        variant = variant or ("int" if "_int" in stem else "fact" if "_fact" in stem else "plain")
        language = language or ("zh" if stem.startswith("zh") else "en")
        self._options = RgbOptions(data=str(self.data.resolve()), variant=variant, language=language,
                                   noise_rate=noise_rate, passage_num=passage_num, correct_rate=correct_rate)
        self._embedder: Any = None

    def options(self) -> RgbOptions:
        return self._options

    @property
    def category(self) -> str:
        o = self._options
        if o.variant == "int":
            return "information_integration"
        if o.variant == "fact":
            return "counterfactual_robustness"
        return "negative_rejection" if o.noise_rate >= 1.0 else "noise_robustness"

    def items(self, limit: int | None) -> list[EvalItem]:
        o = self._options
        items = []
        for number, item in load_records(self.data, RgbItem):
            if o.variant == "fact" and item.positive_wrong is None:
                raise EvalDataError(f"{self.data}:{number}: a _fact item needs 'positive_wrong'")
            if o.variant == "int" and not all(isinstance(g, list) for g in item.positive):
                raise EvalDataError(f"{self.data}:{number}: an _int item's 'positive' is a list of document lists")
            docs = select_documents(item, o.variant, o.noise_rate, o.passage_num, o.correct_rate, o.seed)
            view = {"query": item.query, "answer": item.answer, "documents": docs}
            items.append(EvalItem(id=str(item.id), category=self.category, input=view, data=(item, docs)))
        return items[:limit]

    async def run_item(self, item: EvalItem, ctx: RunContext) -> ItemOutcome:
        import asyncio

        from qwen_agent.agents import Assistant
        from qwen_agent.prompting import render_note

        rgb, docs = item.data
        lang = self._options.language
        folder = Path(tempfile.mkdtemp(prefix="rgb-"))
        try:
            kb = await asyncio.to_thread(self._index, folder, docs)
            assistant = Assistant(ctx.model, knowledge=kb, system=render_prompt(f"rgb_system_{lang}"),
                                  params=ctx.params, function_calling=ctx.function_calling)
            try:
                result = await assistant.arun(rgb.query)
            finally:
                kb.close()  # not assistant.aclose(): the model belongs to the run
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        prediction = result.answer.replace(" ", "") if lang == "zh" else result.answer
        rejected = any(p in prediction for p in REJECTION.values()) or render_note("not_in_documents") in result.answer
        labels = [-1] if rejected else check_answer(prediction, rgb.answer)
        if self._options.noise_rate >= 1.0 and self._options.variant == "plain":
            score = float(labels[0] == -1)
        else:
            score = float(0 not in labels and 1 in labels)
        flagged = any(p in prediction for p in FACT_ERROR.values())
        metrics: dict[str, float | None] = {"rejected": float(rejected)}
        if self._options.variant == "fact":
            metrics["error_detected"] = float(flagged)
            metrics["error_corrected"] = float(0 not in labels) if flagged else None
        return ItemOutcome(transcript=result.messages, tools=assistant.toolbox.schemas(), prediction=result.answer,
                           score=score, metrics=metrics, detail=f"labels {labels}",
                           prompt_tokens=result.usage.prompt_tokens, completion_tokens=result.usage.completion_tokens)

    def _index(self, folder: Path, docs: list[str]) -> Any:
        from qwen_agent.retrieval import KnowledgeBase, SentenceTransformerEmbedder

        if self._embedder is None:
            self._embedder = SentenceTransformerEmbedder()
        source = folder / "docs"
        source.mkdir()
        for i, doc in enumerate(docs, start=1):
            (source / f"document_{i}.txt").write_text(doc, encoding="utf-8")
        return KnowledgeBase.build(source, folder / "index", embedder=self._embedder)
