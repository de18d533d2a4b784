"""What a file really is, from its first bytes (magic numbers), never from its name.

A small pure-Python sniffer for the media KIE models take: JPEG, PNG, WebP, GIF, BMP, TIFF and HEIC/HEIF/AVIF
images; MP4/MOV/M4V, WebM/Matroska and AVI videos; MP3, WAV, M4A/AAC, OGG and FLAC audio. Anything else is not
media: ``sniff`` returns None and ``describe`` says in a few words what the bytes look like instead.
"""

from __future__ import annotations

import functools
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

MediaKind = Literal["image", "video", "audio"]
KINDS: tuple[MediaKind, ...] = ("image", "video", "audio")
HEAD_BYTES = 8192  # enough for every signature below, and for telling text from binary


@functools.cache
def pillow() -> Any:
    """Pillow's ``Image`` module, imported on first use (not at start-up), its decompression-bomb warning silenced:
    every caller refuses an image that large from its header before decoding it (a preview past
    ``downloads.PREVIEW_MAX_PIXELS``), reads only its header (and a PNG's structure) to check it past
    ``prepare.DECODE_MAX_PIXELS``, in every format, or sends it unchanged, so the warning Pillow prints on stderr
    for it said nothing anyone could act on."""
    from PIL import Image

    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
    return Image


@dataclass(frozen=True)
class Sniffed:
    kind: MediaKind
    mime: str
    format: str  # short name: jpeg, png, mp4, wav, ...
    label: str  # for messages: "PNG image", "WAV audio"
    extensions: tuple[str, ...]  # the first is the usual one
    also: frozenset[MediaKind] = field(default_factory=frozenset)  # a plain MP4 may hold only sound

    def serves(self, kinds: frozenset[MediaKind]) -> bool:
        """Whether this content fits a field that takes ``kinds``."""
        return self.kind in kinds or bool(self.also & kinds)


def _media(kind: MediaKind, mime: str, fmt: str, label: str, *extensions: str, also: tuple[MediaKind, ...] = ()):
    return Sniffed(kind, mime, fmt, label, extensions, frozenset(also))


JPEG = _media("image", "image/jpeg", "jpeg", "JPEG image", "jpg", "jpeg", "jfif")
PNG = _media("image", "image/png", "png", "PNG image", "png")
WEBP = _media("image", "image/webp", "webp", "WebP image", "webp")
GIF = _media("image", "image/gif", "gif", "GIF image", "gif")
BMP = _media("image", "image/bmp", "bmp", "BMP image", "bmp")
TIFF = _media("image", "image/tiff", "tiff", "TIFF image", "tif", "tiff")
HEIC = _media("image", "image/heic", "heic", "HEIC image", "heic")
HEIF = _media("image", "image/heif", "heif", "HEIF image", "heif", "heic")
AVIF = _media("image", "image/avif", "avif", "AVIF image", "avif")
MP4 = _media("video", "video/mp4", "mp4", "MP4 video", "mp4", also=("audio",))
MOV = _media("video", "video/quicktime", "mov", "QuickTime video", "mov")
M4V = _media("video", "video/x-m4v", "m4v", "M4V video", "m4v", "mp4")
WEBM = _media("video", "video/webm", "webm", "WebM video", "webm")
MKV = _media("video", "video/x-matroska", "mkv", "Matroska video", "mkv")
AVI = _media("video", "video/x-msvideo", "avi", "AVI video", "avi")
OGV = _media("video", "video/ogg", "ogv", "Ogg video", "ogv", "ogg")
MP3 = _media("audio", "audio/mpeg", "mp3", "MP3 audio", "mp3")
WAV = _media("audio", "audio/wav", "wav", "WAV audio", "wav")
M4A = _media("audio", "audio/mp4", "m4a", "M4A audio", "m4a", "mp4")
AAC = _media("audio", "audio/aac", "aac", "AAC audio", "aac")
OGG = _media("audio", "audio/ogg", "ogg", "Ogg audio", "ogg", "oga", "opus")
FLAC = _media("audio", "audio/flac", "flac", "FLAC audio", "flac")

IMAGES = (JPEG, PNG, WEBP, GIF, BMP, TIFF, HEIC, HEIF, AVIF)
PICTURE_EXTENSIONS = frozenset(extension for media in IMAGES for extension in media.extensions)

# ISO base media (ftyp) brands. Anything else with an ftyp box is treated as a plain MP4.
_AVIF_BRANDS = {b"avif", b"avis"}
_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}
_HEIF_BRANDS = {b"mif1", b"msf1", b"mif2"}
_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}
_M4V_BRANDS = {b"M4V ", b"M4VH", b"M4VP"}
_QT_BRANDS = {b"qt  "}
_BMP_HEADERS = {12, 16, 40, 52, 56, 64, 108, 124}  # the DIB header sizes Windows and OS/2 use


