"""docs/capacity.md from the per-event costs of one `make bench` run (bench/results/latest.json).

    python bench/capacity.py bench/results/latest.json docs/capacity.md

Measured here (the run named at the top of the output): the function's CPU per event, single
and in batches of 500; PostgreSQL's CPU per stored event; bytes per stored row with its
indexes and its identity row; the record's size (events per SQS message); the archiver's CPU
per event; the archive's bytes per event. Not measurable here, and therefore stated as inputs
with their source: AWS round-trip latencies, Lambda's CPU share per MB, service limits, the
stacks' defaults, and list prices (bench/prices.py, shared with bench/report.py). Change an
input and run the script again; nothing else in the document is typed by hand.
"""

import json
import math
import re
import sys
from pathlib import Path

from prices import (HOURS_PER_MONTH, RDS_CLASSES, RDS_MULTI_AZ_FACTOR, SQS_BILLED_CHUNK_BYTES,
                    price, table_md, usd)

ROOT = Path(__file__).resolve().parents[1]

# --- Inputs that are not measurements (AWS documentation, template.yaml, infra/database.yaml).
LAMBDA_MB_PER_VCPU = 1769          # Lambda: one full vCPU at 1 769 MB, proportional below
INGEST_MB, ARCHIVER_MB = 512, 1024  # template.yaml MemorySize
WAIT_MS = {"pg_commit": 3.0, "sqs_send": 15.0}  # RDS commit round trip (Multi-AZ), SQS call
ACCOUNT_CONCURRENCY = 1000         # default Lambda concurrency quota per region
HTTP_API_RPS = 10_000              # default HTTP API throttle per account and region
PG_TARGET_UTIL = 0.6               # keep the primary below 60% CPU
RDS_MAX_STORAGE_TIB = 64
RETENTION_DAYS = 90
SQS_MAX_MESSAGE = 262_144
ARCHIVE_RUN_SECONDS = 300          # ArchiverSchedule rate(5 minutes)
MAX_FILE_EVENTS = 100_000          # EIS_MAX_FILE_EVENTS
# The plan sizes a Multi-AZ primary on the Graviton memory-optimised classes.
PLAN_CLASSES = [(name, vcpus, hourly * RDS_MULTI_AZ_FACTOR)
                for name, vcpus, hourly, _ in RDS_CLASSES if name.startswith("db.r6g.")]
ARCHIVE_IA_DAYS, ARCHIVE_GLACIER_DAYS = 30, 180  # template.yaml ArchiveInfrequentAccessDays, ArchiveGlacierDays
# The database stack as shipped (infra/database.yaml defaults): its instance and storage, its
# proxy, its interface endpoints (SQS, Secrets Manager, Lambda) in its two AZs, its secrets
# (the RDS-managed master user's, the application's, the migrator's).
DB_STACK = {"class": "db.t4g.micro", "storage_gb": 20, "interface_endpoints": 3, "azs": 2, "secrets": 3}
RATES = [1_000, 10_000, 100_000]
MODES = [("single events", "single_c8", 1), ("batches of 500", "batch500_c8", 500)]


def median(x):
    return x["median"] if isinstance(x, dict) else x


def measured(run):
    stub = run["ingest_http"]["backends"]["stub"]
    configs = stub["configs"]
    pg = run["pg_write"]
    size = pg["sizes"][0]
    b = size["bytes"]
    scale = run.get("archiver_scale", {}).get("by_runs", {})
    one = scale.get("1", {})
    return {
        "fn_cpu_us": {c: 1000 * median(configs[c]["cpu_ms_per_event"]["ingest"]) for _, c, _ in MODES},
        # Single events: the ingest's backend (the commit per request dominates); batches: the
        # whole cluster's CPU per stored event beside COPY (the goal's figure).
        "pg_cpu_us": {
            "single_c8": 1000 * median(configs["single_c8"]["cpu_ms_per_event"]["postgres"]),
            "batch500_c8": median(stub["copy_beside"]["api_pg_cluster_cpu_us_per_event"]),
        },
        "copy_cpu_us": median(stub["copy_beside"]["pg_cluster_cpu_us_per_row"]),
        "bytes_per_row": (b["events_total"] + b["event_ids_total"]) / size["rows"],
        "record_bytes": configs["batch500_c8"]["body_bytes"] / 500,
        "archiver_cpu_us": median(one.get("archiver_cpu_us_per_event")) if one else None,
        "parquet_bytes": run["encoding"]["ours"]["parquet_bytes"] / run["encoding"]["ours"]["events"],
    }


