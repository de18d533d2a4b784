"""A quote a crashed server left approves its request once more, and never twice: the owner tags that tell a crashed
server from a live one hold across PID namespaces, and two servers replaying one such quote never both spend it.

The review of 2026-12-05: a server in another PID namespace of the same host name (two containers on the host
network, a sandbox) saw a live server's process id as missing, took it for crashed, released the quote it was
spending and spent it again (two creates, one approval); and the release was a statement apart from the consume,
so two servers replaying a crashed server's quote could both spend it.
"""

from __future__ import annotations

import multiprocessing
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kie_mcp.catalog import ItemPrice
from kie_mcp.journal import Journal
from kie_mcp.processes import HOST, owner_gone, this_process
from kie_mcp.spend.quotes import QuoteBook, QuoteError

PRICE = ItemPrice(
    known=True, credits=8.0, unit="image", breakdown="8 credits", source="KIE price list", source_date="2026-12-01"
)


def test_a_live_server_in_another_pid_namespace_is_never_taken_for_a_crashed_one():
    """From inside a new PID namespace (as a second container on the host network is), this process's tag names a
    process id that namespace cannot see: it is another machine's (None, nothing decided on it), never "gone"."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare here")
    probe = f"from kie_mcp.processes import owner_gone; print(owner_gone({this_process()!r}))"
    done = subprocess.run(
        ["unshare", "-pf", "--mount-proc", sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"cannot make a PID namespace here: {done.stderr.strip()[-200:]}")
    assert done.stdout.strip() == "None", done.stdout + done.stderr


def _replay(journal: Path, start: multiprocessing.synchronize.Barrier, work, results) -> None:
    """A second server's consume of each quote it is given, all servers at once."""
    book = QuoteBook(Journal(journal))
    while (item := work.get()) is not None:
        start.wait()
        try:
            book.consume(*item)
            results.put(True)
        except QuoteError:
            results.put(False)


def test_two_servers_replaying_a_quote_a_crashed_server_left_never_both_spend_it(tmp_path):
    journal = tmp_path / "journal.sqlite3"
    book = QuoteBook(Journal(journal))
    spawn = multiprocessing.get_context("spawn")
    with subprocess.Popen([sys.executable, "-c", "pass"]) as ended:  # a process id gone once it ended
        ended.wait()
    crashed = f"{HOST}-{ended.pid}-crashed"
    start, results = spawn.Barrier(2), spawn.Queue()
    queues = [spawn.Queue(), spawn.Queue()]
    servers = [spawn.Process(target=_replay, args=(journal, start, work, results)) for work in queues]
    for server in servers:
        server.start()
    try:
        wins = []
        for trial in range(40):
            quote = book.issue("nano-banana-2", f"request-{trial}", PRICE, 1)
            book.journal.execute(  # as a server that crashed while its input uploaded left it
                "UPDATE quotes SET used = 1, used_by = ?, used_at = ? WHERE quote_id = ?",
                crashed,
                time.time(),
                quote.quote_id,
            )
            for work in queues:
                work.put((quote.quote_id, f"request-{trial}"))
            wins.append(results.get(timeout=30) + results.get(timeout=30))
    finally:
        for work in queues:
            work.put(None)
        for server in servers:
            server.join(timeout=30)
    assert set(wins) == {1}, wins  # each quote approved its request once more, and exactly once
    assert owner_gone(crashed) is True


@pytest.mark.parametrize("pid", ["①", "١٢", "²", "9" * 5000], ids=["circled", "arabic-indic", "superscript", "huge"])
def test_an_owner_tag_whose_process_id_is_no_process_id_is_one_nobody_can_tell_and_never_an_error(pid):
    """A tag of this machine whose process id is not one (Unicode digits ``str.isdigit`` takes, which ``int`` then
    refuses; thousands of digits, which ``int`` refuses too): written by no kie-mcp, so nothing is decided on it
    (None), and it never raises (read from a shared pacing file, it raised into a request)."""
    assert owner_gone(f"{HOST}-{pid}-0123abcd/7") is None
