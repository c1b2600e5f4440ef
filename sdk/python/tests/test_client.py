"""The Client as a caller sees it: capture's refusals, flush and close within their timeout,
send's results in order, on_result, stats."""

import time

import pytest

from eis_client import (DUPLICATE, GIVEN_UP, REJECTED, STORED, Client, ClientClosed, InvalidEvent,
                        QueueFull)

from .recorder import Recorder, accept_all, closed_port


def event(n):
    return {"event_type": "pantry_updated", "unit_type": "user", "unit_id": f"u{n}"}


def test_full_queue_refuses_at_once_counts_and_reports():
    refusals = []
    client = Client(f"http://127.0.0.1:{closed_port()}", max_queue_events=5,
                    flush_interval=3600, flush_at=1000, on_refusal=refusals.append)
    ids = [client.capture(event(n)) for n in range(5)]
    started = time.monotonic()
    with pytest.raises(QueueFull) as raised:
        client.capture(event(5))
    assert time.monotonic() - started < 0.5
    assert raised.value.reason == "max_queue_events"
    assert refusals == [raised.value]
    assert (client.stats.captured, client.stats.refused) == (5, 1)
    with pytest.raises(InvalidEvent):
        client.capture({"event_type": "x"})
    report = client.close(timeout=0.2)
    assert list(report.pending_ids) == ids
    with pytest.raises(ClientClosed):
        client.capture(event(6))


def test_flush_returns_within_its_timeout_when_the_server_is_down():
    client = Client(f"http://127.0.0.1:{closed_port()}")
    for n in range(10):
        client.capture(event(n))
    started = time.monotonic()
    report = client.flush(timeout=0.5)
    assert time.monotonic() - started < 1.5
    assert report.pending == 10
    client.close(timeout=0)


def test_flush_delivers_and_reports_every_result():
    seen = []
    with Recorder() as server:
        client = Client(server.url, on_result=seen.append, flush_interval=3600)
        ids = [client.capture(event(n)) for n in range(250)]
        report = client.flush(timeout=5)
        client.close(timeout=1)
    assert [r.event_id for r in report.results] == ids
    assert report.counts == {STORED: 250} and report.pending == 0
    assert seen == list(report.results)
    assert sum(len(body["events"]) for _, _, body in server.requests) == 250
    assert client.stats.delivered == 250


def test_send_returns_results_in_order():
    def answer(events):
        status, body, headers = accept_all(events)
        body["event_ids"][1] = None
        body["errors"] = [{"index": 1, "error": "invalid_unit_type", "message": "no", "field": "/unit_type"}]
        body["duplicates"] = [2]
        return 207, body, headers

    with Recorder(answer) as server:
        client = Client(server.url)
        results = client.send([event(0), dict(event(1), unit_type="User"), event(2)], timeout=5)
        client.close(timeout=1)
    assert [r.status for r in results] == [STORED, REJECTED, DUPLICATE]
    assert (results[1].code, results[1].field) == ("invalid_unit_type", "/unit_type")
    assert len(server.requests) == 1


def test_send_gives_up_at_its_timeout():
    client = Client(f"http://127.0.0.1:{closed_port()}", max_retry_after=0.1)
    started = time.monotonic()
    results = client.send([event(0), event(1)], timeout=0.5)
    assert time.monotonic() - started < 2.0
    assert [r.status for r in results] == [GIVEN_UP, GIVEN_UP]
    client.close(timeout=0)


def test_retry_after_of_a_503_is_honoured():
    answers = [(503, {"error": "storage_unavailable", "message": "down"}, {"Retry-After": "1"})]

    def answer(events):
        return answers.pop() if answers else accept_all(events)

    with Recorder(answer) as server:
        client = Client(server.url, flush_interval=0.01)
        client.capture(event(0))
        report = client.flush(timeout=5)
        client.close(timeout=1)
    assert report.counts == {STORED: 1}
    assert client.stats.retries == 1
    (_, first, _), (_, second, _) = server.requests
    assert first["EIS-Sent-At"] != second["EIS-Sent-At"]
