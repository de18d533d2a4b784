"""``kie-mcp catalog check``: drift between the catalogue and KIE's lists; a clean failure without network."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx2
import pytest

from kie_mcp.catalog import load_catalog
from kie_mcp.catalog.drift import compare, compare_cached, fetch_live, render
from kie_mcp.catalog.live import FeedRow, LiveCatalog, LiveModel
from kie_mcp.cli import main
from kie_mcp.sandbox import SANDBOX_API_KEY

CATALOG = load_catalog()
# The documented shape of GET /api/v1/models, as KIE answers it.
LIVE = [
    {
        "model": "nano-banana-2",
        "title": "Nano Banana 2",
        "pricingDesc": "8 credits for 1K, 12 credits for 2K, and 18 credits for 4K",
    },
    {"model": "nano-banana-pro", "title": "Nano Banana Pro", "pricingDesc": "20 credits for 1K-2K, 24 credits for 4K"},
    {"model": "brand-new/model", "title": "Brand New", "pricingDesc": "3 credits per image"},
]


def test_compare_reports_new_gone_and_changed_prices():
    drifts = compare(CATALOG, LIVE, [])
    kinds = {(d.kind, d.model) for d in drifts}
    assert ("new on KIE", "brand-new/model") in kinds
    assert ("price", "nano-banana-pro") in kinds  # 18 is no longer stated
    assert ("price", "nano-banana-2") not in kinds
    assert ("gone from KIE", "kling-3.0/video") in kinds
    assert not any(d.model == "veo3_fast" for d in drifts)  # product APIs are not in the market list
    table = render(drifts)
    assert "| new on KIE | `brand-new/model` |" in table


# Rows of KIE's own model list as fetched 2026-10-06 (model, title, pricingDesc, verbatim), for the models whose entries
# cite that capture: tests/data/kie-models-2026-10-06.json says where they were read.
CAPTURED_2026_10_06 = json.loads(
    (Path(__file__).parent / "data" / "kie-models-2026-10-06.json").read_text(encoding="utf-8")
)["models"]


def test_the_catalogue_states_the_prices_of_kies_own_model_list_of_2026_10_06():
    """The audit of 2026-12-07 read KIE's own model list of 2026-10-06: Seedance 1.0 Lite was quoted at Pro's prices
    (14 / 30 / 70 credits per 5 s where KIE says 2 / 4.5 / 10 a second), Kling 3.0 Omni with sound at Kling 3.0's 20
    and 27 credits a second (KIE's Omni text: 18 and 23), Veo 3.1 Quality 4K text to video at 380 (KIE: 370 in every
    mode), and Grok Image 2.0's segment map and segment edit were not catalogued. ``kie-mcp catalog check`` against
    those rows finds no drift now: every rate is a figure of KIE's text, read as a number ("4.0 credits" states a rate
    of 4), Veo 3.1's tiers are read from its unified model's text (veo-3-1), and nothing in them is new to the
    catalogue. (The capture holds a few of KIE's models, so the others read as gone from it.)"""
    drifts = [d for d in compare(CATALOG, CAPTURED_2026_10_06, []) if d.kind != "gone from KIE"]
    assert drifts == [], render(drifts)


def test_a_model_whose_own_kie_text_states_credits_has_a_price_on_file():
    """PixVerse V6 transition was quoted unknown ("KIE lists no price for it") while KIE's own text for it gives its
    per-second ladder: a price the catalogue lacks is no drift ``catalog check`` can show, so it is checked here."""
    unpriced = [
        spec.id
        for row in CAPTURED_2026_10_06
        if re.search(r"\d\s*credits", row["pricingDesc"])
        for spec in CATALOG
        if row["model"] in (spec.id, spec.unified.model if spec.unified else None) and spec.price is None
    ]
    assert unpriced == []
    listed = {spec.id for spec in CATALOG} | {spec.unified.model for spec in CATALOG if spec.unified}
    assert {row["model"] for row in CAPTURED_2026_10_06} <= listed


def test_public_price_records_count_as_stated_prices():
    records = [
        {"anchor": "https://kie.ai/market?model=nano-banana-pro", "creditPrice": "18", "creditUnit": "per image"}
    ]
    drifts = compare(CATALOG, LIVE, records)
    assert ("price", "nano-banana-pro") not in {(d.kind, d.model) for d in drifts}


async def test_fetch_live_reads_both_lists_over_http():
    def answer(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/api/v1/models":
            assert request.headers["Authorization"] == "Bearer k"
            return httpx2.Response(200, json={"code": 200, "msg": "success", "data": {"total": 3, "models": LIVE}})
        page = json.loads(request.content)["pageNum"]
        records = [{"anchor": "?model=z-image", "creditPrice": 0.8, "creditUnit": "per image"}] if page == 1 else []
        return httpx2.Response(200, json={"code": 200, "msg": "success", "data": {"records": records, "total": 1}})

    models, records = await fetch_live("https://api.kie.test", "k", transport=httpx2.MockTransport(answer))
    assert [m["model"] for m in models] == [m["model"] for m in LIVE]
    assert records[0]["creditPrice"] == 0.8


def test_without_network_it_says_so_and_exits_non_zero(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("KIE_API_KEY", "k")
    monkeypatch.setenv("KIE_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("KIE_WORKSPACE", str(tmp_path))
    assert main(["catalog", "check"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach KIE" in err and "Traceback" not in err


def test_a_wrong_base_url_path_is_named_as_the_address_not_a_task(monkeypatch, capsys, tmp_path, simulator_process):
    """The audit: KIE_BASE_URL with a wrong path answered 404 to the model list, and catalog check passed on KIE's
    advice for a 404 ("Check the task id; tasks older than 2 months are gone..", with two full stops)."""
    monkeypatch.setenv("KIE_API_KEY", SANDBOX_API_KEY)
    monkeypatch.setenv("KIE_BASE_URL", f"{simulator_process}/not-kie")
    monkeypatch.setenv("KIE_WORKSPACE", str(tmp_path))
    assert main(["catalog", "check"]) == 2
    err = capsys.readouterr().err
    assert "does not serve KIE's model list (404)" in err and "KIE_BASE_URL" in err, err
    assert "task id" not in err and ".." not in err and len(err.strip().splitlines()) == 1


def test_without_a_key_it_says_so(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("KIE_API_KEY", raising=False)
    monkeypatch.setenv("KIE_WORKSPACE", str(tmp_path))
    assert main(["catalog", "check"]) == 2
    assert "KIE_API_KEY" in capsys.readouterr().err


def _feed_rated():
    return [(s, r) for s in CATALOG.offered() if s.price for r in s.price.rates if r.feed]


def test_feed_rows_drift_when_their_price_changes_or_they_disappear():
    rated = _feed_rated()
    if len({r.feed for _, r in rated}) < 2:
        pytest.skip("the bundled data ties fewer than two rates to price-feed rows")
    (spec, changed) = rated[0]
    rows = {r.feed: {"modelDescription": r.feed, "creditPrice": str(r.credits)} for _, r in rated}
    gone = next(r for _, r in rated if r.feed != changed.feed)
    rows[changed.feed]["creditPrice"] = str(changed.credits + 5)
    del rows[gone.feed]
    drifts = compare(CATALOG, [], list(rows.values()))
    kinds = {(d.kind, d.detail) for d in drifts if d.kind.startswith("feed")}
    assert any(kind == "feed price" and changed.feed in detail for kind, detail in kinds)
    assert any(kind == "feed row gone" and gone.feed in detail for kind, detail in kinds)
    unchanged = compare(CATALOG, [], [{"modelDescription": r.feed, "creditPrice": r.credits} for _, r in rated])
    assert not any(d.kind.startswith("feed") and d.model == spec.id for d in unchanged)


def test_the_cache_is_compared_with_kie_and_used_when_kie_is_away():
    cache = LiveCatalog(
        fetched_at="2026-11-01T00:00:00Z",
        models={m["model"]: LiveModel.from_wire(m) for m in LIVE[:2]},
        feed=[FeedRow(description="old row", credits=3.0, anchor="?model=z-image")],
    )
    drifts = compare(CATALOG, LIVE, [{"modelDescription": "old row", "creditPrice": "4"}], cache=cache)
    details = [d.detail for d in drifts if d.kind == "cache"]
    assert any("lacks 1 model(s) KIE lists" in d and "catalog sync" in d for d in details)
    assert any("1 price-feed row(s)" in d for d in details)
    assert [d.kind for d in compare(CATALOG, LIVE, [], cache=LiveCatalog()) if d.kind == "cache"] == ["cache"]
    offline = compare_cached(CATALOG, cache)
    assert ("new on KIE", "brand-new/model") not in {(d.kind, d.model) for d in offline}  # the cache does not list it
    assert ("price", "nano-banana-pro") in {(d.kind, d.model) for d in offline}


async def test_a_price_feed_kie_will_not_serve_is_a_note_not_a_failure():
    def answer(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/api/v1/models":
            return httpx2.Response(200, json={"code": 200, "msg": "success", "data": {"total": 3, "models": LIVE}})
        assert "authorization" not in request.headers  # the public feed never gets the key
        return httpx2.Response(200, json={"code": 4030, "msg": "Not supported in the current region.", "data": None})

    notes: list[str] = []
    models, records = await fetch_live("https://api.kie.test", "k", httpx2.MockTransport(answer), notes)
    assert len(models) == 3 and records == []
    assert notes and "Not supported in the current region" in notes[0]


def test_a_check_without_kie_says_its_drift_is_against_the_cache_not_kie(
    monkeypatch, capsys, tmp_path, simulator_process
):
    """The audit: with KIE unreachable, stdout said "No drift: every catalogued Market model is listed by KIE" though
    only the workspace's cache had been compared (stderr and exit 2 were right). What is printed now says so."""
    monkeypatch.setenv("KIE_API_KEY", SANDBOX_API_KEY)
    monkeypatch.setenv("KIE_WORKSPACE", str(tmp_path))
    monkeypatch.setenv("KIE_BASE_URL", simulator_process)
    assert main(["catalog", "sync"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("KIE_BASE_URL", "http://127.0.0.1:9")  # KIE away: the cache is all there is
    assert main(["catalog", "check"]) == 2
    out = capsys.readouterr().out
    assert "listed by KIE" not in out, out
    assert "the cache of 20" in out and "KIE itself was not reached" in out, out
