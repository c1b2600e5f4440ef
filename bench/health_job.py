"""The experiment-health job: its events per second per core, and the size of
exp.assignments against exp.events, for a realistic mix generated in a database of its own.

The mix: EVENTS events over the last DAYS days, UNITS units, 5 experiments. Each unit is in
about 3 of them (by a hash), one variant each (50/50, and 2/1/1 for a three-arm one). An
event names the experiments of its unit, except 10% that carry no context. The types are
plan_generated (latency_ms, token_count), plan_accepted, meal_swapped and user_edit
(edit_count).

Two measurements, each one release archiver run of `events/archiver-health.json` (as
`make health` runs it):
- backfill: the whole mix, counted in one run;
- increment: INCREMENT more events of today, received after the backfill (a steady-state
  run).
Then the day-size measure: in the same database, emptied, a day of DAY_SMALL
events of UNITS units, counted, then INCREMENT new events, written back to disk (a
CHECKPOINT, measured apart: the write path's cost), then counted (measured); again with a
day of DAY_LARGE events. The ratio of the two increments' CPU says whether a run's cost
follows its window (goal <= 1.2) or the day's size.
CPU is the job process's (rusage) plus the PostgreSQL cluster's (/proc), never wall time.

Usage: health_job.py ARCHIVER EVENTS UNITS INCREMENT [DAY_SMALL DAY_LARGE]
Environment: DATABASE_URL (an empty, migrated database; a superuser, to find the cluster's
postmaster).
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import cluster_cpu_seconds

ROOT = Path(__file__).resolve().parent.parent
DAYS = 6
# Increments measured on each day size (the median counts).
DAY_ROUNDS = 3

# Registry ids are UUIDs: experiment n is ...-0000000000eN, its variant k ...-0000000000Nk.
def experiment_id(n):
    return f"01950000-0000-7000-8000-0000000000e{n}"


def variant_id(n, k):
    return f"01950000-0000-7000-8000-{n * 10 + k:012d}"


# Registered with their splits (experiment 2 has three arms, 2/1/1).
REGISTRY = [
    {"experiment_id": experiment_id(n), "unit_type": "user", "starts_at": "2026-01-01T00:00:00Z",
     "variants": ([{"variant_id": variant_id(n, 0), "weight": 2}, {"variant_id": variant_id(n, 1), "weight": 1},
                   {"variant_id": variant_id(n, 2), "weight": 1}] if n == 2 else
                  [{"variant_id": variant_id(n, 0)}, {"variant_id": variant_id(n, 1)}])}
    for n in range(1, 6)
]

EXPERIMENTS = """
(SELECT '01950000-0000-7000-8000-0000000000e' || n, n FROM generate_series(1, 5) n)
"""

# One row per event: its unit, time and type; then the experiments of its unit.
GENERATE = f"""
INSERT INTO exp.events (event_id, event_type, unit_type, unit_id, experiments, metrics, "timestamp")
SELECT gen_random_uuid(), t.event_type, 'user', 'u' || g.unit,
       CASE WHEN g.i % 10 = 0 THEN '[]'::jsonb ELSE coalesce((
           SELECT jsonb_agg(jsonb_build_object(
                      'experiment_id', x.id,
                      'variant_id', '01950000-0000-7000-8000-' || lpad((x.n * 10 + CASE WHEN x.n = 2
                          THEN (ARRAY[0, 0, 1, 2])[1 + abs(hashtext(x.id || g.unit)) % 4]
                          ELSE abs(hashtext(x.id || g.unit)) % 2 END)::text, 12, '0')))
           FROM {EXPERIMENTS} AS x(id, n)
           WHERE abs(hashtext(g.unit::text || x.id)) % 5 < 3), '[]'::jsonb) END,
       CASE t.event_type
           WHEN 'plan_generated' THEN jsonb_build_object('latency_ms', 50 + g.i % 2000, 'token_count', 200 + g.i % 1500)
           WHEN 'user_edit' THEN jsonb_build_object('edit_count', 1 + g.i % 7)
           ELSE '{{}}'::jsonb END,
       (@START) + (g.i::float8 / @N) * (@SPAN)
