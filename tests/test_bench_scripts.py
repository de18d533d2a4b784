"""Every ``bench/`` script still runs and prints its figures beside its baseline.

The benchmarks are how kie-mcp proves its speed and memory (README, "Performance"); a script broken by a change
elsewhere proves nothing, and nobody notices until the next measurement. Each runs here at a tiny size, as a user
would run it (``python bench/<script>``, from the project's folder), and must finish cleanly with both columns
printed. No figure is asserted: speed is the scripts' business, not the tests'.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .browser import SKIP_REASON, find_chromium

ROOT = Path(__file__).resolve().parents[1]

# (script and its arguments at a tiny size, texts its output must hold: the baseline's and kie-mcp's figures)
SCRIPTS = [
    (["bench_calls.py", "--calls", "10", "--tasks", "100"], ["floor: trivial tool", "estimate_cost, 100 tasks"]),
    (["bench_core.py"], ["generate_image round trip", "none refused by the simulator"]),
    (
        ["bench_download.py", "--sizes-mb", "1", "--repeats", "1"],
        ["sim MB/s", "files left in the folder after the runs: 0"],
    ),
    (["bench_gallery.py", "--results", "40", "--repeats", "1"], ["full rebuild", "kept: newest"]),
    (["bench_model_tables.py", "--rounds", "1"], ["before: every read rendered", "now: kept"]),
    (["bench_pacing.py", "--count", "5"], ["old (stamp at grant", "new (held to answer", "429 answers"]),
    (["bench_polling.py", "400"], ["old (per call)", "follower, alone", "5-minute Veo video: follower"]),
    (["bench_redact.py", "--rounds", "50"], ["every pattern", "whole forms", "kie-mcp"]),
    (["bench_resources.py", "--files", "50", "--rounds", "1"], ["before: one answer", "now: the first page"]),
    (
        ["bench_search.py", "--tasks", "300", "--rounds", "1"],
        ["before: on the event loop", "now: list_tasks", "(its folder, per row)", "(its folder, kept)"],
    ),
    (["bench_startup.py", "1"], ["spawn -> tools/list", "RSS idle", "RSS after the first call"]),
    (["bench_writer.py", "--rounds", "2"], ["SDK writer alone", "kie-mcp"]),
]


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("KIE_")}  # no user settings
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / args[0]), *args[1:]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _assert_printed(result: subprocess.CompletedProcess[str], expected: list[str]) -> None:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    missing = [text for text in expected if text not in result.stdout]
    assert not missing, f"{missing} not printed:\n{result.stdout[-3000:]}"


@pytest.mark.parametrize(("args", "expected"), SCRIPTS, ids=[args[0] for args, _ in SCRIPTS])
def test_bench_script_runs_and_prints_its_figures_beside_the_baseline(args: list[str], expected: list[str]) -> None:
    _assert_printed(_run(args), expected)


def test_every_bench_script_is_run_here() -> None:
    """A script added to ``bench/`` without a row above would rot unseen."""
    scripts = {path.name for path in (ROOT / "bench").glob("bench_*.py")}
    covered = {args[0] for args, _ in SCRIPTS} | {"bench_gallery_pages.py"}
    assert scripts == covered


@pytest.mark.skipif(find_chromium() is None, reason=SKIP_REASON)
def test_gallery_pages_bench_opens_both_indexes_in_chromium() -> None:
    result = _run(["bench_gallery_pages.py", "--sessions", "2", "--clips", "2", "--before"])
    _assert_printed(result, ["before: load event", "now: load event", "the last clip: played"])
