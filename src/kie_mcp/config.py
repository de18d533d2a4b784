"""Settings from the environment and the workspace's ``.env`` file.

The real environment wins over ``.env``, except for the settings that guard spending and the key:

- the money limits (``MONEY_LIMITS``) and KIE_APPROVAL: of the values written for one (the environment, each
  ``.env`` read, each line of a ``.env`` that sets it twice) the lowest (for KIE_APPROVAL the strictest,
  ``APPROVAL_MODES``) applies, so a client that always passes its own defaults (the Claude Desktop bundle) never
  loosens a tighter cap written in the workspace's ``.env``, and a ``.env`` a cloned project brought (or an agent
  wrote) never loosens one written elsewhere; where they disagree, ``config_notes`` says which applies and where it
  was written. A money limit looser than its default (and than the lowest written where the key comes from) counts
  only from the environment or the ``.env`` that holds the key in use, as the endpoints below: written in any other
  ``.env`` it is ignored (the default, or the lowest value written there, stands) and ``config_notes`` says so, so
  that a cloned project's ``.env`` cannot raise caps the user left at their defaults. KIE_APPROVAL needs no such
  rule: its default, "any", is its loosest mode, so the strictest written anywhere never loosens it;
- the endpoints (``ENDPOINTS``), which say where the key is sent: taken only from the environment or from the
  ``.env`` that holds the key in use. One written in any other ``.env`` (the chosen workspace's, read over the
  per-user one that chose it) is ignored, and ``config_notes`` says so and why. When the key in use is a chosen
  workspace's own while another was written where it was chosen (a cloned project's .env bringing its key and its
  hosts, which would get the user's prompts and files), ``config_notes`` says so, and the endpoints come from the
  environment alone.

The API key is held as a ``SecretStr`` so that no repr, log line or error message can show it.

A broken setting never stops the server: ``Settings.load`` returns settings that carry the problem
(``config_error``) and where it is fixed (``config_fix_in``: the client's env block, or the .env it was read from),
with caps of 0, and the server answers every tool with the problem and the fix. A broken cap therefore never means
"no cap" or "the default cap".

A name kie-mcp does not read that is a misspelt money limit or KIE_APPROVAL, or a KIE_ name that reads as a money
limit (it would leave the looser default in force), is a broken setting too; a near miss of another setting and any
other unknown KIE_ name (another KIE tool's sharing the .env, such as KIE_AI_API_KEY) is only noted
(``config_notes``), and this project's other tools' (``OTHER_TOOLS_SETTINGS``) are left alone. A placeholder a client
left unfilled (``$HOME``, ``${user_config.workspace}``, ``%APPDATA%``) in a path or the key is a broken setting too,
and so is a Windows path (``C:\\Users\\me``) on a system whose paths start with /.

KIE_API_KEY holding the example a guide writes (your-key), or another service's token (a GitHub token, sent to KIE as
the Bearer token, would hand that secret to a third party), is a broken setting too, caught before anything is sent;
under --sandbox, whose requests carry the simulator's key, only a note (``Settings.load``'s ``sandbox``). A key KIE
refuses is answered with where it was written (``key_origin``). A value pasted with its own name in front
(KIE_API_KEY=KIE_API_KEY=...) is a broken setting, and a folder setting's file:// URI is the folder it names.

A setting other than KIE_API_KEY whose value is shaped like an API key (the key pasted into the wrong field) is
such a problem: the value is registered as a secret at once, never used (no workspace folder is made from it) and
never repeated; a broken value is otherwise repeated whole only when it is short.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import SecretStr

from kie_mcp.catalog.pricing import credits_figure, credits_text
from kie_mcp.redact import KEY_SHAPE, MIN_SECRET_LENGTH, other_service, redact, register_secret
from kie_mcp.regular import NotRegular, TooLong, read_regular
from kie_mcp.words import cut_point, plain

DEFAULT_BASE_URL = "https://api.kie.ai"
DEFAULT_UPLOAD_BASE_URL = "https://kieai.redpandaai.co"
DEFAULT_MAX_CREDITS_PER_CALL = 600.0  # ~$3: two Veo 3.1 Quality clips at 720p fit, a 4K batch does not
DEFAULT_MAX_CREDITS_PER_DAY = 3000.0  # ~$15 a day through this workspace (every kie-mcp server on it)
SANDBOX_BASE_URL = "http://sandbox.kie-mcp.local"
SANDBOX_AREA = "sandbox"  # --sandbox keeps its journal, ledger, outputs/ and logs/ in <workspace>/sandbox/
PROJECT_NAME = "kie-mcp"
CREDITS_EXAMPLE = "a credit amount such as 100"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")  # KIE_LOG_LEVEL: these names only
# Every setting kie-mcp reads from a workspace .env; a name there that is nearly one of these (a typo) would silently
# change nothing: it is said, and when it would leave a cap at its default (``SPENDING_SETTINGS``) it is a broken
# setting.
KNOWN_SETTINGS = (
    "KIE_API_KEY",
    "KIE_BASE_URL",
    "KIE_UPLOAD_BASE_URL",
    "KIE_WORKSPACE",
    "KIE_AUTO_APPROVE_CREDITS",
    "KIE_MAX_CREDITS_PER_CALL",
    "KIE_MAX_CREDITS_PER_DAY",
    "KIE_DOWNLOAD",
    "KIE_DOWNLOAD_DEADLINE",
    "KIE_ALLOWED_DIRS",
    "KIE_CATALOG_SYNC",
    "KIE_LOG_LEVEL",
    "KIE_PREVIEW_PX",
    "KIE_APPROVAL",
    "KIE_VEO_ROUTE",
)
# The settings that limit spending, with their defaults: where more than one value is written for one, the lowest
# applies (see above).
MONEY_LIMITS = {
    "KIE_AUTO_APPROVE_CREDITS": 0.0,
    "KIE_MAX_CREDITS_PER_CALL": DEFAULT_MAX_CREDITS_PER_CALL,
    "KIE_MAX_CREDITS_PER_DAY": DEFAULT_MAX_CREDITS_PER_DAY,
}
# KIE_APPROVAL's modes, the least strict first: where more than one is written, the strictest applies ("form": only
# the person's answer in the confirmation form approves a spend; "any": a quote_id the agent passes approves too).
APPROVAL_MODES = ("any", "form")
# The settings that say where the key is sent (with their defaults): every request to them carries it, the price
# feed's too (it is read from KIE_BASE_URL). Taken only from where the key comes from (see above).
ENDPOINTS = {"KIE_BASE_URL": DEFAULT_BASE_URL, "KIE_UPLOAD_BASE_URL": DEFAULT_UPLOAD_BASE_URL}
# The settings a misspelt name of is a broken setting even under another KIE tool's prefix (it would leave a cap at
# its looser default, or quote approvals on); a near miss of any other setting is a broken setting unless it is
# another KIE tool's (``OTHER_KIE_TOOLS``: then only noted, ``_unknown_settings``).
SPENDING_SETTINGS = (*MONEY_LIMITS, "KIE_APPROVAL")
# The prefixes of other KIE.ai tools' settings (KIE_AI_API_KEY, KIEAI_API_KEY, KIE_AI_BASE_URL), often in the same
# .env or shell: a near miss of a setting of kie-mcp's under one of them is another tool's, said and not a problem.
OTHER_KIE_TOOLS = ("KIE_AI_", "KIEAI_")
# The settings whose every written value is kept with where it was written (``Settings.load``'s ``written``); the key
# too, so that a key KIE refuses is said with where it came from and which other key it shadows (``_key_origin``).
WRITTEN_EVERYWHERE = (*MONEY_LIMITS, "KIE_APPROVAL", *ENDPOINTS, "KIE_API_KEY")
MONEY_LIMIT_WORDS = {
    "KIE_AUTO_APPROVE_CREDITS": "auto-approve amount",
    "KIE_MAX_CREDITS_PER_CALL": "cap per call",
    "KIE_MAX_CREDITS_PER_DAY": "cap per day",
}
# KIE_ names this project's other tools read (KIE_CACHE_DIR: kie-mcp itself, from the environment only; the live
# tests; the docs' screenshots; the smoke tests' KIE_SMOKE_*): never reported as names kie-mcp does not read.
OTHER_TOOLS_SETTINGS = ("KIE_CACHE_DIR", "KIE_LIVE_TESTS", "KIE_LIVE_SPEND", "KIE_UPDATE_DOCS")
OTHER_TOOLS_PREFIXES = ("KIE_SMOKE_",)
# Where a value of the environment is fixed: mostly this server's env block, but a client started from a shell
# (Claude Code, Cursor) passes the shell's exported variables on, and kie-mcp cannot tell which it was.
ENV_BLOCK = (
    "the environment kie-mcp was started with (the env block of this MCP server in your client's configuration, or "
    "the shell the client was started from)"
)
# A value of another setting shaped like this is taken for an API key pasted into the wrong field: KIE's keys are
# 32 hex digits; others are 20 or more letters, digits, "-" and "_" (never "/", "." or ":", which paths and URLs
# have). A letter and a digit both: words (always_or_never) and numbers are not keys.
_KEY_SHAPE = re.compile(r"(?=[A-Za-z0-9_-]*[0-9])(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{20,256}")
# A folder setting holds names, and "acme-campaign-2025-final" or "ClientProjects2025SummerCampaignFinal" is one:
# there a key is what KIE's are, 32 or more hex digits (letters and digits both), which no folder named by hand is.
_FOLDER_KEY_SHAPE = KEY_SHAPE
_RUN_START_KEY_SHAPE = re.compile(r"(?<![A-Za-z0-9_-])" + _KEY_SHAPE.pattern)  # a match starts a run or none
_FOLDER_SETTINGS = ("KIE_WORKSPACE", "KIE_ALLOWED_DIRS")
SHOWN_WHOLE = 16  # a broken value up to this long is repeated whole; of a longer one only its first SHOWN_START
SHOWN_START = 4  # characters (a key pasted where no shape check sees it, with a dot after it, is never shown whole)


class ConfigError(ValueError):
    """A setting that cannot work; the message says which and how to fix it."""


class _Problems:
    """The broken settings found while loading, each with the one place it is fixed: the client's env block, or the
    .env file it was read from. Naming any other place sent people to a file that plays no part (the per-user
    folder's .env, once the workspace had fallen back to it), or to a .env, which never overrides the env block.
    Also what is worth saying that breaks nothing (``notes``: a folder of KIE_ALLOWED_DIRS that is not there)."""

    def __init__(self) -> None:
        self.found: list[tuple[str, str]] = []
        self.source: dict[str, str] = {}  # a setting's name: where the value in use was written
        self.notes: list[str] = []

    def add(self, problem: str, where: str) -> None:
        self.found.append((problem, where))

    def of(self, name: str, problem: str) -> None:
        """A problem of the setting ``name``: fixed where its value was written (the env block when it has none)."""
        self.add(problem, self.source.get(name, ENV_BLOCK))


@dataclass(frozen=True)
class Settings:
    api_key: SecretStr | None
    base_url: str = DEFAULT_BASE_URL
    upload_base_url: str = DEFAULT_UPLOAD_BASE_URL
    workspace: Path = field(default_factory=Path.cwd)
    auto_approve_credits: float = 0.0
    max_credits_per_call: float = DEFAULT_MAX_CREDITS_PER_CALL
    max_credits_per_day: float = DEFAULT_MAX_CREDITS_PER_DAY
    # Where each cap in force was written, as a person reads it (the client's env block, a .env's path); "" for the
    # default. A refusal by a cap names it as the place to raise that cap (the lowest value written anywhere applies,
    # so raising it anywhere else changes nothing), and a spend over a daily cap lowered since (or a tighter
    # server's) names it (``spend.ledger.over_cap_words``); check_credits shows both. Not part of what the settings
    # are: two loads giving the same caps from different places are the same settings.
    max_credits_per_call_from: str = field(default="", compare=False)
    max_credits_per_day_from: str = field(default="", compare=False)
    log_level: str = "INFO"
    download: bool = True  # KIE_DOWNLOAD=always|never: save results into outputs/ as soon as they exist
    allowed_dirs: tuple[Path, ...] = ()  # KIE_ALLOWED_DIRS: folders besides the workspace that inputs may come from
    sandbox: bool = False
    # Sandbox only: the real workspace whose sandbox area ``workspace`` is. Its MASTER_CONTEXT.md and references/
    # are served, and its files may be inputs; its journal, outputs and logs are never touched.
    real_workspace: Path | None = None
    workspace_reason: str = ""  # how the workspace was chosen, for the start-up line
    # The folder the server was started in (in Claude Code, the project; Cursor starts servers in the home folder),
    # which need not be the workspace: a relative input path with nothing at it in the workspace that names a file
    # there is refused saying so, with how to work in that folder (``media.inputs.found_elsewhere``); never read
    # from. None: not known.
    started_in: Path | None = field(default=None, compare=False)
    config_error: str | None = None  # a broken setting: every tool answers with it (see ``config_problem``)
    config_fix_in: tuple[str, ...] = ()  # where each broken setting was written: the env block, a .env's path
    # What a person should know about the settings that breaks nothing, each a sentence for the start-up log and
    # check_credits: which of the values written for a money limit or KIE_APPROVAL applies, and where; an endpoint
    # written where the key does not come from, ignored; the key of a chosen workspace's .env used over another one
    # written where it was chosen; a KIE_ALLOWED_DIRS folder that is not there.
    config_notes: tuple[str, ...] = ()
    # Those of ``config_notes`` about which key is used and where it is sent: untrue under --sandbox, whose requests
    # all go to the simulator with its own key (``for_sandbox`` leaves them out).
    route_notes: tuple[str, ...] = ()
    # Where the key in use was written, as a sentence (and the different KIE_API_KEY it shadows, if any; never either
    # key): what a key KIE refuses (401) is answered with (``kie.errors.wrong_key_step``). "" without a key, and under
    # --sandbox, whose key is the simulator's.
    key_origin: str = field(default="", compare=False)
    # Timing. Tests shorten these; users rarely need to.
    image_wait_seconds: float = 45.0
    poll_min_interval: float = 2.0
    poll_max_interval: float = 15.0
    rate_limit_backoff: float = 10.0
    save_grace: float = 15.0  # check_task of a task whose results are being saved waits this long for them (at least)
    # KIE_DOWNLOAD_DEADLINE: a result's download gets this long in all while it holds a finishing slot, more for a
    # large file (256 KiB/s of its size): then it is stopped and left to the background's tries (which get six times
    # as long, or 32 KiB/s of a larger file: ``downloads.Allowance``), so slow file servers never hold up the saving
    # of other tasks' results.
    download_deadline: float = 600.0
    http_timeout: float = 30.0
    quote_ttl_seconds: float = 600.0
    confirm_timeout_seconds: float = 600.0  # a confirmation question unanswered this long ends as cancelled
    roots_timeout_seconds: float = 5.0  # a client's roots/list unanswered this long: no shared folders
    catalog_sync: bool = True  # KIE_CATALOG_SYNC=auto|off: refresh KIE's live models and prices once a day
    preview_px: int = 768  # KIE_PREVIEW_PX: longest side of image previews and video posters shown inline
    # KIE_APPROVAL=any|form. "form": on a client that can show the confirmation form, only the person's answer there
    # approves a spend (a quote_id binds the request, never approves it); "any": a quote_id approves too. The
    # strictest written anywhere applies.
    approval: str = "any"
    # KIE_VEO_ROUTE=legacy|unified: where Veo 3.1 generations are created. "legacy": KIE's own Veo endpoint
    # (/api/v1/veo/generate, live-verified); "unified": KIE's Market endpoint (jobs/createTask, model veo-3-1), which
    # KIE's docs now call the new version. Follow-ups (extend, 1080p, 4K) stay on the Veo endpoints either way.
    veo_route: str = "legacy"

    @property
    def input_roots(self) -> tuple[Path, ...]:
        """The only folders local input files may be read from (in the sandbox, the real workspace too)."""
        real = (self.real_workspace.resolve(),) if self.real_workspace is not None else ()
        return (self.workspace.resolve(), *real, *self.allowed_dirs)

    @property
    def input_bases(self) -> tuple[Path, ...]:
        """Where a relative input path is looked up: the workspace (in the sandbox its sandbox area, where the
        sandbox's results are), then in the sandbox the real workspace (its references/)."""
        return (self.workspace,) if self.real_workspace is None else (self.workspace, self.real_workspace)

    @property
    def context_folder(self) -> Path:
        """Where MASTER_CONTEXT.md and references/ live: the workspace, or in the sandbox the real one."""
        return self.real_workspace or self.workspace

    @property
    def has_key(self) -> bool:
        return self.api_key is not None and bool(self.api_key.get_secret_value())

    @property
    def config_problem(self) -> str | None:
        """What every tool answers while a setting is broken: the problem, where to fix it, and that nothing
        was sent or spent. None when the configuration is fine."""
        if self.config_error is None:
            return None
        where = " and in ".join(self.config_fix_in) or f"{ENV_BLOCK} or in {self.context_folder / '.env'}"
        return redact(  # a setting may hold the key (pasted into a cap, or a .env line without its newline)
            f"kie-mcp cannot work until its configuration is fixed: {self.config_error} Fix it in {where}, then "
            "restart the server. Nothing was sent to KIE and nothing was spent."
        )

    @classmethod
    def unreadable(cls, err: BaseException) -> Settings:
        """Settings saying the configuration could not be read at all (an error ``load`` did not foresee): the server
        still starts and every tool answers with it, caps of 0, as for any broken setting. Which setting is not known
        here, so none is named; a text that could not be encoded is not repeated (it may be part of the key), only
        why it could not be."""
        said = err.reason if isinstance(err, UnicodeError) and hasattr(err, "reason") else err
        why = redact(f"{type(err).__name__}: {said}".replace("\n", " "))
        found = cls(api_key=None, workspace=_current_folder(), workspace_reason="none: the settings could not be read")
        return found.broken_by(
            f"kie-mcp could not read its settings ({plain(why, quoted=False, limit=200)}). Check the KIE_ settings in "
            "the client's env block and in the workspace's .env; if it keeps happening, report it at "
            "https://github.com/kie-mcp/kie-mcp/issues.",
            f"{ENV_BLOCK} or in the workspace's .env",
        )

    def broken_by(self, problem: str, fix_in: str) -> Settings:
        """These settings with one more thing broken (``problem``, fixed in ``fix_in``), as any broken setting: every
        tool answers with it (``config_problem``), and nothing can be spent (caps of 0, no catalogue sync)."""
        return replace(
            self,
            auto_approve_credits=0.0,
            max_credits_per_call=0.0,
            max_credits_per_day=0.0,
            max_credits_per_call_from="",
            max_credits_per_day_from="",
            catalog_sync=False,
            config_error=" ".join(filter(None, (self.config_error, redact(problem)))),
            config_fix_in=tuple(dict.fromkeys((*self.config_fix_in, fix_in))),
        )

    def for_sandbox(self) -> Settings:
        """The same settings pointed at the built-in simulator, in the workspace's own sandbox area.

        The sandbox has its own journal, ledger, outputs/ and logs/ (``<workspace>/sandbox/``), so simulated
        spend never counts against the real caps and simulated tasks never appear among the real ones.
        """
        from kie_mcp.sandbox import SANDBOX_API_KEY

        if self.sandbox:
            return self
        return replace(
            self,
            sandbox=True,
            api_key=SecretStr(SANDBOX_API_KEY),
            base_url=SANDBOX_BASE_URL,
            upload_base_url=SANDBOX_BASE_URL,
            workspace=sandbox_area(self.workspace),
            real_workspace=self.workspace,
            config_notes=tuple(note for note in self.config_notes if note not in self.route_notes),
            route_notes=(),
            key_origin="",
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Settings:
        """The settings, or ``ConfigError`` naming every broken one (for commands that stop on a bad setting)."""
        settings = cls.load(environ, cwd)
        if settings.config_error is not None:
            raise ConfigError(settings.config_error)
        return settings

    @classmethod
    def load(
        cls, environ: Mapping[str, str] | None = None, cwd: Path | None = None, *, sandbox: bool = False
    ) -> Settings:
        """The settings, never raising: broken ones are collected in ``config_error``, and then nothing can be
        spent (caps of 0, no catalogue sync) while the server still starts and explains. ``sandbox``: for
        ``--sandbox``, whose requests carry the simulator's own key: a key that could not be sent (a placeholder,
        another service's token) is said in ``config_notes`` and stops nothing; everything else is read as ever."""
        # An empty or blank value counts as absent (an unset ${env:...} in a client's env block expands to ""): it
        # never hides the .env's value, so a cap set there never ends at the looser default.
        given = _present(os.environ if environ is None else environ)
        cwd = cwd or _current_folder()
        problems = _Problems()
        problems.source = dict.fromkeys(given, ENV_BLOCK)
        found, reason = _workspace_or_problem(given, cwd, problems)
        # No folder at all (no home folder for the per-user one): nothing is read from, or made in, the stand-in.
        workspace = found or cwd
        # Every value written for a money limit, KIE_APPROVAL and an endpoint, with where: the lowest limit and the
        # strictest approval apply (``_money_limit``, ``_approval``); an endpoint only from where the key comes from.
        written = {name: [(given[name], ENV_BLOCK)] for name in WRITTEN_EVERYWHERE if name in given}
        dotenv = _settings_file(found, problems, written) if found else {}
        unknown, noted = _unknown_settings({n: v for n, v in given.items() if _maybe_ours(n)}, "The environment has")
        for problem in unknown:
            problems.add(problem, ENV_BLOCK)
        problems.notes += noted
        env = {**dotenv, **given}
        for name in dotenv:
            problems.source.setdefault(name, str(workspace / ".env"))
        # A relative path is read from where it was written: the environment's from the current folder, a .env's
        # from that .env's folder (never from wherever the client happened to start the server).
        folder_of = {name: workspace for name in dotenv} | {name: cwd for name in given}
        chosen_by: str | None = None  # the .env that chose the workspace whose own .env was read over it
        if "KIE_WORKSPACE" in env and "KIE_WORKSPACE" not in given:  # the .env names the workspace
            chooser = str(workspace / ".env")
            before = len(problems.found)
            found, reason = _workspace_or_problem(env, workspace, problems)
            named = found or workspace
            # Named with its file: the workspace falls back to the per-user folder, whose .env is not where it is.
            problems.found[before:] = [
                (f"In {chooser}: {problem}" if where == chooser else problem, where)
                for problem, where in problems.found[before:]
            ]
            if found and not _same_folder(named, workspace):
                # That workspace's own .env holds its settings (its caps, its key): read too, and over the .env
                # that pointed here; the environment still wins (a money limit: the lowest written anywhere;
                # KIE_APPROVAL: the strictest; an endpoint: only beside the key). It never moves the workspace again.
                own = _settings_file(named, problems, written)
                moved = own.pop("KIE_WORKSPACE", None)
                if moved is not None and (pasted := _pasted_key("KIE_WORKSPACE", moved)):
                    problems.add(pasted, str(named / ".env"))
                elif moved is not None and not _same_folder(
                    _workspace_or_problem({"KIE_WORKSPACE": moved}, named, _Problems())[0] or named, named
                ):
                    problems.add(
                        f"{named / '.env'} sets KIE_WORKSPACE to another folder, but {chooser} already "
                        f"chose {named}; a workspace's .env cannot choose another. Remove the line from one of them.",
                        str(named / ".env"),
                    )
                env = {**dotenv, **own, **given}
                folder_of |= {name: named for name in own if name not in given}
                problems.source |= {name: str(named / ".env") for name in own if name not in given}
                chosen_by = chooser
            workspace = named

        key = env.get("KIE_API_KEY", "").strip()
        not_text = not _is_text(key)
        if not_text:  # bytes that are no UTF-8 (a lone surrogate each): as text that can be redacted, never shown
            key = _as_text(key)
        named_twice = _named_twice("KIE_API_KEY", key)
        if named_twice:  # "KIE_API_KEY=<key>" pasted as the value: the key is what follows (kept only to be hidden)
            key = _without_quotes(key.partition("=")[2].strip()).strip()
        run_on = _RUN_ON.search(key)
        if run_on is not None:  # the key is what comes before the setting it swallowed (which is no secret)
            key = key[: run_on.start()].strip()
        placeholder = _example_key(key)
        if _PLACEHOLDER.fullmatch(key):
            placeholder = _unfilled("KIE_API_KEY", key, "the key itself")
        if placeholder:  # "${env:KIE_API_KEY}", "your-key" as written: no key at all, and no secret to hide
            key = ""
        register_secret(key)  # from now on no message, log line or answer can show it (a broken one included)
        # Where the key is sent: only what is written beside it (or in the environment) counts; only the environment,
        # when the key in use is a chosen workspace's own and another was written where it was chosen.
        key_from = problems.source.get("KIE_API_KEY", ENV_BLOCK)
        other_key = chosen_by if key_from == str(workspace / ".env") and "KIE_API_KEY" in dotenv else None
        trusted = (ENV_BLOCK,) if other_key else (ENV_BLOCK, key_from)
        ignored = _endpoints_beside_the_key(env, written, problems, trusted if key else None)
        route_notes = [_other_key_note(key_from, other_key)] if key and other_key else []
        if run_on is not None:  # a problem under --sandbox too: the setting it swallowed was never read
            problems.of(
                "KIE_API_KEY",
                "KIE_API_KEY runs on into another KIE_ setting: the line break after the key is missing in the .env, "
                "so that setting was never read. Put each setting on a line of its own.",
            )
        elif said := placeholder or named_twice or _key_problem(key, not_text):
            if sandbox:  # the simulator's own key is used, and nothing is sent with this one: said, it stops nothing
                problems.notes.append(
                    f"KIE_API_KEY (in {_place(key_from)}) is not used under --sandbox, which has the simulator's own "
                    f"key; without --sandbox every tool would answer: {said}"
                )
            else:
                problems.of("KIE_API_KEY", said)
        # The key pasted into another field (KIE_API_KEY empty or not): never read, never shown. KIE_WORKSPACE's is
        # refused as the workspace is chosen, before any folder is made from it; a money limit's and KIE_APPROVAL's,
        # as each value written is read.
        for name in KNOWN_SETTINGS:
            if name in ("KIE_API_KEY", "KIE_WORKSPACE", "KIE_APPROVAL", *MONEY_LIMITS) or name not in env:
                continue
            parts = env[name].split(os.pathsep) if name == "KIE_ALLOWED_DIRS" else [env[name]]
            pasted = [said for part in parts if (said := _pasted_key(name, part))] or [_named_twice(name, env[name])]
            if pasted[0]:
                problems.of(name, pasted[0])
                del env[name]
        if "KIE_WORKSPACE" in env and len(key) >= MIN_SECRET_LENGTH and key in str(workspace):
            problems.of(
                "KIE_WORKSPACE",
                "KIE_WORKSPACE holds the KIE API key (pasted into the wrong field?); point it at a folder.",
            )
            found, reason = _per_user_workspace(problems, ", because KIE_WORKSPACE cannot be used")
            workspace = found or cwd
        money_notes: list[str] = []
        limit_from: dict[str, str] = {}  # where each money limit in force was written
        # A raise above the default counts only where the endpoints do (the key's .env, the env block): one written in
        # any other .env is ignored and said (``_ignored_raises_note``). Without a key nothing is spent: all counts.
        raises: list[tuple[str, float, str]] = []
        auto, per_call, per_day = (
            _money_limit(name, written, problems, money_notes, limit_from, trusted if key else None, raises)
            for name in MONEY_LIMITS
        )
        if raises:
            in_force = dict(zip(MONEY_LIMITS, (auto, per_call, per_day), strict=True))
            money_notes.append(_ignored_raises_note(raises, in_force, limit_from, trusted, key_from))
        number = _number_or_problem(env, problems)
        preview = number("KIE_PREVIEW_PX", 768, "a size in pixels such as 768")
        preview_px = min(max(int(preview), 64), 4096)  # pixels, kept within 64-4096
        deadline = number("KIE_DOWNLOAD_DEADLINE", 600.0, "a number of seconds such as 600")
        download_deadline = min(max(deadline, 10.0), 86400.0)  # seconds, kept within 10 s-1 day
        choice = _choice_or_problem(env, problems)
        download = choice("KIE_DOWNLOAD", ("always", "never"), "always")
        sync = choice("KIE_CATALOG_SYNC", ("auto", "off"), "auto")
        approval = _approval(written, problems, money_notes)
        veo_route = choice("KIE_VEO_ROUTE", ("legacy", "unified"), "legacy")
        log_level = _log_level_or_problem(env, problems)
        endpoint = {name: _url_or_problem(env, name, default, problems) for name, default in ENDPOINTS.items()}
        route_notes += [
            _ignored_endpoint_note(name, values, endpoint[name], problems.source.get(name), key_from, other_key)
            for name, values in ignored.items()
        ]
        problems.notes += route_notes
        allowed = _allowed_dirs_or_problem(env, folder_of.get("KIE_ALLOWED_DIRS", cwd), problems)
        if len(key) >= MIN_SECRET_LENGTH and any(key in str(folder) for folder in allowed):
            problems.of(
                "KIE_ALLOWED_DIRS",
                "KIE_ALLOWED_DIRS holds the KIE API key (pasted into the wrong field?); list folders only.",
            )
            allowed = ()
        # As text: a name or value from the environment may hold bytes that are not UTF-8 (lone surrogates), which
        # no JSON answer can carry (the answer to initialize, whose instructions hold the problem, was never sent).
        broken = _as_text(redact(" ".join(problem for problem, _ in problems.found))) if problems.found else None
        return cls(
            api_key=SecretStr(key) if key else None,  # kept for redaction even when broken; never used then
            base_url=endpoint["KIE_BASE_URL"],
            upload_base_url=endpoint["KIE_UPLOAD_BASE_URL"],
            workspace=workspace,
            workspace_reason=reason,
            started_in=cwd,
            # A broken configuration spends nothing: every cap is 0, not a default.
            auto_approve_credits=0.0 if broken else auto,
            max_credits_per_call=0.0 if broken else per_call,
            max_credits_per_day=0.0 if broken else per_day,
            max_credits_per_call_from="" if broken else limit_from.get("KIE_MAX_CREDITS_PER_CALL", ""),
            max_credits_per_day_from="" if broken else limit_from.get("KIE_MAX_CREDITS_PER_DAY", ""),
            log_level=log_level,
            download=download != "never",
            catalog_sync=sync == "auto" and not broken,
            preview_px=preview_px,
            download_deadline=download_deadline,
            approval=approval,
            veo_route=veo_route,
            allowed_dirs=allowed,
            config_error=broken,
            config_fix_in=tuple(dict.fromkeys(where for _, where in problems.found)),
            # Which value of a money limit (or of KIE_APPROVAL) applies means nothing while every cap is 0.
            config_notes=tuple(_as_text(redact(note)) for note in ([] if broken else money_notes) + problems.notes),
            route_notes=tuple(_as_text(redact(note)) for note in route_notes),
            key_origin=_as_text(redact(_key_origin(key, key_from, written.get("KIE_API_KEY", [])))) if key else "",
        )


def _settings_file(workspace: Path, problems: _Problems, written: dict[str, list[tuple[str, str]]]) -> dict[str, str]:
    """The settings in ``workspace``'s .env (blank ones left out); an unreadable file, a misspelt name or a line
    without its ``=`` is a problem of that file. Each value of a money limit, KIE_APPROVAL or an endpoint it sets
    (each line, when it sets one twice) is added to ``written``, with the file's path."""
    path = workspace / ".env"
    unread: list[str] = []
    every: list[tuple[str, str]] = []
    try:
        values = _present(read_dotenv(path, unread, every))
    except ConfigError as err:
        problems.add(str(err), str(path))
        return {}
    for name, value in every:
        if name in WRITTEN_EVERYWHERE and value.strip():
            written.setdefault(name, []).append((value, str(path)))
    unknown, noted = _unknown_settings(values, f"{path} sets")
    for problem in unknown:
        problems.add(problem, str(path))
    problems.notes += noted
    for name in unread:
        problems.add(  # worded so that no credential pattern of kie_mcp.redact takes the advice for a key
            f"{path} has a line for {name} with a colon or a space after the name instead of =, so {name} was not "
            f"read; write it as {name}, then = and the value, with nothing between them.",
            str(path),
        )
    return values


def _current_folder() -> Path:
    """The folder the server was started in; the home folder when that was deleted since (a server started from a
    folder removed meanwhile crashed on start with a traceback), and the top of the file system when there is no
    home folder either (never used as the workspace)."""
    try:
        return Path.cwd()
    except OSError:
        try:
            return Path.home()
        except RuntimeError:
            return Path(os.path.abspath(os.sep))


def _same_folder(one: Path, other: Path) -> bool:
    return os.path.realpath(one) == os.path.realpath(other)


_RUN_ON = re.compile(r"KIE_[A-Z_]+=")  # a key whose line lost its break: the next setting's name, inside it


def _plain_key(key: str) -> bool:
    """Whether ``key`` could be a KIE key: printable ASCII without spaces. A curly quote from a text editor or a
    zero-width space copied from a web page would otherwise fail every call as an "unexpected error" (an HTTP
    header takes ASCII only)."""
    return key.isascii() and key.isprintable() and not any(char.isspace() or char in "\"'" for char in key)


def _key_problem(key: str, not_text: bool) -> str | None:
    """What is wrong with ``key`` as KIE_API_KEY (``not_text``: it held bytes that are not UTF-8), or None: a
    placeholder inside it, a character no key has, another service's token (sent as the Bearer token, it would hand
    that service's secret to KIE). Never the key itself."""
    if not_text:
        return (
            "KIE_API_KEY holds bytes that are not UTF-8 text (the key was saved or typed in another encoding?); "
            "paste the key again as plain text, from https://kie.ai/api-key."
        )
    if unfilled := _unfilled("KIE_API_KEY", key, "the key itself"):  # a key with a placeholder in it
        return unfilled
    if key and not _plain_key(key):
        return (
            "KIE_API_KEY holds a character no KIE key has (a quote, a space or an invisible character copied with "
            "it?); paste the key again as plain text, from https://kie.ai/api-key."
        )
    if service := other_service(key):
        return (
            f"KIE_API_KEY looks like {service}, not a KIE API key (KIE's are 32 hex digits), so it was not sent "
            "anywhere. Get a KIE key at https://kie.ai/api-key and put it in KIE_API_KEY in its place."
        )
    return None


def _pasted_key(name: str, value: str) -> str | None:
    """What to say when ``value`` of setting ``name`` (not KIE_API_KEY) is shaped like an API key, or None. Such a
    value is registered as a secret at once: whatever it was meant as, no message, log line or path shows it."""
    core = _without_quotes(value.strip()).strip()
    folder_setting = name in _FOLDER_SETTINGS
    if not (_FOLDER_KEY_SHAPE if folder_setting else _KEY_SHAPE).fullmatch(core):
        return None
    register_secret(core)
    folder = " (a folder named like that: write its full path)" if folder_setting else ""
    return f"{name} holds what looks like an API key; put it in KIE_API_KEY{folder}."


def _without_quotes(value: str) -> str:
    """``value`` without one pair of matching quotes around it: straight, or the curly ones a text editor or a web
    page puts there (“...”, ‘...’, «...»)."""
    if len(value) >= 2 and ((value[0] == value[-1] and value[0] in "\"'") or value[0] + value[-1] in _CURLY_PAIRS):
        return value[1:-1]
    return value


_CURLY_PAIRS = ("\u201c\u201d", "\u2018\u2019", "\u201e\u201c", "\u00ab\u00bb", "\u201d\u201d")


def _quoted(name: str, value: str, *, listed: bool = False) -> str | None:
    """What to say when a path setting's value (or, ``listed``, one of the folders it lists) has quotes around it, or
    None. A client's env block takes the value as it is: "/tmp/x" with its quotes is a path whose first and last
    characters are quotes, read as a relative path (a folder named ``"`` was made in the current folder). A .env's
    own quotes are taken off as it is read; these are quotes inside them."""
    parts = (value, *value.split(os.pathsep)) if listed else (value,)
    if all(_without_quotes(part.strip()) == part.strip() for part in parts):
        return None
    return (
        f"{name}={plain(value.strip())} has quotes around it, which would be part of the path; remove them (in a "
        "client's env block the value is the path as it is)."
    )


def _shown(raw: str) -> str:
    """A broken value as a message repeats it: whole when short, else only its start and its length (a key pasted
    into the wrong field with something no key has, a dot or a space, is never shown whole)."""
    if len(raw) <= SHOWN_WHOLE:
        return plain(raw)
    return f"{plain(raw[: cut_point(raw, SHOWN_START)] + '...')} ({len(raw)} characters)"


def _present(values: Mapping[str, str]) -> dict[str, str]:
    """``values`` without the empty and blank ones: a setting given as "" is a setting not given."""
    return {name: value for name, value in values.items() if value.strip()}


def _unknown_settings(names: Mapping[str, str], where: str) -> tuple[list[str], list[str]]:
    """The names (of a .env, or of the environment) kie-mcp does not read that may have been meant for it: as
    problems, a misspelt money limit or KIE_APPROVAL and a KIE_ name that reads as a money limit
    (KIE_MAX_CREDIT_PER_DAY, KIE_DAILY_CAP, KIE_APPROVALS, a name with a space after it would otherwise leave a cap at
    its looser default, or quote approvals on, without a word; such a name is answered with the setting that is one);
    as problems too, a misspelt other setting (KIE_WORKSPCE would leave the server in another workspace, its
    MASTER_CONTEXT.md, references and journal unseen, without a word); as notes, any other KIE_ name. Another KIE
    tool's KIE_AI_API_KEY, KIEAI_API_KEY or KIE_AI_BASE_URL (``OTHER_KIE_TOOLS``, in a shared .env, or exported in
    the shell that started the client) is one letter from kie-mcp's own: as a problem it stopped every tool, even
    beside a working KIE_API_KEY; unless it reads as a money limit or KIE_APPROVAL, it is said and stops nothing.
    Names of this project's other tools (``OTHER_TOOLS_SETTINGS``) and of other programs (OTHER_TOOL) are left
    alone."""
    problems: list[str] = []
    notes: list[str] = []
    for name in names:
        meant = _spelt_as_a_setting(name)
        if name in KNOWN_SETTINGS or _of_other_tools(meant):
            continue
        import difflib  # only for settings that name something else

        close = difflib.get_close_matches(meant, KNOWN_SETTINGS, n=1, cutoff=TYPO_LIKENESS)
        shown = plain(name, limit=40)
        if close and (close[0] in SPENDING_SETTINGS or not meant.startswith(OTHER_KIE_TOOLS)):
            problems.append(f"{where} {shown}, which kie-mcp does not read; did you mean {close[0]}?")
        elif close:  # another KIE tool's KIE_AI_API_KEY, KIEAI_API_KEY, KIE_AI_BASE_URL: said, it stops nothing
            notes.append(
                f"{where} {shown}, which kie-mcp does not read: it changes nothing here. If it was meant for "
                f"kie-mcp, the name is {close[0]} (every setting is listed in {settings_listed()})."
            )
        elif not meant.startswith("KIE_"):
            continue
        elif _MONEY_NAME.search(meant):
            problems.append(
                f"{where} {shown}, which kie-mcp does not read, so it limits nothing: {_money_meant(meant)}"
            )
        else:
            near = difflib.get_close_matches(meant, KNOWN_SETTINGS, n=1, cutoff=NEAR_LIKENESS)
            guess = f" (did you mean {near[0]}?)" if near else ""
            notes.append(
                f"{where} {shown}, which kie-mcp does not read{guess}: it changes nothing here (every setting is "
                f"listed in {settings_listed()})."
            )
    return problems, notes


CONFIGURATION_DOCS = "the README's Configuration section (https://github.com/kie-mcp/kie-mcp#configuration)"
EXAMPLE_ONLINE = "https://github.com/kie-mcp/kie-mcp/blob/main/.env.example"


def settings_listed() -> str:
    """Where every setting is listed, as a message names it: the README's Configuration section, and
    ``.env.example``: by its path in a checkout, else online. An installed package has no copy (the Claude Desktop
    bundle's packer leaves out every ``.env*`` file, so the wheel it builds could not include one); the message
    named a file the install did not have."""
    from kie_mcp.bundled import bundled_path

    example = bundled_path(".env.example")
    return f"{CONFIGURATION_DOCS} and in {example if example is not None else EXAMPLE_ONLINE}"


TYPO_LIKENESS = 0.85  # KIE_MAX_CREDIT_PER_DAY is 0.98 like KIE_MAX_CREDITS_PER_DAY; KIE_API is 0.78 like KIE_API_KEY
NEAR_LIKENESS = 0.7  # a name further off than a typo, still worth offering: KIE_LOG_FILE for KIE_LOG_LEVEL
# An unknown KIE_ name that reads as a limit on spending: a cap, a budget, a quota, an auto-approve amount, credits,
# a most per day or per call. Not a limit of something else (KIE_MAX_RETRIES, KIE_RATE_LIMIT, KIE_UPLOAD_MAX_MB,
# KIE_DAILY_REPORT, KIE_MAX_CALLS_PER_MINUTE: another tool's, sharing the .env, which must not stop spending).
_MONEY_NAME = re.compile(
    r"CREDIT|SPEND|BUDGET|APPROV|QUOTA|CEILING|ALLOWANCE|(?:^|_)CAPS?(?:_|$)"
    r"|^(?>\w*?(?:MAX|LIMIT))\w*(?:PER_?(?:DAY|CALL|REQUEST|RUN|JOB|GENERATION)|DAILY|COST|USD)"
    r"|^(?>\w*?(?:DAILY|COST|USD))\w*(?:MAX|LIMIT|THRESHOLD)"
)
# The money limits' names without their KIE_ prefix: in the env block, a name written so is meant for kie-mcp (no
# other program's name looks like these), unlike LOG_LEVEL or WORKSPACE.
_BARE_MONEY_NAMES = frozenset(name.removeprefix("KIE_") for name in MONEY_LIMITS)


def _spelt_as_a_setting(name: str) -> str:
    """``name`` upper-cased with every run of other characters than letters and digits written ``_``, as the settings
    are (``KIE-MAX-CREDITS-PER-CALL``, `` kie_max_credits_per_call``): what the name was meant as."""
    return re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_")


def _maybe_ours(name: str) -> bool:
    """Whether a name of the env block may have been meant for kie-mcp (the rest of the environment is other
    programs'): it starts with KIE however written, or is a money limit's name without its prefix."""
    meant = _spelt_as_a_setting(name)
    return meant.startswith("KIE") or meant in _BARE_MONEY_NAMES


def _of_other_tools(name: str) -> bool:
    return name in OTHER_TOOLS_SETTINGS or name.startswith(OTHER_TOOLS_PREFIXES)


def _money_meant(name: str) -> str:
    """The money limit an unknown name that looks like one (``_MONEY_NAME``) was most likely meant as, in words."""
    if "APPROV" in name or "AUTO" in name:
        return "the amount that runs without asking is KIE_AUTO_APPROVE_CREDITS."
    if "DAY" in name or "DAILY" in name:
        return "the cap per day is KIE_MAX_CREDITS_PER_DAY."
    if any(word in name for word in ("CALL", "REQUEST", "EACH", "JOB", "TASK", "RUN", "GENERATION")):
        return "the cap per call is KIE_MAX_CREDITS_PER_CALL."
    return "the caps are KIE_MAX_CREDITS_PER_CALL (one call) and KIE_MAX_CREDITS_PER_DAY (one day)."


def _money_limit(
    name: str,
    written: Mapping[str, list[tuple[str, str]]],
    problems: _Problems,
    notes: list[str],
    limit_from: dict[str, str],
    trusted: tuple[str, ...] | None = None,
    raises: list[tuple[str, float, str]] | None = None,
) -> float:
    """The money limit ``name``: the lowest of the values written for it (``written``: each with where), the default
    when none is. A client that always passes its own (the Claude Desktop bundle's defaults) never loosens a tighter
    one in the .env, nor does a forgotten second line of a .env. When the values differ, ``notes`` says which
    applies and where each was written; ``limit_from`` gets where the value in force was written. A broken value
    (not a number, a key pasted there, a placeholder a bundle host left unfilled) is a problem where it was written,
    and 0.

    With ``trusted`` (the env block and the .env of the key in use, as for the endpoints), a value written anywhere
    else counts only when it is no looser than the default and than the lowest written in ``trusted``: a cloned
    project's .env (or one an agent wrote) saying KIE_MAX_CREDITS_PER_CALL=5000 raised the default cap of a user
    whose env block holds only the key. Such a value is ignored and added to ``raises`` (name, value, where); a
    lower one still applies."""
    default = MONEY_LIMITS[name]
    values: list[tuple[float, str]] = []
    broken = False
    for raw, where in written.get(name, ()):
        # a key pasted there, the whole line pasted as the value, ${user_config.max_...} a bundle host left unfilled
        refused = _pasted_key(name, raw) or _named_twice(name, raw) or _unfilled(name, raw, CREDITS_EXAMPLE)
        if refused:
            problems.add(refused, where)
            broken = True
            continue
        try:
            values.append((_number({name: raw}, name, default), where))
        except ConfigError as err:
            problems.add(str(err), where)
            broken = True
    if broken:
        return 0.0
    if trusted is not None:
        allowed = [value for value, where in values if where in trusted]
        loosest = max(default, min(allowed, default=default))  # what a .env elsewhere may not go above
        counted = [(value, where) for value, where in values if where in trusted or value <= loosest]
        if raises is not None:
            raises += [(name, value, where) for value, where in values if (value, where) not in counted]
        values = counted
    if not values:
        return default
    lowest, source = min(values, key=lambda value: value[0])  # the first written of equal ones
    limit_from[name] = _place(source)
    if any(value != lowest for value, _ in values):
        each = _by_place([(credits_figure(value), where) for value, where in values])
        notes.append(
            f"The {MONEY_LIMIT_WORDS[name]} in force is {credits_text(lowest)}, from {_place(source)}: {name} is set "
            f"to different values ({each}), and the lowest applies."
        )
    return lowest


def _ignored_raises_note(
    raises: list[tuple[str, float, str]],
    in_force: Mapping[str, float],
    limit_from: Mapping[str, str],
    trusted: tuple[str, ...],
    key_from: str,
) -> str:
    """What to say of the money limits written in a .env the key in use does not come from that would have loosened
    the gate (``raises``: name, value, where), ignored: each as written and where, why, what is in force instead
    (``in_force``, written in ``limit_from`` or the default) and how to raise one for real. One sentence group for
    all of them: one line in the start-up log."""
    names = list(dict.fromkeys(name for name, _, _ in raises))
    one = len(names) == 1
    each = _by_place([(f"{name}={credits_figure(value)}", where) for name, value, where in raises])
    beside = key_from != ENV_BLOCK and key_from in trusted
    only = (
        f"in the client's env block or in {key_from}, the .env that holds the API key in use"
        if beside
        else "in the client's env block"
        + (
            ", where the API key in use is set"
            if key_from == ENV_BLOCK
            else f", as the API key in use comes from {key_from} while another is written in the .env that chose it"
        )
    )
    now = ", ".join(
        f"{MONEY_LIMIT_WORDS[name]} {credits_text(in_force[name])} "
        + (f"(from {limit_from[name]})" if name in limit_from else "(the default)")
        for name in names
    )
    how = "in the env block of this MCP server in your client's configuration" + (
        f", or in {key_from} beside the key" if beside else ""
    )
    return (
        f"{each}: ignored. A money limit is raised above its default only {only}, so that another .env (a cloned "
        "project's, or one an agent wrote) cannot loosen the spend gate; a lower value written in such a .env still "
        "applies. "
        f"In force: {now}. To raise {'it' if one else 'them'}, set {'it' if one else 'them'} {how}, then restart "
        "the server."
    )


def _approval(written: Mapping[str, list[tuple[str, str]]], problems: _Problems, notes: list[str]) -> str:
    """KIE_APPROVAL: the strictest of the values written for it (``APPROVAL_MODES``), "any" when none is. As for a
    money limit, a ``.env`` that says "any" (a cloned project's, or one an agent wrote) never undoes a "form" written
    elsewhere, and when the values differ ``notes`` says which applies and where each was written. A broken value
    is a problem where it was written (and then nothing can be spent; "form" is kept, never the looser mode)."""
    name = "KIE_APPROVAL"
    values: list[tuple[str, str]] = []
    broken = False
    for raw, where in written.get(name, ()):
        try:
            refused = _pasted_key(name, raw) or _named_twice(name, raw)
            if refused:
                raise ConfigError(refused)
            values.append((_choice({name: raw}, name, APPROVAL_MODES, APPROVAL_MODES[0]), where))
        except ConfigError as err:
            problems.add(str(err), where)
            broken = True
    if broken:
        return APPROVAL_MODES[-1]
    if not values:
        return APPROVAL_MODES[0]
    strictest, source = max(values, key=lambda value: APPROVAL_MODES.index(value[0]))  # the first written of equal
    if any(value != strictest for value, _ in values):
        notes.append(
            f"The approval in force is KIE_APPROVAL={strictest}, from {_place(source)}: {name} is set to different "
            f"values ({_by_place(values)}), and the strictest applies ({' over '.join(reversed(APPROVAL_MODES))})."
        )
    return strictest


def _endpoints_beside_the_key(
    env: dict[str, str],
    written: Mapping[str, list[tuple[str, str]]],
    problems: _Problems,
    trusted: tuple[str, ...] | None,
) -> dict[str, list[tuple[str, str]]]:
    """Keeps in ``env`` each endpoint (``ENDPOINTS``) only as written in ``trusted``: the environment and the .env the
    key in use was read from (the environment winning, as for any setting), or the environment alone; returns the
    values written anywhere else, ignored, by name (each with where). Read by ordinary precedence, the chosen
    workspace's .env (a cloned project's, or one an agent wrote) sent the key from the client's env block or the
    per-user .env to whatever host it named. With no key (``trusted`` None) nothing is sent with one: nothing is
    ignored."""
    if trusted is None:
        return {}
    ignored: dict[str, list[tuple[str, str]]] = {}
    for name in ENDPOINTS:
        values = written.get(name, [])
        elsewhere = [(raw, where) for raw, where in values if where not in trusted]
        if not elsewhere:
            continue
        for raw, _ in elsewhere:  # a key pasted there (whole, or in the path) is never shown by the note
            _pasted_key(name, raw)
            _register_key_pieces(raw)
        ignored[name] = elsewhere
        kept = [(raw, where) for raw, where in values if where in trusted]
        # The environment's value, else the last line of the key's .env (as read_dotenv reads a name set twice).
        raw, where = next(((raw, where) for raw, where in kept if where == ENV_BLOCK), kept[-1] if kept else ("", ""))
        if raw:
            env[name] = raw
            problems.source[name] = where
        else:
            env.pop(name, None)
            problems.source.pop(name, None)
    return ignored


def _key_origin(key: str, key_from: str, written: list[tuple[str, str]]) -> str:
    """Where the key in use (``key``) was written (``key_from``), as a sentence, and each different KIE_API_KEY a .env
    read also holds (``written``: every value written, with where), which it shadows: a key KIE refuses is answered
    with this (a 401 said only "missing or wrong", while the fix was in another place than the user looked). Neither
    key, nor any part of one, is in it."""
    shadowed = list(dict.fromkeys(where for raw, where in written if where != key_from and raw.strip() != key))
    said = f"The API key in use comes from {key_from}"
    if not shadowed:
        return f"{said}."
    wins = "the environment wins" if key_from == ENV_BLOCK else f"{key_from} is read over it"
    return f"{said}; the different KIE_API_KEY in {' and in '.join(shadowed)} is not used: {wins}."


def _other_key_note(key_from: str, chooser: str) -> str:
    """What to say when the key in use comes from a chosen workspace's .env (``key_from``) while another KIE_API_KEY
    was written in the .env that chose it (``chooser``): a cloned project's .env that brings its own key (and its
    own hosts) would otherwise take over without a word. Neither key is shown."""
    return (
        f"The API key in use is the one in {key_from}, the .env of the workspace that {chooser} chose, not the "
        f"KIE_API_KEY also written in {chooser} (neither is shown): what is spent is spent from that key's account. "
        "So that such a .env (a cloned project's, or one an agent wrote) cannot also send your prompts and files to "
        "a host of its own, KIE_BASE_URL and KIE_UPLOAD_BASE_URL are then taken only from the client's env block. "
        f"If that key is not yours, remove KIE_API_KEY from {key_from}."
    )


def _ignored_endpoint_note(
    name: str,
    values: list[tuple[str, str]],
    in_force: str,
    source: str | None,
    key_from: str,
    chooser: str | None,
) -> str:
    """What to say of the values of endpoint ``name`` written where they do not count (``values``, each with where):
    that they are ignored, why, and where requests go instead. Beside the key they count, unless the key in use is a
    chosen workspace's own while another was written in the .env that chose it (``chooser``): then only in the
    client's env block."""
    each = _by_place([(_said_address(raw), where) for raw, where in values])
    origin = f"from {_place(source)}" if source else "the default"
    if chooser:
        why = (
            f"the API key in use comes from {key_from}, the .env of the workspace that {chooser} chose, while "
            f"another KIE_API_KEY is written in {chooser}, so where requests are "
            "sent is taken only from the client's env block: a .env that brings its own key (a cloned project's, or "
            "one an agent wrote) cannot send your prompts and files to its own host"
        )
        instead = "set it in the client's env block"
    else:
        trusted = "there" if key_from == ENV_BLOCK else "there or from the client's env block"
        why = (
            f"the API key comes from {_place(key_from)}, and where the key is sent is taken only from {trusted}, so "
            "that another .env (a cloned project's, or one an agent wrote) cannot send the key to another host"
        )
        instead = "set it beside the key"
    return (
        f"{name} ({each}) is ignored: {why}. {name} in force: {_said_address(in_force)} ({origin}). To use another "
        f"address, {instead}."
    )


def _by_place(values: list[tuple[str, str]]) -> str:
    """Values as written (each with where), grouped by where: "5 in the client's env block; 20 and 3000 in /p/.env"."""
    by_place: dict[str, list[str]] = {}
    for shown, where in values:
        by_place.setdefault(where, []).append(shown)
    return "; ".join(f"{' and '.join(shown)} in {_place(where)}" for where, shown in by_place.items())


def _place(where: str) -> str:
    """Where a setting was written, as a note names it: the client's env block, or a .env's path."""
    return "the client's env block" if where == ENV_BLOCK else where


# A placeholder a client fills in before it starts the server, left as written: $HOME, ${HOME}, ${env:KIE_API_KEY},
# ${input:kie-api-key}, ${user_config.workspace} (an unclosed one too), %APPDATA%. kie-mcp never expands one.
_PLACEHOLDER = re.compile(r"\$\{[^}]*\}?|\$[A-Za-z_][A-Za-z0-9_]*|%[A-Za-z_][A-Za-z0-9_()]*%")
# The example folder .env.example and the README write (/path/to/your/workspace, /path/to/photos), a folder's path
# anywhere it starts: uncommented as it is, kie-mcp made /path/to/your/workspace (as root, at the filesystem's root).
_EXAMPLE_PATH = re.compile(r"(?:^|[:;])(?:[A-Za-z]:)?[\\/]path[\\/]to(?:[\\/]|$|[:;])", re.IGNORECASE)


def _unfilled(name: str, value: str, instead: str) -> str | None:
    """What to say when ``value`` of setting ``name`` holds a placeholder nothing filled in, or None. Taken as it is,
    KIE_WORKSPACE=$HOME/proj made a folder named "$HOME", ${user_config.workspace} a workspace inside Claude
    Desktop's bundle (lost at its next update), and a key "${env:KIE_API_KEY}" was sent to KIE. The placeholder is
    named, unless it looks like a key or is part of one. The example folder ``/path/to/...`` is one too."""
    if _EXAMPLE_PATH.search(value):
        return (
            f"{name} holds /path/to/, the example path .env.example and the README write, a placeholder that nothing "
            f"filled in. {_in_its_place(name, instead)}"
        )
    found = _PLACEHOLDER.search(value)
    if found is None:
        return None
    key_shaped = _RUN_START_KEY_SHAPE.search(found[0])
    if key_shaped:  # a key after a "$": a secret from now on
        register_secret(key_shaped[0])
    if key_shaped or (name == "KIE_API_KEY" and found[0] != value):
        what = "a placeholder ($NAME, ${...} or %NAME%)"
    else:
        what = f"{plain(found[0], limit=40)}, a placeholder"
    return (
        f"{name} holds {what} that nothing filled in: the client did not, and kie-mcp never does (in the env block "
        f"or a .env). {_in_its_place(name, instead)}"
    )


# Where a key goes, as README's "Keep the key out of project files" says: what a placeholder left in KIE_API_KEY is
# answered with (a project's .vscode/mcp.json, .cursor/mcp.json or .mcp.json is committed and shared).
WHERE_THE_KEY_GOES = (
    "Keep the key itself out of project files (.vscode/mcp.json, .cursor/mcp.json, a project's .mcp.json: they get "
    "committed and shared). Export KIE_API_KEY in the environment the client is started from (your shell profile: a "
    "client fills ${env:KIE_API_KEY} or ${KIE_API_KEY} in from there), or write it in the workspace's .env (with "
    ".env in the workspace's .gitignore) or in the client's configuration in your user profile "
    "(claude_desktop_config.json, ~/.cursor/mcp.json, ~/.codex/config.toml). Get a key at https://kie.ai/api-key."
)


def _in_its_place(name: str, instead: str) -> str:
    """What to write where a placeholder stands: ``instead``; for the key, where it goes (``WHERE_THE_KEY_GOES``)."""
    return WHERE_THE_KEY_GOES if name == "KIE_API_KEY" else f"Write {instead} in its place."


# What guides and the README write where the key goes (your-key, your-kie-api-key, KIE's docs' YOUR_API_KEY,
# <your key>, ..., xxxx-xxxx): no key of KIE's (32 hex digits) reads so, and none holds a secret (no digit), so it
# may be repeated. Only these words: an unusual key (a test's, a proxy's) is sent as it is.
_EXAMPLE_KEY = re.compile(
    r"<[a-z _.-]{1,40}>|(?:your|my)[-_ ]?(?:kie[-_ ]?(?:ai[-_ ]?)?)?(?:api[-_ ]?)?key(?:[-_ ]?here)?|[x*.…_-]{3,}",
    re.IGNORECASE,
)


def _example_key(key: str) -> str | None:
    """What to say when ``key`` is the example a guide writes where the key goes (``_EXAMPLE_KEY``), or None."""
    if not _EXAMPLE_KEY.fullmatch(key):
        return None
    return (
        f"KIE_API_KEY holds {plain(key, limit=40)}, the example a guide writes where the key goes: a placeholder "
        f"nothing filled in, so it was not sent. {WHERE_THE_KEY_GOES}"
    )


def _named_twice(name: str, value: str) -> str | None:
    """What to say when ``value`` of setting ``name`` starts with the name and ``=`` again (``KIE_API_KEY=<key>``
    pasted into a client's field for KIE_API_KEY, or a .env line ``KIE_API_KEY=KIE_API_KEY=...``), or None. Read as
    it is, the key was sent as "KIE_API_KEY=<key>" (or said to have lost a line break in a .env it is not in), and a
    folder was named "KIE_WORKSPACE=". The value is never repeated: for the key it holds the key."""
    if re.match(rf"(?:export\s+)?{name}\s*=", value.strip(), re.IGNORECASE) is None:
        return None
    only = "the key" if name == "KIE_API_KEY" else "the value"
    return (
        f"The value of {name} starts with the name {name} and = again: the whole line was pasted where only {only} "
        f"goes. Paste only {only}, the text after the =."
    )


# The folders of a list on POSIX, where os.pathsep is ":": a file:// URI whole (a Windows drive's colon in it too),
# or a run of anything but ":".
_LISTED_WITH_URIS = re.compile(r"file://[^/:]*/[A-Za-z]:[\\/][^:]*|file://[^:]*|[^:]+", re.IGNORECASE)


def _folders_named(name: str, value: str, *, listed: bool = False) -> str:
    """``value`` of a folder setting (``listed``: folders separated by ``os.pathsep``) with each ``file://`` URI in it
    (as file managers copy a folder, and kie-mcp's own answers link one) written as the path it names, percent-escapes
    decoded; the rest as it is. Taken as it is, KIE_WORKSPACE=file:///home/me/proj made a folder named "file:" in the
    current folder. A URI naming another machine's file is a ``ConfigError``."""
    if "file://" not in value.lower():
        return value
    from urllib.request import url2pathname  # only for a value that holds a file:// URI

    if not listed:
        parts = [value]
    elif os.pathsep == ":":  # a URI's own colons (file:, a drive's C:) separate nothing
        parts = _LISTED_WITH_URIS.findall(value)
    else:
        parts = value.split(os.pathsep)
    folders = []
    for part in parts:
        written = part.strip()
        if written[:7].lower() != "file://":
            folders.append(part)
            continue
        uri = urlsplit(written)
        if uri.netloc not in ("", "localhost"):
            raise ConfigError(
                f"{name}={plain(written, limit=80)} names a folder on another machine ({plain(uri.netloc)}), which "
                "kie-mcp cannot use; write the path of a folder on this machine."
            )
        path = url2pathname(uri.path)
        if not path.strip("/"):  # file://, file:///: no folder named (the root never is a workspace either)
            raise ConfigError(
                f"{name}={plain(written, limit=80)} names no folder; write the folder's path (or its whole file:// "
                "link, as file:///home/me/project)."
            )
        # file:///C:/Users/me names C:/Users/me (a Windows path, judged as one); url2pathname on POSIX keeps the "/".
        folders.append(path[1:] if re.match(r"/[A-Za-z]:[\\/]", path) else path)
    return os.pathsep.join(folders)


def _as_text(value: str) -> str:
    """``value`` with each byte that was not UTF-8 (a lone surrogate, as Python holds it) as U+FFFD."""
    try:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a surrogate no byte stands for
        return value.encode("utf-8", "replace").decode("utf-8")


def _is_text(value: str) -> bool:
    """Whether ``value`` is text: no lone surrogate, which is how Python holds environment bytes that are not UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _url_or_problem(env: Mapping[str, str], name: str, default: str, problems: _Problems) -> str:
    """An endpoint setting as an http(s) URL with a host (and a port that is a number); anything else is a problem
    (every KIE call would otherwise fail as "unexpected error") and the default."""
    raw = env.get(name, default).strip().rstrip("/")
    try:
        parts = urlsplit(raw)
        usable = parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port or 0) >= 0
    except ValueError:  # a port that is no number, an unclosed [IPv6 address
        usable = False
    if not usable:
        problems.of(name, f"{name}={_shown(raw)} is not an http(s) URL such as {default}.")
        return default
    _register_key_pieces(raw)
    if key_sent_in_the_clear(raw):  # every request there carries the key as its Authorization header
        problems.of(
            name,
            f"{name}={_address(raw)} is plain http to another machine, which would send the API key unencrypted over "
            f"the network. Use https (as {default}), or a loopback address (http://127.0.0.1:<port>, "
            "http://localhost:<port>) for a proxy or simulator on this machine.",
        )
        return default
    return raw


def _register_key_pieces(url: str) -> None:
    """A key in a proxy's path (or pasted there): redacted wherever the URL is shown."""
    for piece in re.split(r"[/?&=#;:@.]+", url):
        if _FOLDER_KEY_SHAPE.fullmatch(piece):
            register_secret(piece)


def _said_address(url: str) -> str:
    """``_address`` of ``url``; the start of the raw value (``_shown``) when it cannot be read as a URL."""
    try:
        return _address(url)
    except ValueError:  # an unclosed [IPv6 address, a port that is no number
        return _shown(url.strip())


def _address(url: str) -> str:
    """Where ``url`` leads, as a message names it: scheme, host and port, its user and password (and path) left out,
    a key-shaped label of its host redacted ("http://[redacted].example.com:8080..."). The cut-off start of the raw
    value (``_shown``) said only "http..." of a long address, never which host was meant."""
    parts = urlsplit(url.strip())
    where = parts.netloc.rsplit("@", 1)[-1]  # user and password (the key, pasted there) are never shown
    more = "..." if url.strip().rstrip("/").lower() != f"{parts.scheme}://{where}".lower() else ""
    where = "".join(
        "[redacted]" if _FOLDER_KEY_SHAPE.fullmatch(piece) else piece for piece in re.split(r"([.:\[\]])", where)
    )
    return plain(redact(f"{parts.scheme.lower()}://{where}") + more, limit=120)


def key_sent_in_the_clear(url: str) -> bool:
    """Whether a request to ``url`` would carry the key unencrypted off this machine: plain http to any host but a
    loopback one (``localhost``, ``*.localhost``, 127.0.0.0/8, ``::1``), where a local proxy or ``kie-mcp sim``
    listens. A URL that cannot be read is not judged here (it is a broken setting of its own)."""
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower().removesuffix(".")
    except ValueError:
        return False
    if parts.scheme.lower() != "http":
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return True  # a name: another machine, whatever this one's resolver says today
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return not (mapped or address).is_loopback


def _log_level_or_problem(env: Mapping[str, str], problems: _Problems) -> str:
    """KIE_LOG_LEVEL as one of ``LOG_LEVELS`` (WARN is read as WARNING); anything else is a problem and INFO."""
    raw = env.get("KIE_LOG_LEVEL", "INFO").strip()
    level = {"WARN": "WARNING"}.get(raw.upper(), raw.upper())
    if level in LOG_LEVELS:
        return level
    problems.of("KIE_LOG_LEVEL", f"KIE_LOG_LEVEL={_shown(raw)} must be {' or '.join(LOG_LEVELS)}.")
    return "INFO"


def no_key_advice(workspace: Path | None = None) -> str:
    """What a server without a key tells the user to do (every KIE tool's error, the instructions, a quote)."""
    where = f" ({workspace / '.env'})" if workspace is not None else ""
    return (
        "KIE_API_KEY is not set, so kie-mcp cannot reach KIE. Set KIE_API_KEY to your key in the .env file "
        f"of the workspace{where} or in the env block of this MCP server's client configuration, then restart "
        "the server. Get a key at https://kie.ai (API Key page). To try everything without a key or credits, "
        "start the server with --sandbox."
    )


def sandbox_area(workspace: Path) -> Path:
    """Where ``--sandbox`` keeps its journal, ledger, outputs/ and logs/ for ``workspace``."""
    return workspace / SANDBOX_AREA


def _number_or_problem(env: Mapping[str, str], problems: _Problems) -> Callable[..., float]:
    """A reader of number settings that records a broken one in ``problems`` and gives 0 for it (never the
    default: a broken cap must block spending, not allow the default amount)."""

    def read(name: str, default: float, example: str = CREDITS_EXAMPLE) -> float:
        try:
            return _number(env, name, default, example)
        except ConfigError as err:
            problems.of(name, str(err))
            return 0.0

    return read


def _choice_or_problem(env: Mapping[str, str], problems: _Problems) -> Callable[[str, tuple[str, ...], str], str]:
    """A reader of choice settings that records a broken one in ``problems`` (the value is then unused)."""

    def read(name: str, allowed: tuple[str, ...], default: str) -> str:
        try:
            return _choice(env, name, allowed, default)
        except ConfigError as err:
            problems.of(name, str(err))
            return default

    return read


def _number(env: Mapping[str, str], name: str, default: float, example: str = CREDITS_EXAMPLE) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={_shown(raw)} is not a number; set it to {example}.") from None
    if not math.isfinite(value):
        raise ConfigError(f"{name}={_shown(raw)} is not a finite number; set it to {example}.")
    if value < 0:
        raise ConfigError(f"{name} cannot be negative (got {_shown(raw)}); set it to {example}.")
    return value + 0.0  # -0 is 0: shown as "0" (f"{-0.0:g}" is "-0")


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    raw = env.get(name, default)
    value = raw.strip().lower() or default
    if value not in allowed:
        choices = " or ".join(plain(a) for a in allowed)
        raise ConfigError(f"{name}={_shown(raw.strip())} must be {choices}.")
    return value


def _allowed_dirs_or_problem(env: Mapping[str, str], base: Path, problems: _Problems) -> tuple[Path, ...]:
    """KIE_ALLOWED_DIRS as real folders (a relative one read from ``base``, the folder of the .env that set it or
    the current folder); one that cannot be resolved (a symlink loop), has quotes around it or holds a placeholder
    nothing filled in is a problem, not a crash or a folder named with a quote. A folder that is not there is kept
    (it may be made later) and named in ``problems.notes``: "/a,/b" is one folder that is not there, not two."""
    value = env.get("KIE_ALLOWED_DIRS", "")
    try:
        refused = _quoted("KIE_ALLOWED_DIRS", value, listed=True)
        if not refused:  # file:// URIs: the paths they name
            value = _folders_named("KIE_ALLOWED_DIRS", value, listed=True)
        refused = (
            refused
            or _unfilled("KIE_ALLOWED_DIRS", value, "the full path of each folder")
            or _windows_path("KIE_ALLOWED_DIRS", value)
        )
    except ConfigError as err:
        refused = str(err)
    if refused:
        problems.of("KIE_ALLOWED_DIRS", refused)
        return ()
    folders: list[Path] = []
    missing: dict[Path, str] = {}  # a folder that is not there: as written
    for part in value.split(os.pathsep):
        if part:
            try:
                folder = (base / Path(part).expanduser()).resolve()
                there = folder.is_dir()
            except (OSError, RuntimeError, ValueError) as err:  # a symlink loop, a NUL byte, ~ without a home
                problems.of("KIE_ALLOWED_DIRS", f"KIE_ALLOWED_DIRS entry {plain(part)} cannot be used ({err}).")
                continue
            folders.append(folder)
            if not there:
                missing[folder] = part
    if missing:
        where = _place(problems.source.get("KIE_ALLOWED_DIRS", ENV_BLOCK))
        problems.notes.append(_missing_folders_note(missing, where))
    return tuple(folders)


def _missing_folders_note(missing: Mapping[Path, str], where: str) -> str:
    """What to say of the folders of KIE_ALLOWED_DIRS (written in ``where``) that are not there, each as it was written
    (as the user knows it; the full path when it was relative); with the separator to use when one holds a comma
    (``/a,/b`` is read as one folder of that name)."""
    one = len(missing) == 1
    listed = ", ".join(
        plain(written, limit=200) + ("" if Path(written).is_absolute() else f" ({plain(str(folder), limit=200)})")
        for folder, written in missing.items()
    )
    said = (
        f"KIE_ALLOWED_DIRS (set in {where}) names {'a folder that is' if one else 'folders that are'} not there: "
        f"{listed}; no input file can come from {'it' if one else 'them'} until {'it exists' if one else 'they exist'}."
    )
    if os.pathsep != "," and any("," in written for written in missing.values()):
        said += f" Separate folders with {os.pathsep} (as in /a{os.pathsep}/b), not with a comma."
    return said


def _workspace_or_problem(env: Mapping[str, str], base: Path, problems: _Problems) -> tuple[Path | None, str]:
    """The workspace and how it was chosen; a KIE_WORKSPACE that cannot be used is a problem and the per-user folder
    stands in. None when there is no folder at all (no home folder for the per-user one: a problem too)."""
    try:
        chosen, reason = _choose_workspace(env, base)
    except ConfigError as err:
        problems.of("KIE_WORKSPACE", str(err))
        return _per_user_workspace(problems, ", because KIE_WORKSPACE cannot be used")
    if chosen is None:
        return _per_user_workspace(problems, reason)
    return chosen, reason


def _per_user_workspace(problems: _Problems, why: str) -> tuple[Path | None, str]:
    """The per-user data folder, with ``why`` it is used (said after its name); None and a problem when there is no
    home folder for it."""
    try:
        return user_data_dir(), f"the per-user data folder{why}"
    except ConfigError as err:
        if all(problem != str(err) for problem, _ in problems.found):
            problems.add(str(err), ENV_BLOCK)
        return None, "none: there is no home folder for the per-user data folder"


def _choose_workspace(env: Mapping[str, str], cwd: Path) -> tuple[Path | None, str]:
    """KIE_WORKSPACE (a relative one read from ``cwd``: the current folder, or the folder of the .env that set it),
    else the current folder when it holds MASTER_CONTEXT.md (and is not kie-mcp's own source checkout, which ships
    one as a template), else None: the per-user folder; with how it was chosen. A KIE_WORKSPACE that cannot be used
    (a folder this user cannot look into, a key pasted there, quotes around it, a placeholder nothing filled in, a
    Windows path on another system, a folder that is not there and cannot be made) is a ``ConfigError``."""
    explicit = env.get("KIE_WORKSPACE", "").strip()
    if explicit:
        refused = (
            _pasted_key("KIE_WORKSPACE", explicit)
            or _named_twice("KIE_WORKSPACE", explicit)
            or _quoted("KIE_WORKSPACE", explicit)
        )
        if refused:
            raise ConfigError(refused)
        explicit = _folders_named("KIE_WORKSPACE", explicit)  # file:///home/me/proj: /home/me/proj
        refused = _unfilled("KIE_WORKSPACE", explicit, "the full path of the folder") or _windows_path(
            "KIE_WORKSPACE", explicit
        )
        if refused:
            raise ConfigError(refused)
        try:
            written = Path(explicit).expanduser()
            path = (cwd / written).resolve()
        except (OSError, RuntimeError, ValueError) as err:  # a symlink loop, an unreadable parent, a NUL byte
            raise ConfigError(f"KIE_WORKSPACE={plain(explicit)} cannot be used ({err}).") from None
        if path == Path(path.anchor):
            raise ConfigError(f"KIE_WORKSPACE={plain(explicit)} is a filesystem root; point it at a project folder.")
        try:
            there = path.exists()
            a_file = there and not path.is_dir()
            unmakeable = None if there else _why_it_cannot_be_made(path)
        except OSError as err:  # a folder on the way this user may not look into (another user's home), a long name
            denied = isinstance(err, PermissionError)
            advice = "point it at a folder this user can open" if denied else "point it at a project folder"
            raise ConfigError(
                f"KIE_WORKSPACE={plain(explicit)} cannot be used ({err.strerror or err}); {advice}."
            ) from None
        if a_file:
            raise ConfigError(f"KIE_WORKSPACE={plain(explicit)} is a file, not a folder; point it at a project folder.")
        if unmakeable:  # said now, not as a journal that cannot be opened after a start-up line saying it is made
            raise ConfigError(
                f"KIE_WORKSPACE={plain(explicit)} is not there, and it cannot be made: {unmakeable}. Point it at a "
                "folder this user can write in (or make the folder first)."
            )
        # A folder that is not there is made, empty: said, as a typo would otherwise go unseen (no MASTER_CONTEXT.md,
        # no references/, a fresh journal).
        new = "" if there else "; it did not exist and is made now, empty: if that is a typo, fix KIE_WORKSPACE"
        if written.is_absolute():
            return path, f"set by KIE_WORKSPACE{new}"
        return path, f"set by KIE_WORKSPACE, a relative path read from {cwd}{new}"
    here = cwd.resolve()
    if _holds_master_context(here) and here != Path(here.anchor):
        if not is_source_checkout(here):
            return here, "the current folder, which holds MASTER_CONTEXT.md"
        return None, (
            f": the current folder ({here}) is kie-mcp's own source checkout, which is never a workspace; set "
            "KIE_WORKSPACE to choose another folder"
        )
    return None, "; set KIE_WORKSPACE to choose another"  # said inside parentheses (the start-up line)


def folder_setting_problem(name: str, value: str) -> str | None:
    """What is wrong with ``value`` as the folder a setting read from the environment alone names (KIE_CACHE_DIR), or
    None: quotes around it, a placeholder nothing filled in, a Windows path on another system, or a relative path,
    which would be read from whatever folder the client happened to start kie-mcp in (``"/tmp/kc"`` with its quotes,
    ``${env:XDG_CACHE_HOME}/kie`` or ``$HOME/.cache`` made folders of those names in the client's working folder)."""
    value = value.strip()
    refused = (
        _quoted(name, value) or _unfilled(name, value, "the full path of the folder") or _windows_path(name, value)
    )
    if refused:
        return refused
    try:
        absolute = Path(value).expanduser().is_absolute()
    except RuntimeError:  # ~ with no home folder (or ~name of a user the system does not know)
        return f"{name}={plain(value, limit=80)} starts with ~, and there is no such home folder; write the full path."
    if not absolute:
        return (
            f"{name}={plain(value, limit=80)} is a relative path, which would be read from whatever folder the client "
            "starts kie-mcp in; write the full path."
        )
    return None


def _why_it_cannot_be_made(folder: Path) -> str | None:
    """Why ``folder`` (absolute, not there) cannot be made by this user, or None when it can: the nearest folder
    above it that is there must be a folder this user may write in, on a file system that keeps folders of its own
    (``/proc`` and ``/sys`` keep none: making one there fails even for root, whom ``os.access`` lets write anywhere)."""
    above = next((parent for parent in folder.parents if parent.exists()), None)
    if above is None:
        return None
    if not above.is_dir():
        return f"{plain(str(above), quoted=False, limit=200)} is a file"
    if not os.access(above, os.W_OK | os.X_OK):  # read-only file systems included (EROFS)
        return f"this user may not make folders in {plain(str(above), quoted=False, limit=200)}"
    if hasattr(os, "statvfs"):
        space = os.statvfs(above)
        if space.f_blocks == 0 and space.f_files == 0:
            where = plain(str(above), quoted=False, limit=200)
            return f"{where} is on a file system that keeps no folders of its own (as /proc and /sys)"
    return None


# A path as Windows writes it (C:\Users\me, D:/photos): on a system whose paths start with "/", it would be read as a
# relative folder named so (and KIE_ALLOWED_DIRS split at its colon into "C" and "\Users\me"), also as a later entry of
# a list ("/tmp:D:\photos", "/tmp,D:/photos"; a one-letter relative folder before an absolute one reads the same).
_WINDOWS_PATH = re.compile(r"(?:^|[;:,])\s*[A-Za-z]:[\\/]")


def _windows_path(name: str, value: str) -> str | None:
    """What to say when a path setting holds a Windows path on a system whose paths are not Windows' (a
    configuration copied from a Windows machine), or None."""
    if os.sep != "/" or not _WINDOWS_PATH.search(value):
        return None
    return (
        f"{name}={plain(value.strip(), quoted=False, limit=80)} is a Windows path on this system, whose paths start "
        "with / (it would be read as a folder of that name inside another one); write the folder's path as this "
        "system names it, such as /home/you/project."
    )


def _holds_master_context(folder: Path) -> bool:
    """Whether ``folder`` holds MASTER_CONTEXT.md; not when it cannot be looked into (a current folder this user may
    not search)."""
    try:
        return (folder / "MASTER_CONTEXT.md").is_file()
    except OSError:
        return False


def is_source_checkout(folder: Path) -> bool:
    """Whether ``folder`` is kie-mcp's own source tree (its pyproject.toml names the project kie-mcp)."""
    try:
        text = read_regular(folder / "pyproject.toml", DOTENV_MOST).decode("utf-8")  # a FIFO there: not waited on
    except (OSError, UnicodeDecodeError):
        return False
    import tomllib  # only when there is a pyproject.toml to read: most starts never need a TOML parser

    try:
        project = tomllib.loads(text).get("project", {})
    except tomllib.TOMLDecodeError:
        return False
    name = project.get("name") if isinstance(project, dict) else None
    return isinstance(name, str) and name.strip().lower().replace("_", "-") == PROJECT_NAME


def user_data_dir() -> Path:
    """The per-user data folder; ``ConfigError`` when there is none: no home folder (HOME unset, and a user the
    system's user list does not know, as a container run with --user may be) and no XDG_DATA_HOME (APPDATA)."""
    if sys.platform == "win32":
        base = _absolute(os.environ.get("APPDATA")) or _home() / "AppData" / "Roaming"
    elif sys.platform == "darwin":
        base = _home() / "Library" / "Application Support"
    else:  # an empty or relative XDG_DATA_HOME is ignored, as the XDG spec says (it would land in the current folder)
        base = _absolute(os.environ.get("XDG_DATA_HOME")) or _home() / ".local" / "share"
    return base / "kie-mcp"


def _home() -> Path:
    try:
        return Path.home()
    except RuntimeError:  # "Could not determine home directory"
        raise ConfigError(
            "HOME is not set (and this user has no home folder), so there is no per-user folder for the workspace; "
            "set HOME, or set KIE_WORKSPACE to your project folder."
        ) from None


def _absolute(value: str | None) -> Path | None:
    return Path(value) if value and Path(value).is_absolute() else None


def _unquoted(value: str) -> str:
    """A ``.env`` value as meant: the text between matching quotes (``KEY="value"  # a note``: the note after them
    too is left out, else the quotes became part of the key or the workspace's path), or unquoted text up to a
    `` #`` comment."""
    if value[:1] in ("'", '"'):
        end = value.find(value[0], 1)
        if end > 0 and value[end + 1 :].strip()[:1] in ("", "#"):
            return value[1:end]
    if " #" in value:
        return value.split(" #", 1)[0].rstrip()
    return value


DOTENV_MOST = 1 << 20  # a .env is a few lines; one larger than this (a link to /dev/zero, a log) is not read


def read_dotenv(
    path: Path, unread: list[str] | None = None, every: list[tuple[str, str]] | None = None
) -> dict[str, str]:
    """Parse KEY=VALUE lines; ignore comments, blanks and ``export``; strip matching quotes. No file is no settings;
    a file that is there but cannot be read as text is a ``ConfigError`` (it may hold the key). The name of each
    line of a setting of kie-mcp's written without ``=`` (``KIE_API_KEY: <key>``, as YAML writes it, or with a
    space) is added to ``unread``: such a line is skipped, so the setting was silently not set. Each line read is
    added to ``every`` as (name, value): a name set twice has its last value in the answer, both there."""
    try:  # never waits: a FIFO planted as .env held the server before it answered initialize
        text = read_regular(path, DOTENV_MOST).decode("utf-8-sig")  # a byte-order mark (Notepad's) is not text
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except NotRegular as err:
        if err.is_folder:  # no .env here, as none is
            return {}
        raise ConfigError(
            f"{path} is {err.what}, not a file; kie-mcp reads only a regular file there. Remove it."
        ) from None
    except TooLong:
        raise ConfigError(
            f"{path} is larger than {DOTENV_MOST // (1 << 20)} MiB, far more than a .env of settings holds, so it is "
            "not read; fix or remove it."
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        why = "is not UTF-8 text" if isinstance(err, UnicodeDecodeError) else f"cannot be read ({err.strerror or err})"
        raise ConfigError(f"{path} {why}; fix or remove it.") from None
    values: dict[str, str] = {}
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            written = _WITHOUT_EQUALS.match(line.removeprefix("export ").lstrip())
            if written is not None and unread is not None:
                if written["name"] == "KIE_API_KEY":  # whatever it was meant as, it is never shown
                    register_secret(_unquoted(written["value"].strip().rstrip(",").strip()))
                unread.append(written["name"])
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = _unquoted(value.strip())
        if every is not None:
            every.append((key.strip(), value))
        if value.strip() or key.strip() not in values:  # a blank line later never undoes a value set before
            values[key.strip()] = value
    return values


# A setting's name, perhaps in quotes (a line copied from JSON), then a colon or a space and a value: a line meant to
# set it, written without its "=".
_WITHOUT_EQUALS = re.compile(rf"[\"']?(?P<name>{'|'.join(KNOWN_SETTINGS)})[\"']?(?:\s*:|\s)\s*(?P<value>.*)")
