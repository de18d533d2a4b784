"""Caption characters no font on this computer has: libass draws each as an empty box ("tofu") and says so only in
a warning (``fontselect: failed to find any fallback with glyph 0x...``), repeated on every frame. ``CaptionLog``
reads those warnings as ffmpeg prints them, keeping only its errors for messages; ``undrawn`` places the characters
in the captions, and ``font_advice`` says which fonts to install (one per script: libass falls back to any
installed font that has a character)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# A log line at ``-loglevel level+warning``: up to two "[context @ address] " parts, then "[level] ", then the text.
_LEVEL_TAG = re.compile(rb"^((?:\[[^\]]*\] ){0,2})\[(panic|fatal|error|warning|info|verbose|debug|trace)\] ")
_ERROR_LEVELS = frozenset({b"panic", b"fatal", b"error"})
# What libass says (a warning) for a character no font on this computer has, on every frame that shows it.
_NO_FONT_FOR = re.compile(rb"fontselect: failed to find any fallback with glyph 0x([0-9A-Fa-f]{1,8})\b")
_SHOWN_MISSING = 10  # characters named in the note; the rest are counted
_EMOJI_BLOCKS = ((0x2600, 0x27BF), (0x2B00, 0x2BFF), (0x1F000, 0x1FAFF))
# Noto Sans CJK's blocks: Hangul Jamo; radicals; CJK punctuation, kana, Bopomofo, Hangul letters and Han (through
# U+9FFF); Hangul extensions and syllables; compatibility ideographs and forms; full-width forms; Han extensions.
_CJK_BLOCKS = (
    (0x1100, 0x11FF), (0x2E80, 0x2FDF), (0x3000, 0x9FFF), (0xA960, 0xA97F), (0xAC00, 0xD7FF), (0xF900, 0xFAFF),
    (0xFE30, 0xFE4F), (0xFF00, 0xFFEF), (0x20000, 0x3FFFF),
)  # fmt: skip
# Scripts with a "Noto Sans <Script>" font in Debian's fonts-noto-core; macOS and Windows come with fonts for them.
_NOTO_CORE_SCRIPTS = frozenset(
    {
        "ARABIC", "ARMENIAN", "BENGALI", "DEVANAGARI", "ETHIOPIC", "GEORGIAN", "GUJARATI", "GURMUKHI", "HEBREW",
        "KANNADA", "KHMER", "LAO", "MALAYALAM", "MYANMAR", "ORIYA", "SINHALA", "TAMIL", "TELUGU", "THAI",
    }
)  # fmt: skip


class CaptionLog:
    """Sieve (see ``stitch._run``) for the stderr of an encode that burns captions with libass at ``-loglevel
    level+warning``.

    Collects the characters libass found no font for (repeated on every frame, so never kept) and keeps only error
    lines, without their level tag: a failure reads as it did at ``-loglevel error``, and no other warning reaches an
    answer."""

    def __init__(self) -> None:
        self.missing: dict[int, None] = {}  # code points, in the order libass met them
        self._in_error = True  # a line before any tagged one (fontconfig's own complaint, say) is kept, as before

    def __call__(self, line: bytes) -> bytes | None:
        tagged = _LEVEL_TAG.match(line)
        if tagged is None:  # a message's next line, or one printed outside ffmpeg's log: goes with the line before
            return line if self._in_error else None
        self._in_error = tagged[2] in _ERROR_LEVELS
        if no_font := _NO_FONT_FOR.search(line, tagged.end()):
            self.missing.setdefault(int(no_font[1], 16))
            return None
        return tagged[1] + line[tagged.end() :] if self._in_error else None


def _invisible(char: str) -> bool:
    """Format characters and variation selectors: never drawn, so a missing glyph for one shows no box."""
    code = ord(char)
    return unicodedata.category(char) == "Cf" or 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF


@dataclass(frozen=True)
class Undrawn:
    """Caption characters no font on this computer has, which libass draws as empty boxes."""

    by_caption: list[tuple[str, ...]]  # each character once, grouped by the first caption holding it, in caption order
    captions: list[int]  # numbers (from 1, in the order given) of the captions that show any

    @property
    def characters(self) -> tuple[str, ...]:
        return tuple(char for group in self.by_caption for char in group)


def undrawn(texts: Sequence[str], code_points: Iterable[int]) -> Undrawn:
    """Where the code points libass reported sit in the captions' ``texts`` (as drawn)."""
    missing = {chr(code) for code in code_points if code <= 0x10FFFF and not _invisible(chr(code))}
    seen: set[str] = set()
    groups: list[tuple[str, ...]] = []
    numbers = []
    for number, text in enumerate(texts, start=1):
        held = [char for char in text if char in missing]
        if held:
            numbers.append(number)
            groups.append(tuple(dict.fromkeys(char for char in held if char not in seen)))
            seen.update(held)
    groups.append(tuple(sorted(missing - seen)))  # reported, yet in no caption as typed
    return Undrawn([group for group in groups if group], numbers)


