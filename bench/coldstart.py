"""Cold start of the ingest function in local mode: time from process start to the first
answered GET /health (which opens the database connection, as a first request does), over
RUNS fresh processes. Prints one JSON object.

Usage: coldstart.py INGEST_BIN RUNS    (environment as for the ingest function)
"""

import json
import os
import subprocess
import sys
import time

from benchlib import free_port, http_get, summary


def once(binary):
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen([binary], env=dict(os.environ, EIS_PORT=str(port)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            status = http_get(port, "/health")
            if status is not None:
                elapsed = time.perf_counter() - started
                if status != 200:
                    raise RuntimeError(f"/health answered {status}")
                return elapsed
            if proc.poll() is not None:
                raise RuntimeError("ingest exited before answering")
            if time.perf_counter() - started > 30:
                raise RuntimeError("no answer within 30 s")
            time.sleep(0.0005)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main():
    binary, runs = sys.argv[1], int(sys.argv[2])
    times = [once(binary) * 1000 for _ in range(runs)]
    print(json.dumps({"first_health_ms": summary(times)}))


if __name__ == "__main__":
    main()
