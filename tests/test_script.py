"""Script to duration: boundaries, the split offer, alternatives, the dialogue in the prompt."""

from __future__ import annotations

import re

import pytest

from kie_mcp.catalog import InvalidRequest, load_catalog
from kie_mcp.catalog.script import count_words, fit_script, speech_models, split_script

from .conftest import answering, text_of

CATALOG = load_catalog()
KLING = CATALOG.get("kling-3.0/video")  # 3-15 s, audio toggle
SORA = CATALOG.get("sora-2-text-to-video")  # 10 or 15 s
ALTERNATIVES = speech_models(list(CATALOG), "text-to-video")


def words(n: int) -> str:
    return " ".join(["word"] * n) + "."


def fit(spec, n, duration=None):
    return fit_script(spec, words(n), "A woman at a cafe table.", duration, None, ALTERNATIVES)


@pytest.mark.parametrize(
    ("spec", "n", "expected"),
    [
        (KLING, 1, 3),  # the shortest allowed
        (KLING, 7, 3),  # 2.8 s
        (KLING, 8, 4),  # 3.2 s
        (KLING, 10, 4),  # exactly 4.0 s
        (KLING, 11, 5),  # 4.4 s
        (KLING, 37, 15),  # 14.8 s: the longest
        (SORA, 25, 10),  # exactly 10 s
        (SORA, 26, 15),  # 10.4 s
        (SORA, 37, 15),
    ],
)
def test_shortest_duration_that_fits(spec, n, expected):
    result = fit(spec, n)
    assert result.duration == expected
    assert f"Duration set to {expected} s" in " ".join(result.notes)


def test_too_long_offers_a_split_and_longer_models():
    script = (
        "Meet the bottle that keeps coffee cold for a full day. It is light enough for any bag. "
        "The lid locks, so nothing spills on the way. Fill it in the morning and forget about it. "
        "Cold brew, made slow, ready whenever you are."
    )
    assert count_words(script) > 38
    with pytest.raises(InvalidRequest) as caught:
        fit_script(SORA, script, "x", None, None, ALTERNATIVES)
    text = str(caught.value)
    assert "script" in text and "15 s" in text
    assert "part 1" in text and "part 2" in text
    parts = split_script(script, 15)
    assert " ".join(part for part, _ in parts).split() == script.split()  # nothing lost, order kept
    assert all(count_words(part) <= 37 for part, _ in parts)
    assert all(part.rstrip().endswith((".", "!", "?")) for part, _ in parts)  # sentence boundaries


def test_a_sentence_longer_than_a_clip_is_broken_at_commas():
    long_sentence = ", ".join(["this clause has five words"] * 12) + "."
    parts = split_script(long_sentence, 8)
    assert all(count_words(part) <= 20 for part, _ in parts)
    assert " ".join(p for p, _ in parts).split() == long_sentence.split()


COMMA_JOINED = "Buy,now,and,save,big,today,on,every,single,item,in,the,shop,this,weekend,only," * 6 + "."  # 96 words


def test_every_offered_part_fits_its_clip_when_words_are_joined_by_commas():
    """A split is offered so each part fits: parts are cut between the words count_words counts, not at spaces."""
    assert count_words(COMMA_JOINED) == 96
    parts = split_script(COMMA_JOINED, 8)
    assert len(parts) > 1
    assert all(count_words(part) <= 20 for part, _ in parts)
    assert [w for p, _ in parts for w in p.replace(",", " ").split()] == COMMA_JOINED.replace(",", " ").split()


async def test_the_split_offered_through_the_tools_fits_every_part(connect, controls):
    async with connect() as client:
        result = await client.call_tool(
            "estimate_cost", {"model": "kling-3.0/video", "prompt": "A host talks.", "script": COMMA_JOINED}
        )
    text = text_of(result)
    assert result.is_error and "Split it into" in text
    offered = re.findall(r"part \d+ \((\d+) words, (\d+) s\)", text)
    assert len(offered) > 1
    assert all(int(words) / 2.5 <= int(seconds) for words, seconds in offered), offered
    assert await controls.creates() == []


def test_explicit_duration_too_short_is_refused():
    with pytest.raises(InvalidRequest, match="duration=5 s is too short"):
        fit(KLING, 20, duration=5)
    assert fit(KLING, 10, duration=12).duration == 12


