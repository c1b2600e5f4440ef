"""The Rust SDK's end-to-end throughput against the load generator of bench/ingest_http.py, on the
same server: the release `ingest` binary in local mode with PostgreSQL and an SQS side in the
loop. Prints one JSON object.

Per backend (moto, then `eis-bench sqs-stub`, as ingest_http.py does), rounds interleave:
- `wrk_batch500_c8`: wrk posting the batch-500 body on 8 connections (ingest_http.py's
  batch500_c8);
- `wrk_batch500_c8_sent_at`: the same with the `EIS-Sent-At` header every SDK request carries
  (bench/wrk_sent_at.lua): the SDK's reference, since the header makes the server store and
  hand off two more columns per event (moto's CPU per event grows by about 40% with it);
- `sdk_f8`: `eis-bench sdk-throughput`, the SDK capturing the same 500 events round-robin,
  batches of 500, 8 requests in flight (wrk's 8 connections), no gzip (wrk sends plain JSON);
- `sdk_f8_gzip`: the same with the SDK's gzip above 4 KiB (its default);
- `sdk_f4`: the SDK's default `max_in_flight` (4), no gzip.
`ratio` is each SDK configuration's median events/s over `wrk_batch500_c8_sent_at`'s (goal: at
least 0.9); `ratio_vs_plain_wrk` over `wrk_batch500_c8`'s.

Usage: sdk_throughput.py INGEST_BIN EIS_BENCH_BIN BODIES_DIR DURATION_S ROUNDS
Environment: as ingest_http.py (DATABASE_URL of the bench's own, EIS_QUEUE_URL, AWS_*, MOTO_PID).
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3

from benchlib import cpu_seconds, free_port, http_get, summary
from ingest_http import TRUNCATE, psql, reset_queue

HERE = Path(__file__).resolve().parent
PLAIN = "wrk_batch500_c8"
WRK = "wrk_batch500_c8_sent_at"
WRK_SCRIPTS = {PLAIN: HERE / "wrk.lua", WRK: HERE / "wrk_sent_at.lua"}
SDK_CONFIGS = [("sdk_f8", 8, 0), ("sdk_f8_gzip", 8, 1), ("sdk_f4", 4, 0)]
# SDK_BENCH_CONFIGS="sdk_f8" runs only these SDK configurations (wrk always runs).
if os.environ.get("SDK_BENCH_CONFIGS"):
    SDK_CONFIGS = [c for c in SDK_CONFIGS if c[0] in os.environ["SDK_BENCH_CONFIGS"].split()]
# SDK_BENCH_BACKENDS="stub" (or "moto") runs one backend only.
BACKENDS = os.environ.get("SDK_BENCH_BACKENDS", "moto stub").split()


def start_ingest(binary, env):
    port = free_port()
    log = open(Path(tempfile.gettempdir()) / f"eis-bench-sdk-ingest-{os.getpid()}.log", "wb")
    server = subprocess.Popen([binary], env=dict(env, EIS_PORT=str(port)),
                              stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while http_get(port, "/health") != 200:
        if server.poll() is not None or time.monotonic() > deadline:
            server.terminate()
            raise RuntimeError(f"ingest did not become healthy (see {log.name})")
        time.sleep(0.05)
    return server, port


def wrk(port, script, body, connections, seconds, out):
    """One wrk run of `script` (ingest_http.py's, with the script chosen); returns its JSON
    figures and its own CPU seconds."""
    sent_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    env = dict(os.environ, EIS_BENCH_BODY=str(body), EIS_BENCH_OUT=str(out),
               EIS_BENCH_DIR=str(HERE), EIS_SENT_AT=sent_at)
    proc = subprocess.Popen(
        ["wrk", "-t", str(min(2, connections)), "-c", str(connections), "-d", f"{seconds}s",
         "--timeout", "10s", "-s", str(script), f"http://127.0.0.1:{port}/events/batch"],
        env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise RuntimeError(f"wrk exited with status {status}")
    return json.loads(Path(out).read_text()), usage.ru_utime + usage.ru_stime


def sdk_run(eis_bench, port, seconds, in_flight, gzip):
    out = subprocess.run([eis_bench, "sdk-throughput", f"http://127.0.0.1:{port}", str(seconds),
                          str(in_flight), str(gzip)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def measure(binary, eis_bench, bodies, seconds, runs, env, sqs_pid, reset):
    """Every configuration against one ingest process; `sqs_pid` is the SQS side's process
    (its CPU per event is reported), `reset` empties its queue."""
    server, port = start_ingest(binary, env)
    results = {name: [] for name in [PLAIN, WRK] + [c[0] for c in SDK_CONFIGS]}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "wrk.json"
            body = bodies / "batch-500.json"
            # Warm-up of both clients, not recorded.
            wrk(port, WRK_SCRIPTS[WRK], body, 8, min(seconds, 3), out)
            sdk_run(eis_bench, port, min(seconds, 3), 8, 0)
            for round_ in range(runs):
                for name in results:
                    time.sleep(1)
                    psql(TRUNCATE)
                    reset()
                    before = cpu_seconds(server.pid)
                    sqs_before = cpu_seconds(sqs_pid)
                    if name in WRK_SCRIPTS:
                        figures, client_cpu = wrk(port, WRK_SCRIPTS[name], body, 8, seconds, out)
                        events = figures["requests"] * 500
                        r = {"events_per_s": events / (figures["duration_us"] / 1e6),
                             "non_2xx": figures["errors"]["status"],
                             "client_cpu_ms_per_event": 1000 * client_cpu / max(events, 1)}
                        time.sleep(1)  # requests in flight when wrk stopped commit
                    else:
                        in_flight, gzip = next((f, g) for n, f, g in SDK_CONFIGS if n == name)
                        r = sdk_run(eis_bench, port, seconds, in_flight, gzip)
                        events = r["delivered"]
                        r["client_cpu_ms_per_event"] = r["sdk_cpu_ms_per_event"]
                    r["ingest_cpu_ms_per_event"] = 1000 * (cpu_seconds(server.pid) - before) / max(events, 1)
                    r["sqs_cpu_ms_per_event"] = 1000 * (cpu_seconds(sqs_pid) - sqs_before) / max(events, 1)
                    r["stored"] = int(psql("SELECT count(*) FROM exp.events"))
                    results[name].append(r)
                    print(f"[sdk-throughput] round {round_} {name}: {r['events_per_s']:.0f} events/s "
                          f"(stored {r['stored']}, client CPU {r['client_cpu_ms_per_event']:.4f} ms/event)",
                          file=sys.stderr)
    finally:
        server.terminate()
        server.wait(timeout=30)
        psql(TRUNCATE)
    configs = {}
    for name, rs in results.items():
        configs[name] = {k: summary([r.get(k) for r in rs]) for k in
                         ("events_per_s", "client_cpu_ms_per_event", "ingest_cpu_ms_per_event",
                          "sqs_cpu_ms_per_event")}
        if name not in WRK_SCRIPTS:
            configs[name]["capture_us_p50"] = summary([r["capture_us"]["p50"] for r in rs])
            configs[name]["caller_clone_us_per_event"] = summary([r["caller_clone_us_per_event"] for r in rs])
            configs[name]["capture_us_p99"] = summary([r["capture_us"]["p99"] for r in rs])
            configs[name]["capture_us_max"] = summary([r["capture_us"]["max"] for r in rs])
            configs[name]["retries"] = sum(r["retries"] for r in rs)
            configs[name]["stored_vs_delivered"] = [[r["stored"], r["delivered"]] for r in rs]
    def ratio(reference):
        return {name: configs[name]["events_per_s"]["median"] / configs[reference]["events_per_s"]["median"]
                for name, *_ in SDK_CONFIGS}
    return {"configs": configs, "ratio": ratio(WRK), "ratio_vs_plain_wrk": ratio(PLAIN)}


def main():
    binary, eis_bench, bodies = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    seconds, runs = int(sys.argv[4]), int(sys.argv[5])
    backends = {}
    if "moto" in BACKENDS:
        run_moto(binary, eis_bench, bodies, seconds, runs, backends)
    if "stub" in BACKENDS:
        run_stub(binary, eis_bench, bodies, seconds, runs, backends)
    print(json.dumps({"duration_s": seconds, "runs": runs, "goal_ratio": 0.9, "backends": backends}))


def run_moto(binary, eis_bench, bodies, seconds, runs, backends):
    sqs = boto3.client("sqs")
    queue = os.environ["EIS_QUEUE_URL"]
    try:
        backends["moto"] = measure(binary, eis_bench, bodies, seconds, runs, os.environ,
                                   int(os.environ["MOTO_PID"]), lambda: reset_queue(sqs, queue))
    finally:
        reset_queue(sqs, queue)


def run_stub(binary, eis_bench, bodies, seconds, runs, backends):
    port = free_port()
    stub = subprocess.Popen([eis_bench, "sqs-stub", str(port)])
    try:
        endpoint = f"http://127.0.0.1:{port}"
        env = dict(os.environ, AWS_ENDPOINT_URL=endpoint,
                   EIS_QUEUE_URL=f"{endpoint}/123456789012/stub")
        backends["stub"] = measure(binary, eis_bench, bodies, seconds, runs, env, stub.pid, lambda: None)
    finally:
        stub.terminate()
        stub.wait(timeout=30)


if __name__ == "__main__":
    main()
