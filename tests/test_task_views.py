"""What list_tasks, check_task and the kie://tasks resources tell an agent about the workspace's tasks.

Through the real MCP client in both protocol eras; KIE is the simulator. Tasks an earlier server (or an earlier
simulator) left are written into the journal as that server would have written them.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from mcp import MCPError

from kie_mcp.catalog import load_catalog
from kie_mcp.journal import Journal, journal_path
from kie_mcp.tasks import TaskBook, TaskRecord

from .conftest import answering, text_of

LOGS = "https://kie.ai/logs"
SECRET = "Bearer Zq8xW3kLmN4pR7sT1vY6uB2eH5jD9fGc"  # credential-shaped: redacted wherever it would leave the server


def journaled(workspace: Path, *tasks: tuple[TaskRecord, str | None, str | None]) -> None:
    """Write tasks (record, prompt, session) into the workspace's journal, as the server that made them did."""
    journal = Journal.for_workspace(workspace)
    try:
        book = TaskBook(journal)
        for record, prompt, session in tasks:
            book.add(record, prompt=prompt, session=session)
    finally:
        journal.close()


def task(task_id: str, model: str, *, state: str = "failed", age: float = 600.0, **fields: Any) -> TaskRecord:
    family = "veo" if model.startswith("veo") else "market"
    kind = "video" if family == "veo" else "image"
    if state == "failed":
        fields.setdefault("error", "KIE reports the task failed: no reason given.")
    return TaskRecord(
        task_id=task_id, model=model, family=family, kind=kind, state=state, created_at=time.time() - age, **fields
    )


def spend_rows(workspace: Path) -> list[Any]:
    journal = Journal.for_workspace(workspace)
    try:
        return journal.query("SELECT * FROM spend")
    finally:
        journal.close()


# -- M2: a task KIE does not know -----------------------------------------------------------------------------------


async def test_a_task_kie_does_not_know_is_named_so_with_no_time_left_and_no_field_to_fix(connect, tmp_path):
    """KIE answers "record is null" for a journaled task it does not have (another account's key, a task it no longer
    keeps): check_task used to say "queued (95%); about 1s left ... Fix the field it names" for ever."""
    gone = task("veo_task_gone0000000000001", "veo3_fast", state="queued", credits_reserved=60.0)
    journaled(tmp_path, (gone, "scene 1: the woman turns to the sea", "launch"))
    async with connect() as client:
        looked = await client.call_tool("check_task", {"task_id": gone.task_id, "wait_seconds": 0})
        waited = await client.call_tool("check_task", {"task_id": gone.task_id, "wait_seconds": 0.3})
        listed = await client.call_tool("list_tasks", {})
        resource = json.loads((await client.read_resource(f"kie://tasks/{gone.task_id}")).contents[0].text)
    for result in (looked, waited):
        text = text_of(result)
        assert not result.is_error, text
        assert "KIE does not know this task under the current API key" in text, text
        assert "another account's key" in text and LOGS in text
        assert "Fix the field" not in text and "list_models" not in text
        assert "left" not in text.split("KIE does not know")[0] and "%" not in text, text  # no ETA, no progress
        shown = result.structured_content["task"]
        assert shown["state"] == "queued"  # never marked failed on a guess
        assert shown["eta_seconds"] is None and shown["progress"] is None, shown
        assert (shown["prompt"], shown["session"]) == ("scene 1: the woman turns to the sea", "launch")  # followed
    assert resource["eta_seconds"] is None and resource["progress"] is None
    assert (resource["prompt"], resource["session"]) == ("scene 1: the woman turns to the sea", "launch")
    assert resource["error"].startswith("KIE does not know this task")
    assert listed.structured_content["tasks"][0]["state"] == "queued"
    assert "KIE does not know it under the current API key" in text_of(listed)
    kept = TaskBook(Journal.for_workspace(tmp_path)).get(gone.task_id)
    assert kept is not None and kept.state == "queued" and kept.credits_reserved == 60.0
    assert spend_rows(tmp_path) == []  # nothing refunded (or charged) on it


async def test_a_young_task_kie_does_not_show_yet_is_still_a_wait(connect, tmp_path):
    """Right after create KIE answers "record is null" too: inside the visibility grace that is a wait, not news."""
    young = task("veo_task_young000000000001", "veo3_fast", state="queued", age=1.0)
    journaled(tmp_path, (young, "scene 2: waves", None))
    async with connect() as client:
        looked = await client.call_tool("check_task", {"task_id": young.task_id, "wait_seconds": 0})
    text = text_of(looked)
    assert "does not know" not in text and "Check again later" in text, text
    assert looked.structured_content["task"]["error"] is None
    assert looked.structured_content["task"]["eta_seconds"] > 0


# -- M4: the model filter ------------------------------------------------------------------------------------------


