"""A clip's first and last frames against its shape, said with the quote before anything is spent.

A still of another shape than the clip is cropped or padded to it (which can cut off heads and products), or the
model makes the clip in the still's shape instead of the one asked for: which, for each model, is catalogue data
(``ModelSpec.frames``). A frame's shape is read from the pixels kie-mcp measured as it hashed the local file
(``LocalFile.pixels``, or its upscaled size, as it is sent), turned as its EXIF says where that changes it; a link's
shape is not known, so nothing is said of it. Reference images (Veo's REFERENCE_2_VIDEO, Grok's several images)
are not frames: the clip is not made from them, and nothing is said of their shape.
"""

from __future__ import annotations

import math
from typing import Any

from kie_mcp.catalog import ModelSpec
from kie_mcp.catalog.validate import check_input, shape_ratio, when_matches
from kie_mcp.redact import redact_secrets
from kie_mcp.words import plain

from .inputs import LocalFile, still_hashed
from .sniff import pillow

# Shapes further apart than this differ clearly (10%): 4:5 and 9:16 do, 16:9 and a 1.85:1 still do not.
CLEARLY = 1.1
# What a shape is called when it is within 2% of one of these; otherwise by its width over its height.
NAMED_SHAPES = ("1:1", "4:5", "5:4", "3:4", "4:3", "2:3", "3:2", "9:16", "16:9", "9:21", "21:9")
_TURNED = frozenset({5, 6, 7, 8})  # EXIF orientations that turn a picture a quarter: its width is its height


def frame_notes(spec: ModelSpec, wire: dict[str, Any], files: dict[str, LocalFile], *, ratio_given: bool) -> list[str]:
    """What the quote says of each local frame whose shape clearly differs from the clip's aspect_ratio, or, where
    the clip takes its frame's shape (no aspect_ratio sent, or one the model does not use with a frame), which shape
    that is. Nothing for a model whose data names no frames, a request with none (Veo's reference images), an
    aspect_ratio that is no shape (``Auto``, ``adaptive``: the model chooses) or a link. Call it in a worker thread
    (a JPEG's EXIF is read to know which way up it is shown).

    ``ratio_given``: the caller set the aspect_ratio. When it did not (the clip's shape is the model's default) and
    the first frame's shape is one the model takes with this request, the note leads with passing that aspect_ratio
    (at no extra cost where the price does not read it): a new still of the default's shape is a paid image, for a
    clip of the shape the person did not ask for either."""
    frames = spec.frames
    field = spec.field_for_arg("aspect_ratio")
    if frames is None or field is None or not when_matches(frames.when, wire):
        return []
    sent = wire.get(field.name)
    clip = shape_ratio(sent) if sent is not None else None
    if sent is not None and clip is None:
        return []
    values = [value for name in frames.fields for value in _values(wire.get(name))]
    notes: dict[str, None] = {}  # in order, each once (one file as the first and the last frame)
    for index, value in enumerate(values):
        local = files.get(value)
        pixels = _shown_pixels(local, clip) if local is not None and local.media.kind == "image" else None
        if pixels is None:
            continue
        width, height = pixels
        which = "first" if index == 0 else "last"
        named, size = redact_secrets(value), f"{width}x{height} px"
        shape = _shape_name(width / height)
        if sent is None or frames.ratio == "ignored":  # the clip takes the first frame's shape
            if index > 0 or (sent is not None and not _differs(width / height, clip)):
                continue  # a last frame shapes nothing; a first frame of the shape asked for comes out as asked
            made = f"{spec.title} makes this clip in its first frame's shape, {shape} ({size}; {named})"
            notes[
                f"{made}: with a frame and no aspect_ratio, it follows the frame."
                if sent is None
                else f"{made}, not aspect_ratio {sent} (asked for, or the default), which it does not use with a "
                f"frame. For a {sent} clip, "
                f"start from a {sent} still."
            ] = None
        elif _differs(width / height, clip):
            fitting = _fitting_ratio(spec, wire, width / height) if not ratio_given and index == 0 else None
            if fitting is not None:
                cost = "no extra cost" if _same_rate(spec, wire, fitting) else "estimate_cost says what it costs"
                notes[
                    f"The first frame ({named}) is {shape} ({size}): pass aspect_ratio={plain(fitting)} for a "
                    f"{fitting} clip ({cost}). No aspect_ratio was given, so the clip is {sent}, the default, and a "
                    "frame of another shape is cropped or padded to the clip's, which can cut off heads and products; "
                    f"or start from a {sent} still to keep all of it."
                ] = None
                continue
            default = "" if ratio_given else f" ({sent} is the default: no aspect_ratio was given)"
            notes[
                f"The {which} frame ({named}) is {shape} ({size}) and the clip {sent}{default}: a frame of another "
                f"shape is cropped or padded to the clip's, which can cut off heads and products. Start from a {sent} "
                "still to keep all of it."
            ] = None
    return list(notes)


