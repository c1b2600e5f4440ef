"""prepare(): what capture does to an event before queueing it, and the faults it refuses
at once."""

import json
import re

import pytest

from eis_client import InvalidEvent
from eis_client._events import MAX_EVENT_BYTES, prepare, rfc3339

EVENT = {"event_type": "pantry_updated", "unit_type": "user", "unit_id": "u1"}


def ids():
    return "0192f5a8-3c4e-7d21-9b6a-5e2f1c8d4a07"


def test_fills_id_and_timestamp_without_touching_the_callers_dict():
    original = dict(EVENT)
    item = prepare(original, ids, lambda: 1_764_795_600.123456)
    assert original == EVENT
    sent = json.loads(item.data)
    assert sent["event_id"] == item.event_id == ids()
    assert sent["timestamp"] == "2025-12-03T21:00:00.123456Z"
    assert b" " not in item.data


def test_keeps_given_id_and_timestamp():
    event = dict(EVENT, event_id="0192f5a8-0000-7000-8000-000000000001", timestamp="2026-01-01T00:00:00Z")
    item = prepare(event, ids, lambda: 0.0)
    assert item.event_id == event["event_id"]
    assert json.loads(item.data) == event


def test_rfc3339_form():
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", rfc3339(1_800_000_000.5))
    assert rfc3339(0.000001) == "1970-01-01T00:00:00.000001Z"


@pytest.mark.parametrize("event, code, field", [
    (["not", "a", "dict"], "invalid_event", None),
    ({"unit_type": "user", "unit_id": "u"}, "missing_event_type", "/event_type"),
    ({"event_type": "x", "unit_type": None, "unit_id": "u"}, "missing_unit_type", "/unit_type"),
    ({"event_type": "x", "unit_type": "user", "unit_id": ""}, "missing_unit_id", "/unit_id"),
    (dict(EVENT, event_id=12), "invalid_event_id", "/event_id"),
    (dict(EVENT, metrics={"m": float("nan")}), "invalid_json", None),
    (dict(EVENT, payload={"when": object()}), "invalid_json", None),
    (dict(EVENT, unit_id="\ud800"), "invalid_json", None),
    (dict(EVENT, payload={"blob": "x" * MAX_EVENT_BYTES}), "event_too_large", None),
])
def test_refuses_what_can_never_be_valid(event, code, field):
    with pytest.raises(InvalidEvent) as raised:
        prepare(event, ids, lambda: 0.0)
    assert raised.value.code == code
    assert raised.value.field == field


def test_size_is_counted_in_utf8_bytes_of_the_json():
    # 3 bytes per character: under the limit in characters, over it in bytes.
    event = dict(EVENT, payload={"text": "€" * 22_000})
    with pytest.raises(InvalidEvent, match="event_too_large"):
        prepare(event, ids, lambda: 0.0)
