"""Workflow plans followed as written deliver what was paid for, and scripts get clips they can be said in.

From the 2026-12 journey audit: ugc_video offered the 1080p version before the captions and then captioned the
720p clip (the paid upgrade unused); the still steps wrote no resolution (a 1K still where the guides say 2K); a
script got a clip with no breath in it; Veo's too-long warning gave no split; a sheet asked one model twice.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from .conftest import answering, eras_in_turn, text_of
from .test_followups import finished, follow
from .test_prompts import ARGUMENTS, _argument, _calls, _render


def _step(text: str, number: int) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"{number}. "))


async def _upgrade(client: Any, task_id: str, operation: str) -> str:
    made = await client.call_tool("continue_video", {"task_id": task_id, "operation": operation, "wait_seconds": 40})
    assert not made.is_error, text_of(made)
    upgraded = made.structured_content["tasks"][0]["task_id"]
    await follow(client, upgraded)
    return upgraded


# -- ugc_video: the delivery upgrade is what the delivered file is made from ---------------------------------------


@pytest.mark.parametrize("mode", ["auto"])  # the workflow's steps followed, not the protocol era: once
async def test_ugc_video_on_veo_delivers_the_captioned_file_from_the_1080p_version_it_paid_for(connect, tmp_path):
    """Step 4 offered operation='hd', step 5 then captioned 'the last task id of the chain': the joined file was the
    720p clip and the 1080p task went unused. Now the upgrade comes after the captioned join is approved, and the
    join is made again from the upgrade's id, which the step names ('<task id>-1080p')."""
    async with connect(elicitation=answering()) as client:
        text = await _render(client, "ugc_video", ARGUMENTS["ugc_video"])
        captions, delivery = _step(text, 5), _step(text, 6)
        assert "operation='hd'" not in text.split("\n5. ")[0], "the upgrade is offered before the captions"
        assert "operation='hd'" in delivery and "stitch_videos" in delivery and "-1080p'" in delivery, delivery
        assert "chain=true" not in captions
        take = await finished(client, {"prompt": "a woman shows a cold brew bottle to her phone", "model": "veo3_fast"})
        upgrade = await _upgrade(client, take, "hd")
        assert upgrade == f"{take}-1080p"  # as the step says the answer names it
        joined = await client.call_tool(
            "stitch_videos",
            {"clips": [upgrade], "captions": [{"start": 0.2, "end": 1.5, "text": "Hi"}], "output_name": "ugc.mp4"},
        )
    assert not joined.is_error, text_of(joined)
    sidecar = json.loads((tmp_path / joined.structured_content["path"]).with_suffix(".json").read_text("utf-8"))
    assert sidecar["joined_from"] == [upgrade]


# PixVerse stands for the part chains upgraded by Topaz (Runway's too, whose silent clips ugc_video's script refuses).
@eras_in_turn("model", ["grok-imagine/text-to-video", "pixverse-v6/text-to-video"])
async def test_ugc_video_with_part_chains_upgrades_every_link_and_joins_them_without_chain(connect, model):
    """A Grok (or PixVerse) extension holds only its new part: an upgrade of the last extension upgraded only that
    part, and chain=true from it brought back the take un-upgraded. The step says to upgrade each link and to join
    the upgrades in order without chain=true; followed so, the join is made of the upgrades only."""
    async with connect(elicitation=answering()) as client:
        delivery = _step(await _render(client, "ugc_video", {**ARGUMENTS["ugc_video"], "model": model}), 6)
        [operation] = set(re.findall(r"operation='(\w+)'", delivery))
        assert "each extension" in delivery and "without chain=true" in delivery, delivery
        assert "only that last part" in delivery, delivery  # the warning when only the last link is upgraded
        if model == "pixverse-v6/text-to-video":  # Topaz upscales any clip: the step's shape is checked, not its wire
            return
        take = await finished(client, {"prompt": "a man holds a can of cold brew", "model": model})
        made = await client.call_tool(
            "continue_video", {"task_id": take, "operation": "extend", "prompt": "he sips", "wait_seconds": 40}
        )
        assert not made.is_error, text_of(made)
        extension = made.structured_content["tasks"][0]["task_id"]
        await follow(client, extension)
        upgrades = [await _upgrade(client, link, operation) for link in (take, extension)]
        joined = await client.call_tool("stitch_videos", {"clips": upgrades, "output_name": "ugc.mp4"})
    assert not joined.is_error, text_of(joined)
    assert "Joined 2 clip(s)" in text_of(joined), text_of(joined)


# -- the still steps write the 2K their guides prescribe -----------------------------------------------------------

STILL_STEPS = [
    ("influencer_recreation", ARGUMENTS["influencer_recreation"], "nano-banana-2", "9:16"),
    ("influencer_recreation", ARGUMENTS["influencer_recreation"], "nano-banana-pro", "16:9"),
    ("product_showcase", ARGUMENTS["product_showcase"], "nano-banana-2", "9:16"),
    ("character_sheet", {**ARGUMENTS["character_sheet"], "model": "gpt-image-2-text-to-image"}, None, None),
]


