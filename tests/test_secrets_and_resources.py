"""The key never leaves the process; resources describe and are all readable."""

from __future__ import annotations

import base64
import json
import logging
import os
import sqlite3
from dataclasses import replace
from pathlib import Path

import anyio
import pytest
from mcp import Client, MCPError
from mcp.types import INVALID_PARAMS
from pydantic import SecretStr

from kie_mcp.catalog import load_catalog
from kie_mcp.media.stitch import find_ffmpeg
from kie_mcp.sandbox import SANDBOX_API_KEY, SandboxTransport, SimConfig, Simulator
from kie_mcp.server import create_server

from .conftest import answering, dated, every_resource, not_found_code, text_of
from .test_redaction import KIE_KEY, key_in_every_form, key_leaks, kie_echoing_in_answers, leaks_in_workspace
from .test_stitch import _make

SECRET = "sk-live-TOP-SECRET-4c9e1a7f3b6d2085"


async def test_key_never_appears_in_outputs_or_logs(settings, mode, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    sim = Simulator(SimConfig(speed=1000.0), keys={SECRET: "default"})
    server = create_server(replace(settings, api_key=SecretStr(SECRET)), transport=SandboxTransport(sim))
    seen: list[str] = []
    outputs: list[str] = []
    async with Client(server, mode=mode, elicitation_callback=answering(seen=seen)) as client:
        calls = [
            ("check_credits", {}),
            ("estimate_cost", {"model": "veo3_fast", "prompt": "x"}),
            ("generate_image", {"prompt": "an apple"}),
            ("generate_image", {"prompt": "an apple", "model": "nope"}),
            ("generate_video", {"prompt": "waves"}),
            ("check_task", {"task_id": "missing"}),
            ("upload_file", {"path": "missing.png"}),
        ]
        for name, arguments in calls:
            result = await client.call_tool(name, arguments)
            outputs.append(text_of(result) + json.dumps(result.structured_content))
        for resource in await every_resource(client):
            outputs.append(str(await client.read_resource(resource.uri)))
    assert len(outputs) > len(calls)  # the tool calls plus every resource
    assert sim.requests  # the key did reach KIE (as a header) ...
    everything = "\n".join(outputs + seen + [record.getMessage() for record in caplog.records])
    assert SECRET not in everything  # ... and nowhere else: not in results, questions or log lines
    assert SECRET[-12:] not in everything
    assert SECRET not in repr(sim.requests)  # the simulator's own request log keeps no key either


async def test_resources_are_listed_and_readable(connect):
    async with connect() as client:
        resources = {str(r.uri): r for r in await every_resource(client)}
        templates = [t.uri_template for t in (await client.list_resource_templates()).resource_templates]
        contents = {uri: await client.read_resource(uri) for uri in resources}
    assert {"kie://models", "kie://models.json", "kie://workspace/MASTER_CONTEXT.md"} <= set(resources)
    assert "kie://prompting/guide.md" in resources
    assert "kie://prompting/prompt-library/veo-3-1.md" in resources
    assert "kie://tasks/{task_id}" in templates
    table = contents["kie://models"].contents[0].text
    assert "`veo3_fast`" in table and "credits per clip" in table
    models = json.loads(contents["kie://models.json"].contents[0].text)["models"]
    assert {m["id"] for m in models} >= {"veo3", "nano-banana-2"}
    assert all(m["sources"] for m in models)
    for uri, content in contents.items():
        assert content.contents[0].text.strip(), uri


async def test_resources_describe_and_never_instruct_spending(connect):
    async with connect() as client:
        uris = [str(r.uri) for r in await every_resource(client) if "prompting" in str(r.uri)]
        texts = [(await client.read_resource(uri)).contents[0].text for uri in uris]
    for uri, text in zip(uris, texts, strict=True):
        lowered = text.lower()
        for imperative in ("call generate_", "call estimate_cost", "now call", "you must generate", "always generate"):
            assert imperative not in lowered, (uri, imperative)


async def test_master_context_comes_from_the_workspace(connect, tmp_path):
    (tmp_path / "MASTER_CONTEXT.md").write_text("# Brand: Acme Cold Brew\n")
    async with connect() as client:
        own = await client.read_resource("kie://workspace/MASTER_CONTEXT.md")
    assert "Acme Cold Brew" in own.contents[0].text


async def test_a_workspace_copy_of_the_master_context_template_is_served_with_its_markdown_intact(connect, tmp_path):
    """The audit: the template's `KIE_API_KEY=...` came back as `KIE_API_KEY=[redacted] (add `.env`...: the
    credential rule took the closing backtick and what followed as the value, breaking the markdown for the rest of
    the line. A placeholder is left as it is, and a real value inside backticks is still redacted, backticks kept."""
    template = Path(__file__).parent.parent / "MASTER_CONTEXT.md"  # the template kie-mcp ships
    assert "`KIE_API_KEY=...`" in template.read_text(encoding="utf-8")
    copy = template.read_text(encoding="utf-8")
    notes = (
        "\n- Old test key: `api_key=abc123secret` (revoked); staging `KIE_API_KEY=<your key>`; "
        "`password`: `hunter2x`.\n"
    )
    (tmp_path / "MASTER_CONTEXT.md").write_text(copy + notes, encoding="utf-8")
    async with connect() as client:
        served = (await client.read_resource("kie://workspace/MASTER_CONTEXT.md")).contents[0].text
    assert served.startswith(copy), next(
        (
            f"{mine!r} served as {theirs!r}"
            for mine, theirs in zip(copy.splitlines(), served.splitlines(), strict=False)
            if mine != theirs
        ),
        served,
    )
    assert served[len(copy) :] == (
        "\n- Old test key: `api_key=[redacted]` (revoked); staging `KIE_API_KEY=<your key>`; "
        "`password`: `[redacted]`.\n"
    )


async def test_a_master_context_that_is_not_utf8_says_how_to_fix_it(connect, tmp_path):
    from mcp import MCPError

    (tmp_path / "MASTER_CONTEXT.md").write_bytes("Brand: Caf\xe9 \x93Cold Brew\x94\n".encode("latin-1"))  # old editor
    async with connect() as client:
        with pytest.raises(MCPError, match="save it as UTF-8"):
            await client.read_resource("kie://workspace/MASTER_CONTEXT.md")


async def test_master_context_template_when_the_workspace_has_none(connect, tmp_path):
    async with connect() as client:
        text = (await client.read_resource("kie://workspace/MASTER_CONTEXT.md")).contents[0].text
    assert str(tmp_path) in text
    assert "template" in text


async def test_the_references_guide_master_context_points_at_is_served_until_the_workspace_has_its_own(
    connect, tmp_path
):
    """MASTER_CONTEXT.md and the prompt guide send the agent to references/README.md: a workspace without one is
    served kie-mcp's guide at kie://workspace/references/README.md (said to be the template); one with its own
    gets its own."""
    async with connect() as client:
        listed = {str(r.uri) for r in await every_resource(client)}
        shipped = (await client.read_resource("kie://workspace/references/README.md")).contents[0].text
        master = (await client.read_resource("kie://workspace/MASTER_CONTEXT.md")).contents[0].text
    assert "kie://workspace/references/README.md" in listed
    assert "kie://workspace/references/README.md" in master  # where the template sends the agent
    assert "No references/README.md in the workspace yet" in shipped and "## What goes where" in shipped
    (tmp_path / "references").mkdir()
    (tmp_path / "references" / "README.md").write_text("# Our references\nMaya is the hero.\n")
    async with connect() as client:
        own = (await client.read_resource("kie://workspace/references/README.md")).contents[0].text
    assert own == "# Our references\nMaya is the hero.\n"


async def test_task_resource(connect, controls):
    async with connect(elicitation=answering()) as client:
        result = await client.call_tool("generate_image", {"prompt": "an apple"})
        task_id = result.structured_content["tasks"][0]["task_id"]
        read = await client.read_resource(f"kie://tasks/{task_id}")
    task = json.loads(read.contents[0].text)
    assert task["task_id"] == task_id
    assert task["state"] == "succeeded"


@pytest.mark.parametrize(
    ("task_id", "said", "refused_input"),
    [("does-not-exist", "KIE knows no task", False), ("q_0123456789abcdef", "is a quote id", True)],
    ids=["unknown", "quote id"],
)
async def test_an_unknown_task_resource_is_not_found_and_a_quote_id_refused_saying_why(
    connect, mode, task_id, said, refused_input
):
    """The audit: an unknown task id (or a quote id) was a successful read of {"task_id", "error"}: a client or app
    could not tell it from a task without parsing it. An unknown one is "not found" (the code of the connection's
    revision), as a model or saved result that does not exist is, with the reason; a quote id is no task id at all,
    refused as invalid params in every era (never "not found", which a client may take for "gone")."""
    from mcp import MCPError

    async with connect() as client:
        with pytest.raises(MCPError) as refused:
            await client.read_resource(f"kie://tasks/{task_id}")
    assert refused.value.error.code == (INVALID_PARAMS if refused_input else not_found_code(mode))
    assert said in refused.value.error.message


async def test_a_quote_id_read_as_a_task_says_what_it_is_and_never_to_spend_it(connect):
    """The audit: ``kie://tasks/q_...`` answered "Pass it as quote_id to the generate call it priced": a resource
    telling the client to call a tool that spends, which resources never do. It says what the id is."""
    async with connect() as client:
        with pytest.raises(MCPError) as refused:
            await client.read_resource("kie://tasks/q_0123456789abcdef")
    message = refused.value.error.message
    assert "is a quote id" in message and "not a task" in message, message
    assert "generate" not in message and "quote_id" not in message and "Pass it" not in message, message


SECRET_TASK_IDS = {"the configured key": SANDBOX_API_KEY, "a bearer-shaped token": "sk-proj-" + "Ab3" * 16}


@pytest.mark.parametrize("task_id", list(SECRET_TASK_IDS.values()), ids=list(SECRET_TASK_IDS))
async def test_a_task_id_holding_a_credential_is_refused_unrepeated_and_never_sent_to_kie(
    connect, controls, mode, task_id
):
    """The audit: a credential used as a task id (in ``kie://tasks/{id}``, ``check_task`` or as the clip
    ``continue_video`` continues) was sent to KIE as the taskId of six status URLs (one per family), kept in KIE's
    logs and any proxy's, though the answer showed it redacted. An id the redactor would change is refused before
    anything is asked, saying why, never repeating it."""
    async with connect() as client:
        checked = await client.call_tool("check_task", {"task_id": task_id})
        continued = await client.call_tool(
            "continue_video", {"task_id": task_id, "operation": "extend", "prompt": "on"}
        )
        with pytest.raises(MCPError) as refused:
            await client.read_resource(f"kie://tasks/{task_id}")
    read = refused.value.error
    assert checked.is_error and "holds a credential" in text_of(checked), text_of(checked)
    assert continued.is_error and "holds a credential" in text_of(continued), text_of(continued)
    assert read.code == INVALID_PARAMS and "holds a credential" in read.message, read  # a refusal, never "not found"
    assert "nothing was asked of KIE" in read.message
    answers = text_of(checked) + text_of(continued) + read.message + json.dumps(read.data)
    assert task_id not in answers.replace(f"kie://tasks/{task_id}", "")  # the SDK's data names the URI asked
    requests = await controls.get("requests")
    items = requests if isinstance(requests, list) else requests["requests"]
    assert [r for r in items if task_id in json.dumps(r.get("query", {}))] == []


@pytest.mark.parametrize("what", ["folder", "fifo", "link to nothing"])
async def test_a_master_context_that_is_no_file_is_an_error_saying_what_is_there_never_the_template(
    connect, tmp_path, what
):
    """The audit: a MASTER_CONTEXT.md that is a folder or a FIFO was answered with the template, which says there
    is none yet and to save a copy there (which the folder or FIFO in its place would stop)."""
    master = tmp_path / "MASTER_CONTEXT.md"
    if what == "folder":
        master.mkdir()
    elif what == "fifo":
        os.mkfifo(master)
    else:
        master.symlink_to(tmp_path / "gone.md")
    async with connect() as client:
        with anyio.fail_after(10), pytest.raises(MCPError) as refused:  # a FIFO is never opened, so never waited on
            await client.read_resource("kie://workspace/MASTER_CONTEXT.md")
    message = refused.value.error.message
    words = {"folder": "is a folder", "fifo": "is a named pipe (FIFO)", "link to nothing": "link to nothing"}[what]
    assert words in message and "plain text file" in message, message
    assert "No MASTER_CONTEXT.md in the workspace yet" not in message


async def test_a_master_context_over_50_mb_says_it_is_too_large_not_where_to_keep_it(connect, tmp_path):
    """The audit: its error said it was too large, then "Keep MASTER_CONTEXT.md as a plain file in the workspace",
    advice for a link leading out."""
    (tmp_path / "MASTER_CONTEXT.md").write_bytes(b"# Brand\n")
    os.truncate(tmp_path / "MASTER_CONTEXT.md", 51 * 1024 * 1024)  # sparse: nothing written, the size is judged
    async with connect() as client:
        with pytest.raises(MCPError) as refused:
            await client.read_resource("kie://workspace/MASTER_CONTEXT.md")
    message = refused.value.error.message
    assert "larger than 50 MB" in message and "plain file" not in message, message
    assert "move long material elsewhere" in message


FOLLOWUPS = {spec.id for spec in load_catalog().offered() if spec.followup is not None}


async def test_model_resource_by_id_and_by_name(connect):
    from mcp import MCPError

    async with connect() as client:
        templates = [t.uri_template for t in (await client.list_resource_templates()).resource_templates]
        kling = json.loads((await client.read_resource("kie://models/kling-3.0/video")).contents[0].text)
        veo = json.loads((await client.read_resource("kie://models/veo 3.1 fast")).contents[0].text)
        with pytest.raises(MCPError, match="Unknown model"):
            await client.read_resource("kie://models/no-such-model")
    assert "kie://models/{+model_id}" in templates
    assert kling["id"] == "kling-3.0/video"
    assert kling["fields"]["mode"]["values"] == ["std", "pro", "4K"]
    assert kling["price"]["unit"] == "second"
    assert kling["rules"] and all(rule["source"] in kling["sources"] for rule in kling["rules"])
    assert veo["id"] == "veo3_fast"


@pytest.mark.parametrize("model_id", sorted(FOLLOWUPS))
async def test_every_model_list_models_lists_has_its_document_follow_ups_too(connect, model_id):
    """A continue_video quote points to kie://models/{id} for its provenance: for veo/extend and the other follow-ups
    the read was an internal error (-32603), though list_models lists them."""
    async with connect() as client:
        listed = {m["id"] for m in (await client.call_tool("list_models", {})).structured_content["models"]}
        document = json.loads((await client.read_resource(f"kie://models/{model_id}")).contents[0].text)
    assert model_id in listed
    assert document["id"] == model_id and document["sources"]


def _git(folder, *args):
    import subprocess

    subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True)


