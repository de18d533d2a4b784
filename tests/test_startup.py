"""Cold start: what start-up and ``tools/list`` do NOT do (behaviour, not speed; bench/bench_startup.py times it).

Building the server and listing its tools parses no catalogue, builds no HTTP client and imports neither Pillow,
the stitcher, the gallery nor the simulator; each of those happens on first use. Every HTTP client of the process
verifies TLS with one SSL context. A later start lists the tools from the listing the first one kept in the user's
cache folder (``toolcache``), only while it matches the code, and builds each tool on its first call.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import textwrap
from contextlib import asynccontextmanager

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.types import INTERNAL_ERROR

from kie_mcp import toolcache
from kie_mcp.journal import journal_path
from kie_mcp.kie import KieClient
from kie_mcp.kie.client import shared_ssl_context
from kie_mcp.server import OPEN_AFTER_SECONDS, TOOL_NAMES, create_server
from tests.conftest import text_of

# A fresh interpreter: this test process has long since parsed the catalogue and imported Pillow.
FRESH = textwrap.dedent(
    """
    import json, sys, tempfile
    from pathlib import Path

    import anyio
    from mcp import Client
    from pydantic import SecretStr

    from kie_mcp.catalog import registry
    from kie_mcp.config import Settings
    from kie_mcp.kie import KieClient
    from kie_mcp.server import create_server

    def heavy():  # Pillow, the stitcher, the gallery and the simulator
        return sorted(
            m for m in sys.modules
            if m.split(".")[0] == "PIL" or m.startswith("kie_mcp.sandbox")
            or m in ("kie_mcp.media.stitch", "kie_mcp.media.gallery")
        )

    async def main():
        settings = Settings(
            api_key=SecretStr("startup-test-key-0000"),
            workspace=Path(tempfile.mkdtemp()),
            catalog_sync=False,
        )
        server = create_server(settings)  # the real network settings: nothing may be sent
        seen = {"after_import": heavy()}
        async with Client(server, mode="legacy") as client:
            tools = [t.name for t in (await client.list_tools()).tools]
            seen["after_list"] = heavy()
            seen["loaded_after_list"] = registry.loaded()
            seen["clients_after_list"] = KieClient.clients_built
            models = (await client.call_tool("list_models", {"kind": "image"})).structured_content["models"]
            seen["loaded_after_list_models"] = registry.loaded()
            seen["clients_after_list_models"] = KieClient.clients_built
        seen["tools"] = len(tools)
        seen["models"] = len(models)
        print(json.dumps(seen))

    anyio.run(main)
    """
)


def _fresh() -> dict:
    done = subprocess.run([sys.executable, "-c", FRESH], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_start_up_and_tools_list_load_nothing_heavy():
    seen = _fresh()
    assert seen["tools"] >= 9  # the whole surface was listed
    assert seen["after_import"] == [], "imported by kie_mcp.server and create_server"
    assert seen["after_list"] == [], "imported by start-up or tools/list"
    assert seen["loaded_after_list"] is False, "the catalogue was parsed before any tool needed it"
    assert seen["clients_after_list"] == 0, "an HTTP client was built before any tool needed one"
    # ... and each is there on first use.
    assert seen["models"] > 0
    assert seen["loaded_after_list_models"] is True
    assert seen["clients_after_list_models"] == 0  # listing models reaches no host


async def test_http_clients_are_built_on_first_use(connect):
    before = KieClient.clients_built
    async with connect() as client:
        await client.list_tools()
        assert KieClient.clients_built == before, "start-up or tools/list built an HTTP client"
        credits = (await client.call_tool("check_credits", {})).structured_content
        assert credits["balance_credits"] > 0
        assert KieClient.clients_built == before + 1  # the API host's client only: no upload, CDN or public one


def _ssl_context_of(client: httpx2.AsyncClient) -> ssl.SSLContext:
    """The SSL context httpx2's default transport verifies with (its connection pool's)."""
    return client._transport._pool._ssl_context  # type: ignore[attr-defined]


async def test_every_http_client_shares_one_ssl_context():
    clients = [
        KieClient(api_key=f"ssl-test-key-{n}", base_url="https://api.kie.test", upload_base_url="https://up.kie.test")
        for n in range(2)
    ]
    try:
        assert all(kie.built_clients() == () for kie in clients)
        http = [c for kie in clients for c in (kie._api, kie._client("once"), kie._uploads, kie.files, kie._public)]
        assert clients[0].built_clients() == ("api", "once", "uploads", "files", "public")
        shared = shared_ssl_context()
        assert isinstance(shared, ssl.SSLContext)
        assert shared.verify_mode == ssl.CERT_REQUIRED and shared.check_hostname
        assert {id(_ssl_context_of(c)) for c in http} == {id(shared)}
        assert shared_ssl_context() is shared
        # Built as httpx2 builds its default, with the same trust store.
        default = httpx2.create_ssl_context()
        assert shared.get_ca_certs() == default.get_ca_certs()
        assert (shared.verify_mode, shared.check_hostname, shared.minimum_version, shared.options) == (
            default.verify_mode,
            default.check_hostname,
            default.minimum_version,
            default.options,
        )
    finally:
        for kie in clients:
            await kie.aclose()


async def test_a_closed_client_builds_no_new_http_client():
    kie = KieClient(api_key="closed-test-key-0000", base_url="https://api.kie.test", upload_base_url="https://u.test")
    api = kie._api
    await kie.aclose()
    assert api.is_closed
    assert kie._api is api  # a client built before closing is the same closed client, as before
    before = KieClient.clients_built
    with pytest.raises(RuntimeError, match="closed"):
        _ = kie.files
    assert KieClient.clients_built == before


# -- the kept tool listing -------------------------------------------------------------------------------


def _listing(tools) -> list[dict]:
    return [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools]


@pytest.fixture
def kept(tmp_path, monkeypatch):
    """A cache folder of this test's own: where the listing is kept (no other test's listing in it)."""
    folder = tmp_path / "user-cache"
    monkeypatch.setenv("KIE_CACHE_DIR", str(folder))
    return folder


async def test_a_later_start_lists_the_same_tools_and_every_tool_still_works(connect, settings, controls, kept):
    async with connect() as first:
        built = _listing((await first.list_tools()).tools)
    path = toolcache.listing_path()
    assert path is not None and path.parent == kept and path.is_file()
    assert not (settings.workspace / ".kie-mcp" / "tools.json").exists()  # never in the workspace an agent writes
    async with connect() as second:
        assert _listing((await second.list_tools()).tools) == built  # the kept listing, exactly what was built
        quote = await second.call_tool("estimate_cost", {"model": "nano-banana-2", "prompt": "a red apple"})
        assert not quote.is_error and quote.structured_content["quote"]["credits_total"] > 0
        # Arguments are checked by the model built from the code, not by anything read from the kept file.
        refused = await second.call_tool(
            "generate_image", {"model": "nano-banana-2", "prompt": "a red apple", "variations": 99}
        )
        assert refused.is_error
        assert "variations: must be at most 10 (got 99)" in text_of(refused)
        unknown = await second.call_tool("generate_image", {"model": "nano-banana-2", "prompt": "x", "colour": "red"})
        assert unknown.is_error and "does not take colour" in text_of(unknown)
    assert await controls.creates() == []


async def test_the_kept_listing_is_used_only_while_it_matches_the_code(connect, kept):
    async with connect() as first:
        built = _listing((await first.list_tools()).tools)
    path = toolcache.listing_path()
    kept_listing = json.loads(path.read_text(encoding="utf-8"))

    marked = json.loads(json.dumps(kept_listing))
    marked["tools"][0]["description"] = "MARKED"
    path.write_text(json.dumps(marked), encoding="utf-8")
    async with connect() as client:  # same code, same libraries: the kept listing is what is served
        assert (await client.list_tools()).tools[0].description == "MARKED"

    stale = json.loads(json.dumps(marked))
    stale["fingerprint"] = "0" * 64  # built by other code or other library versions
    other_tools = json.loads(json.dumps(marked))
    other_tools["tools"] = other_tools["tools"][1:]  # a listing of another set of tools
    garbage = ("{not json", "", json.dumps({"tools": 1}), "[" * 200_000)  # the last: nested too deep to parse
    for content in (json.dumps(stale), json.dumps(other_tools), *garbage):
        path.write_text(content, encoding="utf-8")
        async with connect() as client:
            assert _listing((await client.list_tools()).tools) == built, content[:40]
        assert json.loads(path.read_text(encoding="utf-8")) == kept_listing  # rebuilt and kept again


async def test_a_listing_that_cannot_be_kept_costs_nothing_but_time(connect, kept):
    path = toolcache.listing_path()
    path.mkdir(parents=True)  # a folder where the file would go: it cannot be written or read
    for _ in range(2):
        async with connect() as client:
            tools = (await client.list_tools()).tools
            assert len(tools) >= 10
            quote = await client.call_tool("estimate_cost", {"model": "nano-banana-2", "prompt": "a red apple"})
            assert not quote.is_error
    assert path.is_dir() and list(path.iterdir()) == []
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []  # no temporary file left


async def test_tools_list_keeps_registration_order_whatever_was_called_first(connect, kept):
    async with connect() as client:
        await client.call_tool("list_models", {"kind": "image"})  # built before anything was listed
        names = [tool.name for tool in (await client.list_tools()).tools]
    assert names[:3] == ["estimate_cost", "generate_image", "generate_video"] and names.index("list_models") > 3
    async with connect() as client:  # and the listing kept in that order is the one the next start uses
        assert [tool.name for tool in (await client.list_tools()).tools] == names


def test_a_blank_cache_folder_setting_counts_as_not_set(monkeypatch, tmp_path):
    """KIE_CACHE_DIR="  " made a folder named by two spaces in the current folder, for the tool listing."""
    from kie_mcp.toolcache import cache_folder

    monkeypatch.setenv("KIE_CACHE_DIR", "  ")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    assert cache_folder().is_absolute() and cache_folder().name.strip() != ""
    monkeypatch.setenv("KIE_CACHE_DIR", f"  {tmp_path / 'mine'} ")
    assert cache_folder() == tmp_path / "mine"


@pytest.mark.parametrize("value", ['"/tmp/kc"', "${env:XDG_CACHE_HOME}/kie", "$HOME/.cache", "cache", "C:\\cache"])
def test_a_cache_folder_setting_that_is_no_full_path_leaves_the_default_folder_in_use(value, monkeypatch, tmp_path):
    """KIE_CACHE_DIR is checked as KIE_WORKSPACE is (quotes, a placeholder nothing filled in, a relative or Windows
    path): such a value made folders of its name in the client's working folder, for the listing and the shared
    pacing alike (both ask ``cache_folder``). The default folder serves instead, and the start-up line says why."""
    from kie_mcp.toolcache import cache_folder, cache_setting_note

    if sys.platform == "win32" and value.startswith("C:"):
        pytest.skip("a full path on Windows")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    monkeypatch.delenv("KIE_CACHE_DIR")
    default = cache_folder()
    monkeypatch.setenv("KIE_CACHE_DIR", value)
    assert cache_folder() == default and default is not None and default.is_relative_to(tmp_path)
    assert f"the default cache folder ({default}) is used instead" in (cache_setting_note() or "")
    monkeypatch.setenv("KIE_CACHE_DIR", str(tmp_path / "mine"))
    assert cache_folder() == tmp_path / "mine" and cache_setting_note() is None


def test_the_fingerprint_covers_how_python_runs_and_what_the_sources_say(tmp_path):
    """-OO drops the docstrings that are the tools' descriptions: its listing is another one."""
    script = "from kie_mcp import toolcache; print(toolcache.fingerprint())"
    plain = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    optimised = subprocess.run([sys.executable, "-OO", "-c", script], capture_output=True, text=True, check=True)
    assert plain.strip() and optimised.stdout.strip() and plain != optimised.stdout


