"""The prices the documents give agents and users to plan with say what estimate_cost quotes.

The docs audit of 2026-12-05 found Seedance 2 Fast and Mini in MASTER_CONTEXT.md's price table at an offer price that
had ended two months before (the catalogue had moved on; the table had not): a marketer budgeting from it
under-planned by 1.3-2.5x. Every plain figure of the table (a number, perhaps with a footnote mark; a cell with words
in it is read by a person, not checked) is asked of the server, through the real MCP client, for the model and
resolution its row and column name.

A later audit found the prompt library's worked examples drifting the same way (Kling 3.0 Omni at 18 credits a second
with sound, quoted at 20; "14 words -> 6 s" where kie-mcp picks 7 s): every cost a worked example states (a
``Cost:`` line, or a plan's sum in a table) and every "N words -> S s -> D s" it works out is tied here to the
estimate_cost requests of that example, and checked against what the server quotes and says of the script.

The review after it found those requests were the test's own copies (an example edited to 10 s with sound, its cost
line unchanged, still passed) and a price outside the examples wrong (sora-2.md's Kling 3.0 Omni at 270 credits for
300): each example's requests are checked against the settings its own text states, and every "N credits" of the
library and the guide is quoted here, a default cap, or listed as unchecked with the reason.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from kie_mcp.catalog import USD_PER_CREDIT, load_catalog
from kie_mcp.sandbox.looping import loop_clip

from .conftest import eras_in_turn, text_of

ROOT = Path(__file__).resolve().parents[1]
MASTER = ROOT / "MASTER_CONTEXT.md"
LIBRARY = ROOT / "prompting" / "prompt-library"
PLAIN = re.compile(r"(\d+(?:\.\d+)?)(?: [¹²³])?")  # a figure alone, perhaps with its footnote mark
PICTURE = "https://example.com/reference.png"


def _tables(text: str) -> list[list[list[str]]]:
    """The markdown tables of ``text`` after its price snapshot's heading, each as rows of cells (header first)."""
    start = text.index("Snapshot of KIE's published prices")
    tables, rows = [], []
    for line in text[start:].splitlines():
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not all(set(cell) <= set("-: ") for cell in cells):
                rows.append(cells)
        elif rows:
            tables.append(rows)
            rows = []
        if line.startswith("Observed costs"):
            break
    return tables


def figures() -> list[tuple[str, str, float, bool]]:
    """(model id, resolution column, credits, per second) of every plain figure of the price tables."""
    catalog = load_catalog()
    found = []
    for table in _tables(MASTER.read_text(encoding="utf-8"))[:2]:
        header, *rows = table
        for row in rows:
            per_second = "per second" in row
            ids = [name for name in re.findall(r"`([^`]+)`", row[0]) if catalog.get(name) is not None]
            for column, cell in zip(header, row, strict=True):
                match = PLAIN.fullmatch(cell)
                if match and re.fullmatch(r"\d+[Kp]", column):
                    found += [(model, column, float(match[1]), per_second) for model in ids]
    return found


FIGURES = figures()


def test_the_price_tables_are_read():
    """The parser keeps up with the document: most of the figures a person reads there are checked."""
    models = {model for model, *_ in FIGURES}
    assert len(FIGURES) >= 30, FIGURES
    assert {"nano-banana-2", "veo3_fast", "bytedance/seedance-2-fast", "bytedance/seedance-2-mini"} <= models


@eras_in_turn(("model", "column", "credits", "per_second"), FIGURES, ids=[f"{m} {c}" for m, c, *_ in FIGURES])
async def test_each_figure_of_master_context_is_what_estimate_cost_quotes(connect, model, column, credits, per_second):
    spec = load_catalog().get(model)
    assert spec is not None
    request: dict = {"model": model, "prompt": "a glass bottle on a beach at dawn"}
    resolution = spec.field_for_arg("resolution")
    if resolution is not None:
        wanted = next((v for v in resolution.values or [] if str(v).lower() == column.lower()), None)
        assert wanted is not None, f"{model} takes no {column}: {resolution.values}"
        request["resolution"] = wanted
    ratio = spec.field_for_arg("aspect_ratio")
    if ratio is not None and "16:9" in (ratio.values or []):  # a fixed ratio: "auto" makes 1K only on some
        request["aspect_ratio"] = "16:9"
    seconds = None
    if per_second:
        duration = spec.field_for_arg("duration")
        assert duration is not None, model
        seconds = duration.default or (duration.values or [duration.min])[0]
        request["duration"] = seconds
    async with connect() as client:
        quoted = await client.call_tool("estimate_cost", request)
        if quoted.is_error and "input image" in text_of(quoted):  # an edit: priced with a picture to edit
            quoted = await client.call_tool("estimate_cost", {**request, "images": [PICTURE]})
    assert not quoted.is_error, text_of(quoted)
    total = quoted.structured_content["quote"]["credits_total"]
    assert total is not None, text_of(quoted)
    said = total / float(seconds) if seconds else total
    assert said == pytest.approx(credits), (
        f"MASTER_CONTEXT.md says {credits:g} for {model} at {column}; quoted {said:g}"
    )


# -- the prompt library's worked examples -------------------------------------------------------------------------

# What the library states, in the forms it writes: the words of a script and the clip kie-mcp gives them, a cost line
# of a worked example (or a line that is only a cost in brackets), and a plan's sum in a table of typical costs.
SPOKEN = re.compile(r"\((?P<words>\d+) words → (?P<seconds>[\d.]+) s → [^\d;)]*?(?P<duration>\d+) s")
SUM = r"(?:(?P<sum>[\d.]+(?: [×+] [\d.]+)+) = )?(?P<total>\d[\d,]*(?:\.\d+)?)"
COST = re.compile(rf"(?:\bCost(?: at list prices)?: (?:about )?|^\(){SUM} credits(?: \(≈ \$(?P<usd>[\d.]+)\))?")
TABLE_SUM = re.compile(r"\| (?P<sum>[\d.]+(?: [×+] [\d.]+)+) = (?P<total>\d[\d,]*)(?: \(≈ \$(?P<usd>[\d.]+)\))? \|")
TABLE_USD = re.compile(r"= [\d,]+ \| \$(?P<usd>[\d.]+) \|")
PICTURES = [f"https://example.com/reference-{n}.png" for n in range(1, 4)]
FORTY_WORDS = " ".join(["word"] * 39) + " end."


@dataclass(frozen=True, eq=False)
class Example:
    """A worked example of a library document: its text runs from the line holding ``anchor`` to the next example's
    anchor (or the end); ``calls`` are the estimate_cost requests whose quotes add up to the cost it states, and
    ``spoken`` the request whose script it works out (default: the one call with a script)."""

    doc: str
    anchor: str
    calls: list[dict[str, Any]]
    spoken: dict[str, Any] | None = None

    @property
    def scripted(self) -> dict[str, Any] | None:
        return self.spoken or next((call for call in self.calls if "script" in call), None)


