"""Saving a finished task's results into the workspace before KIE's links expire.

Files go to ``outputs/{YYYY-MM-DD}-{slug}/`` (slug from the session name or the prompt; a named session's folder
is the one it already has, of the day it began: ``session_folder``), named by model,
task id and index, each download streamed and atomic, with one sidecar JSON per task beside them (written again
whenever it is missing, as a full disk may refuse it after the files are saved, and whenever it says another charge
than the task's record, as KIE's charge for an unknown price is measured after the files are saved). Every saved
file is recorded in the journal, so a restarted server knows what is already on disk and fetches only what is not:
in a worker thread while another program holds the journal's lock (``Journal.off_loop_when_locked``), as the
follower saves results in the background and a held lock must never freeze the server.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

import anyio

from kie_mcp.journal import JOURNAL_ERRORS, Journal
from kie_mcp.kie import KieClient
from kie_mcp.redact import REDACTED, redact, redact_value
from kie_mcp.tasks import TaskRecord
from kie_mcp.words import timestamp

from .downloads import (
    FINISHING,
    LOGS_HINT,
    Allowance,
    DownloadError,
    Expected,
    SavedFile,
    damage_of,
    download,
    not_whole,
    result_name,
    result_stem,
    session_folder,
    sweep_left_downloads,
    write_json_atomic,
)
from .saved import read_sidecar

log = logging.getLogger(__name__)

# After a failed download whose link still works: the follower tries again in the background, check_task at once.
LINKS_STILL_WORK = (
    "The result links still work for a while; kie-mcp tries again in the background (often at first, then every "
    "hour while KIE keeps them, and after a restart), and check_task tries at once."
)
# The same, for a task neither the journal nor the call log holds (a full disk took both): a restart cannot know it.
LINKS_STILL_WORK_UNRECORDED = (
    "The result links still work for a while; kie-mcp tries again in the background (often at first, then every "
    "hour while KIE keeps them; not after a restart, as the task is not recorded yet), and check_task tries at once."
)

# A result link that held a credential (the API key, or a bearer token): kept only redacted, so never fetched.
CREDENTIAL_LINK = (
    "the result link held a credential (shown as [redacted]), so kie-mcp did not fetch it and nothing was saved: the "
    f"link without it is no link to the file, and the credential is never sent to a file host. {LOGS_HINT}"
)


# A saved result whose bytes hold the API key (KIE wrote it into the file, as in a picture's comment or tags).
KEY_IN_FILE = (
    "its bytes hold your KIE API key (KIE wrote it into the file, probably its metadata): it is kept, as it is paid "
    "for, but never served by kie://outputs, and its preview holds pixels only. Do not share the file as it is."
)


class Saved(NamedTuple):
    """What ``save_results`` did: its problems as readable lines (empty when all is saved), and whether it wrote the
    task's sidecar (the gallery, built from sidecars, is then out of date even when no file was new)."""

    problems: list[str]
    described: bool = False


