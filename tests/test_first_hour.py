"""The first hour with kie-mcp: the sandbox keeps to itself, saved files can be found, and a broken setting is
explained by every tool instead of killing the server.

Everything goes through the SDK ``Client`` in both protocol eras (the ``connect`` and ``mode`` fixtures); the
process-level promises (the console script started from a source checkout, or with a broken setting) run the
installed ``kie-mcp`` over real stdio.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, MCPError, StdioServerParameters
from PIL import Image

from kie_mcp.catalog.live import cache_path
from kie_mcp.cli import _catalog_sync
from kie_mcp.config import ConfigError, Settings, sandbox_area, user_data_dir
from kie_mcp.media.downloads import sniff_mime
from kie_mcp.sandbox import SANDBOX_API_KEY, SandboxTransport, SimConfig, Simulator
from kie_mcp.server import create_server

from .conftest import answering, every_resource, text_of

IMAGE = {"prompt": "A red apple on a wooden table", "model": "nano-banana-2"}  # 8 credits
VIDEO = {"prompt": "Waves at dusk", "model": "veo3_fast"}
EDIT = {"prompt": "make it blue", "model": "google/nano-banana-edit"}
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def sandboxed(settings: Settings, transport: SandboxTransport, mode: str) -> Any:
    """``async with sandboxed(**overrides) as client``: a ``--sandbox`` server (``Settings.for_sandbox``) on this
    test's workspace and simulator."""

    @asynccontextmanager
    async def opener(seen: list[str] | None = None, **overrides: Any) -> AsyncIterator[Client]:
        server = create_server(replace(settings.for_sandbox(), **overrides), transport=transport)
        async with Client(server, mode=mode, elicitation_callback=answering(seen=seen)) as client:
            yield client

    return opener


def first_text(result: Any) -> str:
    return result.content[0].text


# -- sandbox isolation ------------------------------------------------------------------------------------------


async def test_sandbox_spend_never_counts_against_the_real_daily_cap(connect, sandboxed):
    async with sandboxed() as client:
        simulated = await client.call_tool("generate_image", IMAGE)
        assert simulated.structured_content["status"] == "completed", text_of(simulated)
        assert (await client.call_tool("check_credits", {})).structured_content["spent_today"] == 8
    async with connect(elicitation=answering(), max_credits_per_day=10) as client:
        credits = (await client.call_tool("check_credits", {})).structured_content
        estimate = (await client.call_tool("estimate_cost", IMAGE)).structured_content
        assert credits["spent_today"] == 0
        assert estimate["within_caps"], estimate["cap_problem"]  # 0 + 8 <= 10: the sandbox's 8 do not count
        await client.call_tool("generate_image", IMAGE)  # a real 8 credits do count
        again = (await client.call_tool("estimate_cost", IMAGE)).structured_content
    assert not again["within_caps"] and "cap" in again["cap_problem"]


async def test_sandbox_and_real_tasks_never_appear_in_each_others_lists(connect, sandboxed, tmp_path):
    async with connect(elicitation=answering()) as client:
        real = (await client.call_tool("generate_image", IMAGE)).structured_content["tasks"][0]
    async with sandboxed() as client:
        simulated = (await client.call_tool("generate_image", IMAGE)).structured_content["tasks"][0]
        sandbox_list = (await client.call_tool("list_tasks", {})).structured_content
        sandbox_resource = json.loads((await client.read_resource("kie://tasks")).contents[0].text)
    async with connect() as client:
        real_list = (await client.call_tool("list_tasks", {})).structured_content
        real_resource = json.loads((await client.read_resource("kie://tasks")).contents[0].text)
    assert [t["task_id"] for t in real_list["tasks"]] == [real["task_id"]]
    assert [t["task_id"] for t in real_resource["tasks"]] == [real["task_id"]]
    assert [t["task_id"] for t in sandbox_list["tasks"]] == [simulated["task_id"]]
    assert [t["task_id"] for t in sandbox_resource["tasks"]] == [simulated["task_id"]]
    # Their files and journals are apart too: the sandbox keeps everything in <workspace>/sandbox/.
    assert (tmp_path / real["files"][0]).is_file()
    assert (sandbox_area(tmp_path) / simulated["files"][0]).is_file()
    assert not (tmp_path / simulated["files"][0]).exists()
    assert (sandbox_area(tmp_path) / ".kie-mcp").is_dir() and (sandbox_area(tmp_path) / "logs").is_dir()


