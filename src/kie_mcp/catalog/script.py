"""Script to duration: the spoken script decides the clip length, and goes into the prompt as dialogue.

A script needs ``words / 2.5`` seconds at about 2.5 words per second. Scripts written without spaces between words
are timed by their characters instead, each at its own speaking rate: Chinese, Japanese (kanji and kana), and Thai
with Lao, Khmer and Burmese (letters, not their vowel and tone marks). The script is normalised to NFC first, so an
accent typed on a Mac is one letter; a word is letters, marks and digits, so Hindi and vowelled Arabic words count
once each. The shortest duration the model allows that fits with a breath at each end is chosen (or a longer one
that costs the same); when none fits, the error (Veo's warning) offers a split at sentence ends, a sentence too long
for a clip cut at its last clause break (comma, semicolon, colon, dash) that fits, else between words (each part
leaving the same breath, with its duration; the total price when the caller can price a clip; the offer says which
breaks it used) and models with longer clips. The request's cross-field rules
(Veo's REFERENCE_2_VIDEO makes 8 s clips only) and the fields a script sets (``dialogue.set_default``) are applied by
``build_input``, which sees the whole request: ``ScriptFit.request`` carries the durations that suit the script there.

An extension (continue_video operation=extend) speaks the next line the same way, fitted to what it adds: its duration
setting (Grok, PixVerse), or, with none, the length the catalogue gives it (``adds_seconds``: a Veo extension's
about 7 s), which is judged and never sent. Its split is into extensions, one after another, and offers no other
models: an extension continues its clip on that clip's own model.
"""

from __future__ import annotations

import bisect
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import accumulate, pairwise

from kie_mcp.catalog.pricing import credits_figure, credits_text
from kie_mcp.words import listed, plain

from .pricing import usd, usd_text
from .spec import DialogueSpec, ModelSpec
from .validate import InvalidRequest, Problem, ScriptedRequest, sound_models, such_as

# An unhurried English delivery (150 words a minute), a little below newsreading pace.
WORDS_PER_SECOND = 2.5
# The breath a line needs at the start and end of its clip (the prompting guide, section 6), added to the time it
# takes to say before a duration is picked: 10 words (4.0 s) got a 4 s clip with none, and were cut or rushed.
BREATH_SECONDS = 1.0
# One syllable a character. Chinese newsreaders are reported at 250-300 characters a minute (CNR's morning news
# 250-270, CCTV's Xinwen Lianbo about 300); like the English rate, this takes the unhurried end, 240 a minute.
CHINESE_CHARACTERS_PER_SECOND = 4.0
# NHK writes news for 300 characters (kanji and kana together) a minute; other broadcasters read 350-400. A kanji
# carries more than one mora, so this is fewer than the 7-8 morae a second of read Japanese (Pellegrino et al. 2011).
JAPANESE_CHARACTERS_PER_SECOND = 5.0
# An estimate, not a measured figure: about 4 syllables a second (conversational Thai is put at 5-6) at about 2.4
# letters a syllable (vowel and tone marks not counted) in sample ad copy. Used for Lao, Khmer and Burmese too.
THAI_LETTERS_PER_SECOND = 10.0
# Korean puts spaces between words, but a word is a whole phrase (3 syllables and more: 일요일에는), so 2.5 words a
# second came out about a third short. Korean speech-rate studies measure syllables a second (Lee et al. 2017,
# Phonetics and Speech Sciences 9(1)); 4.5 is an estimate at the unhurried end, as for English.
KOREAN_SYLLABLES_PER_SECOND = 4.5

