"""Settings from the environment and the workspace's ``.env`` file.

The real environment wins over ``.env``. The API key is held as a ``SecretStr`` so that no
repr, log line or error message can show it.

A broken setting never stops the server: ``Settings.load`` returns settings that carry the problem
(``config_error``), with caps of 0, and the server answers every tool with the problem and the fix. A broken
cap therefore never means "no cap" or "the default cap".
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import SecretStr

from kie_mcp.redact import MIN_SECRET_LENGTH, redact, register_secret
from kie_mcp.words import plain

DEFAULT_BASE_URL = "https://api.kie.ai"
DEFAULT_UPLOAD_BASE_URL = "https://kieai.redpandaai.co"
DEFAULT_MAX_CREDITS_PER_CALL = 600.0  # ~$3: two Veo 3.1 Quality clips at 720p fit, a 4K batch does not
DEFAULT_MAX_CREDITS_PER_DAY = 3000.0  # ~$15 a day through this server
SANDBOX_BASE_URL = "http://sandbox.kie-mcp.local"
SANDBOX_AREA = "sandbox"  # --sandbox keeps its journal, ledger, outputs/ and logs/ in <workspace>/sandbox/
PROJECT_NAME = "kie-mcp"
CREDITS_EXAMPLE = "a credit amount such as 100"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")  # KIE_LOG_LEVEL: these names only
# Every setting kie-mcp reads from a workspace .env; a name there that is nearly one of these (a typo) would silently
# change nothing, perhaps leave a cap at its default: it is reported as a broken setting.
KNOWN_SETTINGS = (
    "KIE_API_KEY",
    "KIE_BASE_URL",
    "KIE_UPLOAD_BASE_URL",
    "KIE_WORKSPACE",
    "KIE_AUTO_APPROVE_CREDITS",
    "KIE_MAX_CREDITS_PER_CALL",
    "KIE_MAX_CREDITS_PER_DAY",
    "KIE_DOWNLOAD",
    "KIE_ALLOWED_DIRS",
    "KIE_CATALOG_SYNC",
    "KIE_LOG_LEVEL",
    "KIE_PREVIEW_PX",
    "KIE_APPROVAL",
)


class ConfigError(ValueError):
    """A setting that cannot work; the message says which and how to fix it."""


@dataclass(frozen=True)
class Settings:
    api_key: SecretStr | None
    base_url: str = DEFAULT_BASE_URL
    upload_base_url: str = DEFAULT_UPLOAD_BASE_URL
    workspace: Path = field(default_factory=Path.cwd)
    auto_approve_credits: float = 0.0
    max_credits_per_call: float = DEFAULT_MAX_CREDITS_PER_CALL
    max_credits_per_day: float = DEFAULT_MAX_CREDITS_PER_DAY
    log_level: str = "INFO"
    download: bool = True  # KIE_DOWNLOAD=always|never: save results into outputs/ as soon as they exist
    allowed_dirs: tuple[Path, ...] = ()  # KIE_ALLOWED_DIRS: folders besides the workspace that inputs may come from
    sandbox: bool = False
    # Sandbox only: the real workspace whose sandbox area ``workspace`` is. Its MASTER_CONTEXT.md and references/
    # are served, and its files may be inputs; its journal, outputs and logs are never touched.
    real_workspace: Path | None = None
    workspace_reason: str = ""  # how the workspace was chosen, for the start-up line
    config_error: str | None = None  # a broken setting: every tool answers with it (see ``config_problem``)
    # Timing. Tests shorten these; users rarely need to.
    image_wait_seconds: float = 45.0
    poll_min_interval: float = 2.0
    poll_max_interval: float = 15.0
    rate_limit_backoff: float = 10.0
    save_grace: float = 15.0  # check_task of a task whose results are being saved waits this long for them (at least)
    http_timeout: float = 30.0
    quote_ttl_seconds: float = 600.0
    confirm_timeout_seconds: float = 600.0  # a confirmation question unanswered this long ends as cancelled
    roots_timeout_seconds: float = 5.0  # a client's roots/list unanswered this long: no shared folders
    catalog_sync: bool = True  # KIE_CATALOG_SYNC=auto|off: refresh KIE's live models and prices once a day
    preview_px: int = 768  # KIE_PREVIEW_PX: longest side of image previews and video posters shown inline
    # KIE_APPROVAL=any|form. "form": on a client that can show the confirmation form, only the person's answer there
    # approves a spend (a quote_id binds the request, never approves it); "any": a quote_id approves too.
    approval: str = "any"

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
        return redact(  # a setting may hold the key (pasted into a cap, or a .env line without its newline)
            f"kie-mcp cannot work until its configuration is fixed: {self.config_error} Fix it in the env block "
            f"of this MCP server in your client's configuration (or in {self.context_folder / '.env'}), then "
            "restart the server. Nothing was sent to KIE and nothing was spent."
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
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Settings:
        """The settings, or ``ConfigError`` naming every broken one (for commands that stop on a bad setting)."""
        settings = cls.load(environ, cwd)
        if settings.config_error is not None:
            raise ConfigError(settings.config_error)
        return settings

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Settings:
        """The settings, never raising: broken ones are collected in ``config_error``, and then nothing can be
        spent (caps of 0, no catalogue sync) while the server still starts and explains."""
        # An empty or blank value counts as absent (an unset ${env:...} in a client's env block expands to ""): it
        # never hides the .env's value, so a cap set there never ends at the looser default.
        given = _present(os.environ if environ is None else environ)
        cwd = cwd or _current_folder()
        problems: list[str] = []
        workspace, reason = _workspace_or_problem(given, cwd, problems)
        dotenv = _settings_file(workspace, problems)
        problems += _unknown_settings({n: v for n, v in given.items() if n[:3].upper() == "KIE"}, "The environment has")
        env = {**dotenv, **given}
        # A relative path is read from where it was written: the environment's from the current folder, a .env's
        # from that .env's folder (never from wherever the client happened to start the server).
        folder_of = {name: workspace for name in dotenv} | {name: cwd for name in given}
        if "KIE_WORKSPACE" in env and "KIE_WORKSPACE" not in given:  # the .env names the workspace
            before = len(problems)
            named, reason = _workspace_or_problem(env, workspace, problems)
            # Named with its file: the workspace falls back to the per-user folder, whose .env is not where it is.
            problems[before:] = [f"In {workspace / '.env'}: {problem}" for problem in problems[before:]]
            if not _same_folder(named, workspace):
                # That workspace's own .env holds its settings (its caps, its key): read too, and over the .env
                # that pointed here; the environment still wins. It never moves the workspace again.
                own = _settings_file(named, problems)
                moved = own.pop("KIE_WORKSPACE", None)
                if moved is not None and not _same_folder(
                    _workspace_or_problem({"KIE_WORKSPACE": moved}, named, [])[0], named
                ):
                    problems.append(
                        f"{named / '.env'} sets KIE_WORKSPACE to another folder, but {workspace / '.env'} already "
                        f"chose {named}; a workspace's .env cannot choose another. Remove the line from one of them."
                    )
                env = {**dotenv, **own, **given}
                folder_of |= {name: named for name in own if name not in given}
            workspace = named

        key = env.get("KIE_API_KEY", "").strip()
        run_on = _RUN_ON.search(key)
        if run_on is not None:  # the key is what comes before the setting it swallowed (which is no secret)
            key = key[: run_on.start()].strip()
        register_secret(key)  # from now on no message, log line or answer can show it (a broken one included)
        if run_on is not None:
            problems.append(
                "KIE_API_KEY runs on into another KIE_ setting: the line break after the key is missing in the .env, "
                "so that setting was never read. Put each setting on a line of its own."
            )
        elif key and not _plain_key(key):
            problems.append(
                "KIE_API_KEY holds a character no KIE key has (a quote, a space or an invisible character "
                "copied with it?); paste the key again as plain text, from https://kie.ai/api-key."
            )
        if "KIE_WORKSPACE" in env and len(key) >= MIN_SECRET_LENGTH and key in str(workspace):
            problems.append("KIE_WORKSPACE holds the KIE API key (pasted into the wrong field?); point it at a folder.")
            workspace, reason = user_data_dir(), "the per-user data folder, because KIE_WORKSPACE cannot be used"
        number = _number_or_problem(env, problems)
        auto = number("KIE_AUTO_APPROVE_CREDITS", 0.0)
        per_call = number("KIE_MAX_CREDITS_PER_CALL", DEFAULT_MAX_CREDITS_PER_CALL)
        per_day = number("KIE_MAX_CREDITS_PER_DAY", DEFAULT_MAX_CREDITS_PER_DAY)
        preview = number("KIE_PREVIEW_PX", 768, "a size in pixels such as 768")
        preview_px = min(max(int(preview), 64), 4096)  # pixels, kept within 64-4096
        choice = _choice_or_problem(env, problems)
        download = choice("KIE_DOWNLOAD", ("always", "never"), "always")
        sync = choice("KIE_CATALOG_SYNC", ("auto", "off"), "auto")
        approval = choice("KIE_APPROVAL", ("any", "form"), "any")
        log_level = _log_level_or_problem(env, problems)
        base_url = _url_or_problem(env, "KIE_BASE_URL", DEFAULT_BASE_URL, problems)
        upload_base_url = _url_or_problem(env, "KIE_UPLOAD_BASE_URL", DEFAULT_UPLOAD_BASE_URL, problems)
        allowed = _allowed_dirs_or_problem(env, folder_of.get("KIE_ALLOWED_DIRS", cwd), problems)
        if len(key) >= MIN_SECRET_LENGTH and any(key in str(folder) for folder in allowed):
            problems.append("KIE_ALLOWED_DIRS holds the KIE API key (pasted into the wrong field?); list folders only.")
            allowed = ()
        broken = redact(" ".join(problems)) if problems else None
        return cls(
            api_key=SecretStr(key) if key else None,  # kept for redaction even when broken; never used then
            base_url=base_url,
            upload_base_url=upload_base_url,
            workspace=workspace,
            workspace_reason=reason,
            # A broken configuration spends nothing: every cap is 0, not a default.
            auto_approve_credits=0.0 if broken else auto,
            max_credits_per_call=0.0 if broken else per_call,
            max_credits_per_day=0.0 if broken else per_day,
            log_level=log_level,
            download=download != "never",
            catalog_sync=sync == "auto" and not broken,
            preview_px=preview_px,
            approval=approval,
            allowed_dirs=allowed,
            config_error=broken,
        )


def _settings_file(workspace: Path, problems: list[str]) -> dict[str, str]:
    """The settings in ``workspace``'s .env (blank ones left out); an unreadable file or a misspelt name is a
    problem."""
    try:
        values = _present(read_dotenv(workspace / ".env"))
    except ConfigError as err:
        problems.append(str(err))
        return {}
    problems += _unknown_settings(values, f"{workspace / '.env'} sets")
    return values


def _current_folder() -> Path:
    """The folder the server was started in; the home folder when that was deleted since (a server started from a
    folder removed meanwhile crashed on start with a traceback)."""
    try:
        return Path.cwd()
    except OSError:
        return Path.home()


def _same_folder(one: Path, other: Path) -> bool:
    return os.path.realpath(one) == os.path.realpath(other)


_RUN_ON = re.compile(r"KIE_[A-Z_]+=")  # a key whose line lost its break: the next setting's name, inside it


def _plain_key(key: str) -> bool:
    """Whether ``key`` could be a KIE key: printable ASCII without spaces. A curly quote from a text editor or a
    zero-width space copied from a web page would otherwise fail every call as an "unexpected error" (an HTTP
    header takes ASCII only)."""
    return key.isascii() and key.isprintable() and not any(char.isspace() or char in "\"'" for char in key)


def _present(values: Mapping[str, str]) -> dict[str, str]:
    """``values`` without the empty and blank ones: a setting given as "" is a setting not given."""
    return {name: value for name, value in values.items() if value.strip()}


def _unknown_settings(names: Mapping[str, str], where: str) -> list[str]:
    """The names (of the .env, or the client's env block) that look like a misspelt setting of kie-mcp's, as a
    problem: KIE_MAX_CREDIT_PER_DAY, or a name with a space after it, would otherwise leave that cap at its looser
    default without a word. Other names, KIE_* ones included, belong to other tools (KIE_SMOKE_*, KIE_LIVE_TESTS)
    and are left alone."""
    problems = []
    for name in names:
        if name in KNOWN_SETTINGS:
            continue
        import difflib  # only for settings that name something else

        close = difflib.get_close_matches(name.strip().upper(), KNOWN_SETTINGS, n=1, cutoff=TYPO_LIKENESS)
        if close:
            problems.append(f"{where} {plain(name, limit=40)}, which kie-mcp does not read; did you mean {close[0]}?")
    return problems


TYPO_LIKENESS = 0.85  # KIE_MAX_CREDIT_PER_DAY is 0.98 like KIE_MAX_CREDITS_PER_DAY; KIE_API is 0.78 like KIE_API_KEY


def _url_or_problem(env: Mapping[str, str], name: str, default: str, problems: list[str]) -> str:
    """An endpoint setting as an http(s) URL with a host (and a port that is a number); anything else is a problem
    (every KIE call would otherwise fail as "unexpected error") and the default."""
    raw = env.get(name, default).strip().rstrip("/")
    try:
        parts = urlsplit(raw)
        usable = parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port or 0) >= 0
    except ValueError:  # a port that is no number, an unclosed [IPv6 address
        usable = False
    if not usable:
        problems.append(f"{name}={plain(raw, limit=80)} is not an http(s) URL such as {default}.")
        return default
    return raw


def _log_level_or_problem(env: Mapping[str, str], problems: list[str]) -> str:
    """KIE_LOG_LEVEL as one of ``LOG_LEVELS`` (WARN is read as WARNING); anything else is a problem and INFO."""
    raw = env.get("KIE_LOG_LEVEL", "INFO").strip()
    level = {"WARN": "WARNING"}.get(raw.upper(), raw.upper())
    if level in LOG_LEVELS:
        return level
    problems.append(f"KIE_LOG_LEVEL={plain(raw)} must be {' or '.join(LOG_LEVELS)}.")
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


def _number_or_problem(env: Mapping[str, str], problems: list[str]) -> Callable[..., float]:
    """A reader of number settings that records a broken one in ``problems`` and gives 0 for it (never the
    default: a broken cap must block spending, not allow the default amount)."""

    def read(name: str, default: float, example: str = CREDITS_EXAMPLE) -> float:
        try:
            return _number(env, name, default, example)
        except ConfigError as err:
            problems.append(str(err))
            return 0.0

    return read


def _choice_or_problem(env: Mapping[str, str], problems: list[str]) -> Callable[[str, tuple[str, ...], str], str]:
    """A reader of choice settings that records a broken one in ``problems`` (the value is then unused)."""

    def read(name: str, allowed: tuple[str, ...], default: str) -> str:
        try:
            return _choice(env, name, allowed, default)
        except ConfigError as err:
            problems.append(str(err))
            return default

    return read


def _number(env: Mapping[str, str], name: str, default: float, example: str = CREDITS_EXAMPLE) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={plain(raw)} is not a number; set it to {example}.") from None
    if not math.isfinite(value):
        raise ConfigError(f"{name}={plain(raw)} is not a finite number; set it to {example}.")
    if value < 0:
        raise ConfigError(f"{name} cannot be negative (got {plain(raw, quoted=False)}); set it to {example}.")
    return value


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    raw = env.get(name, default)
    value = raw.strip().lower() or default
    if value not in allowed:
        choices = " or ".join(plain(a) for a in allowed)
        raise ConfigError(f"{name}={plain(raw.strip())} must be {choices}.")
    return value


def _allowed_dirs_or_problem(env: Mapping[str, str], base: Path, problems: list[str]) -> tuple[Path, ...]:
    """KIE_ALLOWED_DIRS as real folders (a relative one read from ``base``, the folder of the .env that set it or
    the current folder); one that cannot be resolved (a symlink loop) is a problem, not a crash."""
    folders = []
    for part in env.get("KIE_ALLOWED_DIRS", "").split(os.pathsep):
        if part:
            try:
                folders.append((base / Path(part).expanduser()).resolve())
            except (OSError, RuntimeError, ValueError) as err:  # a symlink loop, a NUL byte
                problems.append(f"KIE_ALLOWED_DIRS entry {plain(part)} cannot be used ({err}).")
    return tuple(folders)


def _workspace_or_problem(env: Mapping[str, str], base: Path, problems: list[str]) -> tuple[Path, str]:
    try:
        return _choose_workspace(env, base)
    except ConfigError as err:
        problems.append(str(err))
        return user_data_dir(), "the per-user data folder, because KIE_WORKSPACE cannot be used"


def _choose_workspace(env: Mapping[str, str], cwd: Path) -> tuple[Path, str]:
    """KIE_WORKSPACE (a relative one read from ``cwd``: the current folder, or the folder of the .env that set it),
    else the current folder when it holds MASTER_CONTEXT.md (and is not kie-mcp's own source checkout, which ships
    one as a template), else a per-user folder; with how it was chosen."""
    explicit = env.get("KIE_WORKSPACE", "").strip()
    if explicit:
        try:
            written = Path(explicit).expanduser()
            path = (cwd / written).resolve()
        except (OSError, RuntimeError, ValueError) as err:  # a symlink loop, an unreadable parent, a NUL byte
            raise ConfigError(f"KIE_WORKSPACE={plain(explicit)} cannot be used ({err}).") from None
        if path == Path(path.anchor):
            raise ConfigError(f"KIE_WORKSPACE={plain(explicit)} is a filesystem root; point it at a project folder.")
        if path.exists() and not path.is_dir():
            raise ConfigError(f"KIE_WORKSPACE={plain(explicit)} is a file, not a folder; point it at a project folder.")
        # A folder that is not there is made, empty: said, as a typo would otherwise go unseen (no MASTER_CONTEXT.md,
        # no references/, a fresh journal).
        new = "" if path.exists() else "; it did not exist and is made now, empty: if that is a typo, fix KIE_WORKSPACE"
        if written.is_absolute():
            return path, f"set by KIE_WORKSPACE{new}"
        return path, f"set by KIE_WORKSPACE, a relative path read from {cwd}{new}"
    here = cwd.resolve()
    if (here / "MASTER_CONTEXT.md").is_file() and here != Path(here.anchor):
        if not is_source_checkout(here):
            return here, "the current folder, which holds MASTER_CONTEXT.md"
        return user_data_dir(), (
            f"the per-user data folder: the current folder ({here}) is kie-mcp's own source checkout, which is "
            "never a workspace; set KIE_WORKSPACE to choose another folder"
        )
    return user_data_dir(), "the per-user data folder (set KIE_WORKSPACE to choose another)"


def is_source_checkout(folder: Path) -> bool:
    """Whether ``folder`` is kie-mcp's own source tree (its pyproject.toml names the project kie-mcp)."""
    try:
        text = (folder / "pyproject.toml").read_text(encoding="utf-8")
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
    home = Path.home()
    if sys.platform == "win32":
        base = _absolute(os.environ.get("APPDATA")) or home / "AppData" / "Roaming"
    elif sys.platform == "darwin":
        base = home / "Library" / "Application Support"
    else:  # an empty or relative XDG_DATA_HOME is ignored, as the XDG spec says (it would land in the current folder)
        base = _absolute(os.environ.get("XDG_DATA_HOME")) or home / ".local" / "share"
    return base / "kie-mcp"


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


def read_dotenv(path: Path) -> dict[str, str]:
    """Parse KEY=VALUE lines; ignore comments, blanks and ``export``; strip matching quotes. No file is no settings;
    a file that is there but cannot be read as text is a ``ConfigError`` (it may hold the key)."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (Notepad's "UTF-8 with BOM") is not text
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return {}
    except (OSError, UnicodeDecodeError) as err:
        why = "is not UTF-8 text" if isinstance(err, UnicodeDecodeError) else f"cannot be read ({err.strerror or err})"
        raise ConfigError(f"{path} {why}; fix or remove it.") from None
    values: dict[str, str] = {}
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = _unquoted(value.strip())
        if value.strip() or key.strip() not in values:  # a blank line later never undoes a value set before
            values[key.strip()] = value
    return values