async def test_every_sandbox_result_says_so_in_its_text(sandboxed, tmp_path):
    async with sandboxed() as client:
        results = {
            "list_models": await client.call_tool("list_models", {"kind": "image"}),
            "estimate_cost": await client.call_tool("estimate_cost", IMAGE),
            "generate_image": await client.call_tool("generate_image", IMAGE),
            "check_credits": await client.call_tool("check_credits", {}),
            "list_tasks": await client.call_tool("list_tasks", {}),
        }
        task_id = results["generate_image"].structured_content["tasks"][0]["task_id"]
        results["check_task"] = await client.call_tool("check_task", {"task_id": task_id})
        instructions = client.instructions or ""
    for name, result in results.items():
        assert not result.is_error, (name, text_of(result))
        assert first_text(result).startswith("[sandbox] "), name
    assert "SANDBOX" in instructions and str(sandbox_area(tmp_path)) in instructions


async def test_the_sandbox_reads_inputs_and_references_of_the_real_workspace(sandboxed, tmp_path):
    """Reference images stay where the user keeps them; the sandbox reads them by absolute path, and by the path
    relative to the workspace the README and MASTER_CONTEXT.md give (its own results stay readable relatively)."""
    reference = tmp_path / "references" / "products" / "bottle.png"
    reference.parent.mkdir(parents=True)
    Image.new("RGB", (1200, 1200), (20, 120, 200)).save(reference, "PNG")
    (tmp_path / "MASTER_CONTEXT.md").write_text("# Brand: Acme Cold Brew\n")
    async with sandboxed() as client:
        listed = {str(r.uri): r for r in await every_resource(client)}
        master = (await client.read_resource("kie://workspace/MASTER_CONTEXT.md")).contents[0].text
        made = await client.call_tool("generate_image", {**EDIT, "images": [str(reference)]})
        relative = await client.call_tool("generate_image", {**EDIT, "images": ["references/products/bottle.png"]})
        uploaded = await client.call_tool("upload_file", {"path": "references/products/bottle.png"})
        saved = made.structured_content["tasks"][0]["files"][0]  # the sandbox's own result, relative
        again = await client.call_tool("generate_image", {**EDIT, "images": [saved]})
    assert relative.structured_content["status"] == "completed", text_of(relative)
    assert not uploaded.is_error, text_of(uploaded)
    assert not saved.startswith("/") and again.structured_content["status"] == "completed", text_of(again)
    described = listed["kie://workspace/references/products/bottle.png"].description or ""
    assert str(reference) in described
    assert "Acme Cold Brew" in master
    assert made.structured_content["status"] == "completed", text_of(made)


async def test_a_mistyped_input_path_in_the_sandbox_names_both_places_it_was_looked_for(sandboxed, tmp_path):
    """A relative path is looked up in the sandbox area, then in the real workspace: a typo's error named only the
    first (".../sandbox/references/...: nothing there"), as if the real workspace's references/ were never read."""
    (tmp_path / "references" / "products").mkdir(parents=True)
    typo = "references/products/serum.jpeg"  # the file is serum.jpg
    Image.new("RGB", (1200, 1200), (20, 120, 200)).save(tmp_path / "references" / "products" / "serum.jpg", "JPEG")
    async with sandboxed() as client:
        estimated = await client.call_tool("estimate_cost", {**EDIT, "images": [typo]})
        uploaded = await client.call_tool("upload_file", {"path": typo})
    places = f"{sandbox_area(tmp_path).resolve() / typo} and {tmp_path.resolve() / typo}"
    assert estimated.is_error and f"looked in {places}: nothing there" in text_of(estimated), text_of(estimated)
    assert uploaded.is_error and f"No file at {places}." in text_of(uploaded), text_of(uploaded)


