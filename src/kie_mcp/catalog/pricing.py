"""Price one wire input with the model's price table. Unknown stays unknown: never a guess."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from .spec import ModelSpec
from .validate import _matches, _norm

USD_PER_CREDIT = 0.005  # 200 credits = $1 (KIE model pages: "4 credits = $0.02")


class ItemPrice(BaseModel):
    """What one task of this request costs, and why."""

    known: bool
    credits: float | None
    unit: str
    breakdown: str
    source: str | None = None
    source_date: str | None = None
    note: str | None = None


def price_input(spec: ModelSpec, wire: Mapping[str, Any]) -> ItemPrice:
    table = spec.price
    if table is None:
        return ItemPrice(known=False, credits=None, unit="task", breakdown=f"No price on file for {spec.id}.")
    source = spec.source_of(table.source)
    for rate in table.rates:
        if not _matches(rate.when, wire):
            continue
        condition = ", ".join(f"{k}={_norm(v)}" for k, v in rate.when.items() if not k.endswith("#count"))
        condition = condition or "any settings"
        if table.unit == "second":
            seconds_field = table.seconds_field or "duration"
            if rate.input_seconds or seconds_field not in wire:  # a length the request does not state: no guess
                what = rate.input_seconds or seconds_field.replace("_", " ")
                return ItemPrice(
                    known=False,
                    credits=None,
                    unit=table.unit,
                    breakdown=f"{_fmt(rate.credits)} credits per second of {what} ({condition}); that length is not "
                    "known before the task runs, so the total is unknown",
                    source=source.ref,
                    source_date=source.date,
                    note=table.note,
                )
            seconds = float(wire[seconds_field])
            credits = rate.credits * seconds
            text = f"{_fmt(rate.credits)} credits/s x {_fmt(seconds)} s ({condition})"
        else:
            credits = rate.credits
            text = f"{_fmt(rate.credits)} credits per {table.unit} ({condition})"
        if table.count_field and table.count_field in wire:
            count = float(wire[table.count_field])
            credits *= count
            text += f" x {_fmt(count)} outputs ({table.count_field})"
        return ItemPrice(
            known=True,
            credits=round(credits, 4),
            unit=table.unit,
            breakdown=text,
            source=source.ref,
            source_date=source.date,
            note=table.note,
        )
    return ItemPrice(
        known=False,
        credits=None,
        unit=table.unit,
        breakdown=f"No price on file for {spec.id} with these settings.",
        source=source.ref,
        source_date=source.date,
        note=table.note,
    )


def usd(credits: float) -> float:
    return round(credits * USD_PER_CREDIT, 4)


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