def _nano(model: str, ratio: str, images: int = 0, **more: Any) -> dict[str, Any]:
    return {"model": model, "aspect_ratio": ratio, "resolution": "2K", **more, **_pictures(images)}


def _pictures(count: int) -> dict[str, Any]:
    return {"images": PICTURES[:count]} if count else {}


VEO_STILL = {"generationType": "FIRST_AND_LAST_FRAMES_2_VIDEO"}
EXAMPLES = [
    Example("gpt-image-2.md", "**1. Event poster", [_nano("gpt-image-2-text-to-image", "3:4")]),
    Example("gpt-image-2.md", "**2. Storyboard frame", [_nano("gpt-image-2-image-to-image", "9:16", 2)]),
    Example("gpt-image-2.md", "**3. Packaging mockup", [_nano("gpt-image-2-image-to-image", "4:3", 2)]),
    Example("nano-banana.md", "**1. Lifestyle product still", [_nano("nano-banana-2", "9:16", 1)]),
    Example(
        "nano-banana.md",
        "**2. Text-heavy packaging",
        [_nano("nano-banana-pro", "4:5", options={"output_format": "png"})],
    ),
    Example(
        "nano-banana.md",
        "**3. Background edit",
        [{"model": "google/nano-banana-edit", "aspect_ratio": "9:16", **_pictures(1)}],
    ),
    Example("ugc-product-selfie.md", "**1. Car selfie", [_nano("nano-banana-2", "9:16", 3, variations=3)]),
    Example("ugc-product-selfie.md", "**2. Bathroom mirror selfie", [_nano("nano-banana-pro", "4:5", 2)]),
    Example(
        "character-sheet.md",
        "| 3 hero variations + 9 angles, `nano-banana-2` at 2K",
        [_nano("nano-banana-2", "3:4", variations=3), _nano("nano-banana-2", "3:4", 1, variations=9)],
    ),
    Example(
        "character-sheet.md",
        "| Same at 1K",
        [
            {**_nano("nano-banana-2", "3:4", variations=3), "resolution": "1K"},
            {**_nano("nano-banana-2", "3:4", 1, variations=9), "resolution": "1K"},
        ],
    ),
    Example(
        "character-sheet.md",
        "| 3 hero variations + 9 angles, `nano-banana-pro` at 2K",
        [_nano("nano-banana-pro", "3:4", variations=3), _nano("nano-banana-pro", "3:4", 1, variations=9)],
    ),
    Example(
        "character-sheet-gpt-image-2.md",
        "| 3 hero variations + 9 views at 2K",
        [
            _nano("gpt-image-2-text-to-image", "3:4", variations=3),
            _nano("gpt-image-2-image-to-image", "3:4", 1, variations=9),
        ],
    ),
    Example(
        "character-sheet-gpt-image-2.md",
        "| 3 hero variations + 1 board + 3 views at 2K",
        [
            _nano("gpt-image-2-text-to-image", "3:4", variations=3),
            _nano("gpt-image-2-image-to-image", "3:4", 1, variations=4),
        ],
    ),
    Example(
        "influencer-recreation.md",
        "| Example: 3 still variations + 1 fast clip",
        [
            _nano("nano-banana-2", "9:16", 1, variations=3),
            {"model": "veo3_fast", "aspect_ratio": "9:16", "options": VEO_STILL, **_pictures(1)},
        ],
    ),
    Example(
        "influencer-recreation.md",
        "**Video** (after the user approves variation 2)",
        [
            {
                "model": "veo3_fast",
                "aspect_ratio": "9:16",
                "resolution": "720p",
                "options": VEO_STILL,
                "script": "Sunday reset. Phone on silent, tea's hot, and I'm not answering a single email until "
                "tomorrow.",
                **_pictures(1),
            }
        ],
    ),
    Example(
        "product-showcase.md",
        "| 1 still (`nano-banana-2`, 2K) + 1 Veo clip",
        [_nano("nano-banana-2", "9:16", 1), {"model": "veo3_fast", "resolution": "720p"}],
    ),
    Example(
        "product-showcase.md",
        "| 3 stills to choose from + 2 Veo variations",
        [_nano("nano-banana-2", "9:16", 1, variations=3), {"model": "veo3_fast", "variations": 2}],
    ),
    Example(
        "product-showcase.md",
        "| 1 still (`nano-banana-pro`, 2K) + 1 Kling clip",
        [
            _nano("nano-banana-pro", "9:16", 1),
            {"model": "kling-3.0/video", "duration": 8, "audio": True, "options": {"mode": "pro"}, **_pictures(1)},
        ],
    ),
    Example(
        "product-showcase.md",
        "| 1 still (`nano-banana-2`, 2K) + 1 Kling 3.0 Omni clip",
        [
            _nano("nano-banana-2", "9:16", 1),
            {
                "model": "kling-3.0-omni/image-to-video",
                "resolution": "720p",
                "duration": 12,
                "audio": True,
                **_pictures(1),
            },
        ],
    ),
    Example(
        "product-showcase.md",
        "**Still** — `model`: `nano-banana-pro`",
        [
            _nano("nano-banana-pro", "9:16", 1),
            {
                "model": "veo3_fast",
                "aspect_ratio": "9:16",
                "resolution": "720p",
                "options": VEO_STILL,
                "script": "I didn't believe the hype either. Three nights in, my skin actually feels different.",
                **_pictures(1),
            },
        ],
    ),
    Example(
        "product-showcase.md",
        "**Kling variant for a motion-led clip**",
        [{"model": "kling-3.0/video", "duration": 5, "audio": True, "options": {"mode": "pro"}, **_pictures(1)}],
    ),
    Example(
        "kling-3.md",
        "**1. Silent product b-roll",
        [
            {
                "model": "kling-3.0/video",
                "duration": 5,
                "aspect_ratio": "16:9",
                "audio": False,
                "options": {"mode": "pro"},
            }
        ],
    ),
    Example(
        "kling-3.md",
        "**2. Multi-shot sequence with sound",
        [
            {
                "model": "kling-3.0/video",
                "aspect_ratio": "9:16",
                "duration": 12,
                "options": {
                    "mode": "pro",
                    "multi_shots": True,
                    "multi_prompt": [
                        {"prompt": "Wide shot of a small bakery kitchen before dawn.", "duration": 4},
                        {"prompt": "Medium close-up of the baker setting the tray down.", "duration": 4},
                        {"prompt": "Extreme close-up of hands tearing a croissant open.", "duration": 4},
                    ],
                },
            }
        ],
    ),
    Example(
        "kling-3.md",
        "**3. First and last frame",
        [
            {
                "model": "kling-3.0/video",
                "duration": 6,
                "aspect_ratio": "1:1",
                "audio": False,
                "options": {"mode": "std"},
                **_pictures(2),
            }
        ],
    ),
    Example(
        "kling-3.md",
        "Example: a recurring presenter in a new scene",
        [
            {
                "model": "kling-3.0-omni/reference-to-video",
                "aspect_ratio": "9:16",
                "resolution": "720p",
                "audio": True,
                "script": "Three hours on the trail and it's still ice cold. That's the whole review.",
                **_pictures(3),
            }
        ],
    ),
    Example(
        "seedance-2.md",
        "**1. Claymation beat from an approved storyboard still",
        [
            {
                "model": "bytedance/seedance-2",
                "resolution": "720p",
                "aspect_ratio": "9:16",
                "duration": 8,
                "audio": True,
                "script": "Every morning, Pip faced the same problem: the toast always won.",
                **_pictures(1),
            }
        ],
    ),
    Example(
        "seedance-2.md",
        "**2. Product hero clip from references",
        [
            {
                "model": "bytedance/seedance-2-fast",
                "resolution": "720p",
                "aspect_ratio": "16:9",
                "duration": 5,
                "audio": False,
                "options": {"reference_image_urls": PICTURES},
            }
        ],
    ),
    Example(
        "seedance-2.md",
        "**3. Transition between two approved frames",
        [
            {
                "model": "bytedance/seedance-2",
                "resolution": "720p",
                "duration": 6,
                "aspect_ratio": "adaptive",
                "options": {"first_frame_url": PICTURES[0], "last_frame_url": PICTURES[1]},
            }
        ],
    ),
    Example(
        "seedance-2.md",
        "**4. A 20-second single take",
        [
            {
                "model": "bytedance/seedance-2-5",
                "resolution": "720p",
                "aspect_ratio": "9:16",
                "audio": True,
                "duration": 20,
                "script": FORTY_WORDS,
            }
        ],
        spoken={"model": "bytedance/seedance-2-5", "resolution": "720p", "aspect_ratio": "9:16", "script": FORTY_WORDS},
    ),
    Example(
        "ugc-selfie-style.md",
        "**1. Veo hook, no fixed face**",
        [
            {
                "model": "veo3_fast",
                "aspect_ratio": "9:16",
                "resolution": "720p",
                "script": "Okay, nobody told me dry shampoo could actually smell good. I'm obsessed.",
            }
        ],
    ),
    Example(
        "ugc-selfie-style.md",
        "**2. Kling short reaction",
        [
            {
                "model": "kling-3.0/video",
                "aspect_ratio": "9:16",
                "duration": 4,
                "audio": True,
                "options": {"mode": "std"},
                "script": "Oh, that's dangerous.",
            }
        ],
    ),
    Example(
        "veo-3-1.md",
        "**1. UGC testimonial, text-to-video, vertical.**",
        [
            {
                "model": "veo3_fast",
                "aspect_ratio": "9:16",
                "resolution": "720p",
                "script": "I used to carry three bottles to the gym. Now it's just this one, still cold at five.",
            }
        ],
    ),
    Example(
        "veo-3-1.md",
        "**2. Cinematic product b-roll",
        [{"model": "veo3", "aspect_ratio": "16:9", "resolution": "1080p", "duration": 8}],
    ),
]


