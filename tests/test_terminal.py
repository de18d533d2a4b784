"""``kie-mcp`` typed in a terminal: it says what it is and how to try it, and Ctrl-C stops it at once.

The console script runs on a real pseudo-terminal that is its controlling terminal, so Ctrl-C is the terminal's
own: the byte ^C written to the terminal becomes SIGINT for the server. Before, the server looked hung, ignored
Ctrl-C until Enter (a thread blocked reading stdin) and then printed tracebacks.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.stdio,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX pseudo-terminals and signals"),
]

PING = b'{"jsonrpc": "2.0", "id": 7, "method": "ping"}\n'
STOPPED = "kie-mcp: stopped (Ctrl-C)."
WAIT = 30.0  # a generous bound for a slow machine; the promise is "at once", never timed here


def console_script() -> str:
    script = shutil.which("kie-mcp", path=str(Path(sys.executable).parent))
    assert script, "the kie-mcp console script is not installed beside this Python"
    return script


def environment(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "workspace").mkdir(exist_ok=True)  # a folder that is not there is made, and said (a WARNING line)
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "KIE_WORKSPACE": str(tmp_path / "workspace"),
        "KIE_LOG_LEVEL": "WARNING",
        "KIE_CATALOG_SYNC": "off",
    }


def read_until(fd: int, wanted: bytes, seen: bytearray) -> bytes:
    """Read ``fd`` into ``seen`` until ``wanted`` appears (or WAIT passes); return what was read."""
    deadline = time.monotonic() + WAIT
    while wanted not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the terminal closed
                break
            if not chunk:
                break
            seen += chunk
    return bytes(seen)


def wait_and_read_rest(process: subprocess.Popen[bytes], fd: int, seen: bytearray) -> int | None:
    """The exit code once ``process`` ends within WAIT (None if it does not), with its stderr read to the end."""
    try:
        code = process.wait(timeout=WAIT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        code = None
    read_until(fd, b"\0never\0", seen)  # drains what is left (EOF ends it)
    return code


def test_in_a_terminal_it_says_it_waits_for_a_client_and_ctrl_c_stops_it_at_once(tmp_path):
    import fcntl
    import pty
    import termios

    controller, terminal = pty.openpty()
    attributes = termios.tcgetattr(terminal)
    attributes[3] &= ~termios.ECHO  # what the test types is not echoed back; ^C still becomes SIGINT (ISIG)
    termios.tcsetattr(terminal, termios.TCSANOW, attributes)

    def take_the_terminal() -> None:  # the server's own session, with the pseudo-terminal as its terminal
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    process = subprocess.Popen(
        [console_script(), "--sandbox"],
        stdin=terminal,
        stdout=terminal,
        stderr=subprocess.PIPE,
        env=environment(tmp_path),
        start_new_session=True,
        preexec_fn=take_the_terminal,  # noqa: PLW1509 - only setsid and TIOCSCTTY, nothing that could deadlock
    )
    os.close(terminal)
    assert process.stderr is not None
    errors, screen = bytearray(), bytearray()
    try:
        note = read_until(process.stderr.fileno(), b"Press Ctrl-C to stop.", errors).decode()
        os.write(controller, PING)  # proves it now serves, waiting on the terminal for the next line
        answer = read_until(controller, b'"id":7', screen)
        before_ctrl_c = len(errors)
        os.write(controller, b"\x03")  # Ctrl-C, typed
        code = wait_and_read_rest(process, process.stderr.fileno(), errors)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(controller)
        process.stderr.close()
    assert "kie-mcp is an MCP server" in note and "waits for an MCP client" in note
    assert "kie-mcp demo" in note and "Use it from your MCP client" in note
    assert b'"id":7' in answer
    assert code == 130, errors.decode()
    after = errors[before_ctrl_c:].decode()
    assert [line for line in after.splitlines() if line.strip()] == [STOPPED]
    assert "Traceback" not in errors.decode()


def signalled(tmp_path: Path, *signums: int, ignore_hangup: bool = False) -> tuple[bytes, int | None, str]:
    """Start the server as a client does, answer a ping, then send ``signums`` one after another (each once the
    previous one had a moment): the ping's answer, the exit code (None: still running after WAIT) and stderr."""

    def ignoring() -> None:  # as nohup starts it
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    process = subprocess.Popen(
        [console_script(), "--sandbox"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment(tmp_path),
        preexec_fn=ignoring if ignore_hangup else None,  # noqa: PLW1509 - a test's child, no threads involved
    )
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    seen, errors = bytearray(), bytearray()
    try:
        process.stdin.write(PING)
        process.stdin.flush()
        answer = read_until(process.stdout.fileno(), b'"id":7', seen)
        for n, signum in enumerate(signums):
            if n:
                time.sleep(1.0)  # long enough for a handled signal to have ended it
                if process.poll() is not None:
                    break
            process.send_signal(signum)
        code = wait_and_read_rest(process, process.stderr.fileno(), errors)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdin, process.stdout, process.stderr):
            stream.close()
    return answer, code, errors.decode()


