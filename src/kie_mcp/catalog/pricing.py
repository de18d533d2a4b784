"""Price one wire input with the model's price table. Unknown stays unknown: never a guess.

A rate billed per second of an input (an avatar's audio, a reference video to follow, upscale or edit) is priced
exactly once that input's length has been measured (``media.duration.measure_inputs``, passed in as
``measured``); without a measurement it stays unknown, with its per-second rate.
"""

# No ``from __future__ import annotations``: pydantic would compile each field's annotation string on import.

import math
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, Field

from kie_mcp.words import plain

from .spec import FieldSpec, ModelSpec, Rate
from .validate import (
    FITS,
    PIXELS,
    _check_value,
    _coerce,
    _count,
    _place_images,
    apply_defaults,
    argument_name,
    when_matches,
)

# An ``input_seconds`` label ending so ("the reference videos plus the output") bills the measured input's seconds
# plus the request's own output seconds (``seconds_field``).
PLUS_OUTPUT = " plus the output"

USD_PER_CREDIT = 0.005  # 200 credits = $1 (KIE model pages: "4 credits = $0.02")

# A charge KIE reported here more than 2x off the catalogue's (either way) is not trusted as a price
# (generation.observed_price, generation.implausible).
FAR_FROM_TABLE = 2.0
# A charge far above the table counts against the caps (``ItemPrice.up_to``) for this long after its task ended
# (generation.observed_price): what KIE took once it may take again, but not forever (KIE's price comes back down).
FAR_CHARGE_COUNTED_SECONDS = 24 * 3600.0
# A charge more than this many times the table (or the task's reservation), or above ``MOST_CREDITS_CHARGED``, cannot
# be what KIE charged: it is unreadable, like NaN (generation.settle_one, generation.observed_price).
UNREADABLE_FACTOR = 100.0
MOST_CREDITS_CHARGED = 1_000_000.0  # $5,000 for one task: above any of KIE's rates
LIVE_ONLY = "live-price"  # the price key of a model only KIE's live catalogue has (live.spec_from_live)
# ``ItemPrice.up_to_source`` of a live price lower than the bundled one (live.floored: a live price-feed row, which
# anyone who can edit the workspace's cache, or one typo on KIE's public price page, would otherwise set): the
# bundled figure is what counts.
CATALOGUE_FLOOR = "kie-mcp's bundled price table"
CHARGED_HERE = "charged by KIE in this workspace (journal)"  # the source of a price learned from a charge here
# How ``provenance`` names a price's source:
PRICE_LIST = "KIE price list"  # the prices bundled with kie-mcp, as KIE published them on a date
LIVE_PRICE_LIST = "KIE live price list"
# How live prices name their source (catalog/live.py): a row of KIE's price feed, or a model's pricingDesc.
LIVE_SOURCES = (LIVE_PRICE_LIST, "KIE price feed row", "KIE pricingDesc")
# What a live price is under --sandbox: the simulator's feed, which serves the bundled prices, never KIE's.
SIMULATED_PRICE_LIST = "the simulator's price list"
SIMULATED_COPY = "a copy of the KIE prices kie-mcp ships"


class ItemPrice(BaseModel, defer_build=True):
    """What one task of this request costs, and why."""

    known: bool
    credits: float | None
    unit: str
    breakdown: str
    source: str | None = None
    source_date: str | None = None
    # The day a charge KIE made in this workspace for the same model and options, no higher than what this price
    # counts, bore it out (``generation.observed_price``): evidence as fresh as a live price row, whatever the
    # source's date (``generation.unconfirmed_old``).
    confirmed_on: str | None = None
    note: str | None = None
    # The most KIE was credibly seen charging for this task, above ``credits`` (``Rate.up_to``): what the caps and
    # the auto-approve limit count, and the ledger while KIE reports no charge. None when the price is all there is.
    up_to: float | None = None
    up_to_source: str | None = None  # where that charge was seen, and when
    up_to_date: str | None = None
    up_to_why: str | None = None  # why ``up_to`` counts when KIE was not seen charging it (``Rate.up_to_why``)
    # The price comes only from KIE's live catalogue (a model the bundled one lacks): nothing in kie-mcp's own data
    # bounds it, so it is never auto-approved, and the caps count the whole per-call cap per task
    # (``generation.live_only_counted``), as for an unknown price.
    live_only: bool = False

    @property
    def counted(self) -> float | None:
        """What one task counts against the caps: the higher of its price and what KIE was seen charging."""
        if self.credits is None:
            return None
        return max(self.credits, self.up_to or 0.0)

    @property
    def counted_why(self) -> str:
        """Why the caps count ``up_to`` rather than the price, for a refusal's wording."""
        if self.up_to_source == CATALOGUE_FLOOR:  # a charge here may have raised the live figure: said as what it is
            lower = "the charge KIE made here before" if self.source == CHARGED_HERE else "KIE's live list"
            return f"{lower} is lower than kie-mcp's catalogue, whose price is what counts"
        return self.up_to_why or "KIE was seen charging that much"


