"""Configuration: environment over .env, the workspace rule, numbers, and a key that never shows."""

from pathlib import Path

import pytest

from kie_mcp.config import DEFAULT_BASE_URL, ConfigError, Settings, read_dotenv, user_data_dir


def test_defaults_without_anything(tmp_path):
    settings = Settings.from_env({}, cwd=tmp_path)
    assert settings.api_key is None and not settings.has_key
    assert settings.base_url == DEFAULT_BASE_URL
    assert settings.auto_approve_credits == 0
    assert settings.workspace == user_data_dir()


@pytest.mark.skipif(__import__("sys").platform in ("win32", "darwin"), reason="the XDG folders are Linux's")
@pytest.mark.parametrize("given", ["", "relative/data"])
def test_an_empty_or_relative_xdg_folder_is_ignored_as_the_spec_says(monkeypatch, tmp_path, given):
    """XDG_DATA_HOME="" put the default workspace (results, journal, call log) in the current folder, as
    ./kie-mcp; XDG_CACHE_HOME="relative" the tool listing. Both are ignored, as the XDG spec says; an absolute
    one is used."""
    from kie_mcp.toolcache import cache_folder

    monkeypatch.delenv("KIE_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", given)
    monkeypatch.setenv("XDG_CACHE_HOME", given)
    assert user_data_dir() == tmp_path / ".local" / "share" / "kie-mcp"
    assert cache_folder() == tmp_path / ".cache" / "kie-mcp"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert user_data_dir() == tmp_path / "data" / "kie-mcp"
    assert cache_folder() == tmp_path / "cache" / "kie-mcp"


def test_workspace_is_cwd_when_it_has_master_context(tmp_path):
    (tmp_path / "MASTER_CONTEXT.md").write_text("# brand")
    assert Settings.from_env({}, cwd=tmp_path).workspace == tmp_path.resolve()


def test_root_is_never_the_workspace(tmp_path):
    assert Settings.from_env({}, cwd=Path("/")).workspace != Path("/")
    with pytest.raises(ConfigError, match="root"):
        Settings.from_env({"KIE_WORKSPACE": "/"}, cwd=tmp_path)


def test_dotenv_in_workspace_is_read_and_env_wins(tmp_path):
    (tmp_path / ".env").write_text(
        "# comment\nKIE_API_KEY='from-dotenv'\nexport KIE_MAX_CREDITS_PER_CALL=50 # inline\nKIE_LOG_LEVEL=debug\n"
    )
    settings = Settings.from_env({"KIE_WORKSPACE": str(tmp_path), "KIE_LOG_LEVEL": "warning"}, cwd=tmp_path)
    assert settings.api_key.get_secret_value() == "from-dotenv"
    assert settings.max_credits_per_call == 50
    assert settings.log_level == "WARNING"


def test_key_never_in_repr(tmp_path):
    settings = Settings.from_env({"KIE_API_KEY": "sk-very-secret-123"}, cwd=tmp_path)
    assert "sk-very-secret-123" not in repr(settings)
    assert "sk-very-secret-123" not in str(settings)


def test_bad_numbers_are_explained(tmp_path):
    with pytest.raises(ConfigError, match="KIE_MAX_CREDITS_PER_DAY"):
        Settings.from_env({"KIE_MAX_CREDITS_PER_DAY": "lots"}, cwd=tmp_path)
    with pytest.raises(ConfigError, match="negative"):
        Settings.from_env({"KIE_AUTO_APPROVE_CREDITS": "-1"}, cwd=tmp_path)


def test_the_download_deadline_is_a_setting_in_seconds_kept_within_bounds(tmp_path):
    """KIE_DOWNLOAD_DEADLINE: the seconds a download gets while it holds a finishing slot (README: Configuration)."""
    assert Settings.from_env({}, cwd=tmp_path).download_deadline == 600
    assert Settings.from_env({"KIE_DOWNLOAD_DEADLINE": " 1800 "}, cwd=tmp_path).download_deadline == 1800
    assert Settings.from_env({"KIE_DOWNLOAD_DEADLINE": "1"}, cwd=tmp_path).download_deadline == 10
    assert Settings.from_env({"KIE_DOWNLOAD_DEADLINE": "1e9"}, cwd=tmp_path).download_deadline == 86400
    for raw in ("soon", "-5", "inf"):
        with pytest.raises(ConfigError, match="KIE_DOWNLOAD_DEADLINE"):
            Settings.from_env({"KIE_DOWNLOAD_DEADLINE": raw}, cwd=tmp_path)


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("KIE_MAX_CREDITS_PER_CALL", "9" * 5000 + "x"),  # a pasted blob: not echoed whole into every tool error
        ("KIE_MAX_CREDITS_PER_DAY", "-" + "1" * 5000),
        ("KIE_DOWNLOAD", "sometimes " * 1000),
        ("KIE_MAX_CREDITS_PER_CALL", "nan"),
    ],
)
def test_a_bad_setting_is_shown_short_and_as_written(tmp_path, name, raw):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: raw}, cwd=tmp_path)
    said = str(caught.value)
    assert name in said
    assert len(said) < 250, said
    assert "'" not in said.replace("don't", "")  # JSON's double quotes, not Python's repr


