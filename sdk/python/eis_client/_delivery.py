"""One batch, from its first request to a final result per event: what an answer means, when
to send again, how long to wait.

Per-event errors are final (the server judged that event; sending it again gets the same
answer). A failure of the request as a whole (no answer, a timeout, 429, 5xx) says nothing
about the events, so they are sent again with the same ids: the server answers an event it
already stored as a duplicate, so a retry never stores twice. Only events without a final
answer are sent again.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Callable, List, NamedTuple, Optional, Tuple

from .model import CONFLICT, DUPLICATE, GIVEN_UP, REJECTED, STORED, Result

# Statuses that say nothing final about the events. 401 and 403 are here because a token or
# a signature can be fixed by the next request (a refreshed token, fresh credentials); wrong
# credentials end as `given_up` when the budget is spent.
RETRY_STATUSES = frozenset({401, 403, 408, 429})
# A refusal of a whole request that is about the connection, not the content.
TRANSIENT_CODES = frozenset({"unreadable_body"})
# Full jitter's first ceiling; it doubles per attempt up to max_retry_after.
BACKOFF_BASE = 0.5
_RNG = random.Random()


class Answer(NamedTuple):
    """An HTTP answer: status, the JSON body (None when not JSON) and Retry-After in seconds
    (None when absent)."""

    status: int
    body: object
    retry_after: Optional[float] = None


class TransportError(Exception):
    """No HTTP answer: connection refused or reset, timeout, TLS failure."""


class Verdict(NamedTuple):
    finals: List[Tuple[object, Result]]
    again: list
    split: bool = False
    retry_after: Optional[float] = None
    reason: str = ""


def describe(answer: Answer) -> str:
    body = answer.body if isinstance(answer.body, dict) else {}
    return f"HTTP {answer.status} {body.get('error', '')}".rstrip()


def rejected(item, code: str, message: Optional[str], field: Optional[str] = None):
    status = CONFLICT if code == "event_id_conflict" else REJECTED
    return item, Result(item.event_id, status, code, message, field)


def judge(answer: Answer, batch: list) -> Verdict:
    """What the answer to a batch request means for each of its events."""
    status, body = answer.status, answer.body
    if status == 413 and len(batch) > 1:
        return Verdict([], [], split=True)
    if status in RETRY_STATUSES or status >= 500:
        return Verdict([], batch, retry_after=answer.retry_after, reason=describe(answer))
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        # The request refused as a whole (413 for one event, 415, invalid_json, ...).
        code = body["error"]
        if code in TRANSIENT_CODES:
            return Verdict([], batch, reason=describe(answer))
        message, field = body.get("message"), body.get("field")
        return Verdict([rejected(item, code, message, field) for item in batch], [])
    if isinstance(body, dict) and isinstance(body.get("event_ids"), list):
        return per_event(body, batch)
    if 400 <= status < 500:
        # Not an EIS answer (a wrong URL, a proxy): sending again would not change it.
        message = f"HTTP {status} without an EIS answer"
        return Verdict([rejected(item, f"http_{status}", message) for item in batch], [])
    return Verdict([], batch, reason=f"HTTP {status} without an EIS answer")


def per_event(body: dict, batch: list) -> Verdict:
    """The answers by index of a 200, 207 or 400; an event with neither an error nor an id
    has no answer and goes again."""
    errors = {e.get("index"): e for e in body.get("errors") or () if isinstance(e, dict)}
    ids = body["event_ids"]
    duplicates = set(body.get("duplicates") or ())
    warnings = {w.get("index"): tuple(w.get("warnings") or ())
                for w in body.get("warnings") or () if isinstance(w, dict)}
    finals, again = [], []
    for index, item in enumerate(batch):
        error = errors.get(index)
        if error is not None:
            finals.append(rejected(item, error.get("error"), error.get("message"), error.get("field")))
        elif index < len(ids) and ids[index]:
            status = DUPLICATE if index in duplicates else STORED
            finals.append((item, Result(item.event_id, status, warnings=warnings.get(index, ()))))
        else:
            again.append(item)
    return Verdict(finals, again, reason="no answer for some events")


def retry_wait(attempt: int, retry_after: Optional[float], max_retry_after: float,
               rng: random.Random) -> float:
    """Seconds before the next attempt: the server's Retry-After clamped to
    [0, max_retry_after]; without one, full jitter: uniform in [0, min(max_retry_after,
    BACKOFF_BASE * 2**attempt)] (attempt counts from 0)."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), max_retry_after)
    return rng.uniform(0.0, min(max_retry_after, BACKOFF_BASE * 2 ** min(attempt, 32)))


class Policy(NamedTuple):
    request_timeout: float
    max_retry_after: float


def deliver(post: Callable[[list, float], Answer], items: list, deadline: float, policy: Policy,
            abort: threading.Event, rng: random.Random = _RNG,
            on_retry: Callable[[], None] = lambda: None):
    """Sends `items` with `post(batch, timeout)` until each has a final result or `deadline`
    (time.monotonic) passes; a 413 halves the batch. Returns the (item, Result) pairs and the
    items left without a result because `abort` was set (they stay pending; on a deadline they
    are given up instead)."""
    outcomes = []
    todo = [items]
    attempt = 0
    reason = "the time budget was spent before it was sent"
    while todo:
        batch = todo.pop()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            outcomes.extend((item, Result(item.event_id, GIVEN_UP, message=reason)) for item in batch)
            continue
        try:
            verdict = judge(post(batch, min(policy.request_timeout, remaining)), batch)
        except TransportError as error:
            verdict = Verdict([], batch, reason=f"no answer: {error}")
        outcomes.extend(verdict.finals)
        if verdict.split:
            half = len(batch) // 2
            todo.extend((batch[half:], batch[:half]))
            continue
        if not verdict.again:
            continue
        reason = verdict.reason
        wait = retry_wait(attempt, verdict.retry_after, policy.max_retry_after, rng)
        attempt += 1
        if time.monotonic() + wait >= deadline:
            outcomes.extend((item, Result(item.event_id, GIVEN_UP, message=reason))
                            for item in verdict.again)
            continue
        if abort.wait(wait):
            return outcomes, verdict.again + [item for rest in todo for item in rest]
        on_retry()
        todo.append(verdict.again)
    return outcomes, []
