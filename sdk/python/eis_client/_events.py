"""Turning a caller's dict into the exact JSON the client will send, at capture time.

Encoding once, at capture, means the queue holds bytes (its byte bound is exact), a batch is
a join of those bytes, and the spool stores what will be sent. The checks are only those whose
outcome cannot depend on the server: the contract's other rules (syntax of `event_type`, UUIDs,
metrics, the registry) are the server's to judge, and it answers them per event.
"""

from __future__ import annotations

import json
import time

from .model import InvalidEvent

# The server's limit on one event's JSON text (docs/contract.md, "Size").
MAX_EVENT_BYTES = 64 * 1024
REQUIRED = ("event_type", "unit_type", "unit_id")

# One encoder for every event: json.dumps with options builds a new encoder per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class Item:
    """One captured event on its way: `seq` orders it in the client, `data` is its JSON,
    `spool_row` its row in the spool (None without one)."""

    __slots__ = ("seq", "event_id", "data", "spool_row")

    def __init__(self, event_id: str, data: bytes, seq: int = 0, spool_row=None):
        self.seq = seq
        self.event_id = event_id
        self.data = data
        self.spool_row = spool_row


def rfc3339(seconds: float) -> str:
    """`seconds` since the epoch as RFC 3339 in UTC with microseconds, e.g.
    2026-12-03T21:00:00.123456Z: the form of `timestamp` and of the EIS-Sent-At header."""
    whole, micros = divmod(int(seconds * 1_000_000), 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + ".%06dZ" % micros


def prepare(event, new_id, clock) -> Item:
    """The event as it will be sent: `event_id` (a new UUIDv7 from `new_id`) and `timestamp`
    (from `clock`, seconds since the epoch) filled in when absent, encoded as compact UTF-8
    JSON. The caller's dict is never modified. Raises InvalidEvent."""
    if not isinstance(event, dict):
        raise InvalidEvent("invalid_event", f"an event is a dict, not {type(event).__name__}")
    for name in REQUIRED:
        value = event.get(name)
        if value is None or value == "":
            raise InvalidEvent(f"missing_{name}", f"{name} is required", f"/{name}")
    event_id = event.get("event_id")
    if event_id is not None and not isinstance(event_id, str):
        raise InvalidEvent("invalid_event_id", "event_id must be a UUID string", "/event_id")
    timestamp = event.get("timestamp")
    if event_id is None or timestamp is None or timestamp == "":
        event = dict(event)
        if event_id is None:
            event_id = event["event_id"] = new_id()
        if timestamp is None or timestamp == "":
            event["timestamp"] = rfc3339(clock())
    try:
        data = _ENCODER.encode(event).encode("utf-8")
    except (TypeError, ValueError) as error:
        # TypeError: a value JSON cannot hold; ValueError: NaN or infinity, a circular
        # reference, or a lone surrogate in a string.
        raise InvalidEvent("invalid_json", f"the event is not JSON: {error}") from None
    if len(data) > MAX_EVENT_BYTES:
        raise InvalidEvent("event_too_large",
                           f"{len(data)} bytes of JSON, more than {MAX_EVENT_BYTES}")
    return Item(event_id, data)
