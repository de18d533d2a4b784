"""The model table, generated from the catalogue data (for resources, list_models and the README)."""

from __future__ import annotations

import json

from .registry import load_catalog
from .spec import ModelSpec


def price_summary(spec: ModelSpec) -> str:
    """e.g. '8-18 credits per task' or '14-67 credits per second'; 'price unknown' without a table."""
    if spec.price is None or not spec.price.rates:
        return "price unknown"
    credits = sorted({rate.credits for rate in spec.price.rates})
    span = _fmt(credits[0]) if len(credits) == 1 else f"{_fmt(credits[0])}-{_fmt(credits[-1])}"
    return f"{span} credits per {spec.price.unit}"


def model_table_markdown() -> str:
    rows = [
        "# KIE models in kie-mcp",
        "",
        "Prices are in KIE credits (1 credit is about $0.005) from dated snapshots of KIE's price list; "
        "estimate_cost gives the exact price of a request.",
        "",
        "| Model id | Kind | API family | Capabilities | Price | Good for |",
        "|---|---|---|---|---|---|",
    ]
    for spec in sorted(load_catalog().offered(), key=lambda s: (s.kind, s.id)):
        caps = ", ".join(spec.capabilities)
        rows.append(f"| `{spec.id}` | {spec.kind} | {spec.family} | {caps} | {price_summary(spec)} | {spec.good_for} |")
    gone = withdrawn_models()
    if gone:
        rows += ["", "Withdrawn by KIE (refused before anything is sent; the error names what to use instead):"]
        rows += [f"- `{spec.id}` ({spec.withdrawn.date}){_instead(spec)}" for spec in gone if spec.withdrawn]
    return "\n".join(rows) + "\n"


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
    used = {spec.source, *(f.source for f in spec.fields.values()), *(r.source for r in spec.rules)}
    for part in (spec.images, spec.price, spec.dialogue, spec.withdrawn):
        if part is not None:
            used.add(part.source)
    data["sources"] = {key: spec.sources[key].model_dump() for key in sorted(used)}
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
