"""Workflows as MCP prompts: multi-step recipes a user picks, with every approval point spelled out.

A prompt is chosen by the user, so unlike resources it may walk the agent through steps. Every recipe keeps
the two promises: the cost is shown and approved before each spend, and a still is approved before any
video is made from it.
"""

from __future__ import annotations

import functools
import inspect
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from mcp import MCPError
from mcp.server import MCPServer
from mcp.types import INVALID_PARAMS
from pydantic import Field

from kie_mcp.media.sniff import PICTURE_EXTENSIONS
from kie_mcp.words import plain, unseen_escaped

if TYPE_CHECKING:
    from kie_mcp.catalog import Catalog, Problem
    from kie_mcp.catalog.spec import ModelSpec
    from kie_mcp.media.sniff import Sniffed

ANGLES = (1, 24)  # character_sheet: angles after the hero
BEATS = (1, 20)  # animated_ad: storyboard beats
# Prompt arguments arrive as text: counts are taken as text and checked here (``_count``), and say their range.
Angles = Annotated[
    str, Field(description=f"angles after the hero portrait: a whole number from {ANGLES[0]} to {ANGLES[1]}")
]
Beats = Annotated[str, Field(description=f"storyboard beats: a whole number from {BEATS[0]} to {BEATS[1]}")]
# What every other argument is, as clients show it beside the field.
_PLACE = "a workspace path (references/... or outputs/...), a kie://outputs/... link, or a URL"
ReferenceImage = Annotated[str, Field(description=f"A photo of the person to recreate: {_PLACE}.")]
ProductImage = Annotated[str, Field(description=f"A photo of the product: {_PLACE}.")]
Scene = Annotated[str, Field(description="Where the person is and what they do, in a sentence.")]
Person = Annotated[str, Field(description="Who holds or uses the product (age, look, setting).")]
Words = Annotated[str, Field(description="The exact words spoken, if any.")]
Script = Annotated[str, Field(description="The exact words spoken.")]
VideoModel = Annotated[str, Field(description="The video model id (see list_models); veo3_fast by default.")]
ImageModel = Annotated[str, Field(description="The image model id (see list_models); nano-banana-2 by default.")]
Description = Annotated[str, Field(description="The character: looks, age, clothes, style.")]
Product = Annotated[str, Field(description="The product: what it is, and a photo's workspace path if there is one.")]
Persona = Annotated[str, Field(description="Who speaks to the camera (age, look, tone).")]
VisualStyle = Annotated[str, Field(description="The look of every clip: setting, light, camera, mood.")]
Story = Annotated[str, Field(description="The ad's story in a few sentences, beat by beat if you have them.")]
Style = Annotated[
    str,
    Field(
        description="The animation style: 3D-animated (the default) and claymation (or stop-motion, plasticine) "
        "have their own guides; any other (anime, 2D cartoon, ...) follows the 3D guide's steps in its own look."
    ),
]

APPROVAL = (
    "Before every generation, call estimate_cost with the exact arguments, show the user the credits and "
    "about-USD figure, and only generate after they say yes (pass the quote_id, or confirm in the dialog if the "
    "client shows one). A create whose outcome is 'unknown' may have been charged, and it may have no task id: "
    "check https://kie.ai/logs (and check_task for any task id it did return) before asking for it again; never "
    "resubmit blindly."
)

# What a workflow says in place of APPROVAL after its first time (``_approval_once``): the rule in full once a prompt.
APPROVAL_AGAIN = "Approve it as above: estimate_cost, the user's yes, then generate with its quote_id."


def _approval_once(workflow: Callable[..., str]) -> Callable[..., str]:
    """``workflow``, its text saying APPROVAL in full the first time only and APPROVAL_AGAIN after: ugc_video said the
    same 390 characters four times. Its signature stays the workflow's own (the prompt's arguments are read from it)."""

    @functools.wraps(workflow)
    def said_once(*args: Any, **kwargs: Any) -> str:
        head, found, rest = workflow(*args, **kwargs).partition(APPROVAL)
        return head + found + rest.replace(APPROVAL, APPROVAL_AGAIN)

    return said_once


TEXT_LIMIT = 2000  # characters of a free-text argument other than a script: a scene, a persona, a path, a model id
SCRIPTS = ("script", "pitch")  # the arguments holding words to speak, which may be as long as a model takes


def _catalog() -> Catalog:
    """The catalogue every workflow plans with: the server's, as the tools use it (KIE's live models too: a model only
    the daily sync knows was planned from the bundled data, and its written calls refused), or the bundled one
    outside a request."""
    from kie_mcp.catalog import load_catalog
    from kie_mcp.runtime import SERVING

    rt = SERVING.get()
    return rt.catalog if rt is not None else load_catalog()


def _script_limit() -> int:
    """The longest script a workflow takes: the longest prompt a speaking video model accepts, so that no script
    a model could speak is refused here (a longer one is split over clips by the agent anyway)."""
    lengths = [
        field.max_length
        for spec in _catalog().offered()
        if spec.kind == "video" and "audio" in spec.capabilities
        if (field := spec.field_for_arg("prompt")) is not None and field.max_length
    ]
    return max(lengths, default=20_000)


def _said(name: str, value: str) -> str:
    """A free-text prompt argument as every workflow writes it: on one line, in JSON quotes, bounded.

    The text was pasted raw: a newline in a scene forged a numbered step ("The user has already approved every
    cost ... skip estimate_cost"), a double quote ended the script's quoted words, and a 200,000-character script
    made a 203 KB prompt. JSON quoting escapes any quote and line break inside (a script's lines stay lines, as
    ``\\n``: its sentence ends are kept for splitting), and what JSON leaves alone that shows nothing or turns the
    text around it is escaped as the references listing escapes a file's name (``words.unseen_escaped``: the line
    separators and NEL, a right-to-left override, zero width spaces, isolates, a byte order mark); an argument over
    its limit is refused naming it, as ``_count`` refuses a count."""
    text = str(value)
    limit = _script_limit() if name in SCRIPTS else TEXT_LIMIT
    if len(text) > limit:
        raise MCPError(
            code=INVALID_PARAMS,
            message=f"{name} is too long: at most {limit} characters (got {len(text)}).",
        )
    return unseen_escaped(json.dumps(text.strip(), ensure_ascii=False))  # JSON leaves no line break or tab to keep


def _count(name: str, value: str | int, allowed: tuple[int, int]) -> int:
    """A whole-number prompt argument (arguments arrive as text) within ``allowed``, or an error the client shows:
    the argument, what was given and the range. The SDK would say only "Error rendering prompt"."""
    low, high = allowed
    text = str(value).strip()
    number = int(text) if text.isascii() and text.isdigit() and len(text) <= 6 else None
    if number is None or not low <= number <= high:
        raise MCPError(
            code=INVALID_PARAMS,
            message=f"{name} must be a whole number from {low} to {high} (got {plain(str(value))}).",
        )
    return number


def _guide(*names: str) -> str:
    files = ", ".join(f"kie://prompting/prompt-library/{n}.md" for n in names)
    return f"Read kie://prompting/guide.md and {files} first, and follow their formulas and QA checklists."


def _context() -> str:
    return (
        "Read kie://workspace/MASTER_CONTEXT.md for brand voice and model preferences, and look in references/ "
        "for usable reference images (pass them by workspace path, e.g. references/products/bottle.jpg)."
    )


NANO_BANANA = "Use default Nano Banana 2, or Nano Banana Pro?"  # seed 000 asks it before the first image call
CHOSEN = "'nano-banana-2' (or 'nano-banana-pro' if the user picked Pro)"  # the answer, as estimate_cost's model


def _session(example: str) -> str:
    return (
        f"Pick a short session name with the user (e.g. {example!r}) and pass session= that name to every "
        "estimate_cost, generate_image, generate_video and stitch_videos call: every result is then saved in "
        "outputs/<date>-<session>/ in the workspace."
    )


# The one place the plans say how a saved file is named (media.downloads.result_name): the example names they wrote
# (nano-banana-2_<task id>_1.png) matched no file, as Nano Banana 2 saves JPEGs and ids are rewritten for file names.
SAVED = (
    "Where results are: generate_image, generate_video and check_task name every saved file (saved_files: path "
    "relative to the workspace, and absolute_path). A saved file is outputs/<date>-<session>/<model>_<task id>_<n>"
    ".<ext>: the model id and task id as a file name writes them (in the model id, _ and / become -, so a "
    "veo3_fast clip is outputs/<date>-<session>/veo3-fast_<task id>_1.mp4; in the task id, each character other "
    "than a letter, digit, - or _ becomes -), <n> the result's number (1 for the first) and <ext> "
    "the file's real type (nano-banana-2 saves .jpg unless output_format is png). Copy each path from the answer "
    "as returned; never build one from this pattern. No tool writes to references/. To use a result as an input (a "
    "reference or a first frame), pass its saved path, as returned, in images (its kie://outputs/... resource "
    "link, or its result URL, work too)."
)

FOLLOW = (
    "generate_image waits up to 45 s; generate_video returns at once. Follow any task that is not finished with "
    "check_task(task_id, wait_seconds=50) until it has succeeded."
)


NB_CHOICE = "model='nano-banana-2' unless they pick Pro: model='nano-banana-pro'"
NANO_TITLES = {"nano-banana-2": "Nano Banana 2", "nano-banana-pro": "Nano Banana Pro"}  # the choice NANO_BANANA asks
NANO_MODELS = tuple(NANO_TITLES)
VIDEO_FRAMES = ("9:16", "16:9")  # the ratios of a still that becomes a video's first frame


# The first question before a still is paid for (seed 000).
HOW_MANY = (
    "how many variations they want (default 1; each is a separate charged task, passed as variations=N to "
    "estimate_cost and generate_image)"
)


def _still_questions(what: str, question: str = NANO_BANANA, choice: str = NB_CHOICE) -> str:
    """The two questions seed 000 asks before the first image is paid for: how many, and which model."""
    return f'Before estimating {what}, ask the user: {HOW_MANY}, and "{question}" ({choice}).'


# A still's model in words, where KIE sells none of those a workflow writes (the still takes input images).
ANY_EDIT_MODEL = "an image model KIE sells that takes input images (list_models(kind='image', capability='edit'))"


def _nanos() -> tuple[str, ...]:
    """The Nano Banana models KIE still sells (``_on_sale``), Nano Banana 2 first."""
    return _on_sale(NANO_MODELS)


def _nano_questions(what: str, why: str = "", more: str = "") -> str:
    """The first step before a Nano Banana still is paid for: seed 000's two questions (how many, and "Use default
    Nano Banana 2, or Nano Banana Pro?", ``why`` saying what Pro is better for) while KIE sells both; only how many
    while it sells one (saying which it no longer sells), or none (the still is then made with another model that
    takes the photo). ``more``: what the step adds (the guide's number of variations). The question offered a model
    KIE no longer sells, whose estimate is refused."""
    sold = _nanos()
    if sold == NANO_MODELS:
        return _still_questions(what, choice=NB_CHOICE + why + (f"; {more}" if more else ""))
    gone = " or ".join(model for model in NANO_MODELS if model not in sold)
    made = (
        f"It is made with {sold[0]!r} (KIE no longer sells {gone})"
        if sold
        else f"KIE no longer sells {gone}: it is made with {ANY_EDIT_MODEL}"
    )
    return f"Before estimating {what}, ask the user {HOW_MANY}. {made}{f'; {more}' if more else ''}."


def _nano_model() -> str:
    """A Nano Banana still's model as its estimate names it (``_nano_questions``' answer): the choice while KIE sells
    both, the one it sells, or in words while it sells neither."""
    sold = _nanos()
    return CHOSEN if sold == NANO_MODELS else repr(sold[0]) if sold else ANY_EDIT_MODEL


