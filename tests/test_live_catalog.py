"""The live catalogue: sync against the simulator, pacing, the cache, offline fallback, what the request path asks."""

from __future__ import annotations

import copy
import itertools
import json
import logging
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest

from kie_mcp.catalog import InvalidRequest, apply_defaults, build_input, check_input, load_catalog, price_input
from kie_mcp.catalog import openapi as oa
from kie_mcp.catalog.live import (
    LiveCatalog,
    LiveModel,
    SchemaEntry,
    cache_path,
    effective_rate,
    extra_models,
    health,
    is_withdrawn,
    live_price_input,
    live_rate,
    maybe_sync,
    models_in_use_from_journal,
    price_changes,
    spec_from_live,
    stricter_problems,
)
from kie_mcp.catalog.validate import when_matches
from kie_mcp.cli import _catalog_sync, main
from kie_mcp.config import sandbox_area
from kie_mcp.journal import Journal
from kie_mcp.kie import KieClient, KieError
from kie_mcp.kie.pacing import SlidingWindow
from kie_mcp.sandbox import SANDBOX_API_KEY, SandboxTransport, SimConfig, Simulator
from kie_mcp.sandbox.models import openapi_for
from kie_mcp.words import plain, timestamp

from .conftest import API, UPLOADS
from .test_every_model import minimal_arguments

CATALOG = load_catalog()
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
IN_USE = ["nano-banana-pro", "kling/v2-1-pro", "veo3_fast"]  # veo3_fast: a product API, not in KIE's model list
LOOKUPS = "/api/v1/models"
FEED = "/client/v1/model-pricing/page"


@pytest.fixture
def sim() -> Simulator:
    """A frozen clock: only the client's pacing (sleeping on the simulator's clock) moves time, KIE's 1/s budget
    for lookups counted on it too."""
    sim = Simulator(SimConfig(speed=0))
    sim.rate_clock = sim.now
    return sim


@pytest.fixture
async def kie(sim, transport):
    async def advance(seconds: float) -> None:
        sim.advance(max(seconds, 0.001))  # waiting = moving the simulated clock; a float step never stalls

    client = KieClient(
        api_key=SANDBOX_API_KEY,
        base_url=API,
        upload_base_url=UPLOADS,
        transport=transport,
        rate_limit_backoff=0.01,
        catalog_window=SlidingWindow(1, 1.1, clock=sim.now, sleep=advance),
    )
    yield client
    await client.aclose()


def feed_rated() -> list[tuple[Any, Any]]:
    """(spec, rate) of bundled rates tied to a price-feed row."""
    return [(s, r) for s in CATALOG.offered() if s.price for r in s.price.rates if r.feed]


async def synced(kie, **kwargs: Any) -> LiveCatalog:
    return await LiveCatalog().sync(kie, models_in_use=kwargs.pop("models_in_use", IN_USE), now=NOW, **kwargs)


# -- the client's read methods ----------------------------------------------------------------------


async def test_client_reads_every_catalogue_endpoint_in_kies_shapes(kie, sim):
    models = await kie.list_models()
    assert {"nano-banana-pro", "kling/v2-1-pro"} <= {m["model"] for m in models}
    assert all({"model", "title", "provider", "taskType", "pricingDesc"} <= set(m) for m in models)
    videos = await kie.list_models(task_type=["Text to Video", "Image to Video"], provider="Kling")
    assert videos and all(m["provider"] == "Kling" for m in videos)
    assert await kie.list_models(q="no such model anywhere") == []

    document = await kie.model_schema("kling/v2-1-pro")
    assert document["openapi"].startswith("3.1") and "/api/v1/jobs/createTask" in document["paths"]
    assert "credits" in (await kie.model_price("nano-banana-pro") or "")
    points = await kie.model_success_rate("nano-banana-pro")
    assert len(points) == 144 and {"start", "end", "successRate", "errorRate", "isNormal"} <= set(points[0])

    page = await kie.price_feed_page(1, 500)  # KIE caps pages at 100
    assert len(page["records"]) == 100 and page["total"] > 100 and page["pages"] >= 2

    paths = [r.path for r in sim.requests]
    assert "/api/v1/models/kling/v2-1-pro/schema" in paths  # the slash is not encoded
    assert all(not r.has_auth for r in sim.requests if r.path == FEED)  # the feed never gets the key
    assert all(r.has_auth for r in sim.requests if r.path.startswith(LOOKUPS))


