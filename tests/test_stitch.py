"""Stitching clips with the real ffmpeg from imageio-ffmpeg (a dev dependency), on tiny clips it generates itself."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import anyio
import pytest

from kie_mcp.media import stitch as stitch_mod
from kie_mcp.media.stitch import (
    Caption,
    StitchError,
    concat_list_line,
    ffmpeg_capabilities,
    find_ffmpeg,
    parse_probe,
    stitch,
)


def _make(
    ffmpeg: str, path: Path, *, size: str, rate: int, audio: bool, source: str = "testsrc", seconds: int = 1
) -> Path:
    command = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
    command += ["-f", "lavfi", "-i", f"{source}=size={size}:rate={rate}:duration={seconds}"]
    if audio:
        command += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}", "-c:a", "aac"]
    command += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-movflags", "+faststart"]
    subprocess.run([*command, "-shortest", str(path)], check=True, capture_output=True)
    return path


@pytest.fixture(scope="module")
def ffmpeg() -> str:
    return find_ffmpeg()


@pytest.fixture(scope="module")
def clips(ffmpeg: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """a, b: 320x240 24 fps with audio (same format); c: 256x256 30 fps, no audio; corrupt: valid header, bad frames."""
    folder = tmp_path_factory.mktemp("clips")
    made = {
        "a": _make(ffmpeg, folder / "a.mp4", size="320x240", rate=24, audio=True),
        "b": _make(ffmpeg, folder / "b.mp4", size="320x240", rate=24, audio=True, source="testsrc2"),
        "c": _make(ffmpeg, folder / "c.mp4", size="256x256", rate=30, audio=False, source="testsrc2"),
    }
    data = bytearray(made["a"].read_bytes())
    mdat = data.find(b"mdat")  # moov sits before mdat (faststart), so the file still probes as a video
    data[mdat + 4 :] = bytes(len(data) - mdat - 4)
    made["corrupt"] = folder / "corrupt.mp4"
    made["corrupt"].write_bytes(bytes(data))
    return made


def _info(ffmpeg: str, path: Path) -> str:
    return subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-i", str(path)], check=False, capture_output=True, text=True
    ).stderr


def _duration(ffmpeg: str, path: Path) -> float:
    """The file's duration, read independently of the module under test."""
    match = re.search(r"Duration: (\d+):(\d+):(\d+\.\d+)", _info(ffmpeg, path))
    assert match, _info(ffmpeg, path)
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _bottom_band(ffmpeg: str, path: Path, at: float, width: int = 320, height: int = 240) -> bytes:
    """Grey pixels of the bottom quarter of the frame shown at ``at`` seconds (where captions go)."""
    grab = ["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-s", f"{width}x{height}", "-"]
    frame = subprocess.run(
        [ffmpeg, "-v", "error", "-ss", str(at), "-i", str(path), *grab],
        capture_output=True,
        check=True,
    ).stdout
    assert len(frame) == width * height
    return frame[width * height * 3 // 4 :]


def _difference(one: bytes, other: bytes) -> float:
    return sum(abs(x - y) for x, y in zip(one, other, strict=True)) / len(one)


def _libass_has_fonts_for(ffmpeg: str, text: str, folder: Path) -> bool:
    """Whether libass finds a font for every character of ``text`` on this computer, asked of ffmpeg directly (not of
    the module under test): it warns "failed to find any fallback with glyph" for each one it cannot draw."""
    (folder / "font-check.srt").write_text(f"1\n00:00:00,000 --> 00:00:01,000\n{text}\n", encoding="utf-8")
    command = [ffmpeg, "-hide_banner", "-nostdin", "-v", "warning", "-f", "lavfi", "-i", "color=size=64x64:rate=1:d=1"]
    command += ["-vf", "subtitles=font-check.srt", "-f", "null", "-"]
    report = subprocess.run(command, cwd=folder, capture_output=True, text=True, check=True).stderr
    return "failed to find any fallback" not in report


async def _skip_without_libass(ffmpeg: str) -> None:
    if not (await ffmpeg_capabilities(ffmpeg)).subtitles:
        pytest.skip("this ffmpeg has no libass subtitles filter")


def _leftovers(folder: Path) -> list[str]:
    """The join's temporary files in ``folder`` (named as downloads' are: ``.<name>.part-<owner>``)."""
    return sorted(p.name for p in folder.iterdir() if ".part" in p.name)


def _processes_writing_to(folder: Path) -> list[str]:
    """Command lines of live ffmpeg processes that mention ``folder`` (Linux /proc; empty elsewhere)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(folder) in text and "ffmpeg" in text:
            found.append(text)
    return found


# --------------------------------------------------------------------------------------------------------- joining


async def test_same_format_clips_are_joined_by_stream_copy(ffmpeg: str, clips: dict[str, Path], tmp_path: Path):
    output = tmp_path / "joined.mp4"
    result = await stitch([clips["a"], clips["b"], clips["a"]], output)

    assert result.path == output
    assert not result.reencoded
    assert "stream copy" in result.note
    assert result.inputs == [clips["a"].resolve(), clips["b"].resolve(), clips["a"].resolve()]
    assert _duration(ffmpeg, output) == pytest.approx(3.0, abs=0.15)
    assert result.duration == pytest.approx(3.0, abs=0.15)
    info = _info(ffmpeg, output)
    assert re.search(r"Video: h264.*320x240", info)
    assert "Audio: aac" in info
    assert _leftovers(tmp_path) == []


async def test_mixed_formats_are_reencoded_at_the_first_clips_size(ffmpeg: str, clips: dict[str, Path], tmp_path: Path):
    output = tmp_path / "mixed.mp4"
    result = await stitch([clips["a"], clips["c"]], output)

    assert result.reencoded
    assert "resolution" in result.note
    assert "silence added" in result.note and "c.mp4" in result.note
    info = _info(ffmpeg, output)
    assert re.search(r"Video: h264.*320x240", info), info
    assert "Audio: aac" in info  # the clip without audio got silence, so the whole output has sound
    assert _duration(ffmpeg, output) == pytest.approx(2.0, abs=0.15)


async def test_clips_without_any_audio_give_a_silent_video(ffmpeg: str, clips: dict[str, Path], tmp_path: Path):
    output = tmp_path / "silent.mkv"
    result = await stitch([clips["c"], clips["a"]], output)

    assert result.reencoded
    info = _info(ffmpeg, output)
    assert re.search(r"Video: h264.*256x256", info), info
    assert "Audio:" in info  # clip a has audio, so c got silence
    silent_only = tmp_path / "only-silent.mp4"
    await stitch([clips["c"], clips["c"]], silent_only)
    assert "Audio:" not in _info(ffmpeg, silent_only)


async def test_paths_with_spaces_and_quotes(ffmpeg: str, clips: dict[str, Path], tmp_path: Path):
    folder = tmp_path / "it's my folder"
    folder.mkdir()
    first = folder / "clip 'one'.mp4"
    second = folder / 'clip "two" $HOME; rm.mp4'
    first.write_bytes(clips["a"].read_bytes())
    second.write_bytes(clips["b"].read_bytes())

    copied = await stitch([first, second], folder / "joined 'final'.mp4")
    assert not copied.reencoded
    assert _duration(ffmpeg, copied.path) == pytest.approx(2.0, abs=0.15)

    captioned = await stitch([first], folder / "with 'captions'.mp4", captions=[Caption(0.1, 0.5, "it's: 100%")])
    assert captioned.reencoded
    assert captioned.path.exists()


def test_concat_list_escapes_single_quotes():
    assert concat_list_line(Path("/clips/it's here.mp4")) == "file '/clips/it'\\''s here.mp4'"


# --------------------------------------------------------------------------------------------------------- captions


async def test_captions_are_burned_in_or_refused_clearly(ffmpeg: str, clips: dict[str, Path], tmp_path: Path):
    caps = await ffmpeg_capabilities(ffmpeg)
    output = tmp_path / "captioned.mp4"
    captions = [Caption(0.2, 0.6, "CAPTIONS ARE BURNED IN HERE"), Caption(1.2, 1.8, "Second clip\nsecond line")]
    if not (caps.subtitles or caps.drawtext):
        with pytest.raises(StitchError, match="libass"):
            await stitch([clips["a"], clips["c"]], output, captions=captions)
        assert not output.exists()
        return

    result = await stitch([clips["a"], clips["c"]], output, captions=captions)
    assert result.reencoded
    assert "caption" in result.note
    assert _duration(ffmpeg, output) == pytest.approx(2.0, abs=0.15)
    # Where a caption shows, the bottom of the frame differs a lot from the source; elsewhere it barely does.
    assert _difference(_bottom_band(ffmpeg, output, 0.4), _bottom_band(ffmpeg, clips["a"], 0.4)) > 3
    assert _difference(_bottom_band(ffmpeg, output, 0.8), _bottom_band(ffmpeg, clips["a"], 0.8)) < 2


async def test_captions_fall_back_to_drawtext_without_libass(
    ffmpeg: str, clips: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    real = await ffmpeg_capabilities(ffmpeg)
    if not real.drawtext:
        pytest.skip("this ffmpeg has no drawtext filter")

    async def without_libass(exe: str) -> stitch_mod.Capabilities:
        return replace(real, filters=real.filters - {"subtitles", "ass"})

    monkeypatch.setattr(stitch_mod, "ffmpeg_capabilities", without_libass)
    output = tmp_path / "drawtext.mp4"
    result = await stitch([clips["a"]], output, captions=[Caption(0.2, 0.6, "100% {odd} 'text': here")])
    assert "drawtext" in result.note
    assert _difference(_bottom_band(ffmpeg, output, 0.4), _bottom_band(ffmpeg, clips["a"], 0.4)) > 3
    assert _difference(_bottom_band(ffmpeg, output, 0.8), _bottom_band(ffmpeg, clips["a"], 0.8)) < 2


def _frame(ffmpeg: str, path: Path, at: float, width: int, height: int) -> bytes:
    """The grey pixels of the frame shown at ``at`` seconds, row by row."""
    grab = ["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-s", f"{width}x{height}", "-"]
    command = [ffmpeg, "-v", "error", "-ss", str(at), "-i", str(path), *grab]
    frame = subprocess.run(command, capture_output=True, check=True).stdout
    assert len(frame) == width * height
    return frame


def _changed_columns(one: bytes, other: bytes, width: int, rows: range) -> list[int]:
    """The columns where ``one`` differs from ``other`` in ``rows`` (more than codec noise)."""
    return [
        x for x in range(width) if sum(abs(one[y * width + x] - other[y * width + x]) for y in rows) / len(rows) > 6
    ]


@pytest.mark.parametrize("centred", [True, False], ids=["text_align", "ffmpeg-before-6.1"])
async def test_a_long_caption_without_libass_is_wrapped_inside_a_portrait_frame(
    ffmpeg: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, centred: bool
):
    """drawtext does not wrap: a long caption on a 9:16 join ran off both sides of the frame. Wrapped to the frame's
    width less libass's side margins, it is drawn on several lines with the frame's edges left as they were, its
    lines centred where drawtext can (``text_align``), a block of them where it cannot."""
    real = await ffmpeg_capabilities(ffmpeg)
    if not real.drawtext:
        pytest.skip("this ffmpeg has no drawtext filter")
    if centred and "text_align" not in real.drawtext_options:
        pytest.skip("this ffmpeg's drawtext cannot centre lines (text_align, ffmpeg 6.1+)")
    options = real.drawtext_options if centred else real.drawtext_options - {"text_align"}

    async def without_libass(exe: str) -> stitch_mod.Capabilities:
        return replace(real, filters=real.filters - {"subtitles", "ass"}, drawtext_options=options)

    monkeypatch.setattr(stitch_mod, "ffmpeg_capabilities", without_libass)
    clip = _make(ffmpeg, tmp_path / "portrait.mp4", size="180x320", rate=24, audio=False)
    caption = "Fresh cold brew poured over ice, every single morning at the corner cafe downtown"
    output = tmp_path / "wrapped.mp4"
    result = await stitch([clip], output, captions=[Caption(0.2, 0.8, caption)])
    assert "drawtext" in result.note and "wrapped" in result.note
    before, after = _frame(ffmpeg, clip, 0.4, 180, 320), _frame(ffmpeg, output, 0.4, 180, 320)
    low = range(320 // 3, 320)  # the captions sit in the lower part of a portrait frame
    changed = _changed_columns(after, before, 180, low)
    assert changed and changed[0] >= 4 and changed[-1] <= 175, changed  # inside the frame, clear of both edges
    rows = [y for y in low if sum(abs(after[y * 180 + x] - before[y * 180 + x]) for x in range(180)) / 180 > 6]
    assert rows[-1] - rows[0] > 3 * (320 // 16), rows  # several lines of a 20 px font, not one
    assert _difference(_frame(ffmpeg, output, 0.9, 180, 320), _frame(ffmpeg, clip, 0.9, 180, 320)) < 2


@pytest.mark.parametrize(
    "text",
    [
        "Fresh cold brew poured over ice, every single morning at the corner cafe downtown",
        "supercalifragilisticexpialidocious and antidisestablishmentarianism",
        "今天的咖啡特别好喝，我们一起去吧。真的非常好喝！",
        "これは、とても長いキャプションです。ちゃんと折り返されるでしょうか？",
        "First line\nand a second line that runs on for quite a while",
    ],
)
def test_a_caption_wrapped_for_drawtext_keeps_every_character_within_the_width(text: str):
    """Each line fits the width (by the glyph-width estimate); nothing is lost but the spaces the lines break at; CJK
    text breaks between characters, never before closing punctuation or small kana."""
    limit = 7.9  # a 180 px wide portrait frame at drawtext's 20 px font, less the margins and the box border
    lines = stitch_mod.wrap_caption(text, limit)
    assert len(lines) > 1
    assert all(stitch_mod.text_ems(line) <= limit for line in lines), lines
    assert "".join(lines).replace(" ", "") == text.replace(" ", "").replace("\n", "")
    assert not any(line[0] in "，。！？、ゃょっー" for line in lines), lines


@pytest.mark.parametrize(
    "text",
    [
        "Introducing our extraordinary new collection",
        "Unbelievable results in seven days, guaranteed",
        "Download the app today and save twenty percent on everything",
    ],
)
@pytest.mark.parametrize("limit", [7.9, 12.0, 26.5])  # portrait 180 px and 1080 px are about 7.9 em; landscape 26.5
def test_a_word_that_fits_a_line_is_never_cut_to_even_the_lines(text: str, limit: float):
    """The review: evening out the lines tried widths narrower than a word, so "Introducing our extraordinary new
    collection" was drawn as "Introduci / ng our / extraordin / ary new / collection"."""
    lines = stitch_mod.wrap_caption(text, limit)
    assert [word for line in lines for word in line.split()] == text.split(), lines


CLUSTERED = {
    "thai": "สวัสดีครับยินดีต้อนรับสู่การเปิดตัวผลิตภัณฑ์ใหม่ของเราซึ่งทำด้วยมือทั้งหมด",
    "hindi": "अंतर्राष्ट्रीयकरणविशेषज्ञोंकीप्रतिक्रियाएँमहत्वपूर्णहैं",
    "family-emoji": "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466" * 6,
    "flags": "🇺🇸🇬🇧🇫🇷🇩🇪🇯🇵🇰🇷🇮🇹🇪🇸🇨🇦🇧🇷🇲🇽🇮🇳",
    "skin-tones": "\U0001f44d\U0001f3fd" * 12,
}


@pytest.mark.parametrize("text", CLUSTERED.values(), ids=CLUSTERED.keys())
@pytest.mark.parametrize("limit", [4.0, 7.9])
def test_a_caption_is_never_cut_inside_a_character_as_it_is_read(text: str, limit: float):
    """The review: a caption with no space (Thai), a long Hindi word or a row of emoji was cut between code points,
    so a line started with a Thai or Devanagari vowel sign, ended with a joiner, or split a flag or a skin tone."""
    import unicodedata

    lines = stitch_mod.wrap_caption(text, limit)
    assert len(lines) > 1 and "".join(lines) == text
    for line in lines:
        first, last = line[0], line[-1]
        assert not unicodedata.category(first).startswith("M"), lines
        assert first != "\u200d" and last != "\u200d" and not 0x1F3FB <= ord(first) <= 0x1F3FF, lines
        assert last not in "\u0e40\u0e41\u0e42\u0e43\u0e44", lines  # a Thai vowel written before its consonant
        assert unicodedata.combining(last) != 9, lines  # a virama joins the next consonant
    if text == CLUSTERED["flags"]:
        assert all(len(line) % 2 == 0 for line in lines), lines  # each flag is two regional indicators


async def test_captions_without_libass_or_drawtext_are_refused(
    ffmpeg: str, clips: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    real = await ffmpeg_capabilities(ffmpeg)

    async def bare(exe: str) -> stitch_mod.Capabilities:
        return replace(real, filters=real.filters - {"subtitles", "ass", "drawtext"})

    monkeypatch.setattr(stitch_mod, "ffmpeg_capabilities", bare)
    output = tmp_path / "never.mp4"
    with pytest.raises(StitchError, match=r"Captions need an ffmpeg with libass") as error:
        await stitch([clips["a"], clips["b"]], output, captions=[Caption(0, 1, "hi")])
    assert "kie-mcp[video]" in str(error.value)
    assert not output.exists()
    assert _leftovers(tmp_path) == []


async def test_caption_characters_no_font_has_are_named_and_the_video_is_kept(
    ffmpeg: str, clips: dict[str, Path], tmp_path: Path
):
    await _skip_without_libass(ffmpeg)
    private = "\U0010fffd"  # a private-use character: no font made for text has it
    if _libass_has_fonts_for(ffmpeg, private, tmp_path):
        pytest.skip("a font on this computer maps the private-use character U+10FFFD")
    output = tmp_path / "boxes.mp4"
    captions = [Caption(0.1, 0.4, "Fresh coffee"), Caption(0.5, 0.9, f"Today {private} only")]
    result = await stitch([clips["a"]], output, captions=captions)

    assert "could not be drawn" in result.note
    assert "U+10FFFD" in result.note
    assert "(caption 2)" in result.note  # where the boxes are
    assert "install a font that has them, then stitch again" in result.note
    assert "the video was saved with empty boxes" in result.note  # what the kept file holds
    assert result.path == output and output.exists()
    assert result.missing_glyphs == (private,)


@pytest.mark.parametrize(
    ("text", "undrawn", "advice"),
    [
        ("新鲜咖啡", "新鲜咖啡", ["Noto Sans CJK", "sudo apt install fonts-noto-cjk", "macOS and Windows"]),
        ("ताज़ी कॉफ़ी", "ताज़ी", ["Noto Sans Devanagari", "fonts-noto-core"]),
        ("Coffee 🍩", "🍩", ["Noto Emoji or Symbola", "fonts-symbola", "cannot draw colour emoji"]),
    ],
    ids=["chinese", "hindi", "emoji"],
)
async def test_captions_in_a_script_no_font_has_name_the_font_to_install(
    ffmpeg: str, clips: dict[str, Path], tmp_path: Path, text: str, undrawn: str, advice: list[str]
):
    await _skip_without_libass(ffmpeg)
    if _libass_has_fonts_for(ffmpeg, text, tmp_path):
        pytest.skip(f"this computer has a font for {text!r}, so nothing is left undrawn to report")
    result = await stitch([clips["a"]], tmp_path / "script.mp4", captions=[Caption(0.1, 0.9, text)])

    assert f"no font on this computer has {undrawn}" in result.note
    for words in advice:
        assert words in result.note
    assert result.path.exists()


@pytest.mark.parametrize(
    "text",
    ["Café crème, naïve façade: 100% «fresh» — all day", "قهوة طازجة طوال اليوم", "קפה טרי כל היום"],
    ids=["latin", "arabic", "hebrew"],
)
async def test_captions_every_font_is_found_for_give_no_missing_font_warning(
    ffmpeg: str, clips: dict[str, Path], tmp_path: Path, text: str
):
    await _skip_without_libass(ffmpeg)
    if not _libass_has_fonts_for(ffmpeg, text, tmp_path):
        pytest.skip(f"this computer has no font for some of {text!r}")
    result = await stitch([clips["a"]], tmp_path / "drawn.mp4", captions=[Caption(0.1, 0.9, text)])

    assert "could not be drawn" not in result.note
    assert "install" not in result.note
    assert result.missing_glyphs == ()  # checked, and every character had a font


@pytest.mark.parametrize(
    ("caption", "message"),
    [
        (Caption(1.0, 1.0, "x"), "0 <= start < end"),
        (Caption(-1, 1, "x"), "0 <= start < end"),
        (Caption(0, 1, " \n"), "no text"),
    ],
)
async def test_bad_captions_are_refused(clips: dict[str, Path], tmp_path: Path, caption: Caption, message: str):
    with pytest.raises(StitchError, match=message):
        await stitch([clips["a"]], tmp_path / "out.mp4", captions=[caption])


# --------------------------------------------------------------------------------------------------------- refusals


async def test_missing_input_is_named(clips: dict[str, Path], tmp_path: Path):
    missing = tmp_path / "no such clip.mp4"
    with pytest.raises(StitchError, match="not found") as error:
        await stitch([clips["a"], missing], tmp_path / "out.mp4")
    assert str(missing) in str(error.value)


@pytest.mark.parametrize("kind", ["text", "image", "audio", "garbage"])
async def test_non_video_input_is_refused(ffmpeg: str, clips: dict[str, Path], tmp_path: Path, kind: str):
    if kind == "text":
        bad = tmp_path / "notes.txt"
        bad.write_text("hello world\n" * 200)  # ffmpeg's tty demuxer would read this as a "video"
    elif kind == "garbage":
        bad = tmp_path / "fake.mp4"
        bad.write_bytes(b"\x00not really an mp4" * 50)
    else:
        bad = tmp_path / ("still.png" if kind == "image" else "sound.m4a")
        source = ["-f", "lavfi", "-i", "testsrc=size=64x64", "-frames:v", "1"]
        if kind == "audio":
            source = ["-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac"]
        await anyio.run_process([ffmpeg, "-v", "error", "-y", *source, str(bad)])
    output = tmp_path / "out.mp4"
    with pytest.raises(StitchError, match="not a video") as error:
        await stitch([clips["a"], bad], output)
    assert str(bad) in str(error.value)
    assert not output.exists()


async def test_argument_checks(clips: dict[str, Path], tmp_path: Path):
    with pytest.raises(StitchError, match="at least two"):
        await stitch([], tmp_path / "out.mp4")
    with pytest.raises(StitchError, match="at least two"):
        await stitch([clips["a"]], tmp_path / "out.mp4")
    with pytest.raises(StitchError, match="Output folder does not exist"):
        await stitch([clips["a"], clips["b"]], tmp_path / "nowhere" / "out.mp4")
    with pytest.raises(StitchError, match=r"must end in one of"):
        await stitch([clips["a"], clips["b"]], tmp_path / "out.gif")
    with pytest.raises(StitchError, match="also one of the inputs"):
        await stitch([clips["a"], clips["b"]], clips["b"])


# --------------------------------------------------------------------------------------------------------- failures


async def test_ffmpeg_failure_leaves_no_output_and_reports_stderr(clips: dict[str, Path], tmp_path: Path):
    output = tmp_path / "out.mp4"
    with pytest.raises(StitchError, match=r"ffmpeg failed \(exit code") as error:
        await stitch([clips["corrupt"], clips["c"]], output)
    assert "Invalid data" in str(error.value) or "Nothing was written" in str(error.value)
    assert not output.exists()
    assert _leftovers(tmp_path) == []

    # Captions make ffmpeg log warnings too (libass's missing fonts among them); the error still shows errors only.
    with pytest.raises(StitchError, match=r"ffmpeg failed \(exit code") as error:
        await stitch([clips["corrupt"], clips["c"]], output, captions=[Caption(0, 2, "新 \U0010fffd")])
    assert "Invalid data" in str(error.value) or "Nothing was written" in str(error.value)
    for leaked in ("fontselect", "[warning]", "[error]", "[fatal]"):
        assert leaked not in str(error.value)
    assert not output.exists()
    assert _leftovers(tmp_path) == []

    output.write_bytes(b"an earlier result")  # an existing file survives a failed attempt untouched
    with pytest.raises(StitchError):
        await stitch([clips["corrupt"], clips["c"]], output)
    assert output.read_bytes() == b"an earlier result"
    assert _leftovers(tmp_path) == []


async def test_timeout_stops_ffmpeg_and_cleans_up(clips: dict[str, Path], tmp_path: Path):
    output = tmp_path / "out.mp4"
    with pytest.raises(StitchError, match="did not finish within"):
        await stitch([clips["a"], clips["c"]], output, timeout=0.001)
    assert not output.exists()
    assert _leftovers(tmp_path) == []
    assert _processes_writing_to(tmp_path) == []  # ffmpeg was killed and reaped, not left running


async def test_cancellation_mid_encode_cleans_up(clips: dict[str, Path], tmp_path: Path):
    output = tmp_path / "out.mp4"
    finished = []

    async def run() -> None:
        finished.append(await stitch([clips["a"], clips["c"]], output, captions=[Caption(0, 2, "cancel me")]))

    async with anyio.create_task_group() as group:
        group.start_soon(run)
        with anyio.fail_after(10):
            # Poll the folder: once the temporary output exists, ffmpeg is about to run or running.
            while not _leftovers(tmp_path):  # noqa: ASYNC110
                await anyio.sleep(0.001)
        group.cancel_scope.cancel()
    assert finished == []
    assert not output.exists()
    assert _leftovers(tmp_path) == []
    assert _processes_writing_to(tmp_path) == []


# --------------------------------------------------------------------------------------------------------- ffmpeg


def test_find_ffmpeg_explains_how_to_install(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # the import fails as if the extra were absent
    monkeypatch.setattr(stitch_mod.shutil, "which", lambda name: None)
    with pytest.raises(StitchError) as error:
        find_ffmpeg()
    message = str(error.value)
    assert "uv tool install '/path/to/kie-mcp[video]'" in message  # kie-mcp is not on PyPI yet: no pip/uvx line
    assert "uv sync --extra video" in message
    assert "pip install" not in message and "uvx" not in message
    assert "PATH" in message


async def test_stitch_without_ffmpeg_fails_clearly(clips: dict[str, Path], tmp_path: Path, monkeypatch):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)
    monkeypatch.setattr(stitch_mod.shutil, "which", lambda name: None)
    with pytest.raises(StitchError, match=r"kie-mcp\[video\]"):
        await stitch([clips["a"], clips["b"]], tmp_path / "out.mp4")


def test_find_ffmpeg_falls_back_to_path(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)
    monkeypatch.setattr(stitch_mod.shutil, "which", lambda name: "/usr/local/bin/ffmpeg" if name == "ffmpeg" else None)
    assert find_ffmpeg() == "/usr/local/bin/ffmpeg"


def test_bundled_ffmpeg_is_preferred(ffmpeg: str):
    import imageio_ffmpeg

    assert ffmpeg == imageio_ffmpeg.get_ffmpeg_exe()


async def test_bundled_ffmpeg_can_do_everything(ffmpeg: str):
    caps = await ffmpeg_capabilities(ffmpeg)
    assert {"concat", "scale", "pad", "anullsrc", "fps"} <= caps.filters
    assert "aac" in caps.encoders


# --------------------------------------------------------------------------------------------------------- probing


def test_probe_reads_rotation_and_ignores_cover_art():
    report = """Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'phone.mov':
  Duration: 00:00:08.00, start: 0.000000, bitrate: 9000 kb/s
  Stream #0:0[0x1](und): Video: h264 (High) (avc1 / 0x31637661), yuv420p(tv, bt709, progressive), 1920x1080 [SAR 1:1 DAR 16:9], 8000 kb/s, 29.97 fps, 29.97 tbr, 600 tbn (default)
      Side data:
        displaymatrix: rotation of -90.00 degrees
  Stream #0:1[0x2](und): Audio: aac (LC) (mp4a / 0x6134706D), 48000 Hz, stereo, fltp, 192 kb/s (default)
"""  # noqa: E501
    probed = parse_probe(Path("phone.mov"), report)
    assert (probed.codec, probed.profile, probed.pix_fmt) == ("h264", "High", "yuv420p")
    assert probed.display_size == (1080, 1920)
    assert probed.fps == "29.97"
    assert probed.duration == 8.0
    assert probed.audio is not None and (probed.audio.sample_rate, probed.audio.channels) == (48000, "stereo")

    song = """Input #0, mp3, from 'song.mp3':
  Duration: 00:03:00.00, start: 0.025057, bitrate: 320 kb/s
  Stream #0:0: Audio: mp3 (mp3float), 44100 Hz, stereo, fltp, 320 kb/s
  Stream #0:1: Video: mjpeg (Baseline), yuvj420p(pc, bt470bg/unknown/unknown), 500x500, 90k tbr, 90k tbn (attached pic)
"""
    with pytest.raises(StitchError, match="audio only"):
        parse_probe(Path("song.mp3"), song)


def test_a_rotate_tag_turns_a_clip_only_in_the_report_of_an_ffmpeg_that_turned_by_it():
    """ffmpeg before 4.0 (no level tags: an untagged report) turned a video by its stream's ``rotate`` tag when it is
    a bare number; later ones turn it by its display matrix alone, so there a tag is words."""
    report = """Input #0, matroska,webm, from 'phone.mkv':
  Duration: 00:00:02.00, start: 0.000000, bitrate: 63 kb/s
  Stream #0:0: Video: h264 (High), yuv420p(tv, progressive), 640x360 [SAR 1:1 DAR 16:9], 24 fps, 24 tbr, 1k tbn
    Metadata:
      ROTATE          : {value}
"""
    old = {value: parse_probe(Path("phone.mkv"), report.format(value=value)).rotation for value in ("90", "90 deg")}
    assert old == {"90": 90, "90 deg": 0}
    tagged = "".join(f"[info] {line}\n" for line in report.format(value="90").splitlines())
    assert parse_probe(Path("phone.mkv"), tagged, tagged=True).rotation == 0


async def test_a_server_stopped_by_a_signal_ends_its_join_and_leaves_no_file(clips: dict[str, Path], tmp_path: Path):
    """SIGTERM (a host stopping the server) ended the process at once; its ffmpeg, a process of its own, wrote on,
    and the half-written join stayed in outputs/ for good. ``stop_all``, which the signal handler calls, kills it
    and removes the file."""
    output = tmp_path / "out.mp4"
    failed: list[BaseException] = []

    async def run() -> None:
        try:
            await stitch([clips["a"], clips["c"]], output, captions=[Caption(0, 2, "stop me")])
        except StitchError as err:
            failed.append(err)

    async with anyio.create_task_group() as group:
        group.start_soon(run)
        with anyio.fail_after(10):
            while not _leftovers(tmp_path):  # noqa: ASYNC110 - ffmpeg is about to run or running
                await anyio.sleep(0.001)
        stitch_mod.stop_all()
        assert _leftovers(tmp_path) == []  # removed at once, before the process exits
    assert not output.exists()
    assert _processes_writing_to(tmp_path) == []
    assert failed and "stopped by signal" in str(failed[0]), failed


async def test_a_join_shorter_than_its_clips_says_a_clip_ends_early(ffmpeg: str, tmp_path: Path):
    """A clip cut short (its header still promising 4 s, its footage ending sooner, as a download cut off mid-way
    leaves it) was joined "losslessly" into a video seconds short, reported as complete. The note now warns."""
    whole = _make(ffmpeg, tmp_path / "whole.mp4", size="64x64", rate=10, audio=False)
    made = [
        _make(ffmpeg, tmp_path / name, size="64x64", rate=10, audio=False, seconds=4) for name in ("1.mp4", "2.mp4")
    ]
    data = made[1].read_bytes()
    made[1].write_bytes(data[: int(len(data) * 0.4)])  # moov first: it still probes as 4 s
    fine = await stitch([made[0], whole], tmp_path / "fine.mp4")
    short = await stitch(made, tmp_path / "short.mp4")
    assert "WARNING" not in fine.note, fine.note
    assert short.duration is not None and short.duration < 7
    assert "WARNING: the joined video is" in short.note and "shorter than its clips together" in short.note


def test_a_caption_backslash_libass_reads_as_a_break_or_a_space_is_named():
    """The review: libass shows a backslash before n or N as a line break and before h as a space ("C:\\new" as
    "C:" and "ew"), which the answer's notes did not say, though they named the other text libass changes."""
    notes = stitch_mod._libass_changes([Caption(0, 1, "C:\\new\\Nfolder \\h x"), Caption(1, 2, "plain, a\\b")])
    assert len(notes) == 1 and "caption(s) 1," in notes[0] and "line break" in notes[0], notes