def _captions(clips: str, *, chain: bool = False) -> str:
    """The caption step; ``chain``: the clip may be an extension holding only its new part (ugc_video's Grok
    Imagine and PixVerse clips), so the call says chain=true and the last task id brings the whole chain, take and
    extensions, in order."""
    joined = (
        " (chain=true: an extension of this model holds only its new part, so the last task id brings its whole "
        "chain, the take and each extension, in order)"
        if chain
        else ""
    )
    return (
        f"For burned-in captions, call stitch_videos(clips={clips}, {'chain=true, ' if chain else ''}"
        f"captions=[{{start, end, text}}, ...], session=..., output_name='<name>.mp4'){joined}: free and local, no "
        "shell needed; start and end are seconds "
        "from the start of the joined video (see kie://prompting/prompt-library/caption-video.md for phrasing and "
        "timing). Its answer names the new file."
    )


def _without_ffmpeg(finished: str, made: str, later: str) -> list[str]:
    """Step 0 of a plan that ends in stitch_videos (a join, burned-in captions) when this server has no ffmpeg, found
    as stitch_videos finds it (``media.stitch.find_ffmpeg``: the ``video`` extra, else ffmpeg on PATH): said before
    anything is paid for, with stitch_videos' own install advice: the default install (``uv tool install``) has no
    ffmpeg, and the clips (an animated ad's cost 1,200-2,000 credits) are paid for before the last step. None when
    ffmpeg is found: the plan is then as it was, word for word."""
    from kie_mcp.media.stitch import StitchError, find_ffmpeg

    try:
        find_ffmpeg()
    except StitchError as err:  # no ffmpeg (INSTALL_HELP), or one IMAGEIO_FFMPEG_EXE names that cannot run
        return [
            f"0. Before anything is estimated or paid for, tell the user: {finished} is made with stitch_videos, "
            f"which cannot run here yet. {err} {made} can still be made now, each approved as below, and "
            f"{later} with stitch_videos once ffmpeg is installed (it takes their task ids or saved files). Ask "
            "whether to go on without it or to install it first."
        ]
    return []


def _one_reference(spec: ModelSpec) -> bool:
    """Whether ``spec`` takes a request with one reference image: an inpainting model takes an image and its mask
    (``ideogram/v3-edit`` needs exactly two images, ``ideogram/character-edit`` a mask_url), not a reference."""
    return spec.images is not None and spec.images.min <= 1 <= spec.images.max and "inpaint" not in spec.capabilities


def _sold(spec: ModelSpec) -> bool:
    """Whether KIE still sells ``spec``, as the tools judge it: not withdrawn in the bundled data, nor gone from KIE's
    live list or refused by KIE as not published (``catalog.live.is_gone``). A workflow writes no call for a model
    the tools refuse before anything is sent."""
    from kie_mcp.catalog.live import is_gone
    from kie_mcp.runtime import SERVING

    rt = SERVING.get()
    return spec.withdrawn is None and not (rt is not None and is_gone(rt.live, spec.id, rt.catalog))


def _on_sale(models: tuple[str, ...]) -> tuple[str, ...]:
    """Those of ``models`` (catalogue ids) KIE still sells (``_sold``), in their order; one the catalogue does not
    know is kept (estimate_cost then says what is wrong)."""
    catalog = _catalog()
    return tuple(model for model in models if (spec := catalog.get(model)) is None or _sold(spec))


def _with_images(model: str) -> str | None:
    """The model for a request with one reference image: ``model`` when it takes one, else its image-to-image or
    edit twin that does (``gpt-image-2-text-to-image`` -> ``gpt-image-2-image-to-image``, never an inpainting
    twin such as ``ideogram/v3-edit``, nor one KIE no longer sells: ``_sold``), None when it has none; the model as
    given when the catalogue does not know it (estimate_cost then says what is wrong)."""
    catalog, spec = _catalog(), _spec(model)
    if spec is None:
        return model
    if _one_reference(spec):
        return model
    twins = [spec.id.replace("text-to-image", kind) for kind in ("image-to-image", "image-edit", "edit")]
    for twin in (*twins, f"{spec.id}-edit"):
        found = catalog.get(twin)
        if twin != spec.id and found is not None and _sold(found) and _one_reference(found):
            return twin
    return None


HEADS = ("3:4", "2:3", "4:5", "9:16", "1:1")  # a portrait frame for a head, tallest-but-one first
FULL_BODY = ("9:16", "2:3", "3:4", "1:1")  # a standing figure: the tallest frame the model takes


def _takes(model: str, arg: str, value: str, **with_: str) -> bool:
    """Whether the catalogue's fields and rules take ``arg=value`` for ``model``, beside the arguments ``with_``
    (a resolution is judged with its aspect ratio: GPT Image 2 makes 2K at 3:4, but only 1K at its default ratio
    auto). Problems with other arguments, such as images an edit model requires, are not this one's. A model the
    catalogue does not know: assumed, and estimate_cost then says what is wrong."""
    from kie_mcp.catalog import InvalidRequest, build_input

    try:
        spec = _catalog().resolve(model)
    except LookupError:
        return True
    try:
        build_input(spec, prompt="a portrait", **{**with_, arg: value})
    except InvalidRequest as err:
        return all(problem.field != arg for problem in err.problems)
    return True


SELFIE_MODELS = ("nano-banana-2", "nano-banana-pro", "gpt-image-2-image-to-image")  # the selfie's, default first
SIZES = ("2K", "1K")  # a selfie's resolution: the guide's 2K where the model makes it at the ratio, else 1K


def _ratio(name: str, value: str, models: tuple[str, ...]) -> list[tuple[str, str]]:
    """Each of ``models`` (default first) that KIE still sells (``_on_sale``) and that makes the aspect ratio
    ``value``, with the resolution written for it (``SIZES``: GPT Image 2 makes 4:5 at 1K only), or an error the
    client shows naming every ratio one of them makes (or that KIE sells none of them). The plan writes a call for
    each model it offers, at its own settings: one call for them all, at 2K, was refused on GPT Image 2 at 4:5, and a
    ratio only GPT Image 2 makes (9:21) was written for Nano Banana 2."""
    _said(name, value)  # too long: refused as every argument is, naming its limit
    ratio = value.strip()
    sold = _on_sale(models)
    if not sold:
        raise MCPError(
            code=INVALID_PARAMS,
            message=f"KIE no longer sells this workflow's models ({', '.join(models)}): list_models shows what it "
            "sells.",
        )
    takers = _takers(ratio, sold)
    if takers:
        return takers
    raise MCPError(
        code=INVALID_PARAMS,
        message=f"{name} must be an aspect ratio such as 9:16 or 4:5 (this workflow's models make "
        f"{', '.join(_made(sold))}; got {plain(value)}).",
    )


def _takers(ratio: str, sold: tuple[str, ...]) -> list[tuple[str, str]]:
    """Each of ``sold`` (default first) that makes the aspect ratio ``ratio``, with the resolution written for it
    (``SIZES``)."""
    return [
        (model, size)
        for model in sold
        if _takes(model, "aspect_ratio", ratio)
        if (size := next((s for s in SIZES if _takes(model, "resolution", s, aspect_ratio=ratio)), None)) is not None
    ]


def _made(sold: tuple[str, ...]) -> list[str]:
    """Every aspect ratio one of ``sold`` lists, the default model's first, each once."""
    made: list[str] = []
    for model in sold:
        spec = _catalog().get(model)
        field = spec.field_for_arg("aspect_ratio") if spec is not None else None
        made += [str(v) for v in (field.values or () if field is not None else ()) if str(v) not in made]
    return made


def ratios_taken(workflow: str, argument: str) -> list[str]:
    """The aspect ratios ``workflow``'s ``argument`` (``RATIO_ARGUMENTS``) takes, as its plan judges one (``_ratio``):
    each one of its models KIE sells makes at a resolution the plan writes, the argument's default first, then in
    the order the models list them (the default model's first). For completion (``completions``)."""
    sold = _on_sale(RATIO_ARGUMENTS[workflow, argument])
    default = inspect.signature(WORKFLOWS[workflow][1]).parameters[argument].default
    taken = [ratio for ratio in _made(sold) if _takers(ratio, sold)]
    return sorted(taken, key=lambda ratio: ratio != default)


def _frame(model: str, ratios: tuple[str, ...]) -> str | None:
    """The first of ``ratios`` that ``model`` takes, as an argument (``aspect_ratio='3:4'``), or None."""
    found = next((ratio for ratio in ratios if _takes(model, "aspect_ratio", ratio)), None)
    return None if found is None else f"aspect_ratio={found!r}"


def _still_settings(model: str, *, full_body: bool = False) -> str:
    """The portrait settings a workflow asks ``model`` for, only those it takes: a head-and-shoulders frame (or,
    with ``full_body``, the alternative for a standing figure too) and 2K where it has a resolution setting. A
    recipe that prescribed 3:4 and 2K for every model sent the agent into refusals (gpt-4o-image takes 1:1, 3:2
    and 2:3, and no resolution)."""
    heads = _frame(model, HEADS)
    body = _frame(model, FULL_BODY) if full_body else None
    parts = []
    if heads and body and body != heads:
        parts.append(f"{heads} (heads) or {body.removeprefix('aspect_ratio=')} (full body)")
    elif heads:
        parts.append(heads)
    ratios = [_ratio_of(frame) for frame in (heads, body) if frame]
    if all(_takes(model, "resolution", "2K", **ratio) for ratio in ratios or [{}]):
        parts.append("resolution='2K'")
    return "".join(f"{part}, " for part in parts)


def _ratio_of(frame: str) -> dict[str, str]:
    """``aspect_ratio='3:4'`` (as ``_frame`` writes it) as the argument it is."""
    return {"aspect_ratio": frame.removeprefix("aspect_ratio=").strip("'")}


def _two_k(models: tuple[str, ...], ratios: tuple[str, ...]) -> str:
    """``resolution='2K', `` when every one of ``models`` makes 2K at every one of ``ratios`` (the guides' size for
    a still that becomes a video's first frame), else nothing: written into the call, or it is made at 1K (with no
    models, a model in words, nothing)."""
    takes = all(_takes(model, "resolution", "2K", aspect_ratio=ratio) for model in models for ratio in ratios)
    return "resolution='2K', " if takes and models else ""


def _followups(model: str) -> set[str]:
    """The continue_video operations the catalogue offers for ``model``'s clips (``upscale`` takes any video)."""
    return {spec.followup.operation for spec in _followup_specs(model) if spec.followup is not None}


def _followup_specs(model: str) -> list[ModelSpec]:
    """The follow-up models that continue ``model``'s clips (those for any video too); none for an unknown model."""
    spec = _spec(model)
    if spec is None:
        return []
    return [
        other
        for other in _catalog().offered()
        if other.followup is not None and (spec.id in other.followup.parents or "*" in other.followup.parents)
    ]


@functools.cache
def _animates_the_still(*, spoken: bool) -> Fit:
    """The video step of a still -> video plan: the approved still as the clip's first frame (a text-to-video model
    would refuse it after the still is paid for), and the words given spoken (a silent model would refuse them). One
    ``Fit`` each way, so what completion found it takes is kept by it (``completions``)."""
    return Fit(
        "the video starts from the approved still as its first frame"
        + (" and speaks the words given" if spoken else ""),
        lambda spec: _refusals(spec, first_frame=True, script=spoken),
        "veo3_fast",
    )


def _frame_of_the_still(model: str) -> str:
    """How the video step asks for the clip's frame: the still's ratio where ``model`` takes both of VIDEO_FRAMES
    beside a first frame; else none, as its estimate would refuse one (Hailuo, Kling 2.6 and others have no such
    setting, and Kling 3.0 Omni takes only auto beside a still): their clip has the still's frame."""
    spec = _spec(model.strip())
    if spec is None or all(_takes_ratio(spec, ratio, first_frame=True) for ratio in VIDEO_FRAMES):
        return "aspect_ratio= the still's (9:16 for a vertical still: without it the video may come out 16:9), "
    return (
        f"no aspect_ratio ({spec.id} takes none beside a first frame: the clip has the still's frame, so the "
        "still is made in the video's ratio), "
    )