def _script(char: str) -> str | None:
    """``"emoji"``, ``"CJK"``, a name from ``_NOTO_CORE_SCRIPTS``, or None when no font can be named for ``char``."""
    code = ord(char)
    if any(low <= code <= high for low, high in _EMOJI_BLOCKS):
        return "emoji"
    if any(low <= code <= high for low, high in _CJK_BLOCKS):
        return "CJK"
    script = unicodedata.name(char, "").split(" ")[0]  # "THAI CHARACTER KO KAI", "DEVANAGARI VOWEL SIGN AA"
    return script if script in _NOTO_CORE_SCRIPTS else None


def _shown(characters: Sequence[str]) -> str:
    """Characters as a person can read them: one that draws nothing (private use, unassigned, controls, spaces) by
    its code point."""
    parts = [f" U+{ord(c):04X} " if unicodedata.category(c)[0] in "CZ" else c for c in characters]
    return re.sub(" +", " ", "".join(parts)).strip()


def _sample(undrawn: Undrawn) -> str:
    """At most ``_SHOWN_MISSING`` of the characters, shared out between the captions holding them (the Chinese
    caption alone would hide the Thai one), then how many more there are."""
    groups = undrawn.by_caption
    quota = [0] * len(groups)
    total = min(len(undrawn.characters), _SHOWN_MISSING)
    while sum(quota) < total:
        for index, group in enumerate(groups):
            if quota[index] < len(group) and sum(quota) < total:
                quota[index] += 1
    shown = " ".join(_shown(group[:count]) for group, count in zip(groups, quota, strict=True) if count)
    more = len(undrawn.characters) - total
    return f"{shown} (and {more} more)" if more else shown


def _listed(items: Sequence[str]) -> str:
    """``["a", "b", "c"]`` as ``"a, b and c"``."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _numbered(numbers: Sequence[int]) -> str:
    """``[2, 3, 4, 7]`` as ``"2-4 and 7"``."""
    runs: list[list[int]] = []
    for number in numbers:
        if runs and number == runs[-1][-1] + 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    return _listed([str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in runs])


def font_advice(undrawn: Undrawn) -> str:
    """What the note says when some caption characters had no font: which ones, where, and which fonts to install
    (libass falls back to any installed font that has a character, so one per script is enough)."""
    fonts: dict[str, None] = {}
    packages: dict[str, None] = {}
    bundled: dict[str, None] = {}  # what macOS and Windows come with fonts for
    unnamed = False
    for char in undrawn.characters:
        script = _script(char)
        if script == "emoji":
            fonts["a black-and-white emoji font such as Noto Emoji or Symbola (libass cannot draw colour emoji)"] = None
            packages["fonts-symbola"] = None
        elif script == "CJK":
            fonts["Noto Sans CJK (Chinese, Japanese, Korean)"] = None
            packages["fonts-noto-cjk"] = None
            bundled["Chinese, Japanese, Korean"] = None
        elif script is not None:
            fonts[f"Noto Sans {script.title()}" + (" (Hindi)" if script == "DEVANAGARI" else "")] = None
            packages["fonts-noto-core"] = None
            bundled["Hindi" if script == "DEVANAGARI" else script.title()] = None
        else:
            unnamed = True
    numbers = undrawn.captions
    where = f" (caption{'s' if len(numbers) > 1 else ''} {_numbered(numbers)})" if numbers else ""
    advice = "To draw them, install a font that has them, then stitch again"
    if fonts:
        names = [*fonts, "another font for the rest"] if unnamed else list(fonts)
        advice += f": {', '.join(names)}; on Debian/Ubuntu `sudo apt install {' '.join(packages)}`"
    if bundled:
        advice += f"; macOS and Windows come with fonts for {_listed(list(bundled))}"
    return (
        f"Some caption characters could not be drawn: no font on this computer has {_sample(undrawn)}, so the video "
        f"was saved with empty boxes in their place{where}. {advice}."
    )