async def test_client_quirks_null_schema_and_non_200_codes(kie, controls):
    await controls.post("catalog/schema", {"model": "nano-banana-pro"})
    assert await kie.model_schema("nano-banana-pro") is None  # openapi: null (not synced yet)
    with pytest.raises(KieError) as unknown:
        await kie.model_schema("no/such-model")
    assert unknown.value.code == 404
    with pytest.raises(KieError):
        await kie.model_schema("../credit")  # never a path outside the model's
    await controls.post("catalog/feed", {"regionBlocked": True})
    with pytest.raises(KieError) as blocked:
        await kie.price_feed_page(1)
    assert blocked.value.code == 4030


async def test_a_429_from_the_shared_budget_is_waited_out(kie, controls, sim):
    await controls.fault("any", kind="code", code=429)
    assert "nano-banana-pro" in {m["model"] for m in await kie.list_models()}
    assert [r.path for r in sim.requests].count(LOOKUPS) == 2  # refused once (not counted by KIE), then read


# -- sync --------------------------------------------------------------------------------------------


async def test_sync_reads_the_list_the_feed_the_schemas_and_the_success_rates(kie):
    live = await synced(kie)
    assert live.errors == []
    assert live.fetched_at == live.feed_at == live.attempted_at == timestamp(NOW)
    assert {"nano-banana-pro", "kling/v2-1-pro"} <= set(live.models)
    assert "veo3_fast" not in live.models  # product APIs are listed by KIE under other names
    assert set(live.schemas) == {"nano-banana-pro", "kling/v2-1-pro"}  # only models in use (no extras here)
    assert set(live.success) == {"nano-banana-pro", "kling/v2-1-pro"}
    assert live.feed and all(row.credits is not None for row in live.feed)
    assert live.models_in_use == IN_USE


async def test_catalogue_lookups_stay_one_per_second(kie, sim):
    live = await synced(kie)
    assert live.errors == []  # the simulator answers 429 to a second lookup within a second: none happened
    stamps = [r.at for r in sim.requests if r.path.startswith(LOOKUPS)]
    assert len(stamps) == 5  # list + 2 schemas + 2 success rates
    assert all(later - earlier >= 1.0 for earlier, later in itertools.pairwise(stamps))


async def test_pacing_window_counts_with_a_fake_clock():
    clock = {"now": 0.0}
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock["now"] += seconds

    window = SlidingWindow(1, 1.1, clock=lambda: clock["now"], sleep=sleep)
    times = []
    for _ in range(5):
        await window.acquire()
        times.append(clock["now"])
    assert times == pytest.approx([0.0, 1.1, 2.2, 3.3, 4.4])
    assert len(slept) == 4


async def test_sync_fetches_the_schema_of_a_live_model_the_bundled_data_lacks(kie, controls):
    await controls.post("catalog/extra", EXTRA)
    live = await synced(kie, models_in_use=[])
    assert set(live.schemas) == {"brand/new-image"}  # extras get their schema without being in use
    again = await live.sync(kie, models_in_use=[], now=NOW)
    assert again.errors == []  # an extra whose schema is cached is not fetched again


async def test_refresh_schemas_fetches_a_model_asked_for(kie):
    live = await synced(kie, models_in_use=[])
    assert "kling/v2-1-pro" not in live.schemas
    fresh = await live.refresh_schemas(kie, ["kling/v2-1-pro"], now=NOW)
    assert fresh.schema_of("kling/v2-1-pro") is not None and "kling/v2-1-pro" not in live.schemas


# -- the cache ---------------------------------------------------------------------------------------


async def test_cache_round_trip(kie, tmp_path):
    live = await synced(kie)
    path = cache_path(tmp_path)
    live.save(path)
    assert path == tmp_path / ".kie-mcp" / "catalog-live.json"
    assert LiveCatalog.load(path) == live
    assert json.loads(path.read_text())["fetched_at"] == "2026-12-02T12:00:00Z"
    assert [p.name for p in path.parent.iterdir()] == ["catalog-live.json"]  # no temporary file left
    assert SANDBOX_API_KEY not in path.read_text()


