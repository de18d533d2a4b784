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
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kie_mcp.catalog import USD_PER_CREDIT, load_catalog

from .conftest import text_of

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


@pytest.mark.parametrize(
    ("model", "column", "credits", "per_second"), FIGURES, ids=[f"{m} {c}" for m, c, *_ in FIGURES]
)
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


def _examples_of(doc: str) -> dict[Example, Claims]:
    """Each example of ``doc`` with what its text states; every line of the document that states a cost or a script's
    clip lies in one of them (else the assertion names it: a claim no test ties to a request)."""
    lines = (LIBRARY / doc).read_text(encoding="utf-8").splitlines()
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


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"{e.doc}: {e.anchor.strip('*| ')[:40]}" for e in EXAMPLES])
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
