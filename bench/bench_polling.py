"""Status polling before and after the follower (run: uv run python bench/bench_polling.py [SPEED]).

For a 2-minute image (GPT Image 2, typically 15-120 s) and a 5-minute video (Veo 3.1 Fast, typically 90-300 s),
then for a sweep of durations of the same two models, it prints side by side:

- **old**: the polling kie-mcp did before the follower, reimplemented here: every tool call ran its own loop
  (look, then 2 s, x1.5 each time, up to 15 s) for as long as it waited. The agent calls ``generate_*`` (an
  image waits 45 s, a video returns at once after one look) and then ``check_task(wait_seconds=50)`` back to
  back until the task has ended.
- **follower, agent asks**: the same agent against today's server (the whole MCP stack, in process).
- **follower, nobody asks**: ``generate_*`` with ``wait_seconds=0`` and nothing after it; the follower alone
  sees the task to its end and saves it.
- **follower, one look now**: the same, with one ``check_task(wait_seconds=0)`` (the explicit "look now") right
  after the create and nothing after it: one status call more than nobody asking, never a schedule started over at
  that young age.

Each run has its own simulator whose task takes exactly the scenario's duration. Figures: the status calls KIE
received about the task, and how long after the task ended on KIE the first status call saw it ("seen after").
Time runs SPEED times faster than KIE's (default 40): the simulator's clock and every interval of kie-mcp
(``poll_min_interval``, ``poll_max_interval``, ``rate_limit_backoff``, the client's poll pacing) are scaled alike,
so the figures are those of real time, in KIE's seconds. Targets: at most 12 status calls for the 5-minute
video; the end seen within max(2 s, 10% of the task's duration). The Kling 3.0 row shows the price of the second
target for a model with a wider typical window (60-300 s): 16 calls. One look now costs one call more than nobody
asking. Asserts nothing.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

import anyio
from mcp import Client
from pydantic import SecretStr

from kie_mcp.catalog import build_input, load_catalog
from kie_mcp.config import Settings
from kie_mcp.kie import FAMILIES, KieClient, KieError
from kie_mcp.kie.families import Family
from kie_mcp.kie.pacing import SlidingWindow
from kie_mcp.sandbox import SANDBOX_API_KEY, SandboxTransport, SimConfig, Simulator
from kie_mcp.server import create_server
from kie_mcp.spend import grant

SPEED = float(sys.argv[1]) if len(sys.argv) > 1 else 40.0
API = "http://api.bench"
STATUS_PATHS = {family.status_path for family in FAMILIES.values()}
IMAGE_WAIT, CHECK_WAIT = 45.0, 50.0  # what generate_image and each check_task wait (KIE seconds)
PROMPT = "waves rolling onto a beach at dusk"


@dataclass(frozen=True)
class Scenario:
    label: str
    model: str
    kind: str
    duration: float  # KIE seconds from create to the end

    @property
    def first_wait(self) -> float:
        return IMAGE_WAIT if self.kind == "image" else 0.0


@dataclass(frozen=True)
class Seen:
    calls: int
    after: float  # KIE seconds from the end on KIE to the first status call that saw it


# -- the world: a simulator whose task takes exactly the scenario's duration -------------------------------


def world(scenario: Scenario) -> tuple[Simulator, SandboxTransport]:
    sim = Simulator(SimConfig(speed=SPEED, starting_balance=1e9))
    sim.rate_clock = sim.now  # KIE's 10 status calls a second counted in KIE's time, as the clients pace them
    sim.duration_for = lambda task_id, low, high: scenario.duration  # type: ignore[method-assign]
    return sim, SandboxTransport(sim)


def seen(sim: Simulator, task_id: str) -> Seen:
    calls = [r for r in sim.requests if r.path in STATUS_PATHS and r.query.get("taskId") == task_id]
    end = sim.tasks[task_id].end_at
    after = [r.at - end for r in calls if r.at >= end]
    return Seen(len(calls), after[0] if after else math.inf)


def scaled_pacing() -> None:
    """Every KieClient of this process paces status calls to 10 per second of KIE's time, as it does in real
    time (the simulator's clock runs SPEED times faster)."""
    built = KieClient.__init__

    def init(self: KieClient, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("poll_window", SlidingWindow(10, 1.0 / SPEED))
        built(self, *args, **kwargs)  # type: ignore[arg-type]

    KieClient.__init__ = init  # type: ignore[method-assign]


# -- old: a fresh polling loop per tool call ------------------------------------------------------------------


async def old_call(kie: KieClient, family: Family, task_id: str, budget: float) -> bool:
    """The loop each tool call ran before the follower (``tasks.polling.follow``): True when the task ended."""
    deadline = time.monotonic() + budget / SPEED
    interval = 2.0 / SPEED
    while True:
        try:
            if (await kie.status(family, task_id)).state.finished:
                return True
        except KieError:
            pass
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        await anyio.sleep(min(interval, left))
        interval = min(interval * 1.5, 15.0 / SPEED)


async def old_agent(scenario: Scenario) -> Seen:
    sim, transport = world(scenario)
    spec = load_catalog().get(scenario.model)
    assert spec is not None
    family = FAMILIES[spec.family]
    async with KieClient(
        api_key=SANDBOX_API_KEY,
        base_url=API,
        upload_base_url=API,
        transport=transport,
        poll_window=SlidingWindow(10, 1.0 / SPEED),
    ) as kie:
        body = family.create_body(spec.id, build_input(spec, prompt=PROMPT))
        task_id = await kie.create(family, spec.id, body, grant(spec.id, 1, "auto", None))
        budget = scenario.first_wait
        while not await old_call(kie, family, task_id, budget):
            budget = CHECK_WAIT
    return seen(sim, task_id)


# -- the follower: today's server -----------------------------------------------------------------------------


def saved(workspace: Path) -> bool:
    """Whether the run's one task has its media saved (file names are sanitised, so not matched by task id)."""
    return any(
        p.is_file() and p.suffix != ".json" and not p.name.startswith(".") for p in (workspace / "outputs").rglob("*")
    )


async def with_follower(scenario: Scenario, *, agent: bool, look_now: bool = False) -> Seen:
    sim, transport = world(scenario)
    with TemporaryDirectory() as folder:
        workspace = Path(folder)
        settings = Settings(
            api_key=SecretStr(SANDBOX_API_KEY),
            base_url=API,
            upload_base_url=API,
            workspace=workspace,
            poll_min_interval=2.0 / SPEED,
            poll_max_interval=15.0 / SPEED,
            rate_limit_backoff=10.0 / SPEED,
            auto_approve_credits=1e6,
            max_credits_per_call=1e6,
            max_credits_per_day=1e9,
            catalog_sync=False,
        )
        async with Client(create_server(settings, transport=transport), mode="legacy") as client:
            first = await client.call_tool(
                f"generate_{scenario.kind}",
                {
                    "model": scenario.model,
                    "prompt": PROMPT,
                    "wait_seconds": scenario.first_wait / SPEED if agent else 0,
                },
            )
            task = first.structured_content["tasks"][0]
            task_id, state = task["task_id"], task["state"]
            if agent:
                while state != "succeeded":
                    checked = await client.call_tool(
                        "check_task", {"task_id": task_id, "wait_seconds": CHECK_WAIT / SPEED}
                    )
                    state = checked.structured_content["task"]["state"]
            else:
                if look_now:  # once, at once: the task a few seconds old, long before the follower's first look
                    await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 0})
                with anyio.fail_after(3 * scenario.duration / SPEED + 10):
                    while not saved(workspace):  # noqa: ASYNC110
                        await anyio.sleep(0.01)
    return seen(sim, task_id)