def sniff(head: bytes) -> Sniffed | None:
    """The media type of content starting with ``head``, or None when it is no image, video or audio."""
    return _image(head) or _ftyp(head) or _riff(head) or _other_video(head) or _audio(head)


def sniff_file(path: Path) -> Sniffed | None:
    """``sniff`` of a file's first bytes (OSError when it cannot be read)."""
    return sniff(read_head(path))


def read_head(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(HEAD_BYTES)


def _image(head: bytes) -> Sniffed | None:
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith((b"GIF87a", b"GIF89a")) and _gif_continues(head):
        return GIF
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return TIFF
    # "BM" alone is too weak (a text file may start with it): the reserved bytes and DIB size must fit too.
    if head.startswith(b"BM") and head[6:10] == b"\x00" * 4 and int.from_bytes(head[14:18], "little") in _BMP_HEADERS:
        return BMP
    return None


def _gif_continues(head: bytes) -> bool:
    """After the 13-byte header (and the global colour table, when there is one) comes '!' or ','; text that
    merely starts with "GIF89a" does not."""
    if len(head) < 14:
        return False
    offset = 13 + (3 * 2 ** ((head[10] & 7) + 1) if head[10] & 0x80 else 0)
    return offset >= len(head) or head[offset] in (0x21, 0x2C)


def _ftyp(head: bytes) -> Sniffed | None:
    if len(head) < 12 or head[4:8] != b"ftyp":
        return None
    size = int.from_bytes(head[0:4], "big")
    if not 12 <= size <= 4096:  # an ftyp box is small; text that happens to hold "ftyp" gives absurd sizes
        return None
    end = min(len(head), size) if size >= 16 else 16
    major = head[8:12]
    brands = [major] + [head[i : i + 4] for i in range(16, end - 3, 4)]
    for brand in brands:  # the major brand first, then the compatible ones in order
        if brand in _AVIF_BRANDS:
            return AVIF
        if brand in _HEIC_BRANDS:
            return HEIC
        if brand in _AUDIO_BRANDS:
            return M4A
        if brand in _QT_BRANDS:
            return MOV
        if brand in _M4V_BRANDS:
            return M4V
    if any(brand in _HEIF_BRANDS for brand in brands):
        return HEIF
    return MP4


def _riff(head: bytes) -> Sniffed | None:
    if len(head) < 12 or head[0:4] != b"RIFF":
        return None
    return {b"WEBP": WEBP, b"WAVE": WAV, b"AVI ": AVI}.get(head[8:12])


def _other_video(head: bytes) -> Sniffed | None:
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: Matroska or WebM, told apart by the DocType
        return WEBM if b"webm" in head[:64] else MKV
    if head.startswith(b"OggS\x00"):  # capture pattern, then stream structure version 0
        first_page = head[:512]
        return OGV if (b"\x80theora" in first_page or b"fishead" in first_page) else OGG
    return None


def _audio(head: bytes) -> Sniffed | None:
    if head.startswith(b"fLaC") and len(head) >= 8 and head[4] & 0x7F == 0:  # STREAMINFO comes first
        return FLAC
    if head.startswith(b"ID3") and len(head) >= 10 and head[3] in (2, 3, 4) and all(b < 0x80 for b in head[6:10]):
        return MP3  # an ID3v2 tag: version 2-4, then a "syncsafe" size (7 bits a byte)
    if len(head) < 4 or head[0] != 0xFF:
        return None
    b1, b2 = head[1], head[2]
    if b1 & 0xF6 == 0xF0:  # ADTS: a 12-bit sync word and layer 00
        return AAC if (b2 >> 2) & 0x0F < 13 else None
    if b1 & 0xE0 == 0xE0:  # an MPEG audio frame: 11-bit sync, then version, layer, bitrate, sample rate
        version, layer = (b1 >> 3) & 3, (b1 >> 1) & 3
        bitrate, rate = b2 >> 4, (b2 >> 2) & 3
        # Layers III and II only (layer bits 01, 10): FF FE / FF FF, a UTF-16 byte-order mark, would read as layer I.
        if version != 1 and layer in (1, 2) and bitrate not in (0, 15) and rate != 3:
            return MP3
    return None


_BINARY = (
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\x7fELF", "a program (ELF executable)"),
    (b"\x1f\x8b", "gzip-compressed data"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"\x00asm", "WebAssembly"),
)


# A private key of any armour kie-mcp knows, as a file holds one: its opening line at the start of a line (or of a
# quoted string, as a JSON service-account file or a YAML value holds it, or after a byte-order mark) with nothing
# after it on that line, then (past blank lines and ``Name: value`` headers, as PGP, SSH2 and old encrypted PEM keys
# carry) a line of base64 or the END line; whitespace in the opening line as written by hand, and lines broken as
# JSON writes them (``\n``) too. The openings: PEM of any kind (RSA, EC, OPENSSH, ENCRYPTED, PKCS#8 "PRIVATE KEY"),
# PGP's "PRIVATE KEY BLOCK", SSH2's "---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----" and PuTTY's
# "PuTTY-User-Key-File-3: ...". A document that merely names the opening line in a sentence ("a file that starts with
# `-----BEGIN PRIVATE KEY-----`") holds none. A resource is never served holding one (``inputs.read_inside``); an
# upload is refused for any PEM text (``describe``).
_LINE_START = rb"(?:(?<![^\r\n])|(?<=\\n)|(?<=[\"'`>=:])|(?<=\xef\xbb\xbf)|(?<=\xff\xfe)|(?<=\xfe\xff))[ \t]*"
_ARMOUR = (
    rb"(?:-{4,5}[ \t]?BEGIN[ \t]+(?:[A-Z0-9]+[ \t]+){0,6}PRIVATE[ \t]+KEY(?:[ \t]+BLOCK)?[ \t]*-{4,5}[ \t]*+"
    rb"|PuTTY-User-Key-File-[0-9]+:[^\r\n\\]*+)"
)
_BREAK = rb"(?:\r?\n|\r|\\r\\n|\\n)"
_HEADERS = rb"(?:[ \t]*+(?:[A-Za-z][A-Za-z0-9-]*+:[^\r\n\\]*+)?" + _BREAK + rb"){0,12}"
_BODY = rb"[ \t]*+(?:[A-Za-z0-9+/=]{4,}+[ \t]*+(?:[\r\n\\\"']|\Z)|-{4,5}[ \t]?END[ \t])"
# A key flattened onto one line, its breaks made spaces (the armour's own spaces, taken whole, come before it).
# Every run of spaces or letters here is possessive (``*+``): taken whole, never tried again shorter, so a megabyte
# of spaces after an opening line costs one pass, not one per space (it held the event loop for minutes).
_FLAT = rb"(?<=[ \t])[A-Za-z0-9+/]{40,}+"
_PRIVATE_KEY_BLOCK = re.compile(_LINE_START + _ARMOUR + rb"(?:" + _FLAT + rb"|" + _BREAK + _HEADERS + _BODY + rb")")
# How the markers read in UTF-16 and UTF-32, either byte order (a Windows editor's "Unicode" file, with or without a
# byte-order mark): such a file is searched again with its NUL bytes taken out, which leaves its ASCII as ASCII.
_WIDE = tuple(
    sep.join(bytes([c]) for c in word) for word in (b"PRIVATE", b"PuTTY-User") for sep in (b"\x00", b"\x00\x00\x00")
)


def holds_private_key(data: bytes) -> bool:
    """Whether ``data`` holds a private key (``_PRIVATE_KEY_BLOCK``): as ASCII or UTF-8, or as UTF-16 or UTF-32 of
    either byte order, with or without a byte-order mark."""
    if _holds_key_block(data):
        return True
    return any(wide in data for wide in _WIDE) and _holds_key_block(data.replace(b"\x00", b""))


def _holds_key_block(data: bytes) -> bool:
    return (b"PRIVATE" in data or b"PuTTY-User-Key-File-" in data) and _PRIVATE_KEY_BLOCK.search(data) is not None


def describe(head: bytes) -> str:
    """What non-media bytes look like, for a refusal: "plain text", "an SQLite database", ..."""
    if not head:
        return "nothing (the file is empty)"
    for magic, what in _BINARY:
        if head.startswith(magic):
            return what
    if _is_text(head):
        text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
        if text.startswith(b"-----begin"):
            return "a PEM key or certificate (text)"
        if text.startswith((b"<svg", b"<?xml")) and b"<svg" in text:
            return "an SVG drawing (text, not a picture KIE takes)"
        if text.startswith((b"<!doctype html", b"<html")):
            return "an HTML page (text)"
        return "plain text"
    if head.startswith(b"MZ"):
        return "a Windows program"
    return "binary data of no image, video or audio format"


def _is_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start < len(head) - 3:  # only a character cut at the end of the sample is forgiven
            return False
        text = head[: err.start].decode("utf-8")
    return not any(ch < " " and ch not in "\t\n\r\f\v" for ch in text)
