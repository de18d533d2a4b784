"""Script to duration: boundaries, the split offer, alternatives, the dialogue in the prompt."""

from __future__ import annotations

import re
import unicodedata

import pytest

from kie_mcp.catalog import InvalidRequest, load_catalog
from kie_mcp.catalog.script import (
    BREATH_SECONDS,
    count_words,
    fit_script,
    has_kana,
    measure,
    speech_models,
    speech_room,
    split_script,
)
from kie_mcp.catalog.validate import Problem

from .conftest import answering, eras_in_turn, text_of

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
        (KLING, 5, 3),  # 2.0 s and a breath: 3.0 s
        (KLING, 7, 4),  # 2.8 s and a breath
        (KLING, 8, 5),  # 3.2 s and a breath
        (KLING, 10, 5),  # exactly 4.0 s: 4 s would leave no breath
        (KLING, 11, 6),  # 4.4 s and a breath
        (KLING, 35, 15),  # 14.0 s and a breath: the longest
        (KLING, 37, 15),  # 14.8 s: the longest, a tight fit rather than a refusal
        (SORA, 22, 10),  # 8.8 s and a breath
        (SORA, 25, 15),  # exactly 10 s: 10 s would leave no breath
        (SORA, 37, 15),
    ],
)
def test_the_shortest_duration_that_fits_with_a_breath_is_chosen(spec, n, expected):
    """The prompting guide (section 6): a line needs a short breath at the start and end of its clip. 10 words
    (4.0 s) got a 4 s clip with none; a model billed per second (Kling) or per length (Sora) gets the shortest
    duration that leaves one."""
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


# One sentence of 22 words (8.8 s): too long for Veo's 8 s clip. Its comma after "anymore" leaves a first part of 16
# words (6.4 s), within the 7 s of speech a part may hold; the even split cut it after "cannot imagine".
SERUM = (
    "This serum changed my routine completely and I honestly cannot imagine my mornings without it anymore, "
    "you have to try it out."
)
SERUM_PARTS = [
    "This serum changed my routine completely and I honestly cannot imagine my mornings without it anymore,",
    "you have to try it out.",
]


def test_a_long_sentence_is_cut_at_its_last_clause_break_that_fits_not_evenly_mid_phrase():
    parts = split_script(SERUM, speech_room([4, 6, 8]), 8)
    assert [part for part, _ in parts] == SERUM_PARTS
    assert [seconds for _, seconds in parts] == [6.4, 2.4]


@pytest.mark.parametrize("dash", [" — ", "—", " - ", " – ", " -- "])
def test_a_dash_is_a_clause_break_a_long_sentence_is_cut_at(dash):
    sentence = SERUM.replace(", ", dash)
    parts = split_script(sentence, speech_room([4, 6, 8]), 8)
    assert [part for part, _ in parts] == [SERUM_PARTS[0].rstrip(",") + dash.rstrip(), SERUM_PARTS[1]]


def test_a_clause_break_that_would_cost_another_clip_is_passed_over_for_an_even_split():
    """A comma after the first word: cutting there leaves 21 words (8.4 s), more than one part holds, so the
    sentence would take three clips; it is split evenly into two instead."""
    sentence = "Honestly, " + SERUM.replace(", ", " and ")
    parts = split_script(sentence, speech_room([4, 6, 8]), 8)
    assert len(parts) == 2 and parts[0][0] != "Honestly,"
    assert all(seconds <= speech_room([4, 6, 8]) for _, seconds in parts)


def test_the_split_offer_says_where_it_cut_the_script():
    """ "At sentence boundaries" was said of a sentence cut mid-phrase: the offer names the breaks it used."""
    veo = CATALOG.get("veo3_fast")

    def offer(script: str) -> str:
        return " ".join(fit_script(veo, script, "A woman.", None, None, ALTERNATIVES).notes)

    assert "2 clips at sentence or clause breaks (" in offer(SERUM)
    assert "2 clips between words, as no sentence or clause break fits (" in offer(SERUM.replace(", ", " and "))
    sentences = (
        "This serum changed my routine completely in a week. I honestly cannot imagine my mornings without it "
        "anymore. You have to try it out today."
    )
    assert "2 clips at sentence boundaries (" in offer(sentences)
    mixed = "My skin has never felt this soft and smooth after only one week of using it. " + SERUM.replace(
        ", ", " and "
    )
    assert "clips at sentence or clause breaks, and between words where none fits (" in offer(mixed)


