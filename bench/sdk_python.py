"""The Python SDK's capture() against posthog-python's, on the same event (the shape of
events/plan_generated.json), on this machine, in one run; and the peak RSS of a client holding
a full default queue. Prints one JSON object.

usage: sdk_python.py [EVENTS_PER_ROUND] [ROUNDS]

Both clients point at a closed port on 127.0.0.1 (nothing leaves the machine; their sender
threads fail and back off) and are given queues large enough for a round. capture_cpu_us is
the CPU time of the capturing thread (time.thread_time) per call: what capture() costs the
caller. process_cpu_us is the whole process's over the same calls (time.process_time),
sender threads included: posthog serialises to JSON on its sender thread, ours in capture().
Rounds alternate which client goes first. Goal: ours <= 1.0x posthog's capture_cpu_us.
"""

import gc
import json
import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import posthog
from benchlib import free_port, summary

from eis_client import Client

ROOT = Path(__file__).resolve().parents[1]
PLAN = json.loads((ROOT / "events" / "plan_generated.json").read_text())
# The event as a caller hands it over: the SDK sets event_id and timestamp, as posthog does
# its uuid and timestamp.
EVENT = {k: v for k, v in PLAN.items() if k not in ("event_id", "timestamp")}
PROPERTIES = {k: PLAN[k] for k in ("experiments", "context", "metrics", "payload")}
WARM_UP = 500
# posthog logs every failed upload; the closed port makes them all fail.
logging.getLogger("posthog").disabled = True


def ours(url: str, count: int):
    client = Client(url, max_queue_events=count + WARM_UP, max_queue_bytes=1 << 30)
    return client.capture, lambda: client.capture(EVENT), lambda: client.close(timeout=0)


def theirs(url: str, count: int):
    client = posthog.Posthog("phc_bench", host=url, max_queue_size=count + WARM_UP, max_retries=0)

    def capture():
        client.capture(PLAN["event_type"], distinct_id=PLAN["unit_id"], properties=PROPERTIES)

    return None, capture, client.shutdown


def round_of(make, url: str, count: int) -> tuple:
    """(thread CPU, process CPU) per capture() in microseconds, over `count` calls."""
    _, capture, close = make(url, count)
    for _ in range(WARM_UP):
        capture()
    gc.collect()
    thread0, process0 = time.thread_time(), time.process_time()
    for _ in range(count):
        capture()
    thread1, process1 = time.thread_time(), time.process_time()
    close()
    return (thread1 - thread0) / count * 1e6, (process1 - process0) / count * 1e6


# Run in a fresh interpreter: a client with default settings, filled until capture() refuses.
FULL_QUEUE = """
import json, sys
from eis_client import Client, QueueFull
def rss(field):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) / 1024 for l in f if l.startswith(field + ":"))
event = json.loads(sys.argv[2])
client = Client(sys.argv[1])
before = rss("VmRSS")
held = 0
try:
    while True:
        client.capture(event)
        held += 1
except QueueFull as full:
    reason = full.reason
print(json.dumps({"events_held": held, "bound": reason, "event_bytes": len(json.dumps(event)),
                  "rss_before_mib": round(before, 1), "rss_peak_mib": round(rss("VmHWM"), 1)}))
client.close(timeout=0)
"""


def full_queue(url: str) -> dict:
    run = subprocess.run([sys.executable, "-c", FULL_QUEUE, url, json.dumps(EVENT)],
                         capture_output=True, text=True, check=True, timeout=300)
    return json.loads(run.stdout)


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    url = f"http://127.0.0.1:{free_port()}"
    figures = {"ours": [], "posthog": []}
    for r in range(rounds):
        order = [("ours", ours), ("posthog", theirs)]
        for name, make in order if r % 2 == 0 else reversed(order):
            figures[name].append(round_of(make, url, count))
            print(f"[sdk-python] round {r + 1}: {name} {figures[name][-1][0]:.2f} us", file=sys.stderr)
    thread = {name: summary([t for t, _ in runs]) for name, runs in figures.items()}
    process = {name: summary([p for _, p in runs]) for name, runs in figures.items()}
    print(json.dumps({
        "events_per_round": count,
        "rounds": rounds,
        "versions": {"python": platform.python_version(), "posthog": posthog.VERSION},
        "capture_cpu_us": thread,
        "process_cpu_us": process,
        "ratio": thread["ours"]["median"] / thread["posthog"]["median"],
        "process_ratio": process["ours"]["median"] / process["posthog"]["median"],
        "goal_ratio": 1.0,
        "full_default_queue": full_queue(url),
        "cpus": os.cpu_count(),
    }, indent=2))


if __name__ == "__main__":
    main()