@pytest.mark.skipif(__import__("shutil").which("git") is None, reason="git is not installed")
async def test_check_credits_warns_while_the_dotenv_holding_the_key_would_be_committed(connect, tmp_path):
    """The key lives in the workspace's .env; in a git repository that does not ignore it, the next 'git add .'
    publishes it. check_credits (an agent's first call) says so with the fix, and stops once .env is ignored; a
    .env git already tracks is named as committed. The key itself is never in the answer."""
    key = "kie-test-key-8e2b6f0d4a9c7135"
    (tmp_path / ".env").write_text(f"KIE_API_KEY={key}\n")

    async def warning() -> str:
        async with connect() as client:
            text = text_of(await client.call_tool("check_credits", {}))
        assert key not in text
        return text

    assert "Warning" not in await warning()  # no repository around it: nothing to commit it to
    _git(tmp_path, "init", "-q")
    (tmp_path / ".git" / "info" / "exclude").write_text(".kie-mcp/\nlogs/\n")  # kie-mcp's records: warned of apart
    (tmp_path / ".env").write_text("# KIE_API_KEY=put-it-here\nKIE_API_KEY=\n")  # .env.example's lines: no key
    assert "Warning" not in await warning()
    (tmp_path / ".env").write_text(f"KIE_API_KEY={key}\n")
    assert "no .gitignore excludes it" in await warning() and "Add a line '.env'" in await warning()
    (tmp_path / ".gitignore").write_text(".env\n")
    assert "Warning" not in await warning()
    _git(tmp_path, "add", "-f", ".env")
    assert "is committed to git" in await warning() and "git rm --cached .env" in await warning()