async def test_veos_warning_offers_the_split_at_the_clause_break_through_the_tools(connect, controls):
    """The audit's script, through estimate_cost: the offered parts are cut after "anymore,", and said to be."""
    async with connect() as client:
        result = await client.call_tool("estimate_cost", {"prompt": "woman", "model": "veo3_fast", "script": SERUM})
    text = text_of(result)
    assert not result.is_error and "split it into 2 clips at sentence or clause breaks (" in text, text
    assert f"part 1 (16 words, 8 s): {SERUM_PARTS[0]}\n" in text and f"part 2 (6 words, 8 s): {SERUM_PARTS[1]}" in text
    assert "at sentence boundaries" not in text
    assert await controls.creates() == []


COMMA_JOINED = "Buy,now,and,save,big,today,on,every,single,item,in,the,shop,this,weekend,only," * 6 + "."  # 96 words


def test_every_offered_part_fits_its_clip_when_words_are_joined_by_commas():
    """A split is offered so each part fits: parts are cut between the words count_words counts, not at spaces."""
    assert count_words(COMMA_JOINED) == 96
    parts = split_script(COMMA_JOINED, 8)
    assert len(parts) > 1
    assert all(count_words(part) <= 20 for part, _ in parts)
    assert [w for p, _ in parts for w in p.replace(",", " ").split()] == COMMA_JOINED.replace(",", " ").split()


async def split_offered(connect, prompt: str, script: str) -> str:
    """The error ``estimate_cost`` answers for a script too long for any Kling 3.0 clip: it offers a split."""
    async with connect() as client:
        result = await client.call_tool(
            "estimate_cost", {"model": "kling-3.0/video", "prompt": prompt, "script": script}
        )
    assert result.is_error and "Split it into" in text_of(result), text_of(result)
    return text_of(result)


async def test_the_split_offered_through_the_tools_fits_every_part(connect, controls):
    text = await split_offered(connect, "A host talks.", COMMA_JOINED)
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


@eras_in_turn("model", ["kling-3.0/video", "bytedance/seedance-2", "wan/3-0-video"])
async def test_a_script_with_the_sound_switched_off_is_refused_free_before_any_quote(connect, controls, model):
    """A script with an explicit audio=false on a model with a sound switch was sent as "Dialogue: ..." with the
    sound off, and charged (72, 164, 96 credits) for a clip in which the line is never heard, the form even quoting
    the words as "Spoken". Refused before any quote or question, naming the fix; nothing is asked, sent or charged."""
    seen: list[str] = []
    request = {"model": model, "prompt": "A woman talks to camera.", "script": "This serum changed my mornings."}
    async with connect(elicitation=answering(seen=seen)) as client:
        estimate = await client.call_tool("estimate_cost", {**request, "audio": False})
        made = await client.call_tool("generate_video", {**request, "audio": False})
        with_sound = await client.call_tool("estimate_cost", request)  # the switch left out: on for the line
    for answer in (estimate, made):
        assert answer.is_error, text_of(answer)
        text = text_of(answer)
        assert "the script would never be heard" in text and "nothing was sent or charged" in text, text
        assert "A script needs sound: leave audio out or set it true, or drop the script." in text, text
        assert "Spoken:" not in text and "quote_id" not in text, text
    assert not with_sound.is_error and with_sound.structured_content["quote"]["quote_id"], text_of(with_sound)
    assert seen == [] and await controls.creates() == []


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
    assert "Duration set to 5 s" in text_of(estimate)  # 8 words, 3.2 s, and a breath
    assert estimate.structured_content["quote"]["credits_total"] == 135  # 5 s x 27/s (pro mode with sound)
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


