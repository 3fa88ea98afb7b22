"""Question answering over your documents: index a folder (local MiniLM embeddings, FAISS + BM25), then ask.

Without arguments the example writes a tiny document set of its own (Markdown, HTML, Word) into a temporary
folder and asks about it, so it runs offline as written. Answers cite their source like ``[handbook.docx]``; a
question the documents cannot answer gets a refusal, not a guess.

    python examples/rag_qa.py                         # the example's own documents
    python examples/rag_qa.py ~/papers "What did the 2023 survey find?"
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from qwen_agent import Assistant, KnowledgeBase, SamplingParams, load_model

POLICY_MD = """# Remote work policy

## Eligibility
Employees may work remotely up to three days per week after completing their six-month probation period.

## Equipment
The company provides a laptop and a one-time home-office allowance of 400 euros, claimable within 90 days.
"""

CANTEEN_HTML = """<html><head><title>Canteen</title></head><body><nav>Home | Menu | Contact</nav>
<article><h1>Canteen opening hours</h1>
<p>The staff canteen on the ground floor is open from 11:30 to 14:30 on weekdays.</p>
<p>Breakfast is served in the café on the 3rd floor from 7:30 to 10:00.</p></article>
<footer>© Example Corp</footer></body></html>"""

HANDBOOK = [
    ("Holidays", "Full-time employees receive 28 days of paid holiday per calendar year. Up to five unused days "
                 "may be carried over to the next year; they expire on 31 March."),
    ("Sick leave", "Report sickness to your manager before 9:00 on the first day. A doctor's note is required "
                   "from the fourth consecutive day of absence."),
]


def write_documents(folder: Path) -> None:
    """The example's own documents: Markdown, HTML and a Word file."""
    from docx import Document

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "remote_work.md").write_text(POLICY_MD, encoding="utf-8")
    (folder / "canteen.html").write_text(CANTEEN_HTML, encoding="utf-8")
    doc = Document()
    doc.add_heading("Employee handbook", 0)
    for heading, text in HANDBOOK:
        doc.add_heading(heading, 1)
        doc.add_paragraph(text)
    doc.save(folder / "handbook.docx")


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="qwen-agent-rag-"))
    if len(sys.argv) > 1:
        docs, questions = Path(sys.argv[1]), sys.argv[2:] or ["Summarise these documents."]
    else:
        docs = tmp / "docs"
        write_documents(docs)
        questions = ["How many days of paid holiday do full-time employees get?",
                     "When does the staff canteen open?",
                     "Who won the 1998 football world cup?"]
    knowledge = KnowledgeBase.build(docs, tmp / "index")
    report = knowledge.last_report
    print(f"indexed {report.total_documents} documents, {report.total_chunks} chunks in {report.seconds:.1f} s"
          + "".join(f"\n  skipped {e.path}: {e.message}" for e in report.errors))
    model = load_model(params=SamplingParams(temperature=0.0, max_tokens=200))
    with Assistant(model, knowledge=knowledge) as assistant:
        for question in questions:
            result = assistant.run(question)
            print(f"\nQ: {question}\nA: {result.answer}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