async def save_results(
    kie: KieClient,
    journal: Journal,
    workspace: Path,
    record: TaskRecord,
    *,
    max_bytes: int = 2 * 1024**3,
    within: Allowance = FINISHING,
) -> Saved:
    """Download what is not on disk yet, and write the sidecar again when it is not what it should say. Each
    download ends ``within`` its allowance (``downloads.Allowance``): a slower one is left to the next try, its link
    kept. First, when a result is still to be fetched, what a server now gone left of its downloads of these results
    (temporary files: it was stopped or killed mid-download) is removed (``sweep_left_downloads``): whoever saves the
    results clears it, so no partial file stays beside them (with every result saved, the start's sweep does)."""
    if record.state != "succeeded" or not record.task_id or not record.result_urls:
        return Saved([])
    row = journal.task_row(record.task_id)
    session = row["session"] if row and row["session"] else None
    label = session or (row["prompt"] if row else None) or record.model
    day = datetime.fromtimestamp(record.created_at).date()
    folder = session_folder(workspace, label, day, named=session is not None)
    have = {f["idx"]: f for f in journal.files_for(record.task_id)}
    for unrecorded in record.unrecorded_rows():  # saved before, the journal refusing their rows: not fetched again
        have.setdefault(unrecorded[1], {"path": unrecorded[2]})
    missing = {
        i for i in range(1, len(record.result_urls) + 1) if i not in have or not (workspace / have[i]["path"]).is_file()
    }
    if missing:  # a save with nothing to fetch (check_task of a saved task) never lists the folder
        swept = await anyio.to_thread.run_sync(sweep_left_downloads, folder, result_stem(record.model, record.task_id))
        if swept:
            log.info("task %s: removed %d unfinished download(s) of a kie-mcp that stopped", record.task_id, swept)
    problems: list[str] = []
    logged = row is not None or await anyio.to_thread.run_sync(_logged, workspace, record.task_id)
    links_work = LINKS_STILL_WORK if logged else LINKS_STILL_WORK_UNRECORDED
    saved: list[SavedFile] = []
    for index, url in enumerate(record.result_urls, 1):
        if index not in missing:
            continue
        if REDACTED in url:  # it held the key (redacted as KIE's answer was read): fetched so, it is a wrong link
            problems.append(f"{record.task_id} result {index}: {CREDENTIAL_LINK}")
            record.refuse_link(url, "it held a credential")  # never fetched, now or later
            continue
        dest = folder / result_name(record.model, record.task_id, index, _guess_ext(url))
        try:
            expected = _expected(record.kind, index)
            most = _most_bytes(record, expected, max_bytes)
            file = await download(
                kie.files,
                url,
                dest,
                expected=expected,
                max_bytes=most,
                remint=kie.download_url,
                made=day,
                within=within,
                renewal_refused_before=record.renewal_refused(url),
            )
        except DownloadError as err:
            problems.append(f"{record.task_id} result {index}: {err}")
            if err.refused:  # never fetched, now or later: not tried again in the background
                record.refuse_link(url, err.why)
            elif err.unrenewed:  # KIE would not renew it: once more later, then refused for good
                record.note_renewal_refused(url)
            if not (err.expired or err.refused) and links_work not in problems:  # their errors say what to do
                problems.append(links_work)
            continue
        relative = file.path.relative_to(workspace).as_posix()
        row = (record.task_id, index, relative, file.sha256, file.size, file.mime, url, file.holds_key)
        try:  # one statement: waited for in a worker thread while another program holds the journal's lock
            await journal.off_loop_when_locked(functools.partial(journal.add_file, *row))
        except JOURNAL_ERRORS as err:  # the file is on disk: named all the same, and said to be unrecorded
            record.keep_unrecorded(relative, row)
            problems.append(
                f"{record.task_id} result {index}: saved to {relative}, but not recorded in the journal "
                f"({type(err).__name__}: {err}); check_task records it once the journal is writable."
            )
        if file.damaged:  # kept (it is paid for), and said: a picture that does not open is no clean success
            problems.append(f"{record.task_id} result {index}: {damaged_result(relative, file.damaged, file.mime)}")
        if file.holds_key:  # kept (it is paid for), and said: the file cannot be redacted
            problems.append(f"{record.task_id} result {index}: saved to {relative}, but {KEY_IN_FILE}")
        saved.append(file)
    record.files = [f["path"] for f in journal.files_for(record.task_id)]
    record.name_unrecorded()  # and those the journal refused: their sidecar names them too
    described, problem = describe(journal, workspace, record, files_saved=bool(saved))
    problems += [problem] if problem else []
    record.note_save_problems(problems)  # the gallery's tile says them (a fresh save replaces them)
    return Saved(problems, described)


def _logged(workspace: Path, task_id: str) -> bool:
    """Whether the call log holds the create of ``task_id``: a restart finds there a task the journal lacks. Read in
    a worker thread: the log may be long."""
    from kie_mcp.kie.calllog import CALL_LOG, logged_task

    return logged_task(workspace / CALL_LOG, task_id)


def damaged_result(relative: str, why: str, mime: str) -> str:
    """What to say of a saved result that is not whole (``downloads.damaged``: an image that does not decode, a
    video or sound cut short)."""
    return (
        f"saved to {relative}, but {not_whole(mime)} ({redact(why)}); kie-mcp fetched it once more, with no better "
        f"copy. KIE may have stored it damaged: {LOGS_HINT}"
    )


