"""A small, deterministic sample dataset (monthly sales) the project writes itself for demos, examples and tests.

Generated, not downloaded: it is reproducible offline and its true answers are known (``EXPECTED``), so an
end-to-end test can check what the model says against the data.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

__all__ = ["MONTHS", "PRODUCTS", "REGIONS", "expected_answers", "sample_rows", "write_sample_csv"]

REGIONS = ("North", "South", "East", "West")
PRODUCTS = {"Widget": 12.5, "Gadget": 30.0, "Doohickey": 7.25}
MONTHS = [f"2024-{m:02d}" for m in range(1, 13)]
_REGION_SCALE = {"North": 1.0, "South": 0.8, "East": 1.6, "West": 1.2}  # East clearly sells the most


def sample_rows(seed: int = 7) -> list[dict[str, object]]:
    """One row per (month, region, product): units sold, unit price and revenue."""
    rng = random.Random(seed)
    rows: list[dict[str, object]] = []
    for i, month in enumerate(MONTHS):
        for region in REGIONS:
            for product, price in PRODUCTS.items():
                base = 40 + 3 * i  # a steady upward trend over the year
                units = int(base * _REGION_SCALE[region] * rng.uniform(0.85, 1.15))
                rows.append({"month": month, "region": region, "product": product, "units": units,
                             "unit_price": price, "revenue": round(units * price, 2)})
    return rows


def write_sample_csv(path: Path | str, seed: int = 7) -> Path:
    """Write the sample sales table as CSV (144 rows) and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = sample_rows(seed)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def expected_answers(seed: int = 7) -> dict[str, object]:
    """Ground truth for questions tests ask: total revenue per region and the top region."""
    totals: dict[str, float] = {}
    for row in sample_rows(seed):
        totals[str(row["region"])] = totals.get(str(row["region"]), 0.0) + float(row["revenue"])  # type: ignore[arg-type]
    return {"revenue_by_region": {k: round(v, 2) for k, v in totals.items()},
            "top_region": max(totals, key=totals.__getitem__)}
