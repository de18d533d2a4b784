"""The shape of a model entry in the catalogue data files (``catalog/data/*.toml``).

Every model is data: its API family, its input fields in KIE's own wire names, the cross-field
rules, the price table and a source for each fact. Validation and pricing read these objects;
no model has code of its own.
"""

# No ``from __future__ import annotations``: pydantic would compile each field's annotation string on import.

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# The follow-up families (``veo-extend``, ``veo-1080p``, ``veo-4k``, ``runway-extend``) continue a finished task of
# their base family through its own endpoint (``kie/families.py``); their models carry a ``followup`` table.
Family = Literal[
    "market", "veo", "runway", "aleph", "gpt4o", "flux", "veo-extend", "veo-1080p", "veo-4k", "runway-extend"
]
Kind = Literal["image", "video"]
# "integers": a list of whole numbers, each within ``min`` and ``max`` (Grok Image 2.0 segment edit's mask_indexs).
FieldType = Literal["string", "integer", "number", "boolean", "enum", "url", "urls", "strings", "integers", "objects"]
# Common tool arguments a wire field can be filled from.
CommonArg = Literal["prompt", "aspect_ratio", "resolution", "duration", "audio"]
Scalar = str | int | float | bool

# The prompt bound for a model whose documentation gives none: 5000 characters, the limit KIE documents for more
# of its models than any other (49 of the 93 that document one; also their median). Most models' own limit is 5000 or
# more, so a prompt within it is one KIE takes; an absurd one (a megabyte pasted by mistake) never goes out.
DEFAULT_PROMPT_MAX_LENGTH = 5000
# Fields that set how many results one task makes, where the price does not name one (Imagen 4 Fast's num_images).
COUNT_FIELDS = ("n", "num_images", "max_images", "nVariants")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class Source(_Strict):
    """Where a fact comes from, and of when.

    ``date`` is the date of what the source captures: the page's own date, the commit or snapshot that holds the
    copy read (henjicc/Henji-AI's docs/api/KIE: 2026-06-30, however late the repository was read), the day a live
    page or feed was seen. ``read`` is the day a copy was read, or at the latest the day it was written into the
    catalogue. A copy whose capture date is not known has only ``read``: a price from it is undated (provenance says
    "an unknown date" and the staleness warning says the price is undated), never shown as of the day it was read,
    which would make it look newer than it is."""

    kind: Literal["documented", "observed", "inferred"]
    ref: str
    date: str | None = None
    read: str | None = None

    @model_validator(mode="after")
    def _dated(self) -> "Source":
        if self.date is None and self.read is None:
            raise ValueError("a source needs its capture date, or the day it was read when that date is not known")
        if self.date is not None and self.read is not None and self.read < self.date:
            raise ValueError(f"read {self.read} before the capture it read ({self.date})")
        return self


class LengthRule(_Strict):
    """A narrower length a media field takes under some settings (``when`` matches wire values, as in rules):
    Kling 2.6 motion control takes a 10 s video at most when the character faces as in the image."""

    when: dict[str, Scalar | list[Scalar]]
    min_seconds: float | None = None
    max_seconds: float | None = None
    total_seconds: float | None = None
    source: str