@dataclass
class Claims:
    """What the text of one example states: its cost (the figure, the sum written before it and its USD) and each
    script's words, spoken seconds and clip."""

    lines: list[int] = field(default_factory=list)
    cost: list[tuple[str | None, float, float | None]] = field(default_factory=list)
    spoken: list[tuple[int, float, int]] = field(default_factory=list)


def _claims_of(line: str) -> tuple[list[tuple[str | None, float, float | None]], list[tuple[int, float, int]]]:
    costs = []
    for found in (*COST.finditer(line), *TABLE_SUM.finditer(line)):
        total = float(found["total"].replace(",", ""))
        usd = found["usd"] or ((shown := TABLE_USD.search(line)) and shown["usd"])
        if total:  # "Cost: 0 credits": a local join, nothing to quote
            costs.append((found["sum"], total, float(usd) if usd else None))
    spoken = [(int(m["words"]), float(m["seconds"]), int(m["duration"])) for m in SPOKEN.finditer(line)]
    return costs, spoken


def _examples_of(doc: str, lines: list[str] | None = None) -> dict[Example, Claims]:
    """Each example of ``doc`` (its ``lines``, by default the file's) with what its text states; every line of the
    document that states a cost or a script's clip lies in one of them (else the assertion names it: a claim no test
    ties to a request)."""
    lines = lines if lines is not None else (LIBRARY / doc).read_text(encoding="utf-8").splitlines()
    ours = [example for example in EXAMPLES if example.doc == doc]
    starts = []
    for example in ours:
        found = [at for at, line in enumerate(lines) if example.anchor in line]
        assert len(found) == 1, f"{doc}: the example {example.anchor!r} is on {len(found)} lines, not one"
        starts.append(found[0])
    order = sorted(zip(starts, range(len(ours)), strict=True))
    claims: dict[Example, Claims] = {}
    unclaimed = []
    for at, line in enumerate(lines):
        costs, spoken = _claims_of(line)
        if not costs and not spoken:
            continue
        owner = next((ours[index] for start, index in reversed(order) if start <= at), None)
        if owner is None:
            unclaimed.append(f"{doc}:{at + 1}: {line.strip()}")
            continue
        found = claims.setdefault(owner, Claims())
        found.lines.append(at + 1)
        found.cost += costs
        found.spoken += spoken
    assert not unclaimed, "claims no example ties to a request:\n" + "\n".join(unclaimed)
    return claims


def _sum_of(written: str) -> float:
    """``3 × 12 + 60`` as the number it writes."""
    return sum(_product(term) for term in written.split(" + "))


def _product(term: str) -> float:
    result = 1.0
    for factor in term.split(" × "):
        result *= float(factor)
    return result


def test_every_cost_and_script_a_library_example_states_is_tied_to_its_requests():
    """Each document's claims lie in an example of EXAMPLES (a new ``Cost:`` line or "N words → S s → D s" without
    one fails here, naming it), and each example states at least one claim (its anchor still marks it)."""
    docs = sorted(path.name for path in LIBRARY.glob("*.md"))
    assert {example.doc for example in EXAMPLES} <= set(docs)
    for doc in docs:
        claims = _examples_of(doc)
        silent = [example.anchor for example in EXAMPLES if example.doc == doc and example not in claims]
        assert not silent, f"{doc}: examples stating no cost or script clip: {silent}"