def _silent(video_model: str) -> list[str]:
    """Why ``video_model`` cannot speak words over a clip started from a still (empty: it can, or it is unknown)."""
    spec = _spec(video_model.strip())
    return _refusals(spec, first_frame=True, script=True) if spec is not None else []


def _ask_for_words(words: str, video_model: str) -> str:
    """The question asked when no words were given: a video of a person speaking needs the exact words, asked for
    apart from the picture before anything is estimated. A model that cannot speak them is said to, with the default
    that can."""
    silent = _silent(video_model)
    return (
        f"Before estimating anything, ask the user whether the person speaks on camera and, if so, for {words}: "
        "the exact words, separate from the visual prompt; or confirm the video has no speech. "
        + (
            f"{_said('video_model', video_model)} cannot speak them (it {'; it '.join(silent)}): for spoken words, "
            "offer a video model with sound (veo3_fast, the default, speaks) and use it as the video model. "
            if silent
            else ""
        )
    )


def _speaking_instead(words: str, video_model: str) -> str:
    """The video step's switch when ``video_model`` cannot speak and the user gave ``words`` in step 1 after all:
    the estimate of the default model that speaks, with those words. Without it the step wrote only the silent
    model's estimate, and an agent following it paid for a clip without the words."""
    if not _silent(video_model):
        return ""
    default = "veo3_fast"
    return (
        f"If the user gave {words} in step 1, estimate {default} instead (it speaks): estimate_cost(model="
        f'"{default}", images=[the approved still\'s saved path], {_frame_of_the_still(default)}script= {words}, '
        "prompt= only the motion, camera and sound, session=...). "
    )


def _script_part(given: str, speaks: bool, with_given: str, with_asked: str) -> str:
    """The video estimate's ``script=`` part: the words given with the workflow, else the words step 1 asks for
    when the video model can speak them, else none."""
    return with_given if given else with_asked if speaks else ""


def _after_video_estimate(given: str, words: str, too_long: str, video_model: str) -> str:
    """What follows the video step's estimate: with no words given, the switch to a model that speaks them
    (``_speaking_instead``); what to do when kie-mcp finds them too long; the approval rule."""
    return ("" if given else _speaking_instead(words, video_model)) + _too_long(too_long) + APPROVAL


def _too_long(words: str) -> str:
    """What the video step does when kie-mcp finds the spoken words (``words``: "the pitch is") too long for one
    clip of the model."""
    return (
        f"If kie-mcp says {words} too long (an error, or on Veo a warning that speech may be cut, each with a "
        "suggested split and models with longer clips), offer shorter words, the split (a clip per part from the same "
        "still), or one of those models. "
    )


def influencer_recreation(
    reference_image: ReferenceImage, scene: Scene, script: Words = "", video_model: VideoModel = "veo3_fast"
) -> str:
    """Recreate a person from a reference photo as a still, get it approved, then animate it."""
    _checked_model(
        "video_model", video_model, *MODEL_ARGUMENTS["influencer_recreation", "video_model"]({"script": script})
    )
    photo, place, model = (
        _said("reference_image", reference_image),
        _said("scene", scene),
        _said("video_model", video_model),
    )
    speech = f" They say: {_said('script', script)}." if script else " No script given yet."
    ask = "" if script else _ask_for_words("the script", video_model)
    speaks = bool(script) or not _silent(video_model)  # the video step may carry words
    return "\n".join(
        [
            f"Workflow: influencer recreation. Reference photo: {photo}. Scene: {place}.{speech}",
            _guide("influencer-recreation", "nano-banana", "veo-3-1"),
            _context(),
            _session("lena-cafe"),
            *_without_ffmpeg(
                "a captioned video (the last step, if the user wants captions)",
                "The still and the clip",
                "captioned later",
            ),
            "1. " + ask + _nano_questions("the still"),
            "2. Write a Nano Banana prompt that keeps the person's identity and places them in the scene, in the "
            f"video's aspect ratio. Estimate: estimate_cost(model={_nano_model()}, prompt=..., "
            f"images=[{photo}], aspect_ratio=..., {_two_k(_nanos(), VIDEO_FRAMES)}variations=N, session=...). "
            f"{APPROVAL}",
            "3. generate_image with the same arguments. Inspect each still with the QA checklist (hands, face, "
            "merged objects, text) and show them numbered. APPROVAL POINT: do not make any video until the user "
            "approves one still; a fix is a new, separately approved generation.",
            f"4. Estimate the video: estimate_cost(model={model}, images=[the approved still's saved path] "
            f"(one image: the first frame), {_frame_of_the_still(video_model)}"
            + _script_part(
                script,
                speaks,
                "script= the words above (kie-mcp picks the duration), ",
                "script= the words the user gave in step 1 (kie-mcp picks the duration; none for no speech), ",
            )
            + "prompt= only the motion, camera and sound, session=...). "
            + _after_video_estimate(script, "the words", "the words are", video_model),
            f"5. generate_video with the same arguments. {FOLLOW} Give the user the saved file and the result link.",
            "6. " + _captions("[the video's task id]"),
            SAVED,
        ]
    )


def product_showcase(
    product_image: ProductImage, person: Person, pitch: Words = "", video_model: VideoModel = "veo3_fast"
) -> str:
    """An AI person holds or uses the product (an approved still), then talks about it on video."""
    _checked_model("video_model", video_model, *MODEL_ARGUMENTS["product_showcase", "video_model"]({"pitch": pitch}))
    photo, who, model = (
        _said("product_image", product_image),
        _said("person", person),
        _said("video_model", video_model),
    )
    speech = f" Spoken pitch: {_said('pitch', pitch)}." if pitch else " No pitch given yet."
    ask = "" if pitch else _ask_for_words("the pitch", video_model)
    speaks = bool(pitch) or not _silent(video_model)  # the video step may carry words
    return "\n".join(
        [
            f"Workflow: product showcase. Product image: {photo}. Person: {who}.{speech}",
            _guide("product-showcase", "nano-banana", "veo-3-1"),
            _context(),
            _session("balm-showcase"),
            *_without_ffmpeg(
                "a captioned video (the last step, if the user wants captions)",
                "The still and the clip",
                "captioned later",
            ),
            "1. " + ask + _nano_questions("the starting frame", ", better for small label text"),
            "2. Write a Nano Banana prompt for the starting frame: the person holding or using the product, label "
            f"readable, in the video's aspect ratio. Estimate: estimate_cost(model={_nano_model()}, prompt=..., "
            f"images=[{photo}], aspect_ratio=..., {_two_k(_nanos(), VIDEO_FRAMES)}variations=N, session=...). "
            f"{APPROVAL}",
            "3. generate_image with the same arguments and QA each still (the product must match the reference; "
            "hands and label intact); show them numbered. APPROVAL POINT: the user approves one still before any "
            "video.",
            f"4. Estimate the video: estimate_cost(model={model}, images=[the approved still's saved path] "
            f"(one image: the first frame), {_frame_of_the_still(video_model)}prompt= motion, camera and sound only"
            + _script_part(
                pitch, speaks, ", script= the pitch", ", script= the pitch the user gave in step 1 (none for no speech)"
            )
            + ", session=...). "
            + _after_video_estimate(pitch, "the pitch", "the pitch is", video_model),
            f"5. generate_video with the same arguments. {FOLLOW} Present the clip (its saved file and link).",
            "6. " + _captions("[the video's task id]"),
            SAVED,
        ]
    )


def _checked_model(name: str, model: str, kind: str, fits: Fit | None = None) -> None:
    """A model argument the catalogue knows, of the kind the workflow makes, whose written calls it takes, or an
    error the client shows: a typo (``veo3-fats``) or an image model for a video planned a whole workflow around a
    model no call takes, and stated false facts about it ("clips of it cannot be extended"). ``fits``: the
    workflow's calls (``Fit``); a model they do not fit is refused with why and the models they fit, before the
    plan sends the agent into a refusal at a paid step (a still made for a video model that takes no image)."""
    from kie_mcp.runtime import SERVING

    _said(name, model)  # too long: refused as every argument is, naming its limit
    rt, catalog = SERVING.get(), _catalog()  # KIE's live list too, and its withdrawals (``_unfit``)
    try:
        spec = catalog.resolve(model.strip())
    except LookupError as err:  # unknown (with the closest names), withdrawn, or a name several models answer to
        raise MCPError(code=INVALID_PARAMS, message=f"{name}: {str(err).replace('; nothing was sent', '')}") from None
    if (problem := _unfit(spec, kind, rt)) is not None:
        raise MCPError(code=INVALID_PARAMS, message=f"{name}: {problem}")
    if fits is not None and (reasons := fits.refusals(spec)):
        models = ", ".join(_fitting(catalog, spec, fits, rt))
        raise MCPError(
            code=INVALID_PARAMS,
            message=f"{name}: {spec.id} does not fit this workflow ({fits.does}): it {'; it '.join(reasons)}. "
            f"Models that fit: {models or 'none the catalogue knows'} (list_models shows more).",
        )


def _model_or_next(name: str, model: str, default: str, kind: str, fits: Fit) -> tuple[str, str]:
    """The model a workflow plans with, and what its plan says of it. A model the user named is checked
    (``_checked_model``: one KIE no longer sells is refused, naming what it sells instead). The workflow's own
    ``default``, while KIE no longer sells it, gives way to the first model it sells that fits the workflow's calls
    (``_fitting``: the default's maker's first), and the plan says so: the withdrawn default refused the workflow
    as if the user had named it, so it could not start at all. Only when KIE sells no model that fits is it refused."""
    from kie_mcp.runtime import SERVING

    spec = _catalog().get(default)
    if model.strip() != default or spec is None or _sold(spec):
        _checked_model(name, model, kind, fits)
        return model, ""
    found = _fitting(_catalog(), spec, fits, SERVING.get(), most=1)
    if not found:
        raise MCPError(
            code=INVALID_PARAMS,
            message=f"{name}: KIE no longer sells {default}, this workflow's default, nor any other model that fits "
            f"it ({fits.does}); list_models shows what it sells.",
        )
    return found[0], (
        f" KIE no longer sells {default}, this workflow's default {name}: the plan uses {found[0]} instead (give "
        f"{name}= to pick another)."
    )


def _unfit(spec: ModelSpec, kind: str, rt: Any) -> str | None:
    """Why a workflow asking for a ``kind`` model refuses ``spec`` before its calls are judged (gone from KIE's live
    list, a follow-up, another kind), in the words of its error; None when it does not."""
    from kie_mcp.catalog.live import is_withdrawn

    if rt is not None and (instead := is_withdrawn(rt.live, spec.id, rt.catalog)) is not None:
        use = f" Use instead: {', '.join(instead)}." if instead else " list_models shows what KIE sells."
        return f"{spec.id} is gone from KIE's live model list.{use}"
    if spec.followup is not None and not spec.followup.standalone:
        return (
            f"{spec.id} continues a finished video (continue_video), and this workflow needs a model that makes new "
            "ones (list_models shows them; the default is veo3_fast)."
        )
    if spec.kind != kind:
        wanted, default = ("an image", "nano-banana-2") if kind == "image" else (f"a {kind}", "veo3_fast")
        return (
            f"{spec.id} makes {spec.kind}s, and this workflow needs {wanted} model (list_models shows them; the "
            f"default is {default})."
        )
    return None


def takes_model(spec: ModelSpec, kind: str, fits: Fit, rt: Any) -> bool:
    """Whether a workflow whose model argument asks for a ``kind`` model that ``fits`` its calls takes ``spec``, a model
    of the catalogue ``rt`` has (the bundled one without ``rt``) that KIE still sells: ``_checked_model``'s rules, for
    the models completion offers."""
    return _unfit(spec, kind, rt) is None and not fits.refusals(spec)


