"""The sweep against one huge pending row: a row of KEYS keys in exp.pending_handoffs (as a
long SQS outage, or an old migration, can leave one), drained by scheduled archiver runs
(`events/archiver-scheduled.json`, as `make archive` runs it) with EIS_SWEEP_LIMIT=LIMIT.

Reports each run's keys swept and peak RSS (rusage of the run's process), the number of runs,
and whether every key was archived exactly once (the event ids of every Parquet object in the
section's bucket, against exp.events).

Usage: sweep_backlog.py ARCHIVER KEYS LIMIT
Environment: DATABASE_URL (an empty, migrated database of its own), EIS_SWEEP_NAME (the name
of the queue and bucket made for this section, removed at the end), the stack's AWS_* settings.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3

from archiver_scale import archived_ids, resources

ROOT = Path(__file__).resolve().parent.parent


def psql(sql):
    r = subprocess.run(["psql", os.environ["DATABASE_URL"], "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", sql],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"psql failed: {r.stderr.strip()}\n{sql[:300]}")
    return r.stdout.strip()


def build(keys):
    """KEYS events of 10 minutes ago, received an hour ago (past the sweep's grace), and one
    pending row naming them all."""
    psql("""SELECT exp.ensure_day_partition(d::date) FROM generate_series(
            (now() AT TIME ZONE 'UTC')::date - 1, (now() AT TIME ZONE 'UTC')::date + 1, '1 day') d""")
    psql(f"""INSERT INTO exp.events (event_id, event_type, unit_type, unit_id, metrics, "timestamp", received_at)
             SELECT gen_random_uuid(), 'plan_accepted', 'user', 'u' || g,
                    jsonb_build_object('n', g), now() - interval '10 minutes', now() - interval '1 hour'
             FROM generate_series(1, {int(keys)}) g""")
    psql("""INSERT INTO exp.pending_handoffs (received_at, event_ids, timestamps)
            SELECT min(received_at), array_agg(event_id), array_agg("timestamp") FROM exp.events""")
    return int(psql("SELECT max(cardinality(event_ids)) FROM exp.pending_handoffs"))


def run_once(archiver, env):
    started = time.monotonic()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([archiver, str(ROOT / "events" / "archiver-scheduled.json")], env=env,
                                stdout=subprocess.PIPE, stderr=err)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        if status != 0:
            err.seek(0)
            raise SystemExit(f"archiver run failed ({status}): {err.read().decode()[-2000:]}")
    summary = json.loads(out)
    return {
        "swept": summary["swept"],
        "marked": summary["marked"],
        "files": summary["files"],
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "wall_s": time.monotonic() - started,
    }


def main():
    archiver, keys, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    name = os.environ["EIS_SWEEP_NAME"]
    queue = resources(name)
    try:
        started = time.monotonic()
        row_keys = build(keys)
        print(f"[sweep] one pending row of {row_keys} keys in {time.monotonic() - started:.0f} s", file=sys.stderr)
        env = dict(os.environ, EIS_QUEUE_URL=queue, EIS_BUCKET=name, EIS_SWEEP_LIMIT=str(limit),
                   EIS_RECEIVE_WAIT_SECS="1", EIS_LOCAL_DEADLINE_SECS="600", RUST_LOG="warn")
        runs = []
        # A run that sweeps nothing while keys are pending would be a failure of the bound;
        # the cap only keeps a broken build from looping forever.
        for _ in range(keys // limit + 10):
            pending = int(psql("SELECT coalesce(sum(cardinality(event_ids)), 0) FROM exp.pending_handoffs"))
            if pending == 0:
                break
            run = run_once(archiver, env)
            runs.append(run)
            print(f"[sweep] run {len(runs)}: swept {run['swept']}, peak RSS {run['peak_rss_mib']:.0f} MiB, "
                  f"{run['wall_s']:.1f} s ({pending} keys were pending)", file=sys.stderr)
        left = int(psql("SELECT coalesce(sum(cardinality(event_ids)), 0) FROM exp.pending_handoffs"))
        ids, objects = archived_ids(boto3.client("s3"), name)
        stored = set(psql("SELECT event_id FROM exp.events").split())
        archived = set(ids)
        result = {
            "keys": keys,
            "row_keys": row_keys,
            "sweep_limit": limit,
            "runs": len(runs),
            "max_keys_per_run": max((r["swept"] for r in runs), default=0),
            "peak_rss_mib_max": max((r["peak_rss_mib"] for r in runs), default=None),
            "left_pending": left,
            "objects": objects,
            "archived_rows": len(ids),
            "missing": len(stored - archived),
            "duplicates": len(ids) - len(archived),
            "extra": len(archived - stored),
            "every_key_archived_once": left == 0 and len(ids) == len(stored) == len(archived) and archived == stored,
            "per_run": runs,
        }
        print(f"[sweep] {keys} keys in {len(runs)} runs of at most {result['max_keys_per_run']} keys, "
              f"peak RSS {result['peak_rss_mib_max']} MiB, missing {result['missing']}, "
              f"duplicates {result['duplicates']}", file=sys.stderr)
        print(json.dumps(result))
    finally:
        resources(name, remove=True)


if __name__ == "__main__":
    main()
