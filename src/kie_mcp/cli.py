"""Command line: serve MCP over stdio (optionally against the simulator), run the demo, or serve the simulator."""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import re
import signal
import sys
import traceback
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING, NoReturn

from kie_mcp import __version__
from kie_mcp.config import KNOWN_SETTINGS, TYPO_LIKENESS, Settings
from kie_mcp.config import LOG_LEVELS as LEVEL_NAMES
from kie_mcp.redact import install_log_redaction, key_shaped_parts, redact, register_secret
from kie_mcp.words import path_text, plain, readable_text

if TYPE_CHECKING:
    from mcp.server import MCPServer

    from kie_mcp.cliargs import ArgumentsRefused

README = "https://github.com/kie-mcp/kie-mcp#use-it-from-your-mcp-client"
TERMINAL_NOTE = f"""\
kie-mcp is an MCP server: it waits for an MCP client (Claude Desktop, Claude Code, Cursor, VS Code, Codex, ...)
to talk to it over stdin/stdout, so nothing more will appear here.
  Try it without a client:  kie-mcp demo   (an offline tour: no key, no credits)
  Add it to your client:    see "Use it from your MCP client" in {README}
Press Ctrl-C to stop."""
LOG_LEVELS = {name: getattr(logging, name) for name in LEVEL_NAMES}
# The commands a person runs in a terminal: arguments that name one and do not parse stop with argparse's usage, in
# a terminal or not. Any other command line that does not parse was written in a client's configuration.
OTHER_COMMANDS = ("demo", "sim", "catalog")
ARGUMENTS_WRITTEN_IN = 'the "args" of this MCP server in your client\'s configuration'
INTERRUPTED = 130  # the shell's code for a program ended by Ctrl-C (128 + SIGINT)


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else argv
    if given in ([], ["--sandbox"]):  # as every client starts it: served with no parser built (nor argparse loaded)
        return _serve(sandbox=bool(given))
    from kie_mcp.cliargs import ArgumentsRefused, build_parser, offline_already, options_at

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.sandbox and args.command in ("demo", "sim"):  # it was accepted and silently meant nothing
            parser.error(offline_already(args.command))
    except ArgumentsRefused as refused:
        notes = _option_notes(given, refused.message, options_at(parser, given))
        if _in_terminal() or _names_another_command(given):  # a person: argparse's usage, and exit 2
            _refuse(refused, given, notes)
        return _serve(sandbox=False, refused=_arguments_problem(given, notes))
    if args.command == "demo":
        from kie_mcp.demo import run_demo

        return run_demo(keep=args.keep)
    if args.command == "sim":
        return _serve_simulator(args.port, args.speed, args.balance)
    if args.command == "catalog" and args.catalog_command == "sync":
        return _catalog_sync(args.model, sandbox=args.sandbox)
    if args.command == "catalog":
        return _catalog_check(sandbox=args.sandbox)
    return _serve(sandbox=args.sandbox)


def _names_another_command(given: list[str]) -> bool:
    """Whether the first argument that is no option names a command other than serving (``OTHER_COMMANDS``)."""
    return next((word for word in given if not word.startswith("-")), None) in OTHER_COMMANDS


SETTINGS_NOT_ARGUMENTS = (
    "Settings go in the environment or the workspace's .env file (KIE_API_KEY for the key, KIE_WORKSPACE for the "
    "workspace), not in arguments."
)
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")  # KIE_WORKSPACE=/x, as `-e NAME=value` writes it
# argparse's words for a value given to an option that takes none (``--sandbox=true``), naming the option.
_TAKES_NO_VALUE = re.compile(r"argument (-[A-Za-z-]+)(?:/-[A-Za-z-]+)*: ignored explicit argument")
# argparse's refusals after which kie-mcp says where settings go: an argument it does not know (an option, or a word
# where a command belongs: ``--workspace /x`` is refused as "invalid choice: '/x'"), or a value for an option that
# takes none.
_NOT_ARGUMENTS = ("unrecognized arguments", "ignored explicit argument", "invalid choice")


