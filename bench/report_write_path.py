"""BENCHMARKS.md's parts on the write path against its references: PostgreSQL CPU per event
through the API and by `\\copy` of the same rows, the ingest's CPU per event against a `Value`
parse of the same body, the API's events/s against COPY's rows/s (§3), and the index cost per
insert and bytes per row (§2). Called by bench/report.py; `http_references_md` adds its goal
rows to `goals` as (goal, measured, reference, ratio, verdict) and returns Markdown."""

from reportlib import failed, med, num, quotient, span, stats, table, times

BACKENDS = (("stub", "SQS stub"), ("moto", "moto"))


def http_references_md(h, goals):
    """The write path's goals, from the ingest_http section: PostgreSQL CPU per event through the API and
    by `\\copy` of the same rows, the ingest's CPU per event and a `Value` parse of the same
    body, the API's events/s and COPY's rows/s."""
    pg_goal = "PostgreSQL CPU per stored event through the API ≤ 1.3× `\\copy` (batches of 500, 8 connections, {})"
    fn_goal = "Ingest process CPU per event, batches of 500 ≤ 3× `serde_json::from_slice::<Value>` ({})"
    e2e_goal = "End to end, batches of 500, 8 connections, {}: ≥ 0.7× `\\copy` rows/s"
    if failed(h) or "copy_beside" not in h["backends"]["stub"]:
        for _, label in BACKENDS:
            goals.append((pg_goal.format(label), "n/a", "n/a", None, None))
        goals.append((fn_goal.format("SQS stub"), "n/a", "n/a", None, None))
        goals.append((e2e_goal.format("SQS stub"), "n/a", "n/a", None, None))
        return ""
    parse = med(h["value_parse"]["us_per_event"])
    rows = []
    for backend, label in BACKENDS:
        b = h["backends"][backend]
        c, cfg = b["copy_beside"], b["configs"][b["copy_beside"]["config"]]
        api_pg, copy_pg = med(c["api_pg_cluster_cpu_us_per_event"]), med(c["pg_cluster_cpu_us_per_row"])
        api_eps, copy_rps = med(cfg["events_per_s"]), med(c["rows_per_s"])
        ingest = (med(cfg["cpu_ms_per_event"]["ingest"]) or 0) * 1000
        backend_only = (med(cfg["cpu_ms_per_event"]["postgres"]) or 0) * 1000
        q = quotient(api_pg, copy_pg)
        goals.append((pg_goal.format(label), f"{num(api_pg, 1)} µs/event",
                      f"`\\copy`: {num(copy_pg, 1)} µs/row", q, q <= 1.3 if q else None))
        q = quotient(ingest, parse)
        goals.append((fn_goal.format(label), f"{num(ingest, 1)} µs/event",
                      f"`Value` parse: {num(parse, 2)} µs/event", q, q <= 3 if q else None))
        q = quotient(api_eps, copy_rps)
        # The goal is stated with the stub; moto's figure is reported beside it.
        goals.append((e2e_goal.format(label) + ("" if backend == "stub" else " (reported)"),
                      f"{num(api_eps)} events/s", f"`\\copy`: {num(copy_rps)} rows/s", q,
                      (q >= 0.7 if q else None) if backend == "stub" else None))
        rows.append([label, span(c["api_pg_cluster_cpu_us_per_event"], 1), num(backend_only, 1),
                     span(c["pg_cluster_cpu_us_per_row"], 1), times(quotient(api_pg, copy_pg)),
                     span(cfg["events_per_s"]), span(c["rows_per_s"]), times(quotient(api_eps, copy_rps)),
                     num(ingest, 1), times(quotient(ingest, parse))])
    vp = h["value_parse"]
    header = ["SQS side", "API: PG CPU µs/event (cluster)", "backend only", "`\\copy`: PG CPU µs/row",
              "ratio", "API events/s", "`\\copy` rows/s", "ratio", "ingest CPU µs/event",
              "vs `Value` parse"]
    return f"""**The write path's references, beside the batch-500 runs.** After each batch-500, 8-connection
run, the rows it stored are exported (outside the measurement) and loaded again with
`psql \\copy` (CSV) into the emptied `exp.events`: same table, indexes and database, the ids
the API assigned (new to the emptied table). PostgreSQL CPU is that of the whole cluster (the
postmaster and every child, with reaped children's times, from `/proc/<pid>/stat`; never
wall time), from the run's start to 1 s after wrk stopped (the last requests commit),
per row stored; `\\copy`'s from psql's start to its backend's exit, per row. The API's
figure includes what `\\copy` does not do: the identity claim in `exp.event_ids`, the
`exp.pending_handoffs` row and its delete, per-event outcomes. "Backend only" is the ingest's
one backend (the §3 CPU table), without the cluster's background processes. `\\copy` rows/s
are from psql's start (connection included). The function's reference is `eis-bench
value-parse`: `serde_json::from_slice::<serde_json::Value>` of the very batch-500 body the runs
sent ({num(vp['body_bytes'])} B, {vp['events_per_body']} events), thread CPU time over
{len(vp['us_per_event']['runs'])} rounds of ≥ 0.5 s: {span(vp['us_per_event'], 2)} µs per event.

{table(header, rows)}
"""


