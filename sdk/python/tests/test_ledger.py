"""The ledger: queue bounds by events and bytes (in-flight events included), batches cut by
count and by bytes, and flush's wait."""

import threading
import time
from collections import deque

from eis_client import DUPLICATE, GIVEN_UP, STORED, Result
from eis_client._events import Item
from eis_client._ledger import BATCH_OVERHEAD, Ledger, take_batch


def item(size: int, name: str = "e") -> Item:
    return Item(name, b"x" * size)


def test_bound_on_events_counts_in_flight_and_is_freed_by_results():
    ledger = Ledger(max_events=3, max_bytes=1 << 20, flush_at=2, flush_interval=60)
    for n in range(3):
        assert ledger.reserve(10) is None
        ledger.push(item(10, f"e{n}"))
    assert ledger.reserve(10) == "max_queue_events"
    batch = ledger.next_batch(1000, 1 << 20)     # now in flight, still counted
    assert [i.event_id for i in batch] == ["e0", "e1", "e2"]
    assert ledger.reserve(10) == "max_queue_events"
    ledger.settle([(batch[0], Result("e0", STORED))], finished=False)
    assert ledger.reserve(10) is None
    stats = ledger.stats()
    assert (stats.captured, stats.refused, stats.delivered) == (3, 2, 1)


def test_bound_on_bytes():
    ledger = Ledger(max_events=100, max_bytes=100, flush_at=10, flush_interval=60)
    assert ledger.reserve(60) is None
    assert ledger.reserve(41) == "max_queue_bytes"
    assert ledger.reserve(40) is None
    ledger.release(40)
    assert ledger.reserve(40) is None


def test_take_batch_by_count():
    waiting = deque(item(10) for _ in range(2500))
    sizes = []
    while waiting:
        sizes.append(len(take_batch(waiting, 1000, 1 << 30)))
    assert sizes == [1000, 1000, 500]


def test_take_batch_by_bytes_counts_the_body_exactly():
    # Each event 100 bytes plus a comma between: 10 events make a body of
    # BATCH_OVERHEAD + 10 * 100 + 9 bytes.
    limit = BATCH_OVERHEAD + 10 * 100 + 9
    waiting = deque(item(100) for _ in range(25))
    first = take_batch(waiting, 1000, limit)
    assert len(first) == 10
    assert len(take_batch(waiting, 1000, limit - 1)) == 9


def test_take_batch_always_takes_one():
    waiting = deque([item(500)])
    assert len(take_batch(waiting, 1000, 100)) == 1


def test_next_batch_waits_for_flush_at_or_flush_interval():
    ledger = Ledger(max_events=100, max_bytes=1 << 20, flush_at=3, flush_interval=0.3)
    for _ in range(3):
        ledger.reserve(1)
        ledger.push(item(1))
    assert len(ledger.next_batch(1000, 1 << 20)) == 3      # flush_at reached: at once
    ledger.reserve(1)
    ledger.push(item(1))
    started = time.monotonic()
    assert len(ledger.next_batch(1000, 1 << 20)) == 1      # one event: after flush_interval
    assert 0.2 <= time.monotonic() - started < 2


def test_wait_done_returns_at_its_deadline_and_when_results_arrive():
    ledger = Ledger(max_events=100, max_bytes=1 << 20, flush_at=50, flush_interval=60)
    ledger.reserve(1)
    ledger.push(item(1, "a"))
    started = time.monotonic()
    ledger.wait_done(started + 0.2)
    assert 0.15 <= time.monotonic() - started < 1
    # A flush waiting makes the sender take a partial batch at once.
    sender = threading.Thread(target=lambda: ledger.settle(
        [(b, Result(b.event_id, DUPLICATE)) for b in ledger.next_batch(1000, 1 << 20)], finished=True))
    sender.start()
    ledger.wait_done(time.monotonic() + 5)
    sender.join()
    report = ledger.report()
    assert report.results == (Result("a", DUPLICATE),)
    assert report.pending_ids == ()
    assert ledger.report().results == ()


def test_report_lists_waiting_and_in_flight_as_pending_and_keeps_the_latest_results():
    ledger = Ledger(max_events=2, max_bytes=1 << 20, flush_at=1, flush_interval=60)
    for name in ("a", "b"):
        ledger.reserve(1)
        ledger.push(item(1, name))
    ledger.next_batch(1, 1 << 20)
    assert ledger.report().pending_ids == ("a", "b")
    ledger.settle([(item(1, n), Result(n, GIVEN_UP)) for n in "xyz"], finished=False)
    report = ledger.report()
    assert [r.event_id for r in report.results] == ["y", "z"]
    assert report.omitted == 1