def test_approval_is_any_unless_form_is_asked_for(tmp_path):
    assert Settings.from_env({}, cwd=tmp_path).approval == "any"
    assert Settings.from_env({"KIE_APPROVAL": " Form "}, cwd=tmp_path).approval == "form"
    broken = Settings.load({"KIE_WORKSPACE": str(tmp_path), "KIE_APPROVAL": "always"})
    assert broken.config_error and '"any" or "form"' in broken.config_error
    assert broken.max_credits_per_call == 0  # a broken setting spends nothing, whichever way it was meant
    (tmp_path / ".env").write_text("KIE_APPROVALS=form\n")  # a typo would leave quote approvals on, silently
    misspelt = Settings.load({"KIE_WORKSPACE": str(tmp_path)})
    assert misspelt.config_error and "did you mean KIE_APPROVAL?" in misspelt.config_error


@pytest.mark.parametrize("name", ["KIE_MAX_CREDIT_PER_DAY", "KIE_MAX_CREDITS_PER_DAY ", "KIE_APPROVALS"])
def test_a_misspelt_setting_in_the_clients_env_block_is_a_broken_setting(tmp_path, name):
    """The env block is how every client snippet configures kie-mcp: a typo there left the cap at its looser
    default (or quote approvals on) without a word."""
    settings = Settings.load({"KIE_WORKSPACE": str(tmp_path), name: "100", "KIE_SMOKE_MODEL": "x"})
    assert (
        settings.config_error
        and "The environment has" in settings.config_error
        and "did you mean" in (settings.config_error)
    )
    assert settings.max_credits_per_day == 0  # spends nothing until fixed
    assert "KIE_SMOKE_MODEL" not in settings.config_error  # other tools' KIE_* settings are left alone


def test_a_blank_line_later_in_the_dotenv_does_not_undo_a_cap_set_before(tmp_path):
    (tmp_path / ".env").write_text("KIE_MAX_CREDITS_PER_DAY=100\nKIE_MAX_CREDITS_PER_DAY=\n")
    assert Settings.load({"KIE_WORKSPACE": str(tmp_path)}).max_credits_per_day == 100


@pytest.mark.parametrize("url", ["https://api.kie.ai:443x", "http://[::1", "ftp://api.kie.ai", "api.kie.ai"])
def test_an_endpoint_that_is_not_an_http_url_is_a_broken_setting(tmp_path, url):
    """Accepted as it was, it made every KIE call fail as "unexpected error (InvalidURL)"."""
    for name in ("KIE_BASE_URL", "KIE_UPLOAD_BASE_URL"):
        settings = Settings.load({"KIE_WORKSPACE": str(tmp_path), name: url})
        assert settings.config_error and f"{name}=" in settings.config_error and "http(s) URL" in settings.config_error
        assert settings.max_credits_per_call == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8790",
        "http://127.0.0.2",
        "http://localhost:8790",
        "http://sim.localhost",
        "http://[::1]:8790",
        "https://api.kie.ai",
        "https://10.0.0.7:8443",
    ],
)
def test_an_endpoint_over_https_or_on_this_machine_is_taken(tmp_path, url):
    """kie-mcp sim and a local proxy listen on loopback: plain http there never leaves this machine."""
    for name in ("KIE_BASE_URL", "KIE_UPLOAD_BASE_URL"):
        settings = Settings.load({"KIE_WORKSPACE": str(tmp_path), name: url})
        assert settings.config_error is None, settings.config_error


def test_read_dotenv_missing_file(tmp_path):
    assert read_dotenv(tmp_path / "nope") == {}
