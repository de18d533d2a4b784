"""Spend rules: quotes, the confirmation gate, hard caps and today's ledger."""

from .approval import Approval, ApprovalError
from .gate import Approved, Ask, ConfirmSpend, Decision, Declined, NeedsConfirmation, Replay, decide, grant
from .ledger import Caps, Ledger, Reservation, SpendRefused, check_balance, check_caps, priced, reservation
from .quotes import Quote, QuoteBook, QuoteError, request_hash

__all__ = [
    "Approval",
    "ApprovalError",
    "Approved",
    "Ask",
    "Caps",
    "ConfirmSpend",
    "Decision",
    "Declined",
    "Ledger",
    "NeedsConfirmation",
    "Quote",
    "QuoteBook",
    "QuoteError",
    "Replay",
    "Reservation",
    "SpendRefused",
    "check_balance",
    "check_caps",
    "decide",
    "grant",
    "priced",
    "request_hash",
    "reservation",
]
