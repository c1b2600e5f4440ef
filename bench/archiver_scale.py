"""Archiver scale-out: one deep queue drained by 1, 2 and 4 concurrent release
archiver runs (`events/archiver-scheduled.json`, as `make archive` runs it), moto as SQS and
S3. Prints one JSON object.

For each run count and round: a fresh queue (with the stack's attributes: visibility timeout,
redrive) and bucket of the bench's own, filled by `eis-bench fill-queue` with EVENTS packed
events; the runs start together; the drain rate is the events sent over the wall time from
the first start until the queue is empty (a rate, so wall time; until the last exit beside
it), beside each process's CPU time and
moto's. Then every object of the bucket is read back: distinct event ids archived must equal
the events sent (nothing lost); rows beyond them are events archived twice.

Usage: archiver_scale.py ARCHIVER EIS_BENCH EVENTS ROUNDS RUN_COUNTS...
Environment: DATABASE_URL (the bench's database), AWS_* of the local stack, MOTO_PID and
EIS_SCALE_NAME (a prefix for the queues and buckets, removed at the end).
"""

import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import pyarrow.parquet as pq

from benchlib import cpu_seconds, summary

ROOT = Path(__file__).resolve().parent.parent
RESOURCES = ROOT / "infra" / "local" / "resources.py"
# How often the queue's depth is read while the runs drain it.
POLL_S = 0.2


def resources(name, remove=False):
    out = subprocess.run([sys.executable, str(RESOURCES), "--queue", name, "--bucket", name]
                         + (["--remove"] if remove else []),
                         check=True, capture_output=True, text=True).stdout
    return None if remove else out.split()[0]


def archived_ids(s3, bucket):
    """Event ids of every Parquet object in the bucket (one entry per row), and the objects."""
    ids, objects = [], 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            if not obj["Key"].endswith(".parquet"):
                continue
            objects += 1
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            ids += pq.read_table(io.BytesIO(body), columns=["event_id"]).column(0).to_pylist()
    return ids, objects


def left_in_queue(sqs, url):
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"])


def drain(archiver, eis_bench, events, runs, name, moto_pid, sqs, s3):
    queue = resources(name)
    try:
        fill = json.loads(subprocess.run([eis_bench, "fill-queue", queue, str(events)], check=True,
                                         capture_output=True, text=True).stdout)
        env = dict(os.environ, EIS_QUEUE_URL=queue, EIS_BUCKET=name,
                   # Room for the whole drain: the local deadline stands in for Lambda's.
                   EIS_LOCAL_DEADLINE_SECS=os.environ.get("EIS_LOCAL_DEADLINE_SECS", "900"))
        moto_before = cpu_seconds(moto_pid)
        started = time.monotonic()
        # Files, not pipes: a run's log must never block it while another is waited for.
        files = [(tempfile.TemporaryFile(), tempfile.TemporaryFile()) for _ in range(runs)]
        procs = [subprocess.Popen([archiver, str(ROOT / "events" / "archiver-scheduled.json")],
                                  env=env, stdout=out, stderr=err) for out, err in files]
        # Reaped as they exit (os.wait4 gives each one's rusage; Popen.wait would not), while
        # the queue is watched: it is drained once no message is left, visible or in flight
        # (a message is deleted only after its events are stored). The runs then still wait
        # out one empty long poll and do their maintenance before they exit.
        done, drained_at = {}, None
        while len(done) < runs:
            for i, p in enumerate(procs):
                if i not in done:
                    pid, status, usage = os.wait4(p.pid, os.WNOHANG)
                    if pid:
                        p.returncode = os.waitstatus_to_exitcode(status)
                        done[i] = usage
            if drained_at is None and left_in_queue(sqs, queue) == 0:
                drained_at = time.monotonic()
            time.sleep(POLL_S)
        outputs, cpu = [], []
        for i, (p, (out, err)) in enumerate(zip(procs, files)):
            out.seek(0)
            err.seek(0)
            if p.returncode != 0:
                raise RuntimeError(f"archiver exited {p.returncode}: {err.read().decode()[-2000:]}")
            outputs.append(json.loads(out.read()))
            cpu.append(done[i].ru_utime + done[i].ru_stime)
            out.close()
            err.close()
        wall = time.monotonic() - started
        drained = (drained_at or time.monotonic()) - started
        moto_cpu = cpu_seconds(moto_pid) - moto_before
        ids, objects = archived_ids(s3, name)
        distinct = len(set(ids))
        result = {
            "runs": runs,
            "sent": fill["events"],
            "messages": fill["messages"],
            "wall_s": wall,
            "drained_s": drained,
            "events_per_s": fill["events"] / drained,
            "events_per_s_to_exit": fill["events"] / wall,
            "archiver_cpu_s": cpu,
            "archiver_cpu_us_per_event": 1e6 * sum(cpu) / fill["events"],
            "moto_cpu_s": moto_cpu,
            "run_seconds": [o.get("seconds") for o in outputs],
            "run_events": [o.get("events") for o in outputs],
            "run_messages": [o.get("messages") for o in outputs],
            "objects": objects,
            "rows_archived": len(ids),
            "distinct_archived": distinct,
            "lost": fill["events"] - distinct,
            "duplicates": len(ids) - distinct,
            "left_in_queue": left_in_queue(sqs, queue),
        }
        print(f"[archiver-scale] {runs} run(s): {result['events_per_s']:.0f} events/s "
              f"(queue empty after {drained:.1f} s, last exit {wall:.1f} s), lost {result['lost']}, duplicates {result['duplicates']}, "
              f"archiver CPU {sum(cpu):.2f} s, moto CPU {moto_cpu:.2f} s", file=sys.stderr)
        return result
    finally:
        resources(name, remove=True)


def main():
    archiver, eis_bench, events, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    counts = [int(c) for c in sys.argv[5:]]
    base, moto_pid = os.environ["EIS_SCALE_NAME"], int(os.environ["MOTO_PID"])
    sqs, s3 = boto3.client("sqs"), boto3.client("s3")
    results = {c: [] for c in counts}
    # Rounds interleave the run counts, so a burst of load on the shared machine hits them all.
    for round_ in range(rounds):
        for c in counts:
            results[c].append(drain(archiver, eis_bench, events, c, f"{base}-x{c}-r{round_}",
                                    moto_pid, sqs, s3))
    out = {}
    for c, rs in results.items():
        out[str(c)] = {
            "events_per_s": summary([r["events_per_s"] for r in rs]),
            "wall_s": summary([r["wall_s"] for r in rs]),
            "drained_s": summary([r["drained_s"] for r in rs]),
            "events_per_s_to_exit": summary([r["events_per_s_to_exit"] for r in rs]),
            "archiver_cpu_us_per_event": summary([r["archiver_cpu_us_per_event"] for r in rs]),
            "moto_cpu_share": summary([r["moto_cpu_s"] / r["wall_s"] for r in rs]),
            "lost": sum(r["lost"] for r in rs),
            "duplicates": sum(r["duplicates"] for r in rs),
            "rounds": rs,
        }
    print(json.dumps({"events": events, "rounds": rounds, "run_counts": counts, "by_runs": out}))


if __name__ == "__main__":
    main()