def _option_notes(given: list[str], reason: str, taken: list[frozenset[str]]) -> list[str]:
    """A sentence for each option in ``given`` kie-mcp does not take where it stands (none of ``taken``, the options
    of the parser reading each word, nor the start of one), named as ``_shown_arguments`` names an option (letters
    and dashes only), with the setting it stands for (``_setting_for``): "--workspace is not an option: set
    KIE_WORKSPACE instead." (one with no setting, only where ``reason``, argparse's words, does not name it:
    ``--port 80`` is refused as "invalid choice: '80'", ``--workspace /x`` as "invalid choice: '/x'"); and for an
    option argparse refused a value ("argument --sandbox: ignored explicit argument 'true'"): "--sandbox takes no
    value: write --sandbox alone."."""
    notes: list[str] = []
    flag = _TAKES_NO_VALUE.search(reason)
    if flag is not None:
        notes.append(f"{flag[1]} takes no value: write {flag[1]} alone.")
    options = given[: given.index("--")] if "--" in given else given  # after "--", every word is no option
    stray = [_option_and_value(word)[0] for word, known in zip(options, taken, strict=False) if word.startswith("-")
             and not _takes(known, _option_and_value(word)[0])]  # fmt: skip
    for name in dict.fromkeys(stray):
        setting = _setting_for(name)
        if _SHOWN_WORD.fullmatch(name.lstrip("-")) is None or (setting is None and name in reason):
            continue
        notes.append(f"{name} is not an option" + (f": set {setting} instead." if setting else "."))
    return notes


def _takes(options: frozenset[str], name: str) -> bool:
    """Whether ``name`` is one of ``options``, or the start of one (argparse reads ``--sand`` as ``--sandbox``)."""
    return name in options or (name.startswith("--") and len(name) > 2 and any(o.startswith(name) for o in options))


def _setting_for(option: str) -> str | None:
    """The setting an option kie-mcp does not take stands for: KIE_API_KEY for one named like a secret (``--api-key``,
    ``--token``, ``-k``), else the setting of its name (``--workspace``: KIE_WORKSPACE, ``--log-level``:
    KIE_LOG_LEVEL) or of a name as like it as a typo is (``--workspace-dir``); None for any other (``--port``)."""
    import difflib

    if _SECRET_OPTION.search(option):
        return "KIE_API_KEY"
    word = option.lstrip("-").upper().replace("-", "_")
    named = word if word.startswith("KIE_") else f"KIE_{word}"
    close = difflib.get_close_matches(named, KNOWN_SETTINGS, n=1, cutoff=TYPO_LIKENESS)
    return close[0] if close else None


def _refuse(refused: ArgumentsRefused, given: list[str], notes: list[str]) -> NoReturn:
    """argparse's usage and its refusal on stderr, and exit 2 (a person at a terminal, or a command other than
    serving), never with a secret in it: argparse repeats what it refuses (``unrecognized arguments: --api-key=<key>``,
    ``invalid choice: '<key>'``, ``unrecognized arguments: -k hunter2.x``), so where its words repeat a secret
    (``_secrets_registered``) the arguments are named as ``_shown_arguments`` shows them instead. Otherwise its own
    words stand, which say what is wrong with a typo (``--port 80a``: "invalid _port value: '80a'"), with every run
    that could be some service's credential (``_may_be_credentials``: Groq's ``gsk_...``, Replicate's ``r8_...``,
    ``xai-...``, and so a long name such as ``Marketing_Campaign_2025`` too) read ``<not shown>``: the refusal
    exits, so hiding a name costs only its echo, where echoing a token leaks it into a terminal's scrollback or a CI
    log. What is printed goes through ``redact``, which also knows a credential by its shape (``Bearer <token>``,
    ``sk-...``). Arguments it does not know, a value for an option that takes none, or a secret, get where settings
    go, after ``notes`` (``_option_notes``: each option it does not take, and the setting it stands for)."""
    secrets = _secrets_registered(given)
    message = refused.message
    if any(_repeats(message, part) for part in secrets):
        message = f"arguments it cannot use: {_shown_arguments(given)}"
    hidden = [run for run in _may_be_credentials(given) if run in message]
    for run in hidden:  # longest first: a run inside a longer one is hidden with it
        message = message.replace(run, NOT_SHOWN)
    refusal = refused.message
    if (
        notes
        or secrets
        or hidden
        or any(words in refusal for words in _NOT_ARGUMENTS)
        or any(map(_ASSIGNMENT.match, given))
    ):
        message = " ".join([f"{message.rstrip('.')}.", *notes, SETTINGS_NOT_ARGUMENTS])
    import argparse  # a parser refused the arguments: it is loaded

    argparse.ArgumentParser.error(refused.parser, redact(message))


# A run of 20 or more letters, digits, "_" and "-", letters and digits both: what many services' tokens look like
# (Groq's gsk_..., Replicate's r8_..., xAI's xai-..., and prefixes no list here knows). Only a refusal that exits
# hides these; never registered as secrets, so a server that goes on serving keeps such a name readable.
_MAY_BE_CREDENTIAL = re.compile(r"(?=[A-Za-z0-9_-]*[0-9])(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{20,}")
_WORD_RUN = re.compile(r"[A-Za-z0-9_-]+")


