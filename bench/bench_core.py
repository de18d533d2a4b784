"""Benchmarks of the hot paths, printed as figures (run: uv run python bench/bench_core.py).

- validate + price: the work every estimate and generate does before anything is sent;
- a full generate_image round trip through the MCP Client and the in-process simulator (20 calls: within
  KIE's 20-creates-per-10-s window, so the figure is our overhead, not our pacing);
- the pacing itself: 30 creates must take at least one 10 s window;
- peak Python memory of the round trips (tracemalloc).
"""

from __future__ import annotations

import logging
import time
import tracemalloc
from pathlib import Path
from tempfile import mkdtemp

import anyio
from mcp import Client
from mcp.types import ElicitResult
from pydantic import SecretStr

from kie_mcp.catalog import build_input, load_catalog, price_input
from kie_mcp.config import Settings
from kie_mcp.sandbox import SANDBOX_API_KEY, SandboxTransport, SimConfig, Simulator
from kie_mcp.server import create_server


def bench_validate_and_price(rounds: int = 20_000) -> float:
    catalog = load_catalog()
    spec = catalog.get("kling-3.0/video")
    started = time.perf_counter()
    for i in range(rounds):
        wire = build_input(spec, prompt=f"shot {i}", duration=5 + i % 10, audio=bool(i % 2), resolution="1080p")
        price_input(spec, wire)
    return rounds / (time.perf_counter() - started)


async def bench_round_trips(calls: int = 20) -> tuple[float, float, int]:
    sim = Simulator(SimConfig(speed=100_000.0, starting_balance=1e9, create_limit=0))
    settings = Settings(
        api_key=SecretStr(SANDBOX_API_KEY),
        base_url="http://api.bench",
        upload_base_url="http://upload.bench",
        workspace=Path(mkdtemp()),
        poll_min_interval=0.001,
        poll_max_interval=0.005,
        max_credits_per_day=1e9,
        auto_approve_credits=100,
    )
    server = create_server(settings, transport=SandboxTransport(sim))

    async def accept(context, params):  # pragma: no cover - auto-approve means it is not asked
        return ElicitResult(action="accept", content={"confirm": True})

    latencies = []
    tracemalloc.start()
    async with Client(server, mode="legacy", elicitation_callback=accept) as client:
        await client.call_tool("generate_image", {"prompt": "warm-up"})  # imports and first connections
        for i in range(calls - 1):
            started = time.perf_counter()
            result = await client.call_tool("generate_image", {"prompt": f"apple {i}"})
            latencies.append(time.perf_counter() - started)
            assert result.structured_content["status"] == "completed"
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    latencies.sort()
    return latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.95)], peak


async def bench_pacing(creates: int = 30) -> float:
    from kie_mcp.kie import FAMILIES, KieClient
    from kie_mcp.spend import grant

    sim = Simulator(SimConfig(speed=1.0, starting_balance=1e9))  # real time: KIE's window is real time
    kie = KieClient(
        api_key=SANDBOX_API_KEY, base_url="http://a", upload_base_url="http://u", transport=SandboxTransport(sim)
    )
    approval = grant("nano-banana-2", creates, "quote", None)
    body = {"model": "nano-banana-2", "input": {"prompt": "x"}}
    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(creates):
            group.start_soon(kie.create, FAMILIES["market"], "nano-banana-2", body, approval)
    await kie.aclose()
    return time.perf_counter() - started


def main() -> None:
    logging.disable(logging.INFO)  # the library's per-request lines are not figures
    print(f"validate + price (kling-3.0/video): {bench_validate_and_price():,.0f} requests/s")
    p50, p95, peak = anyio.run(bench_round_trips)
    print(
        f"generate_image round trip via MCP Client + simulator: p50 {p50 * 1000:.1f} ms, "
        f"p95 {p95 * 1000:.1f} ms (back-to-back calls meet KIE's 10 status polls/s pacing)"
    )
    print(f"peak traced Python memory over 20 round trips: {peak / 1e6:.1f} MB")
    paced = anyio.run(bench_pacing)
    print(f"30 parallel creates paced to KIE's 20 per 10 s: {paced:.1f} s, none refused by the simulator")


if __name__ == "__main__":
    main()
