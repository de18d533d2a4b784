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


async def test_check_task_of_a_finished_video_says_what_it_cost(connect, controls):
    """A video is followed with check_task after generate_video returned at once: its finished view says the cost,
    KIE's charge when KIE reports it (market models), else the price it was quoted at (Veo reports none)."""
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
    assert [a["attempt_id"] for a in body["unknown_creates"]] == made[::-1][:20]  # the newest first
    assert body["unknown_creates_total"] == 25 and listed.structured_content["unknown_creates"] == 25
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
