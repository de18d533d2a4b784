"""The price table MASTER_CONTEXT.md gives agents and users to plan with says what estimate_cost quotes.

The docs audit of 2026-12-05 found Seedance 2 Fast and Mini there at an offer price that had ended two months
before (the catalogue had moved on; the table had not): a marketer budgeting from it under-planned by 1.3-2.5x.
Every plain figure of the table (a number, perhaps with a footnote mark; a cell with words in it is read by a
person, not checked) is asked of the server, through the real MCP client, for the model and resolution its row
and column name.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kie_mcp.catalog import load_catalog

from .conftest import text_of

MASTER = Path(__file__).resolve().parents[1] / "MASTER_CONTEXT.md"
PLAIN = re.compile(r"(\d+(?:\.\d+)?)(?: [¹²³])?")  # a figure alone, perhaps with its footnote mark
PICTURE = "https://example.com/reference.png"


def _tables(text: str) -> list[list[list[str]]]:
    """The markdown tables of ``text`` after its price snapshot's heading, each as rows of cells (header first)."""
    start = text.index("Snapshot of KIE's published prices")
    tables, rows = [], []
    for line in text[start:].splitlines():
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not all(set(cell) <= set("-: ") for cell in cells):
                rows.append(cells)
        elif rows:
            tables.append(rows)
            rows = []
        if line.startswith("Observed costs"):
            break
    return tables


def figures() -> list[tuple[str, str, float, bool]]:
    """(model id, resolution column, credits, per second) of every plain figure of the price tables."""
    catalog = load_catalog()
    found = []
    for table in _tables(MASTER.read_text(encoding="utf-8"))[:2]:
        header, *rows = table
        for row in rows:
            per_second = "per second" in row
            ids = [name for name in re.findall(r"`([^`]+)`", row[0]) if catalog.get(name) is not None]
            for column, cell in zip(header, row, strict=True):
                match = PLAIN.fullmatch(cell)
                if match and re.fullmatch(r"\d+[Kp]", column):
                    found += [(model, column, float(match[1]), per_second) for model in ids]
    return found


FIGURES = figures()


def test_the_price_tables_are_read():
    """The parser keeps up with the document: most of the figures a person reads there are checked."""
    models = {model for model, *_ in FIGURES}
    assert len(FIGURES) >= 30, FIGURES
    assert {"nano-banana-2", "veo3_fast", "bytedance/seedance-2-fast", "bytedance/seedance-2-mini"} <= models


@pytest.mark.parametrize(
    ("model", "column", "credits", "per_second"), FIGURES, ids=[f"{m} {c}" for m, c, *_ in FIGURES]
)
async def test_each_figure_of_master_context_is_what_estimate_cost_quotes(connect, model, column, credits, per_second):
    spec = load_catalog().get(model)
    assert spec is not None
    request: dict = {"model": model, "prompt": "a glass bottle on a beach at dawn"}
    resolution = spec.field_for_arg("resolution")
    if resolution is not None:
        wanted = next((v for v in resolution.values or [] if str(v).lower() == column.lower()), None)
        assert wanted is not None, f"{model} takes no {column}: {resolution.values}"
        request["resolution"] = wanted
    ratio = spec.field_for_arg("aspect_ratio")
    if ratio is not None and "16:9" in (ratio.values or []):  # a fixed ratio: "auto" makes 1K only on some
        request["aspect_ratio"] = "16:9"
    seconds = None
    if per_second:
        duration = spec.field_for_arg("duration")
        assert duration is not None, model
        seconds = duration.default or (duration.values or [duration.min])[0]
        request["duration"] = seconds
    async with connect() as client:
        quoted = await client.call_tool("estimate_cost", request)
        if quoted.is_error and "input image" in text_of(quoted):  # an edit: priced with a picture to edit
            quoted = await client.call_tool("estimate_cost", {**request, "images": [PICTURE]})
    assert not quoted.is_error, text_of(quoted)
    total = quoted.structured_content["quote"]["credits_total"]
    assert total is not None, text_of(quoted)
    said = total / float(seconds) if seconds else total
    assert said == pytest.approx(credits), (
        f"MASTER_CONTEXT.md says {credits:g} for {model} at {column}; quoted {said:g}"
    )
