"""Every media field whose catalogue data documents what it takes (formats, lengths, pixels), generically.

Adding such a field is a data entry (a ``media`` table with its source), and these tests cover it: through the MCP
client, a local file outside the field's formats, lengths or pixels is refused before anything is priced, uploaded
or sent, the error naming the field, what was given, what the field takes and what to do; one inside them is priced.
"""

from __future__ import annotations

import io
import math
import re
import struct
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from kie_mcp.catalog import ModelSpec, load_catalog
from kie_mcp.catalog.validate import argument_name
from kie_mcp.media import sniff as sniff_module
from kie_mcp.media.duration import measure_local
from kie_mcp.media.inputs import _FORMAT_NAMES, KNOWN_FORMATS, _sent_as_is, field_kinds, formats_text
from kie_mcp.media.sniff import Sniffed, sniff

from .conftest import answering, eras_in_turn, text_of
from .test_every_model import minimal_arguments
from .test_media_safety import wav

CATALOG = load_catalog()
UPLOADS = {"/api/file-stream-upload", "/api/file-base64-upload", "/api/file-url-upload"}


def _fields(check: str) -> list[tuple[str, str]]:
    return sorted(
        (spec.id, name)
        for spec in CATALOG.offered()
        for name, field in spec.fields.items()
        if field.media is not None and (check == "any" or bool(getattr(field.media, check)))
    )


LIMITED = _fields("any")
FORMATS = [(m, n) for m, n in _fields("formats") if field_kinds(CATALOG.get(m), n) != {"image"}]
PICTURE_FORMATS = [(m, n) for m, n in _fields("formats") if field_kinds(CATALOG.get(m), n) == {"image"}]
OPAQUE = _fields("opaque")
LENGTHS = _fields("bounds_length")
PIXELS = _fields("bounds_pixels")
AUDIO_OR_VIDEO = sorted(
    (spec.id, name)
    for spec in CATALOG.offered()
    for name, field in spec.fields.items()
    if field.is_media and len(field_kinds(spec, name)) == 1 and field_kinds(spec, name) != {"image"}
)


# -- files of a given kind, format, length or size ----------------------------------------------------------------


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def mp4(path: Path, seconds: float) -> Path:
    """An MP4 that lasts ``seconds``: its header says so and its one video track's samples play as long (what KIE's
    checks and kie-mcp's measuring read; the track's handler says it holds video, as a player needs)."""
    ftyp = _box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2mp41")
    units = round(seconds * 1000)
    mvhd = _box(b"mvhd", b"\x00\x00\x00\x00" + struct.pack(">IIII", 0, 0, 1000, units) + bytes(80))
    mdhd = _box(b"mdhd", b"\x00\x00\x00\x00" + struct.pack(">IIII", 0, 0, 1000, units) + bytes(4))
    hdlr = _box(b"hdlr", bytes(8) + b"vide" + bytes(12) + b"video\x00")
    stts = _box(b"stts", bytes(4) + struct.pack(">III", 1, 1, units))  # one sample as long as the clip
    track = _box(b"trak", _box(b"mdia", mdhd + hdlr + _box(b"minf", _box(b"stbl", stts))))
    path.write_bytes(ftyp + _box(b"mdat", bytes(2000)) + _box(b"moov", mvhd + track))
    return path


# The first bytes of a file in each format (all the format check reads): the EBML header of a WebM, a RIFF AVI, ...
HEADERS = {
    "webm": b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm" + bytes(64),
    "avi": b"RIFF\x00\x10\x00\x00AVI LIST" + bytes(64),
    "flac": b"fLaC\x00\x00\x00\x22" + bytes(64),
    "m4a": _box(b"ftyp", b"M4A " + bytes(4) + b"M4A isom") + bytes(64),
    "mp4": _box(b"ftyp", b"isom" + bytes(4) + b"isommp41") + bytes(64),
    "mov": _box(b"ftyp", b"qt  " + bytes(4) + b"qt  ") + bytes(64),
}