async def test_a_script_gets_a_duration_the_requests_rules_allow(connect, controls):
    """REFERENCE_2_VIDEO makes 8 s clips only: a 4-word script is fitted to 8 s there (it was fitted to 4 s, then
    refused for a duration the caller never set), and the quote offers no shorter clip (the review: it said "pass
    duration=4 for a shorter clip", which that request refuses). Where the mode allows 4 s it gets 8 s too, at the
    same price, and the shorter clip is offered."""
    async with connect(elicitation=answering()) as client:
        reference = await client.call_tool("estimate_cost", REFERENCE)
        frames = await client.call_tool("estimate_cost", {**REFERENCE, "options": {}})
        made = await client.call_tool("generate_video", REFERENCE)
    text = text_of(reference)
    assert not reference.is_error, text
    assert "duration=8" in text and "Duration set to 8 s" in text
    assert "REFERENCE_2_VIDEO" in text and "not allowed" not in text and "pass duration=4" not in text, text
    assert "duration=8" in text_of(frames) and "charges the same for 8 s" in text_of(frames)
    assert "pass duration=4 for a shorter clip" in text_of(frames)
    assert not made.is_error, text_of(made)
    (create,) = await controls.creates()
    assert create["body"]["duration"] == 8 and create["body"]["generationType"] == "REFERENCE_2_VIDEO"


def veo_allowing_six_seconds_only_with_references():
    """Veo as if REFERENCE_2_VIDEO made 6 s clips only, and refusing (not warning about) a script too long."""
    from kie_mcp.catalog.spec import Rule

    six_only = Rule(
        when={"generationType": "REFERENCE_2_VIDEO"}, allow={"duration": [6]}, message="Six only.", source="doc-veo"
    )
    return VEO.model_copy(
        update={
            "rules": [*(r for r in VEO.rules if "duration" not in r.allow), six_only],
            "dialogue": VEO.dialogue.model_copy(update={"overflow": "error"}),
        }
    )


def refused_by_the_requests_rules(script: str) -> Problem:
    """The problem ``build_input`` reports when ``script`` chose 8 s but a request with references allows 6 s only."""
    from kie_mcp.catalog import build_input

    strict = veo_allowing_six_seconds_only_with_references()
    fitted = fit_script(strict, script, "A host talks.", None, None, ALTERNATIVES)
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
    return problem


def test_a_script_no_allowed_duration_fits_says_the_script_chose_it_and_what_to_pass():
    """When the request's rules allow no duration that fits the words, the error says the script (not the caller)
    chose the duration, and which one to pass."""
    problem = refused_by_the_requests_rules(words(17))  # 6.8 s: 8 s fits
    assert problem.field == "duration"
    assert problem.message.startswith("the script chose 8 s (its 17 words take about 6.8 s to say)")
    assert "allows only 6 s" in problem.message and "Six only." in problem.message
    assert "Pass duration=6, and shorten the script" in problem.message


async def test_a_script_on_veo_is_sent_untranslated_unless_the_caller_asks(connect, controls):
    """KIE's enableTranslation translates the prompt to English, dialogue too: with a script it goes out false (and
    the quote shows it) unless the caller set it; without a script nothing changes. The journey: the estimate said
    "Sent enableTranslation=false with the script" though an estimate sends nothing; it says what the create sends."""
    spanish = {"model": "veo3_fast", "prompt": "Una mujer sonríe", "script": "Este sérum cambió mis mañanas."}
    async with connect(elicitation=answering()) as client:
        scripted = await client.call_tool("estimate_cost", spanish)
        asked = await client.call_tool("estimate_cost", {**spanish, "options": {"enableTranslation": True}})
        plain_prompt = await client.call_tool("estimate_cost", {"model": "veo3_fast", "prompt": "Una mujer sonríe"})
        made = await client.call_tool("generate_video", spanish)
    sent = "enableTranslation=false is sent with the create, as the request has a script. With translation on"
    assert sent in text_of(scripted) and sent in text_of(made), text_of(scripted)
    assert "Sent enableTranslation" not in text_of(scripted)  # the journey: an estimate said so, and sent nothing
    assert "enableTranslation=true" in text_of(asked) and "is sent with the create" not in text_of(asked)
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


