"""The confirm-before-spend decision, in the order the product promises.

1. invalid input -> error (handled before this module is reached)
2. hard caps -> refused, whatever the approval
3. balance -> refused
4. approval: a valid quote for this exact request, at no more than the price it showed (``quote_problem``
   says why not); else a known price above 0 and at or under the auto-approve limit; else ask the user
   when the client can show a form; else hand back a quote to approve.
An unknown price is never auto-approved, nor is a "price" of 0 or less: that is a broken price list, not a
free request; nor is a price only KIE's live catalogue gives (the caller passes a limit of 0 for it).
"""

# No ``from __future__ import annotations``: pydantic would compile each field's annotation string on import.

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from .approval import Approval, ApprovedBy, _issue
from .inflight import Claim
from .ledger import priced

FORM_DESCRIPTION = "kie-mcp asks before it spends KIE credits. Nothing is spent unless you confirm."


class ConfirmSpend(BaseModel, defer_build=True):
    """The elicitation form: one required boolean, so no client can auto-accept an empty form.

    Only the JSON boolean ``true`` is a yes. ``"true"``, ``"yes"`` or ``1`` are read as no, with
    ``not_boolean`` set so the answer can say why nothing was spent; so is an answer with fields the form did
    not ask (``{"confirm": true, "x": 1}``: not the form's answer), with ``unasked`` naming them.
    """

    # What a client may show above the form: words for the person approving, never this docstring (pydantic's
    # default description), which was written for developers.
    model_config = ConfigDict(title="Approve the spend", json_schema_extra={"description": FORM_DESCRIPTION})

    confirm: bool = Field(description="Spend the credits shown and start the generation?")
    not_boolean: SkipJsonSchema[bool] = Field(default=False, exclude=True)
    unasked: SkipJsonSchema[tuple[str, ...]] = Field(default=(), exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _strict_yes(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if unasked := tuple(sorted(str(key) for key in data if key != "confirm")):
            return {"confirm": False, "unasked": unasked}
        if "confirm" in data and not isinstance(data["confirm"], bool):
            return {"confirm": False, "not_boolean": True}
        return data


@dataclass(frozen=True)
class Approved:
    by: ApprovedBy
    quote_id: str | None = None  # the quote this approval uses up (a quote_id, or the question's own quote)
    # An auto approval's hold on its request from the moment it was given (``SpendingCalls.claim``): its call's spend
    # takes it over, and gives it up when it ends.
    claim: Claim | None = field(default=None, compare=False, repr=False)
    # A yes in the confirmation form: when it came (epoch seconds, the journal's clock). Its question's quote is judged
    # expired by this moment, not by when the approval is used: a moment later, once its call has waited for a cancel
    # by its host (``surface.CANCEL_WITH_THE_YES``). A yes in time stays in time; one that came late stays late.
    answered_at: float | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Ask:
    """Ask the user through the client's form (elicitation)."""

    message: str
    quote_id: str | None = None  # the single-use quote the question is bound to
    # Asked in place of the quote_id the call passed, which approves nothing on its own on a client that shows forms
    # while the person's No to the request holds: a client that refuses the form is decided as one without forms.
    instead_of_quote: bool = False
    # Put again only to read the answer the request carries (2026-07-28) to a question answered yes already or
    # expired: a yes then spends nothing new (what the first yes bought, or too late); a No is the person's No.
    reread: bool = False


@dataclass(frozen=True)
class NeedsConfirmation:
    """The client cannot ask; the user approves the quote in chat and the call is repeated with quote_id."""

    reason: str | None = None
    cancelled: bool = False  # the question went unanswered too long: the call ends as cancelled
    form_refused: bool = False  # the client declared forms but refused to show this one
    dismissed: bool = False  # the form was cancelled or dismissed (or a client cancels every form on its own)


@dataclass(frozen=True)
class Replay:
    """The answer to a confirmation that was already used, or to a call sent again after its answer was cut off:
    show what the earlier call made, never create again. ``attempts``: its create attempts, when they are not the
    quote's."""

    quote_id: str | None
    attempts: tuple[str, ...] = ()


Decision = Approved | Ask | NeedsConfirmation


def decide(
    *,
    total: float | None,
    quote_id: str | None,
    quote_problem: str | None,
    auto_approve_limit: float,
    can_ask: bool,
    question: str,
) -> Decision:
    if quote_id and quote_problem is None:
        return Approved("quote")
    total = priced(total)
    if total is not None and total <= auto_approve_limit:
        return Approved("auto")
    if can_ask:
        return Ask(question)
    return NeedsConfirmation(quote_problem if quote_id else None)


def grant(
    model_id: str, creates: int, by: ApprovedBy, credits: float | None, *, reserved: float | None = None
) -> Approval:
    """Issue the approval the KIE client requires for each create; ``reserved``: what they count against the caps."""
    return _issue(model_id, creates, by, credits, reserved)


@dataclass(frozen=True)
class Declined:
    """The user said no: nothing is spent and no quote is issued. ``dialog``: the client's dialog was declined, by
    the person or by a client that declines every form on its own without showing it. ``said_no``: the person
    answered the form with No (``confirm`` false), which holds against a quote_id of the same request for a while
    (``QuoteBook.decline_in_form``); ``quote_id``: the question's quote, when known. What that No met, once recorded
    (``generation.record_no``): ``sent_at``, when a create of the request approved while the form was open was sent
    (it may have been charged); ``stopped_yes``, whether it stopped the call the person said yes to in another form
    of the same question."""

    reason: str | None = None
    dialog: bool = False
    said_no: bool = False
    quote_id: str | None = None
    sent_at: float | None = None
    stopped_yes: bool = False
