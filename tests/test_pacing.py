"""Pacing creates and status reads the way KIE counts them: on arrival. Behaviour only, never wall-clock speed.

Most tests run on virtual time (``VirtualTime``): every sleep, of the pacer and of the fake KIE's answers, parks
until the test's driver moves the clock to it, so 100 creates with 8-second answers take milliseconds and the
timeline is exact. The fake KIE counts a create at a random moment between its sending and its answer (when it
"arrives"), with no margin, and refuses the 21st within any 10 s with 429, as KIE does.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
from collections.abc import Awaitable
from typing import Any

import anyio
import httpx2
import pytest

from kie_mcp.kie import FAMILIES, KieClient, KieError, NotSentError
from kie_mcp.kie.pacing import SlidingWindow
from kie_mcp.sandbox import SANDBOX_API_KEY, SandboxTransport, SimConfig, Simulator
from kie_mcp.sandbox.errors import KieError as SimulatedKieError
from kie_mcp.spend import grant

from .conftest import HandClock

MARKET = FAMILIES["market"]
MODEL = "nano-banana-2"
BODY = {"model": MODEL, "input": {"prompt": "a fox", "aspect_ratio": "1:1"}}
RATE_LIMITED = {"code": 429, "msg": "Rate limit exceeded", "data": None}


# -- virtual time --------------------------------------------------------------------------------------------


async def _all_blocked() -> None:
    """Yield until every other task of the loop waits on something (a timer of ours, an event, a lock) and no
    callback is ready to run (anyio delivers cancellation and wakes task-group hosts through callbacks)."""
    me = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for _ in range(100_000):
        await asyncio.sleep(0)
        if loop._ready:  # type: ignore[attr-defined]
            continue
        if all(
            task is me or task.done() or (task._fut_waiter is not None and not task._fut_waiter.done())  # type: ignore[attr-defined]
            for task in asyncio.all_tasks()
        ):
            return
    raise AssertionError("the tasks never settled")


class VirtualTime:
    """A discrete-event clock for asyncio tasks: ``sleep`` parks until ``run`` moves time to its deadline."""

    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (self.now + max(seconds, 0.0), next(self._order), future))
        await future

    async def run(self, *jobs: Awaitable[Any]) -> list[Any]:
        """Run the jobs concurrently to the end; each result is its value or the exception it raised."""
        tasks = [asyncio.ensure_future(job) for job in jobs]
        try:
            while True:
                await _all_blocked()
                if all(task.done() for task in tasks):
                    break
                self._timers = [timer for timer in self._timers if not timer[2].done()]
                heapq.heapify(self._timers)
                assert self._timers, "deadlock: every job waits and no timer is set"
                when, _, future = heapq.heappop(self._timers)
                self.now = max(self.now, when)
                future.set_result(None)
            return [task.exception() or task.result() for task in tasks]
        finally:
            for task in tasks:
                task.cancel()


def max_in_window(times: list[float], window: float) -> int:
    """The most of ``times`` inside any closed span of ``window`` seconds."""
    times = sorted(times)
    return max((sum(1 for u in times[i:] if u <= t + window) for i, t in enumerate(times)), default=0)


# -- a fake KIE that counts on arrival ----------------------------------------------------------------------


class FakeKie:
    """KIE's create and status endpoints on virtual time, counting each request on arrival.

    ``latency(n)`` gives the n-th request's (time to arrival, time from arrival to the answer). Creates over
    ``limit`` in any closed ``window`` seconds are refused with 429 and not counted; ``script`` can force answers.
    """

    def __init__(self, clock: VirtualTime, latency: Any, *, limit: int = 20, window: float = 10.0) -> None:
        self.clock = clock
        self.latency = latency
        self.limit = limit
        self.window = window
        self.arrivals: list[float] = []  # counted creates
        self.sent: list[float] = []  # every create request, when it left the client
        self.refused = 0
        self.reads: list[float] = []  # status reads, on arrival
        self.lookups: list[float] = []  # counted catalogue lookups (GET /api/v1/models...), on arrival
        self.script: list[str] = []  # forced answers for the next creates: "429", "connect"
        self._n = itertools.count()

    async def handler(self, request: httpx2.Request) -> httpx2.Response:
        n = next(self._n)
        forced = self.script.pop(0) if request.url.path.endswith("createTask") and self.script else None
        if forced == "connect":
            raise httpx2.ConnectError("connection refused", request=request)
        to_arrive, to_answer = self.latency(n)
        if request.url.path.endswith("createTask"):
            self.sent.append(self.clock.now)
        await self.clock.sleep(to_arrive)
        now = self.clock.now
        if request.url.path.startswith("/api/v1/models"):  # the catalogue's shared budget: 1 a second
            if self.lookups and now - self.lookups[-1] < 1.0:
                self.refused += 1
                payload = RATE_LIMITED
            else:
                self.lookups.append(now)
                payload = {"code": 200, "msg": "success", "data": {"total": 0, "models": []}}
        elif request.url.path.endswith("recordInfo"):
            self.reads.append(now)
            asked = request.url.params.get("taskId")  # KIE answers about the task asked
            payload: dict[str, Any] = {"code": 200, "msg": "success", "data": {"taskId": asked, "state": "generating"}}
        elif forced == "429" or sum(1 for t in self.arrivals if t >= now - self.window) >= self.limit:
            self.refused += 1
            payload = RATE_LIMITED
        else:
            self.arrivals.append(now)
            payload = {"code": 200, "msg": "success", "data": {"taskId": f"task{n}"}}
        await self.clock.sleep(to_answer)
        return httpx2.Response(200, json=payload)


def client_for(kie: FakeKie, clock: VirtualTime, **windows: SlidingWindow) -> KieClient:
    return KieClient(
        api_key="pacing-test-key",
        base_url="http://api.kie.test",
        upload_base_url="http://upload.kie.test",
        transport=httpx2.MockTransport(kie.handler),
        rate_limit_backoff=10.0,
        **windows,
    )


def creates_window(clock: VirtualTime) -> SlidingWindow:
    return SlidingWindow(20, 10.0, margin=1.0, clock=clock, sleep=clock.sleep)


def uneven(seed: int, slowest: float) -> Any:
    """Random answer times up to ``slowest`` seconds, arriving anywhere between sending and answering."""
    rng = random.Random(seed)

    def latency(n: int) -> tuple[float, float]:
        total = rng.choice([0.0, rng.uniform(0, slowest), slowest])
        before = rng.choice([0.0, rng.uniform(0, total), total])
        return before, total - before

    return latency


# -- the window invariant --------------------------------------------------------------------------------------


@pytest.mark.parametrize("slowest", [0.0, 0.4, 3.0, 8.0])
async def test_no_21_creates_arrive_within_10_s_even_when_answers_are_slow(slowest):
    clock = VirtualTime()
    kie = FakeKie(clock, uneven(seed=int(slowest * 10), slowest=slowest))
    client = client_for(kie, clock, create_window=creates_window(clock))
    approval = grant(MODEL, 100, "quote", None)
    results = await clock.run(*(client.create(MARKET, MODEL, BODY, approval) for _ in range(100)))
    await client.aclose()
    assert all(isinstance(r, str) for r in results), results
    assert kie.refused == 0 and len(kie.arrivals) == 100
    arrivals = sorted(kie.arrivals)
    # Stronger than KIE's rule: any 21 arrivals span at least the window plus the margin.
    assert min(b - a for a, b in itertools.pairwise(arrivals[::20])) >= 11.0 - 1e-9
    assert all(arrivals[i + 20] - arrivals[i] >= 11.0 - 1e-9 for i in range(80))
    # ... and no slower than that: each slot is reused once its answer plus 11 s have passed.
    assert clock.now <= 4 * (11.0 + slowest) + slowest + 1e-6


@pytest.mark.parametrize("seed", range(4))
async def test_catalogue_lookups_never_arrive_within_a_second_of_each_other_whatever_the_network_does(seed):
    """KIE counts a catalogue lookup when it arrives (1 a second per account, shared): a lookup delayed on its way
    (a busy machine, a slow network) must not bring the next one closer than a second, which KIE refuses (429).
    Seen on a busy machine with each lookup's place stamped when it was granted."""
    clock = VirtualTime()
    kie = FakeKie(clock, uneven(seed=seed, slowest=0.8))
    client = client_for(kie, clock, catalog_window=SlidingWindow(1, 1.1, clock=clock, sleep=clock.sleep))

    async def lookups() -> None:
        for _ in range(30):
            await client.list_models()

    results = await clock.run(lookups())
    await client.aclose()
    assert results == [None]
    assert kie.refused == 0 and len(kie.lookups) == 30
    assert min(b - a for a, b in itertools.pairwise(kie.lookups)) >= 1.0


