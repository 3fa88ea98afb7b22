"""Answers checked against the passages they came from, before they are returned as fact.

A 0.5B model reading "The eastern quay was built by Tomas Brandt ... Ilse Vandermeer, the harbour master, opened it"
answers "Who built the eastern quay?" with "Ilse Vandermeer": a name from the right passage, for the wrong role. Asked
something the documents do not say about a person they mention, it invents a year and cites the passage. Both
answers look grounded, since the name or the topic is in the documents; the relevance threshold and the citation
cannot tell.

The check is lexical and costs no model call. The clauses of the passages are scored by the question's content
words they share, weighted by rarity within the passage and by retrieval's rank (`answering_clauses`). The answer's
key terms, its numbers and capitalised names that the question does not already contain, must all be in one clause
that scores at least half as well as the best one (a name may also come from that clause's section title). When they
are not, the answer is not returned: the user gets the best clause's sentence, quoted with its source, under a line
saying the documents do not state the answer directly. That is right for both failures above: the
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

__all__ = ["Clause", "Grounding", "answering_clauses", "check_answer", "grounded_answer", "is_refusal", "key_terms"]

_MARKER = re.compile(r"\[[^\[\]\n]{1,200}\]")
_POSSESSIVE = re.compile(r"['\u2019]s$")
_NUMBER = re.compile(r"(?<![^\W\d_])\d+(?:[.,]\d+)*")  # whole numbers, not the 2 of "K2"
_NAME = re.compile(r"[^\W\d_][\w'\u2019&-]*")
_WORD = re.compile(r"[^\W_]+")
# A single line break is not a sentence end: PDF text breaks lines mid-sentence ("Green tea tastes best at the\n80
# degree setting").
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|\n\s*\n|\n(?=#)")
ACCEPT_RATIO = 0.5
"""An answer's terms may come from any clause scoring at least this share of the best one. Chosen on our sets (no
held-out set: say so when quoting the figures): 1.0 replaced 13 of 95 replies that were right, 0.5 replaced 5 and
caught the same wrong entities and invented details."""
RANK_WEIGHT = 1.0
"""A clause's score is divided by (its passage's rank) ** RANK_WEIGHT: retrieval's order counts."""
# A heading: a markdown one, or a short line without end punctuation followed by a capitalised line (how chunks
# carry their section's title).
_HEADING = re.compile(r"(?m)^(#[^\n]*|[A-Z][^\n]{0,59}[^\n.!?:;,。！？]$(?=\n[A-Z]))")
# A line of "key: value" fields (a CSV row or a spreadsheet line, as the loaders write them) is a sentence.
_RECORD = re.compile(r"(?m)^([^\n]*?: [^\n]*?: [^\n]*)$")
_CLAUSE_END = re.compile(r";\s+|,\s+(?=and\s)")
_PRONOUN_START = re.compile(r"^(and\s+)?(it|its|he|his|she|her|they|their|this|these|those)\b", re.IGNORECASE)