# -- the runtime opens after the handshake ------------------------------------------------------------------

# One start of a server on a workspace (argv[1]): what it has imported of the runtime after tools/list, and a moment
# later with no request at all.
A_START = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    import anyio
    from mcp import Client
    from pydantic import SecretStr

    from kie_mcp.config import Settings
    from kie_mcp import server

    server.OPEN_AFTER_SECONDS = 3.0  # longer than any tools/list takes on a loaded machine, so the order is certain

    RUNTIME = ("kie_mcp.surface", "kie_mcp.runtime", "kie_mcp.journal", "kie_mcp.tasks.follower", "kie_mcp.spend")

    def loaded():
        return [m for m in RUNTIME if m in sys.modules]

    async def main():
        settings = Settings(api_key=SecretStr("startup-test-key-0000"), workspace=Path(sys.argv[1]), catalog_sync=False)
        seen = {}
        async with Client(server.create_server(settings), mode="legacy") as client:
            seen["tools"] = [t.name for t in (await client.list_tools()).tools]
            seen["after_list"] = loaded()
            await anyio.sleep(server.OPEN_AFTER_SECONDS + 1.0)  # no request: the runtime opens by itself
            seen["a_moment_later"] = loaded()
            seen["journal"] = (Path(sys.argv[1]) / ".kie-mcp").is_dir()
        print(json.dumps(seen))

    anyio.run(main)
    """
)


def test_the_handshake_and_a_kept_listing_wait_for_no_runtime(tmp_path):
    """A later start answers tools/list having loaded none of the runtime (journal, follower, spend gate, the
    tools themselves), then opens it by itself: the follower resumes unfinished tasks without any request."""
    env = {**os.environ, "KIE_CACHE_DIR": str(tmp_path / "cache")}

    def start() -> dict:
        done = subprocess.run(
            [sys.executable, "-c", A_START, str(tmp_path / "workspace")],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=env,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    first, later = start(), start()  # the first start builds every tool and keeps the listing
    assert first["tools"] == later["tools"] == list(TOOL_NAMES)
    assert later["after_list"] == [], "loaded before tools/list was answered"
    assert {"kie_mcp.runtime", "kie_mcp.journal", "kie_mcp.tasks.follower"} <= set(later["a_moment_later"])
    assert "kie_mcp.surface" not in later["a_moment_later"]  # the tools load on the first call, not before
    assert later["journal"]  # opened: the workspace journal is there


async def test_a_runtime_that_cannot_open_answers_every_call_with_why(connect, controls, monkeypatch):
    from mcp import MCPError

    @asynccontextmanager
    async def cannot_open(settings, transport=None):
        raise OSError("the journal is on a dead disk (Authorization: Bearer sk-live-abcdefgh12345678)")
        yield

    monkeypatch.setattr("kie_mcp.runtime.open_runtime", cannot_open)
    async with connect(elicitation=None) as client:
        assert [t.name for t in (await client.list_tools()).tools] == list(TOOL_NAMES)  # the listing still works
        answers = [
            await client.call_tool("estimate_cost", {"model": "nano-banana-2", "prompt": "a red apple"}),
            await client.call_tool("generate_image", {"model": "nano-banana-2", "prompt": "a red apple"}),
            await client.call_tool("check_credits", {}),
        ]
        with pytest.raises(MCPError, match="could not start") as resource:
            await client.read_resource("kie://models")
    for answer in answers:
        text = text_of(answer)
        assert answer.is_error and "kie-mcp could not start (OSError: the journal is on a dead disk" in text
        assert "nothing was sent or spent" in text and "Traceback" not in text
        assert "sk-live-abcdefgh12345678" not in text
    assert "sk-live-abcdefgh12345678" not in str(resource.value)
    assert await controls.creates() == []


async def test_shutdown_closes_the_journal_whether_or_not_the_runtime_opened(connect, settings, monkeypatch):
    wal = journal_path(settings.workspace).with_name("journal.sqlite3-wal")
    with monkeypatch.context() as later:
        later.setattr("kie_mcp.server.OPEN_AFTER_SECONDS", 60.0)  # so it is certain the first never opened
        async with connect() as client:
            await client.list_tools()  # stopped at once: nothing needed the runtime, so it never opened
    assert not journal_path(settings.workspace).exists()
    async with connect() as client:
        assert not (await client.call_tool("list_tasks", {})).is_error  # opened, journal and all
        assert wal.exists()
    assert journal_path(settings.workspace).exists() and not wal.exists()  # closed: SQLite folded its log back


async def test_a_tool_added_with_one_of_kie_mcps_names_is_refused_at_once(settings, transport):
    """Code embedding this server can add tools; one named like kie-mcp's own is refused when it is added, and
    kie-mcp's tools go on working (it was accepted and broke every later request)."""
    server = create_server(settings, transport=transport)

    def list_models() -> str:
        return "not kie-mcp's"

    def my_tool() -> str:
        """One of the embedding code's own."""
        return "mine"

    with pytest.raises(ValueError, match="list_models is registered twice"):
        server.add_tool(list_models)
    server.add_tool(my_tool)
    async with Client(server) as client:
        assert [t.name for t in (await client.list_tools()).tools] == [*TOOL_NAMES, "my_tool"]
        models = await client.call_tool("list_models", {"kind": "image"})
        mine = await client.call_tool("my_tool", {})
    assert not models.is_error and models.structured_content["models"]
    assert text_of(mine) == "mine"


