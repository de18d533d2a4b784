"""Price one wire input with the model's price table. Unknown stays unknown: never a guess.

A rate billed per second of an input (an avatar's audio, a reference video to follow, upscale or edit) is priced
exactly once that input's length has been measured (``media.duration.measure_inputs``, passed in as
``measured``); without a measurement it stays unknown, with its per-second rate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from .spec import ModelSpec, Rate
from .validate import _matches, _norm

# An ``input_seconds`` label ending so ("the reference videos plus the output") bills the measured input's seconds
# plus the request's own output seconds (``seconds_field``).
PLUS_OUTPUT = " plus the output"

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


def billed_input(spec: ModelSpec, rate: Rate) -> str | None:
    """The input whose length ``rate`` bills by ("the input video", "the input audio"), or None when the request
    states the billed length itself (or the rate is not per second).

    ``Rate.input_seconds`` says so; so does a per-second table whose ``seconds_field`` is no field of the model
    (``audio_seconds``, ``video_seconds``) when the model takes such a file (a media field named for audio or
    video): the length of the audio or video the request points at."""
    table = spec.price
    if table is None or table.unit != "second":
        return None
    if rate.input_seconds:
        return rate.input_seconds
    if (table.seconds_field or "duration") in spec.fields:
        return None
    kind = (table.seconds_field or "").removesuffix("_seconds")
    if kind in ("audio", "video") and any(f.is_media and kind in name.lower() for name, f in spec.fields.items()):
        return f"the input {kind}"
    return None


def input_to_measure(spec: ModelSpec, wire: Mapping[str, Any]) -> str | None:
    """The input whose length prices this request: ``billed_input`` of the rate ``price_input`` would use."""
    table = spec.price
    rate = None if table is None else next((r for r in table.rates if _matches(r.when, wire)), None)
    return None if rate is None else billed_input(spec, rate)


def price_input(spec: ModelSpec, wire: Mapping[str, Any], measured: Mapping[str, float] | None = None) -> ItemPrice:
    """What one task of ``wire`` costs.

    ``measured`` maps an input's label (``billed_input``) to its measured length in seconds; a rate billed per
    second of that input is then priced exactly, at the exact measured length (KIE documents no rounding to whole
    seconds, so none is applied, and the breakdown says so). Without it (None: not measured; a mapping without
    the label: the input could not be measured) such a rate stays unknown."""
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
            billed = billed_input(spec, rate)
            length = _measured_length(billed, measured, wire, seconds_field)
            if length is not None:
                seconds, how = length
                credits = rate.credits * seconds
                text = (
                    f"{_fmt(rate.credits)} credits/s x {_secs(seconds)} s ({how}, not rounded: KIE documents no "
                    f"rounding to whole seconds; {condition})"
                )
            elif billed is not None or seconds_field not in wire:  # a length the request does not state: no guess
                what = billed or seconds_field.replace("_", " ")
                why = (
                    "could not be measured"
                    if billed is not None and measured is not None
                    else "is not known before the task runs"
                )
                return ItemPrice(
                    known=False,
                    credits=None,
                    unit=table.unit,
                    breakdown=f"{_fmt(rate.credits)} credits per second of {what} ({condition}); that length {why}, "
                    "so the total is unknown",
                    source=source.ref,
                    source_date=source.date,
                    note=table.note,
                )
            else:
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


def _measured_length(
    billed: str | None, measured: Mapping[str, float] | None, wire: Mapping[str, Any], seconds_field: str
) -> tuple[float, str] | None:
    """The billed seconds from a measurement, and how they were found; None when there is no usable one.

    A label ending in "plus the output" (Seedance 2 with reference videos: KIE bills their seconds and the
    output's) adds the request's own ``seconds_field`` to the measured input."""
    if billed is None or measured is None or (length := _seconds(measured.get(billed))) is None:
        return None
    length = round(length, 3)  # to the millisecond, as measured
    if not billed.endswith(PLUS_OUTPUT):
        return length, f"measured length of {billed}"
    try:
        output = _seconds(float(wire[seconds_field]))
    except (KeyError, TypeError, ValueError):
        return None
    if output is None:
        return None
    what = billed.removesuffix(PLUS_OUTPUT)
    return round(length + output, 3), f"{_secs(length)} s measured length of {what} + {_fmt(output)} s of output"


def _secs(seconds: float) -> str:
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


def _seconds(value: Any) -> float | None:
    """A measured length that can price something: a finite number above zero."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


def usd(credits: float) -> float:
    return round(credits * USD_PER_CREDIT, 4)


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
