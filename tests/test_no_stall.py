"""Hostile text never stalls the server: every pattern and loop that reads text an agent, a client, a workspace file
or KIE sends runs in time that grows with the text, not with its square (the event loop, and every other request
with it, waited seconds to minutes on a few kilobytes before). Each case is 100 KB crafted to hit the worst case;
bounded by the stall it guards against (the old code took 4 s to over 30 s a case, some minutes), not by a speed."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from kie_mcp import completions, config, prompts, redact, stdio, words
from kie_mcp.catalog import drift, live, script
from kie_mcp.media import sniff, stitch

N = 100_000
FLAG = "\U0001f3f4\U000e0067\U000e007f"  # a subdivision flag's tag characters, escaped one by one

CASES: dict[str, Callable[[], Any]] = {
    "a run of Slack-like digit groups (redaction of every text)": lambda: redact.redact(
        "xoxb-" + "123456-" * (N // 7) + "_"
    ),
    "a stdio line of escaped quotes never closed": lambda: stdio.top_level_members('"' + '\\"' * (N // 2)),
    "a completion reference's URI of braces": lambda: completions._bare("kie://models/" + "{" * N),
    "a script of exclamation marks": lambda: script._sentences("!" * N + "x"),
    "a long script split into parts": lambda: script.split_script(
        "Hello there my friend. " * 40 + ". " * (N // 2), 8.0, 10.0
    ),
    "a prompt of speech cues, the long script after them": lambda: script._already_says(
        "She says " * (N // 9) + "word " * (N // 5), "word " * (N // 5)
    ),
    "a product argument of opening quotes": lambda: prompts._product_photo("\u201c" * N),
    "invisible characters among flags": lambda: words.unseen_escaped(FLAG * (N // 3)),
    "a caption of braces": lambda: stitch._libass_changes([stitch.Caption(0, 1, "{" * N)]),
    "KIE's price text of digits (live)": lambda: live._CREDITS.findall("1" * N),
    "KIE's price text of digits (drift)": lambda: drift._CREDITS.findall("1" * N),
    "KIE's price text of spaces": lambda: live._SOME_SECONDS.search("1" + " " * N + "x"),
    "KIE's price text of per-per-": lambda: live._PER_REQUEST.search("per-" * (N // 4)),
    "a field name of capitals in KIE's schema": lambda: live._words("A" * N),
    "a model title of spaces in KIE's list": lambda: live._short_title("a" + " " * N + "b"),
    "a .env name of MAXMAX...": lambda: config._MONEY_NAME.search("MAX" * (N // 3)),
    "a .env key placeholder never closed": lambda: config._unfilled("KIE_API_KEY", "${" + "a" * N, "the key"),
    "a reference of spaces after a private key's opening line": lambda: sniff.holds_private_key(
        b"-----BEGIN PRIVATE KEY-----" + b" " * N + b"!"
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_text_never_stalls_the_server(case):
    started = time.perf_counter()
    CASES[case]()
    assert time.perf_counter() - started < 10, case