# -- scripts in every writing system: what is spoken, timed the way it is read --------------------------------------

CHINESE = (  # 59 characters, about 15 s spoken: the same ad as the English one above
    "这款保温杯可以让你的咖啡整整一天保持冰凉。它非常轻巧，可以放进任何包里。"
    "杯盖可以锁紧，路上不会洒出来。早上装满，然后就可以忘记它了。"
)
JAPANESE = (  # 73 characters (kanji and kana)
    "このボトルはコーヒーを一日中冷たく保ちます。とても軽いので、どんなバッグにも入ります。"
    "ふたはしっかり閉まるので、こぼれません。朝に入れて、あとは忘れてください。"
)
THAI = (  # 92 letters (vowel and tone marks not counted) in four phrases parted by spaces, as Thai is written
    "ขวดนี้เก็บกาแฟให้เย็นได้ตลอดทั้งวัน มันเบามากใส่กระเป๋าไหนก็ได้ ฝาล็อกแน่นไม่หกระหว่างทาง เติมตอนเช้าแล้วลืมมันไปได้เลย"
)
HINDI = "यह बोतल आपकी कॉफ़ी को पूरे दिन ठंडा रखती है।"  # 10 words, their vowel signs and nukta marks inside them
ARABIC = "هَذِهِ الزُّجَاجَةُ تُحَافِظُ عَلَى قَهْوَتِكَ بَارِدَةً طَوَالَ اليَوْمِ؟"  # 8 words, fully vowelled (harakat)
FRENCH = "Un café crème, préparé à la française, élégant et léger."  # 10 words
MIXED = "这款iPhone 15的电池可以用一整天。"  # 2 words and 11 characters


def test_chinese_is_timed_by_its_characters_not_by_the_runs_between_punctuation():
    fitted = fit_script(KLING, CHINESE, "A host talks.", None, None, ALTERNATIVES)
    assert fitted.notes[0] == "Script: 59 characters, about 14.8 s at 4 characters/s."
    assert fitted.duration == 15  # 59 / 4 = 14.75 s; it was 3 s, which cut the speech
    spoken = measure(CHINESE)
    assert (spoken.chinese, spoken.words) == (59, 0)


def test_japanese_kanji_and_kana_are_timed_at_the_japanese_rate():
    fitted = fit_script(KLING, JAPANESE, "A host talks.", None, None, ALTERNATIVES)
    assert fitted.notes[0] == "Script: 73 characters, about 14.6 s at 5 characters/s."
    assert fitted.duration == 15
    spoken = measure(JAPANESE)
    assert (spoken.japanese, spoken.chinese, spoken.words) == (73, 0, 0)


async def test_a_line_the_prompt_already_says_is_not_added_to_it_again(connect, controls):
    """The prompt library's examples wrote the spoken line into the prompt and into ``script``, and kie-mcp added
    the script to the prompt too: the model was sent the line twice (repeated or rushed speech, paid for)."""
    line = "I used to carry three bottles. Now I carry one."
    prompt = 'A hiker on a ridge at dawn. She says, upbeat: "I used to carry three bottles… now I carry ONE!"'
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_video", {"model": "veo3_fast", "prompt": prompt, "script": line})
        other = await client.call_tool("generate_video", {"model": "veo3_fast", "prompt": "A hiker.", "script": line})
    assert not made.is_error and not other.is_error, text_of(made) + text_of(other)
    first, second = [create["body"]["prompt"] for create in await controls.creates()]
    assert first == prompt and "not added to it again" in text_of(made)  # once, as the prompt says it
    assert second.count(line) == 1 and "not added" not in text_of(other)  # a prompt without it gets it, once
    short = fit_script(KLING, "Hello there", "A hello there moment in the city.", None, None, ALTERNATIVES)
    assert short.prompt.count("Hello there") == 1 and short.prompt.endswith('"Hello there"')  # too short to judge
    for seen, words in [
        ('A neon sign reading "Open all night" glows above a diner; a waitress looks up.', "Open all night"),
        ("A cake iced with the words Happy birthday Anna; grandma leans in and smiles.", "Happy birthday Anna"),
    ]:  # the same words as something seen, not said: the line is still spoken
        fitted = fit_script(VEO, words, seen, None, None, ALTERNATIVES)
        assert fitted.prompt.endswith(f"The speaker says: {words} (no subtitles)"), fitted.prompt


