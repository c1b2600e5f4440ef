"""The EIS client: `capture` queues an event and returns its id at once; a background thread
sends the queue in batches, retries what had no final answer, and reports every event's
result. `send` is the synchronous path for callers that must know before they return (a
Lambda handler, a script).
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import deque
from typing import Callable, Iterable, List, Optional

from ._delivery import Policy, deliver
from ._events import MAX_EVENT_BYTES, prepare
from ._http import Transport
from ._ledger import Ledger, take_batch
from ._spool import Spool
from ._uuid7 import Uuid7
from .model import ClientClosed, QueueFull, Report, Result, Stats

log = logging.getLogger("eis_client")

# The server's batch limits (docs/api.md, "Limits").
MAX_BATCH_EVENTS = 1000
MAX_BATCH_BYTES = 5 * 1024 * 1024


class Client:
    """A client of one EIS deployment.

    url: the API's base URL, e.g. "http://127.0.0.1:3000".
    auth: None (no authorization, e.g. local), BearerAuth(provider) or SigV4Auth(region).
    flush_at (100): a batch is sent as soon as this many events wait (at most 1 000).
    flush_interval (1.0 s): otherwise a batch is sent once its oldest event waited this long.
    max_queue_events (10 000) and max_queue_bytes (16 MiB of JSON): the bounds on the events
        held (waiting or in flight); a capture beyond them raises QueueFull.
    gzip_above (1 024 bytes): request bodies larger than this are gzipped.
    max_retry_after (30.0 s): the longest wait between attempts, whether the server asked for
        it (Retry-After) or backoff chose it.
    retry_budget (300.0 s): how long one batch is tried before its events are given up.
    request_timeout (15.0 s): one request's socket timeout (the server answers 503 after its
        own database timeout of 10 s).
    spool (None): a file path for the durable spool (see README); events captured into it
        survive the death of the process and are sent by the next Client opened on it.
    on_result(result): called on the sender thread with every event's final Result.
    on_refusal(error): called on the capturing thread with the QueueFull before it is raised.
    clock (time.time): seconds since the epoch, for `timestamp` and EIS-Sent-At.
    """

    def __init__(self, url: str, *, auth=None, flush_at: int = 100, flush_interval: float = 1.0,
                 max_queue_events: int = 10_000, max_queue_bytes: int = 16 * 1024 * 1024,
                 gzip_above: int = 1024, max_retry_after: float = 30.0,
                 retry_budget: float = 300.0, request_timeout: float = 15.0,
                 spool: Optional[str] = None,
                 on_result: Optional[Callable[[Result], None]] = None,
                 on_refusal: Optional[Callable[[QueueFull], None]] = None,
                 clock: Callable[[], float] = time.time):
        if not 1 <= flush_at <= MAX_BATCH_EVENTS:
            raise ValueError(f"flush_at must be within 1..{MAX_BATCH_EVENTS}")
        if max_queue_events < 1 or max_queue_bytes < MAX_EVENT_BYTES:
            raise ValueError(f"max_queue_events >= 1 and max_queue_bytes >= {MAX_EVENT_BYTES}")
        self._url = url
        self._auth = auth
        self._gzip_above = gzip_above
        self._clock = clock
        self._policy = Policy(request_timeout, max_retry_after)
        self._retry_budget = retry_budget
        self._on_result = on_result
        self._on_refusal = on_refusal
        self._new_id = Uuid7()
        self._ledger = Ledger(max_queue_events, max_queue_bytes, flush_at, flush_interval)
        self._transport = Transport(url, auth, gzip_above, clock)
        self._abort = threading.Event()
        self._closed = False
        self._spool = Spool(spool) if spool is not None else None
        if self._spool is not None:
            self._ledger.adopt(self._spool.load())
        self._sender = threading.Thread(target=self._run, name="eis-client-sender", daemon=True)
        self._sender.start()
        atexit.register(self._at_exit)

    # --- the caller's side ----------------------------------------------------------------

    def capture(self, event: dict) -> str:
        """Queues `event` for sending and returns its event_id. Fills in `event_id` (a new
        UUIDv7) and `timestamp` (now) when absent, without changing the caller's dict. Never
        waits on the network; the only I/O is the spool's insert when there is a spool.

        Raises InvalidEvent when the event can never be accepted (not a dict, a required field
        missing, not JSON, over 64 KiB), QueueFull when the queue's bounds are reached (the
        refusal is counted in `stats` and passed to `on_refusal` first), ClientClosed after
        `close`."""
        if self._closed:
            raise ClientClosed("capture after close")
        item = prepare(event, self._new_id, self._clock)
        reason = self._ledger.reserve(len(item.data))
        if reason is not None:
            refusal = QueueFull(item.event_id, reason)
            if self._on_refusal is not None:
                self._on_refusal(refusal)
            raise refusal
        if self._spool is not None:
            try:
                self._spool.add(item)
            except BaseException:
                self._ledger.release(len(item.data))
                raise
        self._ledger.push(item)
        return item.event_id

    def flush(self, timeout: float = 10.0) -> Report:
        """Sends at once what waits and waits, at most `timeout` seconds, until every event
        captured before the call has a final result. Returns the results since the previous
        report and the ids still pending (non-empty when the time ran out)."""
        self._ledger.wait_done(time.monotonic() + timeout)
        return self._ledger.report()

    def close(self, timeout: float = 10.0) -> Report:
        """Like flush, then stops the sender; `capture` raises ClientClosed afterwards.
        Returns within `timeout`. Without a spool, the pending events of the report are lost
        with the process; with one, they stay in it for the next Client."""
        deadline = time.monotonic() + timeout
        self._closed = True
        atexit.unregister(self._at_exit)
        self._ledger.close()
        self._ledger.wait_done(deadline)
        self._ledger.stop()
        self._abort.set()
        self._sender.join(max(0.0, deadline - time.monotonic()))
        return self._ledger.report()

    def send(self, events: Iterable[dict], timeout: float = 30.0) -> List[Result]:
        """Sends `events` now, on the calling thread, and returns their Results in order:
        confirmed delivery for callers that must know before they return. Ids and timestamps
        are filled in as by `capture` (InvalidEvent before anything is sent). Events without a
        final answer within `timeout` are `given_up`; sending them again with the same
        `event_id` (from the Result) is safe. Bypasses the queue, the spool, `on_result` and
        `stats`: the returned list is the whole report."""
        items = [prepare(event, self._new_id, self._clock) for event in events]
        for index, item in enumerate(items):
            item.seq = index
        deadline = time.monotonic() + timeout
        transport = Transport(self._url, self._auth, self._gzip_above, self._clock)
        results: List[Optional[Result]] = [None] * len(items)
        waiting = deque(items)
        try:
            while waiting:
                batch = take_batch(waiting, MAX_BATCH_EVENTS, MAX_BATCH_BYTES)
                outcomes, _ = deliver(transport.post_batch, batch, deadline, self._policy,
                                      threading.Event())
                for item, result in outcomes:
                    results[item.seq] = result
        finally:
            transport.close()
        return results

    @property
    def stats(self) -> Stats:
        """Counters since the client was made (a snapshot)."""
        return self._ledger.stats()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- the sender thread ----------------------------------------------------------------

    def _run(self) -> None:
        """Takes batch after batch from the ledger and delivers it; stops on `close`. Closes
        the spool on the way out: the sender is its last user."""
        try:
            while True:
                batch = self._ledger.next_batch(MAX_BATCH_EVENTS, MAX_BATCH_BYTES)
                if not batch:
                    return
                deadline = time.monotonic() + self._retry_budget
                outcomes, left = deliver(self._transport.post_batch, batch, deadline,
                                         self._policy, self._abort, on_retry=self._ledger.retried)
                if self._spool is not None:
                    self._spool.remove(item for item, _ in outcomes)
                self._ledger.settle(outcomes, finished=not left)
                self._report(outcomes)
                if left:
                    return
        except Exception:
            log.exception("eis_client: the sender stopped on an unexpected error")
            self._ledger.stop()
        finally:
            self._transport.close()
            if self._spool is not None:
                self._spool.close()

    def _report(self, outcomes) -> None:
        if self._on_result is None:
            return
        for _, result in outcomes:
            try:
                self._on_result(result)
            except Exception:
                log.exception("eis_client: on_result raised")

    def _at_exit(self) -> None:
        """At interpreter exit the sender, a daemon thread, would die silently: close first,
        briefly, and say what could not be sent."""
        report = self.close(timeout=5.0)
        if report.pending:
            log.warning("eis_client: %d events not delivered at exit%s", report.pending,
                        " (kept in the spool)" if self._spool is not None else "")