def describe(
    journal: Journal, workspace: Path, record: TaskRecord, *, files_saved: bool = False
) -> tuple[bool, str | None]:
    """Write ``record``'s sidecar when it is not what it should say: after new files (``files_saved``), when it is
    missing (a full disk refused it last time), or when it says another charge than the record (KIE's charge for an
    unknown price, measured from the balance after the files were saved, by this call or a process before). One
    stat and a read of a few KB otherwise. Returns whether it was written, and the line saying why it could not be."""
    path = sidecar_path(workspace, record)
    if path is None:
        return False, None
    try:
        if files_saved or not path.exists() or _charge_differs(path, record):
            body = sidecar(journal, record, workspace=workspace, damage=_damage_said(path))
            write_json_atomic(path, body)  # never half-written: its temporary file is removed
            return True, None
    except OSError as err:
        return False, sidecar_unwritten(record, path, err)
    return False, None


def _damage_said(path: Path) -> dict[tuple[str, str], str]:
    """Why each file of the sidecar at ``path`` is not whole, as it says (a process before this one saw it saving
    it), by (path, sha256): a sidecar written again keeps it for the same bytes."""
    said = read_sidecar(path) if path.exists() else None
    entries = said.get("files") if said is not None else None
    return {
        (str(entry.get("path")), str(entry.get("sha256"))): entry["damaged"]
        for entry in (entries if isinstance(entries, list) else [])
        if isinstance(entry, dict) and isinstance(entry.get("damaged"), str)
    }


def _charge_differs(path: Path, record: TaskRecord) -> bool:
    """Whether the sidecar at ``path`` says another charge than ``record``. One that cannot be read as a sidecar
    (not a regular file, too large, not JSON) is left as it is: never written over on a guess."""
    body = read_sidecar(path)
    return body is not None and body.get("credits_charged") != record.credits_charged


def write_joined_sidecar(
    video: Path, workspace: Path, session: str | None, clips: Sequence[str], *, sandbox: bool = False
) -> None:
    """A joined video's sidecar (``<name>.json`` beside it): its session as typed, which heads its gallery section
    when the folder's name could not spell it, the clips it joined (its card says how many), and whether it was
    joined under ``--sandbox`` (its card's badge, as a task's). Never replaces a file (the join's name was chosen
    with its sidecar's free: ``stitch._place``); a disk that refuses it costs only the sidecar (logged)."""
    path = video.with_suffix(".json")
    if os.path.lexists(path):  # taken since the name was chosen: another's, never overwritten nor claimed
        log.warning("the joined video's sidecar %s was not written: a file of that name appeared", path)
        return
    body = {
        "session": redact(session) if session else None,
        "joined_from": [redact(clip) for clip in clips],
        "files": [{"path": video.relative_to(workspace).as_posix()}],
        "saved_at": timestamp(),
        "sandbox": sandbox,
    }
    try:
        write_json_atomic(path, body)
    except OSError as err:
        log.warning("could not write the joined video's sidecar %s: %s", path, err)


def sidecar_path(workspace: Path, record: TaskRecord) -> Path | None:
    """Where the sidecar of ``record``'s saved files is: ``<model>_<task>.json`` beside its first file; None when no
    file is saved, or the journal's path for it is not one kie-mcp writes (absolute, or leaving the workspace)."""
    if not record.files:
        return None
    first = PurePosixPath(record.files[0])
    if first.is_absolute() or ".." in first.parts or "\\" in record.files[0] or ":" in record.files[0]:
        return None
    return Path(workspace) / first.parent / f"{first.stem.rsplit('_', 1)[0]}.json"


def sidecar_missing(workspace: Path, record: TaskRecord) -> bool:
    """True when ``record``'s saved files are all on disk and their sidecar is not (a full disk refused it): one
    stat when it is there. Files the user deleted are not a reason to save anything again."""
    path = sidecar_path(workspace, record)
    try:
        if path is None or path.exists():
            return False
        return all((Path(workspace) / name).is_file() for name in record.files)
    except OSError:  # a folder it may not look into: nothing it could write there either
        return False


def sidecar_unwritten(record: TaskRecord, path: Path, err: OSError) -> str:
    """The line for a sidecar the disk refused. True about the files: only the sidecar is missing."""
    kept = (
        "its result files are saved"
        if record.unsaved_links == 0
        else f"the {len(record.files)} result file(s) downloaded so far are saved"
    )
    why = redact(err.strerror or str(err))
    return (
        f"{record.task_id}: {kept}; their sidecar {path.name} (prompt, model, cost) could not be written ({why}). "
        "kie-mcp writes it again in the background, and check_task writes it at once; free some disk space if it "
        "is full."
    )