async def test_a_relative_path_in_the_project_but_not_the_workspace_is_refused_saying_where_it_is(
    settings, transport, controls, mode, tmp_path
):
    """The audit: in Claude Code or Cursor the server's current folder is the project, but the workspace is another
    folder (the per-user one, when the project holds no MASTER_CONTEXT.md). images: ["product.jpg"] was "neither an
    http(s) URL nor a readable file (looked in <workspace>/product.jpg)", hiding that the file is right there in the
    project. The refusal says where it is and how to work in that folder, and never reads it from there (that folder
    is not one kie-mcp may read); in a folder the client shares as an MCP root, it offers the absolute path."""
    from mcp.types import ListRootsResult, Root

    project, workspace, shared = tmp_path / "project", tmp_path / "workspace", tmp_path / "shared"
    for folder in (project, workspace, shared):
        folder.mkdir()
    Image.new("RGB", (1200, 1200), (20, 120, 200)).save(project / "product.jpg", "JPEG")
    Image.new("RGB", (1200, 1200), (200, 120, 20)).save(shared / "box.png", "PNG")
    loaded = Settings.load({"KIE_API_KEY": SANDBOX_API_KEY, "KIE_WORKSPACE": str(workspace)}, cwd=project)
    started = replace(loaded, base_url=settings.base_url, upload_base_url=settings.upload_base_url, catalog_sync=False)

    async def shared_folder(context: Any) -> ListRootsResult:
        return ListRootsResult(roots=[Root(uri=shared.resolve().as_uri(), name="shared")])

    async with Client(
        create_server(started, transport=transport), mode=mode, list_roots_callback=shared_folder
    ) as client:
        in_project = await client.call_tool("estimate_cost", {**EDIT, "images": ["product.jpg"]})
        uploaded = await client.call_tool("upload_file", {"path": "product.jpg"})
        in_root = await client.call_tool("estimate_cost", {**EDIT, "images": ["box.png"]})
        by_absolute_path = await client.call_tool("estimate_cost", {**EDIT, "images": [str(shared / "box.png")]})
    there = f"There is a file 'product.jpg' in the folder kie-mcp was started in ({project.resolve()})"
    for refused in (in_project, uploaded):
        said = text_of(refused)
        assert refused.is_error and f"{workspace.resolve() / 'product.jpg'}" in said and there in said, said
        assert f"set KIE_WORKSPACE={project.resolve()}" in said and "MASTER_CONTEXT.md" in said, said
        assert "Nothing was read or uploaded" in said and str(project / "product.jpg") not in said, said
    said = text_of(in_root)
    assert in_root.is_error and f'give its absolute path, "{shared.resolve() / "box.png"}"' in said, said
    assert not by_absolute_path.is_error, text_of(by_absolute_path)  # ... which is taken
    requests = (await controls.get("requests"))["requests"]
    assert not [r for r in requests if r["path"].startswith("/api/file-")] and await controls.creates() == []