@pytest.mark.skipif(__import__("shutil").which("git") is None, reason="git is not installed")
async def test_check_credits_warns_while_the_journal_and_the_call_log_would_be_committed(connect, tmp_path):
    """The audit: in a workspace that is a git repository, check_credits warned of a .env git would commit, but not
    of .kie-mcp/ (the journal: every prompt) and logs/ (the call log), which 'git status' showed untracked, so the
    next 'git add .' committed them. Said the same way, with the fix, until they are ignored; once git tracks one,
    it is named as committed."""
    _git(tmp_path, "init", "-q")

    async def said() -> str:
        async with connect() as client:
            return text_of(await client.call_tool("check_credits", {}))

    first = await said()
    journal, logs = f"{tmp_path / '.kie-mcp'}/", f"{tmp_path / 'logs'}/"
    assert (tmp_path / ".kie-mcp").is_dir() and (tmp_path / "logs").is_dir()
    assert f"Warning: {journal} and {logs} are kie-mcp's records" in first, first
    assert "no .gitignore excludes them" in first and "Add a line '.kie-mcp/' and a line 'logs/'" in first, first
    (tmp_path / ".gitignore").write_text("logs/\n")
    assert f"Warning: {journal} is kie-mcp's records (.kie-mcp/ holds the journal" in await said()
    (tmp_path / ".gitignore").write_text("logs/\n.kie-mcp/\n")
    assert "Warning" not in await said()
    _git(tmp_path, "add", "-f", "logs")
    committed = await said()
    assert f"Warning: {logs} is committed to git" in committed and "git rm -r --cached logs" in committed, committed


