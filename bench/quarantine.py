"""Quarantine, flood and restore, on the release binaries, PostgreSQL and moto.
Prints one JSON object.

- cost: the ingest's CPU per rejected event (batches of 100 events without unit_type, each
  kept with its text and sent on the queue), against its CPU per valid event of the same
  batches with unit_type (validated, stored, handed off) in the same run; moto's CPU and the
  queue bytes per rejected event.
- flood: latency of single valid events from one client, alone, while two clients send
  FLOOD_EVENTS invalid events in batches of 100, and (the reference) while they send as many
  valid events: on one shared machine a flood of any kind takes CPU; the reference tells what
  the quarantine adds to it.
- restore: RESTORE_EVENTS events of yesterday archived by the archiver, their day partition
  dropped, then `{"action":"restore"}` over the day: events per second and PostgreSQL +
  archiver CPU per event, against `\\copy` (CSV) of the same rows into the same table.

Usage: quarantine.py INGEST_BIN ARCHIVER_BIN FLOOD_EVENTS RESTORE_EVENTS
Environment: DATABASE_URL (the bench's own database), EIS_QUEUE_URL and EIS_BUCKET (its own
queue and bucket on moto), AWS_* of the local stack, MOTO_PID.
"""

import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3

from benchlib import cluster_cpu_seconds, cpu_seconds, free_port, http_get, ppid, summary

BATCH = 100
REQUESTS = 100
LATENCY_REQUESTS = 300
EXPERIMENT = "0b7e6a43-2d1e-4f55-9d7c-6f6f6b1f0a01"
VARIANT = "5c0c8f5e-8b4a-4a43-b7c5-0f2f0c0b9a02"


def psql(sql):
    out = subprocess.run(["psql", os.environ["DATABASE_URL"], "-v", "ON_ERROR_STOP=1", "-Atqc", sql],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def event(n, ts, valid=True):
    e = {"event_type": "pantry_updated", "unit_id": f"u-{n}", "timestamp": ts,
         "experiments": [{"experiment_id": EXPERIMENT, "variant_id": VARIANT}],
         "metrics": {"items": n % 17}, "payload": {"note": "bench", "n": n}}
    if valid:
        e["unit_type"] = "user"
    return e


def post(port, path, body):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method="POST",
                                     headers={"content-type": "application/json"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            status = r.status
    except urllib.error.HTTPError as e:
        status = e.code
    return status, time.perf_counter() - started


def batch_body(start, valid, ts):
    return json.dumps({"events": [event(start + i, ts, valid) for i in range(BATCH)]}).encode()


def drain_queue(sqs, url):
    """Every message body on the queue, deleted as read."""
    bodies = []
    while True:
        out = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = out.get("Messages", [])
        if not messages:
            return bodies
        bodies.extend(m["Body"] for m in messages)
        sqs.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])


def cost(port, ingest_pid, moto_pid, sqs, queue):
    now = datetime.now(timezone.utc).isoformat()
    figures = {}
    for kind, valid in (("valid", True), ("rejected", False)):
        drain_queue(sqs, queue)
        bodies = [batch_body(i * BATCH, valid, now) for i in range(REQUESTS)]
        cpu0, moto0 = cpu_seconds(ingest_pid), cpu_seconds(moto_pid)
        statuses = {post(port, "/events/batch", b)[0] for b in bodies}
        cpu1, moto1 = cpu_seconds(ingest_pid), cpu_seconds(moto_pid)
        events = REQUESTS * BATCH
        queued = drain_queue(sqs, queue)
        rejected_bytes = sum(len(b) for b in queued if b.startswith('{"v":1,"rejected"'))
        figures[kind] = {
            "statuses": sorted(statuses),
            "events": events,
            "ingest_cpu_us_per_event": (cpu1 - cpu0) / events * 1e6,
            "moto_cpu_us_per_event": (moto1 - moto0) / events * 1e6,
            "messages": len(queued),
            "quarantine_bytes_per_event": rejected_bytes / events,
        }
    figures["rejected_over_valid_ingest_cpu"] = (figures["rejected"]["ingest_cpu_us_per_event"]
                                                 / figures["valid"]["ingest_cpu_us_per_event"])
    return figures


def latencies(port, stop_when=None):
    """Single valid events from one client: milliseconds each."""
    out = []
    now = datetime.now(timezone.utc).isoformat()
    for n in range(LATENCY_REQUESTS):
        status, seconds = post(port, "/events", json.dumps(event(n, now)).encode())
        assert status == 202, status
        out.append(seconds * 1000)
        if stop_when is not None and stop_when():
            break
    return out


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def under_flood(port, flood_events, valid):
    """Valid single events' latencies while two clients send `flood_events` in batches."""
    sent = {"events": 0}
    lock = threading.Lock()
    now = datetime.now(timezone.utc).isoformat()

    def flooder():
        while True:
            with lock:
                if sent["events"] >= flood_events:
                    return
                start = sent["events"]
                sent["events"] += BATCH
            status, _ = post(port, "/events/batch", batch_body(1_000_000 + start, valid, now))
            assert status == (200 if valid else 400), status

    threads = [threading.Thread(target=flooder) for _ in range(2)]
    for t in threads:
        t.start()
    under = latencies(port, stop_when=lambda: not any(t.is_alive() for t in threads))
    for t in threads:
        t.join()
    return under