def test_korean_is_timed_by_its_syllables_not_its_long_words():
    """Korean has spaces, but a word is a phrase of several syllables: 10 words (4 s at 2.5 words/s) are 38
    syllables, about 8.4 s to say, and a 4 s clip cut the speech in half."""
    script = "오늘 아침 신선한 콜드브루 커피를 만나보세요. 하루 종일 시원하고 부드러운 맛이 계속됩니다."
    spoken = measure(script)
    assert (spoken.words, spoken.syllables) == (0, 38)
    fitted = fit_script(KLING, script, "A barista smiles.", None, None, ALTERNATIVES)
    assert fitted.duration == 10  # 8.4 s and a breath
    assert fitted.notes[0] == "Script: 38 syllables, about 8.4 s at 4.5 syllables/s."
    assert measure("Try 콜드브루 today").describe().startswith("2 words and 4 syllables")


def test_thai_is_timed_by_its_letters_without_their_vowel_and_tone_marks():
    fitted = fit_script(KLING, THAI, "A host talks.", None, None, ALTERNATIVES)
    assert fitted.notes[0].startswith("Script: 92 letters, about 9.2 s at 10 letters/s")
    assert fitted.duration == 11  # 9.2 s and a breath
    spoken = measure(THAI)
    assert (spoken.letters, spoken.words) == (92, 0)


@pytest.mark.parametrize(("script", "expected"), [(HINDI, 10), (ARABIC, 8)], ids=["hindi", "vowelled-arabic"])
def test_hindi_and_vowelled_arabic_words_count_once_each(script, expected):
    """A combining mark (a Devanagari vowel sign, an Arabic haraka) belongs to its word: it split words in two."""
    assert count_words(script) == expected
    fitted = fit_script(KLING, script, "A host talks.", None, None, ALTERNATIVES)
    assert fitted.notes[0] == f"Script: {expected} words, about {expected / 2.5:.1f} s at 2.5 words/s."


def test_accents_typed_on_a_mac_count_once_and_the_script_is_sent_composed():
    """macOS types "é" as "e" and a combining accent (NFD): the script is counted and sent in NFC."""
    typed = unicodedata.normalize("NFD", FRENCH)
    assert count_words(typed) == 10
    fitted = fit_script(VEO, typed, "A chef smiles.", None, None, ALTERNATIVES)
    assert fitted.duration == 8 and fitted.words == 10  # 4.0 s and a breath; 8 s costs what 6 s does
    assert FRENCH in fitted.prompt and unicodedata.is_normalized("NFC", fitted.prompt)


def test_latin_words_inside_chinese_add_their_time_to_the_characters():
    fitted = fit_script(KLING, MIXED, "A host talks.", None, None, ALTERNATIVES)
    assert fitted.notes[0] == "Script: 2 words and 11 characters, about 3.5 s at 2.5 words/s and 4 characters/s."
    assert fitted.duration == 5  # 3.5 s and a breath
    spoken = measure(MIXED)
    assert (spoken.words, spoken.chinese) == (2, 11)


