"""Cost of the gallery refresh that follows every saved result, as ``outputs/`` grows.

Run: uv run python bench/bench_gallery.py [--results 1000 6000 36000] [--per-session 200] [--folders-a-day 1]
[--repeats 3]; many sessions (generations without ``session``): ``--results 300 3000 27000 --per-session 1
--folders-a-day 30``.

For each size, a synthetic ``outputs/`` of that many saved results, ``--per-session`` per session folder and
``--folders-a-day`` session folders a day (200 tasks a day in one folder: 6,000 results is a month, 36,000 six
months), laid out as ``media.results`` saves them: real small
PNG and JPEG results with their kept thumbnails, one video in ten (its bytes are not a real clip: a refresh only
looks at its name, its date and its poster, a real JPEG) and one sidecar JSON per task, written as
``write_json_atomic`` writes it. Result and preview files are hard links of a few originals, so 36,000 results
take seconds to lay out; the folders are dated hours back, as a workspace that is not being written to (and the
benchmark waits ``gallery.RECENT_NS`` after writing their pages, as a change time cannot be set back).

Then, each time after one new result (a fresh PNG and its sidecar, saved in the newest session), the time of
one refresh (``gallery.build`` with the new file as ``fresh``, its thumbnail made as ``generation.save_all``
has it made):

- the full rebuild (what ``build`` did before it kept its scans: every session folder scanned, every sidecar read,
  every page rendered), reimplemented here from the module's own ``scan`` and renderers;
- ``gallery.build`` keeping its scans (only the folders that changed scanned and rendered again), after a result
  in the newest session and after a result in the oldest one;
- ``gallery.build``'s first refresh in a process (nothing kept yet: the cost of a full rebuild, once);
- ``gallery.build`` keeping its scans with every session on the index (``SESSIONS_ON_INDEX`` unbounded: the index as
  it was before it showed only the newest sessions and listed the rest by month), after a result in the newest
  session.

Best of ``--repeats`` for each. Also the size of ``outputs/index.html``, both ways. Asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from PIL import Image

from kie_mcp.media import gallery
from kie_mcp.media.downloads import make_preview, poster_path, write_bytes_atomic

MODELS = {"image": "nano-banana-2", "video": "veo3_fast"}
WORDS = ("neon", "city", "forest", "sea", "cat", "light", "dusk", "wooden", "table", "red", "apple", "slow", "dolly")
HOUR_NS = 3600 * 10**9
Fresh = Sequence[tuple[Path, str | None]]


# -- a synthetic outputs/ ------------------------------------------------------------------------------------------


def picture(fmt: str, seed: int) -> bytes:
    """A small real picture with some detail (not a flat colour)."""
    image = Image.new("RGB", (96, 64), (seed * 37 % 256, 90, 160))
    for x in range(0, 96, 8):
        for y in range(0, 64, 8):
            image.putpixel((x, y), ((x * 5 + seed) % 256, (y * 7) % 256, 30))
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def originals(where: Path, side: int) -> dict[str, tuple[Path, Path]]:
    """One file of each kind with its kept preview (dated like it, as ``downloads`` keeps it): linked many times."""
    where.mkdir(parents=True)
    made = {}
    for kind, name, data in (
        ("png", "base.png", picture("PNG", 1)),
        ("jpg", "base.jpg", picture("JPEG", 2)),
        ("mp4", "base.mp4", b"\x00\x00\x00\x18ftypmp42" + bytes(4096)),
    ):
        path = where / name
        path.write_bytes(data)
        if kind == "mp4":
            poster = poster_path(path, side)
            poster.write_bytes(picture("JPEG", 3))
            mtime = path.stat().st_mtime_ns
            os.utime(poster, ns=(mtime, mtime))
        else:
            make_preview(path, "image", side)
            poster = next(p for p in where.iterdir() if p.name.startswith(f".{name}.thumb-"))
        made[kind] = (path, poster)
    return made


def sidecar(folder: str, task: str, model: str, files: list[tuple[str, str]], created: datetime) -> bytes:
    """A sidecar as ``media.results.sidecar`` writes it (``write_json_atomic``: indented UTF-8 JSON)."""
    n = int(task.rsplit("_", 1)[-1], 16)
    prompt = f"Shot {n}: " + " ".join(WORDS[(n * 7 + i) % len(WORDS)] for i in range(24)) + ", cinematic, 35 mm"
    data = {
        "task_id": task,
        "model": model,
        "family": "market",
        "parent_task_id": None,
        "operation": None,
        "prompt": prompt,
        "parameters": json.dumps({"prompt": prompt, "aspect_ratio": "16:9"}),
        "credits_quoted": 8.0 if model == MODELS["image"] else 60.0,
        "credits_charged": 8.0 if model == MODELS["image"] else 60.0,
        "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "saved_at": (created + timedelta(seconds=40)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "sandbox": False,
        "files": [
            {
                "path": f"outputs/{folder}/{name}",
                "sha256": f"{n:064x}",
                "size": 12345,
                "mime": mime,
                "source_url": f"https://tempfile.example/{task}/{name}",
            }
            for name, mime in files
        ],
    }
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def lay_out(
    outputs: Path, results: int, per_session: int, base: dict[str, tuple[Path, Path]], a_day: int = 1
) -> list[Path]:
    """``results`` saved results in session folders of ``per_session``, ``a_day`` of them a day back from today;
    returns the session folders, newest first."""
    folders = []
    today = date.today()
    for day in range(-(-results // per_session)):
        when = today - timedelta(days=day // a_day)
        folder = outputs / f"{when.isoformat()}-campaign-{day % 7}-{day % a_day}"
        folder.mkdir(parents=True)
        folders.append(folder)
        for k in range(min(per_session, results - day * per_session)):
            n = day * per_session + k
            kind = "mp4" if n % 10 == 0 else ("jpg" if n % 3 == 0 else "png")
            model = MODELS["video" if kind == "mp4" else "image"]
            task = f"task_{n:08x}"
            name = f"{model}_{task}_1.{kind}"
            source, preview = base[kind]
            os.link(source, folder / name)
            os.link(preview, folder / preview.name.replace(source.name, name, 1))
            created = datetime(when.year, when.month, when.day, 8, tzinfo=UTC) + timedelta(minutes=3 * k)
            mime = {"mp4": "video/mp4", "jpg": "image/jpeg", "png": "image/png"}[kind]
            (folder / f"{model}_{task}.json").write_bytes(sidecar(folder.name, task, model, [(name, mime)], created))
    past = time.time_ns() - 6 * HOUR_NS  # nothing written there for hours ...
    for folder in folders:
        os.utime(folder, ns=(past, past))
    return folders


def new_result(folder: Path, n: int) -> list[tuple[Path, str | None]]:
    """One more result saved in ``folder``: a fresh PNG (its thumbnail not made yet) and its sidecar."""
    model, task = MODELS["image"], f"task_new_{n:08x}"
    name = f"{model}_{task}_1.png"
    (folder / name).write_bytes(picture("PNG", n))
    data = sidecar(folder.name, task, model, [(name, "image/png")], datetime.now(UTC))
    write_bytes_atomic(folder / f"{model}_{task}.json", data, durable=False)  # as write_json_atomic, no fsync
    return [(folder / name, "image")]


# -- the two refreshes -----------------------------------------------------------------------------------------------


def full_rebuild(outputs: Path, side: int, fresh: Fresh) -> list[str]:
    """``gallery.build`` as it was: the fresh previews, then every folder scanned and every page rendered."""
    for path, kind in fresh:
        make_preview(path, kind, side)
    sessions = gallery.scan(outputs, side)
    for session in sessions:
        gallery._write_if_changed(outputs / session.folder / gallery.PAGE, gallery.render_session(session))
    gallery._write_if_changed(outputs / gallery.PAGE, gallery.render_index(sessions))
    return []


def timed(refresh: Callable[[Path, int, Fresh], list[str]], outputs: Path, side: int, fresh: Fresh) -> float:
    started = time.perf_counter()
    refresh(outputs, side, fresh)
    return time.perf_counter() - started


def one_size(root: Path, results: int, per_session: int, repeats: int, side: int, a_day: int) -> dict[str, float]:
    base = originals(root / "originals", side)
    outputs = root / "ws" / "outputs"
    started = time.perf_counter()
    folders = lay_out(outputs, results, per_session, base, a_day)
    laid_out = time.perf_counter() - started
    newest, oldest = folders[0], folders[-1]
    full_rebuild(outputs, side, [])  # every page written once, as a workspace that has been in use
    time.sleep(gallery.RECENT_NS / 1e9 + 0.1)  # and not written since (a change time cannot be set back)
    gallery._caches.clear()  # a new process: nothing kept
    first = timed(gallery.build, outputs, side, new_result(newest, 0))
    old, new, new_old_session = [], [], []
    for turn in range(repeats):
        old.append(timed(full_rebuild, outputs, side, new_result(newest, 3 * turn + 1)))
        new.append(timed(gallery.build, outputs, side, new_result(newest, 3 * turn + 2)))
        new_old_session.append(timed(gallery.build, outputs, side, new_result(oldest, 3 * turn + 3)))
    index = (outputs / gallery.PAGE).stat().st_size
    cards = (outputs / gallery.PAGE).read_bytes().count(b"<figure ")
    shown, gallery.SESSIONS_ON_INDEX = gallery.SESSIONS_ON_INDEX, 10**9  # every session on the index, as before
    try:
        gallery._caches.clear()
        gallery.build(outputs, side, new_result(newest, 3 * repeats + 1))  # the first build in this mode: not timed
        every = [
            timed(gallery.build, outputs, side, new_result(newest, 3 * repeats + 2 + turn)) for turn in range(repeats)
        ]
        every_index = (outputs / gallery.PAGE).stat().st_size
    finally:
        gallery.SESSIONS_ON_INDEX = shown
    return {
        "results": results,
        "sessions": len(folders),
        "laid_out": laid_out,
        "old": min(old),
        "new": min(new),
        "new_old_session": min(new_old_session),
        "first": first,
        "index_mb": index / 1e6,
        "cards": cards,
        "every": min(every),
        "every_index_mb": every_index / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--results", type=int, nargs="+", default=[1000, 6000])
    parser.add_argument("--per-session", type=int, default=200)
    parser.add_argument("--folders-a-day", type=int, default=1, help="session folders laid out per day")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--side", type=int, default=gallery.THUMBNAIL_SIDE, help="KIE_PREVIEW_PX")
    parser.add_argument("--dir", type=Path, default=None, help="where to lay out outputs/ (default: a temp folder)")
    args = parser.parse_args()

    rows = []
    for results in args.results:
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            rows.append(one_size(Path(tmp), results, args.per_session, args.repeats, args.side, args.folders_a_day))

    print(
        f"one gallery refresh after one new result, best of {args.repeats} (Python {sys.version.split()[0]}, "
        f"{args.per_session} results a session, {args.folders_a_day} session folder(s) a day)"
    )
    print(
        f"{'results':>8} {'sessions':>9} {'full rebuild':>13} {'all on index':>13} {'kept: newest':>13} "
        f"{'kept: oldest':>13} {'speed-up':>9} {'1st in process':>15} {'index before':>13} {'index.html':>11} "
        f"{'cards':>6}"
    )
    for r in rows:
        print(
            f"{r['results']:>8,} {r['sessions']:>9} {r['old'] * 1000:>11.1f}ms {r['every'] * 1000:>11.1f}ms "
            f"{r['new'] * 1000:>11.1f}ms {r['new_old_session'] * 1000:>11.1f}ms {r['old'] / r['new']:>8.1f}x "
            f"{r['first'] * 1000:>13.1f}ms {r['every_index_mb']:>11.2f}MB {r['index_mb']:>9.2f}MB {r['cards']:>6}"
        )
    print(
        "full rebuild: every folder scanned and every page rendered (the first build); all on index: kept scans, "
        "every session on the index (the build before the month pages); kept: only changed folders scanned (a "
        "result in the newest session, or in the oldest one), the newest sessions on the index and the rest by month; "
        "1st in process: nothing kept yet. speed-up: full rebuild / kept: newest."
    )
    print("laid out in " + ", ".join(f"{r['laid_out']:.1f}s ({r['results']:,})" for r in rows))


if __name__ == "__main__":
    main()