@pytest.mark.parametrize(("name", "arguments", "model", "ratio"), STILL_STEPS)
async def test_a_still_step_made_exactly_as_written_is_the_2k_still_its_guide_prescribes(
    connect, name, arguments, model, ratio
):
    """influencer_recreation and product_showcase wrote no resolution (a 1K still, though their guides say 2K), and
    character_sheet with GPT Image 2 judged 2K at the model's default ratio auto (1K only) and left it out. The
    call written in step 2, with the step's own ratio, is priced at 2K."""
    async with connect() as client:
        step = _step(await _render(client, name, arguments), 2)
        [parts] = [parts for tool, parts in _calls(step, {"estimate_cost"}) if tool == "estimate_cost"]
        written = {_argument(part): part.split("=", 1)[1].strip() for part in parts if _argument(part)}
        assert written.get("resolution") == "'2K'", step
        request: dict[str, Any] = {"prompt": "a portrait", "resolution": "2K"}
        if model is None:  # the sheet writes its model and ratio out
            request["model"] = written["model"].strip("'\"")
            request["aspect_ratio"] = written["aspect_ratio"].strip("'\"")
        else:  # the model the user picked, and the video's ratio ("aspect_ratio=...")
            request.update(model=model, aspect_ratio=ratio, images=["https://example.com/ref.png"])
        quote = await client.call_tool("estimate_cost", request)
    assert not quote.is_error, text_of(quote)
    assert "resolution=2K" in quote.structured_content["quote"]["breakdown"], text_of(quote)


async def test_a_sheet_for_nano_banana_pro_asks_no_model_twice(connect):
    """character_sheet(model='nano-banana-pro') asked "Use nano-banana-pro as asked, or Nano Banana 2, or Nano
    Banana Pro?": one model offered twice."""
    async with connect() as client:
        text = await _render(client, "character_sheet", {**ARGUMENTS["character_sheet"], "model": "nano-banana-pro"})
    [question] = re.findall(r'"(Use [^"]*\?)"', _step(text, 1))
    assert "nano-banana-pro as asked" in question and "Nano Banana 2" in question, question
    assert "Nano Banana Pro" not in question, question


# -- a script's clip has room for a breath, and Veo's too-long warning says how to split ---------------------------


@pytest.mark.parametrize(
    ("model", "script", "duration", "credits"),
    [
        # 10 words, 4.0 s: 4 s left no breath; Veo bills 4, 6 and 8 s alike, so the line gets 8 s at 60 credits.
        ("veo3_fast", "Okay, the lid. Watch this. One click and it's locked.", 8, 60),
        # 15 words, 6.0 s: 6 s left no breath.
        ("veo3_fast", "I swapped my morning espresso for this cold brew and I am never going back.", 8, 60),
        # Kling bills per second: the shortest clip with a breath, 6.0 s and a breath, 7 s at 27 credits/s.
        ("kling-3.0/video", "I swapped my morning espresso for this cold brew and I am never going back.", 7, 189),
    ],
)
async def test_a_script_gets_a_clip_with_a_breath_and_veo_the_longest_clip_at_the_same_price(
    connect, controls, model, script, duration, credits
):
    async with connect(elicitation=answering()) as client:
        request = {"model": model, "prompt": "A woman talks to the camera.", "script": script}
        quote = await client.call_tool("estimate_cost", request)
        made = await client.call_tool("generate_video", request)
    assert not quote.is_error and not made.is_error, text_of(quote) + text_of(made)
    assert f"Duration set to {duration} s" in text_of(quote), text_of(quote)
    assert quote.structured_content["quote"]["credits_total"] == credits
    (create,) = await controls.creates()
    sent = create["body"].get("duration", create["body"].get("input", {}).get("duration"))
    assert str(sent) == str(duration), create["body"]


LONG = (
    "I was skeptical at first, but after two weeks of using this serum every morning my skin feels smoother, looks "
    "brighter, and honestly I get compliments at work now, which never happened before, so yes I am buying three "
    "more for my sisters this Christmas and you should too."
)


async def test_veos_too_long_warning_gives_the_split_and_the_models_with_longer_clips(connect):
    """A 49-word script on veo3_fast got an approvable quote with only "Consider ... splitting", where Kling's
    refusal gives each part and models with longer clips. The warning now carries the same offer."""
    async with connect() as client:
        request = {"model": "veo3_fast", "prompt": "A woman talks.", "script": LONG}
        veo = await client.call_tool("estimate_cost", request)
    text = text_of(veo)
    assert not veo.is_error, text
    assert "may cut or rush the dialogue" in text
    parts = re.findall(r"part \d+ \((\d+) words, (\d+) s\)", text)
    assert len(parts) >= 3 and sum(int(words) for words, _ in parts) == 49, text
    assert all(int(seconds) in (4, 6, 8) for _, seconds in parts), parts
    longer = re.search(r"Or use a model with longer clips: (.*?)\.", text)
    assert longer and re.findall(r"\(up to (\d+) s\)", longer.group(1)), text
    assert all(int(up_to) >= 20 for up_to in re.findall(r"\(up to (\d+) s\)", longer.group(1))), text