async def test_list_tasks_finds_a_model_by_the_names_the_generate_tools_take(connect, tmp_path):
    journaled(
        tmp_path,
        *[(task(f"nb{i}", "nano-banana-2", age=600.0 + i), f"picture {i}", None) for i in range(3)],
        (task("veo1", "veo3_fast"), "a clip", None),
        (task("other1", "someone/not-in-the-catalogue"), "made elsewhere", None),
    )
    async with connect() as client:
        by_name = await client.call_tool("list_tasks", {"model": "nano banana"})
        by_title = await client.call_tool("list_tasks", {"model": "Nano Banana 2"})
        by_id = await client.call_tool("list_tasks", {"model": "nano-banana-2"})
        journal_only = await client.call_tool("list_tasks", {"model": "someone/not-in-the-catalogue"})
        misspelt = await client.call_tool("list_tasks", {"model": "nano bananna"})
        (shared, candidates), *_ = load_catalog().shared_names().items()
        ambiguous = await client.call_tool("list_tasks", {"model": shared})
    for result in (by_name, by_title, by_id):
        assert not result.is_error, text_of(result)
        assert [t["task_id"] for t in result.structured_content["tasks"]] == ["nb0", "nb1", "nb2"], text_of(result)
        assert "3 task(s) of nano-banana-2" in text_of(result)
    assert [t["task_id"] for t in journal_only.structured_content["tasks"]] == ["other1"]
    assert misspelt.is_error and "nano-banana-2" in text_of(misspelt) and "Did you mean" in text_of(misspelt)
    assert ambiguous.is_error and all(c in text_of(ambiguous) for c in candidates), text_of(ambiguous)


# -- M5: the total -------------------------------------------------------------------------------------------------


async def test_list_tasks_says_how_many_match_when_the_limit_cuts_the_list(connect, tmp_path):
    journaled(
        tmp_path,
        *[(task(f"pool{i:02}", "nano-banana-2", age=600.0 + i), f"poolside serum shot {i}", None) for i in range(12)],
        (task("beach", "nano-banana-2"), "serum on the beach", None),
    )
    async with connect() as client:
        cut = await client.call_tool("list_tasks", {"text": "poolside", "limit": 2})
        whole = await client.call_tool("list_tasks", {"text": "poolside"})
        resource = json.loads((await client.read_resource("kie://tasks")).contents[0].text)
    assert len(cut.structured_content["tasks"]) == 2 and cut.structured_content["total"] == 12
    assert "showing 2 of 12; raise limit to see more" in text_of(cut), text_of(cut)
    assert len(whole.structured_content["tasks"]) == 12 and whole.structured_content["total"] == 12
    assert "showing" not in text_of(whole) and text_of(whole).startswith("12 task(s)")
    assert resource["total"] == 13 and len(resource["tasks"]) == 13


async def test_list_tasks_finds_words_in_any_letter_case_and_unicode_form_and_never_as_wildcards(connect, tmp_path):
    """SQLite's LOWER folds ASCII only: "Кот" found nothing, not even typed as in the prompt, nor did "Über" or
    "ÉTÉ"; a café typed on a Mac (NFD) was not found by "café"; and "50%" matched every prompt with a 50 in it."""
    prompts = {
        "cat": "Кот на крыше Москвы",
        "roof": "Über den Dächern von München",
        "summer": "ÉTÉ à Paris",
        "cafe": "Un cafe\u0301 en terrasse",  # NFD, as macOS types it
        "istanbul": "İstanbul at dusk",
        "sale": "Poster: 50% off",
        "fifty": "A 50 mm lens, 50 cm away",
    }
    journaled(tmp_path, *[(task(key, "nano-banana-2"), prompt, None) for key, prompt in prompts.items()])
    searches = {"Кот": {"cat"}, "кот": {"cat"}, "über": {"roof"}, "ÜBER": {"roof"}, "été": {"summer"}}
    searches |= {"ÉTÉ": {"summer"}, "café": {"cafe"}, "İstanbul": {"istanbul"}, "50%": {"sale"}, "München": {"roof"}}
    async with connect() as client:
        for text, expected in searches.items():
            found = await client.call_tool("list_tasks", {"text": text})
            assert {t["task_id"] for t in found.structured_content["tasks"]} == expected, (text, text_of(found))


async def test_list_tasks_finds_yesterdays_work_by_its_session_and_says_what_each_task_cost(connect, tmp_path):
    """The journey audit: every workflow names a session, but list_tasks took no session (refused), its text search
    read prompts only and said nothing when it found none, and its text showed no task's cost."""
    journaled(
        tmp_path,
        (task("shot1", "nano-banana-2", state="succeeded", credits_quoted=8.0), "a balm jar on marble", "Maya-Balm"),
        (task("clip1", "veo3_fast", state="succeeded", credits_charged=60.0), "she smiles", "maya-balm reel"),
        (task("other", "nano-banana-2", state="succeeded", credits_quoted=8.0), "a red apple", "apples"),
    )
    async with connect() as client:
        found = await client.call_tool("list_tasks", {"session": "MAYA-BALM"})
        missed = await client.call_tool("list_tasks", {"text": "maya-balm"})
    assert {t["task_id"] for t in found.structured_content["tasks"]} == {"shot1", "clip1"}, text_of(found)
    assert "(8 credits quoted)" in text_of(found) and "(60 credits charged)" in text_of(found)
    assert missed.structured_content["tasks"] == []
    assert "session=" in text_of(missed) and "prompt" in text_of(missed)


