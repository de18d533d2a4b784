"""The next line of a take, spoken in its extension: continue_video (and estimate_cost with task_id and operation)
take ``script`` for operation=extend and handle it as generate_video does, each promise kept against the simulator
through the real MCP client in both protocol eras:

- the words go into the prompt as dialogue in the model's form (Veo: "The speaker says: ... (no subtitles)");
- they are judged against what the extension adds: about 7 s on Veo (no setting: a longer line is sent with a
  warning that carries a split into extensions and its total), Grok's 6 or 10 s and PixVerse's 1-15 s (the
  shortest that fits is sent; a line too long for any is refused with the split);
- a silent PixVerse clip's extension is made with sound for its line;
- a script is refused, saying why, for an upgrade (nothing new is said in it) and for Runway's silent extension.

The audit: the plans sent the next line as the extension's bare prompt, since continue_video refused ``script``;
a 37-word line was quoted at 60 credits with no warning, while generate_video warned and offered a split.
"""

from __future__ import annotations

import pytest

from .conftest import answering, text_of
from .test_followups import GROK, MARKET, RUNWAY, VEO, VEO_EXTEND, finished, requests_to

# 35 words: about 14 s spoken, twice what a Veo extension adds.
LONG_LINE = (
    "And honestly the best part is that it is fragrance free, it sinks in within a minute, it layers under my "
    "sunscreen and my makeup without pilling, and one bottle lasts me about two months."
)
LINE = "It lasts all day, honestly."


@pytest.mark.parametrize("mode", ["auto"])  # the words sent to KIE, not the protocol era: once
async def test_the_next_line_of_a_veo_extension_is_spoken_as_veo_dialogue(connect, controls):
    async with connect(elicitation=answering()) as client:
        source = await finished(client, VEO)
        extended = await client.call_tool(
            "continue_video",
            {"task_id": source, "operation": "extend", "prompt": "She keeps talking to the camera.", "script": LINE},
        )
    assert not extended.is_error and extended.structured_content["status"] == "submitted", text_of(extended)
    [create] = await requests_to(controls, VEO_EXTEND)
    assert create["body"]["prompt"] == f"She keeps talking to the camera. The speaker says: {LINE} (no subtitles)"
    assert "fits what Veo 3.1 extend adds (about 7 s)" in text_of(extended), text_of(extended)


async def test_a_line_too_long_for_the_7_s_a_veo_extension_adds_is_quoted_with_a_warning_and_a_split(connect):
    """Veo decides the length it speaks in, as on its own clips: the request stands, and the quote warns, splitting
    the line into extensions of about 7 s each with what they cost in all (no other models: an extension continues
    its clip's own)."""
    async with connect(elicitation=answering()) as client:
        source = await finished(client, VEO)
        quoted = await client.call_tool(
            "estimate_cost",
            {"task_id": source, "operation": "extend", "prompt": "She keeps talking.", "script": LONG_LINE},
        )
    text = text_of(quoted)
    assert not quoted.is_error and quoted.structured_content["quote"]["credits_total"] == 60, text
    assert "Warning: 35 words is a lot for what Veo 3.1 extend adds (about 7 s)" in text, text
    assert "split it into 3 extensions" in text and "180 credits" in text and "part 3 (" in text, text
    assert "Or use a model" not in text, text


async def test_a_grok_extension_adds_the_seconds_its_line_needs_and_refuses_one_too_long_with_a_split(
    connect, controls
):
    async with connect(elicitation=answering()) as client:
        source = await finished(client, GROK)
        long = await client.call_tool("estimate_cost", {"task_id": source, "operation": "extend", "script": LONG_LINE})
        made = await client.call_tool(
            "continue_video", {"task_id": source, "operation": "extend", "prompt": "she smiles", "script": LINE}
        )
    assert long.is_error and "grok-imagine/extend adds at most 10 s" in text_of(long), text_of(long)
    # 14 s in extensions of at most 9 s of speech: two, each cut at a comma (the even split's first cut at a clause
    # end once 60 % full made three, one more paid extension)
    assert "split it into 2 extensions at sentence or clause breaks" in text_of(long).lower(), text_of(long)
    assert not made.is_error, text_of(made)
    [create] = [r["body"] for r in await requests_to(controls, MARKET) if r["body"]["model"] == "grok-imagine/extend"]
    assert create["input"]["extend_times"] == "6"  # 5 words, 2 s: the shortest extension that leaves a breath
    assert create["input"]["prompt"] == f'she smiles.\n\nDialogue: "{LINE}"'


async def test_a_silent_pixverse_clips_extension_is_made_with_sound_for_its_line(connect, controls):
    pixverse = {"prompt": "a red kite over a beach", "model": "pixverse-v6/text-to-video", "resolution": "720p"}
    async with connect(elicitation=answering()) as client:
        source = await finished(client, pixverse)  # silent: PixVerse's sound switch is off by default
        made = await client.call_tool("continue_video", {"task_id": source, "operation": "extend", "script": LINE})
    assert not made.is_error, text_of(made)
    assert "Sound turned on for the dialogue" in text_of(made), text_of(made)
    [create] = [r["body"] for r in await requests_to(controls, MARKET) if r["body"]["model"] == "pixverse-v6/extend"]
    assert create["input"]["generate_audio_switch"] is True
    assert create["input"]["duration"] == 3  # 5 words, 2 s, and a breath


@pytest.mark.parametrize("mode", ["auto"])  # the words sent to KIE, not the protocol era: once
async def test_a_script_is_refused_for_an_upgrade_and_a_silent_extension_saying_why(connect, controls):
    async with connect(elicitation=answering()) as client:
        veo = await finished(client, VEO)
        runway = await finished(client, RUNWAY)
        upgrade = await client.call_tool("continue_video", {"task_id": veo, "operation": "hd", "script": LINE})
        priced = await client.call_tool("estimate_cost", {"task_id": veo, "operation": "4k", "script": LINE})
        silent = await client.call_tool(
            "continue_video", {"task_id": runway, "operation": "extend", "prompt": "it drifts on", "script": LINE}
        )
    assert upgrade.is_error and "script: operation=hd makes the clip's 1080p version" in text_of(upgrade)
    assert priced.is_error and "operation=4k makes the clip's 4K version" in text_of(priced)
    assert silent.is_error and "adds silent video" in text_of(silent) and "stitch_videos" in text_of(silent)
    assert [r["path"] for r in (await controls.get("requests"))["requests"] if "extend" in r["path"]] == []
    assert await requests_to(controls, "/api/v1/veo/get-1080p-video") == []


async def test_the_person_asked_to_approve_an_extension_reads_the_words_it_will_speak(connect, controls):
    """The review: the question shows the prompt's first 93 characters, and the line comes after the scene (a
    default one of about 100 characters when no prompt is given), so the person approved speech they never read,
    and an agent that changed the line went unnoticed. The words are said in full (up to 240 characters)."""
    seen: list[str] = []
    async with connect(elicitation=answering(seen=seen)) as client:
        source = await finished(client, VEO)
        await client.call_tool("continue_video", {"task_id": source, "operation": "extend", "script": LINE})
    [question] = [text for text in seen if "Veo 3.1" in text and "extend" in text.lower()][-1:]
    assert f'Spoken: "{LINE}".' in question, question
    assert len(await requests_to(controls, VEO_EXTEND)) == 1