def same_container(candidate: str, formats: tuple[str, ...]) -> bool:
    """An M4A is an MP4, and an MP4 by its brand what a field listing m4a or m4v takes: one container."""
    return (candidate == "m4a" and "mp4" in formats) or (candidate == "mp4" and bool({"m4a", "m4v"} & set(formats)))


def wrong_format(spec: ModelSpec, name: str) -> str | None:
    """A format of the field's kind that its data leaves out."""
    kinds = field_kinds(spec, name)
    formats = tuple(spec.fields[name].media.formats)
    for candidate, head in HEADERS.items():
        sniffed = sniff(head)
        assert sniffed is not None and sniffed.format == candidate
        if sniffed.serves(kinds) and candidate not in formats and not same_container(candidate, formats):
            return candidate
    return None


def request(spec: ModelSpec, name: str, value: Any, **options: Any) -> dict[str, Any]:
    """The smallest request of ``spec`` with ``value`` in field ``name``."""
    arguments = minimal_arguments(spec)
    field = spec.fields[name]
    if spec.images and name in spec.images.to:
        arguments["images"] = value if isinstance(value, list) else [value]
        arguments.get("options", {}).pop(name, None)
    else:
        if field.type == "urls" and not isinstance(value, list):
            value = [value]
        arguments["options"] = {**arguments.get("options", {}), name: value}
    arguments["options"] = {**arguments.get("options", {}), **options}
    return arguments


def _tool(spec: ModelSpec) -> str:
    return f"generate_{spec.kind}"


async def _nothing_sent(controls: Any) -> None:
    requests = await controls.get("requests")
    items = requests if isinstance(requests, list) else requests["requests"]
    assert [r["path"] for r in items if r["path"] in UPLOADS] == []
    assert await controls.creates() == []


# -- the data --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("model_id", "name"), LIMITED)
def test_every_media_limit_is_sourced_dated_and_one_kie_mcp_can_check(model_id, name):
    spec = CATALOG.get(model_id)
    media = spec.fields[name].media
    source = spec.source_of(media.source)
    # Dated by what it captures, or (a copy of unknown date) by the day it was read: never undated.
    assert source.kind == "documented" and re.fullmatch(r"\d{4}-\d{2}-\d{2}", source.date or source.read), source
    assert all(spec.source_of(rule.source) for rule in media.lengths)
    assert set(media.formats) <= KNOWN_FORMATS, media.formats  # a name media.sniff tells apart
    kinds = field_kinds(spec, name)
    assert all(kinds & _kinds_of(f) for f in media.formats), (kinds, media.formats)  # an audio field lists audio
    for low, high in ((media.min_seconds, media.max_seconds), *((r.min_seconds, r.max_seconds) for r in media.lengths)):
        assert low is None or high is None or 0 <= low < high
    if media.total_seconds is not None:
        assert spec.fields[name].type == "urls" and (media.min_seconds or 0) < media.total_seconds
    if media.bounds_pixels:
        assert kinds == {"image"}
    if spec.images is not None and name in spec.images.to:  # one place for a field's formats and size
        assert not (media.formats and spec.images.formats) and not (media.max_mb and spec.images.max_mb)
    note = spec.fields[name].note or ""
    if media.max_mb is not None and (stated := re.search(r"(\d+(?:\.\d+)?)\s*MB\b", note)):
        assert float(stated.group(1)) == media.max_mb, note  # the words and the data say the same


@pytest.mark.parametrize(("model_id", "name"), OPAQUE)
def test_every_field_without_transparency_is_a_picture_field_its_source_documents_so(model_id, name):
    """``opaque`` is data with a source like any limit: the field takes pictures (and JPEG, the form a flattened
    picture is sent in), and its source says "no transparency", or takes the whole schema of another model whose
    same field is documented so (Wan 3.0 Prime: "the schema, modes and rules of wan/3-0-video")."""
    spec = CATALOG.get(model_id)
    media = spec.fields[name].media
    assert field_kinds(spec, name) == {"image"}
    formats = media.formats or (spec.images.formats if spec.images and name in spec.images.to else [])
    assert not formats or "jpeg" in formats, formats
    ref = spec.source_of(media.source).ref
    if "no transparency" not in ref:
        [(other, _)] = re.findall(r"the schema, modes and rules of ([\w./-]+)( |,|$)", ref)
        assert CATALOG.get(other).fields[name].media.opaque, (other, name)


