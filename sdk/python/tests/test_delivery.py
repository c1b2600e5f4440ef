"""What an answer means per event, when a batch is sent again and how long the client waits:
driven through `deliver` with a scripted `post` (no server: these are the client's rules)."""

import random
import threading
import time

import pytest

from eis_client import CONFLICT, DUPLICATE, GIVEN_UP, REJECTED, STORED
from eis_client._delivery import (BACKOFF_BASE, Answer, Policy, TransportError, deliver, judge,
                                  retry_wait)
from eis_client._events import Item

POLICY = Policy(request_timeout=5, max_retry_after=0.05)


def items(n):
    return [Item(f"id-{i}", b"{}", seq=i) for i in range(n)]


def batch_answer(batch, errors=(), missing=(), duplicates=()):
    """A 200/207 body for `batch`: `errors` maps index -> (code, field)."""
    errors = dict(errors)
    ids = [None if i in errors or i in missing else it.event_id for i, it in enumerate(batch)]
    body = {"accepted": sum(x is not None for x in ids), "rejected": len(errors),
            "errors": [{"index": i, "error": c, "message": f"{c} at {f}", "field": f}
                       for i, (c, f) in sorted(errors.items())],
            "event_ids": ids, "duplicates": list(duplicates)}
    return Answer(207 if errors else 200, body)


class Script:
    """A `post` that answers from a list of functions of the batch, recording the batches."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.sent = []

    def __call__(self, batch, timeout):
        self.sent.append([i.event_id for i in batch])
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer(batch)


def run(post, batch, budget=10.0, abort=None):
    return deliver(post, batch, time.monotonic() + budget, POLICY, abort or threading.Event(),
                   rng=random.Random(1))


def by_id(outcomes):
    return {item.event_id: result for item, result in outcomes}


def test_207_resends_only_events_without_a_final_answer():
    batch = items(5)
    post = Script(
        lambda b: batch_answer(b, errors={1: ("invalid_variant_id", "/experiments/0/variant_id"),
                                          3: ("event_id_conflict", "/event_id")},
                               missing={4}, duplicates={2}),
        lambda b: batch_answer(b),
    )
    outcomes, left = run(post, batch)
    assert left == []
    assert post.sent == [[f"id-{i}" for i in range(5)], ["id-4"]]
    results = by_id(outcomes)
    assert results["id-0"].status == STORED
    assert results["id-1"].status == REJECTED
    assert results["id-1"].code == "invalid_variant_id"
    assert results["id-1"].field == "/experiments/0/variant_id"
    assert results["id-2"].status == DUPLICATE
    assert results["id-3"].status == CONFLICT
    assert results["id-4"].status == STORED


def test_400_with_every_event_invalid_is_final():
    batch = items(2)
    post = Script(lambda b: Answer(400, batch_answer(b, errors={0: ("missing_unit_id", "/unit_id"),
                                                                  1: ("invalid_timestamp", "/timestamp")}).body))
    outcomes, _ = run(post, batch)
    assert len(post.sent) == 1
    assert {r.code for r in by_id(outcomes).values()} == {"missing_unit_id", "invalid_timestamp"}


def test_whole_failures_are_retried_with_the_same_ids():
    batch = items(3)
    post = Script(TransportError("connection refused"),
                  lambda b: Answer(503, {"error": "storage_unavailable"}, retry_after=5),
                  lambda b: Answer(429, None),
                  lambda b: Answer(502, None),
                  lambda b: Answer(400, {"error": "unreadable_body", "accepted": 0}),
                  lambda b: batch_answer(b))
    retries = []
    outcomes, _ = deliver(post, batch, time.monotonic() + 10, POLICY, threading.Event(),
                          rng=random.Random(1), on_retry=lambda: retries.append(1))
    assert post.sent == [["id-0", "id-1", "id-2"]] * 6
    assert len(retries) == 5
    assert {r.status for r in by_id(outcomes).values()} == {STORED}


def test_a_whole_refusal_is_final_for_every_event():
    batch = items(2)
    post = Script(lambda b: Answer(400, {"accepted": 0, "rejected": 0, "errors": [], "event_ids": [],
                                         "error": "invalid_json", "message": "bad"}))
    outcomes, _ = run(post, batch)
    assert [r.code for r in by_id(outcomes).values()] == ["invalid_json", "invalid_json"]
    assert len(post.sent) == 1


def test_413_halves_the_batch_until_it_fits():
    batch = items(8)

    def answer(b):
        return Answer(413, {"error": "payload_too_large"}) if len(b) > 2 else batch_answer(b)

    post = Script(*[answer] * 7)
    outcomes, _ = run(post, batch)
    assert [len(b) for b in post.sent] == [8, 4, 2, 2, 4, 2, 2]
    assert len(by_id(outcomes)) == 8 and all(r.status == STORED for _, r in outcomes)


def test_413_for_one_event_is_final():
    post = Script(lambda b: Answer(413, {"error": "payload_too_large", "message": "too big"}))
    outcomes, _ = run(post, items(1))
    assert outcomes[0][1].status == REJECTED and outcomes[0][1].code == "payload_too_large"


def test_budget_spent_gives_up_with_the_last_reason():
    post = Script(*[TransportError("connection refused")] * 1000)
    started = time.monotonic()
    outcomes, left = run(post, items(2), budget=0.3)
    assert time.monotonic() - started < 1
    assert left == []
    assert {r.status for _, r in outcomes} == {GIVEN_UP}
    assert "connection refused" in outcomes[0][1].message


def test_abort_leaves_the_events_pending():
    abort = threading.Event()
    abort.set()
    post = Script(TransportError("down"))
    outcomes, left = run(post, items(3), abort=abort)
    assert outcomes == [] and [i.event_id for i in left] == ["id-0", "id-1", "id-2"]


def test_judge_unexpected_answers():
    batch = items(1)
    assert judge(Answer(404, None), batch).finals[0][1].code == "http_404"
    assert judge(Answer(403, None), batch).again == batch
    assert judge(Answer(200, None), batch).again == batch


def test_backoff_full_jitter_within_bounds():
    rng = random.Random(7)
    for attempt in range(8):
        ceiling = min(30.0, BACKOFF_BASE * 2 ** attempt)
        waits = [retry_wait(attempt, None, 30.0, rng) for _ in range(500)]
        assert all(0 <= w <= ceiling for w in waits)
        # Full jitter spreads over the whole range, not around the ceiling.
        assert min(waits) < ceiling * 0.1 and max(waits) > ceiling * 0.9
    assert retry_wait(100, None, 30.0, rng) <= 30.0


@pytest.mark.parametrize("retry_after, expected", [(5, 5), (500, 30), (-3, 0), (0, 0)])
def test_retry_after_is_honoured_and_clamped(retry_after, expected):
    assert retry_wait(0, retry_after, 30.0, random.Random()) == expected
