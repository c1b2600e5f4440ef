"""Ingest end to end over HTTP: the release `ingest` binary in local mode, PostgreSQL and the
SQS emulator (moto) in the loop, loaded by wrk. Prints one JSON object.

Every configuration runs twice: against moto (the local stack as specified), then against
`eis-bench sqs-stub` (an SQS stand-in that accepts at once), which shows what the function and
PostgreSQL do when the emulator is not the bottleneck.

The write path's references, in the same run: after each batch-500 run, the rows it stored are
loaded again with `psql \\copy` (CSV) into the emptied exp.events (same table, indexes and
database; the ids the API assigned, new to the emptied table): PostgreSQL CPU per event of
both (the whole cluster's processes, from /proc) and COPY's rows/s. And
`eis-bench value-parse` of the same batch-500 body: `serde_json::Value` parse CPU per event.

Usage: ingest_http.py INGEST_BIN BODIES_DIR DURATION_S RUNS EIS_BENCH_BIN
Environment: DATABASE_URL (a database of the bench's own: it is truncated between runs),
EIS_QUEUE_URL (a queue of its own on moto: emptied between runs), AWS_* of the local stack,
and MOTO_PID (to charge moto's CPU time).
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3

from benchlib import cluster_cpu_seconds, cpu_seconds, free_port, http_get, ppid, summary, vm_hwm_mib

# name, body file, connections, events per request
CONFIGS = [
    ("single_c1", "single", 1, 1),
    ("single_c8", "single", 8, 1),
    ("single_c32", "single", 32, 1),
    ("batch100_c8", "batch-100", 8, 100),
    ("batch500_c8", "batch-500", 8, 500),
]
HERE = Path(__file__).resolve().parent
# The configuration that the write path's references run beside.
COPY_BESIDE = "batch500_c8"
COLUMNS = ('event_id, event_type, unit_type, unit_id, experiments, context, metrics, payload, '
           '"timestamp", received_at, flags')
TRUNCATE = "TRUNCATE exp.events, exp.event_ids, exp.pending_handoffs"
# Requests still in flight when wrk stops (up to 8 × 500 events) commit within this.
SETTLE_S = 1.0
# The postmaster reaps a finished backend (psql's) within this: then its CPU shows.
REAP_S = 0.3


def psql(sql):
    out = subprocess.run(["psql", os.environ["DATABASE_URL"], "-Atqc", sql],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def copy_beside(postmaster, csv):
    """The rows the API run just stored, exported (outside the measurement), then loaded again
    with `psql \\copy` into the emptied tables: rows/s (from psql's start, connection included,
    as in pg-write) and the cluster's CPU seconds."""
    url = os.environ["DATABASE_URL"]
    subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-qc",
                    f"\\copy (SELECT {COLUMNS} FROM exp.events) TO '{csv}' WITH (FORMAT csv)"],
                   check=True)
    rows = int(psql("SELECT count(*) FROM exp.events"))
    psql(TRUNCATE)
    time.sleep(REAP_S)
    before = cluster_cpu_seconds(postmaster)
    started = time.monotonic()
    subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-qc",
                    f"\\copy exp.events ({COLUMNS}) FROM '{csv}' WITH (FORMAT csv)"], check=True)
    seconds = time.monotonic() - started
    time.sleep(REAP_S)
    cpu = cluster_cpu_seconds(postmaster) - before
    stored = int(psql("SELECT count(*) FROM exp.events"))
    if stored != rows:
        raise RuntimeError(f"\\copy stored {stored} of {rows} rows")
    return {"rows": rows, "rows_per_s": rows / seconds, "seconds": seconds,
            "pg_cluster_cpu_us_per_row": 1e6 * cpu / max(rows, 1)}


def reset_queue(sqs, url):
    """Empties the bench's queue. PurgeQueue is limited to once a minute (moto enforces it as
    AWS does), so the queue is deleted and created again: same name, same URL."""
    sqs.delete_queue(QueueUrl=url)
    if sqs.create_queue(QueueName=url.rsplit("/", 1)[1])["QueueUrl"] != url:
        raise RuntimeError("the queue came back under another URL")


