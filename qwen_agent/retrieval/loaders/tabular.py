"""CSV/TSV and XLSX loaders (pandas + openpyxl): each row becomes a "column: value" line, one section per sheet.

Writing the column names into every row keeps a chunk self-explanatory when it is retrieved far from the header.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qwen_agent.retrieval.models import Section

__all__ = ["load_csv", "load_xlsx"]


def _frame_text(frame: Any) -> str:
    columns = [str(c).strip() for c in frame.columns]
    rows = []
    for values in frame.itertuples(index=False, name=None):
        cells = [f"{col}: {str(v).strip()}" for col, v in zip(columns, values, strict=False) if str(v).strip()]
        if cells:
            rows.append("; ".join(cells))
    # Blank lines make each row a paragraph, so the chunker packs whole rows and never splits one mid-way.
    return "\n\n".join(rows)


def load_csv(path: Path) -> list[Section]:
    import pandas as pd

    sep = "\t" if path.suffix.lower() == ".tsv" else None
    frame = pd.read_csv(path, sep=sep, engine="python", dtype=str, keep_default_na=False, encoding_errors="replace")
    return [Section(text=_frame_text(frame))]


def load_xlsx(path: Path) -> list[Section]:
    import pandas as pd

    sheets = pd.read_excel(path, sheet_name=None, dtype=str, keep_default_na=False, engine="openpyxl")
    return [Section(text=_frame_text(frame), sheet=str(name)) for name, frame in sheets.items()]
