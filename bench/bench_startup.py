"""Cold start against the floor (run: uv run python bench/bench_startup.py [N]).

In one run, N times each (interleaved, so drift hits both alike):

- the floor: a bare ``mcp`` SDK ``MCPServer`` with one trivial tool, a script written to a temporary folder and
  started with this Python (the one ``uv run`` uses);
- ``kie-mcp``: the installed console script beside this Python, with a temporary ``KIE_WORKSPACE`` and
  ``KIE_CACHE_DIR``, a dummy key and ``KIE_CATALOG_SYNC=off``, started again and again (so ``tools/list`` is
  answered from the listing the first start kept, as for a user's every start but the first);
- ``kie-mcp`` with a new, empty ``KIE_CACHE_DIR`` each round (a first start: every tool built, the listing kept);

each measured from spawn to the answer of ``tools/list`` over stdio with the SDK ``Client``, then to the answer of
a first tool call (the floor's ``echo``; kie-mcp's ``list_tasks``, which needs the runtime kie-mcp opens after the
handshake: the whole start's cost), then its RSS (``VmRSS`` of ``/proc/<pid>/status``, read after that call); and,
in a start of its own, the RSS of a server left idle (``tools/list``, then two seconds with no call: kie-mcp has
opened its runtime by then). Prints the medians side by side with the ratio (and the median of the per-round
ratios, steadier on a busy machine), against the targets (spawn -> tools/list <= 1.10 x the floor, idle RSS <= the
floor + 8 MiB). Asserts nothing. Linux only (``/proc``).

A ``PYTHONPATH`` in the environment is passed to kie-mcp only, so another source tree can be timed against the same
floor: ``PYTHONPATH=/tmp/old/src uv run python bench/bench_startup.py``.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from _floor import FLOOR

TIME_TARGET = 1.10
RSS_TARGET_MIB = 8.0
IDLE_SECONDS = 2.0  # how long a server is left alone before its idle RSS is read


def _children() -> set[int]:
    """The pids of this process's children (every thread's list)."""
    found: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        with_children = task / "children"
        if with_children.is_file():
            found.update(int(pid) for pid in with_children.read_text().split())
    return found


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise LookupError(f"no VmRSS for {pid}")


async def _one(params: StdioServerParameters, expected_tools: int) -> tuple[float, float, float]:
    """(spawn -> tools/list, spawn -> the first tool call answered, RSS in MiB once started) of one start."""
    before = _children()
    with open(os.devnull, "w") as quiet:  # noqa: ASYNC230 - /dev/null never blocks
        started = time.perf_counter()
        async with Client(stdio_client(params, errlog=quiet), read_timeout_seconds=60) as client:
            tools = (await client.list_tools()).tools
            listed = time.perf_counter() - started
            # The first call that needs kie-mcp's runtime (list_tasks reads the journal; the floor echoes).
            name, arguments = ("echo", {"text": "hi"}) if len(tools) == 1 else ("list_tasks", {})
            result = await client.call_tool(name, arguments)
            answered = time.perf_counter() - started
            if result.is_error:
                raise RuntimeError(f"{params.command}: {name} failed: {result.content}")
            new = _children() - before
            if len(new) != 1:
                raise RuntimeError(f"expected one server process, found {sorted(new)}")
            rss = _rss_mib(new.pop())
    if len(tools) < expected_tools:
        raise RuntimeError(f"{params.command}: {len(tools)} tools listed, expected at least {expected_tools}")
    return listed, answered, rss


async def _idle(params: StdioServerParameters) -> float:
    """RSS in MiB of a server started and left idle: ``tools/list`` answered, then ``IDLE_SECONDS`` with no call (by
    then kie-mcp has opened its runtime on its own: journal, KIE client, follower, ``OPEN_AFTER_SECONDS``)."""
    before = _children()
    with open(os.devnull, "w") as quiet:  # noqa: ASYNC230 - /dev/null never blocks
        async with Client(stdio_client(params, errlog=quiet), read_timeout_seconds=60) as client:
            await client.list_tools()
            await anyio.sleep(IDLE_SECONDS)
            new = _children() - before
            if len(new) != 1:
                raise RuntimeError(f"expected one server process, found {sorted(new)}")
            return _rss_mib(new.pop())


def _with_env(params: StdioServerParameters, **env: str) -> StdioServerParameters:
    return params.model_copy(update={"env": {**(params.env or {}), **env}})


async def main(rounds: int) -> None:
    script = shutil.which("kie-mcp", path=str(Path(sys.executable).parent))
    if script is None:
        raise SystemExit("the kie-mcp console script is not installed beside this Python (run with `uv run`)")
    with TemporaryDirectory() as tmp:
        floor_path = Path(tmp) / "floor_server.py"
        floor_path.write_text(FLOOR, encoding="utf-8")
        workspace = Path(tmp) / "workspace"
        workspace.mkdir()
        floor = StdioServerParameters(command=sys.executable, args=[str(floor_path)], cwd=tmp)
        kie = StdioServerParameters(
            command=script,
            env={
                "KIE_WORKSPACE": str(workspace),
                "KIE_API_KEY": "bench-dummy-key-0000",
                "KIE_CATALOG_SYNC": "off",
                "KIE_CACHE_DIR": str(Path(tmp) / "cache"),
                **({"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}),
            },
            cwd=tmp,
        )
        await _one(floor, 1)  # warm the page cache and the bytecode caches of both
        await _one(kie, 9)  # ... and keep the tool listing in the workspace
        results: dict[str, list[tuple[float, float, float]]] = {"floor": [], "kie-mcp": [], "first start": []}
        idle: dict[str, list[float]] = {"floor": [], "kie-mcp": []}
        for n in range(rounds):
            idle["floor"].append(await _idle(floor))
            idle["kie-mcp"].append(await _idle(kie))
            results["floor"].append(await _one(floor, 1))
            results["kie-mcp"].append(await _one(kie, 9))
            empty_cache = Path(tmp) / f"cache-{n}"
            results["first start"].append(await _one(_with_env(kie, KIE_CACHE_DIR=str(empty_cache)), 9))

    times = {name: statistics.median(t for t, _, _ in runs) for name, runs in results.items()}
    first_call = {name: statistics.median(c for _, c, _ in runs) for name, runs in results.items()}
    rss = {name: statistics.median(r for _, _, r in runs) for name, runs in results.items()}
    print(f"cold start, median of {rounds} (Python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    print(f"{'':28}{'floor':>10}{'kie-mcp':>10}{'ratio':>9}   target")
    ratio = times["kie-mcp"] / times["floor"]
    print(
        f"{'spawn -> tools/list (ms)':28}{times['floor'] * 1000:>10.0f}{times['kie-mcp'] * 1000:>10.0f}"
        f"{ratio:>8.2f}x   <= {TIME_TARGET:.2f}x {'met' if ratio <= TIME_TARGET else 'NOT met'}"
    )
    idle_rss = {name: statistics.median(runs) for name, runs in idle.items()}
    extra = idle_rss["kie-mcp"] - idle_rss["floor"]
    print(
        f"{'RSS idle (MiB)':28}{idle_rss['floor']:>10.1f}{idle_rss['kie-mcp']:>10.1f}{extra:>+8.1f}M   "
        f"<= +{RSS_TARGET_MIB:.0f} MiB {'met' if extra <= RSS_TARGET_MIB else 'NOT met'} "
        f"(tools/list, then {IDLE_SECONDS:g} s with no call)"
    )
    called = rss["kie-mcp"] - rss["floor"]
    print(
        f"{'RSS after the first call':28}{rss['floor']:>10.1f}{rss['kie-mcp']:>10.1f}{called:>+8.1f}M   "
        "(floor: echo; kie-mcp: list_tasks, which loads the tools' code)"
    )
    first = times["first start"] / times["floor"]
    print(f"{'first start (empty cache)':28}{times['floor'] * 1000:>10.0f}{times['first start'] * 1000:>10.0f}"
          f"{first:>8.2f}x   (builds every tool once and keeps the listing)")  # fmt: skip
    call = first_call["kie-mcp"] / first_call["floor"]
    print(f"{'spawn -> first call (ms)':28}{first_call['floor'] * 1000:>10.0f}{first_call['kie-mcp'] * 1000:>10.0f}"
          f"{call:>8.2f}x   (floor: echo; kie-mcp: list_tasks, which opens the runtime)")  # fmt: skip
    paired = statistics.median(k[0] / f[0] for k, f in zip(results["kie-mcp"], results["floor"], strict=True))
    print(f"{'median of per-round ratios':28}{'':20}{paired:>8.2f}x")
    spread = {name: (min(r[0] for r in runs), max(r[0] for r in runs)) for name, runs in results.items()}
    print(
        "spawn -> tools/list range (ms): "
        + ", ".join(f"{name} {low * 1000:.0f}-{high * 1000:.0f}" for name, (low, high) in spread.items())
    )


if __name__ == "__main__":
    anyio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 10)