async def test_the_window_holds_for_any_arrival_between_sending_and_answering():
    """Directly on the window: whatever moment between send and answer KIE counts a request at, 21 never fit."""
    clock = VirtualTime()
    window = SlidingWindow(20, 10.0, margin=1.0, clock=clock, sleep=clock.sleep)
    rng = random.Random(7)
    spans: list[tuple[float, float]] = []

    async def one() -> None:
        async with window.occupied():
            sent = clock.now
            await clock.sleep(rng.choice([0.0, 0.05, 2.5, 9.0, rng.uniform(0, 12)]))
            spans.append((sent, clock.now))

    await clock.run(*(one() for _ in range(120)))
    for trial in range(200):
        pick = random.Random(trial)
        arrivals = [pick.choice([s, r, pick.uniform(s, r)]) for s, r in spans]
        assert max_in_window(arrivals, 10.0) <= 20
    # the sufficient condition behind it: when a request is sent, fewer than 20 others are in flight or answered
    # less than 11 s before
    for sent, _ in spans:
        assert sum(1 for s, r in spans if s < sent and r + 11.0 > sent) <= 19


async def test_stamping_at_grant_is_not_enough_when_answers_are_slow():
    """Why slots are held until the answer: stamped when granted, 20 slow creates and a fast one collide."""
    clock = VirtualTime()
    window = SlidingWindow(20, 10.0, clock=clock, sleep=clock.sleep)
    arrivals: list[float] = []

    async def old_style(to_arrive: float) -> None:
        await window.acquire()
        await clock.sleep(to_arrive)
        arrivals.append(clock.now)

    await clock.run(*(old_style(9.5) for _ in range(20)), old_style(0.0))
    assert max_in_window(arrivals, 10.0) == 21  # KIE would have refused one


