"""Answers checked against the passages they came from, before they are returned as fact.

A 0.5B model reading "The eastern quay was built by Tomas Brandt ... Ilse Vandermeer, the harbour master, opened it"
answers "Who built the eastern quay?" with "Ilse Vandermeer": a name from the right passage, for the wrong role. Asked
something the documents do not say about a person they mention, it invents a year and cites the passage. Both
answers look grounded, since the name or the topic is in the documents; the relevance threshold and the citation
cannot tell.

The check is lexical and costs no model call. The sentence of the passages that answers the question is the one
that shares the most of the question's content words (a sentence that opens with a pronoun also counts the words of
the sentence before it: "It was designed by Clara Hesketh" answers a question about the bridge named there). The
answer's key terms, its numbers and capitalised names that the question does not already contain, must all be in
that sentence. When one is not, the answer is not returned: the user gets that sentence, quoted with its source,
under a line saying the documents do not state the answer directly. That is right for both failures above: the
builder's sentence for the quay question, and what the documents do say about the harbour master for the year of
her birth.

Answers with no key term (yes/no, a paraphrase in lower case, most Chinese text) pass: there is nothing to check
them on, and refusing them would cost more right answers than it saves.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from qwen_agent.prompting import render_note

if TYPE_CHECKING:
    from qwen_agent.retrieval import Hit

__all__ = ["Grounding", "answering_clauses", "check_answer", "grounded_answer", "is_refusal", "key_terms"]

_MARKER = re.compile(r"\[[^\[\]\n]{1,200}\]")
_POSSESSIVE = re.compile(r"['\u2019]s$")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_NAME = re.compile(r"[^\W\d_][\w'\u2019&-]*")
_WORD = re.compile(r"[^\W_]+")
# A single line break is not a sentence end: PDF text breaks lines mid-sentence ("Green tea tastes best at the\n80
# degree setting").
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|\n\s*\n|\n(?=#)")
TOP_CLAUSES = 1
"""How many of the best-matching clauses an answer's terms may come from. Two let a wrong name from the runner-up
clause through (the lighthouse's architect for the quay's builder); one, with rarity counted per passage, keeps
every gold answer of our set."""
# A heading: a markdown one, or a short line without end punctuation followed by a capitalised line (how chunks
# carry their section's title).
_HEADING = re.compile(r"(?m)^(#.*|[A-Z][^\n]{0,59}[^\n.!?:;,。！？])$(?=\n[A-Z])")
_CLAUSE_END = re.compile(r";\s+|,\s+(?=and\s)")
_PRONOUN_START = re.compile(r"^(and\s+)?(it|its|he|his|she|her|they|their|this|these|those)\b", re.IGNORECASE)

# Capitalised words that are not names: sentence openers and the words an answer is framed with.
_NOT_NAMES = frozenset((
    "a", "an", "the", "it", "its", "this", "that", "these", "those", "he", "she", "they", "his", "her", "their",
    "i", "we", "you", "my", "our", "your", "in", "on", "at", "by", "for", "from", "of", "to", "and", "but",
    "or", "so", "yes", "no", "answer", "based", "according", "therefore", "however", "also", "as", "after",
    "before", "during", "there", "here", "what", "who", "whom", "whose", "when", "where", "which", "how", "why",
    "mr", "mrs", "ms", "dr", "sir", "madam", "the", "source", "sources", "passage", "passages", "document",
    "documents",
))
_STOP = frozenset((
    "a", "an", "the", "of", "to", "in", "on", "at", "by", "for", "from", "with", "and", "or", "but", "is",
    "are", "was", "were", "be", "been", "being", "do", "does", "did", "done", "has", "have", "had", "who",
    "whom", "whose", "what", "which", "when", "where", "why", "how", "that", "this", "these", "those", "it",
    "its", "as", "into", "than", "then", "there", "their", "they", "he", "she", "his", "her", "first", "many",
    "much", "any", "some", "all", "about", "over", "under", "after", "before", "during", "one", "ones",
))

REFUSAL_PHRASES = (
    "could not find", "cannot answer", "can't answer", "do not know", "don't know", "does not say", "do not say",
    "does not state", "do not state", "not mentioned", "no information", "not provided", "does not contain",
    "do not contain", "not contain", "is not stated", "not specified", "not in the documents", "doesn't say",
    "don't say", "not given", "no mention",
)


@dataclass(frozen=True)
class Grounding:
    """What the check found: whether every key term is in the answering sentence, which terms are not, and that
    sentence with the citation of its passage."""

    supported: bool
    unsupported: list[str] = field(default_factory=list)
    sentence: str | None = None
    citation: str | None = None


def key_terms(answer: str, question: str) -> list[str]:
    """The answer's numbers and capitalised names that the question does not already contain. A name is its run
    of capitalised words ("Clare Abbott") less the words the question has, written with spaces; it is backed
    when any of its words is."""
    text = _MARKER.sub(" ", answer)
    asked = {w.casefold() for w in _WORD.findall(question)} | {_number(n) for n in _NUMBER.findall(question)}
    terms = [_number(n) for n in _NUMBER.findall(text) if _number(n) not in asked]
    run: list[str] = []
    for word in [*_NAME.findall(text), ""]:
        if word and word[0].isupper() and word.casefold() not in _NOT_NAMES:
            run.extend(part for part in re.split(r"[-\u2019']", _POSSESSIVE.sub("", word)) if len(part) > 1)
            continue
        new = [part for part in run if part.casefold() not in asked]
        if new:
            terms.append(" ".join(new))
        run = []
    return list(dict.fromkeys(terms))


def check_answer(answer: str, question: str, hits: Iterable[Hit]) -> Grounding:
    """Whether ``answer`` to ``question`` is backed by the clauses of ``hits`` that answer it (see the module)."""
    terms = key_terms(answer, question)
    if not terms or is_refusal(answer):
        return Grounding(supported=True)
    clauses = answering_clauses(question, hits)
    if not clauses:
        return Grounding(supported=True)  # no clause shares a word with the question: nothing to judge by
    text = " ".join(clause for clause, _, _ in clauses)
    have = {w.casefold() for w in _WORD.findall(text)} | {_number(n) for n in _NUMBER.findall(text)}
    missing = [t for t in terms if not any(part.casefold() in have for part in t.split())]
    _, sentence, citation = clauses[0]
    return Grounding(supported=not missing, unsupported=missing, sentence=sentence, citation=citation)


def grounded_answer(answer: str, question: str, hits: Iterable[Hit]) -> str:
    """``answer`` when the passages back it, else what they do say: the answering sentence and its source."""
    found = check_answer(answer, question, list(hits))
    if found.supported or found.sentence is None:
        return answer
    return render_note("unsupported_answer", sentence=found.sentence, citation=found.citation or "")


def is_refusal(answer: str) -> bool:
    """Whether ``answer`` says the documents do not give the answer (ours, or the model's own words)."""
    low = answer.casefold().replace("\u2019", "'")
    return any(p in low for p in REFUSAL_PHRASES)


def answering_clauses(question: str, hits: Iterable[Hit], top: int = TOP_CLAUSES) -> list[tuple[str, str, str]]:
    """The ``top`` clauses of ``hits`` that best match ``question``, best first, as (clause, its whole sentence, its
    passage's citation); none when no clause shares a word with it.

    Clauses are sentences cut at semicolons and at ", and": "It was designed by Clara Hesketh, and the contractor
    Bowden & Rye built it" holds two answers. A clause scores the summed rarity (inverse clause frequency within its
    passage) of the question's content words it contains, so the predicate ("designed", "surveyed") counts for
    more than the subject that the passage keeps repeating. A clause that opens with a pronoun also has the words
    of the one before it ("Its first chairman was ..., and its first bookkeeper was ..." are both about the
    cooperative named a sentence earlier), and a clause that adds nothing to the question (a heading) answers
    nothing.
    """
    wanted = _content(question)
    ranked: list[tuple[float, int, str, str, str]] = []
    for hit in hits:
        units: list[tuple[set[str], str, str]] = []
        for sentence in _sentences(hit.text):
            for clause in (c.strip() for c in _CLAUSE_END.split(sentence)):
                words = _content(clause)
                if units and _PRONOUN_START.match(clause):
                    words |= units[-1][0]
                units.append((words, clause, sentence))
        frequency: dict[str, int] = {}
        for words, _, _ in units:
            for w in words & wanted:
                frequency[w] = frequency.get(w, 0) + 1
        for words, clause, sentence in units:
            shared = words & wanted
            if shared and words - wanted:
                score = sum(math.log(1 + len(units) / frequency[w]) for w in shared)
                ranked.append((-score, len(ranked), clause, sentence, hit.citation))
    ranked.sort()
    return [(clause, sentence, citation) for _, _, clause, sentence, citation in ranked[:top]]


def _sentences(text: str) -> list[str]:
    text = _HEADING.sub(r"\1\n", text)  # a heading is a sentence of its own, with or without a blank line after it
    lines = (" ".join(s.lstrip("# ").split()) for s in _SENTENCE_END.split(text))
    return [s for s in lines if s]


def _content(text: str) -> set[str]:
    """Content words, cut to five letters so that "designed" meets "design" and "surveyed" meets "survey"."""
    return {w.casefold()[:5] for w in _WORD.findall(text) if w.casefold() not in _STOP and len(w) > 1}


def _number(text: str) -> str:
    return text.replace(",", "").rstrip(".")
