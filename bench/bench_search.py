"""list_tasks' text search on a big journal: its time, and how long the event loop stalls while it runs.

Run: uv run python bench/bench_search.py [--tasks 50000] [--prompt-chars 2000] [--rounds 5]

A journal of ``--tasks`` tasks (``bench_calls.fill_journal``) whose prompts are lengthened to about
``--prompt-chars`` characters, with accents (``scène à la mer``): words no index can find, so every prompt is read.
The prompts are written as a kie-mcp before the folded column left them (none folded yet).

- before, reimplemented here as it was: the search on the event loop, on the journal's one connection, every prompt
  folded by a Python function as it is read (``instr(kie_fold(prompt), ?)``), and the matches counted by a second
  such scan when the page is full;
- now: ``list_tasks(text=...)`` through the SDK client against the server in this process (its event loop is the
  client's): the search in a worker thread, on a connection of its own, comparing the prompts folded when saved.
  The searches after the upgrade fold the older prompts once (in that thread, for a second at most each); they are
  shown apart.

Two searches: words no prompt holds (one scan) and a word a tenth of the prompts hold (a page of 50, then the count
of every match). Then ``session=`` written as a session folder's name (every task's label is one, as the seed
documents write them: ``outputs/<today>-batch-<n>``, 500 sessions), beside the same search by words (``batch-7``):
before, reimplemented here, the folder each label names worked out by a Python function for every row
(``kie_session_folder``, as the search was on 2026-12-07 before the journal kept it); now, the folder kept with each
task (``tasks.session_folder``), compared in SQL once the searches after the upgrade have named the older rows'
folders (shown apart). Also the listing without filters (a page and the count of every task) and the next page from
its cursor. For each: the median and the worst of ``--rounds`` calls, and the longest stall of a 5 ms ticker (how
much later than asked it woke) during them. The client runs in the same process, so the stalls of "now" include the
answer's shaping and the client's checks of it (for 50 tasks, some tens of ms), which "before" leaves out. Asserts
nothing.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path

import anyio
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).parent))
from bench_calls import fill_journal

TICK = 0.005
NO_MATCH = "no such words"
COMMON = "neon forest"  # two of fill_journal's words, side by side in about a tenth of the prompts


async def timed(work: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """``work``'s wall time and the longest stall of the event loop meanwhile (a ticker's lateness), in seconds."""
    stalls: list[float] = []
    done = anyio.Event()

    async def ticker() -> None:
        while not done.is_set():
            asked = time.perf_counter()
            await anyio.sleep(TICK)
            stalls.append(time.perf_counter() - asked - TICK)

    async with anyio.create_task_group() as group:
        group.start_soon(ticker)
        await anyio.sleep(3 * TICK)
        stalls.clear()
        started = time.perf_counter()
        await work()
        elapsed = time.perf_counter() - started
        done.set()
    return elapsed, max(stalls, default=0.0)


def old_search(db: sqlite3.Connection, words: str, limit: int = 50) -> int:
    """The search as it was: a Python fold of every prompt, on the event loop; counted again when the page is full."""
    from kie_mcp.journal import folded

    where = "WHERE instr(kie_fold(prompt), ?) > 0"
    rows = db.execute(f"SELECT * FROM tasks {where} ORDER BY created DESC LIMIT ?", (folded(words), limit)).fetchall()
    if len(rows) >= limit:
        return int(db.execute(f"SELECT COUNT(*) FROM tasks {where}", (folded(words),)).fetchone()[0])
    return len(rows)


def old_session_search(db: sqlite3.Connection, folder: str, limit: int = 50) -> int:
    """The search by a session folder's name as it was: the folder of every row's label worked out in Python."""
    where = "WHERE session IS NOT NULL AND kie_session_folder(session) = ?"
    rows = db.execute(f"SELECT * FROM tasks {where} ORDER BY created DESC LIMIT ?", (folder, limit)).fetchall()
    if len(rows) >= limit:
        return int(db.execute(f"SELECT COUNT(*) FROM tasks {where}", (folder,)).fetchone()[0])
    return len(rows)


def unnamed(workspace: Path) -> int:
    """How many session labels of the journal have no kept folder yet."""
    from kie_mcp.journal import journal_path

    with sqlite3.connect(journal_path(workspace)) as db:
        return int(
            db.execute("SELECT COUNT(*) FROM tasks WHERE session_folder IS NULL AND session IS NOT NULL").fetchone()[0]
        )


def unfolded(workspace: Path) -> int:
    """How many prompts of the journal are not folded yet."""
    from kie_mcp.journal import journal_path

    with sqlite3.connect(journal_path(workspace)) as db:
        return int(
            db.execute("SELECT COUNT(*) FROM tasks WHERE prompt_folded IS NULL AND prompt IS NOT NULL").fetchone()[0]
        )


def line(label: str, runs: list[tuple[float, float]]) -> str:
    times, stalls = [t for t, _ in runs], [s for _, s in runs]
    return (
        f"  {label:<58} {statistics.median(times) * 1000:8.0f} ms (worst {max(times) * 1000:5.0f})"
        f"   stall {max(stalls) * 1000:7.1f} ms"
    )


async def main(tasks: int, prompt_chars: int, rounds: int) -> None:
    from mcp import Client

    from kie_mcp.config import Settings
    from kie_mcp.journal import folded, journal_path, session_folder_of
    from kie_mcp.sandbox import SANDBOX_API_KEY, SandboxTransport, SimConfig, Simulator
    from kie_mcp.server import create_server

    with tempfile.TemporaryDirectory(prefix="kie-bench-search-") as folder:
        workspace = Path(folder)
        started = time.perf_counter()
        fill_journal(workspace, tasks)
        db = sqlite3.connect(journal_path(workspace), isolation_level=None)
        filler = "scène à la mer, " * (prompt_chars // 16 + 1)
        db.execute("UPDATE tasks SET prompt = prompt || ' ' || substr(?, 1, ?)", (filler, prompt_chars))
        db.execute("UPDATE tasks SET prompt_folded = NULL")  # as a kie-mcp before the folded column left them
        today = date.today().isoformat()
        db.execute("UPDATE tasks SET session = 'outputs/' || ? || '-batch-' || (rowid % 500)", (today,))
        db.execute("UPDATE tasks SET session_folder = NULL")  # as a kie-mcp before the kept folder left them
        named = f"{today}-batch-7"
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.create_function("kie_fold", 1, folded, deterministic=True)
        db.create_function("kie_session_folder", 1, session_folder_of, deterministic=True)
        took = time.perf_counter() - started
        print(f"{tasks} tasks, prompts of about {prompt_chars} characters ({took:.0f} s to write)")

        print("before: on the event loop, a Python fold of every prompt")
        for label, words in (
            (f"text {NO_MATCH!r} (no match)", NO_MATCH),
            (f"text {COMMON!r} (a page, then the count)", COMMON),
        ):

            async def old(words: str = words) -> None:
                old_search(db, words)

            print(line(label, [await timed(old) for _ in range(rounds)]))

        async def old_by_folder() -> None:
            old_session_search(db, named)

        print(
            line(
                f"session 'outputs/{named}' (its folder, per row)", [await timed(old_by_folder) for _ in range(rounds)]
            )
        )
        db.close()

        settings = Settings(
            api_key=SecretStr(SANDBOX_API_KEY),
            base_url="http://api.kie.test",
            upload_base_url="http://upload.kie.test",
            workspace=workspace,
            catalog_sync=False,
        )
        server = create_server(settings, transport=SandboxTransport(Simulator(SimConfig(speed=1000.0))))
        print("now: list_tasks over the SDK client, the search in a worker thread on its own connection")
        async with Client(server, mode="auto", read_timeout_seconds=600) as client:
            await client.call_tool("list_models", {"kind": "image"})  # the runtime open, the tools built

            async def call(arguments: dict[str, object]) -> None:
                result = await client.call_tool("list_tasks", arguments)
                if result.is_error:
                    raise RuntimeError(result.content)

            upgrade = []
            while unfolded(workspace):  # each search folds for a second at most (Journal.fold_prompts)
                upgrade.append(await timed(lambda: call({"text": NO_MATCH})))
            print(line(f"the {len(upgrade)} searches after the upgrade (folding older prompts)", upgrade))
            for label, words in (
                (f"text {NO_MATCH!r} (no match)", NO_MATCH),
                (f"text {COMMON!r} (a page, then the count)", COMMON),
            ):
                print(line(label, [await timed(lambda w=words: call({"text": w})) for _ in range(rounds)]))
            print(
                line(
                    "no filters (a page of 50 and the count of every task)",
                    [await timed(lambda: call({})) for _ in range(rounds)],
                )
            )
            upgrade = []
            while unnamed(workspace):  # each search by a folder names older labels for a second at most
                upgrade.append(await timed(lambda: call({"session": f"outputs/{named}"})))
            print(line(f"the {len(upgrade)} session searches after the upgrade (naming folders)", upgrade))
            for label, session in (
                (f"session 'outputs/{named}' (its folder, kept)", f"outputs/{named}"),
                ("session 'batch-7' (words of the label: the baseline)", "batch-7"),
            ):
                print(line(label, [await timed(lambda s=session: call({"session": s})) for _ in range(rounds)]))
            first = await client.call_tool("list_tasks", {})
            cursor = first.structured_content["next_cursor"]
            print(
                line(
                    "the next page, from its cursor",
                    [await timed(lambda: call({"cursor": cursor})) for _ in range(rounds)],
                )
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=50_000)
    parser.add_argument("--prompt-chars", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    arguments = parser.parse_args()
    anyio.run(main, arguments.tasks, arguments.prompt_chars, arguments.rounds)
