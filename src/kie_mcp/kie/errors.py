"""KIE's error codes as one typed taxonomy: what happened, whether retrying helps, what to do.

KIE reports most failures inside an HTTP 200 body (``{"code": 402, "msg": ...}``); some arrive as
real HTTP statuses or as non-JSON proxy pages. Everything ends up as a ``KieError``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from kie_mcp.redact import redact

from .text import valid_text

LOGS_URL = "https://kie.ai/logs"


class Category(StrEnum):
    AUTH = "auth"
    CREDITS = "credits"
    INPUT = "input"
    NOT_FOUND = "not_found"
    UPSTREAM = "upstream"
    RATE_LIMIT = "rate_limit"
    QUOTA = "quota"
    MAINTENANCE = "maintenance"
    SERVER = "server"
    GENERATION_FAILED = "generation_failed"
    DISABLED = "disabled"
    BLOCKED = "blocked"
    NETWORK = "network"
    PROTOCOL = "protocol"


@dataclass(frozen=True)
class CodeInfo:
    category: Category
    retryable: bool
    next_step: str


CODES: dict[int, CodeInfo] = {
    400: CodeInfo(
        Category.INPUT,
        False,
        "KIE rejected the request (invalid input or a content-policy flag). Change the prompt or inputs; "
        "the same request will be rejected again.",
    ),
    401: CodeInfo(
        Category.AUTH,
        False,
        "The KIE API key is missing or wrong. Set KIE_API_KEY (create one at https://kie.ai/api-key) and "
        "restart the MCP server.",
    ),
    402: CodeInfo(
        Category.CREDITS,
        False,
        "The KIE account has too few credits. Top up at https://kie.ai/pricing, or lower the cost "
        "(fewer variations, lower resolution, a cheaper model).",
    ),
    404: CodeInfo(
        Category.NOT_FOUND,
        False,
        "KIE does not know this task or endpoint. Check the task id; KIE keeps tasks for 14 days.",
    ),
    408: CodeInfo(
        Category.UPSTREAM,
        True,
        "The model's provider returned nothing for over 10 minutes, so this task is over. "
        "Trying again starts a new, separately charged task.",
    ),
    422: CodeInfo(
        Category.INPUT,
        False,
        "KIE found the request invalid. Fix the field it names; list_models shows what each model accepts.",
    ),
    429: CodeInfo(
        Category.RATE_LIMIT,
        True,
        "KIE's limit of 20 new tasks per 10 seconds was hit. The request was not queued and not charged; "
        "wait 10 seconds and try again.",
    ),
    433: CodeInfo(
        Category.QUOTA,
        False,
        "This API key reached the usage cap set on KIE's API key page. Raise the cap there or wait for it to reset.",
    ),
    451: CodeInfo(
        Category.INPUT,
        False,
        "KIE could not fetch an input image. Use a public URL, or pass a local file path so kie-mcp uploads it.",
    ),
    455: CodeInfo(Category.MAINTENANCE, True, "KIE is under maintenance. Try again in a few minutes."),
    500: CodeInfo(
        Category.SERVER,
        True,
        "KIE had an internal error. Try again in a minute; if it keeps happening, check " + LOGS_URL + ".",
    ),
    501: CodeInfo(
        Category.GENERATION_FAILED,
        False,
        "The generation failed at the model provider. Trying again is a new charge; adjust the prompt first.",
    ),
    505: CodeInfo(Category.DISABLED, False, "KIE has disabled this feature for now. Choose another model."),
}

# KIE's advice that fits any request, whatever it asked: the key, its cap, maintenance, pacing. The rest of CODES is
# written for a create ("change the prompt", "fix the field it names", "a cheaper model", "check the task id") and
# misleads on a request that creates nothing: a status check, a balance check, an upload.
ANY_REQUEST_STEPS: dict[int, str] = {
    401: CODES[401].next_step,
    429: "KIE asked kie-mcp to slow down (too many requests); wait 10 seconds and try again.",
    433: CODES[433].next_step,
    455: CODES[455].next_step,
}


def any_request_step(err: KieError) -> str | None:
    """KIE's advice for ``err`` when it fits any request (``ANY_REQUEST_STEPS``); None for a code whose advice is
    written for a create, or for a failure without a code of KIE's. A refused key keeps its own advice, which says
    where the key came from (``wrong_key_step``, given by the ``KieClient`` that sent it)."""
    if err.code == 401 and err.category is Category.AUTH:
        return err.next_step
    return ANY_REQUEST_STEPS.get(err.code) if err.code is not None else None


def wrong_key_step(origin: str) -> str:
    """What to do about a key KIE refused (401), with where that key came from (``origin``, a sentence of
    ``Settings.key_origin``: the client's env block or a .env's path, and a different key it shadows), so that the
    right place is fixed; never the key. Without ``origin``, KIE's advice as it is."""
    if not origin:
        return CODES[401].next_step
    return (
        f"KIE refused the API key: it is missing, wrong or revoked. {origin} Put a valid key there (create one at "
        "https://kie.ai/api-key) and restart the MCP server."
    )