class MediaLimits(_Strict):
    """What a media field takes beyond its kind, as KIE documents it: the formats (``media.sniff``'s names: mp4, mov,
    mkv, webm, mp3, wav, aac, ogg, flac, m4a, jpeg, png, ...), each file's length and all the files' length together
    (bounds included), a size limit and, for pictures, pixels and whether they may be transparent. A local file
    outside them is refused before anything is priced, uploaded or sent (``media.inputs``; a transparent picture is
    flattened where it can be); a link, where kie-mcp measures it for a price."""

    formats: list[str] = Field(default_factory=list)
    min_seconds: float | None = None
    max_seconds: float | None = None
    total_seconds: float | None = None  # a list field: the most all its files may last together
    max_mb: float | None = None
    min_side: int | None = None  # pixels: the shortest side at least this
    max_side: int | None = None  # the longest side at most this
    # A field whose value multiplies the picture's sides before ``max_side`` applies: an upscaler's factor, whose
    # limit is on its output (Topaz: the longest side x upscale_factor at most 20,000 px).
    max_side_times: str | None = None
    min_pixels: int | None = None  # width x height at least this (Seedream 5.0 Pro layers: 262,144, 512x512)
    max_pixels: int | None = None  # width x height at most this
    max_aspect: float | None = None  # the longest side over the shortest at most this (2.5: 1:2.5 to 2.5:1)
    # Pictures without transparency only (Wan's frames: "PNG (no transparency)"): a local picture some of whose pixels
    # are transparent is flattened onto white before it is sent, and the quote says so (``media.prepare``); one that
    # cannot be flattened here is refused before it is priced. A fully opaque alpha channel is taken as it is.
    opaque: bool = False
    lengths: list[LengthRule] = Field(default_factory=list)  # narrower lengths under some settings
    source: str

    @property
    def bounds_length(self) -> bool:
        return any(
            bound is not None
            for limits in (self, *self.lengths)
            for bound in (limits.min_seconds, limits.max_seconds, limits.total_seconds)
        )

    @property
    def bounds_pixels(self) -> bool:
        return any(
            bound is not None
            for bound in (self.min_side, self.max_side, self.min_pixels, self.max_pixels, self.max_aspect)
        )


class FieldSpec(_Strict):
    """One input field, named as KIE names it on the wire."""

    name: str = ""
    type: FieldType
    arg: CommonArg | None = None
    required: bool = False
    default: Scalar | None = None
    values: list[Scalar] | None = None
    value_aliases: dict[str, Scalar] = Field(default_factory=dict)
    min: float | None = None
    max: float | None = None
    max_length: int | None = None
    max_length_default: bool = False  # True: max_length is kie-mcp's DEFAULT_PROMPT_MAX_LENGTH, not documented by KIE
    min_items: int | None = None
    max_items: int | None = None
    # KIE's value for "the model picks" (Seedance's and Wan 3.0's duration -1): refused, saying why. What the model
    # picks sets the price, so it cannot be quoted before the task runs, and nothing is sent unquoted.
    auto: Scalar | None = None
    note: str | None = None
    example: Any = None  # a valid sample value, shown in docs and used by the generic tests
    media: MediaLimits | None = None  # a media field's formats, lengths, size and pixels, with their own source
    source: str

    @property
    def is_media(self) -> bool:
        return self.type in ("url", "urls")


class ImagesSpec(_Strict):
    """How the tools' ``images`` argument lands on the wire: one list field, or single fields in order."""

    to: list[str]
    min: int = 0
    max: int
    # Fields that stand in for the images: given one of them (a reference video), no image is needed and the
    # model's rules say what the request then takes. ``min`` stays what a minimal request sends.
    unless: list[str] = Field(default_factory=list)
    formats: list[str] = Field(default_factory=list)
    max_mb: float | None = None
    source: str


class FramesSpec(_Strict):
    """The images a clip starts (and ends) on: the values of ``fields`` in order (the first frame, then the last),
    under ``when`` (wire values, as in rules: Veo's FIRST_AND_LAST_FRAMES_2_VIDEO, not its reference images), and
    what the model does with a frame of another shape than the clip's ``aspect_ratio``: ``"fits"`` it (crops or pads
    it to the clip's shape, which can cut off heads and products) or ``"ignored"`` (the clip takes the first frame's
    shape, whatever aspect_ratio says). Sent without an aspect_ratio, a clip takes its first frame's shape. The quote
    says so of a frame whose shape clearly differs, or which shape the clip takes (``media.frames``)."""

    fields: list[str]
    when: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)
    ratio: Literal["fits", "ignored"]
    source: str


