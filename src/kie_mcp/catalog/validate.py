"""Turn tool arguments into a model's exact wire input, or say precisely what is wrong.

Two entry points share one set of checks:
- ``build_input`` maps the tools' common arguments (prompt, images, aspect_ratio, ...) and the
  model-specific ``options`` onto KIE's field names, applies defaults and rules, then checks.
- ``check_input`` checks a wire input as KIE would; the simulator uses it to answer with 422s.
"""

from __future__ import annotations

import functools
import math
import re
import sys
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

from kie_mcp.toolschema import is_blank
from kie_mcp.words import listed, plain

from .spec import FieldSpec, ImagesSpec, ModelSpec, Rule, Scalar


@dataclass(frozen=True)
class Problem:
    field: str
    message: str


class InvalidRequest(ValueError):
    """One or more arguments do not fit the model; nothing was sent."""

    def __init__(self, model: str, problems: Sequence[Problem]) -> None:
        self.model = model
        self.problems = list(problems)
        lines = "\n".join(f"- {p.field}: {p.message}" for p in self.problems)
        super().__init__(f"The request does not fit {model} (nothing was sent or charged):\n{lines}")


_COMMON_ARGS = ("prompt", "aspect_ratio", "resolution", "duration", "audio")


@dataclass
class ScriptedRequest:
    """What the script fitter (``script.py``) leaves to the whole request, which ``build_input`` settles.

    The fitter sees the prompt, duration and sound, not ``options`` or ``images``, so it cannot apply the model's
    cross-field rules (Veo's REFERENCE_2_VIDEO makes 8 s clips only); ``build_input(scripted=...)`` does, from this:

    - ``durations``: when the script, not the caller, chose the duration, the ones that suit its words, best first;
      the first one the request's rules allow is sent, and when none is, the error says the script chose it.
    - ``choices``: every duration the model has (to name the ones this request allows).
    - ``defaults``: fields a script sets unless the caller did (the model's ``dialogue.set_default``), and ``why``.
    - ``notes``: the fitter's own list of notes, which the quote shows (``build_input`` adds to it and may reword
      the one ``duration_note`` indexes, the one naming the duration).
    """

    notes: list[str]
    amount: str = ""  # what the script says, as counted: "30 words", "59 characters"
    seconds: float = 0.0
    durations: tuple[int, ...] = ()
    choices: tuple[int, ...] = ()
    duration_note: int | None = None
    offered_duration: int | None = None  # the shorter clip the duration note offers, to reword if refused
    defaults: Mapping[str, Scalar] = dataclass_field(default_factory=dict)
    why: str | None = None


def build_input(
    spec: ModelSpec,
    *,
    prompt: str | None = None,
    images: Sequence[str] = (),
    aspect_ratio: str | None = None,
    resolution: str | None = None,
    duration: int | None = None,
    audio: bool | None = None,
    options: Mapping[str, Any] | None = None,
    scripted: ScriptedRequest | None = None,
    chosen: list[str] | None = None,
    defaulted: set[str] | None = None,
) -> dict[str, Any]:
    """Return the wire input for ``spec`` or raise ``InvalidRequest`` naming every problem. ``scripted``: what a
    fitted script (``script.fit_script``) leaves to the request's rules. ``chosen``: a list that gets what the quote
    says of the values a rule chose where the caller set none (``chosen_notes``). ``defaulted``: a set that gets the
    fields holding only kie-mcp's bundled default (``bundled_defaults``).

    Two stages: placing the arguments on KIE's fields, then checking the placed values. When placing fails, the
    values that could be placed are still checked, so one answer names what would otherwise take a call each."""
    problems: list[Problem] = []
    wire: dict[str, Any] = {}
    refused: set[str] = set()  # fields whose value stage 1 refused: stage 2 cannot judge them
    guesses: list[str] = []  # the fields unknown options were likely meant for

    for key, value in (options or {}).items():
        if key not in spec.fields:
            problems.append(Problem(f"options.{key}", _unknown_option(spec, key)))
            guesses += _close_matches(key, sorted(spec.fields), n=1)
        elif _past_floats(value):  # JSON's integers have no bound: 10**400 would overflow every later check
            problems.append(Problem(f"options.{key}", f"{plain(value)} is larger than any number KIE takes."))
            refused.add(key)
        else:
            wire[key] = value

    common = {"prompt": prompt, "aspect_ratio": aspect_ratio, "resolution": resolution, "duration": duration}
    common["audio"] = audio
    for arg in _COMMON_ARGS:
        value = common[arg]
        if value is None or (arg == "prompt" and is_blank(value)):
            continue
        target = spec.field_for_arg(arg)
        if target is None and arg == "audio":
            if (refusal := _fixed_sound(spec, value)) is not None:
                problems.append(Problem(arg, refusal))
        elif target is None:
            problems.append(Problem(arg, f"{spec.id} has no {arg} setting{_set_length(spec, arg)}; leave it out."))
        elif target.name in wire and _norm(wire[target.name]) != _norm(value):
            problems.append(
                Problem(arg, f"given twice: {arg}={plain(value)} and options.{target.name}={plain(wire[target.name])}.")
            )
            refused.add(target.name)
        else:
            wire[target.name] = value

    if image_problems := _place_images(spec, images, wire):
        problems += image_problems
        refused.update([*spec.images.to, *spec.images.unless] if spec.images else ())
    if problems:
        refused.update(name for name in guesses if name not in wire)  # a misspelt field is absent, not missing
        raise InvalidRequest(spec.id, [*problems, *_also_wrong(spec, wire, scripted, options, refused, problems)])

    given = set(wire)
    wire, problems = _settle(spec, wire, scripted, options)
    if problems:
        raise InvalidRequest(spec.id, problems)
    if chosen is not None:
        chosen += chosen_notes(spec, given, wire)
    if defaulted is not None:
        by_script = {*scripted.defaults, *_script_set(spec, scripted)} if scripted is not None else set()
        defaulted.update(bundled_defaults(spec, given | by_script, wire))
    return wire


