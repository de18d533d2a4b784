"""Settings from the environment and the workspace's ``.env`` file.

The real environment wins over ``.env``. The API key is held as a ``SecretStr`` so that no
repr, log line or error message can show it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from pydantic import SecretStr

DEFAULT_BASE_URL = "https://api.kie.ai"
DEFAULT_UPLOAD_BASE_URL = "https://kieai.redpandaai.co"
DEFAULT_MAX_CREDITS_PER_CALL = 600.0  # ~$3: two Veo 3.1 Quality clips at 720p fit, a 4K batch does not
DEFAULT_MAX_CREDITS_PER_DAY = 3000.0  # ~$15 a day through this server
SANDBOX_BASE_URL = "http://sandbox.kie-mcp.local"


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
    # Timing. Tests shorten these; users rarely need to.
    image_wait_seconds: float = 45.0
    poll_min_interval: float = 2.0
    poll_max_interval: float = 15.0
    rate_limit_backoff: float = 10.0
    http_timeout: float = 30.0
    quote_ttl_seconds: float = 600.0
    confirm_timeout_seconds: float = 600.0  # a confirmation question unanswered this long ends as cancelled
    catalog_sync: bool = True  # KIE_CATALOG_SYNC=auto|off: refresh KIE's live models and prices once a day

    @property
    def input_roots(self) -> tuple[Path, ...]:
        """The only folders local input files may be read from."""
        return (self.workspace.resolve(), *self.allowed_dirs)

    @property
    def has_key(self) -> bool:
        return self.api_key is not None and bool(self.api_key.get_secret_value())

    def for_sandbox(self) -> Settings:
        """The same settings pointed at the built-in simulator."""
        from kie_mcp.sandbox import SANDBOX_API_KEY

        return replace(
            self,
            sandbox=True,
            api_key=SecretStr(SANDBOX_API_KEY),
            base_url=SANDBOX_BASE_URL,
            upload_base_url=SANDBOX_BASE_URL,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        cwd = cwd or Path.cwd()
        workspace = _choose_workspace(env, cwd)
        env = {**read_dotenv(workspace / ".env"), **env}
        if "KIE_WORKSPACE" in env and "KIE_WORKSPACE" not in (environ if environ is not None else os.environ):
            workspace = _choose_workspace(env, cwd)
        key = env.get("KIE_API_KEY", "").strip()
        return cls(
            api_key=SecretStr(key) if key else None,
            base_url=env.get("KIE_BASE_URL", DEFAULT_BASE_URL).rstrip("/"),
            upload_base_url=env.get("KIE_UPLOAD_BASE_URL", DEFAULT_UPLOAD_BASE_URL).rstrip("/"),
            workspace=workspace,
            auto_approve_credits=_number(env, "KIE_AUTO_APPROVE_CREDITS", 0.0),
            max_credits_per_call=_number(env, "KIE_MAX_CREDITS_PER_CALL", DEFAULT_MAX_CREDITS_PER_CALL),
            max_credits_per_day=_number(env, "KIE_MAX_CREDITS_PER_DAY", DEFAULT_MAX_CREDITS_PER_DAY),
            log_level=env.get("KIE_LOG_LEVEL", "INFO").upper(),
            download=_download(env.get("KIE_DOWNLOAD", "always")),
            catalog_sync=_choice(env, "KIE_CATALOG_SYNC", ("auto", "off"), "auto") == "auto",
            allowed_dirs=tuple(
                Path(part).expanduser().resolve() for part in env.get("KIE_ALLOWED_DIRS", "").split(os.pathsep) if part
            ),
        )


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number; set it to a credit amount such as 100.") from None
    if value < 0:
        raise ConfigError(f"{name} cannot be negative (got {raw}).")
    return value


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = env.get(name, default).strip().lower() or default
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} must be one of {', '.join(allowed)}.")
    return value


def _download(raw: str) -> bool:
    value = raw.strip().lower()
    if value not in ("always", "never"):
        raise ConfigError(f"KIE_DOWNLOAD={raw!r} must be 'always' or 'never'.")
    return value == "always"


def _choose_workspace(env: Mapping[str, str], cwd: Path) -> Path:
    """KIE_WORKSPACE, else the current folder when it holds MASTER_CONTEXT.md, else a per-user folder."""
    explicit = env.get("KIE_WORKSPACE", "").strip()
    if explicit:
        path = Path(explicit).expanduser().resolve()
        if path == Path(path.anchor):
            raise ConfigError(f"KIE_WORKSPACE={explicit!r} is a filesystem root; point it at a project folder.")
        return path
    if (cwd / "MASTER_CONTEXT.md").is_file() and cwd.resolve() != Path(cwd.resolve().anchor):
        return cwd.resolve()
    return user_data_dir()


def user_data_dir() -> Path:
    home = Path.home()
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA", home / "AppData" / "Roaming"))
    elif sys.platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME", home / ".local" / "share"))
    return base / "kie-mcp"


def read_dotenv(path: Path) -> dict[str, str]:
    """Parse KEY=VALUE lines; ignore comments, blanks and ``export``; strip matching quotes."""
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return {}
    values: dict[str, str] = {}
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key.strip()] = value
    return values
