"""What the client hands back: per-event results, flush reports, counters, and the exceptions
of `capture`. Plain values, so that callers can log, compare and pickle them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import NamedTuple, Optional, Tuple

# The final states of an event. `stored` and `duplicate` are delivered (a duplicate was stored
# earlier with the same content, e.g. by a retry whose first answer was lost); `rejected` and
# `conflict` are the server's final refusals; `given_up` means the retry budget ran out
# without an answer, so the event may or may not be stored.
STORED = "stored"
DUPLICATE = "duplicate"
REJECTED = "rejected"
CONFLICT = "conflict"
GIVEN_UP = "given_up"


class Result(NamedTuple):
    """The final answer for one event. `code`, `message` and `field` (a JSON pointer such as
    `/experiments/0/variant_id`) are set for `rejected` and `conflict`; `message` also says
    why for `given_up`; `warnings` lists the server's flags of a delivered event."""

    event_id: str
    status: str
    code: Optional[str] = None
    message: Optional[str] = None
    field: Optional[str] = None
    warnings: Tuple[str, ...] = ()

    @property
    def delivered(self) -> bool:
        return self.status in (STORED, DUPLICATE)


@dataclass(frozen=True)
class Report:
    """What `flush` and `close` return: the final results reached since the previous report
    (the most recent `max_queue_events` of them; `omitted` counts older ones left out, which
    were still passed to `on_result` and counted in `Client.stats`), and the ids of the events
    still without a final result (queued, or in a request or retry)."""

    results: Tuple[Result, ...]
    pending_ids: Tuple[str, ...]
    omitted: int = 0

    @property
    def pending(self) -> int:
        return len(self.pending_ids)

    @property
    def counts(self) -> dict:
        """Number of results per status, e.g. {"stored": 98, "rejected": 2}."""
        return dict(Counter(r.status for r in self.results))


@dataclass(frozen=True)
class Stats:
    """Counters since the client was made. `delivered` includes `duplicates`; `rejected`
    includes `conflicts`; `refused` counts captures refused because the queue was full;
    `retries` counts requests sent again."""

    captured: int = 0
    delivered: int = 0
    duplicates: int = 0
    refused: int = 0
    rejected: int = 0
    conflicts: int = 0
    given_up: int = 0
    retries: int = 0


class EISError(Exception):
    """Base of the exceptions raised by this package."""


class InvalidEvent(EISError, ValueError):
    """The event can never be accepted, whatever the server's state: not a dict, a required
    field missing, not JSON-serialisable, or larger than 64 KiB of JSON. `code` is the
    server's code for the same fault, `field` a JSON pointer when one field is at fault."""

    def __init__(self, code: str, message: str, field: Optional[str] = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.field = field


class QueueFull(EISError):
    """The queue holds `max_queue_events` events or `max_queue_bytes` bytes (events waiting
    and in flight): the event was refused, not queued. `reason` names the bound."""

    def __init__(self, event_id: str, reason: str):
        super().__init__(f"event {event_id} refused: the queue is full ({reason})")
        self.event_id = event_id
        self.reason = reason


class ClientClosed(EISError):
    """`capture` after `close`."""