@eras_in_turn("example", EXAMPLES, ids=[f"{e.doc}: {e.anchor.strip('*| ')[:40]}" for e in EXAMPLES])
async def test_each_library_example_states_what_estimate_cost_quotes(connect, example):
    """The cost an example states is the sum of its requests' quotes (and the sum it writes adds up, and its USD
    is that at KIE's rate); a script's words, spoken seconds and clip are what estimate_cost says of that script."""
    claims = _examples_of(example.doc)[example]
    where = f"{example.doc}:{claims.lines}"
    async with connect() as client:
        quotes = []
        for call in example.calls:
            quoted = await client.call_tool("estimate_cost", {"prompt": "a worked example", **call})
            assert not quoted.is_error, f"{where}: {call} -> {text_of(quoted)}"
            quotes.append(quoted.structured_content["quote"]["credits_total"])
        said = None
        if claims.spoken:
            assert example.scripted is not None, f"{where}: a script's clip is stated, and no request has a script"
            spoken = await client.call_tool("estimate_cost", {"prompt": "a worked example", **example.scripted})
            assert not spoken.is_error, f"{where}: {text_of(spoken)}"
            said = text_of(spoken)
    for written, total, usd in claims.cost:
        assert total == pytest.approx(sum(quotes)), f"{where} says {total:g} credits; estimate_cost quotes {quotes}"
        if written:
            assert _sum_of(written) == pytest.approx(total), f"{where}: {written} is not {total:g}"
        if usd is not None:
            assert abs(usd - total * USD_PER_CREDIT) < 0.005 + 1e-9, f"{where}: ${usd} for {total:g} credits"
    for words, seconds, duration in claims.spoken:
        assert said is not None
        script = re.search(r"Script: (\d+) words, about ([\d.]+) s", said)
        chosen = re.search(r"Duration set to (\d+) s", said)
        assert script and chosen, f"{where}: {said}"
        assert (words, seconds, duration) == (int(script[1]), float(script[2]), int(chosen[1])), (
            f"{where} says {words} words -> {seconds:g} s -> {duration} s; estimate_cost: {script[0]}, {chosen[0]}"
        )


# -- each example's request, as its own text states it ------------------------------------------------------------

# The review: the test checked its own copy of each example's request, so kling-3.md's example 1 edited to 10 s with
# sound, its "Cost: 5 × 18 = 90" left as it was, still passed. The settings an example's text gives ("`key`: value",
# in bullets or a paragraph's "·"-separated list) are read and must be the request's; and a setting that moves the
# price which the request has must be stated in the text. A plan in a table row is read by its words: the models,
# resolutions, lengths, sound and tier it names, and the stills and clips it counts.
PAIR = re.compile(r"`([a-z_.]+)`: ?")
STATED = ("model", "duration", "aspect_ratio", "resolution", "audio", "script", "images", "options", "variations")
PRICED = ("duration", "audio", "resolution", "aspect_ratio", "script")  # a request's own, stated in the text too


def _items(lines: list[str]) -> list[str]:
    """An example's text as items, each on one line: a bullet with its continuation lines, a paragraph, or a table
    row; a fenced code block belongs to the item before it (``options``: then its JSON); quoted prompts are left
    out."""
    items: list[str] = []
    current: list[str] = []
    fenced: list[str] | None = None

    def close() -> None:
        if current:
            items.append(" ".join(current))
            current.clear()

    for line in lines:
        stripped = line.strip()
        if fenced is not None:
            if stripped.startswith("```"):
                if not current and items:
                    current.append(items.pop())
                current.append(" ".join(fenced))
                fenced = None
            else:
                fenced.append(stripped)
            continue
        if stripped.startswith("```"):
            fenced = []
        elif not stripped or stripped.startswith(">"):
            close()
        else:
            if stripped.startswith(("- ", "| ")):
                close()
            current.append(stripped)
    close()
    return items


def _pairs(item: str) -> list[tuple[str, str]]:
    """The "`key`: value" pairs of an item, each value up to the next pair or "·"."""
    found = list(PAIR.finditer(item))
    pairs = []
    for at, match in enumerate(found):
        end = found[at + 1].start() if at + 1 < len(found) else len(item)
        pairs.append((match[1], item[match.end() : end].split(" · ", maxsplit=1)[0].strip()))
    return pairs


def _stated(key: str, value: str) -> Any:
    """The setting the words ``value`` state for ``key``, as a request holds it; None where they state none (a
    script described, not quoted, is its word count)."""
    ticked = re.match(r"`([^`]+)`", value)
    if key in ("model", "aspect_ratio", "resolution"):
        return ticked[1] if ticked else None
    if key in ("duration", "variations"):
        return int(ticked[1]) if ticked and ticked[1].isdigit() else None
    if key == "audio":
        return True if value.startswith("on") else False if value.startswith("off") else None
    if key == "script":
        quoted = re.match(r'"([^"]+)"', value)
        words = re.match(r"(\d+) words", value)
        return " ".join(quoted[1].split()) if quoted else int(words[1]) if words else None
    if key == "images":
        listed = re.search(r"`\[(.*?)\]`", value)
        if listed:
            return len(re.findall(r'"[^"]*"', listed[1]))
        return len([part for part in value.rstrip(".:").split(", ") if part]) or None
    start = value.find("{")  # options
    return json.JSONDecoder().raw_decode(value[start:])[0] if start >= 0 else None


def _same(stated: Any, sent: Any) -> bool:
    """Whether a request's ``options`` value is the one the text states: the same keys and values, where a prompt,
    a link or a placeholder path (text with a space, a slash or "<") may be any text."""
    if isinstance(stated, dict):
        return (
            isinstance(sent, dict)
            and stated.keys() == sent.keys()
            and all(_same(v, sent[k]) for k, v in stated.items())
        )
    if isinstance(stated, list):
        return isinstance(sent, list) and len(stated) == len(sent) and all(map(_same, stated, sent))
    if isinstance(stated, str) and re.search(r"[ /<]", stated):
        return isinstance(sent, str)
    return stated == sent


def _sent(key: str, call: dict[str, Any]) -> Any:
    """What a request sends for the setting ``key``, in the form ``_stated`` reads it."""
    if key == "variations":
        return call.get("variations", 1)
    if key == "images":
        return len(call.get("images", []))
    if key == "resolution":
        return str(call["resolution"]) if "resolution" in call else None
    if key == "script":
        return " ".join(call["script"].split()) if "script" in call else None
    return call.get(key)


def _blocks(lines: list[str]) -> list[dict[str, Any]]:
    """The requests an example's text states: each "`model`:" starts one, and the settings after it are its own."""
    blocks: list[dict[str, Any]] = []
    for item in _items(lines):
        for key, value in _pairs(item):
            if key == "model" or not blocks:
                blocks.append({})
            if key in STATED and (stated := _stated(key, value)) is not None:
                blocks[-1][key] = stated
    return [block for block in blocks if block]


