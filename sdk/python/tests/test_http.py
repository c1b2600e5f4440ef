"""What goes on the wire: the batch route, JSON, EIS-Sent-At from the client's clock on every
request (a retry gets a new one), gzip above `gzip_above`, the auth's headers; and Retry-After."""

import re
import time
from email.utils import formatdate

from eis_client._events import Item, rfc3339
from eis_client._http import Transport, parse_retry_after
from eis_client.auth import BearerAuth

from .recorder import Recorder

SENT_AT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def items(n, size=10):
    return [Item(f"id-{i}", b'{"event_id":"id-%d","p":"%s"}' % (i, b"x" * size)) for i in range(n)]


def test_small_batch_plain_json_with_sent_at_and_bearer():
    now = [1_800_000_000.25]
    with Recorder() as server:
        transport = Transport(server.url, BearerAuth(lambda: "tok"), gzip_above=10_000, clock=lambda: now[0])
        answer = transport.post_batch(items(2), timeout=5)
        now[0] += 7
        transport.post_batch(items(1), timeout=5)
        transport.close()
    assert answer.status == 200 and answer.body["event_ids"] == ["id-0", "id-1"]
    (path, headers, body), (_, second, _) = server.requests
    assert path == "/events/batch"
    assert headers["Content-Type"] == "application/json"
    assert "Content-Encoding" not in headers
    assert headers["Authorization"] == "Bearer tok"
    assert headers["EIS-Sent-At"] == rfc3339(1_800_000_000.25) == "2027-01-15T08:00:00.250000Z"
    assert second["EIS-Sent-At"] == rfc3339(1_800_000_007.25)
    assert [e["event_id"] for e in body["events"]] == ["id-0", "id-1"]


def test_large_batch_is_gzipped_and_base_path_kept():
    with Recorder() as server:
        transport = Transport(server.url + "/", None, gzip_above=1024, clock=time.time)
        transport.post_batch(items(50, size=100), timeout=5)
        transport.close()
    path, headers, body = server.requests[0]
    assert path == "/events/batch"
    assert headers["Content-Encoding"] == "gzip"
    assert SENT_AT.fullmatch(headers["EIS-Sent-At"])
    assert len(body["events"]) == 50


def test_retry_after_seconds_and_http_date():
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    in_ten = parse_retry_after(formatdate(time.time() + 10, usegmt=True))
    assert 8 <= in_ten <= 11