# -- the report -----------------------------------------------------------------------------------------------


async def run(scenarios: list[Scenario]) -> dict[Scenario, tuple[Seen, Seen, Seen, Seen]]:
    """Each scenario's four runs side by side; one scenario at a time, so no run slows another's clock."""
    found: dict[Scenario, tuple[Seen, Seen, Seen, Seen]] = {}
    for scenario in scenarios:
        results: dict[str, Seen] = {}

        async def one(name: str, scenario: Scenario = scenario, results: dict[str, Seen] = results) -> None:
            if name == "old":
                results[name] = await old_agent(scenario)
            else:
                results[name] = await with_follower(scenario, agent=name == "agent", look_now=name == "look")

        async with anyio.create_task_group() as group:
            for name in ("old", "agent", "alone", "look"):
                group.start_soon(one, name)
        found[scenario] = (results["old"], results["agent"], results["alone"], results["look"])
    return found


def row(label: str, old: Seen, agent: Seen, alone: Seen, look: Seen, duration: float) -> str:
    target = max(2.0, 0.1 * duration)
    cells = "".join(f" | {s.calls:5d} {s.after:8.1f} s" for s in (old, agent, alone, look))
    late = "" if max(agent.after, alone.after, look.after) <= target else "  LATE"
    return f"{label:<40}{cells} | {target:5.1f} s{late}"


def header(title: str) -> list[str]:
    return [
        title,
        f"{'':<40} | {'old (per call)':^16} | {'follower, agent':^16} | {'follower, alone':^16} "
        f"| {'one look now':^16} | within",
        f"{'':<40}" + " | calls seen after" * 4 + " |",
    ]


async def main() -> None:
    logging.disable(logging.INFO)  # the servers' progress lines would drown the table
    scaled_pacing()
    catalog = load_catalog()
    image, video, wide = "gpt-image-2-text-to-image", "veo3_fast", "kling-3.0/video"

    def typical(model: str) -> str:
        low, high = catalog.get(model).typical_seconds
        return f"{low}-{high} s"

    main_cases = [
        Scenario(f"2-minute image ({image[:11]}, {typical(image)})", image, "image", 120.0),
        Scenario(f"5-minute video ({video}, {typical(video)})", video, "video", 300.0),
        Scenario(f"5-minute video ({wide[:9]}, {typical(wide)})", wide, "video", 300.0),
    ]
    sweep = [Scenario(f"image, {d:g} s", image, "image", d) for d in (20, 40, 60, 90, 120, 180)]
    sweep += [Scenario(f"video, {d:g} s", video, "video", d) for d in (100, 150, 200, 250, 300, 400)]
    started = time.monotonic()
    first = await run(main_cases)
    second = await run(sweep)
    lines = [f"Status polling, before and after the follower (time {SPEED:g}x faster; seconds are KIE's)", ""]
    lines += header("The two targets")
    lines += [row(s.label, *first[s], s.duration) for s in main_cases]
    video_calls = first[main_cases[1]][1].calls, first[main_cases[1]][2].calls
    lines.append(f"{'':<40}   5-minute Veo video: follower {max(video_calls)} status calls (target <= 12)")
    looked = first[main_cases[1]][3].calls
    lines.append(f"{'':<40}   ... with one look now at once: {looked} (target: nobody asking's, plus that one)")
    lines.append(f"{'':<40}   (a model whose typical window starts at 60 s needs more looks to keep within 10%)")
    lines += ["", *header("Sweep over the task's duration")]
    lines += [row(s.label, *second[s], s.duration) for s in sweep]
    lines.append(f"\n({time.monotonic() - started:.0f} s of real time)")
    print("\n".join(lines))


if __name__ == "__main__":
    anyio.run(main)