FROM (SELECT i, (i::bigint * 7919) % @UNITS AS unit FROM generate_series(0, @N - 1) i) g
CROSS JOIN LATERAL (SELECT (ARRAY['plan_generated', 'plan_generated', 'plan_accepted', 'meal_swapped', 'user_edit'])[1 + g.i % 5] AS event_type) t
"""


def psql(sql, *args):
    """Runs `sql` from stdin (so that psql variables given in `args` apply)."""
    r = subprocess.run(["psql", os.environ["DATABASE_URL"], "-qAtX", "-v", "ON_ERROR_STOP=1", *args],
                       input=sql, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"psql failed: {r.stderr.strip()}\n{sql[:300]}")
    return r.stdout.strip()


def generate(n, units, start, span):
    """`n` events of `units` units, spread evenly from `start` over `span` (SQL expressions)."""
    psql(GENERATE.replace("@N", str(int(n))).replace("@UNITS", str(int(units)))
         .replace("@START", start).replace("@SPAN", span))


def run_job(archiver, postmaster):
    env = dict(os.environ, EIS_QUEUE_URL="unused", EIS_BUCKET="unused",
               EIS_HEALTH_LAG_SECS="0", EIS_HEALTH_WINDOW_SECS=str(7 * 86400),
               EIS_HEALTH_STATEMENT_TIMEOUT_SECS="900", EIS_LOCAL_DEADLINE_SECS="3600",
               RUST_LOG="warn")
    pg_before = cluster_cpu_seconds(postmaster)
    started = time.monotonic()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([archiver, str(ROOT / "events" / "archiver-health.json")], env=env,
                                stdout=subprocess.PIPE, stderr=err)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
        pg_cpu = cluster_cpu_seconds(postmaster) - pg_before
        if status != 0:
            err.seek(0)
            raise SystemExit(f"the health run failed ({status}): {err.read().decode()[-2000:]}")
    summary = json.loads(out)
    job_cpu = usage.ru_utime + usage.ru_stime
    cpu = job_cpu + pg_cpu
    return {
        "events": summary["events"],
        "rollup_days": summary["rollup_days"],
        "experiments": summary["experiments"],
        "wall_seconds": wall,
        "job_cpu_seconds": job_cpu,
        "postgres_cpu_seconds": pg_cpu,
        "events_per_cpu_second": summary["events"] / cpu if cpu > 0 else None,
    }


def sizes():
    row = psql("""
        SELECT (SELECT count(*) FROM exp.events),
               (SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits
                WHERE inhparent = 'exp.events'::regclass),
               (SELECT count(*) FROM exp.assignments),
               pg_total_relation_size('exp.assignments'),
               (SELECT count(*) FROM exp.variant_daily),
               pg_total_relation_size('exp.variant_daily') + pg_total_relation_size('exp.variant_daily_metrics'),
               (SELECT count(*) FROM exp.variant_daily_units),
               pg_total_relation_size('exp.variant_daily_units'),
               (SELECT count(*) FROM exp.variant_daily_metric_buckets),
               pg_total_relation_size('exp.variant_daily_metric_buckets'),
               (SELECT sum(pg_relation_size(i.indexrelid)) FROM pg_index i JOIN pg_inherits h ON h.inhrelid = i.indrelid
                JOIN pg_class c ON c.oid = i.indexrelid
                WHERE h.inhparent = 'exp.events'::regclass AND c.relname LIKE '%unit_id%')
    """).split("|")
    (events, events_bytes, assignments, assignments_bytes, daily_rows, daily_bytes, unit_rows, unit_bytes,
     bucket_rows, bucket_bytes) = map(int, row[:10])
    return {
        "events": events, "events_bytes": events_bytes,
        "assignments": assignments, "assignments_bytes": assignments_bytes,
        "assignments_share_of_events_bytes": assignments_bytes / events_bytes,
        "variant_daily_rows": daily_rows, "rollup_bytes": daily_bytes,
        "unit_day_rows": unit_rows, "unit_day_bytes": unit_bytes,
        "bucket_rows": bucket_rows, "bucket_bytes": bucket_bytes,
        # events_unit_id_idx (V14) over every partition: the write path's share of the increments.
        "events_unit_index_bytes": int(row[10] or 0),
    }


# Everything the job and the mix wrote, so that a measure starts from an empty database.
RESET = """
TRUNCATE exp.events, exp.event_ids, exp.assignments, exp.context_hourly, exp.variant_daily,
         exp.variant_daily_metrics, exp.variant_daily_units, exp.variant_daily_metric_buckets,
         exp.health_horizons, exp.experiment_health CASCADE;