# Writing systems timed per character, as (first, last) code points.
_HAN = ((0x3005, 0x3007), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x323AF))
_KANA = ((0x3040, 0x309F), (0x30A0, 0x30FF), (0x31F0, 0x31FF), (0xFF66, 0xFF9F), (0x1B000, 0x1B16F))
_THAI_LIKE = (  # Thai, Lao, Myanmar (and its extensions), Khmer (and its symbols)
    (0x0E00, 0x0E7F),
    (0x0E80, 0x0EFF),
    (0x1000, 0x109F),
    (0xA9E0, 0xA9FF),
    (0xAA60, 0xAA7F),
    (0x1780, 0x17FF),
    (0x19E0, 0x19FF),
)
# Inside a word between its letters: apostrophes, hyphens, and the zero-width (non-)joiners of Indic and Persian.
_INNER = frozenset("'’-‐\u200c\u200d")
# Kana that never start a piece (a cut before them splits a sound): small kana, the long-vowel mark, iteration marks.
_CANNOT_START = frozenset("ぁぃぅぇぉっゃゅょゎゕゖァィゥェォッャュョヮヵヶーｰ々ゝゞヽヾ")
_CLOSERS = "\"'”’»)\\]）」』】〕〉》"
_NO_SPACES = "".join(f"{chr(a)}-{chr(b)}" for a, b in (*_HAN, *_KANA, *_THAI_LIKE))
# The end of a sentence: a full-width stop always (Chinese and Japanese put no space after it); ". ! ? … ؟ । ॥" when
# a space, the end, or a character of a script without spaces follows (so "3.5" and "kie.ai" stay whole).
SENTENCE_BREAK = re.compile(rf"[。！？]+[{_CLOSERS}]*|(?<![.!?…؟।॥])[.!?…؟।॥]+[{_CLOSERS}]*(?=\s|$|[{_NO_SPACES}])")
# Between two words: the end of a clause, where a long sentence breaks first: a comma, semicolon or colon before a
# space (CJK and Arabic marks need none), an em dash, or a spaced hyphen or en dash (unspaced, "2–3" is a range).
CLAUSE_END = re.compile(r"[,;:]\s|—|\s[-–]{1,2}\s|[，、；：،؛]")
# A part of a split that ends at a clause break (``CLAUSE_END``'s marks; the part is stripped, so its space is gone).
CLAUSE_TAIL = re.compile(rf"(?:[,;:—，、；：،؛]|\s[-–]{{1,2}})[{_CLOSERS}]*$")
# A prompt ending a sentence (closing quotes or brackets may follow); one that does not gets a full stop before the
# script part, so the dialogue is not run into the scene ("...morning light The speaker says: ...").
SENTENCE_END = re.compile(rf"[.!?…。！？؟।॥][{_CLOSERS}]*$")

# What one clip of the request costs at a duration (seconds) with sound on or off as the script sets it (``ClipCost``:
# as that clip's own estimate quotes it, and as the caps count it), or None when unknown. The caller, who sees the
# whole request (mode, resolution, variations, KIE's live prices), gives it to ``fit_script`` so a split can say what
# its parts cost.
ClipPrice = Callable[[int, bool | None], "ClipCost | None"]


@dataclass(frozen=True)
class ClipCost:
    """What one clip's own estimate quotes (``listed``), and what the caps count for it (``counted``: higher when
    KIE was seen charging more than its list, or its live list is lower than kie-mcp's catalogue)."""

    listed: float
    counted: float


@dataclass(frozen=True)
class Spoken:
    """What a script has to say, counted the way each writing system is read aloud, and how long that takes."""

    words: int = 0  # words of scripts written with spaces: letters, marks and digits, with inner ' and -
    chinese: int = 0  # Chinese characters (in a script without kana)
    japanese: int = 0  # kanji and kana (in a script with kana)
    letters: int = 0  # Thai, Lao, Khmer and Burmese letters, their vowel and tone marks not counted
    syllables: int = 0  # Korean (Hangul) syllables

    @property
    def characters(self) -> int:
        return self.chinese + self.japanese

    @property
    def seconds(self) -> float:
        return (
            self.words / WORDS_PER_SECOND
            + self.chinese / CHINESE_CHARACTERS_PER_SECOND
            + self.japanese / JAPANESE_CHARACTERS_PER_SECOND
            + self.letters / THAI_LETTERS_PER_SECOND
            + self.syllables / KOREAN_SYLLABLES_PER_SECOND
        )

    def _counts(self) -> list[tuple[int, str, float]]:
        """(count, unit, rate) of each kind the script has; words alone when it has nothing (``0 words``)."""
        rate = JAPANESE_CHARACTERS_PER_SECOND if self.japanese else CHINESE_CHARACTERS_PER_SECOND
        counts = [
            (self.words, "words", WORDS_PER_SECOND),
            (self.characters, "characters", rate),
            (self.letters, "letters", THAI_LETTERS_PER_SECOND),
            (self.syllables, "syllables", KOREAN_SYLLABLES_PER_SECOND),
        ]
        return [c for c in counts if c[0]] or counts[:1]

    @property
    def amount(self) -> str:
        """``30 words``, ``66 characters``, ``3 words and 40 characters``: what was counted, in the script's terms."""
        return " and ".join(f"{count} {unit}" for count, unit, _ in self._counts())

    def describe(self) -> str:
        """The amount, the time it takes to say, and the rates used (``..., about 12.0 s at 2.5 words/s``)."""
        rates = " and ".join(f"{rate:g} {unit}/s" for _, unit, rate in self._counts())
        marks = " (vowel and tone marks not counted)" if self.letters else ""
        return f"{self.amount}, about {self.seconds:.1f} s at {rates}{marks}"


@dataclass
class ScriptFit:
    prompt: str
    duration: int | None
    audio: bool | None
    words: int  # the words counted (scripts with spaces); ``spoken`` has the characters of scripts without
    notes: list[str] = field(default_factory=list)
    request: ScriptedRequest | None = None  # for ``build_input(scripted=...)``: what the request's rules settle
    spoken: Spoken = field(default_factory=Spoken)


