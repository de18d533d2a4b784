"""What ``check_credits`` reports: KIE's balance, and beside it always this workspace's own record.

The balance is KIE's to tell; the rest is this machine's: today's spend, the caps (and where each is set), which
workspace and why it was chosen, notes on the settings, an ``outputs/`` that cannot take a result now (a link to a
disk not mounted), creates of unknown outcome, the start's notices, a ``.env`` with the key, the journal or the call
log that git would commit. A key KIE refuses (401), no key, or a KIE that cannot be reached leaves only the balance
unread, said with why and what to do; that was a bare error naming none of the rest, while the workspace and the
caps are what a user fixing a key, or looking for their files, needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from kie_mcp import exposure
from kie_mcp.catalog import usd
from kie_mcp.catalog.pricing import credits_figure, credits_text, usd_text
from kie_mcp.config import Settings, no_key_advice
from kie_mcp.kie import KieError
from kie_mcp.media import saved
from kie_mcp.spend.balance import balance_cache
from kie_mcp.tasks.listing import unknown_creates_text
from kie_mcp.words import path_text, readable_text

if TYPE_CHECKING:
    from kie_mcp.runtime import Runtime


@dataclass(frozen=True)
class Account:
    """What ``check_credits`` answers, in numbers and in words (``message``)."""

    balance: float | None  # None: not read; ``balance_problem`` says why
    balance_problem: str | None
    spent_today: float
    spent_total: float
    spending_refused: str | None
    unknown_creates: int
    message: str


async def account(rt: Runtime) -> Account:
    """The balance, read from KIE now (it refreshes the kept one spends use), and this workspace's record."""
    balance, problem = await _balance(rt)
    s = rt.settings
    spent, total = rt.ledger.spent_today(), rt.ledger.total_spent()
    held = rt.ledger.held_today() if spent > 0 else 0.0  # counted, but given back if their requests are refused
    refused, unknown = rt.ledger.over_cap(), rt.journal.count_attempts("unknown")
    exposed = await anyio.to_thread.run_sync(_exposure, s)  # runs git
    unsaved = await anyio.to_thread.run_sync(outputs_problem, s)  # a disk not mounted may take its time to say so
    head = (
        f"Balance: {credits_text(balance)} (about {usd_text(usd(balance))})."
        if balance is not None
        else f"Balance unavailable: {problem}"
    )
    approving = f"Auto-approve up to {credits_text(s.auto_approve_credits)}." if s.auto_approve_credits else ""
    message = " ".join(
        filter(
            None,
            [
                head,
                f"Spent today through kie-mcp: {credits_text(spent)}"
                + (
                    f", {credits_figure(held)} of it held for uploads under way (given back if their requests fail)."
                    if held
                    else "."
                ),
                f"Caps: {credits_text(s.max_credits_per_call)} per call{_set_in(s.max_credits_per_call_from)}, "
                f"{credits_figure(s.max_credits_per_day)} per day{_set_in(s.max_credits_per_day_from)}.",
                approving or "Every spend is confirmed.",
                "On clients that show forms, only in the form (KIE_APPROVAL=form)." if s.approval == "form" else "",
                "SANDBOX: simulated account." if s.sandbox else "",
                workspace_text(s),
                unsaved,
                *s.config_notes,  # which of two values of a cap applies, a KIE_ALLOWED_DIRS folder not there
                refused,
                rt.ledger.day_words(),  # when today began here, if other clocks on the workspace have other zones
                unknown_creates_text(unknown) if unknown else "",
                *rt.notices,
                *exposed,
            ],
        )
    )
    return Account(balance, problem, spent, total, refused, unknown, message)


def _exposure(settings: Settings) -> tuple[str | None, str | None]:
    """What git would commit that it should not: the workspace's .env holding the key, and this server's journal
    (.kie-mcp/) and call log (logs/), in its workspace (in the sandbox, its area)."""
    return exposure.dotenv_exposure(settings.context_folder), exposure.records_exposure(settings.workspace)


def _set_in(where: str) -> str:
    """Where a cap in force was written, as check_credits shows it after the cap (the place to raise it: the lowest
    value written anywhere applies); nothing for a cap at its default."""
    return f" (set in {where})" if where else ""


async def _balance(rt: Runtime) -> tuple[float | None, str | None]:
    """KIE's balance now, or None and why it could not be read (no key, the key refused, KIE out of reach)."""
    if rt.kie is None:
        return None, no_key_advice(rt.settings.context_folder)
    try:
        return await balance_cache(rt).read(), None
    except KieError as err:  # redacted by itself; worded for a balance check (``balance.balance_failed``)
        return None, str(err)


def outputs_problem(settings: Settings) -> str:
    """Why results could not be saved in the workspace's outputs/ now (``saved.saving_problem``), and that nothing is
    generated until it is mended; empty when they can, or are not saved (KIE_DOWNLOAD=never). The problem every
    request is refused over before anything is spent (``surface``), said where a user looks first."""
    if not settings.download:
        return ""
    problem = saved.saving_problem(settings.workspace / saved.OUTPUTS)
    if problem is None:
        return ""
    return (
        f"Results cannot be saved: {problem} Until then estimate_cost, generate_image, generate_video and "
        "continue_video refuse every request, before anything is sent or charged."
    )


def workspace_text(settings: Settings) -> str:
    """Where this server keeps its journal, outputs/ and logs/ (absolute paths), and why that workspace."""
    chosen = readable_text(settings.workspace_reason)
    if settings.sandbox:
        return (
            f"Sandbox area: {path_text(settings.workspace.absolute())} (its own journal, outputs/ and logs/, apart "
            f"from the workspace {path_text(settings.context_folder.absolute())}: simulated spend and tasks never "
            "count there)." + (f" That workspace is {chosen}." if chosen else "")
        )
    return f"Workspace: {path_text(settings.workspace.absolute())} (journal, outputs/ and logs/)" + (
        f", {chosen}." if chosen else "."
    )