async def test_list_tasks_shows_a_failed_task_as_refunded_and_the_figure_the_caps_count(connect, tmp_path):
    """The review: a failed task (refunded) read "(30 credits quoted)", and a veo3_lite task counted at 60 (KIE was
    seen charging that) read only its quote."""
    journaled(
        tmp_path,
        (task("kite", "veo3_lite", credits_quoted=30.0, credits_reserved=30.0), "a kite", None),
        (task("lite", "veo3_lite", state="running", credits_quoted=30.0, credits_reserved=60.0), "a talk", None),
    )
    async with connect() as client:
        listed = text_of(await client.call_tool("list_tasks", {}))
    assert (
        "veo3_lite failed" in listed
        and "(not counted: KIE refunds failed tasks" in listed
        and "(30 credits quoted)" not in listed
    ), listed
    assert "(30 credits quoted; 60 counted)" in listed, listed


async def test_list_tasks_searches_for_the_words_sent_even_when_they_read_as_json(connect, tmp_path):
    """The SDK decoded the search text "null" as JSON (no search: every task listed) and "[draft]"-style text too."""
    journaled(
        tmp_path,
        (task("nullish", "nano-banana-2"), "A sign that reads null and void", None),
        (task("listed", "nano-banana-2"), 'Caption ["sale", "new"] in bold', None),
        (task("other", "nano-banana-2"), "A red apple", None),
    )
    async with connect() as client:
        for text, expected in {"null": {"nullish"}, '["sale", "new"]': {"listed"}}.items():
            found = await client.call_tool("list_tasks", {"text": text})
            assert {t["task_id"] for t in found.structured_content["tasks"]} == expected, (text, text_of(found))


# -- M6: prompt and session ----------------------------------------------------------------------------------------


async def test_every_task_view_shows_the_prompt_and_session_shortened_and_redacted(connect, tmp_path):
    """After a restart an agent tells scene 1 from scene 2 by prompt and session, never by guessing task ids."""
    long_prompt = f"scene 1: the woman turns and smiles at the camera {SECRET} " + "in warm morning light " * 20
    journaled(
        tmp_path,
        (task("scene1", "veo3_fast", age=700.0), "placeholder", "launch-film"),
        (task("scene2", "veo3_fast", age=600.0), "scene 2: she walks to the window", "launch-film"),
    )
    journal = Journal.for_workspace(tmp_path)  # a prompt as an older kie-mcp (or a hand edit) left it: unredacted
    journal.execute("UPDATE tasks SET prompt = ? WHERE task_id = 'scene1'", long_prompt)
    journal.close()
    async with connect() as client:
        listed = await client.call_tool("list_tasks", {})
        checked = await client.call_tool("check_task", {"task_id": "scene1"})
        resource = json.loads((await client.read_resource("kie://tasks")).contents[0].text)
        one = json.loads((await client.read_resource("kie://tasks/scene2")).contents[0].text)
    views = {t["task_id"]: t for t in listed.structured_content["tasks"]}
    for shown in (views["scene1"], checked.structured_content["task"], resource["tasks"][1]):
        assert shown["prompt"].startswith("scene 1: the woman turns and smiles"), shown
        assert len(shown["prompt"]) <= 120 and shown["prompt"].endswith("...")
        assert shown["session"] == "launch-film"
        assert shown["folder"] is None  # failed: nothing is saved anywhere
    assert views["scene2"]["prompt"] == one["prompt"] == "scene 2: she walks to the window"
    assert one["session"] == "launch-film"
    for text in (text_of(listed), text_of(checked)):
        assert '"scene 1: the woman turns and smiles' in text and 'session "launch-film"' in text, text
    assert '"scene 2: she walks to the window"' in text_of(listed)
    everything = text_of(listed) + text_of(checked) + json.dumps(resource) + json.dumps(one)
    everything += json.dumps(listed.structured_content) + json.dumps(checked.structured_content)
    assert "Zq8xW3kLmN4pR7sT1vY6uB2eH5jD9fGc" not in everything
    assert "[redacted]" in views["scene1"]["prompt"]


async def test_a_prompt_a_task_view_gives_back_as_data_is_the_prompt_as_written_escaped_only_in_words(
    connect, tmp_path
):
    """A review: a soft hyphen copied from a web page, or a right-to-left mark typed beside Hebrew, came back in
    ``list_tasks``' structured ``prompt`` as the six letters ``\\u00ad``: an agent asked to make it again would send
    them to the model. Data keeps the prompt's characters; only an override that turns text around is escaped, and
    only where the answer says it in words."""
    prompt = "שלום\u200f 3D לוגו: Produkt\u00adfoto einer Kaffee\u00admaschine 👩\u200d💻 \u202ecod.exe"
    journaled(tmp_path, (task("soft", "veo3_fast", age=600.0), prompt, None))
    async with connect() as client:
        listed = await client.call_tool("list_tasks", {})
        one = json.loads((await client.read_resource("kie://tasks/soft")).contents[0].text)
    shown = listed.structured_content["tasks"][0]["prompt"]
    assert shown == one["prompt"] == prompt, shown
    assert "Produkt\u00adfoto" in text_of(listed) and "\\u00ad" not in text_of(listed)
    assert "\\u202ecod.exe" in text_of(listed)  # the override is escaped where it is said in words


