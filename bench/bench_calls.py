"""Per-call cost against the floor (run: uv run python bench/bench_calls.py [--calls 300] [--tasks 50000]).

Five stdio servers, started the same way (this Python's console script or a script file, over the SDK's
``stdio_client``) and called in turn, so drift hits all alike:

- the floor: a bare ``mcp`` SDK ``MCPServer`` with one trivial tool (``echo``);
- the floor answering with one real ``estimate_cost`` answer, canned (no work: the cost of the answer's size, its
  serialising, sending and the client's checks of it against nothing but the protocol);
- the same canned answer published under ``estimate_cost``'s real output schema, so the SDK client checks the
  structured answer against it as it checks kie-mcp's (what any server answering with this schema pays);
- ``kie-mcp --sandbox`` on an empty workspace;
- ``kie-mcp --sandbox`` on a workspace whose journal holds ``--tasks`` tasks (written directly: attempts, tasks,
  files, spend entries and quotes over 100 days, a tenth of them for the very model and options estimated).

Each call to kie-mcp is an ``estimate_cost`` (a new prompt every time: validate, price, look up past charges,
issue a quote, read today's spend and the balance). Prints p50/p95 of each next to the floor's trivial tool,
against the target (estimate_cost p50 <= 1.2 x the floor, flat from 0 to ``--tasks`` tasks), and kie-mcp's own
share: its p50 over the canned answer with the same schema. Then the thumbnail of a 4K PNG: made (decoded in a
worker thread, kept beside the file) and then read back from where it is kept. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from _floor import CANNED_FLOOR, CANNED_SCHEMA_FLOOR, FLOOR

TARGET = 1.2
ESTIMATED = "nano-banana-2"  # the model every estimate asks about (and a tenth of the journal's tasks used)
PROMPT = "A red apple on a wooden table, morning light, shot {i}"


# -- a big journal, written directly ------------------------------------------------------------------------


def fill_journal(workspace: Path, tasks: int, seed: int = 7) -> None:
    """``tasks`` finished tasks with their attempts, files, spend and quotes, as a busy workspace would hold."""
    from kie_mcp.catalog import build_input, load_catalog
    from kie_mcp.generation import options_key
    from kie_mcp.journal import Journal

    rng = random.Random(seed)
    catalog = load_catalog()
    specs = [spec for spec in catalog.offered() if spec.kind == "image"][:15] + [
        spec for spec in catalog.offered() if spec.kind == "video"
    ][:15]
    estimated = catalog.get(ESTIMATED)
    hot_key = options_key(estimated, build_input(estimated, prompt="x"))
    journal = Journal.for_workspace(workspace)
    now = time.time()
    attempts, rows, files, spend, quotes = [], [], [], [], []
    for n in range(tasks):
        hot = n % 10 == 0
        spec = estimated if hot else rng.choice(specs)
        key = hot_key if hot else f"{rng.getrandbits(64):016x}"
        created = now - rng.uniform(0, 100 * 86400)
        updated = created + rng.uniform(5, 600)
        state = "succeeded" if rng.random() < 0.9 else "failed"
        charged = 8.0 if hot else float(rng.choice((4, 8, 12, 30, 60, 120)))
        attempt_id, task_id, quote_id = f"a_{n:016x}", f"task_{uuid.UUID(int=rng.getrandbits(128)).hex}", f"q_{n:016x}"
        prompt = f"bench prompt {n} " + " ".join(rng.choice(("cat", "city", "sea", "neon", "forest")) for _ in range(8))
        params = json.dumps({"prompt": prompt, "aspect_ratio": "1:1"})
        attempts.append(
            (attempt_id, spec.id, spec.family, "quote", quote_id, prompt, params, key, charged, "created", task_id,
             None, None, created, updated)
        )  # fmt: skip
        record = {
            "task_id": task_id, "model": spec.id, "family": spec.family, "kind": spec.kind, "state": state,
            "progress": 1.0, "result_urls": [f"https://cdn.example/{task_id}.png"], "files": [],
            "credits_quoted": charged, "credits_reserved": charged,
            "credits_charged": charged if state == "succeeded" else None, "created_at": created, "sandbox": True,
        }  # fmt: skip
        day = datetime.fromtimestamp(created).date().isoformat()
        relative = f"outputs/{day}-bench/{spec.id.replace('/', '-')}_{task_id}_1.png"
        if state == "succeeded":
            record["files"] = [relative]
            files.append((task_id, 1, relative, "0" * 64, 123_456, "image/png", record["result_urls"][0], updated))
        rows.append((task_id, attempt_id, spec.id, state, prompt, None, json.dumps(record), created, updated, key))
        spend.append((day, charged, "reserved", quote_id, created, created))
        if state == "failed":  # counted at its reservation's moment
            spend.append((day, -charged, "refunded: task failed", task_id, updated, created))
        digest = f"{rng.getrandbits(256):064x}"
        body = json.dumps({"quote_id": quote_id, "model": spec.id})
        quotes.append((quote_id, spec.id, digest, body, created + 600, 1, created, "estimate"))
    with journal.transaction() as db:
        db.executemany(
            "INSERT INTO attempts (attempt_id, model, family, approved_by, quote_id, prompt, params, options_key,"
            " credits_quoted, state, task_id, error, session, created, updated)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            attempts,
        )
        columns = "task_id, attempt_id, model, state, prompt, session, record, created, updated"
        if "options_key" in {row[1] for row in db.execute("PRAGMA table_info(tasks)")}:
            columns += ", options_key"  # what the journal's trigger would copy from the attempt, written at once
        else:
            rows = [row[:-1] for row in rows]
        marks = ", ".join("?" * len(columns.split(", ")))
        db.executemany(f"INSERT INTO tasks ({columns}) VALUES ({marks})", rows)
        db.executemany(
            "INSERT INTO files (task_id, idx, path, sha256, size, mime, source_url, created)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            files,
        )
        spend_columns = "day, delta, reason, ref, at"
        counted = "counted_at" in {row[1] for row in db.execute("PRAGMA table_info(spend)")}
        if counted:
            spend_columns += ", counted_at"  # the moment each entry counts at (an older journal has none)
        else:
            spend = [row[:-1] for row in spend]
        marks = ", ".join("?" * len(spend_columns.split(", ")))
        db.executemany(f"INSERT INTO spend ({spend_columns}) VALUES ({marks})", spend)
        db.executemany(
            "INSERT INTO quotes (quote_id, model, digest, body, expires, used, created, kind)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            quotes,
        )
        # Today's spend stays under the cap, so the estimate is a normal one.
        today = date.today().isoformat()
        db.execute("UPDATE spend SET day = ? WHERE day = ?", ((date.today() - timedelta(days=1)).isoformat(), today))
        if counted:
            midnight = datetime.combine(date.today(), datetime.min.time()).timestamp()
            db.execute("UPDATE spend SET counted_at = counted_at - 86400 WHERE counted_at >= ?", (midnight,))
    journal.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    journal.close()


# -- latency over stdio ------------------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * share), len(ordered) - 1)]


async def latencies(servers: dict[str, StdioServerParameters], calls: int, warmup: int = 20) -> dict[str, list[float]]:
    """Call each server's tool ``calls`` times, round robin; each call's wall time in seconds."""
    found: dict[str, list[float]] = {name: [] for name in servers}
    with open(os.devnull, "w") as quiet:  # noqa: ASYNC230 - /dev/null never blocks
        async with anyio.create_task_group() as group:
            clients: dict[str, Client] = {}
            ready = anyio.Event()
            done = anyio.Event()

            async def hold(name: str, params: StdioServerParameters) -> None:
                async with Client(stdio_client(params, errlog=quiet), read_timeout_seconds=120) as client:
                    clients[name] = client
                    if len(clients) == len(servers):
                        ready.set()
                    await done.wait()

            for name, params in servers.items():
                group.start_soon(hold, name, params)
            await ready.wait()
            for i in range(-warmup, calls):
                for name, client in clients.items():
                    tool, arguments = _call(name, i)
                    started = time.perf_counter()
                    result = await client.call_tool(tool, arguments)
                    elapsed = time.perf_counter() - started
                    if result.is_error:
                        raise RuntimeError(f"{name}: {tool} failed: {result.content}")
                    if i >= 0:
                        found[name].append(elapsed)
            done.set()
    return found


def _call(name: str, i: int) -> tuple[str, dict[str, object]]:
    if name == "floor":
        return "echo", {"text": PROMPT.format(i=i)}
    if name in ("canned", "schema"):
        return "canned", {"model": ESTIMATED, "prompt": PROMPT.format(i=i)}
    return "estimate_cost", {"model": ESTIMATED, "prompt": PROMPT.format(i=i)}


LABELS = {
    "floor": "floor: trivial tool (bare SDK)",
    "canned": "floor: estimate's answer, canned",
    "schema": "floor: the same, with its schema",
}


async def one_answer(params: StdioServerParameters) -> dict[str, object]:
    """One real ``estimate_cost`` answer of kie-mcp and the tool's listed output schema, as JSON (for the canned
    floors)."""
    with open(os.devnull, "w") as quiet:  # noqa: ASYNC230 - /dev/null never blocks
        async with Client(stdio_client(params, errlog=quiet), read_timeout_seconds=120) as client:
            listed = {tool.name: tool for tool in (await client.list_tools()).tools}
            result = await client.call_tool("estimate_cost", {"model": ESTIMATED, "prompt": PROMPT.format(i=-1)})
    return {
        "answer": result.model_dump(mode="json", by_alias=True, exclude_none=True),
        "output_schema": listed["estimate_cost"].output_schema,
    }


def kie_server(script: str, workspace: Path, cwd: str) -> StdioServerParameters:
    env = {
        "KIE_WORKSPACE": str(workspace),
        "KIE_CATALOG_SYNC": "off",
        "KIE_LOG_LEVEL": "WARNING",
        "KIE_CACHE_DIR": str(Path(cwd) / "cache"),  # the kept tool listing, in the run's own folder
        "PATH": os.environ.get("PATH", ""),
    }
    if "PYTHONPATH" in os.environ:  # e.g. another checkout's src/, to compare
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return StdioServerParameters(command=script, args=["--sandbox"], env=env, cwd=cwd)


# -- thumbnails --------------------------------------------------------------------------------------------


def bench_thumbnail(folder: Path, rounds: int = 5) -> tuple[float, float, int]:
    """(seconds to make the thumbnail of a 4K PNG, seconds to get it again once kept, PNG size in bytes)."""
    from PIL import Image

    from kie_mcp.media.downloads import thumbnail

    rng = random.Random(3)
    made, again = [], []
    size = 0
    for n in range(rounds):
        path = folder / f"big_{n}.png"
        noise = Image.frombytes("RGB", (480, 270), rng.randbytes(480 * 270 * 3)).resize((3840, 2160))
        noise.save(path, format="PNG")  # a photo-like 4K PNG: every pixel decoded
        size = path.stat().st_size
        started = time.perf_counter()
        first = thumbnail(path)
        made.append(time.perf_counter() - started)
        started = time.perf_counter()
        second = thumbnail(path)
        again.append(time.perf_counter() - started)
        assert first is not None
        assert second == first
    return min(made), min(again), size


# -- the report -----------------------------------------------------------------------------------------------


async def main(calls: int, tasks: int) -> None:
    script = shutil.which("kie-mcp", path=str(Path(sys.executable).parent))
    if script is None:
        raise SystemExit("the kie-mcp console script is not installed beside this Python (run with `uv run`)")
    with TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "floor_server.py").write_text(FLOOR, encoding="utf-8")
        empty, full = root / "empty", root / "full"
        empty.mkdir()
        full.mkdir()
        started = time.perf_counter()
        fill_journal(full, tasks)
        filled = time.perf_counter() - started
        saved = await one_answer(kie_server(script, empty, tmp))
        answer, with_schema = root / "answer.json", root / "answer-and-schema.json"
        answer.write_text(json.dumps(saved["answer"]), encoding="utf-8")
        with_schema.write_text(json.dumps(saved), encoding="utf-8")
        (root / "canned_server.py").write_text(CANNED_FLOOR, encoding="utf-8")
        (root / "canned_schema_server.py").write_text(CANNED_SCHEMA_FLOOR, encoding="utf-8")
        servers = {
            "floor": StdioServerParameters(command=sys.executable, args=[str(root / "floor_server.py")], cwd=tmp),
            "canned": StdioServerParameters(
                command=sys.executable, args=[str(root / "canned_server.py"), str(answer)], cwd=tmp
            ),
            "schema": StdioServerParameters(
                command=sys.executable, args=[str(root / "canned_schema_server.py"), str(with_schema)], cwd=tmp
            ),
            "0 tasks": kie_server(script, empty, tmp),
            f"{tasks:,} tasks": kie_server(script, full, tmp),
        }
        found = await latencies(servers, calls)
        made, again, png_bytes = bench_thumbnail(root)

    floor50 = percentile(found["floor"], 0.5)
    print(f"per call over stdio, {calls} calls each after 20 warm-up (Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs; journal of {tasks:,} tasks written in {filled:.1f} s)")  # fmt: skip
    print(f"{'':34}{'p50 ms':>9}{'p95 ms':>9}{'p50 / floor':>13}")
    for name, values in found.items():
        label = LABELS.get(name, f"kie-mcp estimate_cost, {name}")
        p50, p95 = percentile(values, 0.5), percentile(values, 0.95)
        print(f"{label:34}{p50 * 1000:>9.2f}{p95 * 1000:>9.2f}{p50 / floor50:>12.2f}x")
    worst = max(percentile(v, 0.5) for name, v in found.items() if name not in LABELS) / floor50
    print(f"target: estimate_cost p50 <= {TARGET:.1f}x the floor at 0 and {tasks:,} tasks: "
          f"{'met' if worst <= TARGET else 'NOT met'} ({worst:.2f}x)")  # fmt: skip
    schema50 = percentile(found["schema"], 0.5)
    own = max(percentile(v, 0.5) for name, v in found.items() if name not in LABELS) / schema50
    print(f"of which the client checking the structured answer against its schema: {schema50 / floor50:.2f}x; "
          f"kie-mcp's own work: {own:.2f}x the canned answer with the same schema")  # fmt: skip
    print(
        f"thumbnail of a 4K PNG ({png_bytes / 1e6:.1f} MB): made {made * 1000:.1f} ms (in a worker thread, off the "
        f"event loop), kept one read back {again * 1000:.2f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--tasks", type=int, default=50_000)
    options = parser.parse_args()
    anyio.run(main, options.calls, options.tasks)
