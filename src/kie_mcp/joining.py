"""Joining saved clips into one video (stitch_videos): which clips a request stands for, each judged before ffmpeg
sees it, the folder the join goes in, the join, its sidecar and its place in the gallery, and what the answer says.

The surface's ``stitch_videos`` parses its arguments, calls ``join`` and shapes its answer from the ``Joined`` it
returns. A chain (``chain=true``: a task id standing for its whole chain of follow-ups, ``followups.chain_clips``)
is expanded and checked here; a clip is a task id (its saved main video) or a path, read by upload_file's rules
(``_clip_path``). What ffmpeg does is ``media/stitch.py``'s.

Everything refused is refused in the call, before any folder is made. The join itself (a re-encode of 50 clips with
captions takes over a minute, 200 up to its 600 s budget) runs in the runtime's background (``Runtime.joins``), one per
identical request (``_request_key``), never in the call: hosts end a call after 60 s (Claude Desktop, Cursor, VS
Code, the Inspector; Codex at its tool_timeout_sec), and ending the call must not end the join. The call waits up to
its wait_seconds with progress, then answers ``status="joining"`` with the path the join is saved at (decided as it
starts); the same call again waits for that join, or gets what it made. Its end is told in a log message
(``Follower.tell``). A join that fails, or that the runtime's close stops, leaves no file and no folder it made.

Loaded by the tool on its first call, with ffmpeg's plumbing and the gallery it imports: never at start-up.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import anyio
import anyio.to_thread

from kie_mcp import followups
from kie_mcp.media import gallery as pages
from kie_mcp.media import stitch as stitching
from kie_mcp.media.duration import video_seconds
from kie_mcp.media.inputs import Accepts, FileStamp, MissingFile, NotRegularFile, RefusedInput, inspect_local
from kie_mcp.media.results import write_joined_sidecar
from kie_mcp.media.saved import OUTPUTS, changed_file, kept
from kie_mcp.media.stitch import StitchError
from kie_mcp.redact import redact
from kie_mcp.words import path_text

if TYPE_CHECKING:
    from kie_mcp.runtime import Join, Runtime
    from kie_mcp.tasks import TaskRecord


@dataclass(frozen=True)
class JoinedFile:
    """The answer's saved file: the video ``Joined.path`` names, as its saved-file entry shows it."""

    task_id: str | None  # the task whose saved video it is (a chain that is one video already); None for a join
    mime: str
    seconds: float | None  # its length as its header says


@dataclass(frozen=True)
class Joined:
    """What a join made (or, for a chain that is one video already, named): stitch_videos' answer, unshaped."""

    path: str  # relative to the workspace
    duration: float | None
    reencoded: bool | None  # None while it is being joined (a copy may still fail over to a re-encode)
    message: str
    saved: JoinedFile | None  # None: a file of the user's own, named but not a saved file; or not joined yet
    status: Literal["joined", "joining"] = "joined"


class Waits(Protocol):
    """How long a call waits for its join (``generation.Wait``: wait_seconds counted from the call's arrival)."""

    def left(self) -> float: ...


Told = Callable[[float, str], Awaitable[None]]  # a progress notification: seconds so far, and what is being done
PROGRESS_EVERY = 1.0  # seconds between two progress notifications while a call waits for its join
BUDGET = 600.0  # seconds a join gets (``stitch.stitch``'s timeout), whoever waits for it