async def test_a_generated_task_shows_its_session_folder(connect, tmp_path):
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool(
            "generate_image", {"prompt": "a red apple on a table", "model": "nano-banana-2", "session": "Scene 3"}
        )
        task_id = made.structured_content["tasks"][0]["task_id"]
        checked = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 5})
        listed = await client.call_tool("list_tasks", {"model": "nano banana"})
    shown = checked.structured_content["task"]
    assert shown["state"] == "succeeded", text_of(checked)
    assert shown["session"] == "Scene 3" and shown["prompt"] == "a red apple on a table"
    assert shown["folder"].startswith("outputs/") and shown["folder"].endswith("-scene-3")
    assert all(path.startswith(shown["folder"] + "/") for path in shown["files"])
    assert f"folder {shown['folder']}" in text_of(listed) and f"folder {shown['folder']}" in text_of(checked)
    assert listed.structured_content["tasks"][0]["folder"] == shown["folder"]


@pytest.mark.parametrize("mode", ["auto"])  # the follower, the disk and the wire, not the era: once
async def test_check_task_of_a_finished_video_says_what_it_cost(connect, controls, sim):
    """A video is followed with check_task after generate_video returned at once: its finished view says the cost,
    KIE's charge when KIE reports it (market models), else the price it was quoted at (Veo reports none)."""
    sim.config.report_credits_consumed = True  # a KIE that reports its charge on the task (live Market records do not)
    async with connect(elicitation=answering()) as client:
        views = {}
        for model in ("bytedance/seedance-2", "veo3_fast"):
            made = await client.call_tool("generate_video", {"prompt": "waves at dusk", "model": model})
            task_id = made.structured_content["tasks"][0]["task_id"]
            views[model] = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 40})
    seedance, veo = (text_of(views[m]) for m in ("bytedance/seedance-2", "veo3_fast"))
    charged = views["bytedance/seedance-2"].structured_content["task"]["credits_charged"]
    assert "succeeded" in seedance and f"Cost: {charged:g} credits charged by KIE." in seedance, seedance
    assert "succeeded" in veo and "Cost: 60 credits quoted and counted" in veo, veo


async def test_check_task_of_a_failed_task_says_what_it_cost_and_what_to_do_next(connect, controls, tmp_path):
    """The journey: check_task of a failed task said only "failed. KIE reports the task failed (code 500): ...".
    It now says what the record shows it cost (nothing, the reservation given back; or what KIE charged), that a
    retry is a new spend approved on its own, and, for content KIE refused (code 400, or its words for a flagged
    prompt), to rephrase the prompt first, as the same request is refused again."""
    charged = task("charged", "nano-banana-2", credits_quoted=30.0, credits_reserved=30.0, credits_charged=12.0)
    journaled(tmp_path, (charged, "a cat", None))  # KIE reported a charge for it, as a failed task's record may
    views = {}
    async with connect(elicitation=answering()) as client:
        for model, code, said in (
            ("kling-3.0/video", "500", "Internal error"),
            ("nano-banana-2", "400", "Your content was flagged by the safety system"),
            ("nano-banana-2", "501", "The prompt violates our content policy"),
        ):
            await controls.fault("create", kind="task_fail", fail_code=code, fail_msg=said)
            made = await client.call_tool(
                "generate_video" if "kling" in model else "generate_image",
                {"model": model, "prompt": "push in on a bottle", "wait_seconds": 0},
            )
            task_id = made.structured_content["tasks"][0]["task_id"]
            views[code] = text_of(await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 40}))
        views["charged"] = text_of(await client.call_tool("check_task", {"task_id": "charged"}))
    again = "Trying again is a new request, priced and approved on its own like the first."
    rephrase = "KIE refused the content: rephrase the prompt (or change the input pictures) before trying again"
    assert "KIE reports the task failed (code 500): Internal error." in views["500"], views["500"]
    assert "(as its docs say), so the 90 credits reserved for it were given back." in views["500"], views["500"]
    assert views["500"].endswith(again) and rephrase not in views["500"], views["500"]
    for code in ("400", "501"):  # by its code, or by KIE's words
        assert (
            "Cost: nothing counted; KIE refunds failed tasks (as its docs say), so the 8 credits reserved"
            in views[code]
        ), views[code]
        assert f"{rephrase}, as the same request is refused again. {again}" in views[code], views[code]
    assert (
        "Cost: 12 credits charged by KIE for it, though it failed; the rest of the 30 credits reserved was given back."
        in views["charged"]
    ), views["charged"]


async def test_a_quote_id_given_to_check_task_is_named_as_one_and_never_asked_of_kie(connect, controls):
    async with connect() as client:
        quote = (
            await client.call_tool("estimate_cost", {"prompt": "an apple", "model": "nano-banana-2"})
        ).structured_content["quote"]
        checked = await client.call_tool("check_task", {"task_id": quote["quote_id"]})
    assert checked.is_error and "is a quote id" in text_of(checked) and "quote_id" in text_of(checked)
    assert "record is null" not in text_of(checked)
    assert not [r for r in (await controls.get("requests"))["requests"] if "record" in r["path"].lower()]