def _may_be_credentials(given: list[str]) -> list[str]:
    """Every run in ``given``'s words that could be a credential (``_MAY_BE_CREDENTIAL``), whole words or inside one
    (``--header "Authorization: Bearer gsk_..."``), each once, the longest first."""
    runs = {run for word in given for run in _WORD_RUN.findall(word) if _MAY_BE_CREDENTIAL.fullmatch(run)}
    return sorted(runs, key=len, reverse=True)


def _secrets_registered(given: list[str]) -> list[str]:
    """The parts of ``given`` no refusal may repeat, each registered as a secret (redacted from then on): every value
    of an option or a setting named like a secret (``--api-key K``, ``--token=K``, ``KIE_API_KEY=K`` as ``-e
    KIE_API_KEY=K`` writes it), and every run shaped like KIE's key, a whole argument or inside one
    (``redact.key_shaped_parts``). Only these: a server that goes on serving redacts them from every answer after."""
    secrets = [part for part in dict.fromkeys([*_named_secrets(given), *key_shaped_parts(given)]) if part.strip()]
    for secret in secrets:
        register_secret(secret)
    return secrets


def _named_secrets(given: list[str]) -> list[str]:
    """Every value of an option or a setting named like a secret in ``given`` (``_SECRET_OPTION``), also one written on
    to a short one (``-kK``: ``_option_and_value``)."""
    found: list[str] = []
    secret_next = False
    for word in given:
        name, value = _option_and_value(word)
        if secret_next:
            found.append(word)
        elif value is not None and _SECRET_OPTION.search(name):
            found.append(value)
        secret_next = not secret_next and word.startswith("-") and value is None and bool(_SECRET_OPTION.search(word))
    return found


def _repeats(message: str, secret: str) -> bool:
    """Whether ``message`` holds ``secret``, as written or as argparse quotes it (``repr``: a backslash doubled)."""
    return any(form in message for form in (secret, secret.strip(), repr(secret)[1:-1]) if form)


def _arguments_problem(given: list[str], notes: list[str]) -> str:
    """What every tool answers when a client started kie-mcp with arguments it does not take (``--sandbx``, ``mcp``,
    ``--workspace /x``), in one line: the arguments as far as they can be shown (``_shown_arguments``), each option
    it does not take with the setting it stands for (``notes``: ``_option_notes``), and what it does take. Not
    argparse's words, which repeat the values. The server goes on serving, the secrets in the arguments registered
    first (``_secrets_registered``)."""
    _secrets_registered(given)
    shown = plain(_shown_arguments(given), limit=160)
    named = "".join(f"{note} " for note in notes)
    return (
        f"kie-mcp was started with arguments it does not take, {shown}. {named}"
        "To serve it takes none, or --sandbox to serve against the built-in KIE simulator (no key, no credits); "
        "serve or stdio may come first. Settings go in the env block (KIE_WORKSPACE for the workspace, KIE_API_KEY "
        "for the key), not in arguments."
    )


NOT_SHOWN = "<not shown>"
_SHOWN_WORD = re.compile(r"[A-Za-z][A-Za-z-]{0,23}")  # letters and dashes: an option's name, a command, "true"
# Named like a secret: and ``-k``, the short form of --key (``demo -k short.pass``).
_SECRET_OPTION = re.compile(r"(?i)key|token|secret|pass|auth|cred|bearer|^-k$")
# The short options named like a secret: argparse reads a short option's value written on to it (``-kK``), so a word
# starting with one is that option and its value, whatever follows (``-kHunterPassword``: -k, "HunterPassword").
_SECRET_SHORT_OPTIONS = ("-k",)


def _option_and_value(word: str) -> tuple[str, str | None]:
    """An argument as an option's (or a setting's) name and the value written in it, None when it holds none:
    ``--token=K`` is ("--token", "K"), ``--sandbox`` ("--sandbox", None), ``KIE_API_KEY=K`` ("KIE_API_KEY", "K"); a
    short option named like a secret with its value written on to it, ``-kK`` or ``-k=K``, is ("-k", "K"), never an
    option named ``-kK`` (whose name a refusal would show, and the secret with it)."""
    short = word[:2]
    if short in _SECRET_SHORT_OPTIONS and len(word) > 2 and not _one_dash_short(word):
        return short, word[3:] if word[2] == "=" else word[2:]
    name, assigned, value = word.partition("=")
    return name, value if assigned else None


@functools.cache
def _long_options_of_secret_letters() -> tuple[str, ...]:
    """kie-mcp's own long options that start with a secret short option's letter (``--keep``: ``-keep`` is it one
    dash short), read from its parsers, so a new option is never taken for ``-k`` and a secret."""
    from kie_mcp.cliargs import build_parser, long_options

    starts = tuple("-" + short for short in _SECRET_SHORT_OPTIONS)
    return tuple(sorted(option for option in long_options(build_parser()) if option.startswith(starts)))