def _kinds_of(fmt: str) -> set[str]:
    """The kinds of media a catalogue format name stands for, as ``media.sniff`` and ``media.inputs`` read them."""
    return {
        kind
        for media in vars(sniff_module).values()
        if isinstance(media, Sniffed) and fmt in _FORMAT_NAMES.get(media.format, {media.format})
        for kind in (media.kind, *media.also)
    }


@pytest.mark.parametrize(("model_id", "name"), AUDIO_OR_VIDEO)
def test_every_format_or_length_a_note_states_is_data_that_is_checked(model_id, name):
    """A video or audio field whose note names formats or a length range has them as data: the words alone are
    never checked, so a bad file would reach a paid create."""
    spec = CATALOG.get(model_id)
    note = (spec.fields[name].note or "").lower()
    media = spec.fields[name].media
    if re.search(r"\b(mp4|mov|mkv|mp3|wav|aac|ogg|flac|quicktime|matroska)\b", note):
        assert media is not None and media.formats, note
    if re.search(r"\b\d+(?:\.\d+)?-\d+(?:\.\d+)? s\b|\bunder \d+ s\b|\b\d+ minutes\b", note):
        assert media is not None and media.bounds_length, note


# -- through the MCP client ------------------------------------------------------------------------------------


@eras_in_turn(("model_id", "name"), FORMATS)
async def test_a_file_in_a_format_the_field_does_not_take_is_refused_before_it_is_priced(
    connect, controls, tmp_path, model_id, name
):
    spec = CATALOG.get(model_id)
    fmt = wrong_format(spec, name)
    if fmt is None:
        pytest.skip(f"{model_id}'s {name} takes every {'/'.join(field_kinds(spec, name))} format media.sniff knows")
    (tmp_path / f"input.{fmt}").write_bytes(HEADERS[fmt])
    asked: list[str] = []
    async with connect(elicitation=answering(seen=asked)) as client:
        result = await client.call_tool(_tool(spec), request(spec, name, f"input.{fmt}"))
    text = text_of(result)
    assert result.is_error, text
    assert argument_name(spec, name) in text and f"input.{fmt}" in text, text
    assert f"takes {formats_text(tuple(spec.fields[name].media.formats))} only" in text, text
    assert "Convert it to" in text and "ffmpeg -i" in text, text
    assert asked == []  # never priced, so never put to the user
    await _nothing_sent(controls)


def _outside(media: Any) -> list[tuple[str, float]]:
    """(why, seconds) of lengths just outside a field's bounds."""
    cases = []
    if media.max_seconds is not None:
        cases.append(("too long", media.max_seconds + 2))
    if media.min_seconds is not None and media.min_seconds >= 1:
        cases.append(("too short", media.min_seconds - 0.8))
    return cases


def _within(media: Any) -> float:
    low = media.min_seconds or 0.0
    high = media.max_seconds if media.max_seconds is not None else low + 10
    return round(min(low + 1.5, (low + high) / 2), 1)


def _file(tmp_path: Path, kind: str, name: str, seconds: float) -> str:
    if kind == "audio":
        return wav(tmp_path / f"{name}.wav", seconds).name
    return mp4(tmp_path / f"{name}.mp4", seconds).name