def test_started_by_a_client_it_says_nothing_and_sigint_stops_it_with_one_line(tmp_path):
    """No terminal: no note on stderr (a client's log shows only what matters), and SIGINT still ends it at once."""
    answer, code, errors = signalled(tmp_path, signal.SIGINT)
    assert b'"id":7' in answer
    assert code == 130, errors
    assert [line for line in errors.splitlines() if line.strip()] == [STOPPED]


def test_a_host_stopping_the_server_with_sigterm_gets_one_line(tmp_path):
    """A host stops its server with SIGTERM: the server died without a word (and a join's ffmpeg, a process of its
    own, wrote on). It now ends what it runs and says one line, exiting 128 + 15 as a shell reports it."""
    _, code, errors = signalled(tmp_path, signal.SIGTERM)
    assert code == 128 + signal.SIGTERM, errors
    assert [line for line in errors.splitlines() if line.strip()] == ["kie-mcp: stopped (SIGTERM)."]


def test_a_server_started_under_nohup_outlives_a_hangup(tmp_path):
    """``nohup kie-mcp``: SIGHUP is ignored, and stays ignored (the new hangup handler stopped it regardless)."""
    _, code, errors = signalled(tmp_path, signal.SIGHUP, signal.SIGTERM, ignore_hangup=True)
    assert code == 128 + signal.SIGTERM, errors  # ended by the SIGTERM sent a second after the hangup
    assert "SIGHUP" not in errors


@pytest.mark.parametrize("how", ["closed", "full"])
def test_a_client_that_cannot_be_written_to_ends_the_server_with_one_line_not_a_traceback(tmp_path, how):
    """The host went away mid-call (its end of stdout closed), or stdout is a full disk: the server printed a
    60-line traceback into the host's log. Now one line: a closed connection is a normal end (exit 0)."""
    if how == "full" and not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    out = subprocess.PIPE if how == "closed" else os.open("/dev/full", os.O_WRONLY)
    process = subprocess.Popen(
        [console_script(), "--sandbox"],
        stdin=subprocess.PIPE,
        stdout=out,
        stderr=subprocess.PIPE,
        env=environment(tmp_path),
    )
    assert process.stdin is not None and process.stderr is not None
    seen, errors = bytearray(), bytearray()
    try:
        if how == "closed":
            assert process.stdout is not None
            process.stdin.write(PING)
            process.stdin.flush()
            read_until(process.stdout.fileno(), b'"id":7', seen)
            process.stdout.close()  # the host is gone: nothing reads the server's answers any more
        process.stdin.write(PING)
        process.stdin.close()  # a host that went away closed both ends
        code = wait_and_read_rest(process, process.stderr.fileno(), errors)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()
        if how == "full":
            os.close(out)
    lines = [line for line in errors.decode().splitlines() if line.strip()]
    assert "Traceback" not in errors.decode()
    if how == "closed":
        # One line when the answer met the closed connection; none when the end of input was read first (a normal
        # end: on a busy machine the server may stop before it writes the answer).
        assert code == 0 and lines in ([], ["kie-mcp: the client closed the connection; stopped."]), errors.decode()
    else:
        assert code == 1 and len(lines) == 1 and "writing to the client failed" in lines[0], errors.decode()