def _fitting_ratio(spec: ModelSpec, wire: dict[str, Any], frame: float) -> str | None:
    """The aspect_ratio value of a first frame's shape (the nearest, of those not clearly another) that the model
    takes with the rest of ``wire`` (its values and rules allow it), or None."""
    field = spec.field_for_arg("aspect_ratio")
    if field is None:
        return None
    near = [
        (abs(math.log(frame / ratio)), str(value))
        for value in field.values or ()
        if (ratio := shape_ratio(value)) is not None and not _differs(frame, ratio)
    ]
    for _, value in sorted(near):
        if not check_input(spec, {**wire, field.name: value}):
            return value
    return None


def _same_rate(spec: ModelSpec, wire: dict[str, Any], ratio: str) -> bool:
    """Whether the request with aspect_ratio ``ratio`` is priced by the same rate as ``wire`` (a price that does not
    read the clip's shape)."""
    field, table = spec.field_for_arg("aspect_ratio"), spec.price
    if field is None or table is None:
        return False
    other = {**wire, field.name: ratio}

    def first(request: dict[str, Any]) -> int | None:
        return next((n for n, rate in enumerate(table.rates) if when_matches(rate.when, request)), None)

    found = first(wire)
    return found is not None and found == first(other)


def _values(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _differs(frame: float, clip: float | None) -> bool:
    return clip is not None and max(frame, clip) / min(frame, clip) > CLEARLY


def _shape_name(ratio: float) -> str:
    named = min(NAMED_SHAPES, key=lambda name: abs(math.log(ratio / (shape_ratio(name) or 1.0))))
    if abs(math.log(ratio / (shape_ratio(named) or 1.0))) <= math.log(1.02):
        return named
    return f"{round(ratio, 2):g}:1" if ratio >= 1 else f"1:{round(1 / ratio, 2):g}"  # 30:1, 1.85:1, 1:2.5


def _shown_pixels(local: LocalFile, clip: float | None) -> tuple[int, int] | None:
    """``local``'s width and height as it is shown (and sent, upscaled); None when they are not known, or when its
    EXIF turns it a quarter and its two shapes would be said differently (the clip takes its shape, or only one of
    them differs from the clip's): which one KIE's model reads is not known, so nothing is said rather than a guess."""
    if local.upscaled is not None:  # sent upright, at this size
        return local.upscaled
    if local.pixels is None:
        return None
    width, height = local.pixels
    if not _turned(local):
        return width, height
    if clip is None or _differs(width / height, clip) != _differs(height / width, clip):
        return None
    return height, width


def _turned(local: LocalFile) -> bool:
    """Whether ``local``'s EXIF turns it a quarter (a phone photo held upright); False when it cannot be read, or it
    changed since it was hashed (its upload refuses it)."""
    try:
        with still_hashed(local) as handle, pillow().open(handle) as image:
            return image.getexif().get(0x0112) in _TURNED
    except Exception:  # any header Pillow cannot read, a file changed since: nothing turned is known
        return False
