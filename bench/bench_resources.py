"""resources/list with many files in references/: the first page's size and time, and a whole listing followed.

Run: uv run python bench/bench_resources.py [--files 20000] [--rounds 5]

A workspace with ``--files`` small PNGs in references/ (500 a folder), served in this process and listed through
the SDK client (2026-07-28 era):

- before, reimplemented here: resources/list answered the SDK's way, every resource in one answer (the folder read
  as kie-mcp reads it now, so the difference is the answer alone);
- now: the first page, and every page followed by its cursor.

Also the folder's read before each listing (warm: every file already judged) as it was (``Path.rglob``, sorted,
``lstat`` of each) and as it is (``references._entries``). The first listing after a start judges each file once
(resolves it, reads its first bytes) and is shown apart. For each: the median of ``--rounds``. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.types import ListResourcesResult, PaginatedRequestParams
from pydantic import SecretStr

from kie_mcp.config import Settings
from kie_mcp.references import _entries
from kie_mcp.sandbox import SANDBOX_API_KEY, SandboxTransport, SimConfig, Simulator
from kie_mcp.server import create_server

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def workspace(files: int, home: Path) -> Path:
    for n in range(files):
        folder = home / "references" / f"shoot {n // 500:03d}"
        if n % 500 == 0:
            folder.mkdir(parents=True)
        (folder / f"product shot {n:05d}.png").write_bytes(PNG)
    return home


def size(result: ListResourcesResult) -> int:
    return len(result.model_dump_json(by_alias=True, exclude_none=True))


async def median(rounds: int, work: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    times, last = [], None
    for _ in range(rounds):
        started = time.perf_counter()
        last = await work()
        times.append(time.perf_counter() - started)
    return statistics.median(times), last


async def follow(client: Client) -> tuple[int, int]:
    page = await client.list_resources()
    pages, listed = 1, len(page.resources)
    while page.next_cursor is not None:
        page = await client.list_resources(cursor=page.next_cursor)
        pages, listed = pages + 1, listed + len(page.resources)
    return pages, listed


def server(settings: Settings, whole: bool) -> Any:
    mcp = create_server(settings, transport=SandboxTransport(Simulator(SimConfig())))
    if whole:  # before: the SDK's handler, every resource in one answer

        async def everything(ctx: Any, params: PaginatedRequestParams) -> ListResourcesResult:
            return ListResourcesResult(resources=await mcp.list_resources())

        mcp._lowlevel_server.add_request_handler("resources/list", PaginatedRequestParams, everything)
    return mcp


async def main(files: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="kie-bench-resources-") as folder:
        await measure(workspace(files, Path(folder)), rounds)


async def measure(home: Path, rounds: int) -> None:
    files = sum(1 for _ in _entries(str(home / "references")))
    settings = Settings(
        api_key=SecretStr(SANDBOX_API_KEY), base_url="http://api.kie.test", workspace=home, catalog_sync=False
    )
    folder = home / "references"

    def read_before() -> None:
        for file in sorted(folder.rglob("*")):
            os.lstat(file)

    def median_of(read: Callable[[], Any]) -> float:
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            read()
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    print(f"{files} files in references/, median of {rounds}")
    print(
        f"the folder's read before a listing: before {median_of(read_before) * 1000:.0f} ms, "
        f"now {median_of(lambda: _entries(str(folder))) * 1000:.0f} ms"
    )
    async with Client(server(settings, whole=True), mode="auto") as client:
        started = time.perf_counter()
        first = await client.list_resources()
        cold = time.perf_counter() - started
        took, answer = await median(rounds, client.list_resources)
        print(
            f"before: one answer of {len(answer.resources)} resources, {size(answer) / 2**20:.2f} MiB, "
            f"{took * 1000:.0f} ms (the first after start {cold * 1000:.0f} ms)"
        )
        del first
    async with Client(server(settings, whole=False), mode="auto") as client:
        started = time.perf_counter()
        await client.list_resources()
        cold = time.perf_counter() - started
        took, page = await median(rounds, client.list_resources)
        print(
            f"now: the first page, {len(page.resources)} resources, {size(page) / 2**10:.0f} KiB, "
            f"{took * 1000:.0f} ms (the first after start {cold * 1000:.0f} ms)"
        )
        took, (pages, listed) = await median(rounds, lambda: follow(client))
        print(f"now: every page followed, {pages} pages, {listed} resources, {took * 1000:.0f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    arguments = parser.parse_args()
    anyio.run(main, arguments.files, arguments.rounds)