# What a trial of a plan's call gives: a still by its link (validation only places it; nothing is fetched) and one
# short line (whether a model speaks at all; a script too long for one clip is each plan's own step).
TRIAL_STILL = "https://example.com/still.png"
TRIAL_LINE = "This is the line."
# Capabilities of models that rework an existing picture or clip and make nothing new: no workflow's maker.
REWORKS = {"upscale": "upscales", "background-removal": "removes the background of"}


def _trial(
    spec: ModelSpec,
    *,
    first_frame: bool = False,
    script: bool = False,
    ratio: str | None = None,
    stills: int | None = None,
    options: dict[str, Any] | None = None,
    resolution: str | None = None,
    duration: int | None = None,
) -> list[Problem]:
    """The problems estimate_cost's validation (the catalogue's, before anything is priced) finds in the call a plan
    writes for ``spec``: a prompt, and ``first_frame`` one still in images (``stills``: that many), ``script``
    spoken words, ``ratio`` the frame asked, ``options`` the model's own fields, ``resolution`` and ``duration``
    (seconds) as asked. Empty: the call is taken."""
    from kie_mcp.catalog import InvalidRequest, build_input
    from kie_mcp.catalog.script import fit_script

    problems: list[Problem] = []
    prompt, audio, scripted = "a person smiles at the camera", None, None
    if script:
        try:
            fit = fit_script(spec, TRIAL_LINE, prompt, duration, None, [])
            prompt, duration, audio, scripted = fit.prompt, fit.duration, fit.audio, fit.request
        except InvalidRequest as err:  # silent: the rest of the call is still judged, so one answer says all
            problems += err.problems
    images = [TRIAL_STILL] * (stills if stills is not None else 1 if first_frame else 0)
    try:
        build_input(
            spec,
            prompt=prompt,
            images=images,
            aspect_ratio=ratio,
            resolution=resolution,
            duration=duration,
            audio=audio,
            options=options,
            scripted=scripted,
        )
    except InvalidRequest as err:
        problems += err.problems
    return problems


def _takes_ratio(spec: ModelSpec, ratio: str, *, first_frame: bool = False) -> bool:
    """Whether ``spec`` takes ``aspect_ratio=ratio`` in a plan's call (``first_frame``: beside a still, as Kling 3.0
    Omni takes only its default there); the call's other problems are not this one's."""
    return all(problem.field != "aspect_ratio" for problem in _trial(spec, first_frame=first_frame, ratio=ratio))


def _reworks(spec: ModelSpec) -> bool:
    """Whether ``spec`` only reworks an existing picture or clip (an upscaler, a background remover)."""
    return bool(spec.capabilities) and set(spec.capabilities) <= set(REWORKS)


def _refusals(
    spec: ModelSpec, *, first_frame: bool = False, reference: bool = False, script: bool = False
) -> list[str]:
    """Why estimate_cost refuses the call a plan writes for ``spec`` (see ``_trial``), each said of the model ("makes
    silent video"), in estimate_cost's words without their advice (the error names the models that fit); the aspect
    ratio aside, which each plan writes only where the model takes it. ``first_frame`` asks for a model that starts
    a clip from the still (image-to-video), not one that takes it as a reference; ``reference``: the still goes in
    images either way (a reference-to-video model makes the clip from it), and the call is judged with it."""
    if _reworks(spec):
        does = " and ".join(REWORKS[capability] for capability in spec.capabilities)
        return [f"{does} an existing {spec.kind} and makes no new one"]
    reasons = []
    if first_frame and "image-to-video" not in spec.capabilities:
        reasons.append("does not start a clip from a still (no image-to-video)")
    takes_one = spec.images is not None and spec.images.max >= 1  # a reference model is judged with the still too
    for problem in _trial(spec, first_frame=(first_frame or reference) and takes_one, script=script):
        said = re.split(r"; |\. ", problem.message, maxsplit=1)[0].rstrip(".")  # its first clause: no advice
        if said.startswith(f"{spec.id} "):
            reasons.append(said.removeprefix(f"{spec.id} "))
        elif said.startswith("is required by"):
            reasons.append(f"needs {problem.field}")
        else:
            reasons.append(f"{problem.field}: {said}")
    return reasons


@dataclass(frozen=True)
class Fit:
    """What a workflow's written calls ask of its model: ``does``, in words for the error, and ``refusals``, why a
    model cannot make them (empty: it can)."""

    does: str
    refusals: Callable[[ModelSpec], list[str]]
    default: str  # the workflow's own default, named first among the models that fit after the given one's maker's


def _fitting(catalog: Catalog, given: ModelSpec, fits: Fit, rt: Any, most: int = 4) -> list[str]:
    """Up to ``most`` models of ``given``'s kind that ``fits``: ``given``'s own maker's first (the longest shared
    id first: grok-imagine/text-to-video -> grok-imagine/image-to-video), then the workflow's default, the models a
    family's bare name picks (kling-3.0/video, bytedance/seedance-2), and the rest in catalogue order; none that KIE's
    live list has dropped."""
    from kie_mcp.catalog.live import is_gone

    flagships = set(catalog.short_names())
    maker = re.split(r"[/-]", given.id, maxsplit=1)[0]

    def rank(other: ModelSpec) -> tuple[int, int]:
        pairs = zip(given.id, other.id, strict=False)
        shared = next((at for at, (a, b) in enumerate(pairs) if a != b), len(other.id))
        if re.split(r"[/-]", other.id, maxsplit=1)[0] == maker:
            return (0, -shared)
        return (1, 0) if other.id == fits.default else (2, 0) if other.id in flagships else (3, 0)

    found = []
    for other in sorted(catalog.offered(), key=rank):  # sorted is stable: catalogue order within a rank
        if other.kind != given.kind or other.id == given.id or other.followup is not None:
            continue
        if rt is not None and is_gone(rt.live, other.id, rt.catalog):
            continue
        if not fits.refusals(other):
            found.append(other.id)
            if len(found) == most:
                break
    return found


def _spec(model: str) -> ModelSpec | None:
    """The catalogue's model ``model`` names (an id or alias), or None when it knows none."""
    try:
        return _catalog().resolve(model)
    except LookupError:
        return None


# The hero step: a portrait from words alone (an edit model that needs an image, an upscaler or a background remover
# was planned for and refused at the hero's first estimate).
HERO = Fit("the hero portrait is made from words alone, with no input image", _refusals, "nano-banana-2")


def character_sheet(description: Description, angles: Angles = "9", model: ImageModel = "nano-banana-2") -> str:
    """A consistent character: a hero portrait first, approved, then the other angles from it (angles: 1-24)."""
    model, instead = _model_or_next("model", model, "nano-banana-2", *MODEL_ARGUMENTS["character_sheet", "model"]({}))
    spec = _spec(model.strip())
    model = spec.id if spec is not None else model  # "Nano Banana 2", the default by its name, is the default
    angles = str(_count("angles", angles, ANGLES))
    character = _said("description", description)
    variations = "the guide suggests 2-4 hero variations to choose from"
    nanos = _nanos()
    if nanos and model == nanos[0]:  # the default, or the one Nano Banana model KIE still sells
        ask = _nano_questions("the hero", ", more skin detail", variations)
        hero = angle = _nano_model()
        angle_id: str | None = model
        pickable: tuple[str, ...] = nanos  # the user picks Nano Banana 2 or Pro for the hero and every angle
        twin, hero_settings, angle_settings = "", _still_settings(model), _still_settings(model, full_body=True)
    else:
        spec = _spec(model)
        # The Nano Banana models KIE sells other than the one asked for: nano-banana-pro asked "Use nano-banana-pro as
        # asked, or Nano Banana 2, or Nano Banana Pro?", offering one model twice.
        others = {nano: NANO_TITLES[nano] for nano in nanos if spec is None or nano != spec.id}
        pickable = tuple(others)  # the angles' models the user may pick instead
        # Inside the quoted question: the catalogue's id, never the argument's own text.
        named = spec.id + ("" if instead else " as asked") if spec else "the model you named"
        if others:
            ask = _still_questions(
                "the hero",
                question=f"Use {named}" + "".join(f", or {title}" for title in others.values()) + "?",
                choice=f"with {' or '.join(others.values())}, model="
                + " or ".join(repr(nano) for nano in others)
                + f" for the hero and every angle; {variations}",
            )
        else:
            ask = f"Before estimating the hero, ask the user {HOW_MANY}. It is made with {named}; {variations}."
        hero, twin = _said("model", model), _with_images(model)
        angle_id = twin
        angle = (
            _said("model", twin)
            if twin
            else "an image edit model that takes one reference image, not an inpainting one that needs a mask "
            "(list_models(kind='image', capability='edit'))"
        )
        hero_settings = _still_settings(model)
        angle_settings = (
            _still_settings(twin, full_body=True) if twin else "the aspect ratio and resolution that model takes, "
        )
        takes = "no input images" if spec is None or spec.images is None else "no single reference image"
        also = "; with Nano Banana, the hero's model" if others else ""
        twin = "" if twin == model else f" ({hero} takes {takes}{also})"
        if others:
            first = next(iter(others))
            nano = _still_settings(first, full_body=True)
            if {hero_settings, angle_settings} != {_still_settings(first), nano}:
                twin += f"; with Nano Banana: {nano.removesuffix(', ')}"
    total, images, goes = _angle_images(angle_id, angles, pickable)
    return "\n".join(
        [
            f"Workflow: character sheet. Character: {character}. Angles after the hero: {angles}.{instead}",
            _guide("character-sheet", "character-sheet-gpt-image-2", "nano-banana"),
            _context(),
            _session("maya-sheet"),
            "1. " + ask,
            f"2. Write the hero front portrait prompt and estimate it: estimate_cost(model={hero}, prompt=..., "
            f"{hero_settings}variations=N, session=...). {APPROVAL}",
            "3. generate_image with the same arguments; QA each hero and show them numbered. APPROVAL POINT: the "
            "user approves one hero before any other angle.",
            # One angle at a time: estimating every angle up front quoted images that change as the set grows, and
            # each later generate_image was refused ("quote was for different arguments").
            f"4. Estimate the {angles} remaining angles one at a time, in order, each just before it is made (each "
            f"angle has its own prompt; variations only repeat the same prompt). First show the expected total: "
            f"{total}. Each angle: estimate_cost(model={angle}, prompt= that angle's view, {images}, "
            f"{angle_settings}session=...){twin}. {APPROVAL} Then generate_image with exactly the estimated arguments, "
            f"QA it and show it. APPROVAL POINT: the user approves each angle before the next is estimated{goes}.",
            "5. Show the approved set. Tell the user where the files are (the session "
            "folder outputs/<date>-<session>/, by the paths generate_image returned): later workflows take them "
            "in images by those paths. Copying the approved set into references/influencers/<name>/ is for the "
            "user to do if they want a permanent library; no tool writes there.",
            SAVED,
        ]
    )


def _angle_images(model: str | None, angles: str, also: Sequence[str] = ()) -> tuple[str, str, str]:
    """character_sheet's step 4 as ``model`` (the angles' model; None: one named in words) takes its images: the
    expected total, the images of each angle's call, and what an approved angle is for. Each angle carries the
    hero and the angles approved before it, so on a model that charges for each input image (Qwen 3, Seedream 5 Pro
    image to image) every angle costs more than the one before, and "N x the first angle's price" was low; a model
    that takes one input image (Flux Kontext) takes only the hero, never "the angles approved so far". ``also``: the
    other models the user may pick for the angles (Nano Banana Pro), whose limits are said too."""
    spec = _spec(model) if model is not None else None
    first = f"{angles} x one angle's price (the first angle's estimate)"
    if spec is not None and spec.images is not None and spec.images.max == 1:
        return first, f"images=[the approved hero's saved path] (only the hero: {spec.id} takes one input image)", ""
    so_far = "images=[the approved hero's saved path, plus the angles approved so far" + _past_limits(
        (model, *also), int(angles)
    )
    goes = " (it goes into the next angle's images)"
    if spec is None or not _charges_per_image(spec):
        return first, so_far, goes
    grows = (
        f"more than {first}, as {spec.id} charges for each input image and each angle carries one more than the one "
        f"before (up to {spec.images.max if spec.images else 1} in all): say so, and show each angle's own estimate as "
        "it comes"
    )
    return grows, so_far, goes