# -- a 429: retried at the window's edge, without keeping a slot --------------------------------------------------


async def test_a_429_is_retried_exactly_when_the_oldest_create_leaves_the_window():
    clock = VirtualTime()
    kie = FakeKie(clock, lambda n: (0.0, 0.0))
    window = creates_window(clock)
    client = client_for(kie, clock, create_window=window)
    approval = grant(MODEL, 10, "quote", None)

    async def later(delay: float, script: list[str] | None = None) -> str:
        await clock.sleep(delay)
        kie.script += script or []
        return await client.create(MARKET, MODEL, BODY, approval)

    # t=0: two creates, answered at once: they leave the window at 0 + 1 (margin) + 10 = 11.
    # t=3: a create refused with 429 (someone else's traffic filled KIE's window). t=4: another create.
    results = await clock.run(later(0), later(0), later(3, ["429"]), later(4))
    await client.aclose()
    assert all(isinstance(r, str) for r in results), results
    assert kie.sent == [0.0, 0.0, 3.0, 11.0, 11.0]  # not 3 + 10 (a flat delay): the window's edge
    # Now (t=11) the first two have left; the retry and the create of t=4 are in, until 11 + 11. The refused
    # attempt holds no slot (it would until 3 + 11 = 14).
    assert window.occupancy() == 2 and window.edge() == 22.0


async def test_a_429_with_nothing_in_the_window_waits_the_fallback_backoff():
    clock = VirtualTime()
    kie = FakeKie(clock, lambda n: (0.0, 0.0))
    client = client_for(kie, clock, create_window=creates_window(clock))
    client.rate_limit_backoff = 7.0
    kie.script = ["429"]
    [task_id] = await clock.run(client.create(MARKET, MODEL, BODY, grant(MODEL, 1, "quote", None)))
    await client.aclose()
    assert isinstance(task_id, str)
    assert kie.sent == [0.0, 7.0]