def provenance(price: ItemPrice, *, simulated: bool = False) -> str:
    """Where a price comes from, in words a user trusts. Never a third-party repository's name: the full
    provenance of the bundled data is in the catalogue and ``kie://models/{id}``, not in every quote. ``simulated``
    (--sandbox): a "live" price was read from the simulator, so it is named so, never as KIE's."""
    return source_text(price.source, price.source_date, simulated=simulated)


def source_text(source: str | None, date: str | None, *, simulated: bool = False) -> str:
    """``provenance`` of a price from ``source`` (an ``ItemPrice.source``) of ``date``: what a quote and the model
    tables (``tables.py``, per rate) say."""
    if source is None:
        return "unknown"
    day = date or "an unknown date"
    if source == CHARGED_HERE:
        return f"what KIE charged in this workspace on {day}"
    if source.startswith(LIVE_SOURCES) and simulated:
        return f"{SIMULATED_PRICE_LIST} of {day} ({SIMULATED_COPY})"
    if source.startswith(LIVE_SOURCES):
        return f"{LIVE_PRICE_LIST} of {day}"
    return f"{PRICE_LIST} of {day}"


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
    rate = None if table is None else next((r for r in table.rates if when_matches(r.when, wire)), None)
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
        if not when_matches(rate.when, wire):
            continue
        condition = _condition(spec, rate, wire)
        if table.unit == "second":
            seconds_field = table.seconds_field or "duration"
            billed = billed_input(spec, rate)
            length = _measured_length(billed, measured, wire, seconds_field)
            if length is not None:
                seconds, how = length
                scale = seconds
                text = (
                    f"{credits_figure(rate.credits)} credits/s x {_secs(seconds)} s ({how}, not rounded: KIE "
                    f"documents no rounding to whole seconds; {condition})"
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
                    breakdown=f"{credits_text(rate.credits)} per second of {what} ({condition}); that length {why}, "
                    "so the total is unknown",
                    source=source.ref,
                    source_date=source.date,
                    note=table.note,
                )
            else:
                seconds = float(wire[seconds_field])
                scale = seconds
                text = f"{credits_figure(rate.credits)} credits/s x {credits_figure(seconds)} s ({condition})"
        else:
            scale = 1.0
            text = f"{credits_text(rate.credits)} per {table.unit} ({condition})"
        count = 1.0
        if table.count_field and table.count_field in wire:
            count = float(wire[table.count_field])
            text += f" x {credits_figure(count)} outputs ({table.count_field})"
        credits = rate.credits * scale * count  # the seconds billed and outputs made scale a charge seen likewise
        seen = None if rate.up_to_source is None else spec.source_of(rate.up_to_source)
        up_to = None if rate.up_to is None else round(rate.up_to * scale * count, 4)
        if added := sum(each * _count(wire, name) for name, each in rate.up_to_per_input.items()):
            up_to = round((up_to if up_to is not None else credits) + added, 4)  # once per task, not per second
        return ItemPrice(
            known=True,
            credits=round(credits, 4),
            unit=table.unit,
            breakdown=text,
            source=source.ref,
            source_date=source.date,
            note=table.note,
            up_to=up_to if up_to is not None and up_to > credits else None,  # a live price may have caught up
            up_to_source=None if seen is None else seen.ref,
            up_to_date=None if seen is None else seen.date,
            up_to_why=rate.up_to_why,
            live_only=table.source == LIVE_ONLY,
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


def _condition(spec: ModelSpec, rate: Rate, wire: Mapping[str, Any]) -> str:
    """The settings a rate applies to, as the request has them and named as the user sets them
    (``resolution=pro, audio=true`` for Kling's ``mode`` and ``sound``)."""
    parts = [
        _fitting(spec, key.removesuffix(FITS), wire, expected)
        if key.endswith(FITS)
        else f"{argument_name(spec, key)}={plain(wire.get(key, expected), quoted=False)}"
        for key, expected in rate.when.items()
        if not key.endswith("#count")
    ]
    return ", ".join(parts) or "any settings"


def _fitting(spec: ModelSpec, name: str, wire: Mapping[str, Any], frames: Any) -> str:
    """A picture's size as a rate's condition: "images 6000x6000 px as sent (within 20000x20000)"."""
    size = wire.get(name + PIXELS)
    shown = "x".join(str(side) for side in size) if isinstance(size, list | tuple) else "of unknown size"
    within = " or ".join(str(frame) for frame in (frames if isinstance(frames, list) else [frames]))
    return f"{argument_name(spec, name)} {shown} px as sent (within {within})"


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
    measured = f"{_secs(length)} s measured length of {what} + {credits_figure(output)} s of output"
    return round(length + output, 3), measured


def _secs(seconds: float) -> str:
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


def _seconds(value: Any) -> float | None:
    """A measured length that can price something: a finite number above zero."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


def usd(credits: float) -> float:
    return round(credits * USD_PER_CREDIT, 4)


# Credits written in full below this: every whole number under it is exact in a float (up to 2**53), and a cap beyond
# it (KIE_MAX_CREDITS_PER_DAY=1e300, "no cap") is none that can be reached: 10**15 credits are about $5 trillion.
CREDITS_IN_FULL = 10**15
CREDITS_BEYOND = "1,000,000,000,000,000+"  # a figure of CREDITS_IN_FULL or more, as it is written
CREDITS_SMALLEST = 0.000001  # the smallest fraction of a credit written; one under it is said to be
CREDITS_UNDER = "less than 0.000001"


def credits_figure(value: float) -> str:
    """A figure of credits as every answer writes one, without its word: '1000000', '4.8', '0.35', '0.00001'; never in
    e-notation ('1e+06', which ``:g`` makes of a million; '1e-05') nor with a float's noise (a cap of 1e300 is not
    301 digits): a figure of ``CREDITS_IN_FULL`` or more reads ``CREDITS_BEYOND``, a fraction under
    ``CREDITS_SMALLEST`` ``CREDITS_UNDER`` (a cap, a day's spend, a balance, a max_credits)."""
    value = float(value)
    if math.isnan(value):
        return "an unknown number of"
    if value <= -CREDITS_IN_FULL:  # "-1,000,000,000,000,000+" would read as more than minus that
        return "-" + CREDITS_BEYOND.removesuffix("+") + " or less"
    if value < 0:
        return "-" + credits_figure(-value) if value <= -CREDITS_SMALLEST else "more than -0.000001"
    if value >= CREDITS_IN_FULL:  # infinity too
        return CREDITS_BEYOND
    if value.is_integer():
        return str(int(value))
    if value >= 1e5:  # to the cent, in 15 significant digits at most: what a float holds without noise
        text = f"{value:.{max(min(2, 15 - len(str(int(value)))), 0)}f}"
        if float(text) >= CREDITS_IN_FULL:  # 999999999999999.9 is 10**15 to the cent
            return CREDITS_BEYOND
        return text.rstrip("0").rstrip(".") if "." in text else text
    if value < CREDITS_SMALLEST:
        return CREDITS_UNDER
    # six significant digits (as ``:g`` wrote them), in fixed decimals: 0.00001, never 1e-05
    return f"{value:.{5 - math.floor(math.log10(value))}f}".rstrip("0").rstrip(".")


def credits_text(value: float) -> str:
    """'1 credit', '0 credits', '4.8 credits': a figure of credits with its word, never '1 credits'."""
    return f"{credits_figure(value)} {'credit' if value == 1 else 'credits'}"


# -- typical outputs: what people compare (issue 12) -------------------------------------------------------------

TYPICAL_CLIP_SECONDS = (5, 8)  # the clip lengths ads and UGC reels are made of


class TypicalPrice(BaseModel, defer_build=True):
    """What one typical output costs at the model's default settings: one image (or the several a default request
    makes), or a 5 s or an 8 s clip."""

    # "1 image", "4 images" (Wan 2.7's default n), "5 s clip", "8 s clip", "6 s clip" (a model offering neither),
    # "1 clip"
    output: str
    credits: float
    usd: float
    settings: str  # the defaults it is priced at, as the user names them ("resolution=720p, audio=false"), or ""
    counted: float | None = Field(
        default=None,
        description="When the caps count more than the price (estimate_cost's credits_counted: KIE was seen charging "
        "more, or KIE's live list is lower than kie-mcp's catalogue): that figure, what quotes and approvals ask "
        '("up to"). Left out when the price is all that counts.',
    )
    counted_usd: float | None = Field(default=None, description="About USD of counted; left out with it.")


# What "up to" means where a typical price says it (list_models' answer, the model table's header), as estimate_cost
# leads with the same figure.
UP_TO_MEANS = (
    '"up to N cr": the most kie-mcp counts for it, above "KIE lists" (KIE\'s list price): KIE was seen charging that '
    "much (or may for such a request, or its live list is below kie-mcp's catalogue); estimate_cost's quote, the "
    "approval and the spending caps use it."
)


def typical_prices(spec: ModelSpec, price: Callable[..., ItemPrice] | None = None) -> list[TypicalPrice]:
    """The prices of a typical output: a request that leaves every setting at its default, priced by ``price``
    (``price_input``, the bundled list, by default; the server passes the live one ``estimate_cost`` uses). Empty
    when that price is unknown (no table, or billed by the length of an input nobody has measured yet): never a
    guess."""
    if spec.price is None:
        return []
    if spec.kind == "image":
        typical = [_typical(spec, "1 image", _default_request(spec), price)]
        many = default_count(spec)
        if many > 1:  # Wan 2.7's default request makes 4: its price is shown too, never only one image's
            typical.append(_typical(spec, f"{many} images", _default_request(spec, count=many), price))
        return [found for found in typical if found is not None]
    length = spec.field_for_arg("duration")
    if length is None:  # the model sets the length itself (an extend, an upscale, Hailuo Pro)
        return [found for found in [_typical(spec, "1 clip", _default_request(spec), price)] if found is not None]
    lengths = [seconds for seconds in TYPICAL_CLIP_SECONDS if _allows(length, seconds)]
    if not lengths and length.default is not None:  # e.g. Hailuo's 6 or 10 s: show its default length instead
        lengths = [int(float(length.default))]
    prices = [
        _typical(spec, f"{seconds} s clip", _default_request(spec, {length.name: _coerce(length, seconds)}), price)
        for seconds in lengths
    ]
    return [found for found in prices if found is not None]


def _default_request(spec: ModelSpec, given: Mapping[str, Any] | None = None, count: int = 1) -> dict[str, Any]:
    """The wire input of a request that sets only ``given``: the fewest input images the model takes (an edit's
    one picture), ``count`` outputs per task, everything else at the model's defaults."""
    wire = dict(given or {})
    if spec.images is not None and spec.images.min:
        _place_images(spec, [_SAMPLE_INPUT] * spec.images.min, wire)
    field = _count_field(spec)
    if field is not None:  # ``n``, ``num_images``: priced per output
        wire[field.name] = _coerce(field, count)
    return apply_defaults(spec, wire)


def _count_field(spec: ModelSpec) -> FieldSpec | None:
    """The field that sets how many outputs a task makes when the price is per output (``n``, ``num_images``)."""
    return spec.fields.get(spec.price.count_field) if spec.price and spec.price.count_field else None


def default_count(spec: ModelSpec) -> int:
    """How many outputs a request that leaves the model's count (``n``, ``num_images``) alone makes: 1 when the
    price is not per output or KIE documents no default."""
    field = _count_field(spec)
    try:
        return max(int(float(field.default)), 1) if field is not None and field.default is not None else 1
    except (TypeError, ValueError):
        return 1


_SAMPLE_INPUT = "https://example.invalid/input.png"  # only counted by the price table, never sent anywhere


def usd_text(dollars: float) -> str:
    """'$0.35', '$1,250.00'; a price under a cent keeps its first significant digit ('$0.004'), never '$0.00';
    '-$0.25' below zero; the dollars of ``CREDITS_IN_FULL`` credits or more '$5,000,000,000,000+' (a balance KIE gave
    as 1e308 read as 300 digits), as ``credits_figure`` writes the credits."""
    dollars = float(dollars)
    if math.isnan(dollars):
        return "an unknown number of dollars"
    beyond = f"${usd(CREDITS_IN_FULL):,.0f}"
    if dollars <= -usd(CREDITS_IN_FULL):  # "-$5,000,000,000,000+" would read as more than minus that
        return f"-{beyond} or less"
    if dollars < 0:
        return "-" + usd_text(-dollars)
    if dollars >= usd(CREDITS_IN_FULL):  # infinity too
        return f"{beyond}+"
    return f"${dollars:,.2f}" if dollars >= 0.01 or dollars == 0 else f"${dollars:.1g}"


def _typical(
    spec: ModelSpec, output: str, wire: dict[str, Any], pricer: Callable[..., ItemPrice] | None
) -> TypicalPrice | None:
    price = (pricer or price_input)(spec, wire)
    if not price.known or price.credits is None:
        return None
    assert spec.price is not None
    rate = next(r for r in spec.price.rates if when_matches(r.when, wire))
    length = spec.field_for_arg("duration")
    shown = Rate(when={k: v for k, v in rate.when.items() if length is None or k != length.name}, credits=rate.credits)
    named = any(not key.endswith("#count") for key in shown.when)  # an input count alone is no setting to name
    settings = _condition(spec, shown, wire) if named else ""
    counted = price.counted if price.counted is not None and price.counted > price.credits else None
    return TypicalPrice(
        output=output,
        credits=price.credits,
        usd=usd(price.credits),
        settings=settings,
        counted=counted,
        counted_usd=None if counted is None else usd(counted),
    )


def _allows(field: FieldSpec, seconds: int) -> bool:
    return _check_value(field, _coerce(field, seconds)) is None