@eras_in_turn(("model_id", "name"), LENGTHS)
async def test_a_file_longer_or_shorter_than_the_field_takes_is_refused_before_it_is_priced(
    connect, controls, tmp_path, model_id, name
):
    spec = CATALOG.get(model_id)
    media = spec.fields[name].media
    (kind,) = field_kinds(spec, name)
    assert ("wav" if kind == "audio" else "mp4") in media.formats  # the files made here are ones the field takes
    fits = _file(tmp_path, kind, "fits", _within(media))
    assert measure_local(tmp_path / fits) == pytest.approx(_within(media))
    asked: list[str] = []
    async with connect(elicitation=answering(seen=asked)) as client:
        within = await client.call_tool("estimate_cost", request(spec, name, fits))
        assert not within.is_error, text_of(within)  # a file inside the bounds is priced
        for why, seconds in _outside(media):
            given = _file(tmp_path, kind, why.replace(" ", "-"), seconds)
            result = await client.call_tool(_tool(spec), request(spec, name, given))
            text = text_of(result)
            assert result.is_error, f"{why}: {text}"
            assert argument_name(spec, name) in text and given in text and f"{seconds:.1f} s long" in text, text
            assert ("Trim it to" if why == "too long" else "Give one at least") in text, text
        for rule in media.lengths:  # a narrower length under some settings: refused with those settings only
            high = rule.max_seconds
            given = _file(tmp_path, kind, "narrower", high + 1)
            assert media.max_seconds is None or high + 1 <= media.max_seconds
            narrowed = await client.call_tool(_tool(spec), request(spec, name, given, **rule.when))
            assert narrowed.is_error and f"{name} with " in text_of(narrowed), text_of(narrowed)
            assert not (await client.call_tool("estimate_cost", request(spec, name, given))).is_error
        if media.total_seconds is not None and (spec.fields[name].max_items or 2) >= 2:
            each = media.total_seconds / 2 + 1  # each inside its bounds, together past the total
            assert media.max_seconds is None or each <= media.max_seconds
            pair = [_file(tmp_path, kind, f"part{i}", each) for i in (1, 2)]
            together = await client.call_tool(_tool(spec), request(spec, name, pair))
            assert together.is_error and f"last {2 * each:.1f} s together" in text_of(together), text_of(together)
    assert asked == []
    await _nothing_sent(controls)


def _picture(tmp_path: Path, label: str, width: int, height: int) -> str:
    path = tmp_path / f"{label}.png"
    Image.new("L", (width, height), 128).save(path)
    return path.name