async def test_a_429_on_a_create_whose_turn_was_taken_first_waits_for_a_new_turn_before_it_is_resent():
    """A review: the request path takes a create's turn first (``create_turn``) and hands it to ``create``; after a
    429 the resend reused that spent turn, so it went out at once (three resends in 0.1 s, past KIE's window), and
    neither a cancel nor a stop could stop it."""
    clock = VirtualTime()
    kie = FakeKie(clock, lambda n: (0.0, 0.0))
    client = client_for(kie, clock, create_window=creates_window(clock))
    client.rate_limit_backoff = 7.0
    approval = grant(MODEL, 1, "quote", None)
    kie.script = ["429"]

    async def taken_first() -> str:
        slot = await client.create_turn(MARKET, MODEL, approval, anyio.Event())
        return await client.create(MARKET, MODEL, BODY, approval, slot=slot, given_up=anyio.Event())

    [task_id] = await clock.run(taken_first())
    await client.aclose()
    assert isinstance(task_id, str)
    assert kie.sent == [0.0, 7.0]  # the resend waited for its own turn


async def test_a_resend_after_a_429_is_given_up_when_its_call_is_cut_off_meanwhile():
    clock = VirtualTime()
    kie = FakeKie(clock, lambda n: (0.0, 0.0))
    window = creates_window(clock)
    client = client_for(kie, clock, create_window=window)
    client.rate_limit_backoff = 7.0
    approval = grant(MODEL, 1, "quote", None)
    kie.script = ["429"]
    given_up = anyio.Event()

    async def cut_off_at(seconds: float) -> None:
        await clock.sleep(seconds)
        given_up.set()

    async def taken_first() -> str:
        slot = await client.create_turn(MARKET, MODEL, approval, anyio.Event())
        return await client.create(MARKET, MODEL, BODY, approval, slot=slot, given_up=given_up)

    raised, _ = await clock.run(taken_first(), cut_off_at(3.0))
    await client.aclose()
    assert isinstance(raised, NotSentError), raised
    assert kie.sent == [0.0] and window.occupancy() == 0  # never resent, and it holds no turn


async def test_only_a_429_is_retried_and_the_last_429_is_raised():
    clock = VirtualTime()
    kie = FakeKie(clock, lambda n: (0.0, 0.0))
    client = client_for(kie, clock, create_window=creates_window(clock))
    client.rate_limit_backoff = 1.0
    kie.script = ["429"] * 10
    [raised] = await clock.run(client.create(MARKET, MODEL, BODY, grant(MODEL, 1, "quote", None)))
    await client.aclose()
    assert isinstance(raised, KieError) and raised.code == 429
    assert len(kie.sent) == client.max_rate_limit_retries + 1


async def test_a_refused_or_unsent_attempt_frees_its_slot():
    clock = VirtualTime()
    window = SlidingWindow(2, 10.0, margin=1.0, clock=clock, sleep=clock.sleep)

    async def scenario() -> None:
        first = await window.hold()
        first.answered()  # counted: occupies the window until 11
        refused = await window.hold()
        assert window.occupancy() == 2
        pause = refused.rate_limited(fallback=5.0)
        assert pause == 11.0 and window.occupancy() == 1 and window.in_flight == 0
        unsent = await window.hold()  # waits for the pause (the edge), not for a slot
        assert clock.now == 11.0 and window.occupancy() == 1
        unsent.not_counted()
        assert window.occupancy() == 0
        again = await window.hold()  # free at once
        assert clock.now == 11.0
        again.answered()
        again.not_counted()  # settled once: later calls change nothing
        assert window.occupancy() == 1 and window.edge() == 22.0

    await clock.run(scenario())


async def test_a_create_that_never_left_frees_its_slot_in_the_client():
    clock = VirtualTime()
    kie = FakeKie(clock, lambda n: (0.0, 0.0))
    window = SlidingWindow(1, 10.0, margin=1.0, clock=clock, sleep=clock.sleep)
    client = client_for(kie, clock, create_window=window)
    approval = grant(MODEL, 2, "quote", None)
    kie.script = ["connect"]
    [unsent] = await clock.run(client.create(MARKET, MODEL, BODY, approval))
    assert isinstance(unsent, NotSentError) and window.occupancy() == 0
    [task_id] = await clock.run(client.create(MARKET, MODEL, BODY, approval))
    await client.aclose()
    assert isinstance(task_id, str) and kie.sent == [0.0]  # sent at once: the failed attempt held nothing