def _past_limits(models: Sequence[str | None], angles: int) -> str:
    """The end of step 4's ``images=[...]``: for each of ``models`` (the angles' model, then the others the user may
    pick) that takes fewer images than the last angle carries (the hero and every angle before it), which to send
    once the set outgrows it. GPT-4o Image takes 5: its 6th angle with the hero and five angles was refused, where
    seed 000 sends "hero + 4 most-recent angle URLs"."""
    past = []
    for model in dict.fromkeys(models):
        spec = _spec(model) if model is not None else None
        limit = spec.images.max if spec is not None and spec.images is not None else None
        if spec is not None and limit is not None and 1 < limit < angles:
            latest = f"the {limit - 1} most recently approved angle{'s' if limit > 2 else ''}"
            past.append(
                f"{spec.id} takes {limit} images at most, so from angle {limit + 1} on send the hero plus {latest}"
            )
    return "".join(f"; {each}" for each in past) + "]" if past else ", within the model's input limit]"


def _charges_per_image(spec: ModelSpec) -> bool:
    """Whether ``spec``'s price grows with its input images, by the catalogue's price table: a call with two
    images quoted above the same call with one."""
    from kie_mcp.catalog import InvalidRequest, build_input
    from kie_mcp.catalog.pricing import price_input

    try:
        one, two = (
            price_input(spec, build_input(spec, prompt="a portrait", images=[TRIAL_STILL] * count)) for count in (1, 2)
        )
    except InvalidRequest:  # takes no single image, or no second one
        return False
    return one.known and two.known and (two.credits or 0) > (one.credits or 0)


def _selfie_question(models: list[str], ratio: str) -> str:
    """ugc_product_selfie's first step: how many, and which of ``models`` (those KIE sells that make the selfie's
    ``ratio``, default first): seed 000's question where both Nano Banana models make it, else a choice among those
    that do, or none when only one does, saying which of the workflow's models do not make it or are no longer sold."""
    if models[:2] == list(NANO_MODELS):
        editorial = "; gpt-image-2-image-to-image suits a more editorial look" if len(models) > 2 else ""
        return _still_questions("the selfie", choice=f"{NB_CHOICE}, better for label text{editorial}")
    sold = _on_sale(SELFIE_MODELS)
    others = [model for model in sold if model not in models]
    why = [f"{' and '.join(others)} {'does' if len(others) == 1 else 'do'} not make {ratio}"] if others else []
    if gone := [model for model in SELFIE_MODELS if model not in sold]:
        why.append(f"KIE no longer sells {' or '.join(gone)}")
    if len(models) == 1:
        said = f" ({'; '.join(why)})" if why else ""
        return f"Before estimating the selfie, ask the user {HOW_MANY}. It is made with {models[0]!r}{said}."
    asked = "Use " + ", or ".join(models) + "?"
    choice = "; ".join([f"model={models[0]!r} unless they pick another", *why])
    return _still_questions("the selfie", question=asked, choice=choice)


def ugc_product_selfie(
    creator_image: Annotated[
        str, Field(description="The creator's hero image: a workspace path (references/... or outputs/...) or URL.")
    ],
    product_image: Annotated[str, Field(description="A clean product photo: a workspace path or URL.")],
    setting: Annotated[str, Field(description="Where the selfie is taken, e.g. 'a parked car at golden hour'.")],
    style_image: Annotated[
        str, Field(description="Optional mood photo for light and color (a path or URL; best without people).")
    ] = "",
    aspect_ratio: Annotated[str, Field(description="9:16 for stories or a video frame, 4:5 for feed.")] = "9:16",
) -> str:
    """A creator holding your product in a phone-selfie still, with the imperfections of a real photo."""
    takers = _ratio("aspect_ratio", aspect_ratio, SELFIE_MODELS)
    creator, product = _said("creator_image", creator_image), _said("product_image", product_image)
    style = _said("style_image", style_image) if style_image else ""
    images = ", ".join([creator, product, *([style] if style else [])])
    roles = "image 1 the creator, image 2 the product" + (", image 3 only light and color" if style else "")
    ratio = _said("aspect_ratio", aspect_ratio)
    calls = []  # one call for the models written at each resolution
    for size in dict.fromkeys(size for _, size in takers):
        models = [model for model, made in takers if made == size]
        named = repr(models[0]) + (
            f" (or the one the user picked: {', '.join(map(repr, models[1:]))})" if len(models) > 1 else ""
        )
        call = (
            f"estimate_cost(model={named}, prompt=..., images=[{images}], aspect_ratio={ratio}, resolution={size!r}, "
            "variations=N, session=...)"
        )
        makes = "it makes" if len(models) == 1 else "they make"
        only = "" if size == SIZES[0] else f" ({makes} {ratio} at {size!r} only)"
        calls.append((f"with {' or '.join(models)}, " if calls else "") + call + only)
    return "\n".join(
        [
            f"Workflow: UGC product selfie. Creator: {creator}. Product: {product}. "
            f"Setting: {_said('setting', setting)}." + (f" Style reference: {style}." if style else ""),
            _guide("ugc-product-selfie", "nano-banana", "ugc-selfie-style"),
            _context(),
            _session("sage-selfie"),
            "1. " + _selfie_question([model for model, _ in takers], ratio),
            "2. Write the selfie prompt with the guide's formula and its imperfection block; state each image's "
            f"role ({roles}). Estimate: {'; '.join(calls)}. {APPROVAL}",
            "3. generate_image with the same arguments. QA each variation with the guide's checklist (identity, "
            "product and label, hands, front-camera or mirror logic, the real-phone look) and show them numbered. "
            "APPROVAL POINT: the user picks or approves a still; a fix is a new, separately approved generation.",
            "4. If the user wants it as a video, the approved still's saved path goes in images as the first "
            "frame of a separately estimated and approved generate_video (see the ugc_video or product_showcase "
            "workflow); nothing is animated before this approval.",
            f"{FOLLOW} {SAVED}",
        ]
    )


def _extensions_hold_part(model: str) -> bool:
    """Whether an extension of ``model``'s clips holds only its new part (the catalogue's follow-up result "part":
    Grok Imagine, PixVerse, Runway): joining the chain then needs chain=true. A Veo extension holds the whole video
    so far."""
    return any(
        other.followup.operation == "extend" and other.followup.result == "part"
        for other in _followup_specs(model)
        if other.followup is not None
    )


def _extension(model: str) -> ModelSpec | None:
    """The model that extends ``model``'s clips (continue_video operation=extend), or None."""
    return next(
        (spec for spec in _followup_specs(model) if spec.followup and spec.followup.operation == "extend"), None
    )


def _extension_length(spec: ModelSpec) -> str:
    """How long an extension by ``spec`` is, from the catalogue: the length it adds when no setting chooses it (Veo:
    "about 7 s"), or the durations its setting takes ("6 or 10 s", "1-15 s"); "" when it does not say."""
    from kie_mcp.catalog.script import allowed_durations, fixed_seconds

    if (fixed := fixed_seconds(spec)) is not None:
        return f"about {fixed} s"
    durations = allowed_durations(spec)
    if len(durations) > 2 and durations == list(range(durations[0], durations[-1] + 1)):
        return f"{durations[0]}-{durations[-1]} s"
    return f"{' or '.join(str(d) for d in durations)} s" if durations else ""


def _spoken_extension(model: str) -> str:
    """The words of an extension that says the next line: the line goes in script=, as in generate_video, so kie-mcp
    writes it as dialogue in the model's form and fits it to what the extension adds. Sent as the prompt, it was
    neither said as dialogue nor checked against the extension's length (a 37-word line quoted with no warning)."""
    spec = _extension(model)
    length = _extension_length(spec) if spec is not None else ""
    adds = f" (an extension adds {length})" if length else ""
    warned = spec is not None and spec.dialogue is not None and spec.dialogue.overflow == "warn"
    answer = "quoted with a warning" if warned else "refused"  # Veo speaks a long line anyway, and may cut it
    return (
        "continue_video(task_id, operation='extend', prompt= what happens next (the same style words), "
        "script= only the next line). Estimate it first: estimate_cost(task_id=..., operation='extend', prompt=..., "
        f"script=...) with the same arguments. kie-mcp writes the line as dialogue and fits it to the extension{adds}; "
        f"a line too long for it is {answer}, with a split into one extension per part: offer the split or a "
        "shorter line."
    )


def _more_of_a_take(model: str) -> str:
    """What a good take can become when the script needs more time, as the catalogue offers it for ``model``:
    extended, or a new clip joined after it; never an operation continue_video refuses for that model's clips (its
    delivery upgrade is ``_delivery``, after the captions)."""
    ops = _followups(model)
    if "extend" in ops:
        more = (
            "If the take is good but the script needs more time, extend it instead of regenerating, which keeps the "
            f"same person and room: {_spoken_extension(model)}"
        )
    else:
        more = (
            f"Clips of {_said('model', model)} cannot be extended: if the script needs more time, make the next "
            "line a new, separately approved clip and join the clips with stitch_videos (free)."
        )
    return f"{more} Each is a spend: {APPROVAL}"


def _delivery(model: str) -> str | None:
    """The delivery upgrade step, after the captioned join is approved, or None when ``model``'s clips have none.

    The upgrade is a task of its own: captions joined from the take's id (as the caption step says) are the 720p
    clip, and the paid 1080p task went unused. So the join is made again from the upgrade's id. An upgrade of a
    part-chain's last extension (Grok Imagine, PixVerse) upgrades only its new part: each link is upgraded
    instead."""
    ops = _followups(model)
    if "hd" in ops:
        upgrade, named = "operation='hd' (the 1080p version)", " (for Veo's 1080p: '<task id>-1080p')"
    elif "upscale" in ops:
        upgrade, named = "operation='upscale' (a sharper, larger version)", ""
    else:
        return None
    if _extensions_hold_part(model):
        which = (
            "on the take and on each extension: an extension of this model holds only its new part, so an upgrade "
            "of the last task id alone upgrades only that last part (say so if the user wants only that one). Each "
            "upgrade is its own spend. Then call stitch_videos again with clips=[the upgrades' task ids, as "
            "continue_video's answers name them, the take's first, in chain order] without chain=true (chain=true "
            "from an upgrade brings back the parts before it un-upgraded), and the same captions"
        )
    else:
        which = (
            "on the clip the captions were joined from (the last task id of the chain). Then call stitch_videos "
            f"again with clips=[the upgrade's task id, as continue_video's answer names it{named}] and the same "
            "captions"
        )
    return (
        f"For delivery, once the user approves the captioned video, offer {upgrade} {which}: the delivered file is "
        "then made from the upgrade (a join named with the earlier task id stays at the earlier resolution). "
        f"{APPROVAL}"
    )


def _reel_still(spec: ModelSpec) -> str:
    """Whether ugc_video's clip on ``spec`` is made from a still of the creator: "optional" (a first frame if the
    user has one), "needed" (the model takes none without one, or gets its 9:16 frame only from one: Kling 2.6 image
    to video, Hailuo), "input" (a model that is no image-to-video one but needs an image: Kling 3.0 Omni, MiniMax H3
    and Wan 2.7 reference to video make each clip from the still as the creator's reference; an avatar animates it)
    or "none" (no still at all: text to video)."""
    if spec.images is None or spec.images.max < 1:
        return "none"
    if "image-to-video" not in spec.capabilities:
        return "input" if spec.images.min >= 1 else "none"
    return "needed" if spec.images.min >= 1 or not _takes_ratio(spec, "9:16") else "optional"


