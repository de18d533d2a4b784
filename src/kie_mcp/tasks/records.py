"""What this server knows about each task it created or was asked about."""

# No ``from __future__ import annotations``: pydantic would compile each field's annotation string on import.

import logging
import re
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    ModelWrapValidatorHandler,
    PlainSerializer,
    PrivateAttr,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidationError,
    WithJsonSchema,
    field_serializer,
    field_validator,
    model_serializer,
    model_validator,
)

from kie_mcp.catalog.pricing import credits_figure, credits_text
from kie_mcp.journal import Journal, JournalUnavailable
from kie_mcp.kie import CODES, Category, KieError, TaskStatus
from kie_mcp.kie.errors import LOGS_URL, any_request_step
from kie_mcp.kie.status import MOST_LINKS
from kie_mcp.kie.text import TEXT_KEPT, kept_text
from kie_mcp.redact import redact
from kie_mcp.words import parse_timestamp, plain, shortened, timestamp

if TYPE_CHECKING:
    from kie_mcp.catalog import Catalog, ModelSpec

log = logging.getLogger(__name__)

# "succeeded_without_results": KIE said success but gave no result link; not done, so it is looked at again.
RecordState = Literal["queued", "running", "succeeded", "succeeded_without_results", "failed", "unknown"]
# A status call KIE refused is noted on the record under this lead, and the note is dropped when KIE next answers.
STATUS_REFUSED = "KIE refused the last status check: "
# A status answer that could not be used (garbage no parser foresaw, an answer about another task) is noted under
# this lead while the task is looked at again, backing off; the note is dropped the same way.
STATUS_UNUSABLE = "KIE's last status answer could not be used: "
# A status check that failed in a way worth retrying (KIE's maintenance 455, a server error, a network failure or
# timeout) is noted under this lead while the task is looked at again, backing off; dropped the same way. A 429 is
# pacing, and is never noted.
STATUS_FAILED = "KIE's last status check failed: "
# KIE answered status checks with 429 (its rate limit) twice in a row or more: noted on every followed task under this
# lead while the follower pauses its looks (a look at one task waits with the others), dropped the same way.
RATE_LIMITED = "KIE is refusing status checks for now (rate limit): "
# KIE answers a status check of a task it does not know ("record is null") the way it answers one of a task too
# young to show yet; past the visibility grace (polling.py) the record says so under this lead, with no time left.
UNKNOWN_TO_KIE = "KIE does not know this task under the current API key"
# The newest tasks whose families order the lookup of an id the journal does not know (``TaskBook.families_seen``):
# the workspace's recent habit, read in a few milliseconds however large the journal grows.
FAMILIES_SEEN_OF = 500
# A status word (or flag) outside the family's documented vocabulary: the task is kept as it was (never failed or
# refunded on a word kie-mcp does not know), KIE's word and message are noted under this lead, no progress or time
# left is shown, and the task is looked at again, backing off; the note is dropped when KIE next answers in its
# vocabulary.
UNKNOWN_WORD = "KIE's last status answer gave a status kie-mcp does not know: "
# What a refusal noted on a task ends with, while the follower still asks.
STILL_ASKING = (
    " The task itself is unaffected (a status check changes nothing on KIE); kie-mcp keeps asking for a while (less "
    "often while this lasts; check_task asks at once)."
)
# The follower stopped asking about a task (refused too often, or unfinished longer than KIE keeps tasks): said on
# it until KIE answers about it again (check_task asks at once, and the task is followed again).
NOT_FOLLOWED = "kie-mcp stopped following this task: "
# Every note a status check leaves on a record: each is dropped when KIE next answers about the task.
STATUS_NOTES = (
    STATUS_REFUSED,
    STATUS_UNUSABLE,
    STATUS_FAILED,
    RATE_LIMITED,
    UNKNOWN_TO_KIE,
    UNKNOWN_WORD,
    NOT_FOLLOWED,
)
# A task unfinished this many times the model's longest typical duration is overdue: no time left is promised.
OVERDUE = 2.0
NO_RESULTS = (
    "KIE reports success but sent no result link (its answer is kept in the journal); kie-mcp keeps looking in the "
    "background and check_task looks again. If it stays this way, see the task on https://kie.ai/logs."
)
# KIE said success and sent its result field as text that could not be read (not JSON, or nested too deep).
UNREADABLE_RESULTS = (
    "KIE reports success but sent a result that could not be read (not JSON; its answer is kept in the journal); "
    "kie-mcp keeps looking in the background and check_task looks again. If it stays this way, see the task on "
    "https://kie.ai/logs."
)
# Result links kept beyond the most outputs one task of a model makes: a video's first and last frames, an extended
# clip's whole video beside its new part. A model the catalogue does not know keeps up to ``MOST_LINKS``.
LINKS_MARGIN = 4
# The note on a task KIE named more result links for than kept (``TaskRecord.apply``).
LINKS_DROPPED = "KIE's answer named more result links than a task of this model makes: "
# The longest error, note or failure code a record keeps: KIE's text in it is cut to ``TEXT_KEPT`` where it is read,
# and kie-mcp's words around it are a few hundred characters. A record an older kie-mcp wrote with megabytes of it
# is cut to this when read.
RECORD_TEXT = 2 * TEXT_KEPT


def links_kept(spec: "ModelSpec | None") -> int:
    """How many result links a task of ``spec`` keeps: the most outputs one task of it makes plus ``LINKS_MARGIN``,
    at most ``MOST_LINKS`` (``MOST_LINKS`` for a model the catalogue does not know, one with no count field, or one
    whose count has no largest value: a paid result is never dropped for a count that is not data).
    A garbage answer naming thousands never makes thousands of files, nor a task shown in megabytes."""
    most = spec.most_outputs if spec is not None else None
    return MOST_LINKS if most is None else min(most + LINKS_MARGIN, MOST_LINKS)


