"""Pacing benchmark: N concurrent creates through KieClient against the simulator over real loopback TCP.

Run: uv run python bench/bench_pacing.py [--count N] [--jitter SECONDS]   (100 creates: about 3 minutes)

The simulator runs in its own process (``kie-mcp sim --port P --speed 1``, as tests/conftest.py starts it) and
counts creates the way KIE does: on arrival, at most 20 in any 10 s per account, a 429 for the 21st (refused,
not counted). At speed 1 its virtual clock runs at real time, so its window is KIE's real 10 seconds.

Side by side, the same N creates (each with a ``grant`` approval, fired at once):

- old pacing, reimplemented here as the baseline: a slot is stamped when it is granted, a 429 keeps its slot
  and waits a flat 10 s (``rate_limit_backoff``) before trying again;
- new pacing, KieClient as it is: a slot is held from before sending until the answer plus a margin, a 429
  frees its slot and is retried when the oldest create leaves the window;
- the same, its windows shared with the other processes on the key through the per-key file (``SharedBudget``,
  as a server talking to KIE over the network runs): what the file's lock, read and write cost each slot.

``--jitter S`` delays each request by a random 0..S seconds before it is sent (a stand-in for a real network,
where creates do not arrive in the order their slots were granted). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2

from kie_mcp.kie import FAMILIES, KieClient, KieError
from kie_mcp.kie.envelope import read_envelope
from kie_mcp.sandbox import SANDBOX_API_KEY
from kie_mcp.spend import grant

MARKET = FAMILIES["market"]
MODEL = "nano-banana-2"
BODY = {"model": MODEL, "input": {"prompt": "a fox in the snow", "aspect_ratio": "1:1"}}
CREATE_PATH = MARKET.create_path


class OldPacingClient(KieClient):
    """The pacing before issue 10: stamped at grant, a refused create keeps its slot, a flat backoff."""

    async def _send_create(
        self, path: str, body: dict[str, Any], model: str, quoted: float | None, *_: Any, **__: Any
    ) -> str:  # the family, the reservation, a turn taken and a give-up signal: none of them existed
        for attempt in range(self.max_rate_limit_retries + 1):
            await self._creates.acquire()  # the slot is stamped now, when granted
            response = await self._api.post(path, json=body)
            try:
                data = read_envelope(response, path)
            except KieError as err:
                if err.code == 429 and attempt < self.max_rate_limit_retries:
                    await anyio.sleep(self.rate_limit_backoff)  # flat, and the refused attempt keeps its slot
                    continue
                raise
            return str(data["taskId"])
        raise AssertionError("unreachable")


class JitteredTransport(httpx2.AsyncHTTPTransport):
    """Real TCP, each request held back a random 0..``jitter`` seconds before it is sent."""

    def __init__(self, jitter: float, seed: int) -> None:
        super().__init__()
        self.jitter = jitter
        self.rng = random.Random(seed)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        await anyio.sleep(self.rng.uniform(0.0, self.jitter))
        return await super().handle_async_request(request)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_simulator(port: int) -> subprocess.Popen[bytes]:
    script = shutil.which("kie-mcp", path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-m", "kie_mcp.cli"]
    process = subprocess.Popen(
        [*command, "sim", "--port", str(port), "--speed", "1", "--balance", "1000000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            state = httpx2.get(f"http://127.0.0.1:{port}/__sim/state", timeout=1)
            state.raise_for_status()
            assert state.json()["speed"] == 1, "the simulator must run at real time"
            return process
        except httpx2.HTTPError:
            time.sleep(0.1)
    process.terminate()
    raise SystemExit("the simulator did not start")


async def run(
    client_class: type[KieClient], base: str, count: int, jitter: float, share: bool = False
) -> dict[str, float]:
    controls = httpx2.AsyncClient(base_url=base, headers={"User-Agent": "bench"})
    (await controls.post("/__sim/reset")).raise_for_status()
    transport = JitteredTransport(jitter, seed=count) if jitter > 0 else None
    client = client_class(
        api_key=SANDBOX_API_KEY,
        base_url=base,
        upload_base_url=base,
        transport=transport,
        timeout=60.0,
        **({"share_pacing": True} if share else {}),
    )
    approval = grant(MODEL, count, "quote", None)
    failed: list[BaseException] = []

    async def one() -> None:
        try:
            await client.create(MARKET, MODEL, BODY, approval)
        except KieError as err:
            failed.append(err)

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(count):
            group.start_soon(one)
    seconds = time.perf_counter() - started
    await client.aclose()
    requests = (await controls.get("/__sim/requests")).json()["requests"]
    tasks = (await controls.get("/__sim/tasks")).json()["tasks"]
    await controls.aclose()
    sent = sum(1 for r in requests if r["path"] == CREATE_PATH)
    return {
        "seconds": seconds,
        "refused": sent - len(tasks),
        "created": len(tasks),
        "failed": len(failed),
        "rate": len(tasks) / seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100, help="concurrent creates per run (default 100)")
    parser.add_argument("--jitter", type=float, default=0.0, help="random delay 0..S s before each request")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the client's per-request lines and 429 warnings are not figures

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = start_simulator(port)
    try:
        print(
            f"{args.count} concurrent creates through KieClient -> `kie-mcp sim` on {base} (real TCP, speed 1; "
            f"KIE's window: 20 creates per 10 s, counted on arrival)"
            + (f", up to {args.jitter:g} s of jitter before each request" if args.jitter > 0 else "")
        )
        old = anyio.run(run, OldPacingClient, base, args.count, args.jitter)
        new = anyio.run(run, KieClient, base, args.count, args.jitter)
        with tempfile.TemporaryDirectory() as cache:  # the shared file in a folder of the run's own
            os.environ["KIE_CACHE_DIR"] = cache
            shared = anyio.run(run, KieClient, base, args.count, args.jitter, True)
    finally:
        process.terminate()
        process.wait(timeout=10)

    rows = [
        ("total seconds", "seconds", "{:.1f}"),
        ("429 answers", "refused", "{:.0f}"),
        ("creates/s", "rate", "{:.2f}"),
        ("created", "created", "{:.0f}"),
        ("failed (gave up)", "failed", "{:.0f}"),
    ]
    left, right, third = "old (stamp at grant, flat 10 s)", "new (held to answer + margin)", "new, shared file"
    print(f"{'':24}{left:>34}{right:>32}{third:>20}")
    for label, key, fmt in rows:
        print(f"{label:24}{fmt.format(old[key]):>34}{fmt.format(new[key]):>32}{fmt.format(shared[key]):>20}")


if __name__ == "__main__":
    main()