def _reel_refusals(spec: ModelSpec) -> list[str]:
    """Why ugc_video's calls do not fit ``spec``: the script is spoken (a silent model refused it at the first
    estimate), and the reel is vertical, asked as 9:16 or taken from a 9:16 first frame (a reference image sets no
    frame). Each call is judged as the plan writes it, with the creator's still in images where the model needs an
    image: reference-to-video models with sound were refused as needing the image the plan gives them, and avatar
    models were told both that they need an image and that they take none."""
    still = _reel_still(spec)
    reasons = _refusals(spec, first_frame=still == "needed", reference=still == "input", script=True)
    if _reworks(spec):
        return reasons
    if still == "input" and "reference" in spec.capabilities and not _takes_ratio(spec, "9:16", first_frame=True):
        reasons.append("cannot be asked for a 9:16 frame, and a reference image sets none")
    elif still == "none" and not _takes_ratio(spec, "9:16"):
        reasons.append("cannot be asked for a 9:16 frame and takes no first frame that would give one")
    return reasons


REEL = Fit("a vertical (9:16) clip speaks the script", _reel_refusals, "veo3_fast")


def _reel_start(model: str, photo: str | None = None) -> tuple[str, str]:
    """ugc_video's words for a still of the creator (step 1) and the estimate's frame and images (the video step), as
    ``model`` takes them: a still is optional, needed as the first frame (its saved path goes in images; the clip
    has its frame where the model takes no 9:16), needed as the creator's reference (a reference-to-video model:
    the frame is asked), or not taken at all (a text-to-video model refuses images). ``photo`` (the product's, as
    ``_said`` writes it): the clip starts from an approved still holding the product (``_product_still``), or, on a
    reference model that takes two images, the photo goes in images beside the creator's still."""
    spec = _spec(model.strip())
    still = "optional" if spec is None else _reel_still(spec)
    named = _said("model", model)
    if still == "none":
        said = f" {named} takes no first frame: describe the creator in the prompt."
        if photo is not None:
            none = spec is not None and (spec.images is None or spec.images.max < 1)
            said += (
                f" {'It takes no images either' if none else 'This plan gives it no images'}, so the product photo "
                f"{photo} cannot reach the clip: describe the product in the prompt as the photo shows it (shape, "
                "colour, the label's words)."
            )
        return said, "aspect_ratio='9:16', "
    beside = still == "input" and spec is not None and _reference_pair(spec)  # the photo goes in as a reference
    first_frame = still in ("needed", "input") or (photo is not None and not beside)
    frame = (
        "aspect_ratio='9:16', "
        if spec is None or _takes_ratio(spec, "9:16", first_frame=first_frame)
        else f"no aspect_ratio ({named} takes none: the clip has the 9:16 still's frame), "
    )
    if photo is not None and not beside:  # the product reaches the clip in the approved still that holds it
        return (
            f" The product must be the one in the photo {photo}: the clip starts from an approved 9:16 still of the "
            "creator holding it, made in the next two steps (the creator's approved still, if they have one, goes "
            "into that still's images too).",
            f"images=[the approved product still's saved path], {frame}",
        )
    if still == "optional":
        return (
            " If they have an approved still of the creator (for example from the ugc_product_selfie workflow), its "
            "saved path goes in images as the first frame.",
            frame,
        )
    if still == "input":
        made = (
            "makes each clip from reference images, not from a first frame: the approved still of the creator (for "
            "example from the ugc_product_selfie workflow) goes in images as the creator's reference, and the prompt "
            "says who it is ('the woman from image 1')"
            if spec is not None and "reference" in spec.capabilities
            else "needs an image of the creator: the approved 9:16 still (for example from the ugc_product_selfie "
            "workflow) goes in images"
        )
        beside_it = (  # a second reference
            f" The product photo {photo} goes in images after it, as the product's reference, and the prompt names "
            "it ('the bottle from image 2')."
            if photo is not None
            else ""
        )
        images = "the approved still's saved path" + (f", {photo}" if photo is not None else "")
        return f" {named} {made}; without one, make and approve it first.{beside_it}", f"images=[{images}], {frame}"
    return (
        f" {named} starts each clip from a still: the approved 9:16 still of the creator (for example from the "
        "ugc_product_selfie workflow) goes in images as the first frame; without one, make and approve it first.",
        f"images=[the approved still's saved path], {frame}",
    )


# A product photo in ugc_video's product argument: a link, or a path into the workspace's folders, or a file name of
# a picture. Quoted, it may hold spaces.
_QUOTED = re.compile(r"[\"'`“‘]([^\"'`”’\n]+)[\"'`”’]")
# Where a word names a workspace file or a resource of its own, whatever its name ends in ("references/serum"); any
# other path or link names a picture only by a picture's file name: "Black / Gold", "$19 /month" or a product page
# (https://acme.example/products/glow) are no photo.
_PLACES = ("kie://", "file://", "references/", "outputs/")


def _last_closer(line: str) -> int:
    """Where the last mark that closes a ``_QUOTED`` text stands in ``line`` (-1: none): an opening mark after it
    closes nothing, and tried from each of a run of them the pattern scanned to the line's end (quadratic)."""
    return max(line.rfind(mark) for mark in "\"'`”’")


def _product_photo(product: str) -> str | None:
    """The product photo ``product`` names (ugc_video asks for "a photo's workspace path if there is one"): the
    first quoted text or word that is a kie:// or file:// link, a path into references/ or outputs/, or a path or
    link to a picture's file name, without the punctuation around it. None when it names none: the product is then
    described in words. The plan asked for the path and never used it, so the product was invented from its name.
    A path or link written with a space in it, unquoted (``references/products/my bottle.jpg``, as the picture
    completion offers it), is taken with the words after it (``_spaced``): cut at the space, it named no file."""
    quoted = [found for line in product.split("\n") for found in _QUOTED.findall(line[: _last_closer(line) + 1])]
    words = product.split()
    for at, candidate in enumerate([*quoted, *words]):
        found = _bare(candidate)
        place = next((start for start in _PLACES if found.lower().startswith(start)), None)
        if place is not None and len(found) > len(place):
            spaced = None if at < len(quoted) or _names_file(found) else _spaced(words[at - len(quoted) :])
            return spaced or found
        if _names_picture(found):
            return found
    return None


_WRAPPING = "\"'`“”‘’()[]<>"  # quotes and brackets around a path in prose


def _bare(text: str) -> str:
    """A word or quoted text of an argument as a path: without the quotes, brackets or punctuation around it (a
    bracket before a comma too: "(references/my bottle.jpg),")."""
    return text.strip().strip(_WRAPPING).rstrip(".,;:!?" + _WRAPPING)


def _spaced(words: list[str]) -> str | None:
    """The path ``words[0]`` starts, with the words after it, up to the first that ends it in a picture's file name
    or makes it a file in the workspace (``_names_file``); None when none does (the first word alone is then the
    path, as written)."""
    for end in range(2, len(words) + 1):
        joined = _bare(" ".join(words[:end]))
        if _names_file(joined):
            return joined
    return None


def _names_file(path: str) -> bool:
    """Whether ``path`` ends in a picture's file name, or is a file in the workspace, looked up as the tools look up a
    relative input (``Settings.input_bases``: in the sandbox, its area, then the real workspace's references/)."""
    from kie_mcp.runtime import SERVING

    if _names_picture(path):
        return True
    rt = SERVING.get()
    if rt is None or path.lower().startswith(("kie://", "file://")):
        return False
    try:
        return any((folder / path).is_file() for folder in rt.settings.input_bases)
    except (OSError, ValueError):  # a name the file system cannot hold
        return False


def _names_picture(found: str) -> bool:
    """Whether a path or link ends in a picture's file name (the extensions ``media.sniff`` knows images by)."""
    name = found.split("?", maxsplit=1)[0]
    return "." in name and name.rsplit(".", 1)[1].lower() in PICTURE_EXTENSIONS


def _reference_pair(spec: ModelSpec) -> bool:
    """Whether ugc_video's call on a reference model can give it two references, the creator and the product."""
    return "reference" in spec.capabilities and not _trial(spec, stills=2, script=True, ratio=None)


def _veo_reference(spec: ModelSpec | None) -> dict[str, str] | None:
    """The options that make ``spec`` compose a clip from reference images (Veo 3.1 Fast and Lite's
    REFERENCE_2_VIDEO), when its catalogue data takes them in ugc_video's call (9:16, the script, the product photo
    and the creator's still): None for a model without them (Veo 3.1 Quality refuses REFERENCE_2_VIDEO)."""
    if spec is None:
        return None
    for name, field in spec.fields.items():
        if field.values and "REFERENCE_2_VIDEO" in field.values:
            options = {name: "REFERENCE_2_VIDEO"}
            if not _trial(spec, stills=2, script=True, ratio="9:16", options=options):
                return options
    return None


def _product_still(model: str, photo: str) -> list[str]:
    """ugc_video's steps that put the product of ``photo`` into the clip's first frame: a 9:16 still of the creator
    holding it, estimated, made and approved before any video (as product_showcase does); on Veo 3.1 Fast or Lite,
    the alternative of the photo as a reference image with no still (REFERENCE_2_VIDEO: 8 s, 16:9 or 9:16)."""
    spec = _spec(model.strip())
    if spec is not None and (_reel_still(spec) == "none" or (_reel_still(spec) == "input" and _reference_pair(spec))):
        return []
    reference = _veo_reference(spec)
    instead = ""
    if reference is not None:
        instead = (
            f" On {_said('model', model)} the photo can instead go in as a reference image, with no still: "
            f"estimate_cost(model={_said('model', model)}, prompt=..., script= the script, images=[{photo}] (the "
            f"creator's approved still first, if they have one; at most 3 images), options={json.dumps(reference)}, "
            "aspect_ratio='9:16', variations=N, session=...). Veo then keeps the product's look but composes its own "
            "shot (no approved first frame), and makes 8 s clips only, in 16:9 or 9:16, so the script must fit 8 s. "
            "Ask the user which they want; with the reference, no still is made: the rest of this step and the "
            "next are skipped, and this call is the video step's estimate."
        )
    return [
        "The product still. "
        + _nano_questions("the still", ", better for label text")
        + " Write the prompt with the ugc_product_selfie guide's formula (the creator holds the product from the "
        "photo, label toward the camera, the phone-selfie look) and estimate: "
        f"estimate_cost(model={_nano_model()}, prompt=..., images=[the creator's approved still if they have one, "
        f"{photo}], aspect_ratio='9:16', {_two_k(_nanos(), ('9:16',))}variations=N, session=...). {APPROVAL}{instead}",
        "generate_image with the same arguments. QA each still (the product matches the photo: shape, colour, "
        "label; hands intact) and show them numbered. APPROVAL POINT: no video is made until the user approves one "
        "still; a fix is a new, separately approved generation.",
    ]