class Rule(_Strict):
    """A cross-field rule. ``when`` matches wire values; ``field#count`` matches a list's length."""

    when: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)
    set_default: dict[str, Scalar] = Field(default_factory=dict)
    # What the quote says when ``set_default``, not the caller, chose a value (KIE's default, which may not be what
    # the person wants: Veo's first frame from one photo), with how to choose the other (``validate.chosen_notes``).
    set_default_note: str | None = None
    force: dict[str, Scalar] = Field(default_factory=dict)
    allow: dict[str, list[Scalar]] = Field(default_factory=dict)
    count: dict[str, tuple[int, int]] = Field(default_factory=dict)
    require: list[str] = Field(default_factory=list)
    message: str | None = None
    source: str

    @model_validator(mode="after")
    def _a_note_says_what_a_default_chose(self) -> "Rule":
        if self.set_default_note is not None and not self.set_default:
            raise ValueError("set_default_note says what set_default chose: it needs set_default")
        return self


class Rate(_Strict):
    when: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)
    credits: float
    input_seconds: str | None = None  # billed per second of this input (e.g. "input video"): unknown until it runs
    # The row of KIE's public price feed this rate equals: its ``modelDescription`` (e.g. "gpt image 2,
    # text-to-image, 4k"). Live sync prices the rate from that row; a rate whose row disappeared is unknown.
    feed: str | None = None
    # The highest charge KIE was credibly seen making where this rate applies, above its list price (a live test
    # charged 60 for a clip listed at 30), and the source that saw it: the caps, the auto-approve limit and the
    # ledger (while KIE reports no charge) count this figure, so a cap holds whichever of the two KIE charges.
    up_to: float | None = None
    up_to_source: str | None = None
    # Why the caps count ``up_to`` when it is not a charge KIE was seen making, in words a quote says ("a picture
    # given as a link is not measured before KIE fetches it, and KIE bills up to its 8K tier"). None: seen charging.
    up_to_why: str | None = None
    # The row of KIE's public price feed ``up_to`` follows (Topaz's 8K tier for a link): live sync counts the higher
    # of ``up_to`` and that row's live credits, so a tier KIE raises is never counted at its old figure.
    up_to_feed: str | None = None
    # Credits KIE may add per task for each input in these fields (a link field counts one when set, a list field
    # its items), above the rate, by a source too weak to quote (MiniMax H3 image to video: "+4/image input" in one
    # capture of KIE's docs, while others count some images free). Counted like ``up_to`` (with ``up_to_source``
    # and ``up_to_why``), on top of the rate or of ``up_to``; never quoted as the price.
    up_to_per_input: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _up_to_has_a_source(self) -> "Rate":
        counted = self.up_to is not None or bool(self.up_to_per_input)
        if counted != (self.up_to_source is not None):
            raise ValueError(
                "up_to or up_to_per_input and up_to_source go together: a higher charge is counted only with its source"
            )
        if self.up_to_why is not None and not counted:
            raise ValueError("up_to_why says why more is counted: it needs up_to or up_to_per_input")
        if any(not each > 0 for each in self.up_to_per_input.values()):
            raise ValueError("up_to_per_input counts credits KIE may add: each above 0")
        if self.up_to_feed is not None and self.up_to is None:
            raise ValueError("up_to_feed names the feed row up_to follows: it needs up_to")
        if self.up_to is not None and self.up_to <= self.credits:
            raise ValueError(f"up_to ({self.up_to:g}) must be above the list price ({self.credits:g})")
        for key, frames in self.when.items():  # a picture's frame (``when_matches``): "1920x1080", or a list of them
            listed = frames if isinstance(frames, list) else [frames]
            if key.endswith("#fits") and not all(re.fullmatch(r"[1-9][0-9]*x[1-9][0-9]*", str(f)) for f in listed):
                raise ValueError(f"{key} takes frames written WxH (1920x1080), not {frames!r}")
        return self


class Withdrawn(_Strict):
    """A model KIE no longer sells: refused before anything is sent, with what to use instead."""

    date: str
    source: str
    alternatives: list[str] = Field(default_factory=list)
    note: str | None = None