def _row_mismatches(row: str, calls: list[dict[str, Any]]) -> list[str]:
    """What a plan's table row names that its requests do not have."""
    catalog = load_catalog()
    cell = row.strip().strip("|").split("|")[0]
    words = re.sub(r"`[^`]*`", "", cell)
    wrong = []
    for name in re.findall(r"`([^`]+)`", cell):
        if catalog.get(name) is not None and all(call["model"] != name for call in calls):
            wrong.append(f"names {name}, which no request is")
        elif catalog.get(name) is None and all((call.get("options") or {}).get("mode") != name for call in calls):
            wrong.append(f"names the tier {name}, which no request asks")
    for size in re.findall(r"\b(\d+(?:K|p))\b", words):
        if all(str(call.get("resolution", "")).lower() != size.lower() for call in calls):
            wrong.append(f"says {size}, which no request asks")
    for seconds in re.findall(r"\b(\d+) s\b", words):
        if all(call.get("duration") != int(seconds) for call in calls):
            wrong.append(f"says {seconds} s, which no request asks")
    if re.search(r"\bsound\b", words) and not any(call.get("audio") for call in calls):
        wrong.append("says sound, which no request asks")
    counted = [int(n) for n in re.findall(r"(?<![\d.])(\d+) [A-Za-z]", re.sub(r"\([^)]*\)", "", words))]
    made = sum(call.get("variations", 1) for call in calls)
    if counted and sum(counted) != made:
        wrong.append(f"counts {' + '.join(map(str, counted))} things made; the requests make {made}")
    return wrong


def _request_mismatches(example: Example, lines: list[str]) -> list[str]:
    """Where ``example``'s requests differ from what its text (``lines`` of its document) states, from its anchor to
    its last claim: each stated setting of each stated model, the price-moving settings each request has, and a
    plan's table row by its words."""
    claims = _examples_of(example.doc, lines)[example]
    start = next(at for at, line in enumerate(lines) if example.anchor in line)
    region = lines[start : max(claims.lines)]
    blocks = _blocks(region)
    if not blocks and region[0].startswith("|"):
        return [f"the row {problem}" for problem in _row_mismatches(region[0], example.calls)]
    wrong = []
    models = [call["model"] for call in example.calls]
    for block in blocks:
        model = block.get("model") or (models[0] if len(models) == 1 else None)
        if model not in models:
            wrong.append(f"states model {model}; the requests are of {models}")
            continue
        call = example.calls[models.index(model)]
        for key, stated in block.items():
            sent = _sent(key, call)
            if key == "script" and isinstance(stated, int):
                sent = len(str(sent).split()) if sent else None
            if key == "resolution":  # 720p and 720P are one size to the catalogue
                sent = stated if str(sent).lower() == str(stated).lower() else sent
            if key != "model" and not (_same(stated, sent) if key == "options" else stated == sent):
                wrong.append(f"{model}: the text says {key} {stated!r}; the request sends {sent!r}")
        for key in PRICED:
            if key in call and key not in block:
                wrong.append(f"{model}: the request sends {key} {call[key]!r}, which the text does not state")
    stated_models = {block.get("model") for block in blocks}
    if blocks and None not in stated_models:
        wrong += [f"the request of {model} is stated nowhere" for model in models if model not in stated_models]
    return wrong


def _lines(doc: str) -> list[str]:
    return (LIBRARY / doc).read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"{e.doc}: {e.anchor.strip('*| ')[:40]}" for e in EXAMPLES])
def test_each_library_examples_requests_are_the_ones_its_text_states(example):
    """The model, length, sound, resolution, frame, script, images, options and count an example's text gives are
    those of the requests its cost is checked with: a document edited to another request fails here, its cost line
    unchanged or not."""
    assert _request_mismatches(example, _lines(example.doc)) == []


# The review's edit and others like it, made to a copy of the text: each is caught.
EDITS = [
    (
        "kling-3.md",
        "**1. Silent product b-roll",
        "`duration`: `5` · `aspect_ratio`: `16:9` · `audio`: off",
        "`duration`: `10` · `aspect_ratio`: `16:9` · `audio`: on",
    ),
    (
        "kling-3.md",
        "Example: a recurring presenter",
        "`resolution`: `720p` · `audio`: on",
        "`resolution`: `1080p` · `audio`: on",
    ),
    (
        "seedance-2.md",
        "**2. Product hero clip",
        "`model`: `bytedance/seedance-2-fast`",
        "`model`: `bytedance/seedance-2`",
    ),
    ("veo-3-1.md", "**2. Cinematic product b-roll", "`model`: `veo3` ·", "`model`: `veo3_fast` ·"),
    ("ugc-product-selfie.md", "**1. Car selfie", "· `variations`: `3`", "· `variations`: `4`"),
    (
        "product-showcase.md",
        "| 1 still (`nano-banana-pro`, 2K) + 1 Kling clip",
        "(`pro`, 8 s, sound)",
        "(`pro`, 10 s, sound)",
    ),
    ("product-showcase.md", "| 1 still (`nano-banana-2`, 2K) + 1 Veo clip", "(`veo3_fast`, 720p)", "(`veo3`, 720p)"),
    ("seedance-2.md", "**1. Claymation beat", "Every morning, Pip faced", "Every single morning, Pip faced"),
    ("nano-banana.md", "**2. Text-heavy packaging", '`{"output_format": "png"}`', '`{"output_format": "jpg"}`'),
]


@pytest.mark.parametrize(("doc", "anchor", "old", "new"), EDITS, ids=[f"{d}: {o} -> {n}" for d, _, o, n in EDITS])
def test_an_edit_to_an_examples_request_is_caught_even_with_its_cost_line_unchanged(doc, anchor, old, new):
    example = next(e for e in EXAMPLES if e.doc == doc and e.anchor.startswith(anchor))
    lines = _lines(doc)
    start = next(at for at, line in enumerate(lines) if anchor in line)
    at = next(at for at in range(start, len(lines)) if old in lines[at])
    edited = [*lines[:at], lines[at].replace(old, new, 1), *lines[at + 1 :]]
    assert _request_mismatches(example, lines) == []
    assert _request_mismatches(example, edited), f"{doc}: {old!r} -> {new!r} went unnoticed"


# -- every other credit figure of the library ---------------------------------------------------------------------

# The review: sora-2.md priced Kling 3.0 Omni at 720p with sound at "270 credits (18/s)" where estimate_cost quotes
# 300 (20/s), unchecked, as every figure outside a worked example's cost line was. Each "N credits" of the library
# and the guide is now a worked example's claim, a figure quoted here from its requests (``Figure``), a cap checked
# against the server's defaults (``Cap``), or listed as unchecked with the reason (``Unchecked``); a new one that is
# none of these fails, naming it.
CREDITS = re.compile(r"(\d[\d,]*(?:\.\d+)?)\s+credits\b")
GUIDE = ROOT / "prompting" / "guide.md"
REFERENCE_CLIP = "references/reference-clip.mp4"  # a video of ``Figure.clip_seconds``, written before quoting


