"""Promise: what kie-mcp takes, refuses and says of a model is what KIE's own request schemas say (docs.kie.ai, as
crawled from its llms.txt on 2026-08-12 into kelvincushman/kie-cli's catalog.json), and a model KIE no longer offers
is said to be so, charged nothing and refused from then on.

The audit of 2026-12-06 compared the catalogue with those schemas and found:

- MiniMax H3 image to video sent no prompt (KIE requires one, 1-7000 characters), capped it at kie-mcp's default 5000,
  and required a first frame where KIE takes a first frame, a last frame or both; reference to video capped the
  prompt at 5000 and required a reference image where KIE takes reference images, videos or both.
- PixVerse V6 reference to video took any aspect_ratio (a paid call KIE refuses); Qwen Image 3.0 any output_format
  (KIE: png or jpeg); OmniHuman 1.5 prompts up to 1000 characters (KIE's schema: 300, its prose: 1000).
- Wan 2.7 r2v required a reference image (KIE: images or videos, at most 5 together) and took 4 reference videos.
- ``duration: -1`` (KIE's auto length) on Seedance 2 and Wan 3.0 was refused as "out of range", as if KIE had no such
  value, rather than because its cost cannot be quoted.
- KIE's 422 "The page does not exist or is not published" to a create was answered "KIE found the request invalid.
  Fix the field it names": there is no field to fix, the model is not offered. Ideogram V3 Reframe's docs page has
  been gone since 2026-08-12, which nothing told the user.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import anyio
import pytest

from kie_mcp.catalog import InvalidRequest, build_input, check_input, load_catalog, price_input
from kie_mcp.catalog.live import LiveCatalog, LiveModel, is_gone, is_withdrawn, still_sold
from kie_mcp.kie import Category, KieError
from kie_mcp.words import timestamp

from .conftest import answering, eras_in_turn, text_of

CATALOG = load_catalog()
IMG, LAST, VID = "https://example.com/first.png", "https://example.com/last.png", "https://example.com/ref.mp4"
H3_I2V, H3_R2V, WAN_R2V = "minimax-h3/image-to-video", "minimax-h3/reference-to-video", "wan/2-7-r2v"
REFRAME = "ideogram/v3-reframe"
KIE_SCHEMAS = "kelvincushman/kie-cli internal/kiecatalog/catalog.json, commit 7035660 of 2026-08-12"
AUTO_DURATION = [
    "bytedance/seedance-2",
    "bytedance/seedance-2-5",
    "bytedance/seedance-2-fast",
    "bytedance/seedance-2-mini",
    "wan/3-0-video",
    "wan/3-0-video-prime",
]


def problems_of(model_id: str, **arguments) -> dict[str, str]:
    with pytest.raises(InvalidRequest) as caught:
        build_input(CATALOG.get(model_id), **arguments)
    return {problem.field: problem.message for problem in caught.value.problems}


def cites_kies_schemas(model_id: str, field: str) -> bool:
    spec = CATALOG.get(model_id)
    source = spec.source_of(spec.fields[field].source)
    return KIE_SCHEMAS in source.ref and source.date == "2026-08-12" and source.read == "2026-12-06"


# -- the data, model by model ----------------------------------------------------------------------------------------


def test_minimax_h3_image_to_video_needs_a_prompt_of_up_to_7000_characters_and_a_first_or_a_last_frame():
    spec = CATALOG.get(H3_I2V)
    assert problems_of(H3_I2V, images=[IMG]) == {"prompt": f"is required by {H3_I2V}."}
    assert build_input(spec, prompt="x" * 7000, images=[IMG])["prompt"] == "x" * 7000  # was refused past 5000
    assert "the limit is 7000" in problems_of(H3_I2V, prompt="x" * 7001, images=[IMG])["prompt"]
    last_only = build_input(spec, prompt="the door closes", options={"last_frame_url": LAST})
    assert "first_frame_url" not in last_only and last_only["last_frame_url"] == LAST
    assert price_input(spec, last_only).credits == 48  # 8 credits/s x 6 s, as from a first frame
    both = build_input(spec, prompt="the door closes", images=[IMG, LAST])
    assert (both["first_frame_url"], both["last_frame_url"]) == (IMG, LAST)
    assert problems_of(H3_I2V, prompt="x") == {
        "images": f"{H3_I2V} needs at least 1 input image(s), or options.last_frame_url; for a video from the prompt "
        "alone, use minimax-h3/text-to-video, gemini-omni-video, grok-imagine/text-to-video."
    }
    # neither frame (a wire without one): KIE's "Either first_frame_url or last_frame_url must be provided"
    [neither] = check_input(spec, {"prompt": "x", "duration": 6, "resolution": "768P"})
    assert neither.field == "last_frame_url" and "a first frame, a last frame or both" in neither.message
    assert spec.fields["prompt"].required and spec.fields["duration"].required
    assert cites_kies_schemas(H3_I2V, "prompt") and cites_kies_schemas(H3_I2V, "first_frame_url")


def test_minimax_h3_says_kie_defaults_to_2k_and_kie_mcp_sends_768p():
    spec = CATALOG.get(H3_I2V)
    source = spec.source_of(spec.fields["resolution"].source)
    assert "KIE documents no default" not in source.ref and "default resolution to 2K" in source.ref
    assert build_input(spec, prompt="x", images=[IMG])["resolution"] == "768P"


def test_minimax_h3_reference_to_video_takes_reference_images_or_videos_and_prompts_of_up_to_7000():
    spec = CATALOG.get(H3_R2V)
    wire = build_input(spec, prompt="x" * 7000, options={"reference_video_urls": [VID]})
    assert "reference_image_urls" not in wire and wire["reference_video_urls"] == [VID]
    assert build_input(spec, prompt="x", images=[IMG])["reference_image_urls"] == [IMG]
    assert "the limit is 7000" in problems_of(H3_R2V, prompt="x" * 7001, images=[IMG])["prompt"]
    assert problems_of(H3_R2V, prompt="x") == {
        "images": f"{H3_R2V} needs at least 1 input image(s), or options.reference_video_urls."
    }
    audio_alone = problems_of(H3_R2V, prompt="x", options={"reference_audio_urls": ["https://example.com/v.mp3"]})
    assert audio_alone["images"] == f"{H3_R2V} needs at least 1 input image(s), or options.reference_video_urls."
    [none] = check_input(spec, {"prompt": "x", "duration": 6, "resolution": "768P", "aspect_ratio": "16:9"})
    assert none.field == "reference_image_urls" and "reference audio needs one of them" in none.message
    assert not spec.fields["prompt"].max_length_default and cites_kies_schemas(H3_R2V, "prompt")


def test_pixverse_v6_reference_to_video_takes_only_kies_eight_aspect_ratios():
    spec = CATALOG.get("pixverse-v6/reference-to-video")
    references = {"image_references": [{"image_url": IMG, "type": "subject", "ref_name": "hero"}]}
    for ratio in ("16:9", "4:3", "1:1", "3:4", "9:16", "2:3", "3:2", "21:9"):
        assert build_input(spec, prompt="@hero walks", aspect_ratio=ratio, options=references)["aspect_ratio"] == ratio
    refused = problems_of(
        "pixverse-v6/reference-to-video", prompt="@hero walks", aspect_ratio="5:4", options=references
    )
    assert refused["aspect_ratio"].startswith(
        '"5:4" is not allowed; allowed: 16:9, 4:3, 1:1, 3:4, 9:16, 2:3, 3:2, 21:9.'
    )
    assert cites_kies_schemas("pixverse-v6/reference-to-video", "aspect_ratio")


@pytest.mark.parametrize(
    "model_id",
    ["qwen3/text-to-image", "qwen3/image-to-image", "qwen3/pro-text-to-image", "qwen3/pro-image-to-image"],
)
def test_qwen_image_3_output_format_is_png_or_jpeg(model_id):
    spec = CATALOG.get(model_id)
    images = [IMG] if spec.images and spec.images.min else []
    assert build_input(spec, prompt="x", images=images, options={"output_format": "jpg"})["output_format"] == "jpeg"
    refused = problems_of(model_id, prompt="x", images=images, options={"output_format": "webp"})
    assert refused == {"options.output_format": '"webp" is not allowed; allowed: png, jpeg.'}
    assert cites_kies_schemas(model_id, "output_format")


def test_wan_2_7_r2v_takes_reference_images_or_videos_five_together():
    spec = CATALOG.get(WAN_R2V)
    videos = build_input(spec, prompt="video 1 dances", options={"reference_video": [VID] * 5})
    assert "reference_image" not in videos and len(videos["reference_video"]) == 5  # KIE: up to 5 videos
    assert price_input(spec, videos).credits == 120  # 24 credits/s x 5 s at 1080p, as with images
    assert build_input(spec, prompt="x", images=[IMG], options={"reference_video": [VID] * 4})
    too_many = problems_of(WAN_R2V, prompt="x", images=[IMG, IMG], options={"reference_video": [VID] * 4})
    assert "Reference images and videos together: at most 5." in too_many["options.reference_video"]
    assert problems_of(WAN_R2V, prompt="x") == {
        "images": f"{WAN_R2V} needs at least 1 input image(s), or options.reference_video."
    }
    [none] = check_input(spec, {"prompt": "x", "duration": 5, "resolution": "1080p"})
    assert none.field == "reference_video" and "reference images, reference videos" in none.message
    assert cites_kies_schemas(WAN_R2V, "reference_video") and spec.images.unless == ["reference_video"]


def test_omnihuman_prompt_is_bounded_at_kies_schema_300_and_the_conflict_with_its_prose_is_recorded():
    spec = CATALOG.get("omnihuman-1-5")
    arguments = {"images": [IMG], "options": {"audio_url": "https://example.com/a.mp3"}}
    assert build_input(spec, prompt="x" * 300, **arguments)["prompt"] == "x" * 300
    assert "the limit is 300. Shorten it." in problems_of("omnihuman-1-5", prompt="x" * 301, **arguments)["prompt"]
    source = spec.source_of(spec.fields["prompt"].source)
    assert (
        "maxLength 300" in source.ref and "Maximum length: 1000 characters" in source.ref and KIE_SCHEMAS in source.ref
    )


@pytest.mark.parametrize("model_id", AUTO_DURATION)
def test_the_auto_duration_is_refused_because_its_cost_cannot_be_quoted(model_id):
    spec = CATALOG.get(model_id)
    field = spec.field_for_arg("duration")
    for asked in (-1, "-1"):
        message = problems_of(model_id, prompt="x", options={field.name: asked})[f"options.{field.name}"]
        assert message == (
            f"-1 (auto: the model picks the length) is not offered: its cost cannot be quoted before the task runs, "
            f"and kie-mcp quotes every price before anything is sent. Pick a length of {field.min:g}-{field.max:g} s."
        )
        assert "out of range" not in message
    assert "out of range" in problems_of(model_id, prompt="x", options={field.name: -2})[f"options.{field.name}"]


def test_every_auto_value_in_the_catalogue_is_a_value_kie_mcp_refuses():
    """The generic side: whichever model carries an auto value, it is outside what the field takes, and refused
    saying why; the six KIE documents for its duration are those."""
    carrying = sorted(spec.id for spec in CATALOG for field in spec.fields.values() if field.auto is not None)
    assert carrying == AUTO_DURATION
    for model_id in carrying:
        field = next(f for f in CATALOG.get(model_id).fields.values() if f.auto is not None)
        assert not field.min <= field.auto <= field.max


def test_ideogram_v3_reframe_says_it_may_be_withdrawn_and_cites_its_missing_docs_page():
    spec = CATALOG.get(REFRAME)
    assert spec.withdrawn is None  # not confirmed withdrawn: kept, and said so
    assert "May be withdrawn: KIE removed its docs page" in spec.good_for
    assert "KIE may no longer offer this model" in spec.price.note
    source = spec.source_of(spec.source)
    assert source.date == "2026-08-12" and "kie-ideogram-v3-reframe-callability-2026-08-12.md" in source.ref
    assert "answered 404 on 2026-08-12" in source.ref and KIE_SCHEMAS in source.ref


# -- KIE's "not published" answer, below the tools -------------------------------------------------------------------


def test_kies_not_published_answer_says_the_model_is_not_offered_never_to_fix_a_field():
    err = KieError("The page does not exist or is not published", code=422)
    assert err.category is Category.NOT_FOUND and not err.retryable
    assert err.next_step.startswith("KIE does not offer this model now")
    assert "nothing was created or charged" in err.next_step and "list_models" in err.next_step
    assert "Fix the field" not in err.next_step
    assert "Fix the field" in KieError("input.prompt is required", code=422).next_step  # a field problem still is


def test_a_refused_create_withdraws_a_market_model_until_a_later_model_list_lists_it():
    refused_at = datetime(2026, 12, 6, 12, tzinfo=UTC)
    listed = {m.model: m for m in (LiveModel(model=s.id, task_types=["Image to Image"]) for s in CATALOG.offered())}
    before = LiveCatalog(models=listed, fetched_at=timestamp(refused_at - timedelta(hours=3)))
    assert not is_gone(before, REFRAME)
    live = before.with_unpublished(REFRAME, refused_at)
    assert is_gone(live, REFRAME) and REFRAME not in {s.id for s in still_sold(CATALOG, live)}
    instead = is_withdrawn(live, REFRAME)
    assert instead and REFRAME not in instead  # never the refused model itself, though KIE's list still has it
    assert not is_gone(live.with_unpublished("veo3_fast", refused_at), "veo3_fast")  # product APIs are not judged
    without_list = LiveCatalog().with_unpublished(REFRAME, refused_at)  # no key sync yet: the bundled data stands in
    assert is_gone(without_list, REFRAME) and is_withdrawn(without_list, REFRAME)
    later = live.model_copy(update={"fetched_at": timestamp(refused_at + timedelta(hours=1))})
    assert not is_gone(later, REFRAME)  # KIE's list, read after the refusal, lists it again: offered again
    during = later.keeping_refusals_of(live.with_unpublished("ideogram/v3-remix", refused_at + timedelta(hours=2)))
    assert is_gone(during, "ideogram/v3-remix") and not is_gone(during, REFRAME)  # refused after that list: kept


# -- through the tools, against the simulator ------------------------------------------------------------------------


REFUSED = [
    ({"model": H3_I2V, "images": [IMG]}, f"- prompt: is required by {H3_I2V}."),
    ({"model": H3_I2V, "prompt": "x" * 7001, "images": [IMG]}, "the limit is 7000"),
    (
        {
            "model": "pixverse-v6/reference-to-video",
            "prompt": "@hero walks",
            "aspect_ratio": "5:4",
            "options": {"image_references": [{"image_url": IMG, "type": "subject", "ref_name": "hero"}]},
        },
        '- aspect_ratio: "5:4" is not allowed; allowed: 16:9, 4:3, 1:1, 3:4, 9:16, 2:3, 3:2, 21:9.',
    ),
    (
        {"model": "qwen3/text-to-image", "prompt": "a pear", "options": {"output_format": "webp"}},
        '- options.output_format: "webp" is not allowed; allowed: png, jpeg.',
    ),
    (
        {
            "model": "omnihuman-1-5",
            "prompt": "x" * 301,
            "images": [IMG],
            "options": {"audio_url": "https://e.com/a.mp3"},
        },
        "- prompt: is 301 characters long; the limit is 300.",
    ),
    (
        {"model": WAN_R2V, "prompt": "x", "images": [IMG, IMG], "options": {"reference_video": [VID] * 4}},
        "Reference images and videos together: at most 5.",
    ),
    (
        {"model": "bytedance/seedance-2", "prompt": "a fox", "options": {"duration": -1}},
        "- options.duration: -1 (auto: the model picks the length) is not offered: its cost cannot be quoted",
    ),
    (
        {"model": "wan/3-0-video", "prompt": "a fox", "options": {"duration": -1}},
        "is not offered: its cost cannot be quoted before the task runs, and kie-mcp quotes every price before "
        "anything is sent. Pick a length of 2-30 s.",
    ),
]


@eras_in_turn(("arguments", "said"), REFUSED, ids=[f"{n}-{case[0]['model']}" for n, case in enumerate(REFUSED)])
async def test_requests_kies_schemas_refuse_are_refused_before_anything_is_asked_or_spent(
    connect, controls, arguments, said
):
    seen: list[str] = []
    tool = "generate_image" if CATALOG.get(arguments["model"]).kind == "image" else "generate_video"
    async with connect(elicitation=answering(seen=seen)) as client:
        estimate = await client.call_tool("estimate_cost", arguments)
        made = await client.call_tool(tool, {**arguments, "wait_seconds": 0})
    for refused in (estimate, made):
        assert refused.is_error and said in text_of(refused), text_of(refused)
        assert "out of range" not in text_of(refused)
    assert seen == [] and await controls.creates() == []


TAKEN = [
    (
        {"model": H3_I2V, "prompt": "the door closes", "options": {"last_frame_url": LAST}, "duration": 5},
        {"prompt": "the door closes", "last_frame_url": LAST},
        ["first_frame_url"],
    ),
    (
        {"model": H3_I2V, "prompt": "x" * 7000, "images": [IMG], "duration": 5},
        {"prompt": "x" * 7000, "first_frame_url": IMG},
        ["last_frame_url"],
    ),
    (
        {"model": H3_R2V, "prompt": "x" * 6000, "options": {"reference_video_urls": [VID]}, "duration": 5},
        {"reference_video_urls": [VID]},
        ["reference_image_urls"],
    ),
    (
        {"model": WAN_R2V, "prompt": "video 1 dances", "options": {"reference_video": [VID] * 5}},
        {"reference_video": [VID] * 5},
        ["reference_image"],
    ),
]


@eras_in_turn(("arguments", "sent", "absent"), TAKEN, ids=[f"{n}-{case[0]['model']}" for n, case in enumerate(TAKEN)])
async def test_requests_kies_schemas_take_are_sent_as_kie_documents_them(connect, controls, arguments, sent, absent):
    async with connect(elicitation=answering(), max_credits_per_call=10_000, max_credits_per_day=100_000) as client:
        made = await client.call_tool("generate_video", {**arguments, "wait_seconds": 0})
    assert not made.is_error and made.structured_content["status"] != "failed", text_of(made)
    [create] = await controls.creates()
    wire = create["body"]["input"]
    assert {name: wire.get(name) for name in sent} == sent
    assert not any(name in wire for name in absent), wire


@pytest.mark.parametrize("how", ["withdrawn", "answered once"])
async def test_a_model_kie_says_is_not_published_is_charged_nothing_and_refused_in_the_workspace_from_then_on(
    connect, controls, how
):
    """KIE took Ideogram V3 Reframe down; the workspace has not synced since, so the create goes out and KIE answers
    422 "The page does not exist or is not published": the simulator's answer to a model withdrawn by its control, or
    that answer injected once (a create sent again would then be made: none is sent)."""
    if how == "withdrawn":
        await controls.post("catalog/withdraw", {"model": REFRAME})
    else:
        await controls.fault("create", kind="code", code=422, msg="The page does not exist or is not published")
    call = {"model": REFRAME, "images": [IMG], "aspect_ratio": "16:9"}
    balance = (await controls.get("state"))["balances"]["default"]
    async with connect(elicitation=answering()) as client:
        first = await client.call_tool("generate_image", call)
        again = await client.call_tool("generate_image", call)
        listed = {
            m["id"] for m in (await client.call_tool("list_models", {"kind": "image"})).structured_content["models"]
        }
        table = (await client.read_resource("kie://models")).contents[0].text
        document = json.loads((await client.read_resource("kie://models.json")).contents[0].text)
    async with connect(elicitation=answering()) as client:  # another server of the same workspace
        quoted = await client.call_tool("estimate_cost", call)
    said = text_of(first)
    assert first.structured_content["tasks"][0]["state"] == "failed"
    assert "KIE does not offer this model now" in said and "nothing was created or charged" in said, said
    assert "Fix the field" not in said and "Cost: nothing charged" in said
    assert (
        f"KIE does not offer {REFRAME} now: from now on it is refused before anything is sent in this workspace" in said
    )
    day = datetime.now(UTC).date().isoformat()
    why = f"KIE answered a create of it on {day} that its page does not exist or is not published"
    for refused in (again, quoted):
        assert refused.is_error and f"{REFRAME} is no longer offered by KIE ({why}); nothing was sent." in text_of(
            refused
        ), text_of(refused)
        assert "Use instead: ideogram/" in text_of(refused)
    assert REFRAME not in listed and REFRAME not in {m["id"] for m in document["models"]}
    assert f"- `{REFRAME}` ({why}): use `ideogram/" in table.partition("Withdrawn by KIE")[2]
    assert len(await controls.creates()) == 1  # only the first create reached KIE
    assert (await controls.get("state"))["balances"]["default"] == balance  # nothing was charged


ECHOED = {  # a 422 whose message holds KIE's phrase and more: a field's error echoing the user's words, an echo
    "echoed header": {"msg": "The page does not exist or is not published", "echo_auth": True},
    "echoed prompt": {"msg": "prompt 'The page does not exist or is not published' is not allowed"},
}


@eras_in_turn("case", list(ECHOED))
async def test_only_kies_whole_not_published_answer_marks_a_model_withdrawn(connect, controls, case):
    """The review: any 422 holding "the page does not exist or is not published" anywhere marked the model withdrawn,
    so a field's error echoing the user's prompt (or the request's header) took a model KIE sells away from the
    workspace. Only the whole answer, in any case and with or without its final period, is KIE saying so."""
    await controls.fault("create", kind="code", code=422, **ECHOED[case])
    await controls.fault("create", kind="code", code=422, msg="  the page does not exist or is not published. ")
    call = {"model": REFRAME, "images": [IMG], "aspect_ratio": "16:9"}
    async with connect(elicitation=answering()) as client:
        echoed = await client.call_tool("generate_image", call)
        whole = await client.call_tool("generate_image", call)  # KIE's own answer, however it is cased and spaced
        after = await client.call_tool("estimate_cost", call)
    assert "KIE does not offer" not in text_of(echoed) and "Fix the field" in text_of(echoed), text_of(echoed)
    assert f"KIE does not offer {REFRAME} now" in text_of(whole), text_of(whole)
    assert after.is_error and "no longer offered by KIE" in text_of(after)
    assert len(await controls.creates()) == 2  # the echoed refusal withdrew nothing: the second create was sent


async def test_a_refused_model_says_truly_what_offers_it_again_with_the_catalogue_sync_off(
    connect, controls, transport, tmp_path, monkeypatch
):
    """The review: with KIE_CATALOG_SYNC=off the refusal said "until KIE's model list, read again, lists it", and
    kie-mcp never reads the list by itself then. It names what does: `kie-mcp catalog sync` (or deleting the cache),
    then a start; done, the model is offered again."""
    from kie_mcp.cli import _catalog_sync
    from kie_mcp.sandbox import SANDBOX_API_KEY

    from .test_first_hour import _run_in_thread

    await controls.post("catalog/withdraw", {"model": REFRAME})
    call = {"model": REFRAME, "images": [IMG], "aspect_ratio": "16:9"}
    async with connect(elicitation=answering()) as client:  # the tests' servers run with the sync off
        said = text_of(await client.call_tool("generate_image", call))
    assert "until KIE's model list, read again, lists it" not in said, said
    assert "until KIE's model list, read by `kie-mcp catalog sync`, lists it" in said, said
    assert "KIE_CATALOG_SYNC is off" in said and "catalog-live.json is deleted" in said, said
    await controls.post("catalog/withdraw", {"model": REFRAME, "withdrawn": False})  # KIE offers it again
    await anyio.sleep(1.1)  # a list read in the second of the refusal does not supersede it (time stamps: seconds)
    await controls.post("config", {"catalog_limit_per_second": 0})
    monkeypatch.setenv("KIE_WORKSPACE", str(tmp_path))
    monkeypatch.setenv("KIE_API_KEY", SANDBOX_API_KEY)
    assert await _run_in_thread(_catalog_sync, [], transport=transport) == 0  # what the answer said to run
    async with connect(elicitation=answering()) as client:  # kie-mcp started again
        again = await client.call_tool("estimate_cost", call)
    assert not again.is_error, text_of(again)


async def test_ideogram_v3_reframe_is_listed_and_quoted_as_possibly_withdrawn(connect):
    async with connect() as client:
        listed = (await client.call_tool("list_models", {"query": "reframe"})).structured_content["models"]
        quoted = await client.call_tool("estimate_cost", {"model": REFRAME, "images": [IMG]})
    [reframe] = listed
    assert "May be withdrawn: KIE removed its docs page in August 2026." in reframe["good_for"]
    assert not quoted.is_error and "KIE may no longer offer this model" in text_of(quoted), text_of(quoted)