def _one_dash_short(word: str) -> bool:
    """Whether ``word`` is one of kie-mcp's own long options written with one dash (``demo -keep``), or the start of
    one: a typo to name (argparse's "unrecognized arguments: -keep"), never ``-k`` and a secret."""
    name = "-" + word.partition("=")[0]
    return len(name) > 3 and any(option.startswith(name) for option in _long_options_of_secret_letters())


def _shown_arguments(given: list[str]) -> str:
    """``given`` as an answer and the log may repeat it: option names and plain words (``--sandbx``, ``mcp``,
    ``--sandbox=true``); every other value, and any value of an option named like a secret (``--api-key``,
    ``--token=...``), as ``<not shown>``. A key of any shape given as an argument is never repeated."""
    shown: list[str] = []

    def part(text: str, shows: bool) -> str:
        return text if shows else NOT_SHOWN

    secret_next = False
    for word in given:
        if secret_next:
            shown.append(part(word, False))
            secret_next = False
        elif word.startswith("-"):
            name, value = _option_and_value(word)
            secret = _SECRET_OPTION.search(name) is not None
            named = part(name, _SHOWN_WORD.fullmatch(name.lstrip("-")) is not None)
            if value is not None:  # "=" between them, or nothing (-kK)
                joined = word[len(name) : len(word) - len(value)]
                named += joined + part(value, not secret and _SHOWN_WORD.fullmatch(value) is not None)
            else:
                secret_next = secret
            shown.append(named)
        else:
            shown.append(part(word, _SHOWN_WORD.fullmatch(word) is not None))
    return " ".join(shown)


def _serve(*, sandbox: bool, refused: str | None = None) -> int:
    """Serve MCP over stdio until the client closes stdin.

    Ctrl-C typed in its terminal stops it at once with one line (exit 130); a SIGINT when a host started it (a
    Ctrl-C in the host's terminal reaches its whole process group) stops it as SIGTERM does, once the creates on
    their way to KIE are recorded. Typed in a terminal, it first says what it is and how to try it. A broken
    setting does not stop it, nor arguments it does not take (``refused``, from a client's configuration): it
    serves, and every tool answers with the problem and the fix (the host would otherwise see only "connection
    closed")."""
    closed = _closed_wire()
    if closed is not None:  # nothing could be served: the SDK failed with a traceback, or read a descriptor reused
        _say(f"kie-mcp: {closed}: kie-mcp must be started by an MCP client over pipes.")
        return 1
    signal.signal(signal.SIGINT, _stop_now)
    typed = _in_terminal()  # asked now: serving points fd 0 elsewhere (``stdio.claimed_stdin``)
    if typed:
        print(TERMINAL_NOTE, file=sys.stderr, flush=True)
    settings = _load_settings(sandbox)
    if refused is not None:
        settings = settings.broken_by(refused, ARGUMENTS_WRITTEN_IN)
    if settings.api_key is not None:  # the real key, also in the sandbox (it may be echoed): redacted from the start
        register_secret(settings.api_key.get_secret_value())
    if sandbox:
        settings = settings.for_sandbox()
    _configure_logging(settings.log_level)
    from kie_mcp.server import create_server

    log = logging.getLogger("kie_mcp")
    if settings.config_error is not None:
        log.error(
            "configuration error: %s The server runs anyway; every tool answers with this until it is fixed.",
            readable_text(settings.config_error),
        )
    where = f"workspace {path_text(settings.context_folder)} ({readable_text(settings.workspace_reason)})"
    if settings.sandbox:
        where = f"sandbox area {path_text(settings.workspace)} of the {where}"
    made = "it did not exist" in settings.workspace_reason  # a typo in KIE_WORKSPACE: said louder than a start
    log.log(
        logging.WARNING if made else logging.INFO,
        "kie-mcp %s starting (%s); %s",
        __version__,
        "sandbox" if settings.sandbox else settings.base_url,
        where,
    )
    for note in settings.config_notes:  # which of two values of a cap applies, a KIE_ALLOWED_DIRS folder not there
        log.warning("%s", note)
    from kie_mcp.toolcache import cache_setting_note

    cache_note = cache_setting_note()  # a KIE_CACHE_DIR that cannot be used: the default folder serves instead
    if cache_note is not None:
        log.warning("%s", cache_note)
    import anyio

    try:
        anyio.run(_serve_stdio, create_server(settings), typed)
    except Exception as err:  # the wire itself failed: one line, never a traceback in the host's log
        code = _wire_lost(err)
        if code is None:
            raise
        return code
    finally:
        signal.signal(signal.SIGINT, _stop_now)  # the loop has given SIGINT back to Python's default
    return 0