class PriceSpec(_Strict):
    """Credits per task, per clip or per second of output; the first rate whose ``when`` matches applies."""

    unit: Literal["task", "clip", "second"]
    seconds_field: str | None = None
    count_field: str | None = None  # e.g. num_images: the rate is per output, times this field's value
    rates: list[Rate]
    source: str
    note: str | None = None


class DialogueSpec(_Strict):
    """How spoken words go into this model's prompt, and what to do when a script is too long."""

    template: str = '{prompt}\n\nDialogue: "{script}"'
    overflow: Literal["error", "warn"] = "error"  # warn: the model decides length itself and may cut speech
    warn_words: int | None = None
    # Fields sent with a script unless the caller set them (Veo: enableTranslation=false, so KIE does not translate
    # the spoken words), and why, shown in the quote.
    set_default: dict[str, Scalar] = Field(default_factory=dict)
    set_default_note: str | None = None
    source: str


Operation = Literal["extend", "hd", "4k", "upscale"]


class Refusal(_Strict):
    """When a follow-up is refused before anything is sent: the source's facts match ``when`` (keys
    ``source.<name>``, as in price rates), or the source already has a child made by one of ``after``."""

    when: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)
    after: list[str] = Field(default_factory=list)
    message: str
    source: str


class FollowupSpec(_Strict):
    """How a model continues a finished video (the ``continue_video`` tool): which operation it performs, on the
    tasks of which models, where the source goes in its request, and what its result holds."""

    operation: Operation
    parents: list[str]  # model ids whose finished tasks it continues; "*" takes any video
    takes: Literal["task", "clip"] = "task"  # the source's task id, or its video (the saved file, else its link)
    field: str  # the request field the source goes into
    result: Literal["whole", "part", "same"]  # whole: the source's video and the new part; part: the new part only;
    # same: the source's clip, upgraded (1080p, 4K, upscaled)
    gives_resolution: str | None = None  # the resolution its result has (an upgrade), for follow-ups of it
    once: bool = False  # one per source: asked again, the earlier one is returned and nothing is spent
    standalone: bool = False  # also usable by generate_video with any input (Topaz takes any video URL)
    max_age_days: float | None = None  # KIE keeps the source task this long; older ones are refused
    default_prompt: str | None = None  # sent when the caller gives no prompt and KIE requires one
    # How long the new part is when no setting chooses it (a Veo extension: about 7 s), with its source: the length
    # a script spoken in it is fitted to (``script.fit_script``). A follow-up with a duration setting needs none.
    adds_seconds: int | None = None
    adds_seconds_source: str | None = None
    by_parent: dict[str, dict[str, Scalar]] = Field(default_factory=dict)  # option defaults by the source's model
    from_parent: dict[str, str] = Field(default_factory=dict)  # option <- the source's setting of that name
    refuse: list[Refusal] = Field(default_factory=list)
    note: str | None = None
    source: str


class UnifiedRoute(_Strict):
    """The same model on KIE's unified Market endpoint (``POST /api/v1/jobs/createTask`` with ``{model, input}``,
    followed on ``jobs/recordInfo``), taken instead of its family's own endpoint when a setting chooses it
    (``KIE_VEO_ROUTE=unified``). The request is validated, priced and journaled in the model's own wire names; only
    the create's body is written in this form: ``model`` is the body's model id, ``input`` what the input always
    holds (the tier), ``rename`` each wire field's name there, and ``refuse`` the wire fields this form has no
    documented place for (why, for the refusal: such a request is refused before it is quoted)."""

    model: str
    input: dict[str, Scalar] = Field(default_factory=dict)
    rename: dict[str, str] = Field(default_factory=dict)
    refuse: dict[str, str] = Field(default_factory=dict)
    source: str

    def input_of(self, wire: dict[str, Any]) -> dict[str, Any]:
        """The create body's ``input`` for ``wire`` (the model's own field names)."""
        return {**{self.rename.get(name, name): value for name, value in wire.items()}, **self.input}

    def wire_of(self, unified_input: dict[str, Any]) -> dict[str, Any]:
        """``input_of`` undone: the model's own field names (the simulator reads a unified create with them)."""
        back = {unified: name for name, unified in self.rename.items()}
        return {back.get(name, name): value for name, value in unified_input.items() if name not in self.input}