def _settle(
    spec: ModelSpec,
    wire: dict[str, Any],
    scripted: ScriptedRequest | None,
    options: Mapping[str, Any] | None,
    unsure: Collection[str] = (),
) -> tuple[dict[str, Any], list[Problem]]:
    """Stage 2 of ``build_input``: coerce the placed values, apply defaults, rules and the script, and check. The
    wire input and its problems, named for the user; none about the ``unsure`` fields (see ``_unsure``)."""
    for name, value in list(wire.items()):
        wire[name] = _coerce(spec.fields[name], value)
    given = wire
    wire = apply_defaults(spec, given)
    refused: Problem | None = None
    if scripted is not None:
        wire, refused = _fit_script_to_rules(spec, scripted, given)
        given = {name: value for name, value in given.items() if name not in _script_set(spec, scripted)}

    problems = _checked(spec, wire, unsure) + _overridden(spec, given, wire, unsure)
    if refused is not None and refused.field not in unsure:  # the script's duration refused by a rule: say so,
        problems = [refused, *(p for p in problems if p.field != refused.field)]  # not "4 is not allowed here"
    return wire, named_for_user(spec, problems, options)


def _also_wrong(
    spec: ModelSpec,
    wire: dict[str, Any],
    scripted: ScriptedRequest | None,
    options: Mapping[str, Any] | None,
    refused: set[str],
    first: Sequence[Problem],
) -> list[Problem]:
    """What stage 2 finds in the part of a request stage 1 could place (``estimate_cost(veo3_fast, audio=false,
    duration=10)`` names the duration too, not only on the next call). Nothing that only follows from a stage 1
    refusal: no problem about a refused field, from a rule that reads one, or about an argument already named."""
    try:
        _, later = _settle(spec, dict(wire), scripted, options, _unsure(spec, refused, wire))
    except Exception:  # an extra: it must never turn a clear refusal into a crash
        return []
    named = {problem.field for problem in first}
    return [problem for problem in later if problem.field not in named]


def _unsure(spec: ModelSpec, refused: Collection[str], given: Mapping[str, Any]) -> set[str]:
    """The fields a partial wire cannot judge: those stage 1 refused, and those a rule reading one of them would
    set (Veo's generationType follows from the images: with the images refused, its default means nothing)."""
    unsure = set(refused)
    grew = True
    while grew:
        before = len(unsure)
        for rule in spec.rules:
            if _reads(rule.when, unsure):
                unsure.update(name for name in rule.set_default if name not in given)
                unsure.update(rule.force)
        grew = len(unsure) > before
    return unsure


def _reads(when: Mapping[str, Any], names: Collection[str]) -> bool:
    """Whether a rule's ``when`` looks at any of ``names`` (``image_urls#count`` looks at ``image_urls``)."""
    return any(key.removesuffix("#count") in names for key in when)


def chosen_notes(spec: ModelSpec, given: Collection[str], wire: Mapping[str, Any]) -> list[str]:
    """What the quote says of the values a rule chose for the request ``wire`` (the one sent) where the caller, who
    set the fields ``given``, set none: each such rule's ``set_default_note`` (Veo 3.1 Fast given one image makes it
    the clip's first frame, and says how to get a new shot of the person in it instead)."""
    return [
        rule.set_default_note
        for rule in spec.rules
        if rule.set_default_note
        and when_matches(rule.when, wire)
        and any(name not in given and _norm(wire.get(name)) == _norm(value) for name, value in rule.set_default.items())
    ]


def bundled_defaults(spec: ModelSpec, given: Collection[str], wire: Mapping[str, Any]) -> set[str]:
    """The fields of ``wire`` whose value is only kie-mcp's bundled default (a field's ``default``): not set by the
    caller (``given``), nor chosen or forced by a rule of the model's docs. KIE's live schema may refuse such a value
    that no one asked for (``generation.fit_live_defaults``)."""
    ruled = {name for rule in spec.rules if when_matches(rule.when, wire) for name in (*rule.set_default, *rule.force)}
    return {
        name
        for name, field in spec.fields.items()
        if name not in given
        and name not in ruled
        and field.default is not None
        and name in wire
        and _norm(wire[name]) == _norm(field.default)
    }


def apply_defaults(spec: ModelSpec, wire: Mapping[str, Any]) -> dict[str, Any]:
    """Fill what the model defaults when a field is omitted: rule-chosen defaults, field defaults, forced values."""
    out = dict(wire)
    for rule in spec.rules:
        if when_matches(rule.when, out):
            for name, value in rule.set_default.items():
                out.setdefault(name, value)
    for field in spec.fields.values():
        if field.name not in out and field.default is not None:
            out[field.name] = field.default
    for rule in spec.rules:
        if when_matches(rule.when, out):
            out.update(rule.force)
    return out