@dataclass(frozen=True, eq=False)
class Figure:
    """A figure ``doc`` states: ``said`` is text on the line where its number is, ``credits`` the figure, and
    ``calls`` the estimate_cost requests whose quotes add up to it (or ``followup``: (source model, operation), the
    continue_video of a finished clip of that model, quoted). ``per_second``: a rate, the quote over the call's
    seconds; ``compare``: "about" (rounded, within 1%) or "over" (the quote is above it); ``counted``: what kie-mcp
    counts against the caps (``credits_counted``)."""

    doc: str
    said: str
    credits: float
    calls: list[dict[str, Any]] = field(default_factory=list)
    followup: tuple[str, str] | None = None
    per_second: bool = False
    compare: str = "="
    counted: bool = False
    clip_seconds: float = 0.0


@dataclass(frozen=True)
class Cap:
    """A default cap a document states: the setting and its value."""

    doc: str
    said: str
    credits: float
    setting: str


@dataclass(frozen=True)
class Unchecked:
    """A credit figure no request can quote, and why."""

    doc: str
    said: str
    reason: str


def _seedance(model: str = "bytedance/seedance-2", resolution: str = "720p", seconds: int = 5, **more: Any) -> dict:
    return {"model": model, "resolution": resolution, "duration": seconds, **more}