def test_a_failed_write_leaves_the_old_cache_whole(tmp_path, monkeypatch):
    path = cache_path(tmp_path)
    old = LiveCatalog(fetched_at="2026-11-01T00:00:00Z", models={"a/b": LiveModel(model="a/b")})
    old.save(path)

    def crash(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        LiveCatalog(fetched_at="2026-12-01T00:00:00Z").save(path)
    monkeypatch.undo()
    assert LiveCatalog.load(path) == old
    assert [p.name for p in path.parent.iterdir()] == ["catalog-live.json"]


def test_a_missing_or_corrupt_cache_loads_empty(tmp_path):
    path = cache_path(tmp_path)
    assert LiveCatalog.load(path) == LiveCatalog()
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert LiveCatalog.load(path) == LiveCatalog()
    path.write_text(json.dumps({"models": "not a mapping"}))
    assert LiveCatalog.load(path) == LiveCatalog()


# -- offline and errors --------------------------------------------------------------------------------


async def test_unreachable_kie_keeps_what_the_cache_had(kie):
    live = await synced(kie)
    later = NOW + timedelta(days=2)
    async with KieClient(api_key="k", base_url="http://127.0.0.1:9", upload_base_url="http://127.0.0.1:9") as offline:
        kept = await live.sync(offline, models_in_use=IN_USE, now=later)
    assert kept.models == live.models and kept.feed == live.feed and kept.schemas == live.schemas
    assert kept.fetched_at == live.fetched_at and kept.attempted_at == timestamp(later)
    assert {e.endpoint for e in kept.errors} == {"/api/v1/models", "/client/v1/model-pricing/page"}
    assert all("network" in e.message for e in kept.errors)


async def test_simulator_faults_are_recorded_and_the_old_data_kept(kie, controls):
    live = await synced(kie)
    await controls.fault("any", times=-1, kind="code", code=500)
    kept = await live.sync(kie, models_in_use=IN_USE, now=NOW + timedelta(days=1))
    assert kept.models == live.models and kept.feed == live.feed
    assert {e.code for e in kept.errors} == {500}


async def test_a_region_that_gets_no_price_feed_keeps_the_old_feed(kie, controls):
    live = await synced(kie)
    await controls.post("catalog/feed", {"regionBlocked": True})
    kept = await live.sync(kie, models_in_use=IN_USE, now=NOW + timedelta(days=1))
    assert kept.feed == live.feed and kept.feed_at == live.feed_at
    assert kept.fetched_at == timestamp(NOW + timedelta(days=1))  # the model list still came through
    assert [(e.endpoint, e.code) for e in kept.errors] == [("/client/v1/model-pricing/page", 4030)]


async def test_a_schema_kie_has_not_synced_is_cached_as_null(kie, controls):
    await controls.post("catalog/schema", {"model": "nano-banana-pro"})
    live = await synced(kie)
    assert live.schemas["nano-banana-pro"].openapi is None and live.errors == []
    spec = CATALOG.get("nano-banana-pro")
    assert stricter_problems(live, spec, {"prompt": "x", "resolution": "9K"}) == []  # nothing to be stricter with


# -- what the request path asks ---------------------------------------------------------------------


async def test_is_withdrawn_names_the_nearest_live_alternatives(kie, controls):
    assert is_withdrawn(LiveCatalog(), "kling/v2-1-pro") is None  # no list read yet: nothing is judged
    await controls.post("catalog/withdraw", {"model": "kling/v2-1-pro"})
    live = await synced(kie)
    alternatives = is_withdrawn(live, "kling/v2-1-pro")
    assert alternatives, "a withdrawn Kling video model has Kling video alternatives"
    assert all(a in live.models and live.models[a].kind == "video" for a in alternatives)
    assert alternatives[0].startswith("kling")
    assert is_withdrawn(live, "nano-banana-pro") is None
    assert is_withdrawn(live, "veo3_fast") is None  # a product API is never judged by the Market list
    assert "kling/v2-1-pro" not in live.schemas  # not fetched: KIE no longer lists it


async def test_stricter_problems_when_kie_narrowed_an_enum(kie):
    live = await synced(kie)
    spec = CATALOG.get("nano-banana-pro")
    wire = build_input(spec, prompt="a fox", resolution="4K", aspect_ratio="1:1")
    assert stricter_problems(live, spec, wire) == []
    document = live.schemas["nano-banana-pro"].openapi
    document["components"]["schemas"]["Input"]["properties"]["resolution"]["enum"] = ["1K", "2K"]
    problems = stricter_problems(live, spec, wire)
    assert [p.field for p in problems] == ["resolution"]
    assert '"4K" is not allowed by KIE\'s live schema of 2026-12-02' in problems[0].message
    assert "allowed: 1K, 2K." in problems[0].message


def schema_doc(input_schema: dict[str, Any], components: dict[str, Any] | None = None) -> dict[str, Any]:
    body = {"type": "object", "properties": {"model": {"type": "string"}, "input": input_schema}}
    return {
        "openapi": "3.1.0",
        "paths": {
            "/api/v1/jobs/createTask": {"post": {"requestBody": {"content": {"application/json": {"schema": body}}}}}
        },
        "components": {"schemas": components or {}},
    }


def test_a_bound_no_number_can_hold_leaves_the_other_bounds_in_force():
    """A live schema with a 400-digit integer for one bound: that bound is ignored, the rest still apply (it used
    to void the whole check, so KIE's narrower limits were no longer seen before the spend)."""
    huge = 10**400
    document = schema_doc(
        {
            "type": "object",
            "properties": {
                "prompt": {"type": "string", "maxLength": 10, "minLength": huge},
                "steps": {"type": "integer", "minimum": 1, "maximum": huge},
                "seed": {"type": "integer", "maximum": 99},
            },
        }
    )
    problems = {p.field: p.message for p in oa.check(document, {"prompt": "x" * 11, "steps": 5, "seed": 100})}
    assert set(problems) == {"prompt", "seed"}
    assert "at most 10" in problems["prompt"] and "maximum 99" in problems["seed"]


def test_stricter_checks_required_limits_refs_and_one_of():
    document = schema_doc(
        {"$ref": "#/components/schemas/Input%20"},  # percent-encoded, and a key ending in a space
        {
            "Input ": {
                "type": "object",
                "required": ["prompt", "mode"],
                "properties": {
                    "prompt": {"type": "string", "maxLength": 10},
                    "mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
                    "steps": {"$ref": "#/components/schemas/Steps"},
                    "urls": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
                    "seed": {"type": "integer", "exclusiveMinimum": 0},
                },
            },
            "Steps": {"type": "integer", "minimum": 1, "maximum": 50},
        },
    )
    assert oa.check(document, {"prompt": "short", "steps": 20}) == []  # mode is defaulted by KIE
    problems = {p.field: p.message for p in oa.check(document, {"steps": 60, "urls": ["1", "2", "3"], "seed": 0})}
    assert set(problems) == {"prompt", "steps", "urls", "seed"}
    assert "required" in problems["prompt"] and "maximum 50" in problems["steps"]
    assert "at most 2" in problems["urls"] and "greater than 0" in problems["seed"]
    assert [p.field for p in oa.check(document, {"prompt": "x" * 11})] == ["prompt"]
    with pytest.raises(oa.SchemaError):
        oa.pointer(document, "#/components/schemas/Input")  # never trimmed

    one_of = schema_doc(
        {
            "oneOf": [
                {"type": "object", "required": ["task_id"], "properties": {"task_id": {"type": "string"}}},
                {
                    "type": "object",
                    "required": ["image_url", "prompt"],
                    "properties": {"image_url": {"type": "string"}, "prompt": {"type": "string"}},
                },
            ]
        }
    )
    assert oa.check(one_of, {"task_id": "t"}) == []
    assert oa.check(one_of, {"image_url": "u", "prompt": "p"}) == []
    assert oa.check(one_of, {"prompt": "p"})  # neither branch is satisfied
    mixed = oa.check(one_of, {"task_id": "t", "prompt": "p"})
    assert any("do not mix" in p.message for p in mixed)


@pytest.mark.parametrize(
    "document",
    [
        {},
        {"paths": []},
        {"paths": {"/api/v1/jobs/createTask": "text"}},
        {"paths": {"/api/v1/jobs/createTask": {"post": {"requestBody": {"$ref": "#/nowhere"}}}}},
        schema_doc({"$ref": "#/components/schemas/A"}, {"A": {"$ref": "#/components/schemas/A"}}),  # a cycle
        schema_doc({"type": "object", "properties": ["not", "a", "mapping"], "required": 5}),
        schema_doc({"type": "object", "properties": {"prompt": {"enum": "abc", "maxLength": "ten"}}}),
    ],
)
def test_a_live_schema_kie_mcp_cannot_read_never_blocks_or_breaks(document):
    spec = CATALOG.get("nano-banana-pro")
    live = LiveCatalog(
        models={"x/y": LiveModel(model="x/y", task_types=["Text to Image"])},
        schemas={s: SchemaEntry(fetched_at="2026-12-02T00:00:00Z", openapi=document) for s in ("x/y", spec.id)},
    )
    assert stricter_problems(live, spec, {"prompt": "a fox", "resolution": "1K"}) == []
    assert extra_models(live) == [] or all(m.id == "x/y" for m in extra_models(live))


def wire_for(spec: Any, rate: Any) -> dict[str, Any] | None:
    """A wire input priced by exactly this rate (from the model's defaults and the rate's conditions), if any."""
    wire = {**apply_defaults(spec, {}), **{k: v[0] if isinstance(v, list) else v for k, v in rate.when.items()}}
    if any("#" in k for k in rate.when):
        return None
    first = next((r for r in spec.price.rates if when_matches(r.when, wire)), None)
    return wire if first is rate and price_input(spec, wire).known else None


async def test_live_rate_follows_a_changed_price_and_loses_a_removed_row(kie, controls):
    rated = [(s, r, w) for s, r in feed_rated() if (w := wire_for(s, r)) is not None]
    if len({r.feed for _, r, _ in rated}) < 2:
        pytest.skip("the bundled data ties fewer than two priceable rates to price-feed rows")
    spec, changed, changed_wire = rated[0]
    gone_spec, gone, gone_wire = next(x for x in rated if x[1].feed != changed.feed)
    await controls.post("catalog/feed", {"description": changed.feed, "credits": changed.credits + 7})
    await controls.post("catalog/feed", {"description": gone.feed, "credits": None})
    live = await synced(kie, models_in_use=[])
    found = live_rate(live, f"  {changed.feed.upper()} ")  # case and spacing do not matter
    assert found is not None and found.credits == changed.credits + 7 and found.date == "2026-12-02"
    assert live_rate(live, gone.feed) is None
    verdict = effective_rate(live, spec, changed)
    assert (verdict.state, verdict.credits) == ("live", changed.credits + 7)
    assert effective_rate(live, gone_spec, gone).state == "unknown"
    assert effective_rate(live, gone_spec, gone).credits is None
    assert effective_rate(LiveCatalog(), spec, changed).credits == changed.credits  # no feed read: bundled price

    bundled = price_input(spec, changed_wire)
    quoted = live_price_input(live, spec, changed_wire)
    assert quoted.known and quoted.credits == pytest.approx(bundled.credits / changed.credits * (changed.credits + 7))
    assert quoted.source == f"KIE price feed row {plain(changed.feed)}" and quoted.source_date == "2026-12-02"
    assert "the bundled data said" in quoted.breakdown
    lost = live_price_input(live, gone_spec, gone_wire)
    assert not lost.known and lost.credits is None and "no longer has" in lost.breakdown
    assert live_price_input(LiveCatalog(), spec, changed_wire) == bundled

    changes = {(c.feed, c.live) for c in price_changes(live)}
    assert (changed.feed, changed.credits + 7) in changes and (gone.feed, None) in changes


async def test_health_is_the_recent_success_rate(kie, controls):
    await controls.post("catalog/success-rate", {"model": "kling/v2-1-pro", "successRate": 42.5})
    await controls.post("catalog/success-rate", {"model": "nano-banana-pro", "successRate": None})
    live = await synced(kie)
    assert health(live, "kling/v2-1-pro") == pytest.approx(0.425)
    assert health(live, "nano-banana-pro") is None  # no monitoring data is not zero success
    assert health(live, "veo3_fast") is None
    await controls.post("catalog/success-rate", {"model": "nano-banana-pro", "reset": True})
    assert health(await synced(kie), "nano-banana-pro") == pytest.approx(0.99)  # the simulator's default


EXTRA_DOC = schema_doc(
    {"$ref": "#/components/schemas/Input"},
    {
        "Input": {
            "type": "object",
            "required": ["prompt"],
            "properties": {
                "prompt": {"type": "string", "maxLength": 2000, "description": "What to draw"},
                "aspect_ratio": {"type": "string", "enum": ["1:1", "16:9", "9:16"], "default": "1:1"},
                "image_urls": {"type": "array", "items": {"type": "string", "format": "uri"}, "maxItems": 4},
                "num_images": {"type": "integer", "minimum": 1, "maximum": 4, "default": 1},
                "style": {"type": "object"},  # nothing kie-mcp can represent: left out
            },
        }
    },
)
EXTRA = {
    "model": "brand/new-image",
    "title": "Brand New Image API — the best images",
    "provider": "Brand",
    "taskType": ["Text to Image", "Image to Image"],
    "pricingDesc": "Each image costs 4 credits (0.02 USD) per image.",
    "openapi": EXTRA_DOC,
}


async def test_extra_models_build_a_usable_model_spec(kie, controls):
    await controls.post("catalog/extra", EXTRA)
    await controls.post(
        "catalog/extra",
        {
            **EXTRA,
            "model": "brand/new-video",
            "taskType": ["Text to Video"],
            "pricingDesc": "5 s: 20 credits; 10 s: 40 credits",
        },
    )
    await controls.post("catalog/extra", {**EXTRA, "model": "brand/unsynced", "openapi": None})
    await controls.post("catalog/extra", {**EXTRA, "model": "brand/music", "taskType": ["Text to Music"]})
    live = await synced(kie, models_in_use=[])
    specs = {s.id: s for s in extra_models(live)}
    assert set(specs) == {"brand/new-image", "brand/new-video"}  # no schema, or not image/video: not offered

    spec = specs["brand/new-image"]
    assert (spec.family, spec.kind, spec.title) == ("market", "image", "Brand New Image API")
    assert spec.capabilities == ["image-to-image", "text-to-image"]
    assert set(spec.fields) == {"prompt", "aspect_ratio", "image_urls", "num_images"}
    assert spec.fields["aspect_ratio"].values == ["1:1", "16:9", "9:16"]
    assert spec.fields["prompt"].max_length == 2000 and spec.fields["prompt"].required
    assert spec.images is not None and spec.images.to == ["image_urls"] and spec.images.max == 4
    assert spec.sources["live"].ref.startswith("KIE live schema of 2026-12-02")
    wire = build_input(
        spec, prompt="a red fox", aspect_ratio="16:9", images=["https://x/a.png"], options={"num_images": 2}
    )
    assert wire == {"prompt": "a red fox", "aspect_ratio": "16:9", "image_urls": ["https://x/a.png"], "num_images": 2}
    quote = price_input(spec, wire)
    assert quote.known and quote.credits == 8  # 4 credits per image x 2 images
    assert stricter_problems(live, spec, wire) == []

    video = specs["brand/new-video"]
    assert video.kind == "video" and video.price is None  # two prices in the text: unknown, never guessed
    assert not price_input(video, {"prompt": "x"}).known


INT = {"type": "integer", "minimum": 1, "maximum": 4, "default": 1}


def with_counts(price: str, **counts: dict[str, Any]) -> dict[str, Any]:
    """``EXTRA`` with its ``num_images`` replaced by ``counts`` (name: JSON schema) and the price text ``price``."""
    document = copy.deepcopy(EXTRA_DOC)
    fields = document["components"]["schemas"]["Input"]["properties"]
    del fields["num_images"]
    fields.update(counts)
    return {**EXTRA, "pricingDesc": price, "openapi": document}


@pytest.mark.parametrize(
    ("model", "options", "credits"),
    [
        # not output counts: the price holds whatever they are
        (with_counts("4 credits per image.", num_inference_steps={"type": "integer", "default": 28}), {}, 4),
        (with_counts("4 credits per image.", seed={"type": "integer"}), {"seed": 42}, 4),
        (with_counts("4 credits per image.", n_frames={"type": "string", "enum": ["10", "15"]}), {"n_frames": "15"}, 4),
        # a documented count name, whole numbers, per-image wording: price x count
        (with_counts("4 credits per image.", n={"type": "string", "enum": ["1", "2", "4"]}), {"n": "4"}, 16),
        (with_counts("Each image costs 4 credits", num_images=INT), {"num_images": 3}, 12),
        # anything else that looks like a count: unknown above 1, known at 1
        (with_counts("4 credits per image.", batch_size=INT), {"batch_size": 2}, None),
        (with_counts("4 credits per image.", imageCount=INT), {"imageCount": 3}, None),
        (with_counts("4 credits per image.", imageCount=INT), {"imageCount": 1}, 4),
        (with_counts("4 credits per image.", variants=INT), {"variants": 2}, None),
        (with_counts("4 credits per image.", num_images={"type": "number"}), {"num_images": 2}, None),
        (with_counts("4 credits per image generation", num_images=INT), {"num_images": 2}, None),
        (with_counts("Each image-to-image request costs 4 credits", num_images=INT), {"num_images": 2}, None),
        (with_counts("4 credits per video", num_images=INT), {"num_images": 2}, None),  # not this model's output
        (with_counts("4 credits per request", num_images={**INT, "default": 2}), {}, None),  # its default is 2
        (with_counts("4 credits per image.", num_images=INT, batch_size=INT), {"num_images": 2}, None),  # which?
        (with_counts("4 credits per image.", num_images=INT, batch_size=INT), {"batch_size": 2}, None),
        (with_counts("4 credits per image.", num_images=INT, batch_size=INT), {"num_images": 1, "batch_size": 1}, 4),
        # a video model: "per video" is per output, "per image" is not its output
        ({**with_counts("20 credits per video", n=INT), "taskType": ["Text to Video"]}, {"n": 2}, 40),
        ({**with_counts("20 credits per image", n=INT), "taskType": ["Text to Video"]}, {"n": 2}, None),
        ({**with_counts("20 credits per image", n=INT), "taskType": ["Text to Video"]}, {"n": 1}, 20),
    ],
)
async def test_a_live_only_price_multiplies_only_a_count_it_can_read_and_is_unknown_for_any_other(
    kie, controls, model, options, credits
):
    await controls.post("catalog/extra", model)
    [spec] = extra_models(await synced(kie, models_in_use=[]))
    quote = live_price_input(LiveCatalog(), spec, build_input(spec, prompt="a red fox", options=options))
    assert (quote.known, quote.credits) == (credits is not None, credits), quote.breakdown


async def test_a_listed_price_too_large_to_be_a_number_prices_nothing(kie, controls):
    await controls.post("catalog/extra", {**EXTRA, "pricingDesc": f"Each image costs {'9' * 400} credits."})
    live = await synced(kie, models_in_use=[])
    [spec] = extra_models(live)
    assert spec.price is None and not price_input(spec, {"prompt": "x"}).known  # unknown, never "inf credits"


def test_a_bundled_model_survives_the_round_trip_through_its_live_schema():
    for spec in (s for s in CATALOG.offered() if s.family == "market"):
        document = openapi_for(spec, API)
        live = LiveCatalog(
            models={spec.id: LiveModel(model=spec.id, title=spec.title, task_types=[f"Text to {spec.kind}"])},
            schemas={spec.id: SchemaEntry(fetched_at="2026-12-02T00:00:00Z", openapi=document)},
        )
        built = spec_from_live(live, spec.id)
        assert built is not None, spec.id
        kept = {n for n, f in spec.fields.items() if f.type != "objects"}
        assert kept <= set(built.fields), spec.id
        for name in kept:
            ours, theirs = spec.fields[name], built.fields[name]
            assert (theirs.required, theirs.default, theirs.min, theirs.max) == (
                ours.required,
                ours.default,
                ours.min,
                ours.max,
            ), (spec.id, name)
            if ours.type == "enum":
                assert theirs.values == ours.values, (spec.id, name)
        arguments = minimal_arguments(spec)
        try:
            wire = build_input(
                spec,
                prompt=arguments["prompt"] or None,
                images=arguments.get("images", ()),
                options=arguments.get("options"),
            )
        except InvalidRequest:
            continue  # a cross-field rule needs more than the minimal arguments; test_every_model covers it
        assert stricter_problems(live, spec, wire) == [], spec.id  # the bundled data's own schema agrees
        assert check_input(built, {k: v for k, v in wire.items() if k in built.fields}) == [], spec.id


# -- background sync ---------------------------------------------------------------------------------


async def test_maybe_sync_only_when_the_cache_is_a_day_old(kie, sim, tmp_path):
    path = cache_path(tmp_path)
    first = await maybe_sync(kie, path, IN_USE, now=NOW)
    assert first is not None and LiveCatalog.load(path) == first
    count = len(sim.requests)
    assert await maybe_sync(kie, path, IN_USE, now=NOW + timedelta(hours=23)) is None
    assert len(sim.requests) == count  # a fresh cache: KIE is not asked
    later = await maybe_sync(kie, path, IN_USE, now=NOW + timedelta(hours=25))
    assert later is not None and later.fetched_at == timestamp(NOW + timedelta(hours=25))


async def test_maybe_sync_never_raises_and_does_not_hammer_when_offline(tmp_path, monkeypatch):
    path = cache_path(tmp_path)
    async with KieClient(api_key="k", base_url="http://127.0.0.1:9", upload_base_url="http://127.0.0.1:9") as offline:
        failed = await maybe_sync(offline, path, [], now=NOW)
        assert failed is not None and failed.models is None and failed.errors
        assert await maybe_sync(offline, path, [], now=NOW + timedelta(minutes=30)) is None  # tried a moment ago

        async def boom(*args: Any, **kwargs: Any) -> LiveCatalog:
            raise RuntimeError("anything at all")

        monkeypatch.setattr(LiveCatalog, "sync", boom)
        assert await maybe_sync(offline, path, [], now=NOW + timedelta(hours=2)) is None


async def test_a_background_sync_that_failed_is_logged_as_failed(tmp_path, caplog):
    """The audit: offline, the server logged "KIE's live model list and prices were refreshed (None)"."""
    from types import SimpleNamespace

    from kie_mcp.runtime import _sync_catalog

    runtime = SimpleNamespace(
        settings=SimpleNamespace(workspace=tmp_path, sandbox=False),
        live=None,
        catalog=None,
        sync_starts=lambda: None,
        prices_tried=lambda live: None,
    )
    async with KieClient(api_key="k", base_url="http://127.0.0.1:9", upload_base_url="http://127.0.0.1:9") as offline:
        with caplog.at_level(logging.INFO, logger="kie_mcp"):
            await _sync_catalog(runtime, offline)  # type: ignore[arg-type]
    said = [record.getMessage() for record in caplog.records if record.name == "kie_mcp.runtime"]
    assert said and "could not be refreshed" in said[0] and "/api/v1/models" in said[0], said
    assert not any("were refreshed" in line for line in said)


async def test_a_sync_that_cannot_be_saved_is_one_warning_without_a_traceback(kie, tmp_path, caplog):
    """A workspace kie-mcp cannot write (read-only, a full disk): the sync is not kept, said in one line."""
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache's folder should be")
    with caplog.at_level(logging.WARNING, logger="kie_mcp"):
        assert await maybe_sync(kie, blocked / "catalog-live.json", IN_USE, now=NOW) is None
    warned = [record for record in caplog.records if "could not be saved" in record.getMessage()]
    assert warned and warned[0].exc_info is None


def test_models_in_use_come_from_the_journal(tmp_path):
    assert models_in_use_from_journal(tmp_path) == []
    journal = Journal.for_workspace(tmp_path)
    journal.save_task("{}", task_id="t1", model="kling/v2-1-pro", state="queued")
    journal.save_task("{}", task_id="t2", model="nano-banana-pro", state="queued")
    journal.close()
    assert set(models_in_use_from_journal(tmp_path)) == {"kling/v2-1-pro", "nano-banana-pro"}


# -- the CLI -----------------------------------------------------------------------------------------


def test_catalog_sync_in_process_against_the_sandbox(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("KIE_WORKSPACE", str(tmp_path))
    monkeypatch.delenv("KIE_API_KEY", raising=False)
    assert main(["--sandbox", "catalog", "sync", "--model", "nano-banana-pro"]) == 0
    out = capsys.readouterr().out
    assert "models live:" in out and "withdrawn from the bundled catalogue: 0" in out
    assert "schemas fetched: 1" in out and "errors: none" in out
    live = LiveCatalog.load(cache_path(sandbox_area(tmp_path)))  # the sandbox's own cache
    assert live.has_list and live.has_feed and "nano-banana-pro" in live.schemas
    assert not cache_path(tmp_path).exists()  # the real workspace's is left alone


def test_catalog_sync_offline_is_one_line_and_exit_2(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("KIE_WORKSPACE", str(tmp_path))
    monkeypatch.setenv("KIE_API_KEY", "k")
    monkeypatch.setenv("KIE_BASE_URL", "http://127.0.0.1:9")
    assert main(["catalog", "sync"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1 and "Traceback" not in captured.err
    assert "cannot read KIE's model list" in captured.err
    monkeypatch.delenv("KIE_API_KEY")
    assert main(["catalog", "sync"]) == 2
    assert "KIE_API_KEY" in capsys.readouterr().err


def test_catalog_check_falls_back_to_the_cache_when_kie_is_unreachable(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("KIE_WORKSPACE", str(tmp_path))
    monkeypatch.setenv("KIE_API_KEY", SANDBOX_API_KEY)  # an earlier sync of this workspace, against the simulator
    assert _catalog_sync([], transport=SandboxTransport(Simulator(SimConfig(speed=30.0)))) == 0
    capsys.readouterr()
    monkeypatch.setenv("KIE_API_KEY", "k")
    monkeypatch.setenv("KIE_BASE_URL", "http://127.0.0.1:9")
    assert main(["catalog", "check"]) == 2
    captured = capsys.readouterr()
    assert "Showing the drift against the cache of" in captured.err and "Traceback" not in captured.err
    assert captured.out.strip()  # the table (or "No drift")


@pytest.mark.stdio
def test_catalog_sync_subprocess_against_kie_mcp_sim(simulator_process, tmp_path):
    script = shutil.which("kie-mcp", path=str(Path(sys.executable).parent))
    base = simulator_process
    env = {
        **os.environ,
        "KIE_BASE_URL": base,
        "KIE_UPLOAD_BASE_URL": base,
        "KIE_API_KEY": SANDBOX_API_KEY,
        "KIE_WORKSPACE": str(tmp_path),
    }
    done = subprocess.run(
        [script, "catalog", "sync", "--model", "kling/v2-1-pro"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "models live:" in done.stdout and "schemas fetched: 1" in done.stdout
    requests = httpx2.get(f"{base}/__sim/requests", timeout=5).json()["requests"]
    stamps = [r["at"] for r in requests if r["path"].startswith(LOOKUPS)]
    assert len(stamps) == 3 and all(b - a >= 1.0 for a, b in itertools.pairwise(stamps))
    assert LiveCatalog.load(cache_path(tmp_path)).schema_of("kling/v2-1-pro") is not None
