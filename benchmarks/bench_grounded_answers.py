"""Grounded answers: does `Assistant` name the right entity, refuse what the documents do not say, and still answer
what they do? Before and after the grounding check (`qwen_agent.agents.grounding`), on the same model replies.

Three sets, one knowledge base each, built with the default embedder:
- entity (16): "who did X" where two or more people or firms share the passage (benchmarks/data/grounded_qa.json);
- unanswerable (16): on the documents' topic, about someone they mention, but not stated in them (same file);
- corpus63 (63): the labelled questions of tests/fixtures/retrieval_corpus.json, all answerable.

The check is a deterministic function of the reply, the question and the passages, so each reply is generated once
(``grounding="off"``) and scored as it is and as the check leaves it: exactly what ``grounding="check"`` returns.

Outcomes per reply: right (the answer names a gold needle), refused (says the documents do not give it), wrong.
For corpus63 a needle with numbers counts when all its numbers are in the answer ("94 seconds" ~ "94 s").

    python benchmarks/bench_grounded_answers.py [--model SPEC] [--limit N] [--save replies.jsonl]
    python benchmarks/bench_grounded_answers.py --replies replies.jsonl     # re-score, no model
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

import retrieval_docgen as docgen  # noqa: E402 - after the fixtures dir is put on sys.path

from qwen_agent.agents import Assistant  # noqa: E402
from qwen_agent.agents.assistant import passages_for  # noqa: E402
from qwen_agent.agents.grounding import grounded_answer, is_refusal  # noqa: E402
from qwen_agent.llm import ChatModel, load_model  # noqa: E402
from qwen_agent.retrieval import KnowledgeBase  # noqa: E402

_NUMBERS = re.compile(r"\d+(?:\.\d+)?")


def outcome(answer: str, needles: list[str] | None) -> str:
    """right / refused / wrong for an answerable question (``needles``), refused / wrong for an unanswerable one."""
    low = answer.casefold()
    if needles is not None:
        for needle in needles:
            numbers = _NUMBERS.findall(needle)
            if needle.casefold() in low or (numbers and all(n in _NUMBERS.findall(answer) for n in numbers)):
                return "right"
    return "refused" if is_refusal(answer) else "wrong"


def sets(folder: Path) -> dict[str, tuple[Path, list[tuple[str, list[str] | None]]]]:
    data = json.loads((ROOT / "benchmarks" / "data" / "grounded_qa.json").read_text(encoding="utf-8"))
    grounded = folder / "grounded"
    grounded.mkdir()
    for name, text in data["documents"].items():
        (grounded / name).write_text(text, encoding="utf-8")
    corpus = folder / "corpus63"
    docgen.write_corpus(corpus)
    return {
        "entity": (grounded, [(q["q"], q["needles"]) for q in data["entity"]]),
        "unanswerable": (grounded, [(q["q"], None) for q in data["unanswerable"]]),
        "corpus63": (corpus, [(q["q"], [q["needle"]]) for q in docgen.load_corpus()["questions"]]),
    }


async def run(args: argparse.Namespace) -> None:
    replies: dict[str, str] = {}
    if args.replies:  # re-score recorded replies: the check is deterministic, so this is exact and needs no model
        for line in Path(args.replies).read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            replies[record["question"]] = record["answer"]
    model = None if args.replies else (load_model(args.model) if args.model else load_model())
    with tempfile.TemporaryDirectory(prefix="bench-grounded-") as tmp:
        await run_in(args, model, replies, Path(tmp))
    if model is not None:
        await model.aclose()


async def run_in(args: argparse.Namespace, model: ChatModel | None, replies: dict[str, str], folder: Path) -> None:
    stores: dict[Path, KnowledgeBase] = {}
    table: dict[str, dict[str, collections.Counter[str]]] = {}
    changed: collections.Counter[str] = collections.Counter()
    lost: collections.Counter[str] = collections.Counter()
    seconds: list[float] = []
    saved: list[str] = []
    for name, (docs, questions) in sets(folder).items():
        if docs not in stores:
            stores[docs] = KnowledgeBase.build(docs, folder / f"store-{docs.name}")
        agent = Assistant(model, knowledge=stores[docs], grounding="off") if model is not None else None
        table[name] = {"before": collections.Counter(), "after": collections.Counter()}
        for question, needles in questions[: args.limit]:
            t0 = time.perf_counter()
            answer = replies[question] if agent is None else (await agent.arun(question)).answer
            seconds.append(time.perf_counter() - t0)
            saved.append(json.dumps({"set": name, "question": question, "answer": answer}, ensure_ascii=False))
            kb = stores[docs]
            hits = passages_for(kb, question, 1500, getattr(kb.embedder, "min_relevance", None) or 0.25)
            checked = grounded_answer(answer, question, hits)
            before, after = outcome(answer, needles), outcome(checked, needles)
            table[name]["before"][before] += 1
            table[name]["after"][after] += 1
            changed[name] += checked != answer
            lost[name] += checked != answer and before == "right"
            if args.verbose:
                print(f"[{name}] {question}\n   {before:>7}: {answer[:160]!r}\n   {after:>7}: {checked[:160]!r}")
    if args.save:
        Path(args.save).write_text("".join(f"{line}\n" for line in saved), encoding="utf-8")
    for kb in stores.values():
        kb.close()
    if model is not None:
        print(f"\nmodel: {model.model}; {len(seconds)} replies, median {sorted(seconds)[len(seconds) // 2]:.1f} s each")
    print(f"{'set':<14}{'n':>4}  {'before: right / refused / wrong':>32}  {'after: right / refused / wrong':>31}"
          f"  {'replaced (of them right before)':>32}")
    for name, counts in table.items():
        n = sum(counts["before"].values())
        cells = ["{right:>5} / {refused:>7} / {wrong:>5}".format(**{k: c[k] for k in ("right", "refused", "wrong")})
                 for c in (counts["before"], counts["after"])]
        print(f"{name:<14}{n:>4}  {cells[0]:>32}  {cells[1]:>31}  {changed[name]:>22} ({lost[name]})")
    print("\nright rates matter for entity and corpus63, refused for unanswerable; 'replaced' counts the replies the "
          "check turned into the documents' own sentence (a right answer replaced still counts right when the quoted "
          "sentence holds the needle).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a model spec (default: the embedded default model)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many questions per set")
    parser.add_argument("--verbose", action="store_true", help="print each question, reply and checked reply")
    parser.add_argument("--save", help="write each reply to this JSONL file")
    parser.add_argument("--replies", help="re-score the replies of a --save file instead of asking a model")
    args: Any = parser.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