def time_left(typical: tuple[float, float], elapsed: float) -> int | None:
    """Seconds a task ``elapsed`` seconds old has left by its model's ``typical`` duration; None once it is
    overdue (``OVERDUE`` times the longest typical duration): an estimate then would only be wrong."""
    if elapsed > OVERDUE * typical[1]:
        return None
    return max(int(typical[1] - elapsed), 1)


def time_left_words(seconds: int, sandbox: bool) -> str:
    """A running task's time left as every answer words it: "about 9s left", marked "(simulated)" for a sandbox
    task, whose time is the simulator's and says nothing of how long KIE takes."""
    return f"about {seconds}s left" + (" (simulated)" if sandbox else "")


KEEP_EPOCH = {"epoch": True}  # serialisation context of the journal's copy: times stay epoch seconds, exactly
# In the journal's copy only: KIE has answered a status check about the task (``TaskRecord.answered``).
ANSWERED = "kie_answered"
# In the journal's copy only: the result links kie-mcp refused to fetch or offer, each with why (``refuse_link``), so
# a restart or another server never offers one again (a name resolving to a private address passes ``openable_link``,
# which looks nothing up).
REFUSED = "kie_refused"
# What a record shows of the journal's own columns (tasks.prompt, tasks.session): filled when it is read from the
# journal (``TaskBook``), never kept in the record's JSON, so the columns stay the one copy.
LABELS = frozenset({"prompt", "session", "folder"})
PROMPT_SHOWN = 120  # characters of a prompt a task view shows


# How a charge measured from the balance is said (``charged_text``): never "charged by KIE", as KIE did not say it.
MEASURED_CHARGE = "measured from the KIE balance before and after, as KIE does not report it"


def charged_text(credits: float, measured: float = 0.0) -> str:
    """``credits`` charged, as an answer says it: "charged by KIE" for what KIE reported; ``measured`` of it was
    measured from the balance (``TaskRecord.charge_measured``), and is said so."""
    if measured <= 0:
        return f"{credits_text(credits)} charged by KIE"
    if measured >= credits:
        return f"{credits_text(credits)}, {MEASURED_CHARGE}"
    by_kie, by_us = credits_figure(credits - measured), credits_figure(measured)
    return f"{credits_text(credits)}: {by_kie} charged by KIE, {by_us} {MEASURED_CHARGE}"


def _epoch(value: Any) -> Any:
    """Epoch seconds from a journal record (a number) or from ISO 8601 text (as shown, or as edited by hand)."""
    if isinstance(value, str) and (moment := parse_timestamp(value)) is not None:
        return moment.timestamp()
    return value


def _on_calendar(value: float) -> float:
    """A moment that can be shown: one no calendar has (milliseconds where seconds belong, 1e20, -1e12, NaN: a hand
    edit, or another tool writing the journal) makes the record unreadable, named by every listing, never a listing
    that fails for every task."""
    try:
        timestamp(value)
    except (ValueError, OverflowError, OSError):
        raise ValueError("not a time on the calendar") from None
    return value


def _journal_copy(info: SerializationInfo) -> bool:
    """Whether this serialisation is the journal's copy (``KEEP_EPOCH``), not what a person or agent sees."""
    return isinstance(info.context, dict) and bool(info.context.get("epoch"))


def _shown(value: float, info: SerializationInfo) -> float | str:
    return value if _journal_copy(info) else timestamp(value)