async def test_a_cancelled_create_stays_counted():
    """A create cancelled while KIE may already have it keeps its slot, as if answered when it was cancelled."""
    clock = VirtualTime()
    window = SlidingWindow(20, 10.0, margin=1.0, clock=clock, sleep=clock.sleep)

    async def cancelled() -> None:
        with anyio.move_on_after(0.05):  # real time: the virtual sleep below never ends on its own
            async with window.occupied():
                await asyncio.get_running_loop().create_future()

    await cancelled()
    assert window.in_flight == 0 and window.occupancy() == 1 and window.edge() == 11.0


# -- status reads ----------------------------------------------------------------------------------------------


async def test_status_reads_stay_within_10_per_second_as_kie_counts_them():
    clock = VirtualTime()
    rng = random.Random(3)

    def latency(n: int) -> tuple[float, float]:
        total = rng.uniform(0.0, 0.3)
        before = rng.choice([0.0, total, rng.uniform(0, total)])
        return before, total - before

    kie = FakeKie(clock, latency)
    client = client_for(kie, clock, poll_window=SlidingWindow(10, 1.0, clock=clock, sleep=clock.sleep))
    statuses = await clock.run(*(client.status(MARKET, f"task{i}") for i in range(60)))
    await client.aclose()
    assert not [s for s in statuses if isinstance(s, BaseException)]
    assert len(kie.reads) == 60
    assert max_in_window(kie.reads, 1.0) <= 10
    assert clock.now <= 5 * (1.1 + 0.3) + 0.3  # paced, not throttled further: a slot per answer + 1.1 s


# -- through the simulator, which counts creates on arrival ------------------------------------------------------


async def test_concurrent_creates_through_the_simulator_get_no_429():
    speed = 10_000.0  # virtual seconds per real second: a 10 s window lasts 1 ms, an answer takes seconds
    sim = Simulator(SimConfig(speed=speed, starting_balance=1e9))
    sim.rate_clock = sim.now  # KIE's window on the simulator's clock too, as the pacer's below

    async def sleep(seconds: float) -> None:
        await anyio.sleep(seconds / speed)

    client = KieClient(
        api_key=SANDBOX_API_KEY,
        base_url="http://api.kie.test",
        upload_base_url="http://upload.kie.test",
        transport=SandboxTransport(sim),
        create_window=SlidingWindow(20, 10.0, clock=sim.now, sleep=sleep),  # the pacer on the simulator's clock
    )
    approval = grant(MODEL, 50, "quote", None)
    task_ids: list[str] = []

    async def one() -> None:
        task_ids.append(await client.create(MARKET, MODEL, BODY, approval))

    async with anyio.create_task_group() as group:
        for _ in range(50):
            group.start_soon(one)
    await client.aclose()
    creates = [r for r in sim.requests if r.path == "/api/v1/jobs/createTask"]
    assert len(task_ids) == len(set(task_ids)) == 50
    assert len(creates) == 50 and len(sim.tasks) == 50  # every create was sent once: not one 429
    assert max_in_window([r.at for r in creates], 10.0) <= 20


def test_the_simulator_counts_arrivals_and_not_refusals():
    wall = HandClock()  # the real seconds KIE's window counts, moved by hand
    sim = Simulator(SimConfig(speed=0), rate_clock=wall)
    for _ in range(20):
        sim.admit_create("default")
    with pytest.raises(SimulatedKieError) as refused:
        sim.admit_create("default")
    assert refused.value.code == 429
    wall.move(5)
    for _ in range(5):  # refused: not counted, so they do not push the window out
        with pytest.raises(SimulatedKieError):
            sim.admit_create("default")
    wall.move(5.001)
    for _ in range(20):
        sim.admit_create("default")
    with pytest.raises(SimulatedKieError):
        sim.admit_create("default")