def test_veo_warns_that_a_chinese_script_longer_than_its_clip_may_be_cut():
    """The warning compared a word count with warn_words (20): a 15 s Chinese script, "7 words", got none."""
    fitted = fit_script(VEO, CHINESE, "A host talks.", None, None, ALTERNATIVES)
    assert fitted.duration == 8
    assert any(n.startswith("Warning: 59 characters is a lot for a 8 s clip") and "may cut" in n for n in fitted.notes)


def test_a_chinese_script_no_allowed_duration_fits_is_refused_with_its_time_not_a_word_count():
    """30 characters take 7.5 s to say (they were "3 words", 1.2 s, and went into a 6 s clip unrefused)."""
    problem = refused_by_the_requests_rules(CHINESE[:32])  # up to "任": 30 characters
    expected = "the script chose 8 s (its 30 characters take about 7.5 s to say), but this request allows"
    assert problem.message.startswith(expected), problem.message


def test_a_long_chinese_script_splits_at_full_stops_into_parts_that_each_fit():
    script = CHINESE * 6  # about 89 s
    parts = split_script(script, speech_room([15]))  # 15 s clips, a breath left in each: 14 s of speech
    assert len(parts) == 8  # 6 parts of 14.75 s filled 15 s clips to the last frame
    assert "".join(part for part, _ in parts) == script  # no spaces put between Chinese parts, nothing lost
    assert all(part.endswith("。") and seconds <= 14 for part, seconds in parts)
    assert all(seconds == measure(part).seconds for part, seconds in parts)


def test_a_japanese_sentence_longer_than_a_clip_breaks_at_its_commas_into_even_pieces():
    parts = split_script(JAPANESE, 3)
    assert "".join(part for part, _ in parts) == JAPANESE
    assert all(seconds <= 3 for _, seconds in parts)
    assert "とても軽いので、" in [part for part, _ in parts]  # a clause end where one falls in the sentence
    assert parts[0] == ("このボトルはコーヒーを", 2.2)  # 4.2 s in two even pieces, not 3 s and a last 1.2 s


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_japanese_is_never_cut_before_a_small_kana_or_a_long_vowel_mark(limit):
    """A small kana or "ー" ends the sound of the kana before it: a part starting with one cuts a sound in two."""
    script = "きょうはちょっとしゃしんをとりましょう、コーヒーショップでチーズケーキをたべましょう。"
    parts = split_script(script, limit)
    assert len(parts) > 1 and "".join(part for part, _ in parts) == script
    assert not [part for part, _ in parts if part[0] in "ぁぃぅぇぉっゃゅょァィゥェォッャュョー"]


@pytest.mark.parametrize(
    ("sentence", "end", "expected"), [(HINDI, "।", 3), (ARABIC, "؟", 2)], ids=["hindi-danda", "arabic-question"]
)
def test_hindi_and_arabic_scripts_split_at_their_own_sentence_ends_never_inside_a_word(sentence, end, expected):
    script = " ".join([sentence] * 5)  # 50 Hindi words (20 s: 2 sentences a part), 40 Arabic words (16 s: 3 a part)
    parts = split_script(script, 10)
    assert len(parts) == expected
    assert " ".join(part for part, _ in parts).split() == script.split()  # every word whole, in order
    assert all(part.endswith(end) and seconds <= 10 for part, seconds in parts)


def test_thai_is_cut_only_at_the_spaces_between_its_phrases():
    parts = split_script(THAI, 5)
    phrases = THAI.split()
    assert all(set(part.split()) <= set(phrases) for part, _ in parts)  # whole phrases only
    assert " ".join(part for part, _ in parts) == THAI
    assert all(seconds <= 5 for _, seconds in parts)


def test_a_thai_script_with_no_space_to_cut_at_is_refused_whole_not_cut_inside_its_words():
    run_on = THAI.replace(" ", "") * 2  # 184 letters, about 18.4 s, with no space or punctuation in it
    with pytest.raises(InvalidRequest) as caught:
        fit_script(KLING, run_on, "A host talks.", None, None, ALTERNATIVES)
    text = str(caught.value)
    assert "the script has 184 letters (about 18.4 s spoken)" in text
    assert "no sentence end, clause end or space to split it at" in text and "Split it into" not in text