def _load_settings(sandbox: bool = False) -> Settings:
    """The settings (``sandbox``: for ``--sandbox``, where a key that could not be sent stops nothing); an error
    reading them that ``Settings.load`` did not foresee is a broken setting too: the server still starts and says so
    (a traceback here is only "Connection closed" in the host)."""
    try:
        return Settings.load(sandbox=sandbox)
    except Exception as err:
        return Settings.unreadable(err)


def _settings_or_problem(sandbox: bool = False) -> Settings | None:
    """The settings for a one-off command, or None after one line on stderr naming every broken one."""
    settings = _load_settings(sandbox)
    if settings.config_error is not None:
        print(f"kie-mcp: configuration error: {settings.config_error}", file=sys.stderr)
        return None
    return settings


def _closed_wire() -> str | None:
    """Which of stdin and stdout is closed, in words ("stdout is closed"), or None. Started with fd 1 closed, Python
    has no sys.stdout, and the SDK failed on it with a traceback; with fd 0 closed, the first file opened took fd 0
    and was read as the wire ("writing to the client failed ([Errno 22] Invalid argument)")."""
    closed = [name for name, stream in (("stdin", sys.stdin), ("stdout", sys.stdout)) if _closed(stream)]
    if not closed:
        return None
    return f"{' and '.join(closed)} {'is' if len(closed) == 1 else 'are'} closed"


def _closed(stream: object) -> bool:
    """Whether a standard stream is closed: none at all, or a descriptor that is not open. One not backed by a
    descriptor (an embedding host's) is served as it is."""
    if stream is None:
        return True
    try:
        fd = stream.fileno()  # type: ignore[attr-defined]
    except (AttributeError, io.UnsupportedOperation):
        return False
    except (OSError, ValueError):  # closed
        return True
    try:
        os.fstat(fd)
    except OSError:
        return True
    return False


def _wire_lost(err: BaseException) -> int | None:
    """When reading from or writing to the client failed (every error the session ended with is an OSError of its
    stdin or stdout): say so in one line, naming which, and give the exit code, 0 when the client had closed the
    connection (it went away mid-call), 1 otherwise (a full disk behind stdout, a stdin that cannot be read); None
    for any other error."""
    leaves = list(_leaves(err))
    if not leaves or not all(isinstance(leaf, OSError) for leaf in leaves):
        return None
    closed = all(isinstance(leaf, BrokenPipeError | ConnectionResetError) for leaf in leaves)
    with contextlib.suppress(OSError, ValueError):  # nothing more can reach the client: never try again at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    what = "the client closed the connection" if closed else f"{_failed_side(leaves[0])} failed ({leaves[0]})"
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"kie-mcp: {what}; stopped.\n")
        sys.stderr.flush()
    return 0 if closed else 1


def _failed_side(error: BaseException) -> str:
    """Which side of the wire ``error`` came from, by where it was raised: the SDK's reader of stdin (``stdin_reader``,
    reading lines through ``readline``) or its writer to stdout."""
    raised_in = {frame.f_code.co_name for frame, _ in traceback.walk_tb(error.__traceback__)}
    if raised_in & {"stdin_reader", "readline"}:
        return "reading from the client"
    if "stdout_writer" in raised_in:
        return "writing to the client"
    return "the connection to the client"


def _leaves(err: BaseException) -> Iterator[BaseException]:
    """The errors an exception group holds, however nested (the error itself when it is none)."""
    if isinstance(err, BaseExceptionGroup):
        for inner in err.exceptions:
            yield from _leaves(inner)
    else:
        yield err


async def _serve_stdio(server: MCPServer, typed: bool = False) -> None:
    """The stdio session, with Ctrl-C also caught inside the event loop: that wakes the loop at once, even while
    a thread is blocked reading stdin (which would otherwise hold the exit until Enter). ``typed``: started in a
    terminal (see ``_stop_on_signals``)."""
    import anyio

    from kie_mcp import stdio

    async with anyio.create_task_group() as group:
        group.start_soon(_stop_on_signals, typed)
        await stdio.serve(server)  # the SDK's stdio transport, reading lines it would drop mended (stdio.py)
        group.cancel_scope.cancel()


def _stop_signals() -> tuple[int, ...]:
    """Ctrl-C, a host stopping its server (SIGTERM), the terminal it ran in closed (SIGHUP, where there is one and
    it is not ignored, as ``nohup`` ignores it)."""
    hangup = getattr(signal, "SIGHUP", None)
    kept = hangup is not None and signal.getsignal(hangup) is not signal.SIG_IGN
    return (signal.SIGINT, signal.SIGTERM, *((hangup,) if kept and hangup is not None else ()))