FINAL = {"aspect_ratio": "16:9", "audio": True, "images": [PICTURE]}  # a claymation beat from its approved still
FIFTEEN = {"duration": 15}  # sora-2.md's table: one 15-second clip with sound
LIBRARY_FIGURES = [
    Figure(
        "claymation-ad.md",
        "The six default finals (about 1,720 credits)",
        1720,
        [_seedance(seconds=7, variations=6, **FINAL)],
        compare="about",
    ),
    Figure("claymation-ad.md", "final (410 credits)", 410, [_seedance(seconds=10, **FINAL)]),
    Figure("claymation-ad.md", "the eight together (3,280)", 3280, [_seedance(seconds=10, variations=8, **FINAL)]),
    Figure("claymation-ad.md", "after seven paid beats (2,870)", 2870, [_seedance(seconds=10, variations=7, **FINAL)]),
    Figure(
        "claymation-ad.md",
        "80 s at 1080p is over 8000 credits",
        8000,
        [_seedance(resolution="1080p", seconds=10, variations=8, **FINAL)],
        compare="over",
    ),
    Figure(
        "gpt-image-2.md",
        "(6/10/16 credits at 1K/2K/4K against",
        6,
        [{"model": "gpt-image-2-text-to-image", "resolution": "1K", "aspect_ratio": "16:9"}],
    ),
    Figure(
        "gpt-image-2.md",
        "(6/10/16 credits at 1K/2K/4K against",
        10,
        [{"model": "gpt-image-2-text-to-image", "resolution": "2K", "aspect_ratio": "16:9"}],
    ),
    Figure(
        "gpt-image-2.md",
        "(6/10/16 credits at 1K/2K/4K against",
        16,
        [{"model": "gpt-image-2-text-to-image", "resolution": "4K", "aspect_ratio": "16:9"}],
    ),
    *[
        Figure(
            "gpt-image-2.md",
            "8/12/18) and stands out",
            credits,
            [{"model": "nano-banana-2", "resolution": size, "aspect_ratio": "16:9"}],
        )
        for credits, size in ((8, "1K"), (12, "2K"), (18, "4K"))
    ],
    Figure("gpt-image-2.md", "at about 6 credits (KIE price list of", 6, [{"model": "gpt-4o-image"}], compare="about"),
    Figure("kling-3.md", "(9 × 67 = 603)", 603, [{"model": "kling-3.0/video", "resolution": "4K", "duration": 9}]),
    Figure(
        "kling-3.md",
        "the 10 s 4K clip in the table (670)",
        670,
        [{"model": "kling-3.0/video", "resolution": "4K", "duration": 10}],
    ),
    Figure("kling-3.md", "8 s in 4K (536)", 536, [{"model": "kling-3.0/video", "resolution": "4K", "duration": 8}]),
    Figure(
        "pixar-style-ad.md",
        "Changing a still is cheap (about 10 credits)",
        10,
        [{"model": "gpt-image-2-image-to-image", "resolution": "2K", "aspect_ratio": "9:16", "images": [PICTURE]}],
        compare="about",
    ),
    Figure("seedance-2.md", "a 5 s clip at 720p costs 205 credits (≈ $1.03)", 205, [_seedance()]),
    Figure("seedance-2.md", "an 8 s beat at 720p 328", 328, [_seedance(seconds=8)]),
    Figure(
        "seedance-2.md",
        "the same beat at 480p 124 credits on Fast",
        124,
        [_seedance("bytedance/seedance-2-fast", "480p", 8)],
    ),
    Figure(
        "seedance-2.md", "124 credits on Fast and 76 on Mini", 76, [_seedance("bytedance/seedance-2-mini", "480p", 8)]
    ),
    Figure(
        "seedance-2.md",
        "140 credits), and only a video it cannot measure",
        140,
        [_seedance("bytedance/seedance-2-fast", options={"reference_video_urls": [REFERENCE_CLIP]})],
        clip_seconds=2.0,
    ),
    Figure(
        "seedance-2.md",
        "is 20 × 28 = 560 credits and fits",
        560,
        [_seedance("bytedance/seedance-2-5", "480p", 20, aspect_ratio="9:16", audio=True)],
    ),
    Figure(
        "seedance-2.md",
        "102 credits per second on Seedance 2",
        102,
        [_seedance(resolution="1080p", seconds=10)],
        per_second=True,
    ),
    Figure("seedance-2.md", "and 158 on 2.5", 158, [_seedance("bytedance/seedance-2-5", "1080p", 10)], per_second=True),
    Figure(
        "seedance-2.md",
        "1,000 credits (≈ $5) on Seedance 2",
        1000,
        [_seedance(resolution="1080p", seconds=10)],
        compare="over",
    ),
    Figure(
        "seedance-2.md", "about 1,580 on 2.5", 1580, [_seedance("bytedance/seedance-2-5", "1080p", 10)], compare="about"
    ),
    *[
        Figure("sora-2.md", said, credits, [{**call, **FIFTEEN}], per_second=rate)
        for said, call, total, each in (
            (
                "`grok-imagine/text-to-video`, 720p | 67.5 credits (4.5/s)",
                {"model": "grok-imagine/text-to-video", "resolution": "720p"},
                67.5,
                4.5,
            ),
            (
                "`kling-3.0-omni/text-to-video`, 720p, `audio` on | 270 credits (18/s)",
                {"model": "kling-3.0-omni/text-to-video", "resolution": "720p", "audio": True},
                270,
                18,
            ),
            (
                "`kling-3.0/video`, `std` (720p), `audio` on | 300 credits (20/s)",
                {"model": "kling-3.0/video", "audio": True, "options": {"mode": "std"}},
                300,
                20,
            ),
            (
                "`bytedance/seedance-2-mini`, 720p | 307.5 credits (20.5/s)",
                {"model": "bytedance/seedance-2-mini", "resolution": "720p"},
                307.5,
                20.5,
            ),
            (
                "`bytedance/seedance-2`, 720p | 615 credits (41/s)",
                {"model": "bytedance/seedance-2", "resolution": "720p"},
                615,
                41,
            ),
            (
                "`bytedance/seedance-2-5`, 720p | 945 credits (63/s)",
                {"model": "bytedance/seedance-2-5", "resolution": "720p"},
                945,
                63,
            ),
        )
        for credits, rate in ((total, False), (each, True))
    ],
    Figure("sora-2.md", "Seedance 2 at 14 s (574)", 574, [_seedance(seconds=14)]),
    Figure("sora-2.md", "480p (420 for 15 s)", 420, [_seedance("bytedance/seedance-2-5", "480p", 15)]),
    Figure(
        "ugc-product-selfie.md",
        "2K variations on `nano-banana-2` are 48 credits (≈ $0.24)",
        48,
        [{"model": "nano-banana-2", "resolution": "2K", "aspect_ratio": "9:16", "variations": 4}],
    ),
    Figure("ugc-selfie-style.md", "60 credits on `veo3_fast`", 60, followup=("veo3_fast", "extend")),
    Figure("veo-3-1.md", "cost less per clip than Veo's 60 credits", 60, [{"model": "veo3_fast"}]),
    Figure(
        "veo-3-1.md", "was charged 60 credits for a 4 s `veo3_lite` clip", 60, [{"model": "veo3_lite"}], counted=True
    ),
    Figure(
        "veo-3-1.md", "(kie-mcp counts 60 per 720p clip against the caps", 60, [{"model": "veo3_lite"}], counted=True
    ),
    Figure("veo-3-1.md", "the same 60 credits for a 4 s and an 8 s", 60, [{"model": "veo3_fast", "duration": 4}]),
    Figure("veo-3-1.md", "the same 60 credits for a 4 s and an 8 s", 60, [{"model": "veo3_fast", "duration": 8}]),
    Figure("veo-3-1.md", "can be extended (60 credits fast,", 60, followup=("veo3_fast", "extend")),
    Figure("veo-3-1.md", "250 quality, 30 lite)", 250, followup=("veo3", "extend")),
    Figure("veo-3-1.md", "250 quality, 30 lite)", 30, followup=("veo3_lite", "extend")),
    Figure("veo-3-1.md", "upgraded to 1080p (5 credits)", 5, followup=("veo3_fast", "hd")),
    Figure("veo-3-1.md", "or 4K (120 credits)", 120, followup=("veo3_fast", "4k")),
    Figure("veo-3-1.md", "60 credits; `veo3` -> quality, 250", 60, followup=("veo3_fast", "extend")),
    Figure("veo-3-1.md", '`operation="hd"` (1080p, 5 credits,', 5, followup=("veo3_fast", "hd")),
    Figure("veo-3-1.md", '`operation="4k"` (120', 120, followup=("veo3_fast", "4k")),
    Figure(
        "guide.md",
        "about 112.5 credits on Grok Imagine",
        112.5,
        [{"model": "grok-imagine/text-to-video", "resolution": "720p", "duration": 25}],
    ),
    Figure("guide.md", "400 on Wan 3.0", 400, [{"model": "wan/3-0-video", "resolution": "720P", "duration": 25}]),
    Figure("guide.md", "1,575 on Seedance 2.5", 1575, [_seedance("bytedance/seedance-2-5", "720p", 25)]),
    Figure("guide.md", "Wan 3.0 at its default 1080P (800)", 800, [{"model": "wan/3-0-video", "duration": 25}]),
    Figure(
        "guide.md",
        "one 20 s Seedance 2.5 clip at 720p (1,260 credits)",
        1260,
        [_seedance("bytedance/seedance-2-5", "720p", 20)],
    ),
    Figure(
        "guide.md",
        "one 10 s Kling 3.0 4K clip (670)",
        670,
        [{"model": "kling-3.0/video", "resolution": "4K", "duration": 10}],
    ),
    Figure("guide.md", "10 s Seedance 2 beats at 720p in one day (3,280)", 3280, [_seedance(seconds=10, variations=8)]),
]
CAPS = [
    Cap("kling-3.md", "default per-call cap of 600 credits", 600, "max_credits_per_call"),
    Cap("seedance-2.md", "default per-call cap of 600 credits", 600, "max_credits_per_call"),
    Cap("sora-2.md", "default per-call cap of 600 credits", 600, "max_credits_per_call"),
    Cap("guide.md", "(600 credits by default)", 600, "max_credits_per_call"),
    Cap("guide.md", "(3000 by default)", 3000, "max_credits_per_day"),
    Cap("claymation-ad.md", "default daily cap of 3,000", 3000, "max_credits_per_day"),
]
LOCAL = "a join by stitch_videos: local and free, nothing to quote"
UNCHECKED = [
    Unchecked("caption-video.md", "Cost: 0 credits.", LOCAL),
    Unchecked("claymation-ad.md", "Cost: 0 credits.", LOCAL),
    Unchecked("pixar-style-ad.md", "Cost: 0 credits.", LOCAL),
    Unchecked("sora-2.md", "Sora 2 had a flat price of about 20–25 credits", "Sora 2 is withdrawn: a past price"),
]


def _figure_docs() -> dict[str, Path]:
    return {**{path.name: path for path in sorted(LIBRARY.glob("*.md"))}, GUIDE.name: GUIDE}


