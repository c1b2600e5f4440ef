"""UUID version 7 (RFC 9562, section 5.7), because the standard library of Python 3.11 has no
`uuid.uuid7`.

Layout, 128 bits from the most significant: 48 bits of Unix time in milliseconds, 4 bits of
version (0111), 12 bits `rand_a`, 2 bits of variant (10), 62 bits `rand_b`.

`rand_a` is used as a counter (RFC 9562 section 6.2, method 1), so that ids made by one
generator are strictly increasing even within one millisecond or when the wall clock steps
back: the server stores events by id, and time-ordered ids keep its index appends cheap.
"""

from __future__ import annotations

import os
import threading
import time

_COUNTER_MAX = 0xFFF
# A new millisecond starts the counter at a random value below half its range, leaving at
# least 2 048 increments before it overflows into the next millisecond.
_COUNTER_SEED_MASK = 0x7FF
_RAND_B_MASK = (1 << 62) - 1


class Uuid7:
    """A generator of increasing UUIDv7 strings; safe to share between threads (the lock is
    held for a few integer operations, never across I/O)."""

    def __init__(self, now_ns=time.time_ns):
        self._now_ns = now_ns
        self._lock = threading.Lock()
        self._ms = -1
        self._counter = 0

    def __call__(self) -> str:
        random = int.from_bytes(os.urandom(10), "big")
        ms = self._now_ns() // 1_000_000
        with self._lock:
            if ms > self._ms:
                self._ms = ms
                self._counter = (random >> 62) & _COUNTER_SEED_MASK
            elif self._counter < _COUNTER_MAX:
                # Same millisecond, or the clock stepped back: keep the last time, count up.
                self._counter += 1
            else:
                # 4 096 ids in one millisecond: borrow the next one rather than repeat.
                self._ms += 1
                self._counter = 0
            ms, counter = self._ms, self._counter
        value = (ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | (random & _RAND_B_MASK)
        text = "%032x" % value
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