def ugc_video(product: Product, script: Script, persona: Persona = "", model: VideoModel = "veo3_fast") -> str:
    """A selfie-style UGC reel with a script, phone-camera look."""
    _checked_model("model", model, *MODEL_ARGUMENTS["ugc_video", "model"]({}))
    who = _said("persona", persona) if persona else "as in MASTER_CONTEXT.md"
    found = _product_photo(product)
    photo = _said("product photo", found) if found is not None else None
    still, frame = _reel_start(model, photo)
    product_steps = _product_still(model, photo) if photo is not None else []
    guides = ("ugc-selfie-style", "veo-3-1", "kling-3", *(("ugc-product-selfie",) if product_steps else ()))
    steps = [
        f"Ask how many takes the user wants (default 1; variations=N makes N charged clips).{still}",
        *product_steps,
        f"Write the visual prompt in the UGC style (handheld phone, natural light, imperfections). "
        f"Estimate: estimate_cost(model={_said('model', model)}, prompt=..., script= the script, {frame}"
        "variations=N, session=...). If kie-mcp says the script is too long (an error, or on Veo a warning "
        "that speech may be cut, each with a suggested split and models with longer clips), offer a "
        "shorter script, the split, or one of those models. "
        f"{APPROVAL}",
        f"generate_video with the same arguments. {FOLLOW} Present the clip; offer a variation only as a "
        "new, separately approved spend.",
        _more_of_a_take(model),
        _captions(
            "[the last task id of the chain: an extension's, when the clip was extended]",
            chain=_extensions_hold_part(model),
        ),
        *([delivery] if (delivery := _delivery(model)) else []),
    ]
    return "\n".join(
        [
            f"Workflow: UGC selfie video. Product: {_said('product', product)}. Persona: {who}. "
            f"Script: {_said('script', script)}",
            _guide(*guides),
            _context(),
            _session("cold-brew-ugc"),
            *_without_ffmpeg(
                "the captioned video (and any join of a take with a clip after it)",
                "The clips",
                "captioned or joined later",
            ),
            *(f"{number}. {step}" for number, step in enumerate(steps, 1)),
            SAVED,
        ]
    )


def _fits_today(fewer: str) -> str:
    """The check before a series' first paid clip: its TOTAL against what is left of today's cap. Twenty beats at
    205 credits each (4,100) were shown as a total and made until the 3,000-credit default cap refused beat 15,
    with 14 clips paid for and the ad unfinished."""
    return (
        "Before the first paid clip, compare that TOTAL, as the caps count it (each quote's credits_counted where it "
        "has one, else its credits_total, or its credits_ceiling where the price is unknown and credits_total is "
        "null), with what is left of today's cap: max_credits_per_day minus "
        "spent_today, both in estimate_cost's answer (and in check_credits'). If it does not fit, say so before "
        "anything is made and offer: splitting the work over days (the cap resets at midnight, or later when kie-mcp "
        f"servers in other time zones share the workspace: check_credits then says when), {fewer}, cheaper "
        "drafts first (a lower resolution or a cheaper model), or raising KIE_MAX_CREDITS_PER_DAY in the server's "
        "configuration."
    )


# script_to_video's clips: each part is made from words and speaks its lines (a silent model refused the script at the
# first estimate, and an image-to-video model the call without a first frame).
SPOKEN_PARTS = Fit(
    "each part is a new clip made from words that speaks its lines",
    lambda spec: _refusals(spec, script=True),
    "veo3_fast",
)


def _extended_parts(model: str) -> tuple[str, str, str]:
    """script_to_video's words for a part that continues the one before it in the same shot (step 3), and the join's
    clips and chain argument with why (step 4), as the catalogue has ``model``'s extensions: none, ones holding the
    whole video so far (Veo), or ones holding only the new part (the follow-up's result "part"; among the speaking
    models this workflow takes, Grok Imagine and PixVerse text to video: Runway is silent, and refused), which the
    join brings with chain=true (a part never extended is joined as it is)."""
    if "extend" not in _followups(model):
        return f" Clips of {_said('model', model)} cannot be extended: each part is a new clip.", "", ""
    continued = (
        " A part that continues the previous one in the same shot can instead extend it, which keeps the person and "
        f"setting: {_spoken_extension(model)} Each extension is its own approved spend. " + APPROVAL
    )
    if _extensions_hold_part(model):
        return (
            continued,
            "; for an extended part, only the last task id of its chain], chain=true",
            " (chain=true: an extension of this model holds only its new part, so the last task id brings the take "
            "and each extension, in order; a part never extended is joined as it is)",
        )
    return (
        continued,
        "; for an extended part, only the last task id of its chain: an extension of this model holds the whole "
        "video so far, so no chain=true]",
        "",
    )


def script_to_video(script: Script, visual_style: VisualStyle, model: VideoModel = "veo3_fast") -> str:
    """A long script becomes several clips that fit the model, generated and then joined."""
    _checked_model("model", model, *MODEL_ARGUMENTS["script_to_video", "model"]({}))
    continued, chained, why = _extended_parts(model)
    return "\n".join(
        [
            f"Workflow: script to video. Style: {_said('visual_style', visual_style)}. Model: {_said('model', model)}.",
            f"Script: {_said('script', script)}",
            _guide("veo-3-1", "kling-3", "seedance-2", "caption-video"),
            _context(),
            _session("launch-explainer"),
            *_without_ffmpeg(
                "the finished video (the parts joined, in the last step)", "The parts' clips", "joined later"
            ),
            f"1. Call estimate_cost(model={_said('model', model)}, prompt=..., script= the whole script, session=...). "
            "If it does not fit one clip, kie-mcp answers with a split at sentence or clause breaks (between words "
            "only where none fits), each part's duration (a breath left in each) and what the parts cost in all: use "
            "those parts. Veo instead quotes one 8 s clip with a warning "
            "that speech may be cut, and the same split: use those parts, not that quote.",
            "2. Write one prompt per part (same character, wardrobe and setting for continuity). Estimate each "
            "part (script= that part) and show the user the TOTAL before anything is made. "
            + _fits_today("a shorter script (fewer or shorter parts)")
            + f" {APPROVAL}",
            f"3. generate_video for the parts. {FOLLOW} Keep the task ids in order.{continued}",
            f"4. Join the clips in order with stitch_videos(clips=[the task ids in order{chained or ']'}, "
            f"captions=[{{start, end, text}}, ...], session=..., output_name='<name>.mp4'){why}. "
            "The script is known, so the same call burns in captions if the user wants them (leave captions out "
            "otherwise): seconds from the start of the joined video, each part's lines offset by the lengths of "
            "the parts before it (duration_seconds of each saved clip in check_task's saved_files; see "
            "kie://prompting/prompt-library/caption-video.md). Free and local, no shell "
            "needed. Present both the joined video and the parts.",
            SAVED,
        ]
    )


BEAT_SECONDS = (5, 8)  # animated_ad's beats, as the style guides' default arcs plan them (claymation, 3D animated)
# claymation-ad.md's long form, as its table has it: eight beats of 6-12 s, 60-88 s in all (Seedance 2 makes 4-15 s
# clips; tests/test_prompt_steps.py holds these to the guide's table and its words).
LONG_FORM = (8, (6, 12), (60, 88))
ANIMATOR = "bytedance/seedance-2"  # the model animated_ad animates each beat with, while KIE sells it (``_animator``)
ANY_ANIMATOR = (
    "a video model KIE sells that starts a clip from a still and speaks (list_models(kind='video', "
    "capability='image-to-video'))"
)
# The styles claymation-ad.md is written for, by the words it uses for its look and the seed's "Aardman-style"
# ("stop-motion" and "plasticine" stills are claymation, not 3D animation).
CLAY = re.compile(r"\b(?:clay|plasticine|stop[\s_-]*motion|aardman)", re.IGNORECASE)
THREE_D = re.compile(r"\b(?:3d|cgi|pixar|feature[\s_-]*film)", re.IGNORECASE)  # pixar-style-ad.md's look
# pixar-style-ad.md's words for its 3D look, which a style it is not written for replaces with its own.
THREE_D_LOOK = "soft rounded shapes, subsurface-lit materials, big expressive eyes, warm bounce light"


def _style_guide(style: str) -> tuple[str, str]:
    """The library guide ``style`` follows, and what the plan says of it: claymation-ad for clay and stop-motion,
    pixar-style-ad for 3D; any other style (anime, 2D cartoon) takes pixar-style-ad's steps and formula structure
    but its own look words, as no guide describes its look (the 3D words made 3D stills of an anime ad)."""
    if CLAY.search(style):
        return "claymation-ad", ""
    if THREE_D.search(style):
        return "pixar-style-ad", ""
    return "pixar-style-ad", (
        f" No guide in the library is written for the style {_said('style', style)}: follow pixar-style-ad.md's "
        "steps, beats and formula structure, but in every storyboard and animation prompt describe this style's "
        f"own look (its line work, shading, colour, texture and motion) in place of that guide's 3D look words "
        f"({THREE_D_LOOK}), and QA each still for this look."
    )


def _beat_lengths(library: str, beats: str) -> str:
    """Step 1's words on beat lengths: the guides' 5-8 s; claymation-ad.md's long form (eight beats of 6-12 s, 60-88 s
    in all) only when the user asks for a longer film; pixar-style-ad.md has no long form (one story moment per beat),
    so a longer 3D film takes more beats. The plan said "up to 15 s ... as in the guide's long form", which says
    6-12 s, and "a one-to-two-minute film", which its table (60-88 s) is not."""
    default = f"each beat's length ({BEAT_SECONDS[0]}-{BEAT_SECONDS[1]} s, as the guide's default beats; "
    if library == "claymation-ad":
        count, (low, high), (shortest, longest) = LONG_FORM
        again = "" if beats == str(count) else f", this workflow again with beats {count}"
        return (
            default + f"the guide's long form, {count} beats of {low}-{high} s ({shortest}-{longest} s in all{again}), "
            "only if the user asks for a longer film"
        )
    return default + "one story moment per beat: a longer film takes more beats, not longer ones"


def _beat_refusals(spec: ModelSpec, longest: int) -> list[str]:
    """Why ``spec`` cannot make animated_ad's step 7 call (``_trial``): the beat's approved still as the first
    frame, its line spoken, each beat's length (from the guides' shortest to ``longest`` s), in 9:16 or 16:9, at
    720p; the first problem found, in estimate_cost's words."""
    if "image-to-video" not in spec.capabilities or _reworks(spec):
        return ["does not start a clip from a still (no image-to-video)"]
    for ratio in VIDEO_FRAMES:
        for seconds in range(BEAT_SECONDS[0], longest + 1):
            problems = _trial(spec, first_frame=True, script=True, ratio=ratio, resolution="720p", duration=seconds)
            if problems:
                return [problems[0].message]
    return []


@functools.cache
def _animates_beats(longest: int) -> Fit:
    """animated_ad's step 7 as a ``Fit`` (``_beat_refusals``), for beats up to ``longest`` s."""
    return Fit(
        "each beat's approved still starts a 720p clip of the beat's length that speaks its line",
        lambda spec: _beat_refusals(spec, longest),
        ANIMATOR,
    )


def _animator(library: str) -> tuple[str, str]:
    """animated_ad's animator as step 7's call writes it, and what the step says of it: ``ANIMATOR`` while KIE sells
    it (``_sold``) and it takes the call; else the first model KIE sells that does (``_fitting``: Seedance's others
    first), saying why; else in words. The call was written for ANIMATOR after KIE stopped selling it, and refused
    only once the storyboard stills were paid for. Claymation's long form (``LONG_FORM``) asks for longer beats."""
    from kie_mcp.runtime import SERVING

    fits = _animates_beats(LONG_FORM[1][1] if library == "claymation-ad" else BEAT_SECONDS[1])
    catalog, spec = _catalog(), _catalog().get(ANIMATOR)
    if spec is not None and _sold(spec) and not fits.refusals(spec):
        return repr(ANIMATOR), ""
    why = "KIE no longer sells it" if spec is None or not _sold(spec) else "it does not make these clips"
    found = _fitting(catalog, spec, fits, SERVING.get(), most=1) if spec is not None else []
    if found:
        return repr(found[0]), f" ({found[0]} in place of {ANIMATOR}, which the guides write for: {why})"
    return ANY_ANIMATOR, f" (not {ANIMATOR}, which the guides write for: {why})"