def _fit_script_to_rules(
    spec: ModelSpec, scripted: ScriptedRequest, given: Mapping[str, Any]
) -> tuple[dict[str, Any], Problem | None]:
    """The wire input with what a script leaves to the request: its field defaults (unless the caller set them),
    and of the durations that suit its words the first the request's rules allow; or the problem when none is."""
    base = dict(given)
    without = apply_defaults(spec, base)
    for name, value in scripted.defaults.items():
        if name in spec.fields and name not in given:
            base[name] = value
            if _norm(without.get(name)) != _norm(value):
                why = f" {scripted.why}" if scripted.why else ""
                scripted.notes.append(  # an estimate sends nothing: said of the create, whenever it is sent
                    f"{name}={plain(value)} is sent with the create, as the request has a script.{why} Set "
                    f"options.{name} to choose."
                )
    target = spec.field_for_arg("duration")
    if target is None or not scripted.durations or target.name not in given:
        return apply_defaults(spec, base), None

    def refusals(duration: int) -> list[Problem]:
        trial = apply_defaults(spec, {**base, target.name: _coerce(target, duration)})
        return [p for p in check_input(spec, trial) if p.field == target.name]

    chosen = scripted.durations[0]
    wire = apply_defaults(spec, {**base, target.name: _coerce(target, chosen)})
    why = "".join(  # the rules limiting the duration of this request, in their own words
        f" {rule.message}"
        for rule in spec.rules
        if rule.message and target.name in rule.allow and when_matches(rule.when, wire)
    )
    for rank, duration in enumerate(scripted.durations):
        if not refusals(duration):
            if rank and scripted.duration_note is not None:
                scripted.notes[scripted.duration_note] = (
                    f"Duration set to {duration} s: the script fits in {chosen} s, but this request allows "
                    f"{listed([d for d in scripted.choices if not refusals(d)])} s.{why}"
                )
            elif (
                scripted.duration_note is not None
                and scripted.offered_duration is not None
                and refusals(scripted.offered_duration)
            ):  # a shorter clip the note offers that this request refuses (Veo's REFERENCE_2_VIDEO: 8 s only)
                scripted.notes[scripted.duration_note] = (
                    f"Duration set to {duration} s to fit the script, with a breath at the start and end.{why}"
                )
            return apply_defaults(spec, {**base, target.name: _coerce(target, duration)}), None
    allowed = [d for d in scripted.choices if not refusals(d)]
    if not allowed:
        return wire, None  # nothing this request allows: the checks say why
    fits = [d for d in allowed if d >= scripted.seconds]
    use = fits[0] if fits else allowed[-1]
    short = "" if fits else f", and shorten the script to about {use} s of speech"
    message = (
        f"the script chose {chosen} s ({f'its {scripted.amount} take' if scripted.amount else 'it takes'} about "
        f"{scripted.seconds:.1f} s to say), but "
        f"this request allows only {listed(allowed)} s.{why} Pass duration={use}{short}."
    )
    return wire, Problem(target.name, message)


def _script_set(spec: ModelSpec, scripted: ScriptedRequest) -> set[str]:
    """The fields the script set rather than the caller (a rule forcing another value is no conflict then)."""
    target = spec.field_for_arg("duration")
    return {target.name} if target is not None and scripted.durations else set()


def _overridden(
    spec: ModelSpec, given: Mapping[str, Any], wire: Mapping[str, Any], unsure: Collection[str] = ()
) -> list[Problem]:
    """A value the caller set that a rule forces to another (Kling 3.0's multi-shot always has sound): refused, not
    silently replaced, because the forced value is what KIE makes and bills. ``unsure``: as in ``_checked``."""
    problems: list[Problem] = []
    for rule in spec.rules:
        if not rule.force or _reads(rule.when, unsure) or not when_matches(rule.when, wire):
            continue
        why = f" {rule.message}" if rule.message else ""
        for name, value in rule.force.items():
            if name in given and name not in unsure and _norm(given[name]) != _norm(value):
                always = f"cannot be {plain(given[name])} here: it is always {plain(value)}."
                problems.append(Problem(name, always + why))
    return problems


def check_input(spec: ModelSpec, wire: Mapping[str, Any]) -> list[Problem]:
    """Every way ``wire`` breaks the model's documented input contract."""
    return _checked(spec, wire)


def _checked(spec: ModelSpec, wire: Mapping[str, Any], unsure: Collection[str] = ()) -> list[Problem]:
    """``check_input``, silent about the ``unsure`` fields and the rules that read them: on a wire missing a value
    stage 1 refused, they would only echo that refusal ("image_urls is required")."""
    problems: list[Problem] = []
    for name, value in wire.items():
        if name in unsure:
            continue
        field = spec.fields.get(name)
        if field is None:
            problems.append(Problem(name, _unknown_option(spec, name)))
        elif (bad := _non_finite(value)) is not None:
            where, number = bad
            problems.append(Problem(f"{name}{where}", _not_finite(field, number, nested=bool(where))))
        elif (message := _check_value(field, value)) is not None:
            problems.append(Problem(name, message))
    for field in spec.fields.values():
        if field.required and field.name not in unsure and _absent(wire.get(field.name)):
            problems.append(Problem(field.name, _missing(spec, field)))
    for rule in spec.rules:
        if not _reads(rule.when, unsure) and when_matches(rule.when, wire):
            problems += [p for p in _check_rule(rule, wire) if p.field not in unsure]
    return problems


def _past_floats(value: Any) -> bool:
    """An integer (or a list's item) too large for a float, which no KIE field takes: the checks that compare a
    value or a list's items as numbers would overflow on it. Deeper values are never read as numbers here."""
    items = value if isinstance(value, list) else [value]
    return any(isinstance(v, int) and not isinstance(v, bool) and abs(v) > sys.float_info.max for v in items)


# -- sound --------------------------------------------------------------------------------


def _fixed_sound(spec: ModelSpec, audio: bool) -> str | None:
    """Why ``audio`` cannot be asked of a model with no sound setting, or None when it asks for what the model makes
    anyway. Veo has no setting because it always has sound: "no audio setting" read as "no sound", and refused a
    request for sound for nothing."""
    if spec.kind != "video":
        return f"{spec.id} makes images, which have no sound; leave audio out (it is for video models)."
    if "audio" in spec.capabilities:
        if audio:
            return None
        return (
            f"cannot be false: {spec.id} always makes sound. Leave audio out, or pick a model whose sound can be "
            f"turned off{such_as(sound_models(spec, switchable=True))}."
        )
    if not audio:
        return None
    return (
        f"cannot be true: {spec.id} makes silent videos. Leave audio out, or pick a model with the audio capability, "
        f"which makes sound{such_as(sound_models(spec, switchable=False))} (list_models shows capabilities)."
    )


