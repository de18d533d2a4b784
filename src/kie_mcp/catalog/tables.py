"""The model tables, generated from the catalogue data: the README's (the bundled catalogue alone) and a server's
resources and list_models (its catalogue with KIE's live list and prices: the models the tools take, priced as
estimate_cost quotes them)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kie_mcp.kept import KeptPerOffer

from .pricing import (
    UP_TO_MEANS,
    ItemPrice,
    TypicalPrice,
    credits_figure,
    credits_text,
    price_input,
    source_text,
    typical_prices,
    usd,
    usd_text,
)
from .registry import Catalog, load_catalog
from .spec import ModelSpec

if TYPE_CHECKING:
    from .live import LiveCatalog


@dataclass(frozen=True)
class Offer:
    """The models a table shows and how it prices them: the bundled catalogue alone (``Offer()``, the README's
    table), or a server's (``Runtime.catalog``: the live models the bundle lacks too) with KIE's live list and price
    feed (``live``), so the tables say what the tools do: no model KIE withdrew, each price as estimate_cost quotes
    it. ``simulated`` (--sandbox): live prices were read from the simulator, and are named so."""

    catalog: Catalog = field(default_factory=load_catalog)
    live: LiveCatalog | None = None
    simulated: bool = False

    def models(self) -> list[ModelSpec]:
        """Every model KIE sells, by kind and id: none withdrawn in the data or gone from KIE's live list."""
        from .live import still_sold

        return sorted(still_sold(self.catalog, self.live), key=lambda s: (s.kind, s.id))

    def gone(self, model_id: str) -> list[str] | None:
        """None unless KIE no longer sells the model (``live.is_gone``); then what to use instead
        (``live.is_withdrawn``)."""
        if self.live is None:
            return None
        from .live import is_withdrawn

        return is_withdrawn(self.live, model_id, self.catalog)

    @property
    def price(self) -> Callable[..., ItemPrice]:
        """How a request is priced: ``price_input``, with the live price feed applied when there is one."""
        if self.live is None:
            return price_input
        from .live import live_price_input

        return functools.partial(live_price_input, self.live)

    def withdrawn(self) -> list[dict[str, Any]]:
        """The models KIE no longer sells, by id: withdrawn in the data (with its date and source), gone from KIE's
        live model list (dated by the list) or refused by KIE as not published (dated by its answer), each with what
        to use instead."""
        gone: list[dict[str, Any]] = [
            {"id": spec.id, **spec.withdrawn.model_dump()} for spec in self.catalog if spec.withdrawn is not None
        ]
        for spec in self.catalog.offered():
            instead = self.gone(spec.id)
            if instead is not None and self.live is not None:
                from .live import gone_from

                day, source = gone_from(self.live, spec.id)
                gone.append({"id": spec.id, "date": day, "source": source, "alternatives": instead, "note": None})
        return sorted(gone, key=lambda entry: entry["id"])


def price_summary(spec: ModelSpec, live: LiveCatalog | None = None) -> str:
    """e.g. '8-18 credits per task', '1 credit per task', '14-67 credits per second' or, priced per output (``n``),
    '4.8 credits per image'; 'price unknown' without a table. With ``live``, each rate as estimate_cost quotes it:
    KIE's live price where its feed row has one, unknown where the row is gone, and a live price below the
    catalogue's said to count at the catalogue's."""
    rates = _rates(spec, live)
    if not rates:
        return "price unknown"
    credits = sorted({now for now, _, _ in rates if now is not None})
    if not credits:
        return "price unknown (KIE's live price list has no usable price for it)"
    low, high = credits_figure(credits[0]), credits_figure(credits[-1])
    span = credits_text(credits[0]) if len(credits) == 1 else f"{low}-{high} credits"
    assert spec.price is not None
    unit = spec.kind if spec.price.count_field and spec.price.unit == "task" else spec.price.unit
    notes = []
    if any(now is None for now, _, _ in rates):
        notes.append("unknown at some settings: KIE's live price list has no usable price for them")
    if any(now is not None and now < bundled for now, bundled, _ in rates):
        notes.append(
            "KIE's live list is lower than kie-mcp's catalogue at some settings: the catalogue's price is what counts "
            "against the caps"
        )
    return f"{span} per {unit}" + "".join(f" ({note})" for note in notes)


def price_source(spec: ModelSpec, live: LiveCatalog | None = None, *, simulated: bool = False) -> str:
    """Where the prices of ``price_summary`` come from and of when, as a quote names its source ('KIE price list
    of 2026-11-20', 'KIE live price list of 2026-12-06'); '' without a price table."""
    said = dict.fromkeys(source_text(*source, simulated=simulated) for _, _, source in _rates(spec, live))
    return "; ".join(said)


