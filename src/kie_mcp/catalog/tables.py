"""The model table, generated from the catalogue data (for resources, list_models and the README)."""

from __future__ import annotations

import json

from .pricing import typical_prices, usd_text
from .registry import load_catalog
from .spec import ModelSpec


def price_summary(spec: ModelSpec) -> str:
    """e.g. '8-18 credits per task', '14-67 credits per second' or, priced per output (``n``), '4.8 credits per
    image'; 'price unknown' without a table."""
    if spec.price is None or not spec.price.rates:
        return "price unknown"
    credits = sorted({rate.credits for rate in spec.price.rates})
    span = _fmt(credits[0]) if len(credits) == 1 else f"{_fmt(credits[0])}-{_fmt(credits[-1])}"
    unit = spec.kind if spec.price.count_field and spec.price.unit == "task" else spec.price.unit
    return f"{span} credits per {unit}"


def typical_cell(spec: ModelSpec) -> str:
    """The table's USD column: '5 s $0.35 (70 cr), 8 s $0.56 (112 cr) at resolution=720p'; '' when unknown."""
    prices = typical_prices(spec)
    if not prices:
        return ""
    cells = ", ".join(f"{p.output.removesuffix(' clip')} {usd_text(p.usd)} ({_fmt(p.credits)} cr)" for p in prices)
    return f"{cells} at {prices[0].settings}" if prices[0].settings else cells


def model_table_markdown() -> str:
    rows = [
        "# KIE models in kie-mcp",
        "",
        "Prices are in KIE credits (1 credit is about $0.005) from dated snapshots of KIE's price list; "
        "estimate_cost gives the exact price of a request. *Typical output* is one image (and what a request makes "
        "by default, when that is several), or a 5 s and an 8 s clip (the model's own length when it offers "
        "neither), at the model's default settings; blank when the price depends on an input's length or KIE "
        "publishes none.",
        "",
        names_text(),
        "",
        "| Model id | Kind | API family | Capabilities | Price | Typical output (USD) | Good for |",
        "|---|---|---|---|---|---|---|",
    ]
    for spec in sorted(load_catalog().offered(), key=lambda s: (s.kind, s.id)):
        caps = ", ".join(spec.capabilities)
        rows.append(
            f"| `{spec.id}` | {spec.kind} | {spec.family} | {caps} | {price_summary(spec)} | {typical_cell(spec)} "
            f"| {spec.good_for} |"
        )
    gone = withdrawn_models()
    if gone:
        rows += ["", "Withdrawn by KIE (refused before anything is sent; the error names what to use instead):"]
        rows += [f"- `{spec.id}` ({spec.withdrawn.date}){_instead(spec)}" for spec in gone if spec.withdrawn]
    return "\n".join(rows) + "\n"


def names_text() -> str:
    """How the tools' ``model`` argument is read: ids, titles, family short names and the names several models
    share (generated from the data, so this text and ``Catalog.resolve`` cannot disagree)."""
    catalog = load_catalog()
    short = "; ".join(
        f"{' or '.join(f'`{name}`' for name in names)} → `{model_id}`"
        for model_id, names in sorted(catalog.short_names().items(), key=lambda item: item[1][0])
    )
    shared = "; ".join(
        f"`{name}` ({', '.join(f'`{model_id}`' for model_id in ids)})" for name, ids in catalog.shared_names().items()
    )
    return (
        "The tools' `model` takes a model id, its title or a short name (case does not matter; `-`, `_`, `.` and `/` "
        f"read as spaces). A family's short name picks one model of that family: {short}. A name several models "
        f"share is refused with the candidates, and nothing is sent: {shared}."
    )


def withdrawn_models() -> list[ModelSpec]:
    """The models KIE no longer sells, by id."""
    return sorted((spec for spec in load_catalog() if spec.withdrawn is not None), key=lambda s: s.id)


def _instead(spec: ModelSpec) -> str:
    alternatives = spec.withdrawn.alternatives if spec.withdrawn else []
    return ": use " + ", ".join(f"`{a}`" for a in alternatives) if alternatives else ""


def model_document(spec: ModelSpec) -> dict[str, object]:
    """One model's input fields, rules, price table and the sources they cite, JSON-ready."""
    data = spec.model_dump(mode="json", exclude={"sources"})
    data["price_summary"] = price_summary(spec)
    data["typical_prices"] = [price.model_dump() for price in typical_prices(spec)]
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


def model_table_json() -> str:
    """Every model KIE sells, in full; the withdrawn ones only by id, date and what to use instead."""
    models = [model_document(spec) for spec in sorted(load_catalog().offered(), key=lambda s: (s.kind, s.id))]
    withdrawn = [{"id": spec.id, **spec.withdrawn.model_dump()} for spec in withdrawn_models() if spec.withdrawn]
    return json.dumps({"models": models, "withdrawn": withdrawn}, indent=2)


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


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