async def test_the_task_list_names_the_latest_creates_of_unknown_outcome_and_counts_them_all(connect, tmp_path):
    """The audit: kie://tasks named every create of unknown outcome ever made (20,000 of them: a 3.4 MB read) and
    said they count against the daily cap, though only each one's own day counts it."""
    journal = Journal.for_workspace(tmp_path)
    made = []
    for n in range(25):
        attempt = journal.begin_attempt(
            model="nano-banana-2", family="market", approved_by="quote", quote_id=None, prompt=f"shot {n}",
            params={}, credits_quoted=8, session=None,
        )  # fmt: skip
        journal.execute("UPDATE attempts SET created = ? WHERE attempt_id = ?", time.time() - 86400 * (30 - n), attempt)
        journal.finish_attempt(attempt, "unknown", error="HTTP 502")
        made.append(attempt)
    journal.close()
    async with connect() as client:
        body = json.loads((await client.read_resource("kie://tasks")).contents[0].text)
        listed = await client.call_tool("list_tasks", {})
    assert [a["attempt_id"] for a in body["unknown_create_list"]] == made[::-1][:20]  # the newest first
    assert body["unknown_creates"] == 25 and listed.structured_content["unknown_creates"] == 25
    assert "25 create(s)" in body["unknown_creates_note"] and "of the day it was sent" in body["unknown_creates_note"]


# -- a journal row with a time no calendar has ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "created_at", [1_780_000_000_000.0, 1e20, -1e12, float("nan")], ids=["milliseconds", "1e20", "-1e12", "NaN"]
)
async def test_a_journal_row_with_a_time_no_calendar_has_is_named_and_never_fails_the_listing(
    connect, tmp_path, created_at
):
    """A created_at in milliseconds (KIE's createTime is), 1e20 or -1e12 (a hand edit, another tool writing the
    journal) made list_tasks, kie://tasks and kie://tasks/{id} fail with a bare error for every task ("year out of
    range"). The row is named as one this kie-mcp cannot read; every other task is listed."""
    journaled(
        tmp_path, (task("good1", "nano-banana-2"), "a good one", None), (task("odd1", "nano-banana-2"), "odd", None)
    )
    with sqlite3.connect(journal_path(tmp_path)) as db:
        record = json.loads(db.execute("SELECT record FROM tasks WHERE task_id = 'odd1'").fetchone()[0])
        db.execute(
            "UPDATE tasks SET record = ? WHERE task_id = 'odd1'", (json.dumps({**record, "created_at": created_at}),)
        )
    async with connect() as client:
        listed = await client.call_tool("list_tasks", {})
        resource = json.loads((await client.read_resource("kie://tasks")).contents[0].text)
        odd = await client.call_tool("check_task", {"task_id": "odd1"})
        with pytest.raises(MCPError) as refused:
            await client.read_resource("kie://tasks/odd1")
    assert not listed.is_error, text_of(listed)
    assert [t["task_id"] for t in listed.structured_content["tasks"]] == ["good1"]
    assert "could not be read by this kie-mcp and are not listed: odd1" in text_of(listed)
    assert [t["task_id"] for t in resource["tasks"]] == ["good1"] and resource["unreadable_tasks"] == ["odd1"]
    for said in (text_of(odd), refused.value.error.message):
        assert "odd1" in said and "cannot read its record" in said and "created_at" in said, said


async def test_a_task_an_older_kie_mcp_kept_thousands_of_links_for_is_listed_small(connect, tmp_path):
    """An older kie-mcp kept every link one garbage answer named (20,000 of them): list_tasks and kie://tasks weighed
    5 MiB on every call, for good. The record is read with the first 24 and says the rest were dropped."""
    journaled(tmp_path, (task("many1", "nano-banana-2", state="succeeded", error=None), "many", None))
    links = [f"https://tempfile.aiquickdraw.com/r/{n:06d}.png" for n in range(20_000)]
    with sqlite3.connect(journal_path(tmp_path)) as db:
        record = json.loads(db.execute("SELECT record FROM tasks WHERE task_id = 'many1'").fetchone()[0])
        db.execute(
            "UPDATE tasks SET record = ? WHERE task_id = 'many1'", (json.dumps({**record, "result_urls": links}),)
        )
    async with connect(download=False) as client:
        listed = await client.call_tool("list_tasks", {})
        resource = (await client.read_resource("kie://tasks")).contents[0].text
        checked = await client.call_tool("check_task", {"task_id": "many1"})
    [shown] = listed.structured_content["tasks"]
    assert shown["result_urls"] == links[:24] and "(19976 dropped)" in shown["note"]
    assert len(json.dumps(listed.model_dump(mode="json"))) < 64 * 1024 and len(resource) < 64 * 1024
    assert len(json.dumps(checked.model_dump(mode="json"))) < 64 * 1024, text_of(checked)[:300]


# -- paging back through every task ---------------------------------------------------------------------------------


def pages(workspace: Path, count: int, *, tie: int = 3) -> list[str]:
    """``count`` tasks, ``tie`` at a time created in the same instant (a batch of variations); their ids newest
    first, ties by id, as list_tasks orders them. Odd ones succeeded, even ones failed."""
    now = time.time()
    made = []
    for n in range(count):
        record = task(f"t{n:04}", "nano-banana-2", state="succeeded" if n % 2 else "failed")
        record.created_at = now - 600.0 - n // tie * 60
        made.append(record)
    journaled(workspace, *[(record, f"shot {record.task_id} of the series", None) for record in made])
    return [r.task_id for r in sorted(made, key=lambda r: (r.created_at, r.task_id), reverse=True)]


