"""Make the simulator's sandbox clips (the ``*.mp4`` files beside this script). Run once; the results are committed.

Run: uv run python src/kie_mcp/sandbox/clips/make_clips.py

Needs ffmpeg from ``imageio-ffmpeg`` (in the dev dependency group); the simulator itself never runs ffmpeg, it only
serves these files, played as long as a request asks (``looping.py``). Each clip is 2 s at 24 fps, H.264 (Main
profile, yuv420p, one group of pictures, so it can be played again from its start) with the ``moov`` box first
(faststart), so browsers and players start it at once; the ``-sound`` variants carry a soft AAC tick every half
second. Frames are drawn with Pillow (no font file needed by ffmpeg): a "SANDBOX" label, the aspect and whether
there is sound, and a bar that fills over the two seconds. Not imported by kie-mcp.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent
SECONDS = 2
FPS = 24
SIZES = {"16x9": (320, 180), "9x16": (180, 320), "1x1": (240, 240)}
# A 660 Hz tick that fades within each half second, quiet enough not to startle.
TICKS = f"aevalsrc=0.15*sin(2*PI*660*t)*exp(-12*mod(t\\,0.5)):s=48000:d={SECONDS}"


def frame(size: tuple[int, int], aspect: str, sound: bool, index: int) -> bytes:
    """One RGB frame: the label, what the clip is, and a bar that fills over the clip's length."""
    w, h = size
    image = Image.new("RGB", size, (17, 24, 39))
    draw = ImageDraw.Draw(image)
    title = ImageFont.load_default(size=w // 6)
    small = ImageFont.load_default(size=max(10, w // 18))
    draw.text((w / 2, h * 0.38), "SANDBOX", font=title, fill=(250, 204, 21), anchor="mm")
    detail = f"{aspect.replace('x', ':')}, {'with sound' if sound else 'silent'}"
    line = small.size + 4
    draw.text((w / 2, h * 0.38 + w // 9), "kie-mcp simulator", font=small, fill=(229, 231, 235), anchor="mm")
    draw.text((w / 2, h * 0.38 + w // 9 + line), detail, font=small, fill=(229, 231, 235), anchor="mm")
    done = (index + 1) / (SECONDS * FPS)
    draw.rectangle((0, h - h // 12, round(w * done), h), fill=(56, 189, 248))
    return image.tobytes()


def make(aspect: str, sound: bool) -> Path:
    w, h = SIZES[aspect]
    out = HERE / (f"{aspect}-sound.mp4" if sound else f"{aspect}.mp4")
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y"]
    command += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(FPS), "-i", "-"]
    if sound:
        command += ["-f", "lavfi", "-i", TICKS]
    command += ["-map", "0:v"] + (["-map", "1:a"] if sound else [])
    command += ["-vf", "scale=out_color_matrix=bt709:out_range=tv", "-c:v", "libx264", "-profile:v", "main"]
    command += ["-preset", "veryslow", "-crf", "30", "-g", str(SECONDS * FPS), "-pix_fmt", "yuv420p"]
    command += ["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709"]
    if sound:
        command += ["-c:a", "aac", "-b:a", "48k", "-ac", "1"]
    command += ["-t", str(SECONDS), "-movflags", "+faststart", "-map_metadata", "-1"]
    command += ["-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact", str(out)]
    frames = b"".join(frame((w, h), aspect, sound, i) for i in range(SECONDS * FPS))
    subprocess.run(command, input=frames, check=True)
    return out


def main() -> int:
    for aspect in SIZES:
        for sound in (False, True):
            path = make(aspect, sound)
            print(f"{path.name}: {path.stat().st_size} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
