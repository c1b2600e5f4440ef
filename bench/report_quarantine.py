"""BENCHMARKS.md's section on quarantine, flood and restore, from
bench/quarantine.py's figures: the ingest's CPU per rejected event against a valid one's,
valid-event latency under a flood of invalid ones, and restore against COPY."""

from reportlib import error_note, failed, num, table


def quarantine_md(q):
    if failed(q):
        return error_note("The quarantine benchmark", q)
    cost, fl, rs = q["cost"], q["flood"], q["restore"]
    carried = f" (carried over from the run of {q['carried_from']})" if q.get("carried_from") else ""
    rows = []
    for name, c in (("valid (validated, stored, handed off)", cost["valid"]),
                    ("rejected (kept with its text, sent on the queue)", cost["rejected"])):
        rows.append([name, num(c["events"]), f"{c['ingest_cpu_us_per_event']:.1f}",
                     f"{c['moto_cpu_us_per_event']:.1f}", num(c["messages"]),
                     num(c["quarantine_bytes_per_event"])])
    flood_rows = [[name, num(f["requests"]), f"{f['p50_ms']:.1f}", f"{f['p99_ms']:.1f}"]
                  for name, f in (("alone", fl["alone"]),
                                  ("under the flood of invalid events", fl["under_flood"]),
                                  ("under as many valid events (the reference)",
                                   fl["under_valid_flood"]))]
    answer = rs["answer"]
    return f"""The release ingest binary (local mode) on PostgreSQL and moto{carried}. CPU from the
processes' /proc times, not wall time.

**Cost per rejected event**: batches of 100 events, once valid and once without `unit_type`
(each kept with its text, its variant read, and sent on the archive queue):

{table(["events", "count", "ingest CPU µs per event", "moto CPU µs per event", "queue messages", "quarantine bytes per event"], rows)}

A rejected event costs **{cost['rejected_over_valid_ingest_cpu']:.2f}×** the ingest CPU of a valid one
(the reference, measured in the same run).

**A flood**: {num(fl['flood_events'])} invalid events in batches of 100 from two clients, while one
client sends single valid events:

{table(["valid single events", "requests", "p50 ms", "p99 ms"], flood_rows)}

Under the invalid flood the valid events' p50 is **{fl['p50_over_valid_flood']:.2f}×** and p99
**{fl['p99_over_valid_flood']:.2f}×** their latency under a flood of as many valid events (the
reference), and {fl['p50_ratio']:.2f}× / {fl['p99_ratio']:.2f}× their latency alone: one 2-core
machine runs the clients, the one local ingest process, PostgreSQL and moto, so any flood takes
CPU from the valid events here. In Lambda each request has an environment of its own.

**Restore**: {num(rs['events'])} events of yesterday archived by the archiver, their day partition
dropped, then `{{"action":"restore"}}` over the day: **{num(rs['events_per_second'])} events/s**,
{num(rs['events_per_cpu_second'])} events per CPU second (archiver {rs['archiver_cpu_s']:.2f} s +
PostgreSQL {rs['postgres_cpu_s']:.2f} s), {answer['restored']} restored, {answer['present']} present,
{answer['expired']} past the retention. A second run restored {rs['second_run']['restored']} and found
{rs['second_run']['present']} present. The reference, `\\copy` (CSV) of the same rows into the same
partition, took {rs['copy']['postgres_cpu_s']:.2f} PostgreSQL CPU s ({num(rs['copy']['rows_per_second'])}
rows/s): restore costs **{rs['cpu_over_copy']:.2f}×** its CPU (it reads Parquet from S3, claims ids in
exp.event_ids and skips present rows).
"""


def restore_memory_md(r):
    """Restore's memory against hour size, from bench/restore_memory.py."""
    if failed(r):
        return error_note("The restore memory benchmark (restore_memory)", r)
    carried = f" (carried over from the run of {r['carried_from']})" if r.get("carried_from") else ""
    rows = [[name, num(h["events"]), num(h["files"]), num(h["invocations"]), num(h["restored"]),
             num(h["rows"]), f"{h['peak_rss_mib']:.1f}", f"{h['seconds']:.1f}"]
            for name, h in (("small hour", r["small"]), ("large hour", r["large"]))]
    d = r["deadline"]
    return f"""**Restore, memory against hour size** (`restore_memory`{carried}): an archive hour of raw
files of 100 000 events each, restored into an empty database by the release archiver (one
invocation, long deadline); peak RSS is wait4's ru_maxrss of the archiver process:

{table(["hour", "events", "files", "invocations", "restored", "rows", "peak RSS MiB", "seconds"], rows)}

Peak RSS of the large hour is **{r['rss_ratio']:.2f}×** the small one's (goal ≤ {r['goal_ratio']}):
restore reads one file at a time, in chunks of 5 000 rows.

**An hour bigger than one invocation**: the small hour's rows deleted, then restored with
`EIS_LOCAL_DEADLINE_SECS={d['deadline_secs']}`: **{d['invocations']} invocations** ({d['unfinished_answers']}
answered `unfinished_from` with a `resume`), {num(d['restored'])} restored, {num(d['present'])} present,
{num(d['rows'])} rows in the hour: {"exactly the hour's events" if d['exact'] else "**NOT exact**"}.
"""