async def _stop_on_signals(typed: bool) -> None:
    """Ctrl-C typed in the terminal it runs in (``typed``) stops at once. The first SIGTERM or SIGHUP stops once
    the creates on their way to KIE have landed (``_stop_once_creates_land``); a second one, or Ctrl-C meanwhile,
    at once. Started by a host, the first SIGINT is taken as SIGTERM: a Ctrl-C in the host's terminal (an Inspector,
    ``claude -p``, a script run in cooked mode) reaches its whole process group, and stopping at once would leave a
    create on its way to KIE without its task."""
    import anyio

    from kie_mcp.stopping import CREATES

    try:
        with anyio.open_signal_receiver(*_stop_signals()) as received:
            async with anyio.create_task_group() as group:
                stopping = False
                async for signum in received:
                    if (signum == signal.SIGINT and typed) or stopping:
                        _stop_now(signum)
                    stopping = True
                    CREATES.close()  # now, before any other task runs: no create starts after the signal
                    group.start_soon(_stop_once_creates_land, signum)
    except NotImplementedError:  # no signal support in this event loop (Windows): the handler of _serve stops it
        await anyio.sleep_forever()


async def _stop_once_creates_land(signum: int) -> None:
    """A host stopping its server (SIGTERM, or a first SIGINT when a host started it), or a closed terminal (SIGHUP):
    a join under way ends now; a create on its way to KIE may already be created and charged there, and its answer
    (the task, recorded in the journal) is waited for, ``LANDING_SECONDS`` at most, so the next start follows the
    task and saves its result. Then exit."""
    from kie_mcp.stopping import CREATES, LANDING_SECONDS

    _end_joins()
    how = signal.Signals(signum).name
    waiting = CREATES.sending_now
    if waiting:
        creates = "a create" if waiting == 1 else f"{waiting} creates"
        _say(
            f"kie-mcp: stopping ({how}): waiting up to {LANDING_SECONDS:g} s for {creates} on its way to KIE, so "
            "that the task it made is recorded."
        )
    if not await CREATES.landed(LANDING_SECONDS):
        _say(
            f"kie-mcp: {CREATES.sending_now} create(s) got no answer from KIE in {LANDING_SECONDS:g} s; the next "
            "start counts them as unknown (they may have been charged: check https://kie.ai/logs)."
        )
    _stop_now(signum)


def _stop_now(signum: int = signal.SIGINT, frame: FrameType | None = None) -> NoReturn:
    """Exit at once with one line, never a traceback (Ctrl-C typed in its terminal, a second signal, or a first
    SIGTERM, SIGHUP or host's SIGINT once the creates in flight landed). The journal is safe: every write is its own
    transaction, and what a stop leaves half done (a create being sent, a download) is settled at the next start. A
    join under way is ended first, the credits held for input files uploading now are given back (their uploads
    end here, nothing is sent), and what a full disk kept out of the journal is written if it takes it now
    (``_write_owed``)."""
    _end_joins()
    _release_holds()
    _write_owed()
    how = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    _say(f"kie-mcp: stopped ({how}).")
    os._exit(INTERRUPTED if signum == signal.SIGINT else 128 + signum)


def _end_joins() -> None:
    """Kill the ffmpeg of every join under way and remove what it wrote: a process of its own, it would outlive
    this one, writing on."""
    stitching = sys.modules.get("kie_mcp.media.stitch")  # loaded only once a join was asked for
    if stitching is not None:
        with contextlib.suppress(Exception):  # stopping must not fail: at worst the next start sweeps the file
            stitching.stop_all()


def _release_holds() -> None:
    """Give back the reservations this process holds while input files upload (``ledger.release_held_here``: half a
    second at most), and the requests it holds for auto approvals (``quotes.let_go_here``: as long): left behind, they
    would count against today's cap, or have the same request asked on every server, until their lease lapsed, minutes
    later, as the next server (a container's, a machine's that cannot see this process) cannot tell this one is gone."""
    for name, give_back in (("ledger", "release_held_here"), ("quotes", "let_go_here")):
        module = sys.modules.get(f"kie_mcp.spend.{name}")  # loaded only once a request was priced
        if module is not None:
            with contextlib.suppress(Exception):  # stopping must not fail: at worst the hold lapses
                getattr(module, give_back)()


def _write_owed() -> None:
    """What a full disk kept out of the journal (a create's task and outcome, an approval's release), written now if
    the journal takes it (``runtime.write_owed_at_exit``: a few seconds at most): the exit skips the runtime's own
    shutdown, which writes it; left unwritten, the create would turn into one of unknown outcome at the next start."""
    runtime = sys.modules.get("kie_mcp.runtime")  # loaded only once the server started
    if runtime is not None:
        with contextlib.suppress(Exception):  # stopping must not fail: at worst the next start finds it as before
            runtime.write_owed_at_exit()