class ModelSpec(_Strict):
    id: str = ""
    title: str
    family: Family
    kind: Kind
    capabilities: list[str]
    good_for: str
    aliases: list[str] = Field(default_factory=list)
    typical_seconds: tuple[int, int]
    images: ImagesSpec | None = None
    frames: FramesSpec | None = None  # which images are the clip's first and last frames, and how their shape is kept
    fields: dict[str, FieldSpec]
    rules: list[Rule] = Field(default_factory=list)
    price: PriceSpec | None = None
    # What one task counts against the caps while its price is not known before it runs (no price table, or no rate
    # for these settings): the most the catalogue takes it to cost, with its source. Never quoted as a price, never
    # auto-approved; without it such a task reserves the whole per-call cap.
    reserve: PriceSpec | None = None
    dialogue: DialogueSpec | None = None
    withdrawn: Withdrawn | None = None
    followup: FollowupSpec | None = None  # a follow-up of a finished video (extend, 1080p, 4K, upscale)
    unified: UnifiedRoute | None = None  # the model on KIE's unified jobs/createTask, when a setting chooses it
    source: str
    sources: dict[str, Source] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _frames_are_fields(self) -> "ModelSpec":
        if self.frames is not None:
            unknown = [name for name in self.frames.fields if name not in self.fields]
            if unknown or self.field_for_arg("aspect_ratio") is None:
                raise ValueError(f"frames name fields it does not have ({unknown}) or it has no aspect_ratio field")
        return self

    @model_validator(mode="after")
    def _inputs_counted_are_media_fields(self) -> "ModelSpec":
        named = {name for rate in (self.price.rates if self.price else []) for name in rate.up_to_per_input}
        if unknown := sorted(name for name in named if name not in self.fields or not self.fields[name].is_media):
            raise ValueError(f"up_to_per_input names what is no media field of the model: {unknown}")
        return self

    def field_for_arg(self, arg: str) -> FieldSpec | None:
        return next((f for f in self.fields.values() if f.arg == arg), None)

    @property
    def most_outputs(self) -> int | None:
        """The most results one task of this model makes: the largest value its count field takes (the one its
        price counts, else ``n``, ``num_images`` or ``max_images``); None without such a field (how many a task makes
        is then not data: Grok Imagine makes six images a call, with no field saying so) or when that field sets no
        largest value (a live model's schema may give none)."""
        name = self.count_field_name
        count = self.fields.get(name) if name else None
        if count is None:
            return None
        values = [count.max] if count.max is not None else list(count.values or ())
        try:
            return max(int(float(value)) for value in values) if values else None
        except (TypeError, ValueError):
            return None

    @property
    def count_field_name(self) -> str | None:
        """The field that sets how many results one task makes: the one its price counts, else ``n``, ``num_images``,
        ``max_images`` or ``nVariants``; None when the model has none."""
        named = self.price.count_field if self.price and self.price.count_field else None
        return named or next((name for name in COUNT_FIELDS if name in self.fields), None)

    def outputs_per_task(self, wire: dict[str, Any]) -> tuple[int, bool]:
        """How many results one task of ``wire`` makes (its count field's value, else that field's default, else 1),
        and whether that is only the most it makes (``max_images``: the model may make fewer)."""
        name = self.count_field_name
        field = self.fields.get(name) if name else None
        if name is None or field is None:
            return 1, False
        value = wire.get(name, field.default)
        try:
            count = max(int(float(value)), 1) if value is not None else 1
        except (TypeError, ValueError):
            count = 1
        return count, name.startswith("max_")

    def source_of(self, key: str) -> Source:
        return self.sources[key]

    def summary(self) -> dict[str, Any]:
        """A short, JSON-ready description for listings."""
        return {
            "id": self.id,
            "title": self.title,
            "family": self.family,
            "kind": self.kind,
            "capabilities": self.capabilities,
            "good_for": self.good_for,
        }