def sound_models(spec: ModelSpec, *, switchable: bool) -> list[str]:
    """Up to three video models that can stand in for ``spec`` with sound: ones whose sound can be turned off
    (``switchable``), else ones that make sound; those sharing ``spec``'s way of working (text- or image-to-video)
    first, in catalogue order. The one list of them: the audio refusal and a script's on a silent model
    (``script.fit_script``) name the same models."""
    from .registry import load_catalog  # only on this error; the catalogue is loaded by then

    ways = {"text-to-video", "image-to-video"} & set(spec.capabilities)
    found = [
        other
        for other in load_catalog().offered()
        if other.kind == "video"
        and other.followup is None
        and other.id != spec.id
        and "audio" in other.capabilities
        and (other.field_for_arg("audio") is not None or not switchable)
    ]
    return [other.id for other in sorted(found, key=lambda other: not ways & set(other.capabilities))[:3]]


def _set_length(spec: ModelSpec, arg: str) -> str:
    """What a follow-up with no duration setting adds all the same (a Veo extension: about 7 s), from the catalogue's
    ``adds_seconds`` with its source's kind and date; empty for any other setting or model."""
    followup = spec.followup
    if arg != "duration" or followup is None or followup.adds_seconds is None:
        return ""
    source = spec.sources.get(followup.adds_seconds_source or "")
    cited = f"{source.kind}, {source.date or source.read}; " if source is not None else ""
    return (
        f": {spec.title} adds about {followup.adds_seconds} s, a length the model sets "
        f"({cited}kie://models/{spec.id} gives the source)"
    )


def such_as(names: Sequence[str]) -> str:
    """Named examples, so the agent can act on the advice without another lookup."""
    return f", such as {', '.join(names)}" if names else ""


# -- images -------------------------------------------------------------------------------


def _place_images(spec: ModelSpec, images: Sequence[str], wire: dict[str, Any]) -> list[Problem]:
    target = spec.images
    if not images:
        if target and target.min > 0 and not any(name in wire for name in [*target.to, *target.unless]):
            instead = f", or {' or '.join(f'options.{name}' for name in target.unless)}" if target.unless else ""
            return [
                Problem("images", f"{spec.id} needs at least {target.min} input image(s){instead}{_from_words(spec)}.")
            ]
        return []
    if target is None:
        return [Problem("images", f"{spec.id} does not take input images; {_models_taking_images(spec, len(images))}")]
    if not target.min <= len(images) <= target.max:
        took = f"{spec.id} takes {_range_text(target.min, target.max)} image(s); got {len(images)}."
        return [Problem("images", took + _images_elsewhere(spec, target))]
    taken = [name for name in target.to if name in wire]
    if taken:
        return [Problem("images", f"images given twice: also set in options.{taken[0]}.")]
    if len(target.to) == 1 and spec.fields[target.to[0]].type == "urls":
        wire[target.to[0]] = list(images)
    else:
        for name, image in zip(target.to, images, strict=False):
            wire[name] = image
    return []


def _images_elsewhere(spec: ModelSpec, target: ImagesSpec) -> str:
    """Where a model's other images go, said when ``images`` holds too many: what ``images`` fill (Seedance 2's and
    Wan 3.0's first and last frame) and each other image field in options, with how many it takes and whether it goes
    with ``images`` at all (a rule that allows none of it once an ``images`` field is set). From the catalogue alone,
    for every model alike; empty when the model has no other image field. A field is an image field by the kind of
    media it takes (its formats, else ``inputs.field_kinds``: a first frame, a mask), not by "image" in its name; one
    KIE requires is said to be. Apart both ways: a rule setting one side allows none of the other."""
    others = {
        name: field
        for name, field in spec.fields.items()
        if _takes_images(spec, name) and name not in target.to and name not in target.unless
    }
    if not others:
        return ""
    fills = ", ".join(target.to)
    frames = len(target.to) == 2 and ("first-last-frame" in spec.capabilities or spec.frames is not None)
    what = f"are the clip's first and last frame ({fills})" if frames else f"fill {fills}"
    alone = "; not together with the frames" if frames else "; not together with images"
    apart = set()
    for rule in spec.rules:
        setting = {key.split("#")[0] for key in rule.when}
        barred = {name for name, (_, high) in rule.count.items() if high == 0}
        if setting & set(target.to):  # images set: this field takes none
            apart |= barred
        if barred & set(target.to):  # this field set: images take none
            apart |= setting
    places = []
    for name, field in others.items():
        many = f"up to {field.max_items}" if field.max_items else "several" if field.type == "urls" else "one"
        places.append(
            f"options.{name} ({many}{', required' if field.required else ''}{alone if name in apart else ''})"
        )
    return (
        f" Here images {what}; other images go in {' or '.join(places)}: URLs or local paths, as in images "
        f"(kie://models/{spec.id} says what each is)."
    )


def _takes_images(spec: ModelSpec, name: str) -> bool:
    """Whether ``spec``'s field ``name`` takes pictures: by the formats the catalogue lists for it, else by the kind
    of media its field takes (``inputs.field_kinds``, the one judge of that)."""
    from kie_mcp.media.inputs import field_kinds  # only on this error: media imports the catalogue
    from kie_mcp.media.sniff import PICTURE_EXTENSIONS

    field = spec.fields[name]
    if not field.is_media:
        return False
    if field.media is not None and field.media.formats:
        return any(fmt in PICTURE_EXTENSIONS for fmt in field.media.formats)
    return "image" in field_kinds(spec, name)