async def join(
    rt: Runtime,
    clips: list[str],
    *,
    output_name: str | None,
    session: str | None,
    captions: Sequence[tuple[float, float, str]],
    chain: bool,
    roots: tuple[Path, ...],
    wait: Waits | None = None,
    progress: Told | None = None,
) -> Joined:
    """Join ``clips`` (task ids or video paths, in order) with ``captions`` (start, end, text) burned in, into the
    session's folder (else the clips' own, else a folder of the day named after ``output_name``), as
    stitch_videos asks; ``roots``: the local folders the client shares as MCP roots, read as upload_file reads them.
    Refusals are ``StitchError``s saying what to do; a refused join writes nothing and makes no folder.

    The join itself runs in the runtime's background (``Runtime.joins``), one per identical request: this call waits
    for it up to ``wait.left()`` (None: until it ends), sending ``progress``, and answers ``status="joining"`` with
    the path it is saved at when it has not ended by then. A call of the same request finds that join, running or
    ended, and never joins again (a failure is answered once; its file gone, a join is made again)."""
    if chain:  # a follow-up stands for the chain that ends with it (followups.chain_clips)
        chains = [(clip, followups.chain_clips(rt, clip) or [clip]) for clip in clips]
        if (overlap := followups.chain_overlap(chains)) is not None:  # two chains sharing a clip
            raise StitchError(overlap)
        clips = [link for _, links in chains for link in links]
    overlap, notes = followups.join_check(rt, clips, chained=chain)  # footage twice, an extension left out
    if overlap is not None:
        raise StitchError(overlap)
    stitching.check_clip_count(len(clips))  # chains can grow past the argument's limit
    allowed = (*rt.settings.input_roots, *roots)  # the client's roots too, as upload_file
    if chain and len(clips) == 1 and not captions:  # the chain is one video already: nothing to join
        return await _chain_in_one(rt, clips[0], await _clip_path(rt, clips[0], allowed), notes)
    # output_file_name refuses paths, NUL and overlong names
    name = stitching.output_file_name(output_name, f"stitched-{len(clips)}-clips")
    paths = [await _clip_path(rt, clip, allowed) for clip in clips]
    parts = [stitching.Caption(start, end, text) for start, end, text in captions]
    # what is refused of the clips and captions alone, and no ffmpeg, before the session folder is made:
    # such a join makes none
    await anyio.to_thread.run_sync(stitching.check_request, paths, parts or None)
    stitching.find_ffmpeg()
    # a session named as its folder is: said, as found before the join makes it
    named = await anyio.to_thread.run_sync(stitching.session_note, rt.settings.workspace, session)
    key = await anyio.to_thread.run_sync(_request_key, clips, paths, parts, output_name, session, chain)
    request = _Request(clips, paths, parts, output_name, name, session, [*notes], named)
    async with rt.joins.starting:  # two identical calls at once: one join
        found = rt.joins.get(key)
        if found is not None and not await anyio.to_thread.run_sync(_answers_still, rt.settings.workspace, found):
            rt.joins.forget(found)  # its failure was answered, or its file is gone or another: joined again
            found = None
        if found is None and len(rt.joins.running()) >= rt.joins.AT_MOST:  # refused before any folder is made
            raise StitchError(
                f"{rt.joins.AT_MOST} joins are running or waiting; ask again once one has finished. Nothing was joined."
            )
        job = found or await _start(rt, key, request)
    return await _answer(rt, job, request, wait, progress)


@dataclass(frozen=True)
class _Request:
    """One stitch_videos request, checked: what its join and its answers are made of."""

    clips: list[str]  # as given (a chain's expanded), for the sidecar
    paths: list[Path]  # the clips' files, judged
    captions: list[stitching.Caption]
    output_name: str | None
    name: str  # the file name asked for (``stitch.output_file_name``)
    session: str | None
    notes: list[str]  # footage twice, an extension left out (``followups.join_check``)
    named: str  # a session named as its folder is (``stitch.session_note``)

    def what(self) -> str:
        count = f"{len(self.paths)} clip{'s' if len(self.paths) != 1 else ''}"
        return f"re-encoding {count} with captions" if self.captions else f"joining {count}"


