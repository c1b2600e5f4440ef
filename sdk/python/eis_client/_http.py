"""The one HTTP request the client makes, POST of a batch, over a kept-alive connection of the
standard library (no dependency): the body is the queued events' JSON joined, gzipped above
`gzip_above` bytes, stamped with EIS-Sent-At, then signed by the auth (if any), which must see
the final body and headers."""

from __future__ import annotations

import email.utils
import gzip
import http.client
import json
import ssl
import time
from typing import Optional
from urllib.parse import urlsplit

from ._delivery import Answer, TransportError
from ._events import rfc3339

BATCH_PATH = "/events/batch"


def parse_retry_after(value: Optional[str]) -> Optional[float]:
    """Retry-After as seconds from now: a number of seconds or an HTTP date; None when absent
    or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return email.utils.parsedate_to_datetime(value).timestamp() - time.time()
    except (TypeError, ValueError, IndexError):
        return None


class Transport:
    """POSTs batches to one EIS base URL (e.g. https://abc.execute-api.eu-west-1.amazonaws.com
    or http://127.0.0.1:3000). Not thread-safe: one per sending thread."""

    def __init__(self, url: str, auth, gzip_above: int, clock):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url must be http(s)://host[:port][/path], not {url!r}")
        self._url = url.rstrip("/")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._path = parts.path.rstrip("/")
        self._auth = auth
        self._gzip_above = gzip_above
        self._clock = clock
        self._connection = None

    def post_batch(self, items: list, timeout: float) -> Answer:
        body = b'{"events":[' + b",".join([item.data for item in items]) + b"]}"
        headers = {"Content-Type": "application/json", "EIS-Sent-At": rfc3339(self._clock())}
        if len(body) > self._gzip_above:
            body = gzip.compress(body, compresslevel=1, mtime=0)
            headers["Content-Encoding"] = "gzip"
        if self._auth is not None:
            headers.update(self._auth.headers("POST", self._url + BATCH_PATH, body, headers))
        try:
            connection = self._connect(timeout)
            connection.request("POST", self._path + BATCH_PATH, body, headers)
            response = connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as error:
            self.close()
            raise TransportError(f"{type(error).__name__}: {error}") from None
        if response.will_close:
            self.close()
        try:
            document = json.loads(data)
        except ValueError:
            document = None
        return Answer(response.status, document, parse_retry_after(response.getheader("Retry-After")))

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        if self._connection is None:
            if self._https:
                self._connection = http.client.HTTPSConnection(
                    self._host, self._port, timeout=timeout, context=ssl.create_default_context())
            else:
                self._connection = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        self._connection.timeout = timeout
        if self._connection.sock is not None:
            self._connection.sock.settimeout(timeout)
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