# What a model that makes a new picture or clip from its input images does (a prompt-only model can stand in), and what
# one that works on its inputs does (none can).
_MAKES_FROM_IMAGES = {"image-to-video", "image-to-image", "edit", "reference", "first-last-frame"}
_WORKS_ON_INPUTS = {
    "upscale", "background-removal", "inpaint", "layer-decomposition", "motion-control", "lip-sync", "avatar",
    "video-to-video", "extend",
}  # fmt: skip


def _from_words(spec: ModelSpec) -> str:
    """Where a request with no image goes instead, when ``spec`` needs one: up to three models of its kind that make
    one from the prompt alone (text-to-video, text-to-image), its own maker's first (``hailuo`` picks an
    image-to-video model; ``hailuo/02-text-to-video-standard`` works from words). Empty when none does."""
    from .registry import load_catalog  # only on this error; the catalogue is loaded by then

    if not _MAKES_FROM_IMAGES & set(spec.capabilities) or _WORKS_ON_INPUTS & set(spec.capabilities):
        return ""  # an upscaler, a lip-sync or a motion transfer needs its input: no prompt-only model does its work
    capability = "text-to-image" if spec.kind == "image" else "text-to-video"
    catalog = load_catalog()
    found = [
        other
        for other in catalog.offered()
        if other.kind == spec.kind
        and other.followup is None
        and capability in other.capabilities
        and (other.images is None or other.images.min == 0)
    ]
    if not found:
        return ""
    ranked = sorted(found, key=functools.partial(_kinship, spec, set(catalog.short_names())))[:3]
    made = "an image" if spec.kind == "image" else "a video"
    return f"; for {made} from the prompt alone, use {', '.join(s.id for s in ranked)}"


def _kinship(spec: ModelSpec, flagships: set[str], other: ModelSpec) -> tuple[int, int]:
    """How near ``other`` is to ``spec``, nearest first: the same maker (the longest shared id first), then the models
    a family's bare name picks (``flagships``), then the rest (catalogue order, as sorting is stable)."""
    pairs = zip(spec.id, other.id, strict=False)
    shared = next((i for i, (a, b) in enumerate(pairs) if a != b), len(other.id))
    if re.split(r"[/-]", other.id, maxsplit=1)[0] == re.split(r"[/-]", spec.id, maxsplit=1)[0]:
        return (0, -shared)
    return (1, 0) if other.id in flagships else (2, 0)


def _models_taking_images(spec: ModelSpec, count: int) -> str:
    """Models of ``spec``'s kind that work from ``count`` input images: image edit models for an image model,
    image-to-video models for a video model, each taking that many (one image is no request for a transition, which
    takes two). From the catalogue's capabilities: ``spec``'s own siblings first (the same maker, the longest shared
    id first), then the models a family's bare name picks (``nano banana``, ``veo``). When none takes that many, the
    most any takes, and the models that do."""
    from .registry import load_catalog  # only on this error; the catalogue is loaded by then

    capability, kind = ("edit", "image edit") if spec.kind == "image" else ("image-to-video", "image-to-video")
    catalog = load_catalog()
    rank = functools.partial(_kinship, spec, set(catalog.short_names()))
    takers = [s for s in catalog.offered() if s.kind == spec.kind and s.images and capability in s.capabilities]
    found = [s for s in takers if s.images and s.images.min <= count <= s.images.max]

    def best(models: list[ModelSpec]) -> str:
        return ", ".join(s.id for s in sorted(models, key=rank)[:3])  # sorted is stable: catalogue order within a rank

    if not found and takers:  # more images than any model takes: say the most, not a model that refuses them too
        most = max(s.images.max for s in takers if s.images)
        widest = [s for s in takers if s.images and s.images.max == most]
        return (
            f"no {kind} model takes {count} images: the most any takes is {most} (such as {best(widest)}). Give at "
            f"most {most} images to one of them (list_models shows them all)."
        )
    named = f" such as {best(found)}" if found else ""
    return f"choose an {kind} model{named} (list_models shows them all)."


# -- single values --------------------------------------------------------------------------


def _non_finite(value: Any) -> tuple[str, float] | None:
    """The first NaN or infinity anywhere in ``value`` (nested lists and objects too), with where it sits.

    KIE's JSON cannot carry NaN or Infinity (Python would write them as bare ``NaN`` literals), so none may go out.
    Iterative, so no nesting depth can crash it.
    """
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return where, item
        if isinstance(item, Mapping):
            stack.extend(reversed([(f"{where}.{key}", inner) for key, inner in item.items()]))
        elif isinstance(item, list | tuple):
            stack.extend(reversed([(f"{where}[{index}]", inner) for index, inner in enumerate(item)]))
    return None


def _not_finite(field: FieldSpec, number: float, *, nested: bool) -> str:
    shown = "NaN" if math.isnan(number) else ("Infinity" if number > 0 else "-Infinity")
    if nested or field.type not in ("integer", "number"):
        allowed = "a finite number" if nested else _allowed_text(field)
    else:
        kind = "an integer" if field.type == "integer" else "a number"
        bounds = f" in {_range_text(field.min, field.max)}" if field.min is not None or field.max is not None else ""
        allowed = f"{kind}{bounds}"
    return f"{shown} is not a number KIE can take (JSON has no NaN or Infinity). Give {allowed}."


def _allowed_text(field: FieldSpec) -> str:
    if field.type == "enum" and field.values:
        return "one of: " + listed(field.values)
    if field.type == "boolean":
        return "true or false"
    return {"string": "text", "url": "a URL"}.get(field.type, "a list of the documented values")