async def test_a_server_started_in_the_home_folder_says_nothing_of_the_files_there(
    settings, transport, controls, mode, tmp_path, monkeypatch
):
    """The review: a server started in the user's home folder (from a terminal, by some clients) answered a relative
    path with "There is a file ... in the folder kie-mcp was started in", so an agent could learn which of the user's
    files exist, and was told to set KIE_WORKSPACE to the whole home folder. There, a file found and one missing get
    the same refusal, naming only the workspace."""
    home, workspace = tmp_path / "home", tmp_path / "workspace"
    (home / "Documents").mkdir(parents=True)
    workspace.mkdir()
    Image.new("RGB", (1200, 1200), (20, 120, 200)).save(home / "Documents" / "passport.jpg", "JPEG")
    monkeypatch.setenv("HOME", str(home))
    loaded = Settings.load({"KIE_API_KEY": SANDBOX_API_KEY, "KIE_WORKSPACE": str(workspace)}, cwd=home)
    started = replace(loaded, base_url=settings.base_url, upload_base_url=settings.upload_base_url, catalog_sync=False)
    async with Client(create_server(started, transport=transport), mode=mode) as client:
        there = await client.call_tool("estimate_cost", {**EDIT, "images": ["Documents/passport.jpg"]})
        missing = await client.call_tool("estimate_cost", {**EDIT, "images": ["Documents/nothing.jpg"]})
    for refused in (there, missing):
        said = text_of(refused)
        assert refused.is_error and str(workspace.resolve() / "Documents") in said, said
        assert "There is a file" not in said and "KIE_WORKSPACE=" not in said and str(home) + "/" not in said, said
    assert text_of(there).replace("passport", "nothing") == text_of(missing)
    assert await controls.creates() == []


async def test_a_sandbox_still_used_as_a_video_s_input_is_sent_as_it_is_as_a_real_one_would_be(sandboxed):
    """The audit's first hour: a sandbox still, 256 px even at 2K, given to Veo added "(144x256 px) is upscaled
    (Lanczos) to 608x1080 px before upload" to the quote, the form and the answer, which never happens live."""
    forms: list[str] = []
    async with sandboxed(seen=forms) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "aspect_ratio": "9:16", "resolution": "2K"})
        assert made.structured_content["status"] == "completed", text_of(made)
        video = {**VIDEO, "images": [made.structured_content["tasks"][0]["files"][0]], "aspect_ratio": "9:16"}
        quoted = await client.call_tool("estimate_cost", video)
        submitted = await client.call_tool("generate_video", video)
    assert not quoted.is_error and not submitted.is_error, text_of(quoted) + text_of(submitted)
    assert len(forms) == 2  # the still's and the clip's
    for said in (text_of(quoted), forms[-1], text_of(submitted)):
        assert "upscaled" not in said, said


async def test_a_sandbox_task_s_time_left_and_unreported_charge_say_they_are_simulated(sandboxed, controls):
    """The audit's first hour: a running sandbox clip said "about 9s left" with no hint it was simulated, and the
    finished one "KIE does not report this task's charge (https://kie.ai/logs shows it)", though kie.ai/logs has
    nothing of a simulated task."""
    progress: list[str] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append(message or "")

    async with sandboxed() as client:
        await controls.post("clock/speed", {"speed": 0})  # the clip runs until the clock is moved
        submitted = await client.call_tool("generate_video", VIDEO, progress_callback=on_progress)
        task_id = submitted.structured_content["tasks"][0]["task_id"]
        running = await client.call_tool("check_task", {"task_id": task_id})
        await controls.post("clock/advance", {"seconds": 3600})
        done = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 10})
    assert progress, "no progress was reported"
    for said in (text_of(submitted), text_of(running), progress[-1]):
        assert re.search(r"about \d+s left \(simulated\)", said), said
    finished = text_of(done)
    assert done.structured_content["task"]["state"] == "succeeded", finished
    assert "the simulator does not report this task's charge" in finished, finished
    assert "kie.ai/logs shows it" not in finished


async def test_catalog_sync_in_the_sandbox_leaves_the_real_cache_alone(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("KIE_WORKSPACE", str(tmp_path))
    monkeypatch.delenv("KIE_API_KEY", raising=False)
    transport = SandboxTransport(Simulator(SimConfig(speed=1000.0)))
    assert await _run_in_thread(_catalog_sync, [], sandbox=True, transport=transport) == 0
    assert cache_path(sandbox_area(tmp_path)).is_file()
    assert not cache_path(tmp_path).exists()
    assert str(sandbox_area(tmp_path)) in capsys.readouterr().out


async def _run_in_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``fn`` runs its own event loop (``anyio.run``), so it cannot run on this test's."""
    import functools

    import anyio

    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))