def sidecar(
    journal: Journal,
    record: TaskRecord,
    *,
    workspace: Path | None = None,
    damage: dict[tuple[str, str], str] | None = None,
) -> dict[str, Any]:
    """Everything needed to know later what a file is and what it cost. The prompt and parameters are redacted: the
    API key, typed into a prompt or a parameter, is never written to a file. A file that is not whole says why
    (``damaged``: as this process saw it saving it, under ``workspace``, or as ``damage``, by path and sha256, an
    earlier sidecar said), so its gallery card says so after a restart too."""
    files = []
    recorded = [dict(f) for f in journal.files_for(record.task_id or "")]
    named = {f["path"] for f in recorded}
    unrecorded = [  # saved while the journal refused their rows: the sidecar names them all the same
        dict(zip(("task_id", "idx", "path", "sha256", "size", "mime", "source_url", "holds_key"), row, strict=True))
        for row in record.unrecorded_rows()
    ]
    for f in [*recorded, *(f for f in unrecorded if f["path"] not in named)]:
        entry = {key: f[key] for key in ("path", "sha256", "size", "mime", "source_url")}
        why = damage_of(Path(workspace) / f["path"]) if workspace is not None else None
        if why is not None:
            why = f"{not_whole(f['mime'])} ({redact(why)})"
        why = why or (damage or {}).get((str(f["path"]), str(f["sha256"])))
        if why:
            entry["damaged"] = why
        files.append(entry)
    assert record.task_id is not None
    row = journal.task_row(record.task_id)
    attempt = journal.query("SELECT * FROM attempts WHERE task_id = ?", record.task_id)
    return {
        "task_id": record.task_id,
        "model": record.model,
        "family": record.family,
        "parent_task_id": record.parent_task_id,  # a follow-up (continue_video): the task it continues
        "operation": record.operation,
        "prompt": redact_value(row["prompt"]) if row else None,
        "session": redact_value(row["session"]) if row and row["session"] else None,  # as typed: the gallery's heading
        "parameters": redact_value(attempt[0]["params"]) if attempt else None,
        "credits_quoted": record.credits_quoted,
        "credits_charged": record.credits_charged,
        "created_at": timestamp(record.created_at),
        "saved_at": timestamp(),
        "sandbox": record.sandbox,
        "files": files,
    }


def _expected(kind: str | None, index: int) -> Expected:
    """What a task's ``index``-th result link may serve. A video task's first link is its video; the links after
    it may be its first or last frame (images) when the request asked for them (e.g. Seedance's
    ``return_last_frame``; KIE's ``firstFrameUrl``/``lastFrameUrl`` come after the videos)."""
    if kind == "video":
        return "video" if index == 1 else ("video", "image")
    return kind if kind in ("image", "audio") else ("image", "video", "audio")  # a model kie-mcp does not know


# The largest image a result may be: KIE's image models make 4K at most (an 8-bit RGBA PNG of 26 megapixels stays under
# this; a 4K PNG is typically 30-50 MB). Upscalers (Topaz: up to 20,000 px on a side) keep the general limit.
MOST_IMAGE_BYTES = 100 * 1024**2


def _most_bytes(record: TaskRecord, expected: Expected, max_bytes: int) -> int:
    """The largest file ``record``'s result of the ``expected`` kind may be: ``MOST_IMAGE_BYTES`` for an image of a
    model the catalogue knows and that does not upscale, else ``max_bytes`` (a video, a model kie-mcp does not know:
    a paid result is never refused on a guess)."""
    if expected != "image":
        return max_bytes
    from kie_mcp.catalog import load_catalog  # parsed once per process, by the server long before a save

    spec = load_catalog().get(record.model)
    if spec is None or spec.kind != "image" or "upscale" in spec.capabilities:
        return max_bytes
    return min(max_bytes, MOST_IMAGE_BYTES)


def _guess_ext(url: str) -> str:
    tail = url.split("?", 1)[0].rsplit("/", 1)[-1]
    return tail.rsplit(".", 1)[-1].lower() if "." in tail and len(tail.rsplit(".", 1)[-1]) <= 5 else "bin"
