"""MCP Apps (``io.modelcontextprotocol/ui``): the results gallery and the approval card, drawn by the host.

One HTML document (``app.html``: inline JavaScript and CSS, no network, no external origin in its CSP) is served as
``ui://kie-mcp/results.html`` with the ``text/html;profile=mcp-app`` type, and the tools that make or show results
(``estimate_cost``, ``generate_image``, ``generate_video``, ``continue_video``, ``check_task``, ``list_tasks``) name
it in ``_meta.ui.resourceUri``. A host that renders apps shows the tool's result in it: a quote as an approval card
(cost, caps, model, settings, input pictures, Approve and Decline), results as a gallery (images, playable videos,
state and progress kept current through ``check_task``). Media reach the view as data URLs: the preview images already
in the result, else (``list_tasks`` carries none) the small kept preview through ``resources/read`` of
``kie://previews/...`` (an image's thumbnail, a video's poster frame), and the full file, ``kie://outputs/...``, when
the person asks for it (a picture clicked to widen, a video's play, a picture with no preview clicked to load).

What the view needs beyond the result (the request's arguments, caps and today's spend, input pictures, prompts) goes
into the result's ``_meta`` only for a client that declared the extension, so every other client gets exactly the
result it always got.

The card cannot approve anything the model could not: Approve calls the generate tool, which goes through the
unchanged spend gate (see README, "The spend gate"). Decline calls ``decline_quote``, a tool only the app calls
(``app_only_meta``), which voids the quote: it never approves or spends.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from mcp.server.apps import Apps, ResourceCsp, client_supports_apps

from kie_mcp.redact import hides_credentials, redact, redact_value
from kie_mcp.words import unseen_escaped

if TYPE_CHECKING:
    from kie_mcp.generation import Plan
    from kie_mcp.media.inputs import LocalFile
    from kie_mcp.runtime import Runtime
    from kie_mcp.spend import Quote
    from kie_mcp.tasks import TaskRecord

log = logging.getLogger(__name__)

__all__ = [
    "APP_URI",
    "CARD_KEY",
    "GALLERY_KEY",
    "app_only",
    "app_only_meta",
    "apps_extension",
    "card_meta",
    "client_supports_apps",
    "gallery_meta",
    "head_text",
    "made_card_meta",
    "ui_meta",
]

APP_URI = "ui://kie-mcp/results.html"
CARD_KEY = "io.github.kie-mcp/card"  # result _meta: what the approval card shows and which call Approve makes
GALLERY_KEY = "io.github.kie-mcp/gallery"  # result _meta: what the gallery shows beyond the task records
INPUT_PICTURE_SIDE = 256  # input images are shown on the card at this size
MAX_INPUT_PICTURES = 8


def ui_meta() -> dict[str, Any]:
    """The ``_meta`` of a tool whose results the app shows (a fresh copy per tool)."""
    return {"ui": {"resourceUri": APP_URI}}


def app_only_meta() -> dict[str, Any]:
    """The ``_meta`` of a tool only the app calls (the card's Decline: ``decline_quote``): a host that renders apps
    keeps it from the model (``visibility: ["app"]``), and ``tools/list`` names it only to such a host."""
    return {"ui": {"visibility": ["app"]}}


def app_only(meta: dict[str, Any] | None) -> bool:
    """Whether a tool's ``_meta`` makes it one only the app calls (``app_only_meta``)."""
    ui = (meta or {}).get("ui")
    return isinstance(ui, dict) and ui.get("visibility") == ["app"]


@cache
def app_html() -> str:
    """The app's HTML (read once; it ships inside the package)."""
    return resources.files(__package__).joinpath("app.html").read_text(encoding="utf-8")


def apps_extension() -> Apps:
    """The MCP Apps extension: advertises ``io.modelcontextprotocol/ui`` and serves the app's ``ui://`` resource.

    The CSP declares no external origin at all (``csp: {}``): the host's restrictive default applies, which allows
    inline script and style and ``data:`` images and media, and nothing from the network."""
    apps = Apps()
    apps.add_html_resource(
        APP_URI,
        app_html(),
        name="results",
        title="kie-mcp results and approvals",
        description="Shows kie-mcp's results as a gallery and a quote as an approval card (MCP Apps hosts).",
        csp=ResourceCsp(),
        prefers_border=True,
    )
    return apps


async def card_meta(
    rt: Runtime,
    plan: Plan,
    quote: Quote,
    *,
    tool: str,
    arguments: dict[str, Any],
    can_ask: bool,
    cap_problem: str | None = None,
    why: str | None = None,
    form_refused: bool = False,
) -> dict[str, Any]:
    """What the approval card shows for ``quote``, and the call its Approve button makes; ``why`` says why a call
    was not run and the card is shown again (a quote that no longer matches, a price that changed, a form dismissed).

    ``confirm`` tells the card how Approve asks: ``"form"`` when the server can show this client its confirmation
    form (Approve then calls the tool *without* the quote, so the gate asks the person in the host's own dialog,
    which the model cannot answer), ``"quote"`` when it cannot (Approve passes the quote_id, exactly what the model
    would pass after the person approved the cost in the chat: no power the model does not already hold).
    ``binds`` (with ``"form"``, on every host): Approve passes the quote as ``bind_quote_id``, which only binds the
    call to the request drawn on the card (an input file replaced since, other settings: refused, free, and the
    card comes back saying why) and never approves: the gate still asks the form (``generation.bound_to``).
    ``form_refused``: the client declared forms but refused this call's, so Approve passes the quote (``"quote"``);
    under ``KIE_APPROVAL=form`` (``form_only``), where only the form approves, the card says so and cannot approve.

    What the card shows is redacted (a key pasted into a prompt is not shown back), and what shows nothing or turns
    the text around it (tag characters spelling words, a right-to-left override) is shown escaped (``unseen_escaped``),
    as the confirmation form shows it: the card reads as what Approve sends. ``arguments``, which Approve sends as
    they are, are redacted as every answer is (``redact_value``: the API key, and text shaped like a credential, such
    as a prompt's ``ghp_...`` token or a signed link's ``access_token=...``), so no part of the answer holds them. A
    request that held either (``holds_key``, ``holds_credential``) is then not the one the card could send: its quote
    binds the exact request, which the card no longer holds, so the card offers no Approve and says why (an Approve
    sent all the same is refused by that binding, free). ``sent_as_written``: what the form says too of text shown
    as [redacted] that the request sends (only the key is taken out of a request)."""
    from kie_mcp.catalog.pricing import usd, usd_text
    from kie_mcp.generation import (  # as the confirmation text says them
        SENT_AS_WRITTEN,
        auto_approve_limit,
        input_text,
        outputs_made,
        outputs_text,
        settings_shown,
    )
    from kie_mcp.spend.quotes import seen_charging

    spec = plan.spec
    credits = quote.credits_total
    # What Approve and the headline ask for, as the form's question does (``generation.cost_asked``): "up to" the
    # figure the caps count when it is higher than the price (KIE seen charging more, the catalogue's charge seen, a
    # link's higher tier); never a live-only price's stand-in (``Plan.ceiling_weighed``), which no one saw charged.
    asked = plan.ceiling_weighed if quote.price_known else None
    up_to = asked is not None and plan.total is not None and asked > plan.total + 1e-9
    outputs, each, at_most = outputs_made(plan)
    given = {k: v for k, v in arguments.items() if k not in ("quote_id", "bind_quote_id")}
    sent = redact_value(given)
    without_key = redact_value(given, secrets_only=True)
    sent_prompt = str(plan.wire.get("prompt", ""))
    prompt = redact(sent_prompt)
    settings = [[name, _shown(value)] for name, value in settings_shown(plan)]
    card = {
        "tool": tool,
        "arguments": sent,
        "holds_key": without_key != given,
        "holds_credential": sent != without_key,  # text shaped like a credential: the card cannot send it either
        "sent_as_written": SENT_AS_WRITTEN if hides_credentials(plan.wire) else None,
        "confirm": "form" if can_ask and not form_refused else "quote",
        "binds": can_ask and not form_refused,
        "form_only": rt.settings.approval == "form",
        "form_refused": form_refused,
        "quote_id": quote.quote_id,
        "expires_at": quote.expires_at,
        "model": {"id": spec.id, "title": spec.title, "kind": spec.kind},
        "variations": plan.variations,
        "outputs": outputs,  # variations x the model's count (num_images, max_images): what the card says it makes
        "outputs_each": each,
        "outputs_at_most": at_most,  # max_images: the model may make fewer
        "outputs_text": outputs_text(plan),
        "credits": credits,
        "counted": plan.counted,  # what the caps and the auto-approve limit weigh (KIE seen charging more)
        "usd": quote.usd_total,
        "usd_text": None if quote.usd_total is None else usd_text(quote.usd_total),  # as the quote's text says it
        "up_to": up_to,  # the card asks for "up to" ``asked`` (and its dollars), as the form does, not ``credits``
        "asked": asked if up_to else credits,
        "asked_usd_text": usd_text(usd(asked)) if up_to and asked is not None else None,
        "price_known": quote.price_known,
        "reserved": plan.reserved,
        "breakdown": quote.breakdown,
        "price_source": quote.price_source,
        "spent_today": rt.ledger.spent_today(),
        "max_credits_per_call": rt.ledger.caps.per_call,
        "max_credits_per_day": rt.ledger.caps.per_day,
        # 0 where nothing is auto-approved (a price only KIE's live list gives, a twin's unknown outcome)
        "auto_approve_credits": auto_approve_limit(rt, plan),
        "cap_problem": None if cap_problem is None else redact(cap_problem),
        "why": None if why is None else redact(why),
        "prompt": unseen_escaped(prompt),
        # what "Show all" counts: the prompt as sent, a hidden character one (not the escape the card draws for it)
        "prompt_sent": {"lines": sent_prompt.count("\n") + 1, "characters": len(sent_prompt)},
        "settings": [[name, _escaped(value)] for name, value in settings],
        # the prompt or a setting holds what shows nothing or turns text around: the card says it is shown escaped
        "escaped": unseen_escaped(prompt) != prompt or any(_escaped(value) != value for _, value in settings),
        # What KIE was seen charging above the list (counted against the caps) leads, as in the confirmation text
        "notes": [redact(note) for note in (*filter(None, [seen_charging(plan.price, plan.variations)]), *plan.notes)],
        "inputs": [
            {
                **{key: value for key, value in entry.items() if key != "value"},
                "name": redact(entry["name"]),
                "caption": redact(input_text(entry["value"])),  # as the form names it: which file, from where
                **({"url": redact(entry["url"])} if "url" in entry else {}),
            }
            for entry in await _input_pictures(plan)
        ],
        # How long a confirmation form waits for its answer: Approve's call (form) may wait that long for the person
        "confirm_seconds": rt.settings.confirm_timeout_seconds,
        "sandbox": rt.settings.sandbox,
    }
    return {CARD_KEY: card}


def made_card_meta(plan: Plan, existing: TaskRecord, message: str) -> dict[str, Any]:
    """The card of a quote that is not one: the follow-up (a 1080p or 4K version) is already made, so nothing is to
    approve and the card has no Approve; "Show it" calls ``check_task`` on the earlier task, which creates nothing."""
    card = {
        "made": {"task_id": existing.task_id, "state": existing.state, "source_task_id": plan.parent_task_id},
        "model": {"id": plan.spec.id, "title": plan.spec.title, "kind": plan.spec.kind},
        "message": redact(message),
        "sandbox": existing.sandbox,
    }
    return {CARD_KEY: card}


def _shown(value: Any) -> Any:
    """A setting as the card shows it: text redacted, a structured one (Kling's shots) as its JSON text."""
    if isinstance(value, list | dict):
        value = json.dumps(value, ensure_ascii=False)
    return redact(value) if isinstance(value, str) else value


def _escaped(value: Any) -> Any:
    """A setting ``_shown`` with what shows nothing or turns the text around written escaped (``unseen_escaped``)."""
    return unseen_escaped(value) if isinstance(value, str) else value


async def _input_pictures(plan: Plan) -> list[dict[str, Any]]:
    """Every input file of the request: local images as small pictures (data URLs, made in a worker thread from
    the very files the plan confined, checked and hashed; the first ``MAX_INPUT_PICTURES``, the rest by name); URLs
    by name only (the app loads nothing from the network). Each with its ``value``, as the request names it."""
    values: list[str] = []
    for key, value in plan.wire.items():
        field = plan.spec.fields.get(key)
        if field is not None and field.is_media:
            values.extend([value] if isinstance(value, str) else [v for v in value if isinstance(v, str)])

    def pictures() -> list[dict[str, Any]]:
        shown: list[dict[str, Any]] = []
        for index, value in enumerate(values):  # every input is named: Approve sends them all
            local = plan.files.get(value)
            if local is None:
                shown.append({"name": unseen_escaped(value), "url": value, "value": value})
                continue
            # never a name turning the card around
            entry: dict[str, Any] = {"name": unseen_escaped(Path(value).name), "value": value}
            small = None
            if index < MAX_INPUT_PICTURES:  # past them, by name only (a card stays small and quick)
                small = _picture_of(local)  # never kept: inputs live in the user's folders
            if small is not None:
                entry["src"] = f"data:{small[1]};base64,{base64.b64encode(small[0]).decode()}"
            shown.append(entry)
        return shown

    return await anyio.to_thread.run_sync(pictures) if values else []


def _picture_of(local: LocalFile) -> tuple[bytes, str] | None:
    """A small picture of the input file ``local``, made from the very file that was hashed, opened through the
    judged opener (``still_hashed``); None when it is not an image, or is no longer that file (swapped for a link to
    a picture outside the allowed folders, a FIFO, other bytes): the card then names it only, and never opens the
    name again."""
    from kie_mcp.media.downloads import scaled_copy
    from kie_mcp.media.inputs import still_hashed
    from kie_mcp.media.prepare import DECODE_MAX_PIXELS

    if local.media.kind != "image":
        return None
    try:
        with still_hashed(local) as handle:  # never more decoded for a card than for the estimate it shows
            return scaled_copy(handle, INPUT_PICTURE_SIDE, decoded_at_most=DECODE_MAX_PIXELS)
    except OSError:  # ChangedFile (a refusal), or no longer readable: shown by name
        return None


def gallery_meta(rt: Runtime, tasks: Sequence[TaskRecord], *, message: str | None = None) -> dict[str, Any]:
    """What the gallery shows beyond the task records: ``head``, a generation's ``message`` as the gallery's head
    shows it (``head_text``); each task's prompt, from the journal; the result links a
    person may open (``links``: each with the host its button names; only those kie-mcp would fetch itself, see
    ``TaskRecord.openable_links``, so a link it refused is never offered); and what the last save of each task's
    results could not do (``save_problems``, redacted), shown on its tile. A task is judged by the freshest record
    this process has of it: the follower's while it follows the task, and any record read from the journal knowing
    what this process learnt saving it (``TaskBook.recall``), so ``list_tasks`` offers no link a save refused and
    says what a save could not do. After a restart, links are judged by their address alone. No judgement fails
    the call: a task whose links cannot be judged offers none.

    KIE deletes a task's results after its retention (``follower.RETENTION_SECONDS``, 14 days from the create):
    each offered link says until when (``until``, a date), and past it none is offered; ``links_gone`` says so on
    the tile instead."""
    import sqlite3  # imported here: the server's start-up imports this module, not the journal

    from kie_mcp.journal import JournalUnavailable
    from kie_mcp.tasks.follower import RETENTION_SECONDS
    from kie_mcp.tasks.listing import unread_charge

    prompts: dict[str, str] = {}
    with contextlib.suppress(sqlite3.Error, JournalUnavailable):
        for task in tasks:
            if task.task_id and task.task_id not in prompts:
                row = rt.journal.task_row(task.task_id)
                if row is not None and row["prompt"]:  # shown as the card shows a prompt: redacted, escaped
                    prompts[task.task_id] = unseen_escaped(redact(row["prompt"]))
    links: dict[str, list[dict[str, str]]] = {}
    gone: dict[str, str] = {}
    problems: dict[str, list[str]] = {}
    now = time.time()
    for task in tasks:
        if not task.task_id:
            continue
        try:
            judged = rt.tasks.recall(rt.follower.known(task.task_id) or task)
            if task.state == "succeeded" and (openable := judged.openable_links()):
                ends = judged.created_at + RETENTION_SECONDS
                if now > ends:  # deleted at KIE by now: a button would open a dead link
                    days, kept = int((now - judged.created_at) // 86400), int(RETENTION_SECONDS // 86400)
                    gone[task.task_id] = (
                        f"Its result links are gone: KIE keeps results about {kept} days, and this task was made "
                        f"{days} days ago. Making it again is a new, charged task."
                    )
                else:
                    until = datetime.fromtimestamp(ends, UTC).date().isoformat()
                    links[task.task_id] = [{"url": url, "host": link_host(url), "until": until} for url in openable]
            if said := judged.save_problems:
                problems[task.task_id] = [redact(line) for line in said]
        except Exception:  # the gallery's extras never cost the answer: this task's tile offers no link
            log.exception("task %s: its result links could not be judged for the gallery", task.task_id)
            links.pop(task.task_id, None)
            gone.pop(task.task_id, None)
    return {
        GALLERY_KEY: {
            **({"head": head_text(message, tasks)} if message is not None else {}),
            "prompts": prompts,
            "links": links,
            "links_gone": gone,
            "save_problems": problems,
            # a charge KIE reported that could not be read, as list_tasks says it: the tile never says "refunded"
            "unread_charges": {t.task_id: said for t in tasks if t.task_id and (said := unread_charge(t))},
            "sandbox": rt.settings.sandbox,
        }
    }


def head_text(message: str, tasks: Sequence[TaskRecord]) -> str:
    """A generation's message as the gallery's head shows it (three lines, the rest behind its tooltip): once KIE's
    word on every task's cost is in (its charge recorded, or the task failed: refunded), without the warning that
    the quoted price is old (``spend.quotes.staleness``, and that an old price is never auto-approved), which then
    only pushed what follows out of sight (a damaged result, where it was saved). Until then, and with any create
    whose outcome is unknown, the whole message."""
    from kie_mcp.generation import OLD_PRICE_ASKED
    from kie_mcp.spend.quotes import STALE_PRICE

    settled = bool(tasks) and all(
        task.state == "failed" or (task.task_id is not None and task.credits_charged is not None) for task in tasks
    )
    if not settled:
        return message
    old = (STALE_PRICE, OLD_PRICE_ASKED)  # the price's age, which KIE's charge has since settled
    return "\n".join(line for line in message.split("\n") if not line.startswith(old))


def link_host(url: str) -> str:
    """The host a result link's button names, as DNS spells it (an internationalised name in its ``xn--`` form,
    never a look-alike), with its port when not the scheme's own."""
    import httpx2

    parsed = httpx2.URL(url)
    host = parsed.raw_host.decode("ascii", "replace")
    return f"{host}:{parsed.port}" if parsed.port else host