def _coerce(field: FieldSpec, value: Any) -> Any:
    """Accept the obvious spellings: aliases, ints for numeric strings, and back; for a listed text value, the value
    with the spaces around it trimmed ("9:16 ") and written in another case ("4K" where "4k" is listed), when that
    names one listed value alone. Only ever a listed value replaces what was given: nothing else is sent."""
    if isinstance(value, str) and value in field.value_aliases:
        return field.value_aliases[value]
    if field.type == "enum" and field.values:
        if isinstance(field.values[0], str) and isinstance(value, str) and value not in field.values:
            return _listed_spelling(field, value)
        if isinstance(field.values[0], str) and isinstance(value, int | float) and not isinstance(value, bool):
            as_text = str(int(value)) if float(value).is_integer() else str(value)
            return as_text if as_text in field.values else value
        if isinstance(field.values[0], int) and isinstance(value, str) and _WHOLE_TEXT.fullmatch(value):
            return int(value)
    if field.type == "integer" and isinstance(value, str) and _WHOLE_TEXT.fullmatch(value):
        return int(value)
    if field.type == "integers" and isinstance(value, list):
        return [_whole(item) for item in value]
    return value


# A whole number written as text: ASCII digits alone (``str.isdigit`` also takes "²", which ``int`` refuses), few
# enough for any whole number KIE takes (``WHOLE_LIMIT``).
_WHOLE_TEXT = re.compile(r"\s*-?[0-9]{1,18}\s*")
# The largest whole number sent to KIE in a field that sets no bound of its own: a 64-bit integer's (10**30, or 1e300
# as a number, is no setting any model has, and what KIE makes of it, a refusal or a charge, is unknown).
WHOLE_LIMIT = 2**63 - 1


def _whole(item: Any) -> Any:
    """A list of whole numbers' item as KIE takes it: ``"3"`` and ``3.0`` are 3; anything else as given (checked)."""
    if isinstance(item, str) and _WHOLE_TEXT.fullmatch(item):
        return int(item)
    if isinstance(item, float) and item.is_integer() and abs(item) <= 2**53:
        return int(item)
    return item


def _listed_spelling(field: FieldSpec, value: str) -> str:
    """The one listed value (or alias's value) ``value`` names once trimmed and compared without case, else
    ``value`` as given (refused by the check, which names the values it could be)."""
    trimmed = value.strip()
    if trimmed in field.value_aliases:
        return field.value_aliases[trimmed]
    matches = _same_but_case(trimmed, field.values or ())
    return str(matches[0]) if len(matches) == 1 else value


def _same_but_case(value: str, allowed: Sequence[Scalar]) -> list[Scalar]:
    folded = value.strip().casefold()
    return [v for v in allowed if isinstance(v, str) and v.strip().casefold() == folded]


def _check_value(field: FieldSpec, value: Any) -> str | None:
    kind = field.type
    if kind in ("string", "url"):
        if not isinstance(value, str):
            return f"expected text, got {plain(value)}."
        if field.max_length is not None and len(value) > field.max_length:
            whose = (
                " (kie-mcp's default bound: KIE documents no limit for this field)" if field.max_length_default else ""
            )
            return f"is {len(value)} characters long; the limit is {field.max_length}{whose}. Shorten it."
        return None
    if kind == "boolean":
        return None if isinstance(value, bool) else f"expected true or false, got {plain(value)}."
    if kind in ("integer", "number"):
        if isinstance(value, float) and not math.isfinite(value):
            return _not_finite(field, value, nested=False)
        if isinstance(value, bool) or not isinstance(value, int | float) or (kind == "integer" and value != int(value)):
            return f"expected a{'n integer' if kind == 'integer' else ' number'}, got {plain(value)}."
        if kind == "integer" and abs(value) > WHOLE_LIMIT:
            return f"{plain(value)} is out of range: give a whole number between {-WHOLE_LIMIT} and {WHOLE_LIMIT}."
        if field.auto is not None and value == field.auto:
            return _auto_refused(field, value)
        if (field.min is not None and value < field.min) or (field.max is not None and value > field.max):
            nearest = value if field.min is None else max(value, field.min)
            nearest = nearest if field.max is None else min(nearest, field.max)  # a bound not set bounds nothing
            shown = int(nearest) if kind == "integer" else nearest
            return (
                f"{plain(value)} is out of range {_range_text(field.min, field.max)}. Nearest allowed: {plain(shown)}."
            )
        return None
    if kind == "enum":
        assert field.values is not None
        if value in field.values and type(value) is type(field.values[0]):
            return None
        allowed = listed(field.values)
        if isinstance(value, str) and len(same := _same_but_case(value, field.values)) > 1:  # "4K" for 4K and 4k
            spelt = " or ".join(plain(v) for v in same)
            return f"{plain(value)} is not allowed; allowed: {allowed}. Give {spelt} exactly: the case matters here."
        hint = _nearest(value, field.values)
        extra = (
            f" Nearest: {plain(hint, quoted=False)}{_shape_word_note(value, hint, field.values)}."
            if hint is not None
            else ""
        )
        note = f" {field.note}" if field.note else ""
        return f"{plain(value)} is not allowed; allowed: {allowed}.{extra}{note}"
    # lists
    if not isinstance(value, list):
        return f"expected a list, got {plain(value)}."
    if kind in ("urls", "strings") and not all(isinstance(v, str) for v in value):
        return "expected a list of text values."
    if kind == "objects" and not all(isinstance(v, dict) for v in value):
        return "expected a list of objects."
    if kind == "integers":
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return f"expected a list of whole numbers, got {plain(value)}."
        if huge := [v for v in value if abs(v) > WHOLE_LIMIT]:
            return f"{plain(huge[0])} is out of range: give whole numbers between {-WHOLE_LIMIT} and {WHOLE_LIMIT}."
        low, high = field.min, field.max
        if outside := [v for v in value if (low is not None and v < low) or (high is not None and v > high)]:
            return f"every item must be {_range_text(low, high)}; {plain(outside[0])} is not."
    low, high = field.min_items or 0, field.max_items
    if len(value) < low or (high is not None and len(value) > high):
        return f"has {len(value)} item(s); allowed {_range_text(low, high)}."
    return None


