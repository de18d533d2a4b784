"""Script to duration: spoken words decide the clip length, and the words go into the prompt as dialogue.

At about 2.5 words per second a script needs ``words / 2.5`` seconds. The shortest duration the model
allows that fits is chosen; when none fits, the error offers a split at sentence boundaries (each part with
its duration) and models with longer clips. The request's cross-field rules (Veo's REFERENCE_2_VIDEO makes 8 s
clips only) and the fields a script sets (``dialogue.set_default``) are applied by ``build_input``, which sees the
whole request: ``ScriptFit.request`` carries the durations that suit the words there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kie_mcp.words import listed

from .spec import DialogueSpec, ModelSpec
from .validate import InvalidRequest, Problem, ScriptedRequest

WORDS_PER_SECOND = 2.5


@dataclass
class ScriptFit:
    prompt: str
    duration: int | None
    audio: bool | None
    words: int
    notes: list[str] = field(default_factory=list)
    request: ScriptedRequest | None = None  # for ``build_input(scripted=...)``: what the request's rules settle


WORD = re.compile(r"[\w'’-]+")  # a spoken word, as counted; splits break between these, never inside
CLAUSE_END = re.compile(r"[,;:]\s")  # between two words: the end of a clause, where a long sentence breaks first
# A prompt ending a sentence (closing quotes or brackets may follow); one that does not gets a full stop before the
# script part, so the dialogue is not run into the scene ("...morning light The speaker says: ...").
SENTENCE_END = re.compile(r"[.!?…。！？][\"'”’»)\]]*$")


def count_words(text: str) -> int:
    return len(WORD.findall(text))


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


def fit_script(
    spec: ModelSpec,
    script: str,
    prompt: str,
    duration: int | None,
    audio: bool | None,
    alternatives: list[ModelSpec],
) -> ScriptFit:
    """Choose the duration for ``script`` and put it into the prompt, or explain why it cannot fit."""
    script = " ".join(script.split())
    words = count_words(script)
    needed = seconds_for(words)
    if "audio" not in spec.capabilities:
        others = ", ".join(s.id for s in alternatives[:4]) or "a model with audio"
        raise InvalidRequest(spec.id, [Problem("script", f"{spec.id} makes silent video; for speech use {others}.")])
    dialogue = spec.dialogue or DialogueSpec(source="")  # the default way (built here: models build on use)
    notes = [f"Script: {words} words, about {needed:.1f} s at {WORDS_PER_SECOND:g} words/s."]
    durations = allowed_durations(spec)
    chosen = duration
    candidates: list[int] = []  # when the script chooses: the durations that suit it, best first (rules pick)
    duration_note: int | None = None
    if durations:
        fitting = [d for d in durations if d >= needed]
        if duration is not None:
            if duration < needed and dialogue.overflow == "error":
                raise _too_long(spec, script, words, durations, alternatives, given=duration)
        elif fitting:
            chosen, candidates, duration_note = fitting[0], fitting, len(notes)
            notes.append(f"Duration set to {chosen} s to fit the script.")
        elif dialogue.overflow == "warn":
            chosen, candidates = durations[-1], [durations[-1]]
            notes.append(_warning(spec, words, chosen))
        else:
            raise _too_long(spec, script, words, durations, alternatives)
    if dialogue.warn_words and words > dialogue.warn_words and not any("may cut" in n for n in notes):
        notes.append(_warning(spec, words, chosen))
    if audio is None and spec.field_for_arg("audio") is not None:
        audio = True
        notes.append("Sound turned on for the dialogue.")
    text = dialogue.template.format(prompt=closed(prompt), script=script).strip()
    request = ScriptedRequest(
        notes=notes,
        words=words,
        seconds=needed,
        durations=tuple(candidates),
        choices=tuple(durations),
        duration_note=duration_note,
        defaults=dialogue.set_default,
        why=dialogue.set_default_note,
    )
    return ScriptFit(prompt=text, duration=chosen, audio=audio, words=words, notes=notes, request=request)


def closed(prompt: str) -> str:
    """``prompt`` as a finished sentence, so the script part that follows it starts a new one."""
    text = prompt.strip()
    if not text or SENTENCE_END.search(text):
        return text
    return text.rstrip(",;: ") + "."


def split_script(script: str, max_seconds: int) -> list[tuple[str, float]]:
    """Sentences packed into parts that each fit ``max_seconds`` of speech; long sentences break at commas."""
    limit = max(int(max_seconds * WORDS_PER_SECOND), 1)
    pieces: list[str] = []
    for sentence in re.split(r"(?<=[.!?])\s+", script.strip()):
        if count_words(sentence) <= limit:
            pieces.append(sentence)
            continue
        pieces.extend(_break_long(sentence, limit))
    parts: list[str] = []
    for piece in pieces:
        if parts and count_words(parts[-1]) + count_words(piece) <= limit:
            parts[-1] = f"{parts[-1]} {piece}"
        else:
            parts.append(piece)
    return [(part, seconds_for(count_words(part))) for part in parts]


def _break_long(sentence: str, limit: int) -> list[str]:
    """``sentence`` in pieces of at most ``limit`` words as ``count_words`` counts them (so "Buy,now,save" is three,
    and may be cut between its commas), each closed at a clause end once it holds 60 % of the limit."""
    out: list[str] = []
    start, count, previous_end = 0, 0, 0
    for word in WORD.finditer(sentence):
        at_clause = CLAUSE_END.search(sentence, previous_end, word.start()) is not None
        if count >= limit or (at_clause and count >= limit * 0.6):
            out.append(sentence[start : word.start()].strip())
            start, count = word.start(), 0
        count += 1
        previous_end = word.end()
    out.append(sentence[start:].strip())
    return [piece for piece in out if piece]


def _too_long(
    spec: ModelSpec,
    script: str,
    words: int,
    durations: list[int],
    alternatives: list[ModelSpec],
    given: int | None = None,
) -> InvalidRequest:
    longest = durations[-1]
    needed = seconds_for(words)
    fits = [d for d in durations if d >= needed]
    if given is not None and fits:  # this very model takes a length that fits: that is the fix, not a split
        message = (
            f"the script has {words} words (about {needed:.1f} s spoken) but duration={given} s is too short. Pass "
            f"duration={fits[0]} ({spec.id} takes {listed(durations)} s), or leave duration out and kie-mcp picks "
            "the length that fits."
        )
        return InvalidRequest(spec.id, [Problem("script", message)])
    head = (
        f"the script has {words} words (about {needed:.1f} s spoken) but "
        + (f"duration={given} s is too short" if given is not None else f"{spec.id} makes at most {longest} s")
        + "."
    )
    parts = split_script(script, longest)
    lines = [
        f"  part {i} ({count_words(text)} words, {_pick(durations, secs)} s): {text}"
        for i, (text, secs) in enumerate(parts, 1)
    ]
    longer = [s for s in alternatives if allowed_durations(s) and allowed_durations(s)[-1] >= needed]
    offer = (
        " Or use a model with longer clips: "
        + ", ".join(f"{s.id} (up to {allowed_durations(s)[-1]} s)" for s in longer[:3])
        + "."
        if longer
        else ""
    )
    message = (
        f"{head} Split it into {len(parts)} clips at sentence boundaries (one generation each, then join them):\n"
        + "\n".join(lines)
        + f"\n {offer}".rstrip()
    )
    return InvalidRequest(spec.id, [Problem("script", message)])


def _pick(durations: list[int], seconds: float) -> int:
    return next((d for d in durations if d >= seconds), durations[-1])


def _warning(spec: ModelSpec, words: int, duration: int | None) -> str:
    length = f"a {duration} s clip" if duration else "one clip"
    return (
        f"Warning: {words} words is a lot for {length} of {spec.title}; it may cut or rush the dialogue. "
        "Consider a shorter script or splitting it into several clips."
    )


def speech_models(catalog_models: list[ModelSpec], kind_capability: str) -> list[ModelSpec]:
    """Video models with audio that can do ``kind_capability``, longest clips first (split alternatives)."""
    found = [s for s in catalog_models if s.kind == "video" and {"audio", kind_capability} <= set(s.capabilities)]
    return sorted(found, key=lambda s: -(allowed_durations(s)[-1] if allowed_durations(s) else 0))