def creates_nothing(err: KieError, said: str, retry: str) -> KieError:
    """``err`` of a request that creates nothing (a balance or status check) with advice in words for it: ``said``
    (what failed, and that nothing was sent or charged), then KIE's advice where it fits any request, a failure's
    own advice when it met no code KIE documents (the network, an answer that could not be read, a code kie-mcp
    does not know, which its advice names), or else ``retry``."""
    then = any_request_step(err) or (retry if err.code in CODES else err.next_step)
    return err.with_next_step(f"{said} {then}")


# A 404 to a create: a create names no task, so KIE's advice for 404 ("check the task id") does not fit it.
CREATE_NOT_FOUND = (
    "KIE does not (or no longer) offer this endpoint or model at this address, so nothing was created or charged. "
    "Check the model with list_models or on https://kie.ai, and that KIE_BASE_URL (when set) points at KIE's API."
)

# A failure without a code of KIE's (an answer kie-mcp could not use): no advice of a code fits it.
_FALLBACK = CodeInfo(
    Category.SERVER, True, f"Try again later; if it keeps happening, see what KIE shows on {LOGS_URL}."
)


def _unknown_code(code: int) -> CodeInfo:
    """A code KIE documents nowhere kie-mcp knows: named as such, never called "unexpected"."""
    return CodeInfo(
        Category.SERVER,
        True,
        f"KIE answered with error {code}, which kie-mcp does not know. Try again later; if it keeps happening, "
        f"see what KIE shows on {LOGS_URL}.",
    )


# A 422 is KIE's code for a request it found invalid, and also for content the model's provider refused (Veo:
# "Your request was rejected by Flow ..."): "fix the field it names" sends the user after a field that is fine.
_CONTENT_REFUSED = CodeInfo(
    Category.INPUT,
    False,
    "KIE (or the model's provider) refused what the request shows or asks for, so nothing was created or charged. "
    "Change the prompt or the input images (real people, brands, logos and violence are often refused) and ask "
    "again; the same request is refused again.",
)
# Words of a content refusal that no field problem uses ("safetyTolerance", "case-sensitive" and the field
# nsfw_checker must not match).
_CONTENT_REFUSAL = re.compile(
    r"rejected by|flagged|content polic|usage polic|sensitive content|prohibited|inappropriate|\bnsfw\b(?!_)"
)


def content_refused(message: str) -> bool:
    """Whether ``message`` (KIE's words on a refused create or a failed task) says the content was refused: a
    flagged prompt or picture, which the same request meets again."""
    return _CONTENT_REFUSAL.search(message.lower()) is not None


# KIE's 422 to a create naming a model it does not offer (withdrawn, or never published under that id): no field to
# fix, and nothing was created. The request path marks the model withdrawn in the workspace (``catalog.live``).
NOT_PUBLISHED = "the page does not exist or is not published"
_NOT_OFFERED = CodeInfo(
    Category.NOT_FOUND,
    False,
    "KIE does not offer this model now: it answered that the model's page does not exist or is not published (KIE "
    "withdrew it, or publishes it under another id), so nothing was created or charged. list_models shows the models "
    "KIE sells: use one of them instead. (Every model answering so: check that KIE_BASE_URL, when set, points at "
    "KIE's API.)",
)


def not_published(err: KieError) -> bool:
    """Whether ``err`` is KIE's answer that the model asked for is not published (``NOT_PUBLISHED``)."""
    return err.code == 422 and _says_not_published(err.message)


def _says_not_published(message: str) -> bool:
    """Whether ``message`` is ``NOT_PUBLISHED`` and nothing else (in any case, whitespace around it and a final period
    aside): a 422 that only holds the phrase, a field's error echoing the user's prompt or KIE's message with more
    in it, never marks a model withdrawn in the workspace."""
    return message.strip().removesuffix(".").strip().lower() == NOT_PUBLISHED


def _code_info(code: int | None, message: str) -> CodeInfo:
    if code == 422 and _CONTENT_REFUSAL.search(message.lower()):
        return _CONTENT_REFUSED
    if code == 422 and _says_not_published(message):
        return _NOT_OFFERED
    if code is None:
        return _FALLBACK
    return CODES.get(code) or _unknown_code(code)