@pytest.mark.skipif(__import__("shutil").which("git") is None, reason="git is not installed")
async def test_check_credits_warns_of_a_dotenv_saved_with_a_byte_order_mark_as_of_any_other(connect, tmp_path):
    """The audit: a .env saved as "UTF-8 with BOM" (Notepad), its key on the first line, is read normally by the
    settings, but the warning that git would commit it was gone: the mark stood before KIE_API_KEY."""
    (tmp_path / ".env").write_bytes("KIE_API_KEY=kie-test-key-8e2b6f0d4a9c7135\r\n".encode("utf-8-sig"))
    _git(tmp_path, "init", "-q")
    async with connect() as client:
        said = text_of(await client.call_tool("check_credits", {}))
    assert "no .gitignore excludes it" in said, said


@pytest.mark.skipif(__import__("shutil").which("git") is None, reason="git is not installed")
async def test_asking_git_about_the_dotenv_never_runs_a_program_the_workspace_config_names(connect, tmp_path):
    """A workspace cloned from anywhere may set core.fsmonitor, a command git runs while reading its index."""
    (tmp_path / ".env").write_text("KIE_API_KEY=kie-test-key-8e2b6f0d4a9c7135\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "-f", ".env")
    ran = tmp_path / "ran"
    _git(tmp_path, "config", "core.fsmonitor", f"touch {ran}")
    async with connect() as client:
        text = text_of(await client.call_tool("check_credits", {}))
    assert "is committed to git" in text
    assert not ran.exists()


# -- the key pasted into a parameter: sent only to KIE, never written to a file, a folder name or a page ----------


async def _shown_and_pages(client: Client, task_ids: list[str]) -> list[str]:
    """What the agent reads back: the task list, each task, and the gallery pages (made as results were saved)."""
    listed = await client.call_tool("list_tasks", {})
    shown = [text_of(listed), json.dumps(listed.structured_content)]
    for uri in ["kie://tasks", "kie://outputs/index.html", *[f"kie://tasks/{task_id}" for task_id in task_ids]]:
        shown += [getattr(c, "text", "") for c in (await client.read_resource(uri)).contents]
    return shown


def _journal(workspace: Path) -> list[tuple[str, str, str | None]]:
    """The journal's sessions and prompts, as written: (table, session, prompt) for every create and task."""
    with sqlite3.connect(workspace / ".kie-mcp" / "journal.sqlite3") as db:
        return [
            (table, session, prompt)
            for table in ("attempts", "tasks")
            for session, prompt in db.execute(f"SELECT session, prompt FROM {table}")
        ]


async def test_the_key_pasted_into_a_session_or_prompt_in_any_form_never_reaches_the_journal_a_file_or_a_page(
    settings, mode, caplog, tmp_path
):
    """A session named after the key (as typed, upper-cased, base64) and a prompt holding every form of it: the
    journal's rows, the sidecars, the gallery pages, the folder names, the log, the confirmation forms and the
    answers show [redacted]."""
    caplog.set_level(logging.DEBUG)
    forms = " ".join(key_in_every_form().values())
    calls = [
        {"prompt": "a fox at dawn, #3f9a0c", "session": f"s {KIE_KEY}"},
        {"prompt": f"a fox at dawn; my key is {forms}", "session": f"S {KIE_KEY.upper()}"},
        {"prompt": "a fox at dusk", "session": f"b {base64.b64encode(KIE_KEY.encode()).decode()}"},
    ]
    asked: list[str] = []
    async with kie_echoing_in_answers(settings, mode, asked) as (client, _, _):
        made = [await client.call_tool("generate_image", arguments) for arguments in calls]
        task_ids = [result.structured_content["tasks"][0]["task_id"] for result in made]
        shown = [text_of(result) + json.dumps(result.structured_content) for result in made] + asked
        shown += await _shown_and_pages(client, task_ids)
    assert all(result.structured_content["status"] == "completed" for result in made), [text_of(m) for m in made]
    rows = _journal(tmp_path)
    assert len(rows) == 6 and all(
        session.startswith(("s [redacted]", "S [redacted]", "b [redacted]")) for _, session, _ in rows
    )
    assert [row for row in rows if key_leaks(repr(row))] == []
    sidecars = list((tmp_path / "outputs").rglob("*.json"))
    pages = list((tmp_path / "outputs").rglob("index.html"))
    assert len(sidecars) == 3 and len(pages) == 3  # outputs/index.html and one page per session folder
    assert sorted(path.parent.name[11:] for path in sidecars) == ["b-redacted", "s-redacted", "s-redacted"]
    assert len(asked) >= 3 and [text for text in shown if key_leaks(text)] == []  # the forms asked too
    assert key_leaks(caplog.text) == []
    assert leaks_in_workspace(tmp_path) == {}


async def test_the_key_pasted_into_a_stitch_output_name_never_names_a_file_or_shows_on_a_page(
    settings, mode, caplog, tmp_path
):
    """The joined video's name, its poster and the gallery pages that list it: [redacted] where the key was typed
    (as it is, upper-cased or in full-width letters), never the key."""
    caplog.set_level(logging.DEBUG)
    ffmpeg = find_ffmpeg()
    _make(ffmpeg, tmp_path / "one.mp4", size="320x240", rate=24, audio=False)
    _make(ffmpeg, tmp_path / "two.mp4", size="320x240", rate=24, audio=False)
    full_width = "".join(chr(ord(ch) + 0xFEE0) for ch in KIE_KEY)  # NFKD makes it the key again
    names = [
        {"output_name": f"o{KIE_KEY}"},
        {"output_name": f"cut {KIE_KEY.upper()}.mp4", "session": f"s {KIE_KEY}"},
        {"output_name": f"w{full_width}", "session": "reel"},
    ]
    async with kie_echoing_in_answers(settings, mode) as (client, _, _):
        joined = [await client.call_tool("stitch_videos", {"clips": ["one.mp4", "two.mp4"], **n}) for n in names]
        shown = [text_of(result) + json.dumps(result.structured_content) for result in joined]
        shown += await _shown_and_pages(client, [])
    assert not any(result.is_error for result in joined), shown
    paths = [dated(result.structured_content["path"]) for result in joined]
    assert paths == [
        "outputs/TODAY-o-redacted/o-redacted.mp4",
        "outputs/TODAY-s-redacted/cut-redacted.mp4",
        "outputs/TODAY-reel/w-redacted.mp4",
    ]
    pages = list((tmp_path / "outputs").rglob("index.html"))
    assert len(pages) == 4 and all("redacted.mp4" in page.read_text() for page in pages)
    assert [text for text in shown if key_leaks(text)] == []
    assert key_leaks(caplog.text) == []
    assert leaks_in_workspace(tmp_path) == {}


async def test_saved_files_served_as_text_are_redacted_and_other_bytes_holding_the_key_are_not_served(
    settings, mode, tmp_path
):
    """kie://outputs/ served text as the files held it: a sidecar of an older kie-mcp, a gallery page it wrote before
    prompts were redacted, a month page and a note placed in a session folder came back with the API key in clear,
    while MASTER_CONTEXT.md and references/ are redacted. Text is redacted on its way out (kie_mcp.redact); bytes
    that are not text and hold the key are refused, saying so, as references are; the rest is served unchanged."""
    from kie_mcp.media.saved import GENERATOR

    outputs = tmp_path / "outputs"
    folder = outputs / "2026-01-01-shoot"
    folder.mkdir(parents=True)
    old_page = b"<!doctype html><html><head>" + GENERATOR + f"</head><body><p>pasted {KIE_KEY}</p>".encode()
    text = {
        "2026-01-01-shoot/nano-banana-2_t1.json": json.dumps({"prompt": f"my key {KIE_KEY}", "files": []}).encode(),
        "2026-01-01-shoot/index.html": old_page,
        "2026-01-01-shoot/notes.txt": f"key={KIE_KEY}\n".encode(),
        "index.html": old_page,
        "index-2026-01.html": old_page,
    }
    png = b"\x89PNG\r\n\x1a\n" + bytes(64)
    binary = {"2026-01-01-shoot/plain.png": png, "2026-01-01-shoot/keyed.png": png + KIE_KEY.encode("utf-16-le")}
    for name, data in {**text, **binary}.items():
        (outputs / name).write_bytes(data)
    async with kie_echoing_in_answers(settings, mode) as (client, _, _):
        await client.call_tool("check_credits", {})
        served = {name: (await client.read_resource(f"kie://outputs/{name}")).contents[0] for name in text}
        plain = (await client.read_resource("kie://outputs/2026-01-01-shoot/plain.png")).contents[0]
        with pytest.raises(MCPError) as refused:
            await client.read_resource("kie://outputs/2026-01-01-shoot/keyed.png")
    for name, content in served.items():
        assert content.text is not None and "[redacted]" in content.text, (name, content)
        assert key_leaks(content.text) == [], name
    assert served["2026-01-01-shoot/nano-banana-2_t1.json"].mime_type == "application/json"
    assert served["index.html"].mime_type == served["2026-01-01-shoot/index.html"].mime_type == "text/html"
    assert plain.mime_type == "image/png" and base64.b64decode(plain.blob) == png
    assert "holds the KIE API key" in str(refused.value) and key_leaks(str(refused.value)) == []


@pytest.mark.parametrize("tool", ["upload_file", "estimate_cost", "generate_image"])
async def test_a_file_whose_bytes_hold_the_key_is_never_uploaded_or_priced(connect, controls, sim, tmp_path, tool):
    """The audit: a PNG whose text chunk held the key (as generation tools write their settings into their pictures)
    was refused as a resource but published by upload_file on KIE's public file host, and sent by generate_image.
    It is refused, as the resource is, before anything is priced, uploaded or sent; the answer never shows the key."""
    from PIL import Image, PngImagePlugin

    from kie_mcp.sandbox import SANDBOX_API_KEY

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", f"model=nano-banana; KIE_API_KEY={SANDBOX_API_KEY}")
    Image.new("RGB", (1200, 1200), (0, 120, 200)).save(tmp_path / "shot.png", pnginfo=info)
    asked: list[str] = []
    async with connect(elicitation=answering(seen=asked)) as client:
        edit = {"model": "google/nano-banana-edit", "prompt": "make it blue", "images": ["shot.png"]}
        result = await client.call_tool(tool, {"path": "shot.png"} if tool == "upload_file" else edit)
    text = text_of(result)
    assert result.is_error, text
    assert "shot.png holds the KIE API key, so it is not uploaded" in text, text
    assert "Nothing was uploaded, sent or spent" in text and SANDBOX_API_KEY not in text, text
    assert asked == [] and "quote_id" not in text
    assert sim.uploads == {} and await controls.creates() == []


def test_the_key_is_found_in_a_files_bytes_across_the_chunks_they_are_hashed_in(tmp_path):
    """A file hashed for a quote is read a megabyte at a time: the key cut in two by a chunk's end, or written as
    UTF-16 (a Windows tool's metadata), is found all the same, and a file without it is hashed as before."""
    from kie_mcp.media.inputs import HoldsKey, local_file
    from kie_mcp.media.sniff import WAV
    from kie_mcp.redact import register_secret

    register_secret(KIE_KEY)
    header = b"RIFF" + bytes(4) + b"WAVEfmt " + bytes(24) + b"data" + bytes(4)
    cut = 8192 + (1 << 20) - len(KIE_KEY) // 2  # the first chunk is 8 KiB, the next ones 1 MiB
    for name, key in (("cut.wav", KIE_KEY.encode()), ("wide.wav", KIE_KEY.encode("utf-16-be"))):
        data = bytearray(header + bytes(3 << 20))
        data[cut : cut + len(key)] = key
        (tmp_path / name).write_bytes(bytes(data))
        with pytest.raises(HoldsKey, match=f"{name} holds the KIE API key"):
            local_file(tmp_path / name, WAV, most=10 << 20)
    (tmp_path / "clean.wav").write_bytes(header + bytes(3 << 20))
    assert local_file(tmp_path / "clean.wav", WAV, most=10 << 20).size == len(header) + (3 << 20)


def test_a_file_searched_once_is_searched_again_once_it_is_rewritten_or_another_secret_is_known(tmp_path, monkeypatch):
    """A file found without the key is not searched again (the search is what makes hashing slow) while it is the
    very same file; written to since, or with another secret registered, it is searched again."""
    from kie_mcp.media import inputs
    from kie_mcp.media.inputs import HoldsKey, local_file
    from kie_mcp.media.sniff import WAV
    from kie_mcp.redact import register_secret

    monkeypatch.setattr(inputs, "_SETTLED_SECONDS", -1.0)  # files written just now are remembered too, here

    register_secret(KIE_KEY)
    header = b"RIFF" + bytes(4) + b"WAVEfmt " + bytes(24) + b"data" + bytes(4)
    path = tmp_path / "voice.wav"
    path.write_bytes(header + bytes(1 << 20))
    assert local_file(path, WAV, most=10 << 20).size == len(header) + (1 << 20)
    assert local_file(path, WAV, most=10 << 20).size == len(header) + (1 << 20)  # the same file, not searched again
    data = bytearray(path.read_bytes())
    data[5000 : 5000 + len(KIE_KEY)] = KIE_KEY.encode()  # the same size, written in place
    path.write_bytes(bytes(data))
    with pytest.raises(HoldsKey):
        local_file(path, WAV, most=10 << 20)
    other = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
    clean = header + bytes(1 << 20)
    (tmp_path / "take.wav").write_bytes(clean[:6000] + other.encode() + clean[6000 + len(other) :])
    assert local_file(tmp_path / "take.wav", WAV, most=10 << 20)  # not a secret yet
    register_secret(other)
    with pytest.raises(HoldsKey):
        local_file(tmp_path / "take.wav", WAV, most=10 << 20)