def rds_class(vcpus):
    for name, n, hourly in PLAN_CLASSES:
        if n >= vcpus:
            return name, n, hourly
    return None


def plan(m, rate, config, per_request):
    req_s = rate / per_request
    cpu_req_ms = m["fn_cpu_us"][config] * per_request / 1000
    share = INGEST_MB / LAMBDA_MB_PER_VCPU
    pg_req_ms = m["pg_cpu_us"][config] * per_request / 1000
    duration_ms = cpu_req_ms / share + pg_req_ms + WAIT_MS["pg_commit"] + WAIT_MS["sqs_send"] + 1.0
    concurrency = req_s * duration_ms / 1000
    gb_s = concurrency * INGEST_MB / 1024
    pg_vcpus = rate * m["pg_cpu_us"][config] / 1e6 / PG_TARGET_UTIL
    rds = rds_class(pg_vcpus)
    storage_tib = rate * 86_400 * RETENTION_DAYS * m["bytes_per_row"] / 2**40
    per_message = max(1, min(per_request, SQS_MAX_MESSAGE // math.ceil(m["record_bytes"] + 1)))
    messages_s = req_s * math.ceil(per_request / per_message)
    # Ingest: one SendMessageBatch per request; the archiver receives and deletes 10 messages
    # per call. SQS bills each 64 KiB of a call's payload as one request.
    payload_s = rate * m["record_bytes"]
    send_billed = req_s * max(1, math.ceil(per_request * m["record_bytes"] / SQS_BILLED_CHUNK_BYTES))
    receive_calls = messages_s / 10
    sqs_calls = req_s + 2 * receive_calls
    sqs_billed = send_billed + max(receive_calls, payload_s / SQS_BILLED_CHUNK_BYTES) + receive_calls
    partitions = 2  # a run usually spans the current and the previous hour
    s3_puts = max(partitions / ARCHIVE_RUN_SECONDS, rate / MAX_FILE_EVENTS) + 1 / 3600
    arch_cpu = m["archiver_cpu_us"]
    workers = (rate * arch_cpu / 1e6 / (ARCHIVER_MB / LAMBDA_MB_PER_VCPU)) if arch_cpu else None
    arch_gb_s = workers * ARCHIVER_MB / 1024 if workers else 0
    month_events = rate * 86_400 * 30
    cost = {
        "lambda": (gb_s + arch_gb_s) * price("lambda_arm64_gb_s") * 1e6 / rate
                  + price("lambda_requests_per_million") / per_request,
        "api": price("http_api_per_million") / per_request,
        "sqs": sqs_billed * price("sqs_standard_per_million") / rate,
        "s3": s3_puts * price("s3_put_per_thousand") * 1e3 / rate,
        "rds": (rds[2] * 24 * 30 / month_events * 1e6) if rds else None,
        "storage": storage_tib * 1024 * price("rds_gp3_gb_month") * RDS_MULTI_AZ_FACTOR / month_events * 1e6,
    }
    limits = [
        ("Lambda concurrency (account quota)", concurrency / ACCOUNT_CONCURRENCY,
         "a quota increase, or larger batches from the clients (fewer, longer requests)"),
        ("API Gateway requests/s (account throttle)", req_s / HTTP_API_RPS,
         "a quota increase, or client-side batching"),
        ("PostgreSQL primary CPU", pg_vcpus / PLAN_CLASSES[-1][1],
         "the instance class; batching (per-request commit cost); past the largest class: sharding"),
        ("PostgreSQL storage (RDS maximum)", storage_tib / RDS_MAX_STORAGE_TIB,
         "EIS_RETENTION_DAYS (the archive is the system of record)"),
    ]
    first = max(limits, key=lambda x: x[1])
    also = [x for x in limits if x is not first and x[1] >= 1]
    return {"req_s": req_s, "duration_ms": duration_ms, "concurrency": concurrency, "gb_s": gb_s,
            "pg_vcpus": pg_vcpus, "rds": rds, "storage_tib": storage_tib, "messages_s": messages_s,
            "sqs_calls": sqs_calls, "sqs_billed": sqs_billed, "s3_puts": s3_puts, "workers": workers,
            "cost": cost, "first": first, "also": also}


def n(x, digits=0):
    if x is None:
        return "n/a"
    return f"{x:,.{digits}f}".replace(",", " ")


def render(run, m):
    rows, notes = [], []
    for rate in RATES:
        for label, config, per_request in MODES:
            p = plan(m, rate, config, per_request)
            rds = f"{p['rds'][0]} ({n(p['pg_vcpus'], 1)} vCPU needed)" if p["rds"] else \
                f"**none** ({n(p['pg_vcpus'])} vCPU needed > {PLAN_CLASSES[-1][1]})"
            total = sum(v for v in p["cost"].values() if v is not None)
            rows.append([n(rate), label, n(p["concurrency"], 1), n(p["gb_s"], 1), rds,
                         n(p["storage_tib"], 1), f"{n(p['sqs_calls'])} ({n(p['sqs_billed'])} billed)",
                         n(p["s3_puts"], 2), n(p["workers"], 1),
                         f"${total:,.2f}" + ("" if p["rds"] else " + sharded DB")])
            name, used, knob = p["first"]
            notes.append(f"- **{n(rate)}/s, {label}**: first to break is **{name}** "
                         f"({used:.0%} of its limit); knob: {knob}."
                         + "".join(f" Also over its limit: {a} ({u:.0%}; knob: {k})."
                                   for a, u, k in p["also"]))
    header = ["events/s", "sent as", "Lambda concurrency", "Lambda GB-s per s", "RDS class",
              "storage at 90 days, TiB", "SQS calls/s", "S3 PUT/s", "archiver workers",
              "cost per million events"]
    table = "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                      + ["| " + " | ".join(map(str, r)) + " |" for r in rows])
    return f"""# Capacity plan

<!-- Generated by bench/capacity.py from bench/results/latest.json. Do not edit: change the
inputs in bench/capacity.py, or run `make bench`, and generate again. -->

Computed from the per-event costs measured by `make bench` on commit `{run.get('commit')}`
({run.get('started_at')}, {run['machine']['cpu']}, {run['machine']['nproc']} shared cores,
x86_64; the functions run on Graviton in AWS, where CPU per event differs by a factor to be
measured there). The model is in `bench/capacity.py`; every other input is listed below.

## Measured (this run)

| input | value | from |
|---|---|---|
| ingest CPU per event, single events | {n(m['fn_cpu_us']['single_c8'])} µs | §3, single event, 8 connections, SQS stub |
| ingest CPU per event, batches of 500 | {n(m['fn_cpu_us']['batch500_c8'], 1)} µs | §3, batch of 500, 8 connections, SQS stub |
| PostgreSQL CPU per event, single events | {n(m['pg_cpu_us']['single_c8'])} µs | §3 (the commit of each request dominates) |
| PostgreSQL CPU per event, batches of 500 | {n(m['pg_cpu_us']['batch500_c8'], 1)} µs | §3, the write path's goal row (cluster CPU) |
| `\\copy` of the same rows (the floor) | {n(m['copy_cpu_us'], 1)} µs | same run |
| bytes per stored event, indexes and identity row included | {n(m['bytes_per_row'])} B | pg_write's bytes per row |
| record size (events per 256 KiB message) | {n(m['record_bytes'])} B ({n(SQS_MAX_MESSAGE // math.ceil(m['record_bytes'] + 1))}) | the batch-500 body |
| archiver CPU per event | {n(m['archiver_cpu_us'], 1)} µs | §8, one run |
| archive bytes per event (zstd Parquet) | {n(m['parquet_bytes'], 1)} B | §4, the archiver's files |

## Inputs that are not measured here

Lambda's CPU share: {LAMBDA_MB_PER_VCPU} MB per vCPU (ingest {INGEST_MB} MB, archiver
{ARCHIVER_MB} MB, as in template.yaml). Round trips in AWS: PostgreSQL commit
{WAIT_MS['pg_commit']} ms (Multi-AZ), SQS SendMessageBatch {WAIT_MS['sqs_send']} ms; the local
stack has neither network nor durable commits (fsync off), so RDS's CPU per commit is higher
than measured here: keep the {PG_TARGET_UTIL:.0%} utilisation target. Limits: Lambda
concurrency {ACCOUNT_CONCURRENCY} per region (default quota), HTTP API {n(HTTP_API_RPS)}
requests/s (default throttle), RDS storage {RDS_MAX_STORAGE_TIB} TiB. Prices: the next
section.

## Prices

The one list of the prices every cost figure uses, here and in BENCHMARKS.md's cost model
(`bench/prices.py`): us-east-1, on demand, free tiers ignored; RDS single-AZ, a Multi-AZ
deployment pays {RDS_MULTI_AZ_FACTOR}× the instance and its storage. They are inputs, not
measurements: written into the project on the date given, from the page named, not fetched
by the bench and not checked since. Check them there before relying on a figure.

{table_md()}

## The plan

Lambda concurrency = requests/s × duration, duration = CPU per request ÷ the function's vCPU
share + PostgreSQL's time for the request + the two round trips. RDS class: the smallest whose
vCPUs cover PostgreSQL CPU per event × events/s ÷ {PG_TARGET_UTIL}. Storage: events/s × 86 400
× {RETENTION_DAYS} × bytes per stored event. SQS: the ingest's SendMessageBatch per request
plus the archiver's receive and delete (10 messages per call). S3: one raw file per hour
partition per run ({ARCHIVE_RUN_SECONDS} s), more when a run fills {n(MAX_FILE_EVENTS)}-event
files, plus compaction. Archiver workers: events/s × its CPU per event ÷ its vCPU share (CPU
bound; `MaxArchiverConcurrency` should be at least this, rounded up). Cost per million
events: Lambda (both functions), API Gateway, SQS, S3, the RDS instance and its storage at 90
days of that rate.

{table}

What breaks first, and the knob that moves it:

{chr(10).join(notes)}

{costs_md(run, m)}
## When one PostgreSQL primary is not enough

Storage is what gives out first at every rate above: at 10 000 events/s the 90-day window is
already more than one RDS instance can hold, and at 100 000 it is about a petabyte, while
the CPU still fits one primary (the table's RDS column). Two existing engines take over, in
this order:

1. **Shorter retention in PostgreSQL, the archive as system of record.** Retention is one
   setting (`EIS_RETENTION_DAYS`); identity (`exp.event_ids`) lasts as long as an event is in
   PostgreSQL, so a client retry older than the retention would be stored again: the archive's
   compaction already keeps one row per id per settled hour, and the audit compares per hour.
   Dashboards read Athena (the Glue table) beyond the window. What changes in the code: the
   Metabase queries over longer windows move to Athena; nothing in ingest.
2. **A sharded PostgreSQL** (Citus, or Aurora Limitless Database), distributed by `event_id`
   so that the identity claim and the insert of one event stay on one shard (a co-located
   `exp.event_ids`), with `exp.pending_handoffs` distributed by its own id. What changes in the
   code: the insert statement is per shard (the batch split by shard key, one statement each,
   no cross-shard transaction needed because each event's claim and row are co-located);
   partitions by day remain per shard; the per-experiment GIN index is replaced by the
   assignments table of the experiment-health job (`exp.assignments`), sharded by `unit_id`.
"""


def fixed_monthly():
    """The database stack as shipped, idle, per month: (item, USD) and the total without the proxy."""
    name, vcpus, hourly, _ = next(c for c in RDS_CLASSES if c[0] == DB_STACK["class"])
    items = [
        (f"{name}, single-AZ", hourly * HOURS_PER_MONTH),
        (f"{DB_STACK['storage_gb']} GB gp3", DB_STACK["storage_gb"] * price("rds_gp3_gb_month")),
        (f"RDS Proxy ({max(2, vcpus)} vCPU billed)", max(2, vcpus) * price("rds_proxy_vcpu_hour") * HOURS_PER_MONTH),
        (f"{DB_STACK['interface_endpoints']} interface endpoints in {DB_STACK['azs']} AZs",
         DB_STACK["interface_endpoints"] * DB_STACK["azs"] * price("interface_endpoint_az_hour") * HOURS_PER_MONTH),
        (f"{DB_STACK['secrets']} secrets", DB_STACK["secrets"] * price("secret_month")),
    ]
    return items, sum(cost for item, cost in items if not item.startswith("RDS Proxy"))


def template_alarms():
    """Alarms of template.yaml: all of them, and those without a condition (always deployed)."""
    text = (ROOT / "template.yaml").read_text()
    alarms = re.findall(r"\n    Type: AWS::CloudWatch::Alarm\n(    Condition: )?", text)
    return len(alarms), sum(1 for condition in alarms if not condition)


def costs_md(run, m):
    rows = []
    for rate in RATES:
        for label, config, per_request in MODES:
            c = plan(m, rate, config, per_request)["cost"]
            rows.append([n(rate), label] + [f"${v:.4f}" if v is not None else "n/a" for v in c.values()]
                        + [f"${sum(v for v in c.values() if v is not None):.2f}"])
    header = ["events/s", "sent as", "Lambda (both functions)", "API Gateway", "SQS", "S3 PUTs",
              "RDS instance (Multi-AZ)", f"RDS storage ({RETENTION_DAYS} days, Multi-AZ)", "total"]
    variable = "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                         + ["| " + " | ".join(r) + " |" for r in rows])
    gb = m["parquet_bytes"] * 1e6 / 1e9
    archive = [(f"S3 Standard (the first {ARCHIVE_IA_DAYS} days)", price("s3_standard_gb_month")),
               (f"S3 Standard-IA (to day {ARCHIVE_GLACIER_DAYS})", price("s3_standard_ia_gb_month")),
               ("S3 Glacier Instant Retrieval (after that, for ever)", price("s3_glacier_ir_gb_month"))]
    items, without_proxy = fixed_monthly()
    alarms, unconditional = template_alarms()
    return f"""## Costs

**Per million events**, from the plan above (the measured per-event costs and the prices): the
cost-per-million column of the plan, by service. CloudWatch Logs are not in it: the bytes
logged per request are not measured ({usd(price('logs_ingested_gb'))} per GB ingested).

{variable}

Batching is what moves the variable cost: one request carries 500 events through API Gateway,
Lambda and SQS instead of one (BENCHMARKS.md, "Cost model", has the SQS packing in detail).

**The archive** keeps every event, {n(m['parquet_bytes'], 1)} B per event as zstd Parquet
(measured, §4 of BENCHMARKS.md): {gb:.4f} GB per million events, per month:
{"; ".join(f"{where} ${gb * per_gb:.5f}" for where, per_gb in archive)} (the bucket's lifecycle,
template.yaml; transition requests are per object and not priced here).

**Fixed per month, idle.** The database stack as shipped (infra/database.yaml's defaults):
{", ".join(f"{item} ${cost:.2f}" for item, cost in items)}: **${sum(cost for _, cost in items):.2f}**,
or ${without_proxy:.2f} without the proxy. The EIS stack itself: Lambda, API Gateway and SQS
cost nothing idle; template.yaml has {alarms} alarms, {unconditional} of them always deployed,
each at least {usd(price('alarm_metric_month'))} a month (an alarm on metric math pays for each
metric in it): at least ${unconditional * price('alarm_metric_month'):.2f}. The archiver's scheduled runs on an empty queue
are not measured, so not priced.
"""


def main():
    run = json.load(open(sys.argv[1]))
    text = render(run, measured(run))
    with open(sys.argv[2], "w") as out:
        out.write(text)


if __name__ == "__main__":
    main()