# -- files people can find ------------------------------------------------------------------------------------


async def test_results_name_every_saved_file_by_absolute_path_and_file_uri(connect, tmp_path):
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", IMAGE)
        task_id = made.structured_content["tasks"][0]["task_id"]
        checked = await client.call_tool("check_task", {"task_id": task_id})
        listed = await client.call_tool("list_tasks", {})
    for result in (made, checked, listed):
        [saved] = result.structured_content["saved_files"]
        where = tmp_path / saved["path"]
        assert where.is_file()
        assert saved["absolute_path"] == str(where) and Path(saved["absolute_path"]).is_absolute()
        assert saved["file_uri"] == where.as_uri() and saved["file_uri"].startswith("file:///")
        assert saved["resource_uri"] == f"kie://outputs/{saved['path'].removeprefix('outputs/')}"
        assert saved["task_id"] == task_id
        assert saved["absolute_path"] in first_text(result) and saved["file_uri"] in first_text(result)
    link = next(block for block in made.content if block.type == "resource_link")
    assert str(tmp_path / made.structured_content["saved_files"][0]["path"]) in (link.description or "")


async def test_saved_files_are_served_with_their_real_mime_type(connect, tmp_path):
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", IMAGE)
        submitted = await client.call_tool("generate_video", VIDEO)
        video_id = submitted.structured_content["tasks"][0]["task_id"]
        finished = await client.call_tool("check_task", {"task_id": video_id, "wait_seconds": 10})
        links = [b for r in (made, finished) for b in r.content if b.type == "resource_link"]
        reads = {str(link.uri): await client.read_resource(link.uri) for link in links}
        image = made.structured_content["tasks"][0]
        sidecar = f"kie://outputs/{image['files'][0].removeprefix('outputs/').rsplit('_', 1)[0]}.json"
        side = (await client.read_resource(sidecar)).contents[0]
    assert len(links) == 2, text_of(finished)
    for link in links:
        content = reads[str(link.uri)].contents[0]
        on_disk = (tmp_path / "outputs" / str(link.uri).removeprefix("kie://outputs/")).read_bytes()
        assert content.mime_type == sniff_mime(on_disk[:64]) == link.mime_type
    kinds = {reads[str(link.uri)].contents[0].mime_type for link in links}
    assert kinds & {"image/jpeg", "image/png"} and "video/mp4" in kinds
    assert side.mime_type == "application/json" and json.loads(side.text)["task_id"] == image["task_id"]


async def test_check_credits_and_instructions_name_the_workspace(connect, tmp_path):
    async with connect() as client:
        instructions = client.instructions or ""
        credits = await client.call_tool("check_credits", {})
    assert f"Workspace: {tmp_path}" in instructions
    assert credits.structured_content["workspace"] == str(tmp_path)
    assert str(tmp_path) in first_text(credits)
    assert SANDBOX_API_KEY not in instructions + first_text(credits)


def test_the_source_checkout_is_never_the_workspace(tmp_path):
    checkout = tmp_path / "kie-mcp"
    checkout.mkdir()
    (checkout / "MASTER_CONTEXT.md").write_text("# template\n")
    (checkout / "pyproject.toml").write_text('[project]\nname = "kie-mcp"\nversion = "0"\n')
    settings = Settings.from_env({}, cwd=checkout)
    assert settings.workspace == user_data_dir()
    assert "source checkout" in settings.workspace_reason
    assert Settings.from_env({}, cwd=ROOT).workspace != ROOT  # this very checkout
    assert Settings.from_env({"KIE_WORKSPACE": str(checkout)}, cwd=tmp_path).workspace == checkout  # asked for