async def test_a_chinese_script_through_the_tools_gets_a_clip_long_enough_to_say_it(connect, controls):
    async with connect(elicitation=answering()) as client:
        kling = await client.call_tool(
            "estimate_cost", {"model": "kling-3.0/video", "prompt": "主持人", "script": CHINESE}
        )
        veo = await client.call_tool("estimate_cost", {"model": "veo3_fast", "prompt": "主持人", "script": CHINESE})
        made = await client.call_tool(
            "generate_video", {"model": "kling-3.0/video", "prompt": "主持人", "script": CHINESE}
        )
    assert "Script: 59 characters, about 14.8 s at 4 characters/s." in text_of(kling)
    assert "Duration set to 15 s to fit the script" in text_of(kling)
    assert "Warning: 59 characters is a lot for a 8 s clip" in text_of(veo) and "may cut" in text_of(veo)
    assert not made.is_error, text_of(made)
    (create,) = await controls.creates()
    assert str(create["body"]["input"]["duration"]) == "15" and CHINESE in create["body"]["input"]["prompt"]


async def test_a_long_chinese_script_through_the_tools_is_offered_as_parts_cut_at_full_stops_that_each_fit(
    connect, controls
):
    text = await split_offered(connect, "主持人", CHINESE * 6)
    assert "the script has 354 characters (about 88.5 s spoken)" in text
    offered = re.findall(r"part \d+ \((\d+) characters, (\d+) s\): (\S+)", text)
    assert len(offered) == 8  # each with a breath in its clip (6 filled their 15 s clips to the last frame)
    assert all(int(count) / 4 + BREATH_SECONDS <= int(seconds) <= 15 for count, seconds, _ in offered), offered
    assert all(part.endswith("。") for _, _, part in offered)
    assert "".join(part for _, _, part in offered) == CHINESE * 6
    assert await controls.creates() == []


# -- a split gives every part the breath one clip gets, and says what its parts cost in all --------------------------

AD = (  # 57 words: two sentences make 20 words, 8.0 s, a whole Veo clip with no breath left
    "Meet the bottle that keeps your coffee cold all day long. It is light enough for any bag you own. "
    "The lid locks, so nothing spills on the way to work. Fill it in the morning, then forget it all day. "
    "Cold brew, made slow, ready whenever you are. Order yours today and taste the difference tomorrow."
)
SPLITS = {  # requests whose script no clip of their model holds: Kling refuses with a split, Veo warns with one
    "kling-chinese-no-prompt": {"model": "kling-3.0/video", "prompt": "", "script": CHINESE * 6},
    "kling-japanese-std": {
        "model": "kling-3.0/video",
        "prompt": "A host talks.",
        "script": JAPANESE * 3,
        "options": {"mode": "std"},
    },
    "veo-english-two-takes": {"model": "veo3_fast", "prompt": "A host talks.", "script": AD, "variations": 2},
}
OFFERED_PART = re.compile(r"^  part \d+ \((.+?), (\d+) s\): (.+)$", re.MULTILINE)
SPLIT_TOTAL = re.compile(r"then join them; ([\d.]+) credits \(about \$[\d.]+\) in all\):")


async def offered_split(client, request: dict) -> tuple[str, list[tuple[int, str]]]:
    """The answer ``estimate_cost`` gives ``request``, and the split it offers: (the part's clip, its words)."""
    result = await client.call_tool("estimate_cost", request)
    text = text_of(result)
    assert "split it into" in text.lower(), text
    return text, [(int(seconds), part) for _, seconds, part in OFFERED_PART.findall(text)]


