"""The UUIDv7 generator: RFC 9562 layout, and strictly increasing ids even within one
millisecond, when the clock steps back, and past 4 096 ids in one millisecond."""

import threading
import time
import uuid

from eis_client._uuid7 import Uuid7


def test_layout_version_variant_and_time():
    before = time.time_ns() // 1_000_000
    text = Uuid7()()
    after = time.time_ns() // 1_000_000
    value = uuid.UUID(text)
    assert str(value) == text
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert before <= value.int >> 80 <= after


def test_increasing_within_one_millisecond():
    make = Uuid7(now_ns=lambda: 1_700_000_000_000_000_000)
    ids = [make() for _ in range(2000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert {uuid.UUID(i).int >> 80 for i in ids} == {1_700_000_000_000}


def test_increasing_when_the_clock_steps_back():
    now = [1_700_000_000_005_000_000]
    make = Uuid7(now_ns=lambda: now[0])
    first = make()
    now[0] -= 3_000_000
    second = make()
    assert second > first
    assert uuid.UUID(second).int >> 80 == 1_700_000_000_005


def test_counter_overflow_borrows_the_next_millisecond():
    make = Uuid7(now_ns=lambda: 1_700_000_000_000_000_000)
    ids = [make() for _ in range(5000)]
    assert ids == sorted(ids) and len(set(ids)) == 5000
    assert uuid.UUID(ids[-1]).int >> 80 == 1_700_000_000_001


def test_increasing_across_threads():
    make = Uuid7()
    out = []
    lock = threading.Lock()

    def worker():
        mine = [make() for _ in range(2000)]
        assert mine == sorted(mine)
        with lock:
            out.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(out)) == 8000