def _auto_refused(field: FieldSpec, value: Any) -> str:
    """KIE's "the model picks" value (``FieldSpec.auto``): not "out of range", which reads as if KIE had no such
    value, but why kie-mcp does not send it and what to give instead."""
    span = _range_text(field.min, field.max)
    what, instead = ("the length", f"a length of {span} s") if field.arg == "duration" else ("it", f"a value in {span}")
    return (
        f"{plain(value)} (auto: the model picks {what}) is not offered: its cost cannot be quoted before the task "
        f"runs, and kie-mcp quotes every price before anything is sent. Pick {instead}."
    )


def _nearest(value: Any, allowed: Sequence[Scalar]) -> Scalar | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        numeric = [v for v in allowed if isinstance(v, int | float) or (isinstance(v, str) and v.isdigit())]
        if numeric:
            return min(numeric, key=lambda v: abs(float(v) - value))
    # A shape (9:16, 4:5, portrait_16_9, or a word for one: "vertical") is nearest by its proportions, never by its
    # spelling: 9:16 on a model offering 1:1, 3:2 and 2:3 is nearest 2:3, not 1:1 (which the text of "9:16"
    # resembles more).
    wanted = shape_ratio(value) or _shape_word(value)
    shapes = {v: shape for v in allowed if (shape := shape_ratio(v)) is not None}
    if wanted is not None and shapes:
        return min(shapes, key=lambda v: abs(math.log(shapes[v] / wanted)))
    text = str(value).lower()
    by_lower = {str(v).lower(): v for v in allowed}
    if text in by_lower:
        return by_lower[text]
    match = _close_matches(text, list(by_lower), n=1, cutoff=0.4)
    return by_lower[match[0]] if match else None


# Words for a frame's shape, as its width over height: each read as the usual frame of its kind (a phone's 9:16, a
# screen's 16:9), named as the nearest value with the others of its kind (``_shape_word_note``), never sent.
_SHAPE_WORDS = {
    "vertical": 9 / 16,
    "portrait": 9 / 16,
    "tall": 9 / 16,
    "horizontal": 16 / 9,
    "landscape": 16 / 9,
    "wide": 16 / 9,
    "widescreen": 16 / 9,
}  # "square" is a shape of its own (``shape_ratio``): nearest 1:1


def _shape_word(value: Any) -> float | None:
    return _SHAPE_WORDS.get(value.strip().casefold()) if isinstance(value, str) else None


def _shape_word_note(value: Any, hint: Scalar, allowed: Sequence[Scalar]) -> str:
    """After the nearest value to a word for a shape ("vertical"): what the word was read as, and the other listed
    values of that kind (taller than wide, wider than tall), nearest first, three at most; nothing for anything else."""
    wanted = _shape_word(value)
    if wanted is None:
        return ""
    kind = "taller than wide" if wanted < 1 else "wider than tall"
    shapes = {v: shape for v in allowed if v != hint and (shape := shape_ratio(v)) is not None}
    alike = sorted(
        (v for v, shape in shapes.items() if (shape < 1) == (wanted < 1) and shape != 1),
        key=lambda v: abs(math.log(shapes[v] / wanted)),
    )[:3]
    also = f"; {' and '.join(listed(alike).rsplit(', ', 1))} {'is' if len(alike) == 1 else 'are'} too" if alike else ""
    return f" ({plain(value)} read as a frame {kind}{also})"


_RATIO = re.compile(r"\s*(\d+(?:\.\d+)?)\s*[:x/]\s*(\d+(?:\.\d+)?)\s*")
_NAMED_SHAPE = re.compile(r"(portrait|landscape)_(\d+)_(\d+)")


