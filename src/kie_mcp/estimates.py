"""What an estimate says: the quote of a planned request, checked against the caps and the cached balance, whether
generating would run it without asking, and the words that say all of it (estimate_cost's answer).

The surface's ``estimate_cost`` parses its arguments, plans the request (``generation.plan``, or
``followups.plan`` for a follow-up of a finished video), and calls ``estimate``; this module issues the quote (the
estimate's one write) and composes the answer.
"""

# No ``from __future__ import annotations``: pydantic would compile each field's annotation string on import.

from pydantic import BaseModel, ConfigDict, Field

from kie_mcp import followups
from kie_mcp import generation as gen
from kie_mcp.catalog.pricing import credits_figure, credits_text
from kie_mcp.config import no_key_advice
from kie_mcp.kie import KieError
from kie_mcp.runtime import Runtime
from kie_mcp.spend import Quote, SpendRefused
from kie_mcp.spend.quotes import seen_charging
from kie_mcp.words import timestamp


class EstimateResult(BaseModel):
    # Refuses unknown fields, as every tool result does (a misspelt field fails loudly), and is built on first use.
    # No docstring: the tool's output schema would carry it as a description.
    model_config = ConfigDict(extra="forbid", defer_build=True)

    quote: Quote | None = Field(
        description="The price, and the quote_id that approves exactly this request once, while it is within the "
        "caps (within_caps; over one it approves nothing and cap_problem says what would let it through). Null when "
        "nothing would be made or charged (a follow-up the clip already has: continue_video returns it; the message "
        "names it)."
    )
    within_caps: bool
    cap_problem: str | None = None
    auto_approved: bool = Field(
        description="True when this price is at or under KIE_AUTO_APPROVE_CREDITS and within the caps: generating "
        "runs it without asking. Never for a price only KIE's live catalogue gives (a model kie-mcp's own lacks), "
        "nor while the same request may be paid twice (a call of it still under way, made minutes ago, or of "
        "unknown outcome: the message warns first)."
    )
    balance_credits: float | None = None
    spent_today: float
    max_credits_per_call: float
    max_credits_per_day: float
    message: str


def _quote_use(rt: Runtime, quote_id: str, until: str) -> str:
    """What an estimate's quote_id is for: the approval of this request once the user agreed to its cost, or, with
    KIE_APPROVAL=form, only its binding (the user approves in the confirmation form on a client that shows one)."""
    if rt.settings.approval == "form":
        return (
            f"quote_id={quote_id} binds the generate call to exactly this request until {until}; the user approves "
            "the spend in the confirmation form (a client without forms approves with the quote_id once the user "
            "agreed to this cost)."
        )
    return (
        f"quote_id={quote_id} approves exactly this request once, until {until}: pass it to the generate call only "
        "after the user agreed to this cost."
    )