async def every_page(client, arguments: dict[str, Any]) -> tuple[list[str], list[Any]]:
    """The task ids of a listing and of every page after it (following next_cursor), and each page's answer."""
    seen: list[str] = []
    answers = []
    cursor = None
    while True:
        answer = await client.call_tool("list_tasks", {**arguments, **({"cursor": cursor} if cursor else {})})
        assert not answer.is_error, text_of(answer)
        answers.append(answer)
        seen += [t["task_id"] for t in answer.structured_content["tasks"]]
        cursor = answer.structured_content["next_cursor"]
        if cursor is None:
            return seen, answers
        assert f'cursor="{cursor}"' in text_of(answer), text_of(answer)  # the text says how to go on
        assert len(seen) < 1000


async def test_list_tasks_reaches_every_task_page_by_page_never_skipping_or_repeating_one(connect, tmp_path):
    """The audit: past the newest 200 matches no call could list an older task (since only cuts older ones off), and
    the cut-off message and kie://tasks advised since. Tasks of one instant (variations) are ordered by id, so a page
    that ends inside them goes on with the next."""
    newest_first = pages(tmp_path, 300)
    async with connect() as client:
        whole, answers = await every_page(client, {"limit": 200})
        small, small_answers = await every_page(client, {"limit": 7, "state": "succeeded", "text": "OF THE SERIES"})
        resource = json.loads((await client.read_resource("kie://tasks")).contents[0].text)
        after_resource, _ = await every_page(client, {"cursor": resource["next_cursor"], "limit": 200})
    assert whole == newest_first  # all 300, newest first, each once
    first = text_of(answers[0])
    assert "showing 200 of 300; list the older ones with list_tasks(cursor=" in first, first
    assert answers[1].structured_content["total"] == 100 and "older than the previous page" in text_of(answers[1])
    succeeded = [t for t in newest_first if int(t[1:]) % 2]
    assert small == succeeded and len(small_answers) == 22
    assert (
        'raise limit to see more at once (at most 200), or list the older ones with list_tasks(state="succeeded"'
        in (text_of(small_answers[0]))
    )
    assert 'text="OF THE SERIES", cursor="' in text_of(small_answers[0])
    assert [t["task_id"] for t in resource["tasks"]] + after_resource == newest_first
    assert "list_tasks(cursor=next_cursor) lists the older ones" in resource["total_note"]
    assert "since" not in resource["total_note"].split(";")[1].split("and list_tasks finds")[0]


async def test_a_task_made_between_two_pages_neither_shifts_nor_repeats_the_next_page(connect, tmp_path):
    newest_first = pages(tmp_path, 30)
    async with connect() as client:
        first = await client.call_tool("list_tasks", {"limit": 10})
        journaled(tmp_path, (task("zz-newer", "nano-banana-2", age=1.0), "made meanwhile", None))
        second = await client.call_tool("list_tasks", {"limit": 10, "cursor": first.structured_content["next_cursor"]})
    assert [t["task_id"] for t in second.structured_content["tasks"]] == newest_first[10:20]


async def test_a_page_that_ends_on_a_row_this_kie_mcp_cannot_read_goes_on_after_it(connect, tmp_path):
    newest_first = pages(tmp_path, 12)
    odd = newest_first[4]  # the last row of the first page of 5
    journal = Journal.for_workspace(tmp_path)
    journal.execute("UPDATE tasks SET record = '{\"state\": 7' WHERE task_id = ?", odd)  # a newer kie-mcp's, or cut
    journal.close()
    async with connect() as client:
        seen, answers = await every_page(client, {"limit": 5})
    named = [a.structured_content["message"] for a in answers if odd in a.structured_content["message"]]
    assert seen == [t for t in newest_first if t != odd] and len(answers) == 3
    assert len(named) == 1 and "could not be read" in named[0]


async def test_a_cursor_no_listing_gave_or_given_with_other_filters_is_refused_in_words(connect, tmp_path):
    import base64

    pages(tmp_path, 12)

    def crafted(value: Any) -> str:
        return "c1." + base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    async with connect() as client:
        real = (await client.call_tool("list_tasks", {"limit": 5})).structured_content["next_cursor"]
        bad = [
            "next",
            real[:-4],  # cut short
            real[:3] + "!" + real[4:],
            "c1." + "A" * 900,
            crafted([float("nan"), "t0001", "x"]),  # json.dumps writes NaN
            crafted([1e400, "t0001", "x"]),
            crafted([10**400, "t0001", "x"]),  # a whole number too large for a float (the review: a crash)
            crafted([True, "t0001", "x"]),
            crafted({"created": 1}),
            crafted([1.0, ["t0001"], "x"]),
            crafted("'; DROP TABLE tasks;--"),
        ]
        answers = [await client.call_tool("list_tasks", {"limit": 5, "cursor": cursor}) for cursor in bad]
        other_filters = await client.call_tool("list_tasks", {"limit": 5, "cursor": real, "state": "failed"})
        still = await client.call_tool("list_tasks", {"limit": 5, "cursor": real})
    for cursor, answer in zip(bad, answers, strict=True):
        assert answer.is_error, cursor
        assert "cursor is not one list_tasks gave" in text_of(answer) and "without cursor" in text_of(answer), cursor
    assert other_filters.is_error and "other filters" in text_of(other_filters), text_of(other_filters)
    assert not still.is_error and len(still.structured_content["tasks"]) == 5  # nothing was dropped