def test_a_duration_too_short_for_the_script_points_to_the_models_own_longer_duration_not_a_split():
    """23 words need about 9.2 s; with duration=5 on a model that takes up to 15 s the fix is duration=10 (or none),
    not one "part" to split into, nor another model."""
    with pytest.raises(InvalidRequest) as caught:
        fit(KLING, 23, duration=5)
    text = str(caught.value)
    assert "Pass duration=10" in text and "leave duration out" in text
    assert "Split it into" not in text and "Or use a model" not in text


def test_dialogue_goes_into_the_prompt_and_sound_turns_on():
    result = fit_script(KLING, "Cold brew, made slow.", "A barista at the counter.", None, None, ALTERNATIVES)
    assert result.prompt.startswith("A barista at the counter.")
    assert "Cold brew, made slow." in result.prompt
    assert result.audio is True


def test_silent_models_refuse_a_script():
    silent = next((s for s in CATALOG if s.kind == "video" and "audio" not in s.capabilities), None)
    if silent is None:
        pytest.skip("no silent video model in the catalogue")
    with pytest.raises(InvalidRequest, match="silent"):
        fit_script(silent, "Hello there.", "x", None, None, ALTERNATIVES)


async def test_script_through_the_tools(connect, controls):
    script = "Cold brew, made slow. Ready when you are."
    async with connect(elicitation=answering()) as client:
        estimate = await client.call_tool(
            "estimate_cost", {"model": "kling-3.0/video", "prompt": "A barista smiles.", "script": script}
        )
        too_long = await client.call_tool(
            "generate_video", {"model": "kling-3.0/video", "prompt": "x", "script": words(60)}
        )
        image = await client.call_tool("generate_image", {"prompt": "x", "script": "hello"})
    assert "Duration set to 4 s" in text_of(estimate)
    assert estimate.structured_content["quote"]["credits_total"] == 108  # 4 s x 27/s (pro mode with sound)
    assert too_long.is_error and "part 1" in text_of(too_long)
    assert image.is_error and "does not take script" in text_of(image)
    assert await controls.creates() == []


def test_veo_warns_instead_of_refusing_a_long_script():
    veo = CATALOG.get("veo3_fast")
    fits = fit_script(veo, words(20), "A man at a desk.", None, None, ALTERNATIVES)
    assert fits.duration == 8 and not any("Warning" in n for n in fits.notes)
    long = fit_script(veo, words(30), "A man at a desk.", None, None, ALTERNATIVES)
    assert long.duration == 8
    assert any("Warning: 30 words" in n and "may cut" in n for n in long.notes)
    assert long.prompt.startswith("A man at a desk. The speaker says: word") and long.prompt.endswith("(no subtitles)")


def test_per_second_price_without_its_length_is_unknown_not_a_crash():
    from kie_mcp.catalog import price_input

    kling = CATALOG.get("kling-3.0/video")
    price = price_input(kling, {"prompt": "x", "mode": "pro", "sound": False})  # no duration in the request
    assert price.known is False and price.credits is None


# -- from the 2026-12 UX audit: a script on Veo --------------------------------------------------------------------

VEO = CATALOG.get("veo3_fast")
PHOTO = "https://example.com/serum.png"
REFERENCE = {
    "model": "veo3_fast",
    "prompt": "a woman holds the serum bottle",
    "images": [PHOTO],
    "script": "Two drops. That's it.",
    "options": {"generationType": "REFERENCE_2_VIDEO"},
}


async def test_a_script_gets_the_shortest_duration_the_requests_rules_allow(connect, controls):
    """REFERENCE_2_VIDEO makes 8 s clips only: a 4-word script is fitted to 8 s there (it was fitted to 4 s, then
    refused for a duration the caller never set), and to 4 s where the mode allows it."""
    async with connect(elicitation=answering()) as client:
        reference = await client.call_tool("estimate_cost", REFERENCE)
        frames = await client.call_tool("estimate_cost", {**REFERENCE, "options": {}})
        made = await client.call_tool("generate_video", REFERENCE)
    text = text_of(reference)
    assert not reference.is_error, text
    assert "duration=8" in text and "Duration set to 8 s: the script fits in 4 s" in text
    assert "REFERENCE_2_VIDEO" in text and "not allowed" not in text
    assert "duration=4" in text_of(frames) and "Duration set to 4 s to fit the script." in text_of(frames)
    assert not made.is_error, text_of(made)
    (create,) = await controls.creates()
    assert create["body"]["duration"] == 8 and create["body"]["generationType"] == "REFERENCE_2_VIDEO"