def index_md(p):
    """Index cost per insert and bytes per row, from the pg_write section."""
    if failed(p) or "secondary_indexes" not in p:
        return ""
    m = p["methods"]
    cpu = lambda key: med(stats(m[key]["pg_cpu_us_per_row"])) if key in m else None  # noqa: E731
    full = cpu("psql_copy")
    rows = [["every index (as deployed)", span(stats(m["psql_copy"]["pg_cpu_us_per_row"]), 1), "", ""]]
    for index in p["secondary_indexes"]:
        key = f"psql_copy_without_{index['name']}"
        without = cpu(key)
        cost = full - without if full is not None and without is not None else None
        rows.append([f"without `{index['name']}`", span(stats(m[key]["pg_cpu_us_per_row"]), 1),
                     num(cost, 1), f"{100 * cost / full:.0f}%" if cost is not None and full else "n/a"])
    floor = cpu("psql_copy_without_secondary_indexes")
    if floor is not None:
        rows.append(["without any secondary index (heap + primary key)",
                     span(stats(m["psql_copy_without_secondary_indexes"]["pg_cpu_us_per_row"]), 1),
                     num(full - floor, 1) if full is not None else "n/a",
                     f"{100 * (full - floor) / full:.0f}%" if full else "n/a"])
    defs = "\n".join(f"- `{i['name']}`: `{i['definition']}`" for i in p["secondary_indexes"])
    out = [f"""**Index cost per insert.** The same `\\copy` of {num(p['events'])} rows with
each secondary index of `exp.events` dropped in turn (`DROP INDEX` on the partitioned table
before the load, created again on the emptied table after it), interleaved with the other
methods in each round. An index's cost per insert is the CPU per row with every index minus
the CPU per row without it (a difference of medians: server CPU is counted in 10 ms ticks,
{num(10_000 / max(p['events'], 1), 2)} µs per row here, and at small sizes it is within noise). The
GIN index has `fastupdate` on (the default): part of its cost may be deferred to its pending
list's clean-up (in an insert once the list exceeds the index's `gin_pending_list_limit`, 64 kB
since V14, or at vacuum), so a load that leaves entries in the list is charged less than their
full cost.

{defs}

{table(["load", "PostgreSQL CPU µs per row", "the index's cost, µs per row", "share of the load"], rows)}
"""]
    for size in p.get("sizes", []):
        b, n = size["bytes"], size["rows"]
        if not n:
            continue
        per = lambda x: num(x / n, 1)  # noqa: E731
        index_rows = [[f"index `{k}`", per(v)] for k, v in b["events_per_index"].items()]
        size_rows = ([["`exp.events` heap (with TOAST)", per(b["events_table"])]] + index_rows
                     + [["**`exp.events` in all**", f"**{per(b['events_total'])}**"]])
        if b["event_ids_total"]:
            size_rows.append(["`exp.event_ids` (identity claim, with its indexes)", per(b["event_ids_total"])])
            size_rows.append(["**stored by the API in all**", f"**{per(b['events_total'] + b['event_ids_total'])}**"])
        out.append(f"""**Bytes per row** after `{size['after']}` of {num(n)} rows (round 0;
`pg_table_size`, `pg_relation_size` of each index summed over the partitions,
`pg_total_relation_size`; no vacuum), for the capacity plan:

{table(["relation", "bytes per row"], size_rows)}
""")
    return "\n".join(out)