def test_a_users_folder_with_master_context_and_a_pyproject_is_still_the_workspace(tmp_path):
    (tmp_path / "MASTER_CONTEXT.md").write_text("# brand\n")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "my-shop"\n')
    settings = Settings.from_env({}, cwd=tmp_path)
    assert settings.workspace == tmp_path.resolve()
    assert "MASTER_CONTEXT.md" in settings.workspace_reason


def console_script() -> str:
    script = shutil.which("kie-mcp", path=str(Path(sys.executable).parent))
    assert script, "the kie-mcp console script is not installed beside this Python"
    return script


@pytest.mark.stdio
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_started_from_the_checkout_the_server_uses_and_names_the_per_user_folder(mode, tmp_path):
    """``uv run --directory /path/to/checkout kie-mcp``: the checkout does not fill up with outputs."""
    home = tmp_path / "home"
    params = StdioServerParameters(
        command=console_script(),
        args=["--sandbox"],
        cwd=str(ROOT),
        env={"HOME": str(home), "XDG_DATA_HOME": str(home / "data"), "KIE_CATALOG_SYNC": "off"},
    )
    async with Client(params, mode=mode, read_timeout_seconds=60) as client:
        credits = await client.call_tool("check_credits", {})
    expected = sandbox_area(home / "data" / "kie-mcp")
    assert credits.structured_content["workspace"] == str(expected), text_of(credits)
    assert (expected / ".kie-mcp").is_dir()


# -- a broken setting -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["abc", "nan", "inf", "-inf", "1e999", "-5"])
def test_a_broken_cap_never_means_no_cap_or_the_default_cap(value, tmp_path):
    env = {"KIE_WORKSPACE": str(tmp_path), "KIE_MAX_CREDITS_PER_DAY": value, "KIE_API_KEY": "k"}
    settings = Settings.load(env, cwd=tmp_path)
    assert settings.config_error and "KIE_MAX_CREDITS_PER_DAY" in settings.config_error
    assert (settings.max_credits_per_day, settings.max_credits_per_call, settings.auto_approve_credits) == (0, 0, 0)
    assert "restart" in (settings.config_problem or "")
    with pytest.raises(ConfigError, match="KIE_MAX_CREDITS_PER_DAY"):
        Settings.from_env(env, cwd=tmp_path)


def test_every_broken_setting_is_named_at_once(tmp_path):
    env = {"KIE_WORKSPACE": str(tmp_path), "KIE_MAX_CREDITS_PER_CALL": "lots", "KIE_DOWNLOAD": "sometimes"}
    problem = Settings.load(env, cwd=tmp_path).config_error or ""
    assert "KIE_MAX_CREDITS_PER_CALL" in problem and "KIE_DOWNLOAD" in problem


def _loop(folder: Path) -> str:
    (folder / "a").symlink_to(folder / "b")
    (folder / "b").symlink_to(folder / "a")
    return str(folder / "a" / "inside")


@pytest.mark.parametrize("broken", ["workspace is a file", "workspace loops", "allowed dir loops", ".env not UTF-8"])
def test_a_setting_the_filesystem_breaks_is_a_named_problem_not_a_crash(broken, tmp_path):
    env = {"KIE_WORKSPACE": str(tmp_path), "KIE_API_KEY": "k"}
    if broken == "workspace is a file":
        (tmp_path / "afile").write_text("x")
        env["KIE_WORKSPACE"], named = str(tmp_path / "afile"), "is a file, not a folder"
    elif broken == "workspace loops":
        env["KIE_WORKSPACE"], named = _loop(tmp_path), "KIE_WORKSPACE"
    elif broken == "allowed dir loops":
        env["KIE_ALLOWED_DIRS"], named = _loop(tmp_path), "KIE_ALLOWED_DIRS"
    else:
        (tmp_path / ".env").write_bytes(b"KIE_API_KEY=\xff\xfe\n")
        named = ".env is not UTF-8 text"
    settings = Settings.load(env, cwd=tmp_path)  # never raises
    assert settings.config_error and named in settings.config_error, settings.config_error
    assert (settings.max_credits_per_day, settings.max_credits_per_call, settings.auto_approve_credits) == (0, 0, 0)


