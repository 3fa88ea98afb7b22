"""Data analysis with the code interpreter: the agent writes pandas/matplotlib code, runs it in a sandboxed kernel,
reads the output and answers; plots land as PNG files in the session's work directory.

    python examples/data_analysis.py                       # the bundled sample sales CSV and a default question
    python examples/data_analysis.py data.csv "Which product sells best? Plot revenue per product."

Runs offline on the embedded model (Qwen2.5-Coder-0.5B via llama.cpp); no Docker needed (bubblewrap sandbox).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from qwen_agent.agents import analyze
from qwen_agent.tools.code_interpreter import write_sample_csv

DEFAULT_QUESTION = "Which region has the highest total revenue? Make a bar chart of total revenue per region."


def main(argv: list[str]) -> None:
    if argv:
        csv_path, question = Path(argv[0]), (argv[1] if len(argv) > 1 else DEFAULT_QUESTION)
    else:
        csv_path = write_sample_csv(Path(tempfile.mkdtemp(prefix="qwen-agent-sample-")) / "sales.csv")
        question = DEFAULT_QUESTION
    result, figures, _ = analyze(csv_path, question)
    for msg in result.messages:
        if msg.role == "assistant" and msg.tool_calls:
            for call in msg.tool_calls:
                print(f"--- {call.name}:\n{call.arguments.get('code', call.arguments)}")
        elif msg.role == "tool":
            print(f"--- output:\n{msg.text}")
    print(f"\nAnswer: {result.answer}")
    for fig in figures:
        print(f"figure: {fig}")


if __name__ == "__main__":
    main(sys.argv[1:])