def _writing(ch: str) -> str | None:
    """``han``, ``kana`` or ``thai`` for a character of a script written without spaces, else None."""
    point = ord(ch)
    for name, ranges in (("han", _HAN), ("kana", _KANA), ("thai", _THAI_LIKE)):
        if any(first <= point <= last for first, last in ranges):
            return name
    return None


def _spoken_char(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "LN"


def _word_char(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "LMN" and _writing(ch) is None


def has_kana(text: str) -> bool:
    """Whether ``text`` is Japanese (has kana), so its kanji are read at the Japanese rate, not the Chinese one."""
    return any(_writing(ch) == "kana" and _spoken_char(ch) for ch in text)


def _atoms(text: str, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int, str]]:
    """The spoken units of ``text[start:end]`` as ``(start, end, kind)``; a split cuts between these, never inside.

    ``word``: a word of a script with spaces (its marks and inner apostrophes or hyphens included). ``cjk``: one
    Chinese character or kana, with the marks and small kana that belong to it. ``thai``: a run of Thai (Lao, Khmer,
    Burmese) up to a space or punctuation, since its words are written together and only a dictionary could part them.
    """
    end = len(text) if end is None else end
    i = start
    while i < end:
        ch = text[i]
        writing, category = _writing(ch), unicodedata.category(ch)[0]
        j = i + 1
        if writing == "thai" and category in "LMN":
            while j < end and _writing(text[j]) == "thai" and unicodedata.category(text[j])[0] in "LMN":
                j += 1
            yield i, j, "thai"
        elif writing in ("han", "kana") and category in "LN":
            while j < end and (text[j] in _CANNOT_START or unicodedata.category(text[j])[0] == "M"):
                j += 1
            yield i, j, "cjk"
        elif writing is None and category in "LMN":
            while j < end:
                if _word_char(text[j]):
                    j += 1
                    continue
                k = j
                while k < end and text[k] in _INNER:
                    k += 1
                if k in (j, end) or not _word_char(text[k]):
                    break
                j = k
            yield i, j, "word"
        i = j


def _tally(text: str, atoms: Iterable[tuple[int, int, str]], japanese: bool) -> Spoken:
    words = characters = letters = syllables = 0
    for start, end, kind in atoms:
        if kind == "word":
            hangul = sum(0xAC00 <= ord(ch) <= 0xD7A3 for ch in text[start:end])  # a Korean word: by its syllables
            syllables += hangul
            words += not hangul
        elif kind == "cjk":
            characters += sum(_spoken_char(ch) for ch in text[start:end])
        else:
            letters += sum(_spoken_char(ch) for ch in text[start:end])
    if japanese:
        return Spoken(words=words, japanese=characters, letters=letters, syllables=syllables)
    return Spoken(words=words, chinese=characters, letters=letters, syllables=syllables)


SPOKEN_SHOWN = 240  # characters of the script the notes repeat (a confirmation is read, not scrolled)


def measure(text: str, japanese: bool | None = None) -> Spoken:
    """How much ``text`` says and how long it takes. ``japanese``: whether its kanji are Japanese (default: whether
    it has kana; a part of a split passes the whole script's answer)."""
    text = unicodedata.normalize("NFC", text)
    return _tally(text, _atoms(text), has_kana(text) if japanese is None else japanese)


def count_words(text: str) -> int:
    """The words of ``text`` (scripts written with spaces; see ``measure`` for the characters of those without)."""
    return measure(text).words


def seconds_for(words: int) -> float:
    return words / WORDS_PER_SECOND


def allowed_durations(spec: ModelSpec) -> list[int]:
    """Every whole-second duration the model accepts, ascending (empty when it has no duration setting)."""
    target = spec.field_for_arg("duration")
    if target is None:
        return []
    if target.values:
        return sorted(int(float(v)) for v in target.values)
    low, high = int(target.min or 1), int(target.max or target.min or 1)
    return list(range(low, high + 1))


def fixed_seconds(spec: ModelSpec) -> int | None:
    """How long a clip of ``spec`` is when no setting chooses it: a follow-up's new part of a known length (a Veo
    extension adds about 7 s: the catalogue's ``adds_seconds``); None for a model with a duration setting, or whose
    clip length the catalogue does not know."""
    if spec.field_for_arg("duration") is not None or spec.followup is None:
        return None
    return spec.followup.adds_seconds


def extends(spec: ModelSpec) -> bool:
    """Whether ``spec`` extends a finished clip (continue_video operation=extend): its clip is added to that one."""
    return spec.followup is not None and spec.followup.operation == "extend"


def suited_durations(spec: ModelSpec, durations: list[int], seconds: float) -> list[int]:
    """The durations that fit ``seconds`` of speech, best first; empty when none does.

    Best: the shortest that leaves a breath (``BREATH_SECONDS``), or rather the longest that costs the same as it
    whatever else the request says (Veo bills a clip at 60 credits whether it is 4, 6 or 8 s: 8 s gives the line
    room for free). Then the longer ones that leave a breath, shortest first, and last those that fit only without
    one (a 20-word line in an 8 s clip). ``build_input`` sends the first of these the request's rules allow."""
    roomy = [d for d in durations if d >= seconds + BREATH_SECONDS - 1e-9]
    tight = [d for d in durations if seconds - 1e-9 <= d < seconds + BREATH_SECONDS - 1e-9]
    if not roomy:
        return sorted(tight, reverse=True)  # the most room there is
    best = max(d for d in roomy if _same_price(spec, d, roomy[0]))
    return [best, *(d for d in roomy if d != best), *sorted(tight, reverse=True)]


def _same_price(spec: ModelSpec, one: int, other: int) -> bool:
    """Whether a clip of ``one`` seconds costs what one of ``other`` does for every request: a price per clip or
    task whose rates, read for each duration, are the same rates (Veo's name no duration at all). A price per
    second, or none on file, is never the same."""
    table, target = spec.price, spec.field_for_arg("duration")
    if table is None or table.unit == "second" or target is None:
        return one == other

    def rates_at(seconds: int) -> list[tuple[object, ...]]:
        found = []
        for rate in table.rates:
            wanted = rate.when.get(target.name)
            options = wanted if isinstance(wanted, list) else [wanted]
            if wanted is None or any(_seconds(option) == seconds for option in options):
                rest = sorted((key, repr(value)) for key, value in rate.when.items() if key != target.name)
                found.append((tuple(rest), rate.credits, rate.input_seconds))
        return found

    return rates_at(one) == rates_at(other)


def _seconds(value: object) -> float | None:
    """A duration as a price rate writes it (``8``, ``"10"``, ``"10s"``), in seconds; None when it is none."""
    try:
        return float(str(value).strip().removesuffix("s"))
    except ValueError:
        return None


def _shortest_with_breath(durations: list[int], seconds: float) -> int | None:
    """The shortest duration that says the script with a breath at the start and end, if any."""
    return next((d for d in durations if d >= seconds + BREATH_SECONDS - 1e-9), None)


def _shorter_offer(spec: ModelSpec, durations: list[int], seconds: float, chosen: int) -> int | None:
    """The shorter clip that fits the script too, which the note offers when ``chosen`` costs the same as it."""
    shortest = _shortest_with_breath(durations, seconds)
    if fixed_seconds(spec) is not None or shortest is None or chosen <= shortest:
        return None
    return shortest


def _duration_note(spec: ModelSpec, durations: list[int], seconds: float, chosen: int) -> str:
    """Why the script got ``chosen`` seconds: it fits with a breath, costs the same as a shorter fit, or is tight."""
    shortest = _shortest_with_breath(durations, seconds)
    if fixed_seconds(spec) is not None:  # no setting: the script fits the length the model makes, or fits it tight
        room = "with a breath at the start and end" if shortest is not None else "with little room for a breath"
        return f"The script fits what {spec.title} adds (about {chosen} s), {room}."
    if shortest is None:
        return (
            f"Duration set to {chosen} s to fit the script, with little room for a breath at the start and end: a "
            "slightly shorter script reads more naturally."
        )
    if (offered := _shorter_offer(spec, durations, seconds, chosen)) is not None:
        return (
            f"Duration set to {chosen} s to fit the script: {offered} s would fit it too, and {spec.title} "
            f"charges the same for {chosen} s, so the line has room (pass duration={offered} for a shorter clip)."
        )
    return f"Duration set to {chosen} s to fit the script, with a breath at the start and end."


def fit_script(
    spec: ModelSpec,
    script: str,
    prompt: str,
    duration: int | None,
    audio: bool | None,
    alternatives: list[ModelSpec],
    price_of: ClipPrice | None = None,
) -> ScriptFit:
    """Choose the duration for ``script`` and put it into the prompt, or explain why it cannot fit (``price_of``:
    what a clip of this request costs, so an offered split can say what its parts cost in all). A script is refused
    where it would never be heard: on a model that makes silent video, and with the sound switched off (``audio``
    False on a model with a sound setting), which sent the line as dialogue with the sound off, and was charged."""
    script = unicodedata.normalize("NFC", " ".join(script.split()))
    spoken = measure(script)
    needed = spoken.seconds
    if "audio" not in spec.capabilities:  # the models the audio refusal names (validate.sound_models)
        message = (
            f"{spec.id} makes silent video, so the script would not be spoken. Pick a model with the audio capability"
            f"{such_as(sound_models(spec, switchable=False))} (list_models shows capabilities), or leave script out."
        )
        raise InvalidRequest(spec.id, [Problem("script", message)])
    if audio is False and spec.field_for_arg("audio") is not None:  # the switch turned off: the line never heard
        message = (
            f"{spec.id} would make this clip with its sound off (audio=false), so the script would never be heard, "
            "and the clip would be charged all the same. A script needs sound: leave audio out or set it true, or "
            "drop the script."
        )
        raise InvalidRequest(spec.id, [Problem("audio", message)])
    sound_on = audio is None and spec.field_for_arg("audio") is not None  # a switch left unset: on for the dialogue
    overlong = _LongScript(spec, script, spoken, alternatives, True if sound_on else audio, price_of)
    dialogue = spec.dialogue or DialogueSpec(source="")  # the default way (built here: models build on use)
    # The words themselves too: the confirmation shows the prompt's start only, and the dialogue comes after the scene
    notes = [f"Script: {spoken.describe()}.", f"Spoken: {plain(script, limit=SPOKEN_SHOWN)}."]
    durations = allowed_durations(spec)
    fixed = fixed_seconds(spec)  # no duration setting, but a known length (a Veo extension's 7 s): judged against it
    if fixed is not None:
        durations = [fixed]
    chosen = duration
    candidates: list[int] = []  # when the script chooses: the durations that suit it, best first (rules pick)
    duration_note: int | None = None
    offered: int | None = None  # the shorter clip the duration note offers ("pass duration=N")
    if durations:
        fitting = suited_durations(spec, durations, needed)
        if duration is not None:
            if duration < needed and dialogue.overflow == "error":
                raise _too_long(overlong, durations, given=duration)
        elif fitting:
            chosen, candidates, duration_note = fitting[0], fitting, len(notes)
            notes.append(_duration_note(spec, durations, needed, chosen))
            offered = _shorter_offer(spec, durations, needed, chosen)
        elif dialogue.overflow == "warn":
            chosen, candidates = durations[-1], [durations[-1]]
            notes.append(_warning(overlong, chosen, durations))
        else:
            raise _too_long(overlong, durations)
    # ``warn_words`` is in words; a script counted in characters is compared by the time it takes to say.
    too_long_to_say = dialogue.warn_words and needed > seconds_for(dialogue.warn_words)
    if too_long_to_say and not any("may cut" in n for n in notes):
        notes.append(_warning(overlong, chosen, durations))
    if fixed is not None:  # judged against the length the model makes; there is no setting to send it in
        chosen, candidates, duration_note, offered = duration, [], None, None  # a duration given: the request's
    if sound_on:
        audio = True
        notes.append("Sound turned on for the dialogue.")
    if _already_says(prompt, script):  # the words written into the prompt too: the model would hear them twice
        text = prompt.strip()
        notes.append("The script's words are already in the prompt, so they were not added to it again.")
    else:
        text = dialogue.template.format(prompt=closed(prompt), script=script).strip()
    request = ScriptedRequest(
        notes=notes,
        amount=spoken.amount,
        seconds=needed,
        durations=tuple(candidates),
        choices=tuple(durations),
        duration_note=duration_note,
        offered_duration=offered,
        defaults=dialogue.set_default,
        why=dialogue.set_default_note,
    )
    return ScriptFit(
        prompt=text, duration=chosen, audio=audio, words=spoken.words, notes=notes, request=request, spoken=spoken
    )


# Words that introduce a spoken line ("She says, upbeat:", "Dialogue:", "voice-over", 她说).
_SPEECH_CUE = re.compile(
    r"(?i)\b(?:says?|said|saying|speaks?|asks?|answers?|repl(?:y|ies|ied)|whispers?|shouts?|yells?|sings?"
    r"|narrat\w*|dialogue|voice-?over|vo)\b|[说說]"
)


def _already_says(prompt: str, script: str) -> bool:
    """Whether ``prompt`` already has the script spoken: its words, in order (any letter case, quotes or
    punctuation), right after a word that introduces speech ("She says, upbeat: ..."), within the script's length
    (and 60 characters) of it. The same words elsewhere (a sign reading "Open all night", a cake iced with a name)
    are something seen, and the line is still added. The prompt's words are read once and the script's found among
    them once (``_runs_of``): a window read again after each cue was quadratic (41 s for a prompt of 100 KB of
    "She says" and a long script)."""
    said = _plain_words(script)
    if len(said) < 12:  # a word or two may stand in the prompt for another reason
        return False
    text = unicodedata.normalize("NFC", prompt)
    words = [(m.start(), m.end(), w) for m in _WORD.finditer(text) for w in _plain_words(m.group()).split()]
    run = said.split()
    found = _runs_of([w for *_, w in words], run)
    if not found:
        return False
    starts = [words[i][0] for i in found]
    reach = len(script) + 60
    for cue in _SPEECH_CUE.finditer(text):
        at = bisect.bisect_left(starts, cue.end())  # the first run after the cue ends nearest it
        if at < len(found) and words[found[at] + len(run) - 1][1] <= cue.end() + reach:
            return True
    return False


_WORD = re.compile(r"[^\W_]+")


def _runs_of(words: list[str], run: list[str]) -> list[int]:
    """Where ``run`` stands in ``words`` (the indexes it begins at, in order), in one pass (Knuth-Morris-Pratt)."""
    back = [0] * len(run)
    k = 0
    for i in range(1, len(run)):
        while k and run[i] != run[k]:
            k = back[k - 1]
        if run[i] == run[k]:
            k += 1
        back[i] = k
    found, k = [], 0
    for i, word in enumerate(words):
        while k and word != run[k]:
            k = back[k - 1]
        if word == run[k]:
            k += 1
        if k == len(run):
            found.append(i - k + 1)
            k = back[k - 1]
    return found


def _plain_words(text: str) -> str:
    return " ".join(re.sub(r"[\W_]+", " ", unicodedata.normalize("NFC", text).casefold()).split())


def closed(prompt: str) -> str:
    """``prompt`` as a finished sentence, so the script part that follows it starts a new one."""
    text = prompt.strip()
    if not text or SENTENCE_END.search(text):
        return text
    return text.rstrip(",;: ") + "."


def split_script(script: str, max_seconds: float, whole_up_to: float | None = None) -> list[tuple[str, float]]:
    """Sentences packed into parts that each fit ``max_seconds`` of speech; long sentences break at clause ends.

    The split offered for a model's clips packs ``speech_room``: its longest clip less the breath. A sentence that
    fits the longest clip itself (``whole_up_to``) is never cut to leave that breath: it is a part of its own, in a
    tight clip, as a script that fits one clip only without a breath is given one (cutting it would pay for more
    clips and break a line mid-thought). Each part is a stretch of the script as written (so Chinese or Japanese
    parts get no spaces added), and its seconds are counted as ``measure`` counts the whole script."""
    text = unicodedata.normalize("NFC", script).strip()
    japanese = has_kana(text)
    whole = max(max_seconds, whole_up_to or max_seconds)

    def seconds(start: int, end: int) -> float:
        return _tally(text, _atoms(text, start, end), japanese).seconds

    pieces: list[tuple[int, int]] = []
    for start, end in _sentences(text):
        if seconds(start, end) <= whole + 1e-9:
            pieces.append((start, end))
        else:
            pieces.extend(_break_long(text, start, end, max_seconds, japanese))
    # Each piece tallied once and a part's tally kept as the pieces join it (the counts add up: pieces are cut between
    # units); tallying the part again for each piece (``fits``) was quadratic in a script of many short sentences.
    parts: list[tuple[int, int]] = []
    held = Spoken()
    for start, end in pieces:
        spoken = _tally(text, _atoms(text, start, end), japanese)
        joined = _sum(held, spoken)
        if parts and joined.seconds <= max_seconds + 1e-9:
            parts[-1], held = (parts[-1][0], end), joined
        else:
            parts.append((start, end))
            held = spoken
    return [(text[start:end].strip(), seconds(start, end)) for start, end in parts if text[start:end].strip()]


def _sum(one: Spoken, other: Spoken) -> Spoken:
    return Spoken(**{name: getattr(one, name) + getattr(other, name) for name in _COUNTS})


_COUNTS = ("words", "chinese", "japanese", "letters", "syllables")


def _sentences(text: str) -> list[tuple[int, int]]:
    """``text`` cut after each sentence end, as consecutive ``(start, end)`` spans covering it."""
    cuts = [match.end() for match in SENTENCE_BREAK.finditer(text)]
    bounds = [0, *(cut for cut in cuts if 0 < cut < len(text)), len(text)]
    return [(a, b) for a, b in pairwise(bounds) if a < b]


def _break_long(text: str, start: int, end: int, limit: float, japanese: bool) -> list[tuple[int, int]]:
    """The sentence ``text[start:end]`` in pieces of at most ``limit`` seconds, cut between the units ``_atoms``
    yields (so "Buy,now,save" is three words and may be cut between its commas).

    Each piece ends at the last clause end (``CLAUSE_END``: comma, semicolon, colon, dash) that keeps it within
    ``limit`` and leaves a rest that needs no more pieces than an even split would: a 22-word line in 7 s of speech
    is cut after its comma at 16 words, not at 11 mid-phrase. With no such clause end the piece is the rest's even
    share (a 4.2 s sentence in 4 s clips is two of about 2.1 s, not 4 s and a last word). A single unit longer than
    the limit (Thai written without a space) stays whole."""
    atoms = [(a, b, _tally(text, [(a, b, kind)], japanese).seconds) for a, b, kind in _atoms(text, start, end)]
    said = list(accumulate((length for _, _, length in atoms), initial=0.0))  # seconds before each atom
    out: list[tuple[int, int]] = []
    first, piece_start = 0, start
    while len(atoms) - first > 1 and (rest := said[-1] - said[first]) > limit + 1e-9:
        pieces = max(math.ceil(rest / limit - 1e-9), 1)
        share = rest / pieces
        clause = even = None  # the atom the piece ends before: at a clause end, and at the even share
        for after in range(first + 1, len(atoms)):
            held = said[after] - said[first]
            if held > limit + 1e-9:
                break
            if even is None and (held >= share - 1e-9 or said[after + 1] - said[first] > limit + 1e-9):
                even = after
            at_clause = CLAUSE_END.search(text, atoms[after - 1][1], atoms[after][0]) is not None
            if at_clause and rest - held <= (pieces - 1) * limit + 1e-9:
                clause = after
        cut_at = clause if clause is not None else even if even is not None else first + 1
        cut = _cut_before(text, atoms[cut_at - 1][1], atoms[cut_at][0])
        out.append((piece_start, cut))
        first, piece_start = cut_at, cut
    out.append((piece_start, end))
    return out


def _cut_before(text: str, previous_end: int, at: int) -> int:
    """Where to cut before the unit at ``at``: before the spaces and opening quotes or brackets that lead into it."""
    while at > previous_end and (text[at - 1].isspace() or unicodedata.category(text[at - 1]) in ("Ps", "Pi")):
        at -= 1
    return at


@dataclass(frozen=True)
class _LongScript:
    """A script too long for one clip of ``spec``, and what offering its split needs: the models with longer clips,
    the sound its parts are made with, and the price of a clip (``ClipPrice``) when the caller can tell it."""

    spec: ModelSpec
    script: str
    spoken: Spoken
    alternatives: list[ModelSpec]
    sound: bool | None
    price_of: ClipPrice | None


def _too_long(overlong: _LongScript, durations: list[int], given: int | None = None) -> InvalidRequest:
    spec, spoken = overlong.spec, overlong.spoken
    longest = durations[-1]
    needed = spoken.seconds
    fits = [d for d in durations if d >= needed]
    if given is not None and fits:  # this very model takes a length that fits: that is the fix, not a split
        message = (
            f"the script has {spoken.amount} (about {needed:.1f} s spoken) but duration={given} s is too short. Pass "
            f"duration={fits[0]} ({spec.id} takes {listed(durations)} s), or leave duration out and kie-mcp picks "
            "the length that fits."
        )
        return InvalidRequest(spec.id, [Problem("script", message)])
    head = (
        f"the script has {spoken.amount} (about {needed:.1f} s spoken) but "
        + (f"duration={given} s is too short" if given is not None else f"{spec.id} {_makes(spec)} at most {longest} s")
        + "."
    )
    split, offer = _split_offer(overlong, durations)
    if split is None:  # one run of Thai (Lao, Khmer, Burmese) with no space: cutting it would cut a word
        message = (
            f"{head} It has no sentence end, clause end or space to split it at (Thai, Lao, Khmer and Burmese are cut "
            f"only at spaces): shorten it, or put spaces between its phrases.{offer}"
        )
        return InvalidRequest(spec.id, [Problem("script", message)])
    message = f"{head} {split[0].upper()}{split[1:]}{offer}".rstrip()
    return InvalidRequest(spec.id, [Problem("script", message)])


def _makes(spec: ModelSpec) -> str:
    """What a clip of ``spec`` is to the video, in a verb: an extension adds its seconds to the clip it continues."""
    return "adds" if extends(spec) else "makes"


def speech_room(durations: list[int]) -> float:
    """The speech a part of a split may hold: the longest clip less the breath (``BREATH_SECONDS``), so each part
    is given a clip the way a script that fits one is, never one its words fill to the last frame."""
    longest = durations[-1]
    return longest - BREATH_SECONDS if longest > BREATH_SECONDS else float(longest)


def _split_offer(overlong: _LongScript, durations: list[int]) -> tuple[str | None, str]:
    """The split of the script into clips of its model (``split it into 3 clips ...:`` and a line a part, with
    what the parts cost in all when ``price_of`` tells each), None when it cannot be cut; and the models with clips
    long enough for the whole script (`` Or use ...``, or nothing)."""
    spec, needed = overlong.spec, overlong.spoken.seconds
    japanese = has_kana(overlong.script)
    texts = [text for text, _ in split_script(overlong.script, speech_room(durations), durations[-1])]
    parts = [measure(text, japanese) for text in texts]
    longer = [s for s in overlong.alternatives if allowed_durations(s) and allowed_durations(s)[-1] >= needed]
    offer = (
        " Or use a model with longer clips: "
        + ", ".join(f"{s.id} (up to {allowed_durations(s)[-1]} s)" for s in longer[:3])
        + "."
        if longer
        else ""
    )
    if len(parts) == 1:
        return None, offer
    lengths = [_pick(spec, durations, part.seconds) if part.seconds <= durations[-1] else None for part in parts]
    lines = [
        f"  part {i} ({_part_length(part, length, durations)}): {text}"
        for i, (text, part, length) in enumerate(zip(texts, parts, lengths, strict=True), 1)
    ]
    at = _breaks(texts)
    each = (
        f"extensions {at} (this one with part 1's words, then each next part a continue_video "
        "extend of the one before, script= that part"
        if extends(spec)
        else f"clips {at} (one generation each, then join them"
    )
    split = f"split it into {len(lines)} {each}" + _total(overlong, lengths) + "):\n" + "\n".join(lines) + "\n"
    return split, offer


def _breaks(texts: list[str]) -> str:
    """Where a split cut the script, as its offer says it: at sentence boundaries, at sentence or clause breaks (a
    sentence too long for a clip cut after a comma, semicolon, colon or dash), and between words where neither
    fits. Named by the loosest cut made, so a script cut mid-phrase is never said to be cut at sentence boundaries."""
    ends = ["sentence" if SENTENCE_END.search(t) else "clause" if CLAUSE_TAIL.search(t) else "word" for t in texts[:-1]]
    if set(ends) == {"word"}:
        return "between words, as no sentence or clause break fits"
    if "word" in ends:
        return "at sentence or clause breaks, and between words where none fits"
    return "at sentence or clause breaks" if "clause" in ends else "at sentence boundaries"


def _total(overlong: _LongScript, lengths: list[int | None]) -> str:
    """``; 240 credits (about $1.20) in all``: the sum of what each part's own estimate quotes (and what the caps
    count, when that is more), or nothing when one is unknown (no way to price a clip given, a price unknown, or a
    part with no clip long enough)."""
    if overlong.price_of is None or None in lengths:
        return ""
    prices = {length: overlong.price_of(length, overlong.sound) for length in set(lengths) if length is not None}
    costs = [prices[length] for length in lengths if length is not None]
    if any(cost is None for cost in costs):
        return ""
    total = round(sum(cost.listed for cost in costs if cost is not None), 4)
    counted = round(sum(cost.counted for cost in costs if cost is not None), 4)
    higher = (
        f", up to {credits_figure(counted)} counted against your caps"
        " (more than the list: each part's estimate says why)"
        if counted > total
        else ""
    )
    return f"; {credits_text(total)} (about {usd_text(usd(total))}) in all{higher}"


def _part_length(spoken: Spoken, length: int | None, durations: list[int]) -> str:
    """``37 words, 15 s``: a part's amount and the clip it takes; one with no place to cut says it is too long."""
    if length is None:
        return f"{spoken.amount}, about {spoken.seconds:.1f} s: longer than {durations[-1]} s, with no break to cut at"
    return f"{spoken.amount}, {length} s"


def _pick(spec: ModelSpec, durations: list[int], seconds: float) -> int:
    """The duration a part of ``seconds`` is given when it is estimated on its own (``fit_script``'s choice)."""
    return next(iter(suited_durations(spec, durations, seconds)), durations[-1])


def _warning(overlong: _LongScript, duration: int | None, durations: list[int]) -> str:
    """Veo's answer to a script too long for its clip: the request stands (Veo decides the length and may cut the
    speech), so the note carries what the refusal of other models carries: the split and the models that fit it."""
    amount, title = overlong.spoken.amount, overlong.spec.title
    if extends(overlong.spec):
        length = f"what {title} adds (about {duration} s)" if duration else f"one extension by {title}"
    else:
        length = f"{f'a {duration} s clip' if duration else 'one clip'} of {title}"
    head = f"Warning: {amount} is a lot for {length}; it may cut or rush the dialogue."
    if not durations:
        return f"{head} Consider a shorter script or splitting it into several clips."
    split, offer = _split_offer(overlong, durations)
    if split is None:
        return f"{head} Consider a shorter script.{offer}"
    return f"{head} Use a shorter script, or {split}{offer}".rstrip()


def speech_models(catalog_models: list[ModelSpec], kind_capability: str) -> list[ModelSpec]:
    """Video models with audio that can do ``kind_capability``, longest clips first (split alternatives)."""
    found = [s for s in catalog_models if s.kind == "video" and {"audio", kind_capability} <= set(s.capabilities)]
    return sorted(found, key=lambda s: -(allowed_durations(s)[-1] if allowed_durations(s) else 0))