UPDATE exp.health_progress SET processed_to = NULL;
"""


def settle():
    """Autovacuum and the checkpoint of what was just written would otherwise run (and count in
    the cluster's CPU) during the measured run: done here, before it."""
    psql("VACUUM ANALYZE")
    psql("CHECKPOINT")


def write_back(postmaster):
    """A CHECKPOINT between generating an increment and counting it; returns its cluster CPU.
    The increment's inserts dirty index pages of exp.events in proportion to the indexes'
    size (random keys land on more distinct pages of a larger B-tree), and writing them back
    is the write path's cost (BENCHMARKS.md, the index costs), paid whether or not the job
    runs. Left dirty, it would be paid during the measured run (evictions, the background
    writer) and counted as the job's. Measured here, apart, so that both are seen."""
    before = cluster_cpu_seconds(postmaster)
    psql("CHECKPOINT")
    return cluster_cpu_seconds(postmaster) - before


def day_size(archiver, postmaster, units, increment, day_events):
    """CPU of counting `increment` new events on top of a counted day of `day_events`."""
    psql(RESET)
    started = time.monotonic()
    # The day: the last 20 hours before the increment's 10 minutes, as a busy day's morning.
    generate(day_events, units, "now() - interval '20 hours 10 minutes'", "interval '20 hours'")
    psql("ANALYZE exp.events")
    day = run_job(archiver, postmaster)
    print(f"day of {day_events}: generated and counted in {time.monotonic() - started:.0f} s: {day}",
          file=sys.stderr)
    # Three increments, one after the other (the day grows by 2% each): the median's CPU is
    # the figure, the spread shows the noise of a shared machine.
    runs = []
    for _ in range(DAY_ROUNDS):
        settle()
        generate(increment, units, "now() - interval '10 minutes'", "interval '10 minutes'")
        flush = write_back(postmaster)
        runs.append(run_job(archiver, postmaster) | {"write_back_cpu_seconds": flush})
        print(f"increment on a day of {day_events}: {runs[-1]}", file=sys.stderr)
    measured = sorted(runs, key=cpu_seconds)[len(runs) // 2]
    return {"day_events": day_events, "day": day, "increment": measured,
            "increment_cpu_seconds": [cpu_seconds(r) for r in runs]}


def cpu_seconds(run):
    return run["job_cpu_seconds"] + run["postgres_cpu_seconds"]


def main():
    archiver, events, units, increment = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    # The cluster's CPU is read from /proc: the bench runs on the server's machine.
    data_dir = psql("SHOW data_directory")
    postmaster = int(Path(data_dir, "postmaster.pid").read_text().split()[0])
    psql(f"""SELECT exp.ensure_day_partition(d::date) FROM generate_series(
             (now() AT TIME ZONE 'UTC')::date - {DAYS}, (now() AT TIME ZONE 'UTC')::date + 1, '1 day') d""")
    psql("SELECT exp.load_experiments(:'doc'::jsonb)", "-v", f"doc={json.dumps(REGISTRY)}")
    started = time.monotonic()
    generate(events, units, f"now() - interval '{DAYS} days'", f"interval '{DAYS} days'")
    print(f"generated {events} events in {time.monotonic() - started:.0f} s", file=sys.stderr)
    psql("ANALYZE exp.events")
    backfill = run_job(archiver, postmaster)
    print(f"backfill: {backfill}", file=sys.stderr)
    size = sizes()
    settle()
    # Today's events, received after the backfill: the steady state of a 5-minute schedule.
    generate(increment, units, "now() - interval '10 minutes'", "interval '10 minutes'")
    steady = run_job(archiver, postmaster)
    print(f"increment: {steady}", file=sys.stderr)
    result = {
        "mix": {"events": events, "units": units, "experiments": 5, "days": DAYS, "increment": increment},
        "backfill": backfill,
        "increment": steady,
        "sizes": size,
    }
    if len(sys.argv) > 6:
        small, large = (day_size(archiver, postmaster, units, increment, int(n)) for n in sys.argv[5:7])
        cpu = lambda r: cpu_seconds(r["increment"])
        result["day_size"] = {"units": units, "increment": increment, "small": small, "large": large,
                              "cpu_ratio": cpu(large) / cpu(small) if cpu(small) > 0 else None}
        print(f"day size: increment CPU ratio {result['day_size']['cpu_ratio']}", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