@pytest.mark.parametrize("request_", SPLITS.values(), ids=SPLITS.keys())
async def test_every_part_of_an_offered_split_leaves_a_breath_in_its_clip(connect, controls, request_):
    """A script that fits one clip gets a breath (BREATH_SECONDS) at its start and end; the parts of a split were
    packed up to the longest clip, each spoken to its last frame (59 Chinese characters, 14.75 s, in 15 s; two
    10-word sentences in a Veo clip of 8 s), and cut or rushed once generated and joined."""
    script = request_["script"]
    async with connect() as client:
        _, parts = await offered_split(client, request_)
    assert len(parts) > 1
    assert "".join(part for _, part in parts).replace(" ", "") == script.replace(" ", "")  # nothing lost, in order
    for clip, part in parts:
        spoken = measure(part, japanese=has_kana(script)).seconds  # at the model's speaking rate for this script
        assert spoken + BREATH_SECONDS <= clip + 1e-9, (part, spoken, clip)
    assert await controls.creates() == []


@pytest.mark.parametrize("request_", SPLITS.values(), ids=SPLITS.keys())
async def test_the_total_an_offered_split_names_is_what_its_parts_cost_estimated_one_by_one(
    connect, controls, request_
):
    """The workflow estimates each part of the split and shows the user the total: the split says that total (at
    the request's settings: Kling's std mode, Veo's two takes; a request with no prompt of its own too), and each
    part's own estimate gets the clip the split offered it, so the parts' quotes add up to the total it named."""
    async with connect() as client:
        text, parts = await offered_split(client, request_)
        named = SPLIT_TOTAL.search(text)
        assert named, text
        quoted = 0.0
        for clip, part in parts:
            estimate = await client.call_tool("estimate_cost", {**request_, "script": part})
            assert not estimate.is_error, text_of(estimate)
            assert f"Duration set to {clip} s" in text_of(estimate), (clip, text_of(estimate))
            quoted += estimate.structured_content["quote"]["credits_total"]
    assert float(named.group(1)) == pytest.approx(quoted)
    assert await controls.creates() == []


async def test_a_sentence_that_fits_a_clip_is_never_cut_to_leave_a_breath(connect, controls):
    """Three 19-word sentences (7.6 s each) for Veo's 8 s clips: leaving a full breath in every part cut each
    sentence in two, six clips at twice the price, each line broken mid-thought. A whole sentence that fits the
    clip is a part of its own, in a tight clip, as a script that fits one clip only without a breath is given."""
    sentences = [
        "Our new trail shoe grips wet rock, dries in minutes, and weighs less than a paperback novel on scales.",
        "Runners told us their old shoes slipped on every muddy climb, so we rebuilt the whole outsole from scratch.",
        "Try a pair for thirty days on your hardest route, and if they fail you, send them back free.",
    ]
    assert all(len(sentence.split()) == 19 for sentence in sentences)
    request = {"model": "veo3_fast", "prompt": "A host talks.", "script": " ".join(sentences)}
    async with connect() as client:
        text, parts = await offered_split(client, request)
    assert [part for _, part in parts] == sentences, text
    assert [clip for clip, _ in parts] == [8, 8, 8]
    named = SPLIT_TOTAL.search(text)
    assert named and float(named.group(1)) == 180, text  # three Veo clips, not six
    assert await controls.creates() == []


async def test_a_split_total_says_what_the_caps_count_when_kie_was_seen_charging_more(connect, controls):
    """The review: for veo3_lite (listed 30 a clip, seen charged 60) the split said "210 credits in all", the list
    price, while the caps count 420; the single quote says the higher figure, so the split says it too."""
    script = (
        "Welcome to the launch of our new product line. We built it for people who care about quality. "
        "Every piece is made by hand in our small workshop by the sea. It takes three days to finish one. "
        "Our team tested each design for a full year before we were happy. Now it is finally ready for you. "
        "Order today and get free shipping anywhere in the world. Thank you for watching and see you soon."
    )
    async with connect() as client:
        text, parts = await offered_split(client, {"model": "veo3_lite", "prompt": "A presenter", "script": script})
    listed, counted = 30 * len(parts), 60 * len(parts)
    assert f"; {listed} credits (about $" in text, text
    assert f"in all, up to {counted} counted against your caps" in text, text
    assert await controls.creates() == []
