"""Headless Chromium for tests, driven over the DevTools protocol: what a person would see in a real browser.

Chromium is started with ``--remote-debugging-pipe``: the protocol runs over two pipes (the browser reads commands
on its fd 3 and writes answers on fd 4, each message JSON ended by a NUL byte), so no port, no websocket client and
no extra dependency are needed. One reader thread routes answers to the command waiting for them and keeps events.

``find_chromium()`` is None when no Chromium is installed; tests then skip with ``SKIP_REASON`` (Debian's
``chromium`` package; ``.ci/run`` installs it).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image, ImageStat

SKIP_REASON = (
    "headless Chromium is not installed: install Debian's chromium package (apt-get install -y chromium) to run the "
    "browser tests; .ci/run installs it"
)
_TRAMPOLINE = (
    "import os, sys\n"
    "commands, answers = int(sys.argv[1]), int(sys.argv[2])\n"
    "os.dup2(commands, 3)\n"
    "os.dup2(answers, 4)\n"
    "os.close(commands)\n"
    "os.close(answers)\n"
    "os.execv(sys.argv[3], sys.argv[3:])\n"
)
ARTIFACTS = Path(__file__).parent / "artifacts"  # screenshots of the browser tests (git-ignored)
_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_chromium() -> str | None:
    """The Chromium (or Chrome) to use: ``$CHROMIUM`` if set, else the first candidate on PATH."""
    given = os.environ.get("CHROMIUM")
    if given:
        return shutil.which(given)
    return next((found for name in _CANDIDATES if (found := shutil.which(name))), None)


class BrowserError(Exception):
    """The browser answered a command with an error, died, or did not answer in time."""


class Browser:
    """One headless Chromium process and its protocol connection."""

    def __init__(self, executable: str, profile: Path, *, timeout: float = 30.0) -> None:
        self.timeout = timeout
        to_browser_read, to_browser_write = os.pipe()
        from_browser_read, from_browser_write = os.pipe()
        # A small Python trampoline puts our pipe ends at fds 3 and 4 in the browser (no preexec_fn: tests run
        # threads; no shell: dash takes single-digit fds only).
        child_in = fcntl.fcntl(to_browser_read, fcntl.F_DUPFD, 10)
        child_out = fcntl.fcntl(from_browser_write, fcntl.F_DUPFD, 10)
        for fd in (to_browser_read, from_browser_write):
            os.close(fd)
        flags = [
            "--headless=new",
            "--no-sandbox",  # tests often run as root, where Chromium's sandbox cannot start
            "--disable-gpu",
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--mute-audio",
            "--hide-scrollbars",
            "--autoplay-policy=no-user-gesture-required",
            "about:blank",
        ]
        self.log = profile / "chromium.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _TRAMPOLINE, str(child_in), str(child_out), executable, *flags],
                pass_fds=(child_in, child_out),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        os.close(child_in)
        os.close(child_out)
        self._out = to_browser_write
        self._in = from_browser_read
        self._next_id = 0
        self._answers: dict[int, dict[str, Any]] = {}
        self._events: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self._closed = False
        self._reader = threading.Thread(target=self._read, name="chromium-pipe", daemon=True)
        self._reader.start()
        self.send("Browser.getVersion")  # waits until the browser answers

    # -- the protocol ------------------------------------------------------------------------------

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self._in, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._changed:
                    self._closed = True
                    self._changed.notify_all()
                return
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            with self._changed:
                for raw in messages:
                    message = json.loads(raw)
                    if "id" in message:
                        self._answers[message["id"]] = message
                    else:
                        self._events.append(message)
                self._changed.notify_all()

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        """Send a command and wait for its answer; raises BrowserError on an error answer."""
        with self._changed:
            self._next_id += 1
            ident = self._next_id
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._out, data) :]
        answer = self._wait(lambda: self._answers.pop(ident, None), f"an answer to {method}")
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    def _wait(self, found: Callable[[], Any], what: str, timeout: float | None = None) -> Any:
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._changed:
            while (result := found()) is None:
                left = deadline - time.monotonic()
                if self._closed:
                    raise BrowserError(f"Chromium exited while waiting for {what}; see {self.log}")
                if left <= 0:
                    raise BrowserError(f"no {what} within {timeout or self.timeout:g} s")
                self._changed.wait(left)
            return result

    def events(self, method: str, session: str | None = None) -> list[dict[str, Any]]:
        """The params of every event of that kind received so far."""
        with self._changed:
            return [
                e.get("params", {})
                for e in self._events
                if e.get("method") == method and (session is None or e.get("sessionId") == session)
            ]

    def wait_event(self, method: str, session: str, after: int, timeout: float | None = None) -> dict[str, Any]:
        """Wait for an event of that kind, beyond the first ``after`` ones already seen."""

        def found() -> dict[str, Any] | None:
            seen = [e for e in self._events if e.get("method") == method and e.get("sessionId") == session]
            return seen[after].get("params", {}) if len(seen) > after else None

        return self._wait(found, f"the event {method}", timeout)

    # -- pages -------------------------------------------------------------------------------------

    def new_page(self, width: int = 1280, height: int = 900) -> Page:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session, target)
        for method in ("Page.enable", "Network.enable", "Runtime.enable"):
            self.send(method, session=session)
        page.resize(width, height)
        return page

    def close(self) -> None:
        with self._changed:
            closed = self._closed
        if not closed:
            with contextlib.suppress(BrowserError):  # it may exit before it answers
                self.send("Browser.close")
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        os.close(self._out)
        self._reader.join(timeout=5)
        os.close(self._in)


class Page:
    """One tab."""

    def __init__(self, browser: Browser, session: str, target: str) -> None:
        self.browser = browser
        self.session = session
        self.target = target

    def close(self) -> None:
        self.browser.send("Target.closeTarget", {"targetId": self.target})

    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.browser.send(method, params, self.session)

    def resize(self, width: int, height: int) -> None:
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    def goto(self, url: str) -> None:
        """Open ``url`` and wait for its load event (every image and the page's other subresources)."""
        loads = len(self.browser.events("Page.loadEventFired", self.session))
        answer = self.send("Page.navigate", {"url": url})
        if answer.get("errorText"):
            raise BrowserError(f"could not open {url}: {answer['errorText']}")
        self.browser.wait_event("Page.loadEventFired", self.session, loads)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (awaited when it is a promise)."""
        answer = self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True})
        if "exceptionDetails" in answer:
            raise BrowserError(f"{expression[:80]!r} threw: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def screenshot(self, clip: dict[str, float] | None = None, *, full_page: bool = False) -> bytes:
        """A PNG of the viewport, of a region (``clip``: x, y, width, height in page pixels), or the whole page."""
        params: dict[str, Any] = {"format": "png"}
        if clip is not None:
            params["clip"] = {**clip, "scale": 1}
        if full_page:
            params["captureBeyondViewport"] = True
            size = self.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            params["clip"] = {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1}
        return base64.b64decode(self.send("Page.captureScreenshot", params)["data"])

    def requested_urls(self) -> list[str]:
        """Every URL this page asked for (documents, images, media), in order."""
        return [e["request"]["url"] for e in self.browser.events("Network.requestWillBeSent", self.session)]


def spread(png: bytes) -> float:
    """How much the pixels of a PNG differ: the largest standard deviation of its channels (0 for a blank one)."""
    with Image.open(io.BytesIO(png)) as image:
        return max(ImageStat.Stat(image.convert("RGB")).stddev)


# -- for the test modules ----------------------------------------------------------------------------------


def save_artifact(name: str, png: bytes) -> Path:
    """Keep a screenshot in tests/artifacts/ (git-ignored): what the test saw, for a person to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    path.write_bytes(png)
    return path
