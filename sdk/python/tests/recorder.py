"""Helpers of the unit tests: a port nobody listens on, and a recording HTTP server that
stands in for EIS only to show the bytes the client sends (headers, gzip, body) and to answer
as told. The SDK's behaviour against the real service is tested in tests/python/test_sdk_python.py."""

import gzip
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accept_all(events: list) -> tuple:
    """The answer of EIS to a batch it stores whole."""
    return 200, {"accepted": len(events), "rejected": 0, "errors": [],
                 "event_ids": [e["event_id"] for e in events]}, {}


class Recorder:
    """Serves on 127.0.0.1; `requests` holds (path, headers, decoded body) of every POST;
    `answer(events) -> (status, body, headers)` decides the reply (accept_all by default)."""

    def __init__(self, answer=accept_all):
        self.requests = []
        self.answer = answer
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    raw = gzip.decompress(raw)
                document = json.loads(raw)
                recorder.requests.append((self.path, dict(self.headers), document))
                status, body, headers = recorder.answer(document["events"])
                data = json.dumps(body).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