# A moment: epoch seconds inside (the follower does arithmetic with it, to the microsecond), ISO 8601 UTC wherever
# a person or agent sees it (tool results, resources); the journal's copy keeps the epoch (``KEEP_EPOCH``).
Moment = Annotated[
    float,
    BeforeValidator(_epoch),
    AfterValidator(_on_calendar),
    PlainSerializer(_shown),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


def openable_link(url: str) -> bool:
    """Whether a person may be offered ``url`` (a task's result link) to open in their browser: an http(s) link that
    kie-mcp would fetch itself, read the same way by kie-mcp and by a browser. Never a redacted one, nor one with a
    user name (``https://kie.ai@evil.example/`` opens evil.example), a backslash (a browser reads
    ``http://127.0.0.1\\.example.com/`` as 127.0.0.1), whitespace or a control character; its host must be a plain
    DNS name (``[a-z0-9.-]``, an internationalised one in its ``xn--`` form) or a bracketed IPv6 literal, and is
    judged with its trailing dots taken off (``localhost.`` is localhost). May raise on a link httpx2 cannot read
    (``TaskRecord.openable_links`` guards it)."""
    import ipaddress

    import httpx2  # imported here: records are built on every start-up, links judged only for the gallery

    from kie_mcp.media.addresses import is_trusted, unreachable_host
    from kie_mcp.redact import REDACTED

    if REDACTED in url or "\\" in url or any(ch.isspace() or not ch.isprintable() for ch in url):
        return False
    parsed = httpx2.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host or parsed.userinfo:
        return False
    if ":" in parsed.host:  # an IPv6 literal (httpx2 gives it without its brackets): only a plain one
        host = str(ipaddress.IPv6Address(parsed.host))  # ValueError for a zone (fe80::1%25eth0) or worse
    else:
        host = parsed.raw_host.decode("ascii").lower().rstrip(".")  # httpx2 maps 。 to ., and IDNA-encodes
        if not re.fullmatch(r"[a-z0-9.-]+", host):  # a % escape, _ or anything else no DNS name has
            return False
    return is_trusted(parsed) or unreachable_host(host) is None


class RefusedResult(BaseModel, defer_build=True):
    """A result link kie-mcp refused to fetch or offer, and saved nothing for: which one, and why (never the link)."""

    index: int = Field(
        description="Which of KIE's result links, 1 for the first: 'result N' in the answer's text, _N in the name of "
        "the file it would have been saved as."
    )
    reason: str = Field(description="Why, in a few words (it points at this machine or a private network, ...).")


class TaskRecord(BaseModel, defer_build=True):
    """One KIE task as the tools report it. What a person or agent sees (tool results, resources) offers only the
    result links a person may open (``openable_links``), with the refused ones said in ``refused_results``; the
    journal's copy (``KEEP_EPOCH``) keeps every link KIE sent."""

    task_id: str | None = Field(description="KIE's task id; null only when the create's outcome is unknown.")
    model: str
    family: str
    kind: str | None = None
    state: RecordState
    progress: float | None = Field(default=None, description="0-1, reported or estimated from typical duration.")
    result_urls: list[str] = Field(
        default_factory=list,
        description="The result links a person may open (http(s) links kie-mcp would fetch itself), in KIE's order. "
        "A link kie-mcp refused to fetch or offer is never among them: refused_results says which result it was and "
        "why.",
    )
    refused_results: list[RefusedResult] = Field(
        default_factory=list,
        description="KIE's result links kie-mcp refused to fetch or offer, with nothing saved in their place (a link "
        "to this machine or a private network, one that held a credential, more bytes than a result of its kind, a "
        "link KIE would not renew): which result and why. The link itself is never shown, so it is never opened by "
        "mistake; the reason may name the host and the private address it resolved to.",
    )
    files: list[str] = Field(default_factory=list, description="Saved copies, relative to the workspace.")
    credits_quoted: float | None = None
    credits_reserved: float | None = Field(
        default=None, description="What this task counts against the caps until KIE's real charge is known."
    )
    reserved_on: date | None = Field(
        default=None, description="The day (the server's local date) the reservation was made on."
    )
    reserved_at: Moment | None = Field(
        default=None,
        description="When the reservation was made: KIE's charge or refund of this task counts at that moment against "
        "the daily cap, so one after midnight never reopens the new day's cap.",
    )
    credits_charged: float | None = None
    charge_unreadable: bool = Field(
        default=False,
        description="KIE reported a charge for this task that could not be read (no finite number, or beyond belief: "
        "``ledger.readable_charge``): it is not booked, and the reservation stays counted as spent, of a failed task "
        "too. Journaled with the record; a record an older kie-mcp wrote has none (False).",
    )
    charge_measured: bool = Field(
        default=False,
        description="credits_charged was measured from the KIE balance before and after the task (KIE reports no "
        "charge for it), not a figure KIE gave.",
    )
    eta_seconds: int | None = Field(default=None, description="Rough seconds left, from the model's typical time.")
    error: str | None = None
    note: str | None = Field(
        default=None,
        description="What was odd in KIE's answers without stopping the task: more result links than the model "
        "makes (the rest were dropped; KIE's whole answer is kept in the journal).",
    )
    fail_code: str | None = None
    created_at: Moment = Field(default_factory=time.time, description="When the task was created (ISO 8601 UTC).")
    sandbox: bool = False
    parent_task_id: str | None = Field(
        default=None, description="The task this one continues (continue_video: extend, hd, 4k, upscale)."
    )
    operation: Literal["extend", "hd", "4k", "upscale"] | None = Field(
        default=None, description="How it continues parent_task_id."
    )
    prompt: str | None = Field(
        default=None,
        description=f"The prompt it was made from, first {PROMPT_SHOWN} characters (secrets redacted); null when "
        "this workspace did not make it.",
    )
    session: str | None = Field(default=None, description="The session name it was made under, if one was given.")
    folder: str | None = Field(
        default=None,
        description="The folder its results are (or will be) saved in, relative to the workspace: "
        "outputs/{date}-{session, or the prompt's first words}.",
    )
    _raw_answer: dict[str, Any] | None = PrivateAttr(default=None)  # KIE's answer, kept when it made no sense
    # Result links never to be fetched (they point at this machine or a private network), each with why in a few
    # words ("" when not known): not tried again, never offered as a result.
    _refused_links: dict[str, str] = PrivateAttr(default_factory=dict)
    # Results saved to disk whose row the journal refused (read-only, locked): named with the saved files all the same.
    _unrecorded_files: list[str] = PrivateAttr(default_factory=list)
    # Result links KIE refused to renew once (download-url's 400/404/422): a second refusal is final (``refuse_link``)
    _unrenewed: set[str] = PrivateAttr(default_factory=set)
    # ... and each one's row for the journal's files table (``Journal.add_file``'s arguments), written once it can be
    _unrecorded_rows: dict[str, tuple[Any, ...]] = PrivateAttr(default_factory=dict)
    # What the last save of its results could not do (lines as its answer says them): shown on its gallery tile.
    # None: no save of this record object has said (a record read from the journal; ``TaskBook.recall``).
    _save_problems: list[str] | None = PrivateAttr(default=None)
    # KIE answered this request's create with a task it already had (``ExistingTaskError``): this request started
    # nothing and was charged nothing, whatever the task's own record says it cost.
    _earlier: bool = PrivateAttr(default=False)
    # KIE has answered a status check about this task (any status, read or not): kept in the journal's copy
    # (``ANSWERED``), so it outlives a restart (``answered``).
    _answered: bool = PrivateAttr(default=False)
    # Found at KIE by a look here with no time KIE made it (Veo, Runway, Aleph and Flux Kontext date a task in
    # zone-less text): ``created_at`` is when it was found, so its age is not known (``followups.made_elsewhere``).
    _undated: bool = PrivateAttr(default=False)

    @model_validator(mode="wrap")
    @classmethod
    def _journal_marks(cls, data: Any, handler: ModelWrapValidatorHandler["TaskRecord"]) -> "TaskRecord":
        """What only the journal's copy says of the task (``ANSWERED``, ``REFUSED``), back on the record read from
        it."""
        answered = isinstance(data, dict) and data.get(ANSWERED) is True
        kept = data.get(REFUSED) if isinstance(data, dict) else None
        record = handler(data)
        record._answered = record._answered or answered
        if isinstance(kept, dict):
            refused = {url: why for url, why in kept.items() if isinstance(url, str) and isinstance(why, str)}
            record._refused_links = refused | record._refused_links
        return record

    @model_serializer(mode="wrap")
    def _as_seen(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> dict[str, Any]:
        """The journal's copy keeps every result link KIE sent, those refused with why, and whether KIE ever answered
        about the task; every other view (tool results, resources) offers only the links a person may open
        (``openable_links``), and names each refused result by its number, with why (``refused_results``), never by
        its link."""
        data = handler(self)
        if _journal_copy(info):
            data.pop("refused_results", None)
            if self._answered:
                data[ANSWERED] = True
            if refused := {url: why for url, why in self._refused_links.items() if url in self.result_urls}:
                data[REFUSED] = refused
            return data
        if "result_urls" in data:
            data["result_urls"] = self.openable_links()
        if "refused_results" in data:
            data["refused_results"] = [{"index": index, "reason": why} for index, why in self._refused()]
        return data

    @model_validator(mode="after")
    def _few_links(self) -> "TaskRecord":
        """A record an older kie-mcp wrote with every link a garbage answer named keeps ``MOST_LINKS`` of them: it
        would otherwise weigh megabytes on every listing, for good."""
        if len(self.result_urls) > MOST_LINKS:
            dropped = len(self.result_urls) - MOST_LINKS
            self.result_urls = self.result_urls[:MOST_LINKS]
            self.note = self.note or f"{LINKS_DROPPED}kie-mcp shows the first {MOST_LINKS} ({dropped} dropped)."
        return self

    @field_validator("error", "note", "fail_code")
    @classmethod
    def _short(cls, value: str | None) -> str | None:
        """A text an older kie-mcp kept whole (a ``failMsg`` of megabytes) cut to ``RECORD_TEXT``: it would weigh
        that much in every answer about the task and every listing, for good. Shorter text is not touched."""
        return kept_text(value, RECORD_TEXT) if value is not None and len(value) > RECORD_TEXT else value

    def mark_earlier(self) -> None:
        """KIE answered this request with a task it already had: nothing new was started or charged."""
        self._earlier = True

    @property
    def earlier(self) -> bool:
        return self._earlier

    def mark_undated(self) -> None:
        """Found at KIE with no time it was made: ``created_at`` is when it was found, not its age."""
        self._undated = True

    @property
    def undated(self) -> bool:
        """Found at KIE by a look of this process whose answer gave no time the task was made (``created_at`` is
        when it was found): the follower cannot tell how old it is (``Follower._add``)."""
        return self._undated

    @property
    def answered(self) -> bool:
        """KIE has answered a status check about this task (any status, by this server or one before it): a task KIE
        had then answers for nothing ("no record") is a passing failure, never a task KIE does not know
        (``polling.refresh``)."""
        return self._answered

    @property
    def finished(self) -> bool:
        return self.state in ("succeeded", "failed", "unknown")

    @property
    def unknown_to_kie(self) -> bool:
        """KIE's last status answer said it does not know this task (past the visibility grace): no time is left
        to estimate. The record is kept as it was (never failed, never refunded on it)."""
        return not self.finished and self.error is not None and self.error.startswith(UNKNOWN_TO_KIE)

    @property
    def unknown_word(self) -> bool:
        """KIE's last status answer used a word outside the family's vocabulary (``UNKNOWN_WORD``): the task is kept
        as it was, and there is no time left to estimate."""
        return not self.finished and self.error is not None and self.error.startswith(UNKNOWN_WORD)

    @property
    def no_estimate(self) -> bool:
        """No progress or time left is shown (nor estimated by the follower): KIE does not know the task, or said of
        it what kie-mcp cannot read."""
        return self.unknown_to_kie or self.unknown_word

    @field_serializer("eta_seconds")
    def _no_eta_when_unknown(self, value: int | None) -> int | None:
        return None if self.no_estimate else value  # the follower's estimate, for a task KIE does not have

    @field_serializer("progress")
    def _no_progress_when_unknown(self, value: float | None) -> float | None:
        return None if self.no_estimate else value

    def label(self, prompt: str | None, session: str | None, workspace: Path | None = None) -> None:
        """Show the journal's prompt (shortened, redacted) and session, and the folder the results go to (a named
        session's, with the ``workspace`` whose outputs/ holds it, the folder it already has: ``session_folder``)."""
        if prompt:
            # Redacted as shown (a key typed in groups with runs of spaces reads whole once they are one space) and
            # before it is shortened: no key is ever cut in half, nor shown.
            shown = redact(" ".join(redact(prompt).split()))
            self.prompt = shortened(shown, PROMPT_SHOWN)
        if session:
            self.session = redact(session)
        self.folder = self._folder(prompt, session, workspace)

    def _folder(self, prompt: str | None, session: str | None, workspace: Path | None) -> str | None:
        if self.files:
            return self.files[0].rpartition("/")[0]
        if self.state in ("failed", "unknown"):  # nothing will be saved
            return None
        from kie_mcp.media.downloads import session_folder  # media/results.py names it the same way

        try:
            day = datetime.fromtimestamp(self.created_at).date()
        except (OverflowError, OSError, ValueError):  # a hand-edited time no calendar has: no folder to name
            return None
        base = workspace or Path()
        folder = session_folder(base, session or prompt or self.model, day, named=bool(session) and bool(workspace))
        return folder.relative_to(base).as_posix()

    def refuse_link(self, url: str, why: str = "") -> None:
        """A result link that will never be fetched (``why``, in a few words): saving it again is pointless (see
        ``unsaved_links``), and it is never offered as the result."""
        self._refused_links[url] = why or self._refused_links.get(url, "")

    def note_renewal_refused(self, url: str) -> None:
        """KIE refused to renew this result link (it may be missing for a moment): the next refusal is final."""
        self._unrenewed.add(url)

    def renewal_refused(self, url: str) -> bool:
        return url in self._unrenewed

    def refused_words(self) -> list[str]:
        """Each refused result (``refused_results``) in words: ``result 2 not saved (refused: it points at ...
        (10.0.0.7))``. The link itself is never repeated."""
        return [f"result {index} not saved (refused: {why})" for index, why in self._refused()]

    def _refused(self) -> list[tuple[int, str]]:
        """Each result link that is not offered (``openable_links``: refused, or one kie-mcp would not fetch) and has
        no saved file in its place: its number (1 for the first) and why, in a few words."""
        offered = self.openable_links()
        missing = max(len(self.result_urls) - len(self.files), 0)
        found: list[tuple[int, str]] = []
        for index, url in enumerate(self.result_urls, 1):
            if url in offered or len(found) >= missing:
                continue
            found.append((index, self._refused_links.get(url) or "kie-mcp does not fetch or offer this link"))
        return found

    def note_save_problems(self, problems: list[str]) -> None:
        """What the last save of this task's results could not do (``media/results.save_results``): kept for the
        gallery, which shows them on the task's tile instead of "No saved file yet"."""
        self._save_problems = list(problems)

    @property
    def save_problems(self) -> list[str]:
        return list(self._save_problems or [])

    def openable_links(self) -> list[str]:
        """The result links a person may be offered to open in their browser: only those kie-mcp would fetch itself.
        Never a link it refused to fetch (``refuse_link``: this machine or a private network, a credential, a link
        KIE refused for good), nor one whose host is judged unreachable without a DNS lookup
        (``addresses.unreachable_host``: a private or loopback IP, localhost, a local name, with or without a
        trailing dot: a record from before a restart has no refusals kept), nor one a browser may read otherwise
        than kie-mcp does (``openable_link``). Never raises: a link that cannot be judged is not offered."""
        links: list[str] = []
        for url in self.result_urls:
            if url in self._refused_links or url in links:
                continue
            try:
                fine = openable_link(url)
            except Exception as err:  # a judgement that fails is no link to offer, never a failed call
                log.warning("task %s: a result link could not be judged (%s)", self.task_id, type(err).__name__)
                fine = False
            if fine:
                links.append(url)
        return links

    def keep_unrecorded(self, path: str, row: tuple[Any, ...] | None = None) -> None:
        """A result saved to ``path`` (relative to the workspace) that the journal could not record: the file is on
        disk, so the record names it (``name_unrecorded``) until a save with a writable journal records it, or its
        ``row`` (``Journal.add_file``'s arguments) is written (``unrecorded_rows``: the follower, once it can)."""
        if path not in self._unrecorded_files:
            self._unrecorded_files.append(path)
        if row is not None:
            self._unrecorded_rows[path] = row

    def unrecorded_rows(self) -> list[tuple[Any, ...]]:
        """The rows of the saved files the journal could not record (``keep_unrecorded``)."""
        return list(self._unrecorded_rows.values())

    def name_unrecorded(self) -> None:
        """Name the saved files the journal could not record among ``files`` (read from the journal, which lacks
        them): answers, the gallery and the follower see the result saved."""
        self.files += [path for path in self._unrecorded_files if path not in self.files]

    @property
    def unsaved_links(self) -> int:
        """How many result links still wait for a saved file: all of them less those saved and those refused."""
        refused = sum(1 for url in self.result_urls if url in self._refused_links)
        return max(len(self.result_urls) - len(self.files) - refused, 0)

    def apply(self, status: TaskStatus, typical: tuple[int, int] | None, most_links: int = MOST_LINKS) -> None:
        """Take KIE's latest word on this task, and at most ``most_links`` of its result links (``links_kept``)."""
        self._answered = True
        noted = self.unknown_word
        if self.error is not None and self.error.startswith(STATUS_NOTES):
            self.error = None  # KIE answers about it again: an earlier refusal no longer describes it
        if not status.understood:
            self._note_unknown_word(status, keep_answer=not noted)
            return
        self.state = status.state.value
        self._take_links(status, most_links)
        if self.state == "succeeded" and not self.result_urls:
            why = UNREADABLE_RESULTS if status.results_unreadable else NO_RESULTS
            self.state, self.error = "succeeded_without_results", why
            self._raw_answer = status.raw
        elif self.state == "succeeded" and self.error in (NO_RESULTS, UNREADABLE_RESULTS):
            self.error = None
        if status.credits_charged is not None:
            self.credits_charged, self.charge_measured = status.credits_charged, False
            self.charge_unreadable = False
        elif status.charge_unreadable:  # reported, but no number: never the same as none (``reported_charge``)
            self.charge_unreadable = True
        if status.state.value == "failed":
            code = f" (code {status.fail_code})" if status.fail_code else ""
            said = status.fail_message or "no reason given"
            stop = "" if said.endswith((".", "!", "?")) else "."  # KIE's "please try again later." gets no second one
            self.error = f"KIE reports the task failed{code}: {said}{stop}"
            self.fail_code = status.fail_code
        if self.state == "succeeded_without_results":
            self.progress, self.eta_seconds = None, None
            return
        self.progress = 1.0 if self.finished else status.progress
        elapsed = time.time() - self.created_at
        if not self.finished and typical:
            self.eta_seconds = time_left(typical, elapsed)
            if self.progress is None:
                self.progress = round(min(elapsed / typical[1], 0.95), 3)
        else:
            self.eta_seconds = None

    def _take_links(self, status: TaskStatus, most: int) -> None:
        """KIE's result links, the first ``most`` of them (none sent: the ones known stay). More than that is no
        result of this task's model: noted on the record, with KIE's whole answer kept in the journal (once)."""
        if not status.result_urls:
            return
        self.result_urls = status.result_urls[: max(most, 1)]
        sent = max(status.links_sent or 0, len(status.result_urls))
        if sent <= len(self.result_urls):
            return
        if self.note is None or not self.note.startswith(LINKS_DROPPED):
            self._raw_answer = status.raw
        self.note = (
            f"{LINKS_DROPPED}it named {sent}; kie-mcp kept the first {len(self.result_urls)} and dropped "
            f"{sent - len(self.result_urls)} (KIE's whole answer is kept in the journal). {LOGS_URL} shows the task "
            "as KIE has it."
        )

    def _note_unknown_word(self, status: TaskStatus, *, keep_answer: bool) -> None:
        """A status word (or flag) outside the family's vocabulary: the record stays as it was (never failed or
        refunded on a word kie-mcp does not know: KIE may mean anything by it), says what KIE sent, and shows no
        progress or time left. KIE's answer is kept in the journal the first time."""
        said = plain(status.raw_state) if status.raw_state else "none (the answer names no status)"
        code = f" (code {status.fail_code})" if status.fail_code else ""
        message = f", with the message {plain(status.fail_message, limit=300)}{code}" if status.fail_message else code
        self.error = (
            f"{UNKNOWN_WORD}{said} for a {status.family} task{message}. kie-mcp keeps the task as it was: not "
            "marked failed, nothing refunded; it keeps asking, less often while KIE answers this way (check_task asks "
            f"at once). {LOGS_URL} shows the task as KIE has it."
        )
        self.progress, self.eta_seconds = None, None
        if keep_answer:
            self._raw_answer = status.raw

    def note_error(self, err: KieError) -> None:
        """A status call KIE refused, or answered with what could not be used: kept until KIE answers about the
        task again, so whoever looks at a task that does not move sees why. A refusal with a code of KIE's reads as
        one of a status check: the code and KIE's message, that the task is unaffected and kie-mcp keeps asking, and
        advice only where it fits (``STATUS_ADVICE``); KIE's advice per code is written for a create ("change the
        prompt", "fix the field it names"). An answer that could not be used, or a failure without a code (a proxy's
        page, a firewall), keeps its own advice, written for any request."""
        if err.category is Category.PROTOCOL or err.code is None:
            lead = STATUS_UNUSABLE if err.category is Category.PROTOCOL else STATUS_REFUSED
            self.error = lead + err.describe()
            return
        self.error = f"{STATUS_REFUSED}{_status_said(err)}.{_status_advice(err)}{STILL_ASKING}"

    def note_failure(self, err: KieError) -> None:
        """A status check that failed in a way worth retrying (maintenance, a server error, a network failure): the
        task is asked about again, backing off, and whoever looks at it meanwhile sees why it does not move. Kept
        until KIE answers about the task again. The message is KIE's (or the network's), already redacted."""
        self.error = (
            f"{STATUS_FAILED}{_status_said(err)}.{_status_advice(err)} The task itself is unaffected; kie-mcp keeps "
            "asking (less often while this lasts; check_task asks at once)."
        )

    def note_rate_limited(self, seconds: float) -> None:
        """KIE refuses status checks for now (429s in a row): the task is asked about again in ``seconds``. Kept until
        KIE answers about it again; the task's own time left still shows (KIE works on it all the same)."""
        self.error = (
            f"{RATE_LIMITED}kie-mcp asks again in {max(round(seconds), 1)} s. Another app or server using this API key "
            "may be using the account's budget of status checks. The task itself is unaffected."
        )

    def note_unknown(self, err: KieError) -> None:
        """KIE answered that it has no such task, past the time a new task takes to show: say so plainly, with no
        advice about fields (a status check sends none) and no time left. Kept until KIE answers about it again;
        the task is not marked failed and nothing is refunded on this alone."""
        said = f"KIE error {err.code}" if err.code is not None else "KIE"
        self.error = (
            f"{UNKNOWN_TO_KIE} ({said}: {err.message or 'no such task'}): it was made with another account's key, "
            "or KIE no longer keeps it (KIE keeps tasks for 14 days). kie-mcp keeps its record as it was: not "
            f"marked failed, nothing refunded. {LOGS_URL} shows the tasks of the account whose key is set."
        )
        self.eta_seconds = None


# Advice for a status check KIE refused or failed, where advice fits one (a status check sends no prompt or field):
# the key, its cap, maintenance. Every other code is said with KIE's message only.
# A refused key (401) is said with its own advice, which names where the key came from (``any_request_step``).
STATUS_ADVICE: dict[int, str] = {
    433: CODES[433].next_step,
    455: "KIE is under maintenance, which usually lasts a few minutes.",
}


def _status_said(err: KieError) -> str:
    """What a failed status check met: KIE's code and message (or the network's), without a closing full stop."""
    said = f"KIE error {err.code} ({err.category.value})" if err.code is not None else ""
    return ": ".join(part for part in (said, err.message.rstrip(". ")) if part) or err.category.value


def _status_advice(err: KieError) -> str:
    advice = any_request_step(err) if err.code == 401 else STATUS_ADVICE.get(err.code) if err.code else None
    return f" {advice}" if advice else ""


class UnreadableRecord(JournalUnavailable):
    """A task's journal row this kie-mcp cannot read (written by a newer kie-mcp sharing the workspace, or edited by
    hand): a user-level error naming the task, never a crash of the tool that met it."""

    def __init__(self, task_id: str, err: Exception) -> None:
        self.task_id = task_id
        super().__init__(
            f"Task {task_id} is in this workspace's journal, but this kie-mcp cannot read its record "
            f"({_what_is_wrong(err)}): a newer kie-mcp sharing this workspace may have written it, or it was edited "
            "by hand. Nothing was asked of KIE and nothing was changed. Update kie-mcp to follow this task; its saved "
            "results, if any, are in outputs/, and https://kie.ai/logs shows it."
        )


def _what_is_wrong(err: Exception) -> str:
    """The fields a record failed on, by name only: a row's values are never repeated in an error."""
    if isinstance(err, ValidationError):
        fields = sorted({".".join(str(part) for part in error["loc"]) or "the record" for error in err.errors()})
        return "unreadable field(s): " + ", ".join(fields[:5])
    return type(err).__name__


@dataclass
class Found:
    """What a search of the journal found: the records, and the ids of rows this kie-mcp could not read (skipped,
    so one odd row never hides the others)."""

    records: list[TaskRecord]
    unreadable: list[str] = field(default_factory=list)
    total: int = 0  # how many tasks match the filters: more than were read when the limit cut the list

    @property
    def cut(self) -> bool:
        """Whether more tasks match than the limit let through."""
        return self.total > len(self.records) + len(self.unreadable)

    @property
    def unreadable_note(self) -> str:
        """What a listing says about the rows it skipped: how many, which, why, and what to do."""
        shown = ", ".join(self.unreadable[:20]) + (", ..." if len(self.unreadable) > 20 else "")
        return (
            f"{len(self.unreadable)} task(s) of the journal could not be read by this kie-mcp and are not listed: "
            f"{shown}. A newer kie-mcp sharing this workspace may have written them, or they were edited by hand; "
            "update kie-mcp to see them."
        )


def answer_not_recorded(task_id: str | None, err: BaseException) -> str:
    """The line for a task's record (KIE's answer about it, its saved files) that the journal refused. Never a
    create's wording: the task exists and its id is in hand."""
    return (
        f"KIE's answer about task {task_id} could not be recorded in the journal ({type(err).__name__}: {err}). "
        "Keep this task id: it is also in logs/kie-api.jsonl (or kie-api.1.jsonl) when that could be written. "
        "Follow it with check_task."
    )


REMEMBERED_SAVES = 1000  # tasks whose save word ``TaskBook`` keeps in memory (the latest ones)


@dataclass
class SaveWord:
    """What saving a task's results learnt that its journal record does not keep (``TaskBook.recall``)."""

    refused: dict[str, str] = field(default_factory=dict)  # link: why it was refused
    problems: list[str] = field(default_factory=list)


class TaskBook:
    """Tasks by id, kept in the workspace journal: a restarted or second server knows every one of them."""

    def __init__(self, journal: Journal, workspace: Path | None = None) -> None:
        self.journal = journal
        self.workspace = workspace  # whose outputs/ holds a named session's folder (``TaskRecord.label``)
        # What this process learnt saving a task's results, which the journal's record does not keep: the links it
        # refused to fetch and what the last save could not do (``recall``). Gone at a restart.
        self._learnt: dict[str, SaveWord] = {}

    def add(self, record: TaskRecord, **context: Any) -> None:
        """Save ``record`` (context: attempt_id, prompt, session); records without a task id are not tasks. The
        prompt and session go to the journal's columns, and the record shows them (``TaskRecord.label``)."""
        if record.task_id:
            self._learn(record)
            if record._raw_answer is not None:
                self.journal.keep_answer(record.task_id, record._raw_answer)
                record._raw_answer = None
            if context.get("prompt") or context.get("session"):
                record.label(context.get("prompt"), context.get("session"), self.workspace)
            self.journal.save_task(
                record.model_dump_json(context=KEEP_EPOCH, exclude=set(LABELS)),
                task_id=record.task_id,
                model=record.model,
                state=record.state,
                created=record.created_at,
                parent_task_id=record.parent_task_id,
                **context,
            )

    def add_if_new(self, record: TaskRecord) -> TaskRecord:
        """Save ``record`` unless the journal already holds its task, then return the journal's record instead: a
        look that found nothing to link never writes its bare record over the one another look wrote meanwhile (a
        task linked to its create, with that create's quote and reservation). One write transaction."""
        assert record.task_id is not None
        with self.journal.transaction():
            kept = self.get(record.task_id)
            if kept is not None:
                return kept
            self.add(record)
        return record

    def add_unless_ended(self, record: TaskRecord) -> bool:
        """Save what a server learnt of a task another server follows (its ``check_task`` asked KIE), unless the journal
        records the task ended already: that end, with its saved files, is its follower's, never replaced by what a
        look saw (the journal's own guard keeps only an end from reading unfinished again). One write transaction.
        Returns whether it was saved."""
        assert record.task_id is not None
        with self.journal.transaction():
            kept = self.get(record.task_id)
            if kept is not None and kept.finished:
                return False
            self.add(record)
        return True

    def claim(self, record: TaskRecord, **context: Any) -> TaskRecord | None:
        """Record a task a create just answered with, unless the journal already holds a live (not failed) task of
        that id: KIE answered this create with the task an earlier request started (a second ask for a Veo clip's
        1080p version while the first is processing). Then that task's record is returned, unchanged, and this
        request is not a new task. One write transaction: two requests, in one process or two, cannot both claim
        the same task as new."""
        if not record.task_id:
            return None
        with self.journal.transaction(durable=True):  # a task id KIE answered: kept through a power loss
            kept = self.get(record.task_id)
            if kept is not None and kept.state != "failed":
                return kept
            self.add(record, **context)
        return None

    def _learn(self, record: TaskRecord) -> None:
        """Keep what ``record`` says its results' saves learnt (refused links add up; a save's problems replace the
        last), for records of the same task read from the journal later (``recall``)."""
        assert record.task_id is not None
        known = self._learnt.pop(record.task_id, None) or SaveWord()
        refused = known.refused | record._refused_links
        problems = known.problems if record._save_problems is None else list(record._save_problems)
        if refused or problems:
            self._learnt[record.task_id] = SaveWord(refused, problems)  # the latest last: the oldest go first
            while len(self._learnt) > REMEMBERED_SAVES:
                del self._learnt[next(iter(self._learnt))]

    def recall(self, record: TaskRecord) -> TaskRecord:
        """``record`` (one read from the journal, say by ``list_tasks``) knowing what this process learnt saving its
        results (``_learn``): the links it refused to fetch, so the gallery never offers one, and what the last
        save could not do, so its tile says it. Returned for convenience: the record itself is changed."""
        known = self._learnt.get(record.task_id) if record.task_id else None
        if known is not None:
            record._refused_links |= known.refused
            if record._save_problems is None:
                record._save_problems = list(known.problems)
        return record

    def get(self, task_id: str) -> TaskRecord | None:
        """The task's record, or None when the journal does not know it. Raises ``UnreadableRecord`` when it does
        but this kie-mcp cannot read the row."""
        row = self.journal.task_row(task_id)
        if row is None:
            return None
        try:
            return record_from_row(row, self.workspace)
        except (ValueError, TypeError) as err:  # pydantic's ValidationError is a ValueError
            raise UnreadableRecord(task_id, err) from None

    def families_seen(self, newest: int = FAMILIES_SEEN_OF) -> dict[str, int]:
        """How many of the journal's ``newest`` tasks each family recorded made (``{"veo": 12, "market": 3}``): what
        orders the families asked about an id the journal does not know (``families.family_for_task_id``), so a
        workspace that makes Veo clips asks Veo first of an id whose shape three families share. Read from the
        creation-time index and those rows' records only, a record that is not JSON (damaged) passed over, as the
        counts of the others still hold; a journal that cannot be read gives nothing (the default order), never a
        failed lookup."""
        try:
            rows = self.journal.query(
                "SELECT json_extract(record, '$.family') AS family, COUNT(*) AS n FROM "
                "(SELECT record FROM tasks WHERE json_valid(record) ORDER BY created DESC LIMIT ?) GROUP BY family",
                newest,
            )
        except (JournalUnavailable, sqlite3.Error) as err:
            log.warning("the journal's tasks could not be counted by family (%s); the default order is used", err)
            return {}
        return {row["family"]: int(row["n"]) for row in rows if isinstance(row["family"], str)}

    def label(self, record: TaskRecord) -> TaskRecord:
        """``record`` (a copy the follower holds, or one just found on KIE) showing the prompt and session the
        journal keeps for it, and its output folder. Returned for convenience: the record itself is labelled. A
        journal that cannot be read leaves it as it is: a label never costs a task's status."""
        try:
            row = self.journal.task_row(record.task_id) if record.task_id else None
        except (JournalUnavailable, sqlite3.Error) as err:
            log.warning("task %s: its prompt and session could not be read (%s)", record.task_id, err)
            return record
        record.label(row["prompt"] if row else None, row["session"] if row else None, self.workspace)
        return record

    def find(self, *, limit: int = 50, **filters: Any) -> Found:
        """Records matching ``filters`` (``Journal.find_tasks``), newest first, at most ``limit``; rows that cannot
        be read are skipped and named in ``Found.unreadable``. ``Found.total`` counts every match (the journal is
        counted only when the limit was reached)."""
        found = Found(records=[])
        rows = self.journal.find_tasks(limit=limit, **filters)
        for row in rows:
            try:
                found.records.append(record_from_row(row, self.workspace))
            except (ValueError, TypeError) as err:
                log.warning("task %s: its journal record cannot be read (%s)", row["task_id"], _what_is_wrong(err))
                found.unreadable.append(row["task_id"])
        found.total = self.journal.count_tasks(**filters) if len(rows) >= limit else len(rows)
        return found

    def model_filter(self, name: str, catalog: "Catalog") -> str:
        """The model id ``name`` stands for in a search: an id the journal holds tasks of (a model KIE has since
        withdrawn, or one the catalogue does not know), else what the generate tools resolve it to (a friendly
        name or alias). A name the catalogue does not know, or that means several models, is refused with the
        candidates (``ModelFilterError``)."""
        from kie_mcp.catalog import AmbiguousModelError, UnknownModelError, WithdrawnModelError

        name = name.strip()
        if self.journal.find_tasks(model=name, limit=1):
            return name
        try:
            return catalog.resolve(name).id
        except WithdrawnModelError as err:  # its tasks are still this workspace's tasks
            return err.model_id
        except AmbiguousModelError as err:
            raise ModelFilterError(
                f"Model name {plain(name)} means several models; no task was listed. Pick one of: "
                f"{', '.join(err.candidates)}."
            ) from None
        except UnknownModelError as err:
            hint = f" Did you mean: {', '.join(err.candidates)}?" if err.candidates else ""
            raise ModelFilterError(
                f"No model is called {plain(name)} and no task of this workspace has that model id; no task was "
                f"listed.{hint} list_models shows every model kie-mcp knows."
            ) from None


class ModelFilterError(LookupError):
    """A model filter that names no model (or several): the message lists the candidates."""


def record_from_row(row: Any, workspace: Path | None = None) -> TaskRecord:
    """The record a journal row keeps, showing the row's prompt and session (``TaskRecord.label``)."""
    record = TaskRecord.model_validate_json(row["record"])
    record.label(row["prompt"], row["session"], workspace)
    return record