def _request_key(
    clips: list[str],
    paths: list[Path],
    captions: list[stitching.Caption],
    output_name: str | None,
    session: str | None,
    chain: bool,
) -> str:
    """The digest that names a request's join: the clips as given and as resolved (each file by its stamp,
    ``FileStamp``: a clip replaced or changed since is another join), the captions, the output name, the session and
    chain. Reads the clips' metadata: a worker thread's job."""
    files = []
    for path in paths:
        try:
            found = path.stat()
        except OSError as err:
            raise StitchError(f"The clip {path_text(path)} cannot be read now: {err.strerror or err}.") from None
        files.append([str(path), *FileStamp.of(found)])
    said = [[c.start, c.end, c.text] for c in captions]
    text = json.dumps([clips, files, said, output_name, session, chain], ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _answers_still(workspace: Path, job: Join) -> bool:
    """Whether a repeated request is answered with ``job``: while it runs, with its failure until one answer gave it,
    and with its video while that very file is there (a video deleted since, or another file saved under its name,
    is joined again). Looks at the disk."""
    if not job.done.is_set():
        return True
    if job.failure is not None:
        return not job.told
    result = job.result
    if not isinstance(result, Joined) or job.identity is None:
        return False
    return _identity(workspace / result.path) == job.identity


def _identity(path: Path) -> FileStamp | None:
    """Which file is at ``path`` now, and in which state (``FileStamp``), or None when none is there."""
    try:
        return FileStamp.of(os.stat(path))
    except OSError:
        return None


async def _start(rt: Runtime, key: str, request: _Request) -> Join:
    """Make the join's folder, claim its file's name (never one another join being made now is saved as, by this
    server or another on the workspace: ``stitch.free_name``) and start it in the runtime's background."""
    from kie_mcp.runtime import Join

    workspace = rt.settings.workspace
    folder, made = await anyio.to_thread.run_sync(
        _folder_for, workspace, request.paths, request.session, request.output_name
    )
    running = rt.joins.running()
    held = {job.target for job in running}
    made = made or any(job.folder == folder and job.made_folder for job in running)  # made for a join running now
    asked = folder / request.name
    target: Path | None = None
    try:
        target = await anyio.to_thread.run_sync(stitching.free_name, asked, held)
        why = "" if target == asked else await anyio.to_thread.run_sync(stitching.taken_words, asked)
        note = f"{why}, so this join is {target.name}." if why else ""
        relative = (folder / target.name).relative_to(workspace).as_posix()
        job = Join(key, request.what(), relative, target, folder, made, note=note)
        rt.joins.start(job, functools.partial(_make, rt, request), functools.partial(_ended, rt))
    except BaseException:
        if target is not None:
            stitching.unclaim(target)
        _drop_folder(rt, folder, made)
        raise
    return job


def _folder_for(workspace: Path, paths: list[Path], session: str | None, output_name: str | None) -> tuple[Path, bool]:
    """The join's folder (``stitch.join_folder``, made now) and whether it was made for it. Lists ``outputs/``: a
    worker thread's job."""
    try:
        before = set(os.listdir(workspace / OUTPUTS))
    except OSError:
        before = set()
    folder = stitching.join_folder(workspace, paths, session, output_name)
    return folder, folder.name not in before


def _drop_folder(rt: Runtime, folder: Path, made: bool, job: Join | None = None) -> None:
    """Remove the folder made for a join (``job``) that failed or was stopped, when it is empty and no other join
    running now is saved in it: a failed join leaves no empty session folder behind."""
    if not made or any(other is not job and other.folder == folder for other in rt.joins.running()):
        return
    with contextlib.suppress(OSError):  # not empty (a result saved there meanwhile), or gone: left as it is
        folder.rmdir()


async def _make(rt: Runtime, request: _Request, job: Join) -> Joined:
    """The join, in the runtime's background, once it has a slot (``Joins.slots``: a few at once, its budget counted
    from then): the video, its sidecar, its place in the gallery, and the answer. Its name's claim ends with it."""
    try:
        async with rt.joins.slots:
            job.begin()
            done = await stitching.stitch(request.paths, job.target, captions=request.captions or None, timeout=BUDGET)
    except BaseException:  # failed, over its budget, or stopped with the server (or while it waited): nothing is left
        stitching.unclaim(job.target)  # first: the claim alone would keep the folder
        _drop_folder(rt, job.folder, job.made_folder, job)
        raise
    await anyio.to_thread.run_sync(stitching.unclaim, job.target)  # placed: a file holds the name now
    return await _made(rt, request, job, done)


async def _made(rt: Runtime, request: _Request, job: Join, done: stitching.StitchResult) -> Joined:
    """The join's video placed (``done``): its sidecar, its place in the gallery, its identity, and the answer."""
    # Named from the folder asked for: stitch resolves its target, which in an outputs/ linked to another disk
    # lies outside the workspace.
    placed = job.folder / done.path.name
    sidecar = functools.partial(write_joined_sidecar, sandbox=rt.settings.sandbox)  # its card's badge
    await anyio.to_thread.run_sync(sidecar, placed, rt.settings.workspace, request.session, request.clips)
    joined_video = [(placed, "video")]
    await pages.refresh(rt.settings.workspace, rt.settings.preview_px, joined_video)  # joins the gallery
    relative = placed.relative_to(rt.settings.workspace).as_posix()
    renamed = stitching.name_note(request.output_name, request.name)  # final.mov as final.mp4, 夏季广告 as its hash
    joined_text = f"Joined {len(request.paths)} clip(s) into {relative}. {done.note}"
    message = " ".join([*request.notes, joined_text, job.note, _moved(job, relative), renamed, request.named]).strip()
    seconds = await anyio.to_thread.run_sync(video_seconds, placed, "video/mp4")  # its header: off the loop
    job.identity = await anyio.to_thread.run_sync(_identity, placed)
    return Joined(relative, done.duration, done.reencoded, message, JoinedFile(None, "video/mp4", seconds))


def _moved(job: Join, relative: str) -> str:
    """What is said when a join landed elsewhere than the path its first answer named (``relative``)."""
    if relative == job.path:
        return ""
    return f"It is saved as {relative}, not {job.path} as said while it was being made: that name was taken meanwhile."


async def _ended(rt: Runtime, job: Join) -> None:
    """Tell the client a join ended (a log message, as a task's end is told): the call that asked for it may have
    stopped waiting long ago (a host's 60 s timeout)."""
    took = f"{job.what} took {job.elapsed():.0f} s"
    if job.failure is not None:
        line = f"The join into {job.path} failed ({took}), and nothing was saved: {redact(str(job.failure))}"
    else:
        saved = job.result.path if isinstance(job.result, Joined) else job.path  # where it landed
        line = (
            f"Joined: {saved} is saved ({took}); stitch_videos with the same arguments answers with it. "
            f"{_moved(job, saved)}"
        ).strip()
    rt.follower.tell(line, waiters=job.waiting)


async def _answer(rt: Runtime, job: Join, request: _Request, wait: Waits | None, progress: Told | None) -> Joined:
    """Wait for ``job`` up to what is left of ``wait`` (sending ``progress`` every ``PROGRESS_EVERY``), then answer
    with what it made, its failure (a ``StitchError``), or where it is still being made and how to get it."""
    if not job.done.is_set():
        job.waiting += 1
        try:
            with anyio.move_on_after(math.inf if wait is None else wait.left()):
                while not job.done.is_set():
                    if progress is not None:
                        await progress(job.elapsed(), f"{job.what}: {_so_far(rt, job)}")
                    with anyio.move_on_after(PROGRESS_EVERY):
                        await job.done.wait()
        finally:
            job.waiting -= 1
    if job.done.is_set():
        if job.failure is not None:
            job.told = True
            if isinstance(job.failure, StitchError):
                raise StitchError(str(job.failure))
            raise job.failure
        if isinstance(job.result, Joined):
            return job.result
    next_step = (
        "call stitch_videos again with the same arguments (it is not joined twice) to get it; it is saved as "
        f"{job.path}."
    )
    doing = (
        f"Not joined yet: {job.what}, {_so_far(rt, job)} (a join gets up to {BUDGET:.0f} s once it runs). It goes "
        f"on whether or not a call waits for it: {next_step}"
    )
    renamed = stitching.name_note(request.output_name, request.name)
    message = " ".join([*request.notes, doing, job.note, renamed, request.named]).strip()
    return Joined(job.path, None, None, message, None, status="joining")


def _so_far(rt: Runtime, job: Join) -> str:
    """How far a join not ended is: its seconds so far, or the joins it waits behind for a slot."""
    if job.running_now:
        return f"{job.elapsed():.0f} s so far"
    ahead = rt.joins.ahead_of(job)
    return (
        f"it waits behind {ahead} other join{'s' if ahead != 1 else ''} (at most {rt.joins.AT_ONCE} run at once) "
        f"and starts when one ends, {job.elapsed():.0f} s so far"
    )


async def _chain_in_one(rt: Runtime, clip: str, path: Path, notes: list[str]) -> Joined:
    """stitch_videos' answer when chain=true leaves one clip and there are no captions: that clip's video (``path``,
    judged as a clip) is already the whole chain, so nothing is joined or written; the answer names it and says why.
    Its name and length are read in a worker thread (``stitch.chain_video``): its header read on the event loop held
    up every other request meanwhile, seconds on a slow or network disk.
    """
    record = followups.clip_task(rt, clip)
    saved = [f for f in rt.journal.files_for(clip) if f["idx"] == followups.MAIN_RESULT]
    if record is not None and record.parent_task_id and record.operation == "extend":
        why = f"{clip} is an extension whose video already holds the whole video so far, from the first clip on"
    elif record is not None and record.parent_task_id:
        why = f"{clip} upgrades {record.parent_task_id}, and its video already holds that clip's whole chain"
    else:
        why = f"{clip} is the only clip of its chain (it continues no earlier clip)"
    found = saved[0]["path"] if saved else None  # else a file of the user's own (chain=true of a path)
    relative, duration = await anyio.to_thread.run_sync(stitching.chain_video, rt.settings.workspace, path, found)
    message = " ".join([*notes, f"Nothing was joined: {why}, so it is the video: {relative}."])
    shown = JoinedFile(clip, saved[0]["mime"], duration) if saved else None
    return Joined(relative, duration, False, message, shown)


# stitch_videos' clips: any video by its bytes, of any size (nothing is uploaded, so no upload limit applies, and a
# refusal says nothing was joined); a still is animated first.
_ANIMATE_FIRST = (
    "To put this still in the video, animate it first: estimate_cost, then generate_video(images=[{path}], prompt= "
    "its motion and sound), and join that clip's task id."
)
_CLIP_ACCEPTS = Accepts(
    frozenset({"video"}),
    "stitch_videos",
    limit_mb=float("inf"),
    urls=False,
    nothing="Nothing was joined.",
    instead=(("image", _ANIMATE_FIRST),),
)


async def _clip_path(rt: Runtime, clip: str, allowed: tuple[Path, ...]) -> Path:
    """A clip by task id (its saved video) or by path, judged by upload_file's rules before ffmpeg sees it: inside
    the allowed folders (``allowed``: the workspace, KIE_ALLOWED_DIRS and the client's MCP roots), never private
    (.env, dotfiles, .kie-mcp/, logs/), and a video by its bytes; the stitched file lands in outputs/, which
    kie://outputs/ serves, so anything read here could otherwise leak through it."""
    videos = [f for f in rt.journal.files_for(clip) if f["mime"].startswith("video/")]
    # Its main video only: a Veo extension's later file is only its new part, which would stand for the whole clip.
    saved = [f for f in videos if f["idx"] == followups.MAIN_RESULT]
    if videos and not saved:
        raise StitchError(
            f"Task {clip}'s main video (its first result) was not saved in this workspace; its other file holds only "
            f"part of it (a Veo extension's new part). Call check_task(task_id='{clip}') to save it again from KIE "
            "(its files are kept about 14 days), then join again."
        )
    if not saved and (task := rt.tasks.get(clip)) is not None:
        raise StitchError(_no_clip(task, rt.settings.download))
    given = str(rt.settings.workspace / saved[0]["path"]) if saved else clip  # a saved file is judged the same way
    try:  # reads the file's first bytes: in a worker thread
        path, _ = await anyio.to_thread.run_sync(
            inspect_local, given, rt.settings.input_bases, allowed, _CLIP_ACCEPTS, rt.settings.started_in, rt.saved_here
        )
    except NotRegularFile as err:  # something is there (a folder, a FIFO): said as what it is, never "missing"
        raise StitchError(f"stitch_videos refused the clip {clip!r}. {err}") from None
    except MissingFile as err:
        if saved:
            raise StitchError(_clip_gone(clip, saved[0]["path"])) from None
        raise StitchError(
            f"{clip!r} is neither a task id with a saved video nor a video file in the workspace."
            + (f" {err.elsewhere}" if err.elsewhere else "")
        ) from None
    except RefusedInput as err:
        # The clip is never followed by ": ": "'../etc/passwd': '../etc..." reads as a password, redacted in the answer
        raise StitchError(f"stitch_videos refused the clip {clip!r}. {err}") from None
    if saved:  # never a file changed since it was saved in the task's place (read here, as it is about to be used)
        state = await anyio.to_thread.run_sync(
            kept, rt.settings.workspace / saved[0]["path"], saved[0]["size"], saved[0]["sha256"]
        )
        if state == "missing":  # gone since it was looked at
            raise StitchError(_clip_gone(clip, saved[0]["path"]))
        if state != "kept":
            edited = "give its path in clips in place of the task id, then join again."
            raise StitchError(changed_file(clip, saved[0]["path"], edited))
    return path


def _clip_gone(task_id: str, relative: str) -> str:
    """What to say of a task's saved video that is not there any more (deleted, moved)."""
    return (
        f"Task {task_id}'s saved video {relative} is not there any more. Call check_task(task_id='{task_id}') to "
        "save it again from KIE (its files are kept about 14 days), then join again."
    )


def _no_clip(task: TaskRecord, downloads: bool) -> str:
    """Why a task of this workspace gives stitch_videos no clip, and what to do instead."""
    name = task.task_id
    if task.kind is not None and task.kind != "video":
        still = (
            " To put its still in the video, animate it first: estimate_cost, then generate_video(images=[its saved "
            "path]), and join that clip's task id."
            if task.kind == "image"
            else ""
        )
        return (
            f"Task {name} is an {task.kind} task, not a video: give a video task's id, or a video file. Nothing was "
            f"joined.{still}"
        )
    if task.state in ("failed", "unknown"):
        return (
            f"Task {name} {'failed' if task.state == 'failed' else 'has an unknown outcome'} and has no video to join; "
            "leave it out, or make the clip again."
        )
    if not downloads:
        return (
            f"Task {name}'s video is not saved: downloads are off (KIE_DOWNLOAD=never), and stitch_videos joins saved "
            "files only. Set KIE_DOWNLOAD=always and call check_task to save it, or join files you saved yourself."
        )
    if task.finished:
        return f"Task {name} finished without a saved video; check_task(task_id='{name}') saves it, then join again."
    return f"Task {name} has no saved video yet; check_task saves it once it has finished."