def test_a_script_no_allowed_duration_fits_says_the_script_chose_it_and_what_to_pass():
    """When the request's rules allow no duration that fits the words, the error says the script (not the caller)
    chose the duration, and which one to pass."""
    from kie_mcp.catalog import build_input
    from kie_mcp.catalog.spec import Rule

    six_only = Rule(
        when={"generationType": "REFERENCE_2_VIDEO"}, allow={"duration": [6]}, message="Six only.", source="doc-veo"
    )
    strict = VEO.model_copy(
        update={
            "rules": [*(r for r in VEO.rules if "duration" not in r.allow), six_only],
            "dialogue": VEO.dialogue.model_copy(update={"overflow": "error"}),
        }
    )
    fitted = fit_script(strict, words(17), "A host talks.", None, None, ALTERNATIVES)  # 6.8 s: 8 s fits
    assert fitted.duration == 8
    with pytest.raises(InvalidRequest) as caught:
        build_input(
            strict,
            prompt=fitted.prompt,
            images=[PHOTO],
            duration=fitted.duration,
            options={"generationType": "REFERENCE_2_VIDEO"},
            scripted=fitted.request,
        )
    (problem,) = caught.value.problems
    assert problem.field == "duration"
    assert problem.message.startswith("the script chose 8 s (its 17 words take about 6.8 s to say)")
    assert "allows only 6 s" in problem.message and "Six only." in problem.message
    assert "Pass duration=6, and shorten the script" in problem.message


async def test_a_script_on_veo_is_sent_untranslated_unless_the_caller_asks(connect, controls):
    """KIE's enableTranslation translates the prompt to English, dialogue too: with a script it goes out false (and
    the quote shows it) unless the caller set it; without a script nothing changes."""
    spanish = {"model": "veo3_fast", "prompt": "Una mujer sonríe", "script": "Este sérum cambió mis mañanas."}
    async with connect(elicitation=answering()) as client:
        scripted = await client.call_tool("estimate_cost", spanish)
        asked = await client.call_tool("estimate_cost", {**spanish, "options": {"enableTranslation": True}})
        plain_prompt = await client.call_tool("estimate_cost", {"model": "veo3_fast", "prompt": "Una mujer sonríe"})
        made = await client.call_tool("generate_video", spanish)
    assert "enableTranslation=false" in text_of(scripted) and "Sent enableTranslation=false" in text_of(scripted)
    assert "enableTranslation=true" in text_of(asked) and "Sent enableTranslation" not in text_of(asked)
    assert "enableTranslation=true" in text_of(plain_prompt)
    assert not made.is_error, text_of(made)
    (create,) = await controls.creates()
    assert create["body"]["enableTranslation"] is False
    assert create["body"]["prompt"].startswith("Una mujer sonríe. The speaker says: Este sérum")


@pytest.mark.parametrize(
    ("prompt", "starts"),
    [
        ("a woman in her bathroom, morning light", "a woman in her bathroom, morning light. The speaker says:"),
        ("a woman in her bathroom, morning light,", "a woman in her bathroom, morning light. The speaker says:"),
        ("Is she smiling?", "Is she smiling? The speaker says:"),
        ('She reads the label: "Glow."', 'She reads the label: "Glow." The speaker says:'),
        ("A host talks.  ", "A host talks. The speaker says:"),
    ],
)
def test_the_script_starts_a_new_sentence_after_the_prompt(prompt, starts):
    """ "...morning light The speaker says: ..." ran the dialogue into the scene: a prompt without end punctuation
    gets a full stop, in whatever template the model's dialogue uses."""
    assert fit_script(VEO, "Two drops.", prompt, None, None, ALTERNATIVES).prompt.startswith(starts)
    kling = fit_script(KLING, "Two drops.", "A barista at the counter", None, None, ALTERNATIVES)
    assert kling.prompt.startswith("A barista at the counter.\n")