async def estimate(rt: Runtime, plan: gen.Plan, *, can_ask: bool) -> EstimateResult:
    """The estimate of ``plan`` with its quote; ``can_ask``: the client asking shows forms (what its quote_id does
    meanwhile after the person's No to the request is said for that client alone)."""
    from kie_mcp.spend.balance import balance_cache

    if isinstance(plan, followups.FollowupPlan) and plan.existing is not None:
        return _already_made(rt, plan)
    # Its one write: at once while no other writer holds the journal's lock, else off the event loop once it is free.
    quote = await rt.journal.unless_locked(
        lambda: rt.quotes.issue(
            plan.spec.id,
            plan.digest,
            plan.price,
            plan.variations,
            ceiling=plan.reserved,
            measured=plan.estimate,
            request=plan.bound,
        )
    )
    spent = rt.ledger.spent_today()
    try:
        gen.check_plan_caps(rt, plan, spent)
        cap_problem = None
    except SpendRefused as err:
        cap_problem = str(err)
    try:  # read at most every few seconds; an estimate is free and offline-safe, so a failed read is no error
        balance = await balance_cache(rt).current() if rt.kie is not None else None
        unread = None
    except KieError as err:
        balance = None
        unread = f"The balance could not be read ({err.message}); generating reads it first, or spends nothing."
    said_no = rt.quotes.declined_lately(plan.digest)  # the person said no to it a moment ago: never run unasked
    auto = (  # over a cap nothing runs, so nothing is auto-approved either
        cap_problem is None
        and said_no is None
        and quote.price_known
        and 0 < (plan.counted or 0) <= gen.auto_approve_limit(rt, plan)
    )
    cost = (
        gen.cost_asked(plan)  # as the form's question leads: "up to" the figure the caps count when it is higher
        if quote.credits_total is not None
        else "UNKNOWN before it runs (never auto-approved): "
        + gen.unknown_cost(plan, refused=cap_problem is not None).rstrip(".")
    )
    left = max(rt.ledger.caps.per_day - spent, 0)
    parts = [
        f"{plan.spec.title} ({plan.spec.id}) x{plan.variations}: {cost}.",
        *filter(None, [seen_charging(plan.price, plan.variations)]),
        *plan.notes,
        f"Breakdown: {quote.breakdown.rstrip('.')}. Price source: {quote.price_source}.",
        *([f"Price note: {quote.note.rstrip('.')}."] if quote.note else []),
        f"Spent today: {credits_text(spent)}; {credits_figure(left)} left of the "
        f"{credits_figure(rt.ledger.caps.per_day)} per day (per call at most "
        f"{credits_figure(rt.ledger.caps.per_call)}).",
        gen.settings_text(plan) + ".",
        # Over a cap the quote approves nothing (generating with it is refused): the cap's message says what would
        # let the request through, as the generate call would
        _quote_use(rt, quote.quote_id, quote.expires_at)
        if cap_problem is None
        else f"quote_id={quote.quote_id} (until {quote.expires_at}) approves nothing while the request is over a "
        f"cap: {cap_problem}",
    ]
    if said_no is not None:
        no = {"where": said_no.where, "at": timestamp(said_no.at), "until": timestamp(said_no.at + rt.quotes.ttl)}
        if cap_problem is None and can_ask and rt.settings.approval != "form":  # the quote asks: said in its place
            parts[-1] = gen.SAID_NO_QUOTE_ASKS.format(quote_id=quote.quote_id, expires=quote.expires_at, **no)
        else:
            parts.append(gen.SAID_NO_ESTIMATE.format(**no))
    if balance is not None and quote.credits_total is not None and balance < quote.credits_total:
        parts.append(f"The balance ({credits_text(balance)}) is too low for this request.")
    elif balance is not None and quote.credits_counted is not None and balance < quote.credits_counted:
        parts.append(
            f"The balance ({credits_text(balance)}) covers KIE's list price but not the {quote.credits_counted:g} "
            f"counted ({plan.price.counted_why}): KIE may refuse the task for too few credits (a refusal costs "
            "nothing)."
        )
    if unread:
        parts.append(unread)
    if rt.kie is None:  # the quote is real, but nothing can run until a key is set
        parts.append(f"Nothing can be generated yet: {no_key_advice(rt.settings.context_folder)}")
    return EstimateResult(
        quote=quote,
        within_caps=cap_problem is None,
        cap_problem=cap_problem,
        auto_approved=auto,
        balance_credits=balance,
        spent_today=spent,
        max_credits_per_call=rt.ledger.caps.per_call,
        max_credits_per_day=rt.ledger.caps.per_day,
        message=" ".join(parts),
    )


def _already_made(rt: Runtime, plan: followups.FollowupPlan) -> EstimateResult:
    """The estimate of a follow-up the clip already has: 0 credits and no quote (nothing to approve), so no cap is
    in the way and nothing is auto-approved."""
    return EstimateResult(
        quote=None,
        within_caps=True,
        auto_approved=False,
        spent_today=rt.ledger.spent_today(),
        max_credits_per_call=rt.ledger.caps.per_call,
        max_credits_per_day=rt.ledger.caps.per_day,
        message=followups.existing_estimate(plan),
    )