def test_every_credit_figure_of_the_library_is_checked_or_says_why_not():
    """Each "N credits" of the prompt library and the guide is a worked example's claim, a ``Figure``, a ``Cap`` or
    an ``Unchecked`` one; and each of those names text that is on exactly one line of its document, holding the
    figure it checks (a document edited to another figure no longer has that text: it fails here)."""
    docs = _figure_docs()
    entries: list[Figure | Cap | Unchecked] = [*LIBRARY_FIGURES, *CAPS, *UNCHECKED]
    missing = []
    for doc, path in docs.items():
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        examples = _examples_of(doc) if path.parent == LIBRARY else {}
        claimed = {
            at: [total for _, total, _ in _claims_of(lines[at - 1])[0]] for c in examples.values() for at in c.lines
        }
        for found in CREDITS.finditer(text):
            at = text.count("\n", 0, found.start()) + 1
            figure = float(found[1].replace(",", ""))
            line = lines[at - 1]
            if figure in claimed.get(at, []):
                continue
            if not any(
                entry.doc == doc and entry.said in line and (isinstance(entry, Unchecked) or entry.credits == figure)
                for entry in entries
            ):
                missing.append(f"{doc}:{at}: {found[0]!r} in {line.strip()!r}")
    assert not missing, "credit figures neither checked nor listed as unchecked:\n" + "\n".join(missing)
    for entry in entries:
        holding = [line for line in docs[entry.doc].read_text(encoding="utf-8").splitlines() if entry.said in line]
        assert len(holding) == 1, f"{entry.doc}: {entry.said!r} is on {len(holding)} lines, not one"
        if not isinstance(entry, Unchecked):  # the figure checked is the one written there, not a copy of it
            written = {format(entry.credits, "g"), format(entry.credits, ",g")}
            assert any(re.search(rf"(?<![\d.,]){re.escape(form)}(?![\d])", entry.said) for form in written), entry


@pytest.mark.parametrize("cap", CAPS, ids=[f"{c.doc}: {c.said}" for c in CAPS])
def test_each_default_cap_the_library_states_is_the_servers(cap):
    from kie_mcp.config import Settings

    assert getattr(Settings(api_key=None), cap.setting) == cap.credits


@eras_in_turn("figure", LIBRARY_FIGURES, ids=[f"{f.doc}: {f.said[:40]} = {f.credits:g}" for f in LIBRARY_FIGURES])
async def test_each_credit_figure_the_library_states_is_what_estimate_cost_quotes(connect, tmp_path, figure):
    """The figure is the sum of its requests' quotes (a rate: over the call's seconds; a follow-up: continue_video's
    quote of a finished clip of its source model), as ``compare`` reads it."""
    if figure.clip_seconds:
        clip = (resources.files("kie_mcp.sandbox") / "clips" / "16x9.mp4").read_bytes()
        (tmp_path / REFERENCE_CLIP).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / REFERENCE_CLIP).write_bytes(loop_clip(clip, figure.clip_seconds))
    quotes = []
    async with connect(auto_approve_credits=300) as client:
        asked = [{"prompt": "a figure of the library", **call} for call in figure.calls]
        if figure.followup is not None:
            model, operation = figure.followup
            made = await client.call_tool("generate_video", {"prompt": "waves at dusk", "model": model})
            assert not made.is_error, text_of(made)
            task_id = made.structured_content["tasks"][0]["task_id"]
            done = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 30})
            assert done.structured_content["task"]["state"] == "succeeded", text_of(done)
            asked = [{"task_id": task_id, "operation": operation}]
        for call in asked:
            quoted = await client.call_tool("estimate_cost", call)
            assert not quoted.is_error, f"{call} -> {text_of(quoted)}"
            quote = quoted.structured_content["quote"]
            total = quote["credits_counted"] if figure.counted else quote["credits_total"]
            assert total is not None, text_of(quoted)
            quotes.append(total / call["duration"] if figure.per_second else total)
    got = sum(quotes)
    where = f"{figure.doc}: {figure.said!r} says {figure.credits:g}; estimate_cost quotes {quotes}"
    if figure.compare == "over":
        assert got > figure.credits, where
    elif figure.compare == "about":
        assert got == pytest.approx(figure.credits, rel=0.01), where
    else:
        assert got == pytest.approx(figure.credits), where


# The README's words on claymation's long form, with the figures it states.
LONG_FORM_SAID = re.compile(
    r"claymation's long form \(eight beats of (\d+)-(\d+) s, (\d+)-(\d+) s in all: up to ([\d,]+) credits at 720p "
    r"with its eight 2K stills, over the default daily cap of ([\d,]+) from (\d+) s\)"
)


async def test_the_readmes_claymation_long_form_figures_are_what_estimate_cost_quotes(connect):
    """The audit: the README said the long form (eight beats of 8-12 s) is "over the default daily cap at 720p"; at
    41 credits a second and 80 for its stills it is 2,704 credits at 8 s a beat, within the cap. Then it said "up to
    4,016" (eight 12 s beats), while the guide's long-form table adds up to 88 s at most. Each figure is what
    estimate_cost quotes for animated_ad's calls (its eight beats, each at the longest the guide's table gives it,
    animated from their stills by Seedance 2 at 720p, its eight 2K storyboard stills), the film's length is from
    where the eight together go over the cap, and the cap is the server's default."""
    from kie_mcp.config import Settings
    from kie_mcp.prompts import ANIMATOR, LONG_FORM

    said = LONG_FORM_SAID.search(" ".join((ROOT / "README.md").read_text(encoding="utf-8").split()))
    assert said, "the README's sentence on claymation's long form has changed: update this test with it"
    low, high, shortest, longest, most, cap, over = (int(figure.replace(",", "")) for figure in said.groups())
    beats, lengths, film = LONG_FORM
    assert beats == 8 and (low, high) == lengths and (shortest, longest) == film
    assert Settings(api_key=None).max_credits_per_day == cap
    guide = (LIBRARY / "claymation-ad.md").read_text(encoding="utf-8")
    table = guide[guide.index("**Long form**") :].split("| Beat | Purpose |", 1)[1].split("\n\n", 1)[0]
    longest_beats = [max(int(n) for n in re.findall(r"(\d+) s", row)) for row in table.splitlines()[2:]]
    assert len(longest_beats) == beats and sum(longest_beats) == longest, longest_beats
    stills = {"model": "gpt-image-2-image-to-image", "resolution": "2K", "aspect_ratio": "16:9", "images": [PICTURE]}

    async def total(client, seconds: list[int]) -> float:
        """The eight stills and a final of each of ``seconds``, as estimate_cost quotes them."""
        calls = [{**stills, "variations": beats}, *(_seedance(ANIMATOR, seconds=length, **FINAL) for length in seconds)]
        quoted = 0.0
        for call in calls:
            answer = await client.call_tool("estimate_cost", {"prompt": "a beat", **call})
            assert not answer.is_error, text_of(answer)
            quoted += answer.structured_content["quote"]["credits_total"]
        return quoted

    def spread(film: int) -> list[int]:
        """A film of ``film`` seconds in eight beats as even as whole seconds make them."""
        return [film // beats + (1 if at < film % beats else 0) for at in range(beats)]

    async with connect() as client:
        assert await total(client, longest_beats) == most
        assert await total(client, spread(over)) > cap >= await total(client, spread(over - 1))
