"""What a browser does opening the gallery's index of a workspace of clips, and how large its pages grow with long
prompts.

Run: uv run python bench/bench_gallery_pages.py [--sessions 60] [--clips 24] [--prompt 20000] [--before]

A synthetic ``outputs/`` of ``--sessions`` session folders of ``--clips`` saved clips each (hard links of one real
2-second clip made with ffmpeg, and of its poster, as ``media.downloads`` keeps it; one sidecar a clip, its prompt
``--prompt`` characters long), built by ``gallery.build``. Then the index opened in headless Chromium (driven as the
tests drive it, ``tests/browser.py``; ``CHROMIUM`` names another): the time to its load event and what it asked for
in the two seconds after (clips, posters), and whether the last clip on the page plays.

``--before`` opens the same index also as it was drawn before (every clip a ``<video controls preload="metadata"
poster=...>``, made here from the page by replacing each card's poster link), in a browser of its own. Also the
sizes of the index and of one session page. Needs ffmpeg (the ``video`` extra) and Chromium. Asserts nothing.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kie_mcp.media import gallery
from kie_mcp.media.downloads import make_preview
from kie_mcp.media.stitch import find_ffmpeg

sys.path.insert(0, str(Path(__file__).parents[1]))  # the tests' browser driver
from tests.browser import Browser, find_chromium
from tests.test_gallery_scale import plant_clips

SIDE = 768  # KIE_PREVIEW_PX's default
WORDS = "Ultra-detailed product shot, the serum bottle on wet slate, rim light; "
_CARD = re.compile(
    r'<a class="media video" href="([^"]+)"><img src="([^"]+)" alt="([^"]*)"[^>]*>'
    r'<span class="play" aria-hidden="true"></span></a>'
)
PLAY_LAST = """(async () => {
  const video = [...document.querySelectorAll('video')].at(-1);
  video.scrollIntoView(); video.muted = true;
  try { await video.play(); } catch (e) { return String(e); }
  await new Promise(r => setTimeout(r, 1500));
  return video.error ? 'error ' + video.error.code : video.currentTime > 0.25 ? 'played' : 'stuck';
})()"""


def a_clip(where: Path) -> Path:
    """A real 2-second H.264 clip and its kept poster."""
    clip = where / "clip.mp4"
    source = "testsrc=duration=2:size=640x360:rate=24"
    command = [find_ffmpeg(), "-loglevel", "error", "-f", "lavfi", "-i", source, "-pix_fmt", "yuv420p", str(clip)]
    subprocess.run(command, check=True)
    make_preview(clip, "video", SIDE)
    return clip


def lay_out(outputs: Path, clip: Path, sessions: int, clips: int, prompt: int) -> Path:
    """The session folders, one a day back from today, laid out as the tests lay them out; returns the newest."""
    text = (WORDS * (prompt // len(WORDS) + 1))[:prompt]
    return plant_clips(outputs, clip, SIDE, sessions, clips, prompt=text, first_day=0)[0]


def as_before(page: str) -> str:
    """The index as it was drawn: each clip with a poster a ``<video preload="metadata">``."""
    return _CARD.sub(
        r'<div class="media video"><video controls playsinline preload="metadata" poster="\2" src="\1" '
        r'title="\3"></video></div>',
        page,
    )


def opened(chromium: str, profile: Path, page: Path) -> dict[str, object]:
    """Open ``page`` in a fresh browser: its load time, what it asked for, and whether the last clip plays."""
    profile.mkdir()
    browser = Browser(chromium, profile, timeout=600)
    try:
        tab = browser.new_page(1280, 900)
        started = time.perf_counter()
        tab.goto(page.as_uri())
        loaded = time.perf_counter() - started
        time.sleep(2)
        urls = tab.requested_urls()
        if tab.evaluate("document.querySelectorAll('video').length"):
            played = tab.evaluate(PLAY_LAST)
        else:  # a poster linking to its clip: the clip plays in the page the click opens
            href = tab.evaluate("[...document.querySelectorAll('a.media.video')].at(-1).href")
            tab.goto(href)
            played = tab.evaluate(PLAY_LAST)
        return {
            "load": loaded,
            "requests": len(urls),
            "clips": sum(url.endswith(".mp4") for url in urls),
            "posters": sum(".poster-" in url for url in urls),
            "last": played,
        }
    finally:
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sessions", type=int, default=60)
    parser.add_argument("--clips", type=int, default=24, help="clips a session")
    parser.add_argument("--prompt", type=int, default=0, help="characters of each prompt (0: a short one)")
    parser.add_argument("--before", action="store_true", help="also open the index as it was drawn before")
    args = parser.parse_args()
    chromium = find_chromium()
    if chromium is None:
        sys.exit("no Chromium: install Debian's chromium package (or set CHROMIUM)")

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clip = a_clip(root)
        outputs = root / "outputs"
        newest = lay_out(outputs, clip, args.sessions, args.clips, args.prompt)
        started = time.perf_counter()
        gallery.build(outputs, SIDE)
        built = time.perf_counter() - started
        index = outputs / gallery.PAGE
        print(
            f"{args.sessions} sessions of {args.clips} clips, prompts of {args.prompt or 'a few'} characters "
            f"(Python {sys.version.split()[0]}): built in {built:.2f} s; index {index.stat().st_size / 1e6:.2f} MB, "
            f"a session page {(newest / gallery.PAGE).stat().st_size / 1e6:.2f} MB"
        )
        rows = [("now", index)]
        if args.before:
            before = outputs / "index-before.html"
            before.write_text(as_before(index.read_text(encoding="utf-8")), encoding="utf-8")
            print(f"the index as drawn before: {before.stat().st_size / 1e6:.2f} MB")
            rows.insert(0, ("before", before))
        for label, page in rows:
            seen = opened(chromium, root / f"profile-{label}", page)
            print(
                f"{label:>7}: load event {seen['load']:.2f} s; {seen['requests']} requests, {seen['clips']} clips "
                f"and {seen['posters']} posters fetched; the last clip: {seen['last']}"
            )


if __name__ == "__main__":
    main()