# A Python built without the _sqlite3 extension (pyenv without libsqlite3-dev, some distributions' Pythons): the
# import of sqlite3 fails, as it does for a broken install or a damaged .pyc.
WITHOUT_SQLITE = textwrap.dedent(
    """
    import sys

    class _NoSqlite:
        def find_spec(self, name, path=None, target=None):
            if name == "_sqlite3":
                raise ModuleNotFoundError("No module named '_sqlite3'", name="_sqlite3")
            return None

    sys.meta_path.insert(0, _NoSqlite())
    """
)


@pytest.mark.stdio
@pytest.mark.parametrize("mode", ["auto", "legacy"], ids=["2026-07-28", "2025-11-25"])
async def test_a_python_without_sqlite_gets_could_not_start_answers_and_the_server_stays_up(tmp_path, mode):
    """The audit: the runtime's import failed outside the guard that records why it could not open, so the server
    answered the handshake and then exited 1 half a second later (the host saw "server disconnected", the reason
    only on stderr). Every request that needs what could not load is now answered with why, and nothing else."""
    from mcp import MCPError, StdioServerParameters
    from mcp.types import PromptReference

    from .test_deep_json import _script, _server_env

    blocker = tmp_path / "no-sqlite"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(WITHOUT_SQLITE)
    path = os.pathsep.join(filter(None, [str(blocker), os.environ.get("PYTHONPATH")]))
    env = {**_server_env("http://127.0.0.1:9", tmp_path / "workspace"), "PYTHONPATH": path}
    env["KIE_CACHE_DIR"] = str(tmp_path / "cache")  # no kept listing: tools/list needs the tools themselves
    params = StdioServerParameters(command=_script(), args=[], env=env)
    async with Client(params, mode=mode, read_timeout_seconds=20) as client:
        with pytest.raises(MCPError) as listing:
            await client.list_tools()
        await anyio.sleep(OPEN_AFTER_SECONDS + 1.0)  # the old server had exited by now
        credits = await client.call_tool("check_credits", {})
        with pytest.raises(MCPError) as resources:
            await client.list_resources()
        with pytest.raises(MCPError) as read:  # the final read: these two still answered the bare exception
            await client.read_resource("kie://models")
        with pytest.raises(MCPError) as completed:
            await client.complete(
                PromptReference(type="ref/prompt", name="product_shot"), {"name": "model", "value": "nano"}
            )
    said = "kie-mcp could not start (ModuleNotFoundError: No module named '_sqlite3'); nothing was sent or spent."
    assert credits.is_error and text_of(credits).startswith(said), text_of(credits)
    for refused in (listing.value, resources.value, read.value, completed.value):
        assert refused.error.code == INTERNAL_ERROR and refused.error.message.startswith(said), refused.error
