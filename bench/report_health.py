"""BENCHMARKS.md's section on the experiment-health job, from bench/health_job.py's
figures: events per CPU second (the job's process and PostgreSQL's), and the size of
exp.assignments against exp.events."""

from reportlib import error_note, failed, num, table


def health_md(h):
    if failed(h):
        return error_note("The health job", h)
    mix, size = h["mix"], h["sizes"]
    rows = []
    for name, run in (("backfill: the whole mix in one run", h["backfill"]),
                      ("increment: a steady-state run after it", h["increment"])):
        cpu = run["job_cpu_seconds"] + run["postgres_cpu_seconds"]
        rows.append([name, num(run["events"]), num(run["rollup_days"]),
                     f"{run['job_cpu_seconds']:.2f} + {run['postgres_cpu_seconds']:.2f} = {cpu:.2f}",
                     f"{run['wall_seconds']:.1f}", num(run["events_per_cpu_second"])])
    carried = f" (carried over from the run of {h['carried_from']})" if h.get("carried_from") else ""
    return f"""One release archiver run of `{{"action":"health"}}` (as `make health` runs it) on a generated
mix{carried}: {num(mix['events'])} events over {mix['days']} days, {num(mix['units'])} units,
{mix['experiments']} registered experiments (each unit in about 3, one three-arm), 10% of events
without context. CPU from the processes (the job's rusage and the PostgreSQL cluster's
/proc times), not wall time. The increment is {num(mix['increment'])} events of today received
after the backfill: it adds its events' contributions to the rollups (docs/health.md, "Cost").
{day_size_md(h.get("day_size"))}
{table(["run", "events", "(experiment, day) rollups", "CPU s (job + PostgreSQL)", "wall s", "events per CPU second"], rows)}

Sizes after the backfill:

{table(["table", "rows", "bytes (with indexes)", "share of exp.events"], [
        ["exp.events (all partitions)", num(size['events']), num(size['events_bytes']), "100%"],
        ["exp.assignments", num(size['assignments']), num(size['assignments_bytes']),
         f"{100 * size['assignments_share_of_events_bytes']:.1f}%"],
        ["exp.variant_daily + _metrics", num(size['variant_daily_rows']), num(size['rollup_bytes']),
         f"{100 * size['rollup_bytes'] / size['events_bytes']:.2f}%"],
    ])}

exp.assignments holds one row per unit, experiment and variant: it grows with units ×
experiments, not with events.{counting_state_md(size)}
"""


def day_size_md(d):
    """The day-size measure: the same increment on a small and a large day."""
    if not d:
        return ""
    rows = []
    for name in ("small", "large"):
        run = d[name]["increment"]
        cpu = run["job_cpu_seconds"] + run["postgres_cpu_seconds"]
        flush = run.get("write_back_cpu_seconds")
        rows.append([num(d[name]["day_events"]), num(run["events"]), num(run["rollup_days"]),
                     f"{run['job_cpu_seconds']:.2f} + {run['postgres_cpu_seconds']:.2f} = {cpu:.2f}",
                     f"{run['wall_seconds']:.1f}", "n/a" if flush is None else f"{flush:.2f}"])
    ratio = d.get("cpu_ratio")
    return f"""
**Increment against day size.** The same {num(d['increment'])} new events ({num(d['units'])} units)
counted on top of a counted day of each size, in an emptied database (goal: ≤ 1.2×); the
median of three increments in a row (all three's CPU s: small {", ".join(f"{c:.2f}" for c in d['small'].get('increment_cpu_seconds', []))};
large {", ".join(f"{c:.2f}" for c in d['large'].get('increment_cpu_seconds', []))}).

{table(["day's events", "increment events", "(experiment, day) rollups changed", "CPU s (job + PostgreSQL)", "wall s", "write-back of the increment's inserts before the run, CPU s"], rows)}

CPU ratio, large day / small day: **{f"{ratio:.2f}×" if ratio is not None else "n/a"}**.

Before each measured run, a CHECKPOINT writes back the pages the increment's own inserts
dirtied (last column: the cluster's CPU during it). Their number grows with the size of
exp.events' indexes (random keys land on more distinct pages of a larger B-tree), which is the
write path's state, not the count's work. Without the checkpoint those pages were still dirty
during the measured run, and the large day's increment cost about a quarter more (1.25× in the
run of 2026-12-03T13:17Z at a2a4a71). The checkpoint's own CPU is far below that difference:
the extra was what the dirty pages cost the run (evictions among them), not the writes alone.
"""


def counting_state_md(size):
    """What the incremental counting keeps beside the rollups (V7), when measured."""
    if "unit_day_rows" not in size:
        return ""
    return f"""

The counting state beside the rollups (V7; aged out past retention): exp.variant_daily_units
{num(size['unit_day_rows'])} rows, {num(size['unit_day_bytes'])} bytes; exp.variant_daily_metric_buckets
{num(size['bucket_rows'])} rows, {num(size['bucket_bytes'])} bytes; the index events_unit_id_idx on
exp.events {num(size['events_unit_index_bytes'])} bytes."""