# -- the text search off the event loop -----------------------------------------------------------------------------


async def test_a_text_search_reads_every_prompt_in_a_worker_thread_holding_no_lock_of_the_journal(
    connect, tmp_path, monkeypatch
):
    """At 50,000 tasks with 2 kB prompts a text search held the event loop 1.3-1.5 s (every other call waited). Prompts
    an older kie-mcp saved (no folded form) are folded by that search, in that thread, and found."""
    import threading

    from kie_mcp import journal as journals

    pages(tmp_path, 6)
    old = Journal.for_workspace(tmp_path)  # as a kie-mcp before the folded column left them (or a hand edit)
    old.execute("UPDATE tasks SET prompt_folded = NULL")
    old.execute("UPDATE tasks SET prompt = 'ÉTÉ à la MER' WHERE task_id = 't0002'")
    old.close()
    handles: list[Journal] = []
    opened = Journal.__init__

    def kept(self: Journal, path: Any, **options: Any) -> None:
        opened(self, path, **options)
        handles.append(self)

    folds: list[tuple[bool, bool]] = []  # (on the event loop's thread, the server's journal lock not held by it)
    original = journals.folded

    def watched(text: str | None) -> str:
        # Whether this search holds the lock, not whether anyone does: the follower's rescans read the journal in
        # worker threads of their own, and one may hold it for a moment while the search folds.
        free = not handles[0]._lock._is_owned()
        folds.append((threading.current_thread() is threading.main_thread(), free))
        return original(text)

    monkeypatch.setattr(Journal, "__init__", kept)
    async with connect() as client:
        await client.call_tool("list_tasks", {})  # opens the runtime (and its journal)
        monkeypatch.setattr(journals, "folded", watched)
        found = await client.call_tool("list_tasks", {"text": "été"})
        monkeypatch.setattr(journals, "folded", original)
    assert [t["task_id"] for t in found.structured_content["tasks"]] == ["t0002"], text_of(found)
    assert folds and not any(on_loop for on_loop, _ in folds), folds
    assert all(free for _, free in folds), folds
    journal = Journal.for_workspace(tmp_path)
    try:  # folded once, kept: the next search compares in SQLite alone
        assert journal.query("SELECT COUNT(*) FROM tasks WHERE prompt_folded IS NULL")[0][0] == 0
        assert journal.task_row("t0002")["prompt_folded"] == "été à la mer"
    finally:
        journal.close()


async def test_a_prompt_an_older_kie_mcp_changes_is_searched_as_it_reads_now(connect, tmp_path):
    """A writer that does not fold (an older kie-mcp on the same workspace, a hand edit) leaves no stale folded
    prompt behind: the search finds the new words, never the old."""
    journaled(tmp_path, (task("edited", "nano-banana-2"), "a red apple", None))
    journal = Journal.for_workspace(tmp_path)
    journal.execute("UPDATE tasks SET prompt = 'a green PEAR' WHERE task_id = 'edited'")
    journal.close()
    async with connect() as client:
        pear = await client.call_tool("list_tasks", {"text": "pear"})
        apple = await client.call_tool("list_tasks", {"text": "apple"})
    assert [t["task_id"] for t in pear.structured_content["tasks"]] == ["edited"]
    assert apple.structured_content["tasks"] == []


# -- creates of unknown outcome, by attempt id ----------------------------------------------------------------------


async def test_list_tasks_names_each_create_of_unknown_outcome_by_model_time_prompt_and_session(connect, controls):
    """They were only a count: nothing to look for on KIE's logs by."""
    async with connect(elicitation=answering()) as client:
        await controls.fault("create", kind="drop_after_create")
        made = await client.call_tool("generate_image", {"prompt": "a blue pear", "session": "fruit-shoot"})
        listed = await client.call_tool("list_tasks", {})
        resource = json.loads((await client.read_resource("kie://tasks")).contents[0].text)
    assert made.structured_content["tasks"][0]["state"] == "unknown", text_of(made)
    (create,) = listed.structured_content["unknown_create_list"]
    assert listed.structured_content["unknown_creates"] == 1
    assert create["attempt_id"].startswith("a_") and create["model"] == "nano-banana-2"
    assert create["prompt"] == "a blue pear" and create["session"] == "fruit-shoot"
    assert create["created"].endswith("Z") and create["error"]
    line = f'- {create["attempt_id"]}: nano-banana-2, sent {create["created"]} [prompt "a blue pear"; session '
    assert line in text_of(listed), text_of(listed)
    assert resource["unknown_create_list"] == [create]


async def test_the_task_list_resource_names_unknown_creates_as_list_tasks_and_check_credits_do(connect, controls):
    """The audit: in kie://tasks ``unknown_creates`` was the list (its count ``unknown_creates_total``), while in
    list_tasks and check_credits it is the count (the list ``unknown_create_list``): one name, two meanings."""
    async with connect(elicitation=answering()) as client:
        await controls.fault("create", kind="drop_after_create")
        await client.call_tool("generate_image", {"prompt": "a green pear", "session": "fruit-shoot"})
        listed = (await client.call_tool("list_tasks", {})).structured_content
        credits = (await client.call_tool("check_credits", {})).structured_content
        resource = json.loads((await client.read_resource("kie://tasks")).contents[0].text)
    assert resource["unknown_creates"] == listed["unknown_creates"] == credits["unknown_creates"] == 1
    assert resource["unknown_create_list"] == listed["unknown_create_list"]
    assert [create["prompt"] for create in resource["unknown_create_list"]] == ["a green pear"]
    assert "unknown_creates_total" not in resource