def flood(port, flood_events):
    figure = lambda v: {"p50_ms": percentile(v, 50), "p99_ms": percentile(v, 99), "requests": len(v)}
    result = {"flood_events": flood_events, "alone": figure(latencies(port)),
              "under_flood": figure(under_flood(port, flood_events, valid=False)),
              "under_valid_flood": figure(under_flood(port, flood_events, valid=True))}
    for key, base in (("p50", "alone"), ("p99", "alone")):
        result[f"{key}_ratio"] = result["under_flood"][f"{key}_ms"] / result[base][f"{key}_ms"]
        result[f"{key}_over_valid_flood"] = (result["under_flood"][f"{key}_ms"]
                                            / result["under_valid_flood"][f"{key}_ms"])
    return result


def archiver(binary, env, payload):
    """One archiver invocation (local mode); its answer and its own CPU seconds."""
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump(payload, f)
        f.flush()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        run = subprocess.run([binary, f.name], env=env, capture_output=True, text=True, check=False)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if run.returncode != 0:
        raise RuntimeError(f"archiver {payload}: {run.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return json.loads(run.stdout.strip().splitlines()[-1]), cpu


def restore(port, archiver_bin, events):
    day = (datetime.now(timezone.utc) - timedelta(days=1)).date()
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    psql(f"SELECT exp.ensure_day_partition('{day}')")
    psql("TRUNCATE exp.events, exp.event_ids, exp.pending_handoffs")
    step = 86_400 / events
    for first in range(0, events, 500):
        body = json.dumps({"events": [
            event(n, (start + timedelta(seconds=n * step)).isoformat())
            for n in range(first, min(events, first + 500))]}).encode()
        status, _ = post(port, "/events/batch", body)
        assert status == 200, status
    env = dict(os.environ, EIS_LOCAL_DEADLINE_SECS="600")
    archived, _ = archiver(archiver_bin, env, {"detail-type": "Scheduled Event"})
    part = f"exp.events_p{day.strftime('%Y%m%d')}"
    postmaster = ppid_of_cluster()
    columns = ('event_id, event_type, unit_type, unit_id, experiments, context, metrics, payload, '
               '"timestamp", received_at, flags')
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "day.csv"
        psql(f"\\copy (SELECT {columns} FROM {part}) TO '{csv}' CSV")
        psql(f"DROP TABLE {part}")
        psql(f"SELECT exp.ensure_day_partition('{day}')")
        payload = {"action": "restore", "from": start.isoformat(),
                   "to": (start + timedelta(days=1)).isoformat()}
        pg0, t0 = cluster_cpu_seconds(postmaster), time.perf_counter()
        answer, archiver_cpu = archiver(archiver_bin, env, payload)
        seconds, pg_cpu = time.perf_counter() - t0, cluster_cpu_seconds(postmaster) - pg0
        again, _ = archiver(archiver_bin, env, payload)
        psql(f"DROP TABLE {part}")
        psql(f"SELECT exp.ensure_day_partition('{day}')")
        pg0, t0 = cluster_cpu_seconds(postmaster), time.perf_counter()
        psql(f"\\copy {part} ({columns}) FROM '{csv}' CSV")
        copy_seconds, copy_cpu = time.perf_counter() - t0, cluster_cpu_seconds(postmaster) - pg0
    restored = answer["restored"]
    return {
        "events": events,
        "archived_events": archived.get("events"),
        "answer": answer,
        "second_run": {k: again[k] for k in ("restored", "present", "conflicts")},
        "seconds": seconds,
        "events_per_second": restored / seconds if seconds else None,
        "archiver_cpu_s": archiver_cpu,
        "postgres_cpu_s": pg_cpu,
        "events_per_cpu_second": restored / (archiver_cpu + pg_cpu),
        "copy": {"seconds": copy_seconds, "postgres_cpu_s": copy_cpu,
                 "rows_per_second": events / copy_seconds},
        "cpu_over_copy": (archiver_cpu + pg_cpu) / copy_cpu if copy_cpu else None,
    }


def ppid_of_cluster():
    """The postmaster's pid: the parent of the ingest's backend (it lives as long as the
    server; psql's own backend is gone before its pid could be read)."""
    return ppid(int(psql("SELECT pid FROM pg_stat_activity WHERE application_name = 'eis' "
                         "AND datname = current_database() LIMIT 1")))


def main():
    ingest_bin, archiver_bin, flood_events, restore_events = sys.argv[1:5]
    port = free_port()
    sqs = boto3.client("sqs")
    queue = os.environ["EIS_QUEUE_URL"]
    log = open(os.devnull, "w")
    server = subprocess.Popen([ingest_bin], env=dict(os.environ, EIS_PORT=str(port)),
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            if http_get(port, "/health") == 200:
                break
            time.sleep(0.1)
        moto = int(os.environ["MOTO_PID"])
        out = {
            "cost": cost(port, server.pid, moto, sqs, queue),
            "flood": flood(port, int(flood_events)),
        }
        drain_queue(sqs, queue)
        out["restore"] = restore(port, archiver_bin, int(restore_events))
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