def _pictures_outside(media: Any, as_is: bool) -> list[tuple[str, int, int, str]]:
    """(label, width, height, what the error says) of pictures just outside a field's pixels. A picture whose
    longest side is under 1024 px is upscaled before it is sent (``as_is``: never), so a too-small side is a strip
    at least that long, and one the field's aspect allows."""
    cases = []
    if media.max_aspect is not None:
        cases.append(("elongated", 1200, math.floor(1200 / media.max_aspect) - 20, "Crop it nearer to square"))
    if media.min_side is not None:
        long = 1100 if media.max_aspect is None else math.floor((media.min_side - 1) * media.max_aspect)
        if as_is or long >= 1024:  # else every picture the aspect allows is upscaled past the minimum
            cases.append(("narrow", media.min_side - 1, long, "Give a larger picture"))
    if media.max_side is not None:
        # a strip where the aspect allows one: a 20001 px square is too many pixels to decode, refused as such
        other = math.ceil((media.max_side + 1) / media.max_aspect) if media.max_aspect else max(media.min_side or 0, 64)
        cases.append(("huge", media.max_side + 1, other, "Scale it down"))
    if media.max_pixels is not None:
        side = int(min(media.max_side or math.inf, math.isqrt(media.max_pixels) + 1))
        cases.append(("many", side, media.max_pixels // side + 2, "megapixels"))
    return cases


@eras_in_turn(("model_id", "name"), PIXELS)
async def test_a_picture_outside_the_fields_pixels_is_refused_before_it_is_priced(
    connect, controls, tmp_path, model_id, name
):
    spec = CATALOG.get(model_id)
    media = spec.fields[name].media
    asked: list[str] = []
    async with connect(elicitation=answering(seen=asked)) as client:
        within = await client.call_tool("estimate_cost", request(spec, name, _picture(tmp_path, "fits", 1200, 1000)))
        assert not within.is_error, text_of(within)
        as_is = bool(_sent_as_is(spec, {name: "x"}))
        for label, width, height, todo in _pictures_outside(media, as_is):
            given = _picture(tmp_path, label, width, height)
            result = await client.call_tool(_tool(spec), request(spec, name, given))
            text = text_of(result)
            assert result.is_error, f"{label} {width}x{height}: {text}"
            assert argument_name(spec, name) in text and f"{given} is {width}x{height} px" in text, text
            assert todo in text, text
    assert asked == []
    await _nothing_sent(controls)


# Pictures in formats an image field may leave out, made by Pillow (as a camera or an editor writes them).
PICTURES = {"tiff": "TIFF", "gif": "GIF", "bmp": "BMP", "webp": "WEBP"}


@eras_in_turn(("model_id", "name"), PICTURE_FORMATS)
async def test_a_picture_in_a_format_the_field_does_not_take_is_refused_before_it_is_priced(
    connect, controls, tmp_path, model_id, name
):
    """An image field whose data lists its formats (Wan 2.7 video edit's reference_image: JPEG, PNG, BMP, WEBP)
    refuses a picture in another one (a TIFF was quoted and sent) before it is priced, saying how to convert it."""
    spec = CATALOG.get(model_id)
    formats = tuple(spec.fields[name].media.formats)
    left_out = next((fmt for fmt in PICTURES if fmt not in formats), None)
    if left_out is None:
        pytest.skip(f"{model_id}'s {name} takes every picture format made here")
    Image.new("RGB", (1200, 1000), (9, 90, 9)).save(tmp_path / f"input.{left_out}", PICTURES[left_out])
    asked: list[str] = []
    async with connect(elicitation=answering(seen=asked)) as client:
        quoted = await client.call_tool("estimate_cost", request(spec, name, f"input.{left_out}"))
        result = await client.call_tool(_tool(spec), request(spec, name, f"input.{left_out}"))
    for refused in (quoted, result):
        text = text_of(refused)
        assert refused.is_error and argument_name(spec, name) in text and f"input.{left_out}" in text, text
        assert f"takes {formats_text(formats)} only" in text and "Save it again as" in text, text
    assert asked == []
    await _nothing_sent(controls)


@eras_in_turn(("model_id", "name"), OPAQUE)
async def test_a_transparent_picture_goes_to_a_field_without_transparency_flattened_onto_white(
    connect, controls, tmp_path, model_id, name
):
    """Every field whose data says it takes no transparency: a picture with transparent pixels is quoted as
    flattened onto white, naming the field, and what the create is given there is that picture without an alpha
    channel, white where it was transparent."""
    spec = CATALOG.get(model_id)
    logo = Image.new("RGBA", (1200, 1000), (255, 0, 255, 0))  # transparent, its hidden colour a loud magenta
    logo.paste((20, 20, 200, 255), (300, 250, 900, 750))
    logo.save(tmp_path / "logo.png")
    Image.new("RGB", (1200, 1000), (9, 90, 9)).save(tmp_path / "before.jpg")  # an opaque frame before it, if any
    framed = spec.images is not None and name in spec.images.to
    given = ["before.jpg"] * spec.images.to.index(name) + ["logo.png"] if framed else "logo.png"
    said = f"flattened onto white, because {model_id}'s {name} takes no transparency"
    async with connect(elicitation=answering()) as client:
        quoted = await client.call_tool("estimate_cost", request(spec, name, given))
        made = await client.call_tool(_tool(spec), {**request(spec, name, given), "wait_seconds": 0})
    assert not quoted.is_error and said in text_of(quoted), text_of(quoted)
    assert not made.is_error and said in text_of(made), text_of(made)
    [create] = await controls.creates()
    given = create["body"]["input"][name]
    [link] = given[-1:] if isinstance(given, list) else [given]
    sent = Image.open(io.BytesIO((await controls.http.get(link)).content))
    assert sent.format == "JPEG" and sent.mode == "RGB" and sent.size == (1200, 1000)
    assert all(abs(a - b) <= 3 for a, b in zip(sent.getpixel((5, 5)), (255, 255, 255), strict=True))
    assert all(abs(a - b) <= 3 for a, b in zip(sent.getpixel((600, 500)), (20, 20, 200), strict=True))
