"""The ledger of captured events: the bounded queue, the batch in flight, the counters and the
results since the last report, under one lock.

The lock is only ever held for a few list and integer operations, never across I/O: capture
takes it twice (reserve, then push) and so never waits on the network or the spool of another
thread. Events in flight still count against the bounds until they have a final result, so
the bounds are the client's true memory bound, and an outage fills the queue and refuses
captures (counted, reported) instead of growing without end.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import fields

from .model import CONFLICT, DUPLICATE, GIVEN_UP, REJECTED, STORED, Report, Stats

# `{"events":[` and `]}` around the events, which are joined by commas.
BATCH_OVERHEAD = len(b'{"events":[]}')
_STATS = [f.name for f in fields(Stats)]
_COUNTED_AS = {
    STORED: ("delivered",),
    DUPLICATE: ("delivered", "duplicates"),
    REJECTED: ("rejected",),
    CONFLICT: ("rejected", "conflicts"),
    GIVEN_UP: ("given_up",),
}


def take_batch(waiting: deque, max_events: int, max_bytes: int) -> list:
    """Pops from the left of `waiting` the longest run of items whose batch body holds at most
    `max_events` events and `max_bytes` bytes. The first item is always taken (one event is at
    most 64 KiB, far below any batch limit)."""
    batch = []
    size = BATCH_OVERHEAD
    while waiting and len(batch) < max_events:
        added = len(waiting[0].data) + (1 if batch else 0)
        if batch and size + added > max_bytes:
            break
        size += added
        batch.append(waiting.popleft())
    return batch


class Ledger:
    def __init__(self, max_events: int, max_bytes: int, flush_at: int, flush_interval: float):
        self._max_events = max_events
        self._max_bytes = max_bytes
        self._flush_at = flush_at
        self._flush_interval = flush_interval
        lock = threading.Lock()
        self._work = threading.Condition(lock)   # the sender waits here for a batch
        self._done = threading.Condition(lock)   # flush and close wait here for results
        self._lock = lock
        self._waiting = deque()
        self._in_flight = []
        self._events = 0          # waiting + in flight
        self._bytes = 0
        self._last_seq = 0
        self._done_through = 0    # every event with seq <= this has a final result
        self._flushes = 0         # callers waiting in wait_done
        self._closing = False
        self._stopped = False
        self._oldest_since = 0.0  # when the oldest waiting event started to wait (about)
        self._results = deque(maxlen=max_events)
        self._omitted = 0
        self._counts = dict.fromkeys(_STATS, 0)

    # --- capture side --------------------------------------------------------------------

    def reserve(self, size: int):
        """Room for one event of `size` bytes, or the name of the full bound (the refusal is
        counted)."""
        with self._lock:
            if self._events >= self._max_events:
                reason = "max_queue_events"
            elif self._bytes + size > self._max_bytes:
                reason = "max_queue_bytes"
            else:
                self._events += 1
                self._bytes += size
                return None
            self._counts["refused"] += 1
            return reason

    def release(self, size: int) -> None:
        """Gives back a reservation that push will not use (the spool write failed)."""
        with self._lock:
            self._events -= 1
            self._bytes -= size

    def push(self, item) -> None:
        """Queues a reserved item."""
        with self._lock:
            self._last_seq += 1
            item.seq = self._last_seq
            if not self._waiting:
                self._oldest_since = time.monotonic()
            self._waiting.append(item)
            self._counts["captured"] += 1
            # The first event starts the sender's flush_interval timer; flush_at sends at once.
            if len(self._waiting) in (1, self._flush_at):
                self._work.notify()

    def adopt(self, items) -> None:
        """Queues items captured by an earlier client (read back from the spool), beyond the
        bounds if need be: they were accepted once and must not be refused now."""
        with self._lock:
            if items and not self._waiting:
                self._oldest_since = time.monotonic()
            for item in items:
                self._last_seq += 1
                item.seq = self._last_seq
                self._waiting.append(item)
                self._events += 1
                self._bytes += len(item.data)

    # --- sender side ---------------------------------------------------------------------

    def next_batch(self, max_events: int, max_bytes: int) -> list:
        """Blocks until a batch is due (`flush_at` events waiting, the oldest one waiting for
        `flush_interval`, a flush or close waiting) and returns it; [] once stopped."""
        with self._lock:
            while not self._stopped:
                wait = None
                if self._waiting:
                    wait = self._oldest_since + self._flush_interval - time.monotonic()
                    if (wait <= 0 or len(self._waiting) >= self._flush_at or self._flushes
                            or self._closing):
                        self._in_flight = take_batch(self._waiting, max_events, max_bytes)
                        # What stays waits at most another flush_interval.
                        self._oldest_since = time.monotonic()
                        return self._in_flight
                self._work.wait(wait)
            return []

    def settle(self, outcomes, finished: bool) -> None:
        """Records final results, `outcomes` being (item, Result) pairs of the batch in flight.
        `finished`: every event of that batch now has one."""
        with self._lock:
            for item, result in outcomes:
                self._events -= 1
                self._bytes -= len(item.data)
                for name in _COUNTED_AS[result.status]:
                    self._counts[name] += 1
                if len(self._results) == self._results.maxlen:
                    self._omitted += 1
                self._results.append(result)
            if finished and self._in_flight:
                self._done_through = self._in_flight[-1].seq
                self._in_flight = []
            self._done.notify_all()

    def retried(self) -> None:
        with self._lock:
            self._counts["retries"] += 1

    # --- flush and close -----------------------------------------------------------------

    def wait_done(self, deadline: float) -> None:
        """Until every event captured so far has a final result, or `deadline` (monotonic)
        passes, or the sender stopped; meanwhile the sender sends partial batches at once."""
        with self._lock:
            target = self._last_seq
            self._flushes += 1
            self._work.notify()
            try:
                while self._done_through < target and not self._stopped:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._done.wait(remaining)
            finally:
                self._flushes -= 1

    def close(self) -> None:
        """From now on the sender sends whatever waits, without waiting for a full batch."""
        with self._lock:
            self._closing = True
            self._work.notify()

    def stop(self) -> None:
        """The sender takes no further batch."""
        with self._lock:
            self._stopped = True
            self._work.notify_all()
            self._done.notify_all()

    def report(self) -> Report:
        """The results since the previous report, and the ids still without a final result."""
        with self._lock:
            pending = [item.event_id for item in self._in_flight]
            pending.extend(item.event_id for item in self._waiting)
            report = Report(tuple(self._results), tuple(pending), self._omitted)
            self._results.clear()
            self._omitted = 0
            return report

    def stats(self) -> Stats:
        with self._lock:
            return Stats(**self._counts)
