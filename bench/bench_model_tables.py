"""kie://models and kie://models.json read through the SDK client: each read rendered anew, or the text kept.

Run: uv run python bench/bench_model_tables.py [--rounds 20]

A server in this process whose live catalogue it synced from the simulator at start (KIE's live list and prices, as
a server that has run a day holds them), read through the SDK client (2026-07-28 era):

- before, reimplemented here: the kept tables are cleared before every read, so each read renders its table, as every
  read did;
- now: the reads after the first, which serve the text kept for the same catalogue and prices. The first read after
  a change (a sync's new prices or models) renders the table anew, as before (``test_promise_model_tables.py``).

For each: the median of ``--rounds`` reads, in milliseconds, and the table's size. Asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client
from pydantic import SecretStr

from kie_mcp.catalog import tables
from kie_mcp.catalog.live import cache_path
from kie_mcp.config import Settings
from kie_mcp.sandbox import SANDBOX_API_KEY, SandboxTransport, SimConfig, Simulator
from kie_mcp.server import create_server

API, UPLOADS = "http://api.kie.test", "http://upload.kie.test"


async def median(rounds: int, work: Callable[[], Awaitable[Any]]) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        await work()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


async def measure(workspace: Path, rounds: int) -> None:
    transport = SandboxTransport(Simulator(SimConfig()))
    async with httpx2.AsyncClient(transport=transport, base_url=API) as sim:  # its catalogue lookups unpaced
        (await sim.post("/__sim/config", json={"catalog_limit_per_second": 0})).raise_for_status()
    settings = Settings(api_key=SecretStr(SANDBOX_API_KEY), base_url=API, upload_base_url=UPLOADS, workspace=workspace)
    server = create_server(settings, transport=transport)
    async with Client(server, mode="auto") as client:
        await client.call_tool("list_models", {"kind": "image"})  # the runtime opened: it syncs the live catalogue
        with anyio.fail_after(120):
            while not cache_path(workspace).is_file():  # noqa: ASYNC110 - the server's background sync writes it
                await anyio.sleep(0.1)
        await anyio.sleep(0.5)  # the sync's last step, its live list taken by the runtime
        for uri in ("kie://models", "kie://models.json"):

            async def read(uri: str = uri) -> str:
                return (await client.read_resource(uri)).contents[0].text  # type: ignore[union-attr]

            async def rendered(read: Callable[[], Awaitable[str]] = read) -> str:
                tables._RENDERED.clear()  # before: every read rendered its table
                return await read()

            size = len(await read()) / 1024
            before = await median(rounds, rendered)
            now = await median(rounds, read)
            print(
                f"{uri} ({size:.0f} KiB), median of {rounds} reads: before: every read rendered {before:.1f} ms; "
                f"now: kept {now:.2f} ms"
            )


async def main(rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="kie-bench-tables-") as folder:
        await measure(Path(folder), rounds)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    anyio.run(main, parser.parse_args().rounds)