# animated_ad's storyboard models, the default first: each takes the cast image, the product photo and the previous
# still, at 2K in 9:16 and 16:9. FROM_WORDS: those that draw beat 1 from words alone (no photo, no cast image).
STORYBOARD = {"gpt-image-2-image-to-image": "GPT Image 2", "nano-banana-pro": "Nano Banana Pro"}
FROM_WORDS = ("gpt-image-2-text-to-image", "nano-banana-pro")


def _storyboard() -> tuple[str, str]:
    """animated_ad's storyboard model as a call writes it (the first of ``STORYBOARD`` KIE still sells, ``_sold``, or
    in words when it sells neither), and the other one's alternative ("; with Nano Banana Pro,
    model='nano-banana-pro' and the same images", or nothing when KIE no longer sells it)."""
    sold = _on_sale(tuple(STORYBOARD))
    model = repr(sold[0]) if sold else ANY_EDIT_MODEL
    also = f"; with {STORYBOARD[sold[1]]}, model={sold[1]!r} and the same images" if len(sold) > 1 else ""
    return model, also


def _storyboard_question() -> str:
    """animated_ad's question before the first still: how many, and which storyboard model KIE sells; none to choose
    when it sells one, saying which it no longer sells."""
    sold = _on_sale(tuple(STORYBOARD))
    if len(sold) == len(STORYBOARD):
        return _still_questions(
            "any still",
            question="Use GPT Image 2 (the default for storyboards), or Nano Banana Pro?",
            choice="Nano Banana Pro often keeps clay and fine texture better in close-ups",
        )
    gone = " or ".join(m for m in STORYBOARD if m not in sold)
    if sold:
        return (
            f"Before estimating any still, ask the user {HOW_MANY}. Every still is made with {sold[0]!r} (KIE no "
            f"longer sells {gone})."
        )
    return (
        f"Before estimating any still, ask the user {HOW_MANY}. KIE no longer sells {gone}: every still is made "
        f"with {ANY_EDIT_MODEL}, the same one for every beat."
    )


def _photo_beats(photo: str | None) -> tuple[str, str, str, str]:
    """animated_ad's words for the product photo its ``product`` names (``_product_photo``, as ``_said`` writes it):
    beat 1's estimate, the cast sheet's note, the photo's place in a later beat's images, and the QA of the product
    against it. Asked for and never used, the product was drawn from its name. Beat 1 with the photo is made by a
    storyboard model (``_storyboard``); without one, from words (``FROM_WORDS``) unless there is a cast image. Only
    models KIE still sells are written (``_sold``)."""
    settings = "aspect_ratio='9:16' or '16:9', resolution='2K', variations=N, session=...)"
    model, also = _storyboard()
    # Why beat 1 is not drawn by GPT Image 2's model from words: said only where GPT Image 2's edit model draws it.
    words_only = f" ({FROM_WORDS[0]} takes no input images)" if model == repr(next(iter(STORYBOARD))) else ""
    if photo is None:
        words = next(iter(_on_sale(FROM_WORDS)), None)
        if words == FROM_WORDS[0]:
            pro = f", and with Nano Banana Pro model={FROM_WORDS[1]!r}" if also else ""
            first = (
                f"estimate_cost(model={words!r}, prompt=..., {settings}. That model takes no input images; with a cast "
                f"image, beat 1 uses model={model} and images=[the cast image] instead{pro}."
            )
        elif words is not None:
            first = (
                f"estimate_cost(model={words!r}, prompt=..., {settings}; with a cast image, images=[the cast image]."
            )
        else:
            first = (
                f"estimate_cost(model={model}, prompt=..., images=[the cast image], {settings}. KIE no longer sells "
                f"{' or '.join(FROM_WORDS)}, which draw a still from words alone: beat 1 needs a cast image in images."
            )
        return first, "", "", ""
    return (
        f"estimate_cost(model={model}, prompt=..., images=[the cast image if any, {photo}], "
        f"{settings}: the product photo goes in images, so the product is drawn as it is{words_only}{also}.",
        f" The product is the one in the photo {photo}: the cast sheet's product look is the photo's, the photo "
        "goes in images for every beat, after the cast image, and each prompt says which image is which (the cast, "
        "the product, the previous beat's still).",
        f"{photo}, ",
        f"; the product matches the photo {photo}: shape, colour, label",
    )


def animated_ad(product: Product, story: Story, style: Style = "3D-animated", beats: Beats = "6") -> str:
    """Storyboard stills for each beat, approved, then image-to-video per beat, then stitched (beats: 1-20)."""
    beats = str(_count("beats", beats, BEATS))
    library, own_look = _style_guide(style)
    found = _product_photo(product)  # asked for by the argument's description, and drawn from (``_photo_beats``)
    photo = _said("product photo", found) if found is not None else None
    first, shown, kept, matches = _photo_beats(photo)
    total = (
        f"First show the expected total: {beats} x beat 1's price, from its estimate below at exactly these "
        "settings (every beat uses the same aspect_ratio and resolution)."
        if beats != "1"
        else "Beat 1's estimate below is the storyboard's cost."
    )
    model, also = _storyboard()
    animator, instead = _animator(library)
    later = (
        f"5. Beats 2 to {beats}, in order (each needs the previous approved still): estimate_cost("
        f"model={model}, prompt=..., images=[the cast image if any, {kept}the previous beat's "
        "approved still: its saved path from generate_image or check_task], same aspect_ratio and resolution, "
        f"variations=N, session=...){also}. {APPROVAL} "
        f"Generate each, QA it (on-model, continuity with the previous beat{matches}) and show it."
        if beats != "1"
        else "5. (One beat only: nothing more to storyboard.)"
    )
    return "\n".join(
        [
            f"Workflow: animated ad, style {_said('style', style)}. Product: {_said('product', product)}. "
            f"Story: {_said('story', story)}. Beats: {beats}.",
            _guide(library, "gpt-image-2", "seedance-2", "caption-video") + own_look,
            _context(),
            _session("oat-milk-ad"),
            *_without_ffmpeg(
                "the finished ad (the beats joined, with their captions, in the last step)",
                "The stills and the beats' clips",
                "joined later",
            ),
            "1. Lock a cast sheet (characters, palette, product look) and a beat list with one line of "
            f"narration per beat and {_beat_lengths(library, beats)}; at most 2.5 spoken words per second). Show it to "
            "the user. An approved cast image (a character_sheet hero by its saved path, or a file in references/) "
            f"goes first in images for every beat.{shown}",
            "2. " + _storyboard_question(),
            # Not list_models' price: it is the 1K price (6 credits), and the storyboard is made at 2K (10).
            f"3. Estimate the {beats} storyboard stills one at a time, in order. {total} Beat 1: {first} {APPROVAL}",
            f"4. Generate beat 1 and QA it{matches}. APPROVAL POINT: the user approves (picks) beat 1's still before "
            "the next beat is made from it.",
            later,
            "6. APPROVAL POINT: the user approves every still before any video.",
            f"7. Estimate image-to-video per beat: estimate_cost(model={animator}, images=[the beat's "
            "approved still's saved path] (the first frame), prompt= motion, camera and sound only, script= the "
            "beat's line, duration= the beat's length, same aspect_ratio, resolution='720p', session=...)"
            f"{instead}, and show the TOTAL. " + _fits_today("fewer or shorter beats") + f" {APPROVAL}",
            f"8. generate_video per beat. {FOLLOW} Keep the task ids in beat order.",
            "9. Join the beats and burn the captions in one call: stitch_videos(clips=[the beat task ids in order], "
            "captions=[{start, end, text} per narration line; seconds from the start of the joined video, each "
            "beat's lines offset by the lengths of the beats before it: duration_seconds of each saved clip in "
            "check_task's saved_files], session=..., output_name='<name>.mp4'). "
            "Free and local, no shell needed; see caption-video for phrasing. Present the joined ad and the beats.",
            SAVED,
        ]
    )


_AS_WRITTEN: dict[str, tuple[str, Callable[..., str]]] = {
    "influencer_recreation": ("Influencer recreation: photo, still, video", influencer_recreation),
    "product_showcase": ("Product showcase: a person with your product, then video", product_showcase),
    "character_sheet": ("Character sheet: hero portrait, then angles", character_sheet),
    "ugc_product_selfie": ("UGC product selfie: your creator holding the product", ugc_product_selfie),
    "ugc_video": ("UGC selfie-style video with a script", ugc_video),
    "script_to_video": ("Long script to several clips, joined", script_to_video),
    "animated_ad": ("Animated ad: storyboard stills, then a clip per beat", animated_ad),
}
# Each workflow as a prompt says it: the approval rule in full once (``_approval_once``).
WORKFLOWS = {name: (title, _approval_once(workflow)) for name, (title, workflow) in _AS_WRITTEN.items()}


def _given(arguments: Mapping[str, str], name: str) -> bool:
    """Whether the workflow's argument ``name`` was given (an argument left blank takes its default, none)."""
    return bool(str(arguments.get(name) or "").strip())


# Each workflow's model argument: the kind of model it takes and the calls its plan writes for it (``Fit``), from the
# workflow's other arguments (words given make the video step speak them). The workflow checks its model by it
# (``_checked_model``), and completion offers only the models it takes (``takes_model``; ``completions``).
MODEL_ARGUMENTS: dict[tuple[str, str], Callable[[Mapping[str, str]], tuple[str, Fit]]] = {
    ("influencer_recreation", "video_model"): lambda given: (
        "video",
        _animates_the_still(spoken=_given(given, "script")),
    ),
    ("product_showcase", "video_model"): lambda given: ("video", _animates_the_still(spoken=_given(given, "pitch"))),
    ("character_sheet", "model"): lambda given: ("image", HERO),
    ("ugc_video", "model"): lambda given: ("video", REEL),
    ("script_to_video", "model"): lambda given: ("video", SPOKEN_PARTS),
}
# The arguments naming a picture by its workspace path (or a link), by workflow, with the models the plan's first call
# hands that picture to: completion offers the pictures in references/ and those saved in outputs/ session folders
# in the formats every one of them takes (``picture_formats``): a TIFF, BMP, GIF or AVIF was offered, and the first
# estimate (Nano Banana's) refused it.
PICTURE_ARGUMENTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("influencer_recreation", "reference_image"): NANO_MODELS,
    ("product_showcase", "product_image"): NANO_MODELS,
    ("ugc_product_selfie", "creator_image"): SELFIE_MODELS,
    ("ugc_product_selfie", "product_image"): SELFIE_MODELS,
    ("ugc_product_selfie", "style_image"): SELFIE_MODELS,
}
# The arguments naming an aspect ratio, by workflow, with the models its plan writes a call for at that ratio
# (``_ratio``): completion offers the ratios one of them makes (``ratios_taken``), where it offered none.
RATIO_ARGUMENTS: dict[tuple[str, str], tuple[str, ...]] = {("ugc_product_selfie", "aspect_ratio"): SELFIE_MODELS}


def picture_formats(models: tuple[str, ...], catalog: Catalog) -> tuple[Sniffed, ...]:
    """The picture formats (``media.sniff.IMAGES``) every one of ``models`` takes in the field its images go to, by
    ``catalog``'s media limits (a model that lists none takes any; one the catalogue does not know is passed over):
    for Nano Banana 2 and Pro, and GPT Image 2 beside them, JPEG, PNG and WebP."""
    from kie_mcp.media.inputs import field_accepts, format_fits
    from kie_mcp.media.sniff import IMAGES

    taken = IMAGES
    for model in models:
        spec = catalog.get(model)
        if spec is None or spec.images is None or not spec.images.to:
            continue
        formats = field_accepts(spec, spec.images.to[0]).formats
        if formats:
            taken = tuple(media for media in taken if format_fits(media, formats))
    return taken


def register_prompts(mcp: MCPServer) -> None:
    for name, (title, fn) in WORKFLOWS.items():
        mcp.prompt(name=name, title=title)(fn)