def wrk(port, body, connections, seconds, out):
    """One wrk run; returns its JSON figures and its own CPU seconds."""
    env = dict(os.environ, EIS_BENCH_BODY=str(body), EIS_BENCH_OUT=str(out))
    path = "/events" if body.name == "single.json" else "/events/batch"
    proc = subprocess.Popen(
        ["wrk", "-t", str(min(2, connections)), "-c", str(connections), "-d", f"{seconds}s",
         "--timeout", "10s", "-s", str(HERE / "wrk.lua"), f"http://127.0.0.1:{port}{path}"],
        env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise RuntimeError(f"wrk exited with status {status}")
    return json.loads(Path(out).read_text()), usage.ru_utime + usage.ru_stime


def measure(binary, bodies, seconds, runs, env, sqs_pid, reset):
    """All configurations against one ingest process; `sqs_pid` is the SQS side's process
    (its CPU is charged as "sqs"), `reset` empties its queue."""
    port = free_port()
    log = open(Path(tempfile.gettempdir()) / f"eis-bench-ingest-{os.getpid()}.log", "wb")
    server = subprocess.Popen([binary], env=dict(env, EIS_PORT=str(port)),
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while http_get(port, "/health") != 200:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ingest did not become healthy (see {log.name})")
            time.sleep(0.05)
        rss_idle = vm_hwm_mib(server.pid)
        # The ingest function's one connection: its backend's CPU is the database's share.
        backend = int(psql("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                           "AND application_name = 'eis' LIMIT 1"))
        procs = (("ingest", server.pid), ("postgres", backend), ("sqs", sqs_pid))
        postmaster = ppid(backend)
        print(f"[ingest-http] ingest pid {server.pid} on port {port}, backend {backend}", file=sys.stderr)

        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "wrk.json"
            # Warm-up: connections, caches, the SQS side; not recorded.
            for _, body, connections, _ in (CONFIGS[1], CONFIGS[4]):
                wrk(port, bodies / f"{body}.json", connections, min(seconds, 3), out)

            results = {name: [] for name, *_ in CONFIGS}
            beside = []
            # Rounds interleave the configurations, as in pg-write.
            for round_ in range(runs):
                for name, body, connections, per_request in CONFIGS:
                    # Requests still in flight when wrk stopped finish first, not in this run.
                    time.sleep(1)
                    psql(TRUNCATE)
                    reset()
                    cluster_before = cluster_cpu_seconds(postmaster)
                    before = {k: cpu_seconds(p) for k, p in procs}
                    figures, wrk_cpu = wrk(port, bodies / f"{body}.json", connections, seconds, out)
                    after = {k: cpu_seconds(p) for k, p in procs}
                    if name == COPY_BESIDE:
                        # The whole cluster, once the last requests have committed, per row
                        # stored: measured as COPY's is.
                        time.sleep(SETTLE_S)
                        cluster_cpu = cluster_cpu_seconds(postmaster) - cluster_before
                    stored = int(psql("SELECT count(*) FROM exp.events"))
                    requests = figures["requests"]
                    duration = figures["duration_us"] / 1e6
                    events = requests * per_request
                    cpu = {k: (after[k] - before[k]) for k in before if None not in (before[k], after[k])}
                    cpu["wrk"] = wrk_cpu
                    results[name].append({
                        "events_per_s": events / duration,
                        "requests_per_s": requests / duration,
                        "p50_ms": figures["latency_us"]["p50"] / 1000,
                        "p99_ms": figures["latency_us"]["p99"] / 1000,
                        "max_ms": figures["latency_us"]["max"] / 1000,
                        "events": events,
                        "stored": stored,
                        "non_2xx": figures["errors"]["status"],
                        "socket_errors": sum(v for k, v in figures["errors"].items() if k != "status"),
                        "cpu_ms_per_event": {k: 1000 * v / max(events, 1) for k, v in cpu.items()},
                        "cpu_share": {k: v / duration for k, v in cpu.items()},
                    })
                    r = results[name][-1]
                    print(f"[ingest-http] round {round_} {name}: {r['events_per_s']:.0f} events/s "
                          f"p50 {r['p50_ms']:.2f} ms p99 {r['p99_ms']:.2f} ms "
                          f"(non-2xx {r['non_2xx']}, stored {stored} of {events})", file=sys.stderr)
                    if name == COPY_BESIDE:
                        c = copy_beside(postmaster, Path(tmp) / "stored.csv")
                        c["api_pg_cluster_cpu_us_per_event"] = 1e6 * cluster_cpu / max(stored, 1)
                        c["api_events_per_s"] = r["events_per_s"]
                        beside.append(c)
                        print(f"[ingest-http] round {round_} beside {name}: PostgreSQL CPU "
                              f"{c['api_pg_cluster_cpu_us_per_event']:.1f} µs/event through the API, "
                              f"{c['pg_cluster_cpu_us_per_row']:.1f} µs/row by \\copy; "
                              f"\\copy {c['rows_per_s']:.0f} rows/s", file=sys.stderr)
        peak = vm_hwm_mib(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
        psql(TRUNCATE)

    configs = {}
    for name, body, connections, per_request in CONFIGS:
        rs = results[name]
        configs[name] = {
            "body": body, "connections": connections, "events_per_request": per_request,
            "body_bytes": (bodies / f"{body}.json").stat().st_size,
            **{k: summary([r[k] for r in rs]) for k in
               ("events_per_s", "requests_per_s", "p50_ms", "p99_ms", "max_ms")},
            "cpu_ms_per_event": {k: summary([r["cpu_ms_per_event"].get(k) for r in rs])
                                 for k in ("ingest", "postgres", "sqs", "wrk")},
            "cpu_share": {k: summary([r["cpu_share"].get(k) for r in rs])
                          for k in ("ingest", "postgres", "sqs", "wrk")},
            "non_2xx": sum(r["non_2xx"] for r in rs),
            "socket_errors": sum(r["socket_errors"] for r in rs),
            "stored_vs_counted": [[r["stored"], r["events"]] for r in rs],
        }
    copy = {"config": COPY_BESIDE, "runs": beside,
            **{k: summary([c[k] for c in beside]) for k in
               ("rows_per_s", "pg_cluster_cpu_us_per_row", "api_pg_cluster_cpu_us_per_event",
                "api_events_per_s")}}
    return {"configs": configs, "copy_beside": copy,
            "rss_after_start_mib": rss_idle, "peak_rss_mib": peak}


def main():
    binary, bodies, seconds, runs = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    stub_binary = sys.argv[5]
    sqs = boto3.client("sqs")
    queue = os.environ["EIS_QUEUE_URL"]
    backends = {}
    try:
        backends["moto"] = measure(binary, bodies, seconds, runs, os.environ,
                                   int(os.environ["MOTO_PID"]), lambda: reset_queue(sqs, queue))
    finally:
        reset_queue(sqs, queue)
    port = free_port()
    stub = subprocess.Popen([stub_binary, "sqs-stub", str(port)])
    try:
        endpoint = f"http://127.0.0.1:{port}"
        env = dict(os.environ, AWS_ENDPOINT_URL=endpoint,
                   EIS_QUEUE_URL=f"{endpoint}/123456789012/stub")
        backends["stub"] = measure(binary, bodies, seconds, runs, env, stub.pid, lambda: None)
    finally:
        stub.terminate()
        stub.wait(timeout=30)
    # The function-CPU reference: the very body the batch-500 runs sent.
    value_parse = json.loads(subprocess.run(
        [stub_binary, "value-parse", str(bodies / "batch-500.json"), str(max(runs, 3))],
        check=True, capture_output=True, text=True).stdout)
    value_parse["us_per_event"] = summary(value_parse["us_per_event"])
    print(json.dumps({"duration_s": seconds, "runs": runs, "backends": backends,
                      "value_parse": value_parse,
                      "peak_rss_mib": max(b["peak_rss_mib"] for b in backends.values()),
                      "rss_after_start_mib": backends["moto"]["rss_after_start_mib"]}))


if __name__ == "__main__":
    main()