# Capitalised words that are not names: sentence openers and the words an answer is framed with.
_NOT_NAMES = frozenset((
    "a", "an", "the", "it", "its", "this", "that", "these", "those", "he", "she", "they", "his", "her", "their",
    "i", "we", "you", "my", "our", "your", "in", "on", "at", "by", "for", "from", "of", "to", "and", "but",
    "or", "so", "yes", "no", "answer", "based", "according", "therefore", "however", "also", "as", "after",
    "before", "during", "there", "here", "what", "who", "whom", "whose", "when", "where", "which", "how", "why",
    "mr", "mrs", "ms", "dr", "sir", "madam", "source", "sources", "passage", "passages", "document",
    "documents", "celsius", "fahrenheit", "kelvin",
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
    ranked = answering_clauses(question, hits)
    if not ranked:
        return Grounding(supported=True)  # no clause shares a word with the question: nothing to judge by
    best = ranked[0]
    for clause in (c for c in ranked if c.score >= ACCEPT_RATIO * best.score):
        if not _missing(terms, clause):
            return Grounding(supported=True, sentence=clause.sentence, citation=clause.citation)
    return Grounding(supported=False, unsupported=_missing(terms, best), sentence=best.sentence,
                     citation=best.citation)


def _missing(terms: list[str], clause: Clause) -> list[str]:
    """The terms ``clause`` does not hold. A name may also come from the title of the clause's section: "The Zephyr
    K2 takes 94 seconds" answers from "Its heating element ... in about 94 seconds" under "Zephyr K2 Electric
    Kettle - Overview"."""
    have = {w.casefold() for w in _WORD.findall(clause.text)} | {_number(n) for n in _NUMBER.findall(clause.text)}
    titles = {w.casefold() for w in _WORD.findall(clause.title)}
    return [t for t in terms
            if not any(part.casefold() in have or (not _NUMBER.fullmatch(t) and part.casefold() in titles)
                       for part in t.split())]


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


@dataclass(frozen=True)
class Clause:
    """A clause of a passage, scored against a question."""

    score: float
    text: str
    sentence: str
    citation: str
    title: str


def answering_clauses(question: str, hits: Iterable[Hit]) -> list[Clause]:
    """The clauses of ``hits`` that share a content word with ``question``, best match first.

    Clauses are sentences cut at semicolons and at ", and": "It was designed by Clara Hesketh, and the contractor
    Bowden & Rye built it" holds two answers. A clause scores the summed rarity (inverse clause frequency within its
    passage) of the question's content words it contains, so the predicate ("designed", "surveyed") counts for
    more than the subject that the passage keeps repeating; the score is divided by the passage's rank among
    ``hits`` (retrieval's order), so a stray word match in another document does not outrank the one retrieval
    found. A clause that opens with a pronoun also has the words of the one before it ("Its first chairman was ...,
    and its first bookkeeper was ..." are both about the cooperative named a sentence earlier), and a clause that
    adds nothing to the question (a heading) answers nothing.
    """
    wanted = _content(question)
    ranked: list[tuple[float, int, Clause]] = []
    for rank, hit in enumerate(hits, 1):
        units: list[tuple[set[str], str, str, str]] = []
        title = hit.heading or ""
        for sentence, is_title in _sentences_and_titles(hit.text):
            if is_title:
                title = sentence
            # A record ("item: solar pond pump; aisle: C2; supplier: ...") is one unit: its fields answer together.
            parts = [sentence] if sentence.count(": ") > 1 else _CLAUSE_END.split(sentence)
            for clause in (c.strip() for c in parts):
                words = _content(clause)
                if units and _PRONOUN_START.match(clause):
                    words |= units[-1][0]
                units.append((words, clause, sentence, title))
        frequency: dict[str, int] = {}
        for words, *_ in units:
            for w in words & wanted:
                frequency[w] = frequency.get(w, 0) + 1
        for words, clause, sentence, title in units:
            shared = words & wanted
            if shared and words - wanted:
                score = sum(math.log(1 + len(units) / frequency[w]) for w in shared) / rank ** RANK_WEIGHT
                ranked.append((-score, len(ranked), Clause(score, clause, sentence, hit.citation, title)))
    ranked.sort(key=lambda r: (r[0], r[1]))
    return [c for _, _, c in ranked]


def _sentences_and_titles(text: str) -> list[tuple[str, bool]]:
    """The sentences of ``text``, each with whether it is a heading (its own sentence, blank line after or not)."""
    titles = {" ".join(m.group(1).lstrip("# ").split()) for m in _HEADING.finditer(text)}
    text = _RECORD.sub(r"\1\n", _HEADING.sub(r"\1\n", text))
    lines = (" ".join(s.lstrip("# ").split()) for s in _SENTENCE_END.split(text))
    return [(s, s in titles) for s in lines if s]


def _content(text: str) -> set[str]:
    """Content words, cut to five letters so that "designed" meets "design" and "surveyed" meets "survey"."""
    return {w.casefold()[:5] for w in _WORD.findall(text) if w.casefold() not in _STOP and len(w) > 1}


def _number(text: str) -> str:
    return text.replace(",", "").rstrip(".")