def _say(line: str) -> None:
    """One line on stderr, on a line of its own in a terminal (after its ^C); a stderr that is gone says nothing."""
    lead = "\n" if _is_terminal(sys.stderr) else ""
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"{lead}{line}\n")
        sys.stderr.flush()


def _in_terminal() -> bool:
    """Whether a person typed ``kie-mcp`` in a terminal (stdin is a TTY) rather than a client starting it."""
    return _is_terminal(sys.stdin)


def _is_terminal(stream: object) -> bool:
    try:
        return bool(stream is not None and stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError, OSError):
        return False


def _needs_a_key(action: str, settings: Settings) -> str:
    """What ``catalog check`` or ``catalog sync`` (``action``) says without a key: where to set it, and that
    ``--sandbox`` needs none."""
    return (
        f"kie-mcp catalog {action} needs KIE_API_KEY (KIE's model list is behind the key). Export it in this shell "
        f"(export KIE_API_KEY=<your key>) or write it in the workspace's .env ({settings.workspace / '.env'}), then "
        f"run this again; or try it against the built-in simulator, with no key: kie-mcp catalog {action} --sandbox."
    )


def _catalog_check(*, sandbox: bool = False, transport: object | None = None) -> int:
    """Print the drift between the catalogue, the workspace's live cache and KIE as a table. With ``sandbox``, KIE
    is the built-in simulator and the cache is the sandbox area's (as ``catalog sync --sandbox``): no key needed.

    0: none, 1: drift, 2: could not check KIE (the drift against the cache, when there is one, is still shown).
    """
    import anyio

    from kie_mcp.catalog import load_catalog
    from kie_mcp.catalog.drift import Unreachable, compare, compare_cached, fetch_live, render
    from kie_mcp.catalog.live import LiveCatalog, cache_path
    from kie_mcp.kie import KieError

    settings = _settings_or_problem(sandbox)
    if settings is None:
        return 2
    if sandbox:
        from kie_mcp.sandbox import SandboxTransport, SimConfig, Simulator

        settings = settings.for_sandbox()
        transport = transport or SandboxTransport(Simulator(SimConfig(speed=30.0)))
    if not settings.has_key:
        print(_needs_a_key("check", settings), file=sys.stderr)
        return 2
    assert settings.api_key is not None
    path = cache_path(settings.workspace)
    cache = LiveCatalog.load(path) if path.is_file() else None
    notes: list[str] = []
    try:
        key = settings.api_key.get_secret_value()
        live, prices = anyio.run(fetch_live, settings.base_url, key, transport, notes, settings.key_origin)
    except Exception as err:  # never a traceback: KIE's trouble, or anything else, is one line and exit 2
        why = redact(
            str(err).rstrip(". ") if isinstance(err, Unreachable | KieError) else f"{type(err).__name__}: {err}"
        )
        if cache is not None and cache.has_list:
            when = (cache.fetched_at or "")[:10]
            print(f"kie-mcp catalog check: {why}. Showing the drift against the cache of {when}.", file=sys.stderr)
            print(render(compare_cached(load_catalog(), cache), cached_on=when or "an unknown date"))
        else:
            print(f"kie-mcp catalog check: {why}. Nothing was compared.", file=sys.stderr)
        return 2
    for note in notes:
        print(f"kie-mcp catalog check: {note}", file=sys.stderr)
    drifts = compare(load_catalog(), live, prices, cache=cache)
    print(render(drifts))
    return 1 if drifts else 0