class KieError(Exception):
    """A failure reported by KIE or met on the way to it."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        category: Category | None = None,
        retryable: bool | None = None,
        next_step: str | None = None,
        http_status: int | None = None,
        endpoint: str | None = None,
        data: object = None,
    ) -> None:
        info = _code_info(code, message)
        # Built from KIE's answers, which may echo the request's Authorization header (or end in half an emoji):
        # redacted and made valid Unicode here, so every copy (str(err), as_dict(), the journal, tool results) is
        # clean and can be written.
        self.message = redact(valid_text(message))
        self.code = code
        self.category = category or info.category
        self.retryable = info.retryable if retryable is None else retryable
        self.next_step = redact(valid_text(next_step or info.next_step))
        self.http_status = http_status
        self.endpoint = endpoint
        # ``data`` of KIE's error answer, redacted as it was read (``envelope.read_envelope``): KIE may still say
        # something in it (a failed Market task's record beside code 501, as its failure callback is shaped).
        self.data = data
        super().__init__(self.describe())

    # What a refusal without KIE's code is called: a subclass for one that never reached KIE says so.
    uncoded_label = "KIE request failed"

    def describe(self) -> str:
        label = f"KIE error {self.code}" if self.code is not None else self.uncoded_label
        detail = f": {self.message}" if self.message else ""
        stop = "" if detail.endswith((".", "!", "?")) else "."  # KIE's "Please top up." gets no second one
        return f"{label} ({self.category.value}){detail}{stop} {self.next_step}"

    def with_next_step(self, next_step: str) -> KieError:
        """The same refusal with advice that fits where it happened: KIE's advice for a code is written for a
        generation ("fix the field", "change the prompt") and can mislead on a follow-up endpoint. Of the same
        kind as this one (a refusal that never reached KIE stays one)."""
        clone = type(self).__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.next_step = redact(valid_text(next_step))
        Exception.__init__(clone, clone.describe())
        return clone

    def as_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "category": self.category.value,
            "message": self.message,
            "retryable": self.retryable,
            "next_step": self.next_step,
        }


class RefusedHereError(KieError):
    """A request kie-mcp refused before asking KIE for it (not a task id, a changed input file): named so, never
    "KIE request failed", which sends the user to KIE's logs for something KIE never saw."""

    uncoded_label = "Refused by kie-mcp"

    def __init__(self, message: str, *, next_step: str, category: Category = Category.INPUT) -> None:
        super().__init__(message, category=category, retryable=False, next_step=next_step)


class NotSentError(KieError):
    """The request never reached KIE (connection refused, DNS, pool timeout): nothing happened there. ``withdrawn``:
    it was not sent because its caller no longer wanted it (a create's resend after a 429, ``KieClient.create``)."""

    def __init__(self, message: str, *, endpoint: str | None = None, withdrawn: bool = False) -> None:
        super().__init__(
            message,
            category=Category.NETWORK,
            retryable=True,
            next_step="The request did not reach KIE, so nothing was created or charged. Check the network "
            "connection and KIE_BASE_URL, then try again.",
            endpoint=endpoint,
        )
        self.withdrawn = withdrawn


# What to do about a create that may have reached KIE without a clear answer.
UNKNOWN_OUTCOME_STEP = (
    "The request may have been created and charged on KIE. Do not submit it again: check "
    f"{LOGS_URL} for a new task in the last minutes, and follow it with check_task if it is there."
)


class OutcomeUnknownError(KieError):
    """A create that may have reached KIE without an answer. It must never be resubmitted blindly."""

    def __init__(
        self,
        message: str,
        *,
        endpoint: str | None = None,
        next_step: str | None = None,
        category: Category = Category.NETWORK,
    ) -> None:
        super().__init__(
            message,
            category=category,  # network: no answer; protocol: an answer that says nothing clear; server: a 5xx
            retryable=False,
            next_step=next_step or UNKNOWN_OUTCOME_STEP,
            endpoint=endpoint,
        )


# Redirects that say the request was not acted on where it was sent (HTTP's "moved", kept or not as a POST): a create
# answered with one (and a page that is not KIE's) created nothing. 302 ("found") and 303 ("see other") are what a
# server answers a POST it acted on, its answer elsewhere; 300, 304 and the rest say nothing clear.
NOT_ACTED_REDIRECTS = frozenset({301, 307, 308})


class RedirectedError(KieError):
    """An answer of HTTP 3xx: the address asked (KIE_BASE_URL, or the upload host's) sends kie-mcp elsewhere. Never
    followed: the request carries the API key, which must reach no host but the configured one. ``target`` is where
    the redirect leads (scheme, host and any path before the endpoint asked), when its ``Location`` says."""

    def __init__(self, status: int, target: str | None, *, next_step: str, endpoint: str | None = None) -> None:
        where = f"a redirect to {target}" if target else "a redirect that names no usable address"
        super().__init__(
            f"HTTP {status}, {where}, which kie-mcp does not follow (the API key would go with it)",
            category=Category.BLOCKED,
            retryable=False,  # the same setting meets the same redirect: it is fixed where it is set
            next_step=next_step,
            http_status=status,
            endpoint=endpoint,
        )
        self.target = target