def _rates(
    spec: ModelSpec, live: LiveCatalog | None
) -> list[tuple[float | None, float, tuple[str | None, str | None]]]:
    """Each rate of the model's table: its credits now (None: unknown), the catalogue's, and its source and date,
    as ``live.live_price_input`` prices it."""
    table = spec.price
    if table is None:
        return []
    bundled = spec.source_of(table.source)
    if live is None:
        return [(rate.credits, rate.credits, (bundled.ref, bundled.date)) for rate in table.rates]
    from .live import effective_rate

    rates: list[tuple[float | None, float, tuple[str | None, str | None]]] = []
    for rate in table.rates:
        verdict = effective_rate(live, spec, rate)
        if verdict.state == "bundled":
            rates.append((rate.credits, rate.credits, (bundled.ref, bundled.date)))
        else:  # as live_price_input names a feed row's price
            rates.append((verdict.credits, rate.credits, (f"KIE price feed row {rate.feed}", verdict.date)))
    return rates


def typical_cell(spec: ModelSpec, price: Callable[..., ItemPrice] | None = None) -> str:
    """The table's typical-output column: '5 s 70 cr ($0.35), 8 s 112 cr ($0.56) at resolution=720p'; '' when unknown.
    When the caps count more than the price, that figure leads, as estimate_cost's quote leads with it: '8 s up to 60
    cr ($0.30; KIE lists 30)'."""
    return typical_text(typical_prices(spec, price))


def typical_text(prices: Sequence[TypicalPrice]) -> str:
    """``typical_cell`` of prices already made (list_models' line says the same): each output's credits, then its
    USD, as estimate_cost writes a price ('60 credits (about $0.30)'); what the caps count first when that is more
    (``UP_TO_MEANS``), never a list price alone that the caps and auto-approval count double; '' without prices."""
    if not prices:
        return ""
    cells = ", ".join(f"{_output_words(p.output)} {_figure(p)}" for p in prices)
    return f"{cells} at {prices[0].settings}" if prices[0].settings else cells


def _figure(price: TypicalPrice) -> str:
    """'30 cr ($0.15)', or 'up to 60 cr ($0.30; KIE lists 30)' when the caps count more than KIE's list."""
    if price.counted is None:
        return f"{credits_figure(price.credits)} cr ({usd_text(price.usd)})"
    return (
        f"up to {credits_figure(price.counted)} cr ({usd_text(usd(price.counted))}; "
        f"KIE lists {credits_figure(price.credits)})"
    )


def _output_words(output: str) -> str:
    """A typical output as the cells name it: a clip by its length alone ('5 s clip': '5 s'); '1 clip' (a model that
    sets its own length: an extend, an upscale, Hailuo Pro) and '1 image' as they are, never a bare '1'."""
    return output.removesuffix(" clip") if output.endswith(" s clip") else output


# The tables as last rendered, by offer and table (``KeptPerOffer``): rendering one prices every model's table
# (kie://models: some 0.1 s of Python, holding every other thread of the server), and a read of the resource rendered
# it every time; the next read after a sync renders it anew.
_RENDERED: KeptPerOffer[str] = KeptPerOffer(16)  # two tables for each server's offer; a process embedding several


def _kept(table: str, offer: Offer, render: Callable[[Offer], str]) -> str:
    """``table`` rendered for ``offer`` by ``render``, or the text rendered for the same offer before."""
    return _RENDERED.get(offer.catalog, offer.live, (table, offer.simulated), lambda: render(offer))


def model_table_markdown(offer: Offer | None = None) -> str:
    """The model table (``kie://models``, the README's): every model KIE sells, priced as estimate_cost quotes it,
    and those it withdrew; kept per offer (``_kept``)."""
    return _kept("markdown", offer or Offer(), _markdown)