@pytest.mark.stdio
async def test_a_workspace_that_is_a_file_does_not_kill_the_console_script(tmp_path):
    (tmp_path / "afile").write_text("x")
    env = {"KIE_WORKSPACE": str(tmp_path / "afile"), "KIE_API_KEY": "sk-not-used", "HOME": str(tmp_path)}
    async with Client(StdioServerParameters(command=console_script(), env=env), read_timeout_seconds=60) as client:
        result = await client.call_tool("check_credits", {})
    assert result.is_error and "is a file, not a folder" in text_of(result), text_of(result)


async def test_a_broken_setting_leaves_the_server_up_and_every_tool_explains(transport, controls, mode, tmp_path):
    env = {"KIE_WORKSPACE": str(tmp_path), "KIE_API_KEY": SANDBOX_API_KEY, "KIE_MAX_CREDITS_PER_DAY": "abc"}
    settings = replace(Settings.load(env, cwd=tmp_path), base_url="http://api.kie.test")
    calls = {
        "estimate_cost": IMAGE,
        "generate_image": IMAGE,
        "generate_video": VIDEO,
        "check_task": {"task_id": "task-1"},
        "check_credits": {},
        "list_models": {},
        "list_tasks": {},
        "upload_file": {"path": "nothing.png"},
        "stitch_videos": {"clips": ["task-1"]},
        "continue_video": {"task_id": "task-1", "operation": "extend"},
    }
    async with Client(create_server(settings, transport=transport), mode=mode, elicitation_callback=answering()) as c:
        names = {tool.name for tool in (await c.list_tools()).tools}
        results = {name: await c.call_tool(name, arguments) for name, arguments in calls.items()}
        models = (await c.read_resource("kie://models")).contents[0].text
        prompts = (await c.list_prompts()).prompts
        with pytest.raises(MCPError, match="KIE_MAX_CREDITS_PER_DAY"):
            await c.read_resource("kie://tasks")
        instructions = c.instructions or ""
    assert names == set(calls), "every tool must be tried: give a new tool its arguments in calls"
    for name, result in results.items():
        assert result.is_error, name
        said = text_of(result)
        assert 'KIE_MAX_CREDITS_PER_DAY="abc" is not a number' in said and "restart" in said, (name, said)
        assert SANDBOX_API_KEY not in said
    assert "veo3_fast" in models and prompts  # the catalogue and the workflows still read
    assert "KIE_MAX_CREDITS_PER_DAY" in instructions
    assert (await controls.get("requests"))["requests"] == []  # nothing reached KIE
    assert not (tmp_path / ".kie-mcp").exists()  # no journal opened, nothing written


@pytest.mark.stdio
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_broken_setting_does_not_kill_the_console_script(mode, tmp_path):
    """Before: exit code 2 before the handshake, and the host saw only "Connection closed"."""
    params = StdioServerParameters(
        command=console_script(),
        env={"KIE_WORKSPACE": str(tmp_path), "KIE_MAX_CREDITS_PER_DAY": "abc", "KIE_API_KEY": "sk-not-used"},
    )
    async with Client(params, mode=mode, read_timeout_seconds=60) as client:
        tools = (await client.list_tools()).tools
        result = await client.call_tool("estimate_cost", IMAGE)
    assert {"generate_image", "check_credits"} <= {tool.name for tool in tools}
    assert result.is_error and "KIE_MAX_CREDITS_PER_DAY" in text_of(result) and "restart" in text_of(result)
    assert "sk-not-used" not in text_of(result)