async def test_check_task_explains_an_attempt_id_from_the_journal_without_asking_kie(connect, controls, tmp_path):
    """check_task(<attempt id>) asked KIE six times and then said KIE knows no such task."""
    async with connect(elicitation=answering()) as client:
        await controls.fault("create", kind="drop_after_create")
        await client.call_tool("generate_image", {"prompt": "a blue pear"})
        made = await client.call_tool("generate_image", {"prompt": "a yellow pear"})
        journal = Journal.for_workspace(tmp_path)
        unknown, created = (row["attempt_id"] for row in journal.attempts())
        journal.close()
        await controls.http.delete("/__sim/requests")
        answers = {
            "unknown": await client.call_tool("check_task", {"task_id": unknown}),
            "created": await client.call_tool("check_task", {"task_id": created}),
            "absent": await client.call_tool("check_task", {"task_id": "a_0123456789abcdef"}),
        }
        try:
            await client.read_resource(f"kie://tasks/{unknown}")
            resource_error = ""
        except Exception as err:  # MCPError: no such task
            resource_error = str(err)
        asked = (await controls.get("requests"))["requests"]
    task_id = made.structured_content["tasks"][0]["task_id"]
    for answer in answers.values():
        assert answer.is_error and "Refused by kie-mcp (input): a_" in text_of(answer), text_of(answer)
        assert "not a KIE task id; nothing was asked of KIE" in text_of(answer), text_of(answer)
    assert "nano-banana-2 create sent at" in text_of(answers["unknown"]) and LOGS in text_of(answers["unknown"])
    assert "may have made a task" in text_of(answers["unknown"])
    assert f"check_task(task_id='{task_id}')" in text_of(answers["created"]), text_of(answers["created"])
    assert "journal has no create a_0123456789abcdef" in text_of(answers["absent"])
    assert "not a KIE task id" in resource_error
    assert not [r for r in asked if "record" in r["path"].lower()], asked


# -- lookups KIE refuses ----------------------------------------------------------------------------------------------


async def test_a_rate_limited_lookup_of_an_unknown_task_gets_advice_for_a_status_check(connect, controls):
    """A 429 to check_task on an id the journal does not know said "limit of 20 new tasks ... not queued and not
    charged": advice for a create."""
    await controls.fault("status", times=-1, kind="code", code=429, msg="slow down")
    async with connect() as client:
        checked = await client.call_tool("check_task", {"task_id": "abcdef0123456789abcdef0123456789"})
        try:
            await client.read_resource("kie://tasks/0123456789abcdef0123456789abcdef")
            resource_error = ""
        except Exception as err:
            resource_error = str(err)
    for text in (text_of(checked), resource_error):
        assert "status check of task" in text and "nothing was sent or charged" in text, text
        assert "20 new tasks" not in text and "not queued" not in text, text
        assert "slow down" in text.lower()


async def test_an_overlong_task_id_is_told_by_its_own_length(connect, controls):
    """words.plain counted the quotes it added: a 200-character id read "(202 characters)"."""
    async with connect() as client:
        checked = await client.call_tool("check_task", {"task_id": "x" * 200})
        try:
            await client.read_resource("kie://tasks/" + "y" * 250)
            resource_error = ""
        except Exception as err:
            resource_error = str(err)
    assert "(200 characters)" in text_of(checked), text_of(checked)
    assert "(250 characters)" in resource_error and "nothing was asked of KIE" in resource_error, resource_error
    assert "Refused by kie-mcp (input): " in resource_error, resource_error  # not "KIE request failed"


@pytest.mark.parametrize("mode", ["auto"])  # what a listing shows, not the protocol era: once
async def test_a_key_typed_in_groups_into_a_prompt_is_never_shown_by_a_listing(connect, controls):
    """The review: a key typed with runs of spaces between its groups was redacted as saved (not whole there), and
    shown whole once the listing made those runs one space, in the list of creates of unknown outcome and a task's
    label. It is redacted as it is shown."""
    import secrets

    from kie_mcp.redact import register_secret

    key = secrets.token_hex(16)
    register_secret(key)  # as KieClient registers the user's key
    grouped = "   ".join(key[i : i + 8] for i in range(0, 32, 8))
    async with connect(elicitation=answering()) as client:
        await controls.fault("create", kind="drop_after_create")
        await client.call_tool("generate_image", {"prompt": f"a poster with the text {grouped}"})
        await client.call_tool("generate_image", {"prompt": f"a card with the text {grouped}"})
        listed = await client.call_tool("list_tasks", {})
        resource = (await client.read_resource("kie://tasks")).contents[0].text
    shown = " ".join(key[i : i + 8] for i in range(0, 32, 8))
    for text in (text_of(listed), json.dumps(listed.structured_content), resource):
        assert shown not in text and key not in text, text
    assert listed.structured_content["unknown_create_list"] and listed.structured_content["tasks"]