def _catalog_sync(models: list[str], *, sandbox: bool = False, transport: object | None = None) -> int:
    """Sync the workspace's live catalogue cache with KIE and print a short summary.

    0: synced (some lookups may have failed; they are listed). 2: KIE's model list could not be read (offline, no
    key, refused): one line, nothing changed in the cache but the error it records.
    """
    import anyio

    from kie_mcp.catalog import load_catalog
    from kie_mcp.catalog.live import LiveCatalog, cache_path, models_in_use_from_journal, sync_summary
    from kie_mcp.kie import KieClient
    from kie_mcp.kie.errors import wrong_key_step

    settings = _settings_or_problem(sandbox)
    if settings is None:
        return 2
    if sandbox:
        from kie_mcp.sandbox import SandboxTransport, SimConfig, Simulator

        settings = settings.for_sandbox()
        transport = transport or SandboxTransport(Simulator(SimConfig(speed=30.0)))
    if not settings.has_key:
        print(_needs_a_key("sync", settings), file=sys.stderr)
        return 2
    assert settings.api_key is not None
    key = settings.api_key.get_secret_value()
    register_secret(key)
    path = cache_path(settings.workspace)
    previous = LiveCatalog.load(path)
    in_use = list(dict.fromkeys([*models, *models_in_use_from_journal(settings.workspace), *previous.models_in_use]))

    async def run() -> LiveCatalog:
        async with KieClient(
            api_key=key,
            base_url=settings.base_url,
            upload_base_url=settings.upload_base_url,
            timeout=settings.http_timeout,
            transport=transport,  # type: ignore[arg-type]
            share_pacing=transport is None,  # the catalogue's budget per key, with the servers running on it
            key_origin=settings.key_origin,
        ) as kie:
            return await previous.sync(kie, models_in_use=in_use)

    try:
        new = anyio.run(run)
    except Exception as err:  # never a traceback: sync itself records KIE trouble; this is anything else
        print(
            f"kie-mcp catalog sync: failed ({redact(f'{type(err).__name__}: {err}')}); the cache was left as it was.",
            file=sys.stderr,
        )
        return 2
    failed = next((e for e in new.errors if e.endpoint == "/api/v1/models"), None)
    try:
        new = new.save_keeping_refusals(path)  # a create a running server saw refused meanwhile stays refused
    except OSError as err:
        print(f"kie-mcp catalog sync: cannot write {path} ({err}).", file=sys.stderr)
        return 2
    if failed is not None:
        refused = f" {wrong_key_step(settings.key_origin)}" if failed.code == 401 else ""  # where the key came from
        print(
            f"kie-mcp catalog sync: cannot read KIE's model list at {settings.base_url} ({failed.message}); "
            f"the cache keeps what it had.{refused}",
            file=sys.stderr,
        )
        return 2
    print(f"KIE live catalogue synced at {new.attempted_at} into {path}")
    for line in sync_summary(new, load_catalog()):
        print(f"  {line}")
    for model_id in dict.fromkeys(models):  # asked for by name, and nothing fetched: say why, never skip silently
        if model_id not in (new.models or {}):
            known = load_catalog().get(model_id)
            why = (
                f"served by KIE's {known.family} API, which publishes no schema or success rate"
                if known is not None and known.family != "market"
                else "not in KIE's model list"
            )
            print(f"  --model {model_id}: skipped ({why})")
    return 0


def _configure_logging(level: str) -> None:
    """Everything goes to stderr: stdout belongs to the MCP protocol. No secret reaches it, at any level:
    every record is redacted when it is created (kie_mcp.redact), and again by the handler's filter."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    install_log_redaction(extra=[h for h in (handler, logging.lastResort) if h is not None])
    root = logging.getLogger("kie_mcp")
    root.handlers[:] = [handler]
    root.setLevel(LOG_LEVELS.get(level, logging.INFO))  # a level name only, never another attribute of logging
    root.propagate = False
    # Libraries speak up only when asked for DEBUG: their INFO lines (each HTTP request) are noise.
    quiet = logging.DEBUG if level == "DEBUG" else logging.WARNING
    for name in ("httpx2", "httpcore2", "httpx", "httpcore", "mcp", "uvicorn"):
        logging.getLogger(name).setLevel(quiet)


def _serve_simulator(port: int, speed: float, balance: float) -> int:
    import socket

    import uvicorn

    from kie_mcp.catalog.pricing import credits_text
    from kie_mcp.sandbox import SANDBOX_API_KEY, SimConfig, Simulator, create_app

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Bound and listening before anything is printed: the address shown is the one served (port 0: the port
    # picked), and a client that connects the moment it reads it waits in the backlog until the app starts,
    # never refused.
    try:
        if os.name != "nt":  # Windows' SO_REUSEADDR would let a second simulator take a port in use
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(128)
    except OSError as err:
        listener.close()
        print(f"kie-mcp sim: cannot listen on 127.0.0.1:{port} ({err.strerror or err}); pick another --port.",
              file=sys.stderr)  # fmt: skip
        return 2
    base = f"http://127.0.0.1:{listener.getsockname()[1]}"
    print(
        f"KIE simulator on {base} (speed x{speed:g}, {credits_text(balance)}). Point a KIE client at it with:\n"
        f"  KIE_BASE_URL={base} KIE_UPLOAD_BASE_URL={base} KIE_API_KEY={SANDBOX_API_KEY}\n"
        f"Test controls: {base}/__sim/state, /__sim/faults, /__sim/clock/advance, ... Ctrl+C stops it.",
        file=sys.stderr,
        flush=True,
    )
    sim = Simulator(SimConfig(speed=speed, starting_balance=balance))
    uvicorn.Server(uvicorn.Config(create_app(sim), log_level="warning")).run(sockets=[listener])
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
