"""Benchmark of the download layer: throughput and memory of saving a big fake video from the simulator.

Run: uv run python bench/bench_download.py [--sizes-mb 20 200] [--repeats 3]

For each size, a finished sora-2 task in the in-process simulator serves a fake MP4 of that size
(``SimConfig.video_bytes``), streamed chunk by chunk; ``download`` saves it into a temporary folder.
Figures:
- throughput of ``download`` (best of ``--repeats``, tracemalloc off), next to the simulator alone
  (the same body read and thrown away) so the cost of hashing, writing and fsync shows;
- peak Python memory during one download (tracemalloc), and the peak process RSS sampled every
  5 ms (Linux /proc) plus the growth of ``ru_maxrss``: these must stay flat when the size grows.

A KIE-shaped key is registered first, as a server holds its own: every download is searched for it where files keep
their metadata (without one, that search costs nothing and the figures would flatter).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import anyio
import httpx2

from kie_mcp.media.downloads import download
from kie_mcp.redact import register_secret
from kie_mcp.sandbox import SANDBOX_API_KEY, SandboxTransport, SimConfig, Simulator

MB = 1024 * 1024
BENCH_KEY = "5f3c9e0a7b2d4e6f8a1c3b5d7e9f0a2c"  # 32 hex digits, as KIE's keys are; never sent anywhere
HEADERS = {"Authorization": f"Bearer {SANDBOX_API_KEY}", "User-Agent": "bench"}


async def video_url(client: httpx2.AsyncClient, sim: Simulator) -> str:
    body = {"model": "sora-2-text-to-video", "input": {"prompt": "a long shot"}}
    task_id = (await client.post("/api/v1/jobs/createTask", json=body)).json()["data"]["taskId"]
    sim.advance(3600)
    data = (await client.get("/api/v1/jobs/recordInfo", params={"taskId": task_id})).json()["data"]
    return json.loads(data["resultJson"])["resultUrls"][0]


def rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None


def max_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


async def sim_only(client: httpx2.AsyncClient, url: str) -> float:
    started = time.perf_counter()
    async with client.stream("GET", url) as response:
        async for _ in response.aiter_bytes():
            pass
    return time.perf_counter() - started


async def one_size(size: int, folder: Path, repeats: int) -> dict[str, float]:
    sim = Simulator(SimConfig(speed=0, video_bytes=size))
    async with httpx2.AsyncClient(transport=SandboxTransport(sim), base_url="http://bench.test", headers=HEADERS) as c:
        url = await video_url(c, sim)
        dest = folder / "clip.mp4"

        raw = min([await sim_only(c, url) for _ in range(repeats)])
        timings = []
        for _ in range(repeats):
            dest.unlink(missing_ok=True)
            started = time.perf_counter()
            saved = await download(c, url, dest, expected="video")
            timings.append(time.perf_counter() - started)
            assert saved.size == size
        dest.unlink()

        # memory: one more download with tracemalloc on and RSS sampled
        base_rss = rss_bytes() or 0
        base_max = max_rss_bytes()
        peak_rss = base_rss

        async def sample() -> None:
            nonlocal peak_rss
            while True:
                peak_rss = max(peak_rss, rss_bytes() or 0)
                await anyio.sleep(0.005)

        tracemalloc.start()
        async with anyio.create_task_group() as group:
            group.start_soon(sample)
            await download(c, url, dest, expected="video")
            group.cancel_scope.cancel()
        _, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        dest.unlink()
    return {
        "size_mb": size / MB,
        "seconds": min(timings),
        "mb_s": size / MB / min(timings),
        "sim_mb_s": size / MB / raw,
        "traced_peak_mb": traced_peak / MB,
        "rss_growth_mb": (peak_rss - base_rss) / MB,
        "maxrss_growth_mb": (max_rss_bytes() - base_max) / MB,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mb", type=float, nargs="+", default=[20, 200])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: a temporary folder)")
    args = parser.parse_args()
    register_secret(BENCH_KEY)

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        await one_size(2 * MB, folder, 1)  # warm-up: imports, first allocations
        rows = [await one_size(int(mb * MB), folder, args.repeats) for mb in args.sizes_mb]
        leftovers = os.listdir(folder)

    print(f"download(): fake MP4 from the in-process simulator, best of {args.repeats}, written to {tmp}")
    print(f"{'size':>8} {'time':>8} {'MB/s':>8} {'sim MB/s':>9} {'py peak':>9} {'RSS peak+':>10} {'maxrss+':>8}")
    for r in rows:
        print(
            f"{r['size_mb']:>6.0f}MB {r['seconds']:>7.2f}s {r['mb_s']:>8.0f} {r['sim_mb_s']:>9.0f} "
            f"{r['traced_peak_mb']:>7.2f}MB {r['rss_growth_mb']:>8.2f}MB {r['maxrss_growth_mb']:>6.2f}MB"
        )
    if len(rows) >= 2:
        small, big = rows[0], rows[-1]
        print(
            f"size x{big['size_mb'] / small['size_mb']:.0f} -> Python peak x"
            f"{big['traced_peak_mb'] / max(small['traced_peak_mb'], 1e-9):.2f} (flat means constant memory)"
        )
    print(f"files left in the folder after the runs: {len(leftovers)}")


if __name__ == "__main__":
    anyio.run(main)