def shape_ratio(value: Any) -> float | None:
    """Width over height of an aspect ratio value: ``16:9``, ``1024x768``, KIE's named sizes (``portrait_4_3`` is
    3:4, ``square_hd`` 1:1); None for anything else (``auto``, a number)."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    if text.startswith("square"):
        return 1.0
    if found := _NAMED_SHAPE.fullmatch(text):
        long, short = float(found[2]), float(found[3])
        ratio = long / short if long and short else None
        if ratio is None or not math.isfinite(ratio) or ratio <= 0:
            return None
        return ratio if found[1] == "landscape" else 1 / ratio
    if found := _RATIO.fullmatch(text):
        width, height = float(found[1]), float(found[2])
        ratio = width / height if width > 0 and height > 0 else None
        return ratio if ratio is not None and math.isfinite(ratio) and ratio > 0 else None
    return None


# -- rules --------------------------------------------------------------------------------


def when_matches(when: Mapping[str, Any], wire: Mapping[str, Any]) -> bool:
    """Whether a catalogue ``when`` table (a rule's, a price rate's, a frames table's) holds for ``wire``: each key
    is one of the listed values (``name#count``: how many items ``name`` holds; ``name#fits``: the picture in ``name``
    fits a listed ``WxH`` frame, either way round, by its size as sent, ``name#pixels``, which only a measured local
    file has: an unmeasured one fits no frame)."""
    for key, expected in when.items():
        if key.endswith(FITS):
            if not fits(wire.get(key.removesuffix(FITS) + PIXELS), expected):
                return False
            continue
        actual = _count(wire, key[:-6]) if key.endswith("#count") else wire.get(key)
        options = expected if isinstance(expected, list) else [expected]
        if not any(_norm(actual) == _norm(option) for option in options):
            return False
    return True


FITS = "#fits"  # a ``when`` key: the picture in the field fits a frame (``fits``)
PIXELS = "#pixels"  # a priced input's fact: the width and height of the picture in the field, as it is sent


def fits(pixels: Any, frames: Any) -> bool:
    """Whether ``pixels`` (a width and height) fits one of ``frames`` ("1920x1080", or a list of them) either way
    round: its longer side within the frame's longer one, its shorter within the shorter. No size: it fits none."""
    if not isinstance(pixels, list | tuple) or len(pixels) != 2:
        return False
    low, high = sorted(int(side) for side in pixels)
    for frame in frames if isinstance(frames, list) else [frames]:
        short, long = sorted(int(side) for side in str(frame).lower().split("x"))
        if low <= short and high <= long:
            return True
    return False


def _check_rule(rule: Rule, wire: Mapping[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    why = f" {rule.message}" if rule.message else ""
    for name, allowed in rule.allow.items():
        if name in wire and not any(_norm(wire[name]) == _norm(a) for a in allowed):
            problems.append(Problem(name, f"{plain(wire[name])} is not allowed here; allowed: {listed(allowed)}.{why}"))
    for name, (low, high) in rule.count.items():
        have = _count(wire, name)
        if not low <= have <= high:
            problems.append(Problem(name, f"has {have} item(s); allowed {_range_text(low, high)}.{why}"))
    for name in rule.require:
        if _absent(wire.get(name)):
            problems.append(Problem(name, f"is required here.{why}"))
    return problems


def _count(wire: Mapping[str, Any], name: str) -> int:
    value = wire.get(name)
    if isinstance(value, list):
        return len(value)
    return 0 if _absent(value) else 1


# -- wording ------------------------------------------------------------------------------


def _norm(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _absent(value: Any) -> bool:
    """No value: None, an empty list, or text with nothing but spaces (a "   " prompt is no prompt)."""
    return value is None or value == [] or (isinstance(value, str) and not value.strip())


def _range_text(low: float | None, high: float | None) -> str:
    fmt = lambda v: str(int(v)) if float(v).is_integer() else str(v)  # noqa: E731
    if low is not None and high is not None:
        return fmt(low) if low == high else f"{fmt(low)}-{fmt(high)}"
    if high is not None:
        return f"at most {fmt(high)}"
    return f"at least {fmt(low or 0)}"


# A webhook asked for in options (KIE's ``callBackUrl``, ``progressCallBackUrl``, as the seed documents and KIE's
# examples write them): refused as any field kie-mcp does not offer, saying why none is needed.
_CALLBACKS = re.compile(r"(?i)(progress_?)?call_?back(_?ur[li])?|web_?hook(_?ur[li])?")
NO_CALLBACKS = (
    " kie-mcp takes no callback: it runs on this computer, where KIE cannot reach it, and follows every task itself, "
    "saving the results as they finish (check_task shows them)."
)


def _unknown_option(spec: ModelSpec, key: str) -> str:
    names = sorted(spec.fields)
    close = _close_matches(key, names, n=1)
    hint = f" Did you mean {plain(close[0])}?" if close else ""
    why = NO_CALLBACKS if _CALLBACKS.fullmatch(key) else ""
    return f"{spec.id} has no field {plain(key)}.{why}{hint} Its fields: {', '.join(names)}."


def _missing(spec: ModelSpec, field: FieldSpec) -> str:
    if field.arg or (spec.images and field.name in spec.images.to):
        return f"is required by {spec.id}."
    return f"is required by {spec.id}; set it in options."


# -- names the user gave ------------------------------------------------------------------------


def argument_name(spec: ModelSpec, name: str) -> str:
    """The tool argument that sets KIE's field ``name``: the common argument it maps from (``resolution`` for
    Kling's ``mode``, ``audio`` for its ``sound``), ``images`` for an image field, else the field's own name (an
    option, set in ``options`` under KIE's name)."""
    field = spec.fields.get(name)
    if field is not None and field.arg:
        return field.arg
    if spec.images and name in spec.images.to:
        return "images"
    return name


def named_for_user(
    spec: ModelSpec, problems: Sequence[Problem], options: Mapping[str, Any] | None = None
) -> list[Problem]:
    """``problems`` found on the wire input, each under the name the user set it with: the tool argument
    (``duration``, ``resolution``, ``images[1]``) or ``options.<field>`` (what the user put in ``options``, and
    fields only ``options`` can set). Problems already named for the user pass through unchanged."""
    given = set(options or ())
    return [Problem(_user_field(spec, problem.field, given), problem.message) for problem in problems]


def _user_field(spec: ModelSpec, where: str, given: set[str]) -> str:
    base, rest = re.match(r"([^.\[]*)(.*)", where, re.DOTALL).groups()  # type: ignore[union-attr]
    if base not in spec.fields:
        return where
    if base in given:
        return f"options.{base}{rest}"
    field, images = spec.fields[base], spec.images
    if field.arg:
        return f"{field.arg}{rest}"
    if images and base in images.to:
        return f"images[{images.to.index(base)}]{rest}" if len(images.to) > 1 else f"images{rest}"
    return f"options.{base}{rest}"


def _close_matches(word: str, possibilities: Sequence[str], n: int = 3, cutoff: float = 0.6) -> list[str]:
    """``difflib.get_close_matches``, loaded only for a refusal that names what was meant (not at every start)."""
    import difflib

    return difflib.get_close_matches(word, possibilities, n=n, cutoff=cutoff)