def _markdown(offer: Offer) -> str:
    rows = [
        "# KIE models in kie-mcp",
        "",
        "Prices are in KIE credits (1 credit is about $0.005), as estimate_cost quotes them: *Price source* says "
        "which of KIE's price lists each is from, and of when (kie-mcp's dated snapshot, or KIE's live list once "
        "read); estimate_cost gives the exact price of a request. *Typical output* is one image (and what a request "
        "makes by default, when that is several), or a 5 s and an 8 s clip (the model's own length when it offers "
        'neither; "1 clip" when it sets the length itself), at the model\'s default settings, in credits and about USD '
        f"(blank when the price depends on an input's length or KIE publishes none). {UP_TO_MEANS} (KIE may charge "
        "more than its list for a picture given as a link, or for every picture a layer decomposition returns.)",
        "",
        names_text(offer.catalog, offer.live),
        "",
        "| Model id | Kind | API family | Capabilities | Price | Price source | Typical output (credits, USD) "
        "| Good for |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for spec in offer.models():
        caps = ", ".join(spec.capabilities)
        price = price_summary(spec, offer.live)
        source = price_source(spec, offer.live, simulated=offer.simulated)
        rows.append(
            f"| `{spec.id}` | {spec.kind} | {spec.family} | {caps} | {price} | {source} "
            f"| {typical_cell(spec, offer.price)} | {spec.good_for} |"
        )
    gone = offer.withdrawn()
    if gone:
        rows += ["", "Withdrawn by KIE (refused before anything is sent; the error names what to use instead):"]
        rows += [f"- `{entry['id']}` ({_when(entry)}){_instead(entry)}" for entry in gone]
    return "\n".join(rows) + "\n"


def names_text(catalog: Catalog | None = None, live: LiveCatalog | None = None) -> str:
    """How the tools' ``model`` argument is read: ids, titles, family short names and the names several models
    share (generated from the data, so this text and ``Catalog.resolve`` cannot disagree). With ``live``, a short
    name whose model KIE no longer sells (``live.is_gone``) is left out: a call naming it gets a stand-in
    (``generation.resolve_model``), which the listing cannot know before the call."""
    from .live import is_gone

    catalog = catalog if catalog is not None else load_catalog()
    short = "; ".join(
        f"{' or '.join(f'`{name}`' for name in names)} → `{model_id}`"
        for model_id, names in sorted(catalog.short_names().items(), key=lambda item: item[1][0])
        if not is_gone(live, model_id, catalog)
    )
    shared = "; ".join(
        f"`{name}` ({', '.join(f'`{model_id}`' for model_id in ids)})" for name, ids in catalog.shared_names().items()
    )
    return (
        "The tools' `model` takes a model id, its title or a short name (case does not matter; `-`, `_`, `.` and `/` "
        "read as spaces), or the last part of an id written as the id writes it (with a `-`, `_`, `.` or digit in it), "
        "which is read before any name: `nano-banana` is `google/nano-banana`, while `nano banana`, a name, is the one "
        "named below (a last part several ids end in, such as `text-to-video`, is refused with them all). A family's "
        "short name picks one model "
        f"of that family: {short}. A name several models share is refused with the candidates, and nothing is sent: "
        f"{shared}."
    )


def _when(entry: dict[str, Any]) -> str:
    """When a model was withdrawn: the data's date, or what KIE said of it live (``live.gone_words``)."""
    from .live import LIVE_LIST, REFUSED_CREATE, gone_words

    if entry["source"] in (LIVE_LIST, REFUSED_CREATE):
        return gone_words(entry["date"], entry["source"])
    return str(entry["date"])


def _instead(entry: dict[str, Any]) -> str:
    alternatives = entry.get("alternatives") or []
    return ": use " + ", ".join(f"`{a}`" for a in alternatives) if alternatives else ""


def model_document(spec: ModelSpec, offer: Offer | None = None) -> dict[str, object]:
    """One model's input fields, rules, price table and the sources they cite, JSON-ready; its price as
    ``price_summary`` and ``price_source`` say, and its typical outputs priced as estimate_cost quotes them. With
    KIE's live price feed, each rate of the table is at its live price (``catalogue_credits``: the bundled figure,
    where it differs)."""
    offer = offer or Offer()
    data = spec.model_dump(mode="json", exclude={"sources"})
    data["price_summary"] = price_summary(spec, offer.live)
    data["price_source"] = price_source(spec, offer.live, simulated=offer.simulated)
    data["typical_prices"] = [price.model_dump(exclude_none=True) for price in typical_prices(spec, offer.price)]
    if offer.live is not None and isinstance(data.get("price"), dict):
        for rate, (now, bundled, _) in zip(data["price"]["rates"], _rates(spec, offer.live), strict=True):
            if now != bundled:
                rate.update(credits=now, catalogue_credits=bundled)
    used = {spec.source, *(f.source for f in spec.fields.values()), *(r.source for r in spec.rules)}
    for media in (f.media for f in spec.fields.values() if f.media is not None):
        used.update([media.source, *(rule.source for rule in media.lengths)])
    for part in (spec.images, spec.price, spec.dialogue, spec.withdrawn, spec.followup):
        if part is not None:
            used.add(part.source)
    if spec.followup is not None:
        used.update(rule.source for rule in spec.followup.refuse)
    data["sources"] = {key: spec.sources[key].model_dump(exclude_none=True) for key in sorted(used)}  # read: when set
    return data


def model_table_json(offer: Offer | None = None) -> str:
    """Every model KIE sells, in full; the withdrawn ones only by id, date and what to use instead (``kie://models.json``);
    kept per offer (``_kept``)."""
    return _kept("json", offer or Offer(), _json)


def _json(offer: Offer) -> str:
    models = [model_document(spec, offer) for spec in offer.models()]
    return json.dumps({"models": models, "withdrawn": offer.withdrawn()}, indent=2)


START, END = "<!-- models:start -->", "<!-- models:end -->"


def with_model_table(readme: str) -> str:
    """``readme`` with the generated model table between its markers."""
    head, _, rest = readme.partition(START)
    _, _, tail = rest.partition(END)
    table = model_table_markdown().split("\n", 2)[2].strip()  # drop the document title
    return f"{head}{START}\n{table}\n{END}{tail}"


if __name__ == "__main__":  # python -m kie_mcp.catalog.tables README.md: refresh the README's model table
    import sys
    from pathlib import Path

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    target.write_text(with_model_table(target.read_text(encoding="utf-8")), encoding="utf-8")
