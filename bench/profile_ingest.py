"""Profiles whole ingest requests under callgrind: `eis-bench serve-ingest` (the ingest
function's local server with symbols) against PostgreSQL and `eis-bench sqs-stub`, driven by a
fixed number of sequential requests, so the instruction counts repeat. Collection starts after
a warm-up; one profile part is dumped for single events and one for batches of 500. Prints
one JSON object with both summaries (see callgrind_top.py).

Usage: profile_ingest.py EIS_BENCH_BIN BODIES_DIR OUT_DIR SINGLES BATCHES
Environment: DATABASE_URL (the bench's database) and the local stack's AWS_* variables.
"""

import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchlib import free_port, http_get


def post(conn, path, body):
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    if response.status >= 300:
        raise RuntimeError(f"POST {path} answered {response.status}")


def control(pid, *args):
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, stdout=subprocess.DEVNULL)


def main():
    binary, bodies, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    singles, batches = int(sys.argv[4]), int(sys.argv[5])
    single, batch = (bodies / "single.json").read_bytes(), (bodies / "batch-500.json").read_bytes()
    stub_port, port = free_port(), free_port()
    stub = subprocess.Popen([binary, "sqs-stub", str(stub_port)])
    endpoint = f"http://127.0.0.1:{stub_port}"
    env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, EIS_QUEUE_URL=f"{endpoint}/123456789012/stub",
               EIS_PORT=str(port))
    prefix = out / "callgrind.requests"
    server = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={prefix}",
         binary, "serve-ingest"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(out / "valgrind.requests.log", "wb"))
    try:
        deadline = time.monotonic() + 180
        while http_get(port, "/health", timeout=30) != 200:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("serve-ingest did not start under valgrind")
            time.sleep(0.5)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        for _ in range(10):  # warm-up: connections, lazy statics; not collected
            post(conn, "/events", single)
        post(conn, "/events/batch", batch)
        control(server.pid, "--instr=on")
        for _ in range(singles):
            post(conn, "/events", single)
        control(server.pid, "--dump=single")
        for _ in range(batches):
            post(conn, "/events/batch", batch)
        control(server.pid, "--dump=batch")
        conn.close()
    finally:
        server.terminate()
        server.wait(timeout=120)
        stub.terminate()
        stub.wait(timeout=30)
    parts = sorted(out.glob("callgrind.requests.*"), key=lambda p: p.stat().st_mtime)
    if len(parts) < 2:
        raise RuntimeError(f"expected two profile parts, found {[p.name for p in parts]}")
    here = Path(__file__).resolve().parent
    result = {}
    for key, part, events in (("single", parts[0], singles), ("batch500", parts[1], batches * 500)):
        top = subprocess.run([sys.executable, str(here / "callgrind_top.py"), str(part), str(events)],
                             check=True, capture_output=True, text=True).stdout
        result[key] = json.loads(top)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
