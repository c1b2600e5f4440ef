"""The archive's Parquet format read by engines nobody here wrote: DuckDB, pyarrow, polars
and Spark.

The events are defined here as a client would send them; the archiver's own encoder writes
them to a file (`cargo run -p archiver --example write-sample`), and every column must read
back with the values sent: UUIDs, the experiments list, JSON objects (their shredded keys in
typed columns, the rest as text; docs/archive.md "Shredded keys"), the metrics, UTC
timestamps in microseconds, and the flags the contract sets. Numbers digit for digit.
"""

import json
import os
import subprocess
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import ROOT, write_with_example

# The receive time given to validation: every received_at equals it.
NOW = "2026-01-05T09:30:00Z"
NOW_UTC = datetime(2026, 1, 5, 9, 30, tzinfo=timezone.utc)
# The requests' send time by the client's clock, two minutes behind the server's: each
# adjusted_timestamp is the event's timestamp two minutes later.
SENT_AT = "2026-01-05T09:28:00Z"
SENT_AT_UTC = datetime(2026, 1, 5, 9, 28, tzinfo=timezone.utc)
SKEW = NOW_UTC - SENT_AT_UTC

EXPERIMENT_A = "0b7e6a43-2d1e-4f55-9d7c-6f6f6b1f0a01"
VARIANT_A = "5c0c8f5e-8b4a-4a43-b7c5-0f2f0c0b9a02"
EXPERIMENT_B = "1c8f7b54-3e2f-4a66-8e3d-7a7a7c2a1b03"
VARIANT_B = "6d1d9a6f-9c5b-4b54-a8d6-1a3a1d1cab04"

# The tracking plan in force (docs/plan.md), in flag mode: SENT[0] matches plan_generated's
# newest version, SENT[2] pantry_updated's only one, and SENT[1], without the `added` that
# version requires, is stored flagged with the version it failed and the failing pointer.
PLAN = {"types": [
    {"event_type": "plan_generated", "mode": "flag", "versions": [
        {"version": "1-1-0", "payload": {
            "type": "object", "required": ["plan_id"],
            "properties": {"plan_id": {"type": "string"}, "note": {"type": "string"}}}},
        {"version": "1-0-0", "payload": {"type": "object", "required": ["plan_id"]}},
    ]},
    {"event_type": "pantry_updated", "mode": "flag", "versions": [
        {"version": "1-0-0", "payload": {
            "type": "object", "required": ["added"],
            "properties": {"added": {"type": "array", "items": {"type": "string"}}}}},
    ]},
]}

SENT = [
    {
        "event_id": "0193F1A2-7C3E-7A10-8B2C-3D4E5F6A7B01",  # either case is accepted
        "event_type": "plan_generated",
        "unit_type": "user",
        "unit_id": "user-123",
        "experiments": [
            {"experiment_id": EXPERIMENT_A, "variant_id": VARIANT_A},
            {"experiment_id": EXPERIMENT_B, "variant_id": VARIANT_B},
        ],
        "context": {"policy_version_id": "7d9f8e1c-3b2a-4c5d-8e6f-9a0b1c2d3e04",
                    "platform": "ios", "nested": {"list": [1, 2.5, None]}},
        "metrics": {"latency_ms": 1843.5, "token_count": 2117},
        # Shredded (plan_id, days, dietary_tags, retry, pantry_items_used: int64's largest)
        # and not: meals_per_day's 3.0 is not int64 text, so it stays in payload_rest.
        "payload": {"plan_id": "pln_01", "note": "ünïcödé ✓", "days": 7,
                    "dietary_tags": ["vegetarian", "ünï \"q\""], "retry": True,
                    "meals_per_day": 3.0, "pantry_items_used": 9223372036854775807},
        # An offset: stored in UTC (09:15:30.123456Z), microseconds kept.
        "timestamp": "2026-01-05T11:15:30.123456+02:00",
    },
    {
        "event_id": "0193f1a2-7c3e-7a10-8b2c-3d4e5f6a7b02",
        "event_type": "pantry_updated",
        "unit_type": "household",
        "unit_id": "h-9",
        # Ten days before NOW: flagged old; no experiments: flagged too.
        "timestamp": "2025-12-26T08:00:00Z",
    },
    {
        "event_id": "0193f1a2-7c3e-7a10-8b2c-3d4e5f6a7b03",
        "event_type": "pantry_updated",
        "unit_type": "user",
        "unit_id": "user-456",
        "experiments": [{"experiment_id": EXPERIMENT_A, "variant_id": VARIANT_A}],
        "metrics": {"items": 3},
        "payload": {"added": ["rice"]},
        # Nanoseconds are truncated to microseconds.
        "timestamp": "2026-01-05T09:29:59.999999999Z",
    },
]

EXPECTED = [
    {
        "event_id": "0193f1a2-7c3e-7a10-8b2c-3d4e5f6a7b01",
        "event_type": "plan_generated",
        "unit_type": "user",
        "unit_id": "user-123",
        "experiments": [
            {"experiment_id": EXPERIMENT_A, "variant_id": VARIANT_A},
            {"experiment_id": EXPERIMENT_B, "variant_id": VARIANT_B},
        ],
        "context": SENT[0]["context"],
        "metrics": {"latency_ms": 1843.5, "token_count": 2117.0},
        "payload": SENT[0]["payload"],
        "timestamp": datetime(2026, 1, 5, 9, 15, 30, 123456, tzinfo=timezone.utc),
        "received_at": NOW_UTC,
        "flags": [],
        "sent_at": SENT_AT_UTC,
        "adjusted_timestamp": datetime(2026, 1, 5, 9, 15, 30, 123456, tzinfo=timezone.utc) + SKEW,
        "schema_version": "1-1-0",
        "schema_violation": None,
    },
    {
        "event_id": "0193f1a2-7c3e-7a10-8b2c-3d4e5f6a7b02",
        "event_type": "pantry_updated",
        "unit_type": "household",
        "unit_id": "h-9",
        "experiments": [],
        "context": {},
        "metrics": {},
        "payload": {},
        "timestamp": datetime(2025, 12, 26, 8, 0, tzinfo=timezone.utc),
        "received_at": NOW_UTC,
        "flags": ["old_timestamp", "no_experiment_context", "schema_violation"],
        "sent_at": SENT_AT_UTC,
        "adjusted_timestamp": datetime(2025, 12, 26, 8, 0, tzinfo=timezone.utc) + SKEW,
        "schema_version": "1-0-0",
        "schema_violation": "/payload/added",
    },
    {
        "event_id": "0193f1a2-7c3e-7a10-8b2c-3d4e5f6a7b03",
        "event_type": "pantry_updated",
        "unit_type": "user",
        "unit_id": "user-456",
        "experiments": [{"experiment_id": EXPERIMENT_A, "variant_id": VARIANT_A}],
        "context": {},
        "metrics": {"items": 3.0},
        "payload": {"added": ["rice"]},
        "timestamp": datetime(2026, 1, 5, 9, 29, 59, 999999, tzinfo=timezone.utc),
        "received_at": NOW_UTC,
        "flags": [],
        "sent_at": SENT_AT_UTC,
        "adjusted_timestamp": datetime(2026, 1, 5, 9, 29, 59, 999999, tzinfo=timezone.utc) + SKEW,
        "schema_version": "1-0-0",
        "schema_violation": None,
    },
]

# The columns every format 4 file starts with, then the remainders, then the typed columns.
FIXED = ["event_id", "event_type", "unit_type", "unit_id", "experiments", "timestamp",
         "received_at", "flags", "sent_at", "adjusted_timestamp", "schema_version",
         "schema_violation", "context_rest", "payload_rest", "metrics_rest"]
SHREDDED = ("context_", "payload_", "metrics_")
# The columns each format version added (docs/archive.md, "Across the changes").
ADDED_IN_2 = ["sent_at", "adjusted_timestamp"]
ADDED_IN_3 = ["schema_version", "schema_violation"]
TIMESTAMPS = ["timestamp", "received_at", "sent_at", "adjusted_timestamp"]


def write_archive(folder, lines, *sent_at_and_plan):
    """A file written by the archiver's encoder from request bodies (one JSON text each),
    sent at a time and checked against a plan file when given."""
    events, out = folder / "events.jsonl", folder / "events.parquet"
    events.write_text("\n".join(lines) + "\n")
    return write_with_example("write-sample", events, out, NOW, *sent_at_and_plan)


@pytest.fixture(scope="module")
def archive_file(tmp_path_factory):
    """A file written by the archiver's encoder from SENT, checked against PLAN (fails if
    none is written)."""
    folder = tmp_path_factory.mktemp("archive")
    plan = folder / "plan.json"
    plan.write_text(json.dumps(PLAN))
    return write_archive(folder, [json.dumps(e) for e in SENT], SENT_AT, str(plan))


# Numbers in payload/context as sent (raw JSON text), and the text the archive holds:
# exact, in canonical form (docs/contract.md, Numbers). `days` (an int64 past 2^53) is
# shredded; `meals_per_day` (1.0 is not int64 text) stays in the remainder.
EXACT_SENT = ('{"event_type": "order_placed", "unit_type": "user", "unit_id": "u-1", '
              '"timestamp": "2026-01-05T09:00:00Z", "context": {"amount": 1.50}, '
              '"payload": {"order_id": 123456789012345678901234567890, "big": 1e400, '
              '"small": 1e-7, "z": -0.0, "ratio": 100e-2, "days": 9007199254740993, '
              '"meals_per_day": 1.0}}')
EXACT_PAYLOAD_REST = ('{"big":1' + "0" * 400 + ',"meals_per_day":1.0,'
                      '"order_id":123456789012345678901234567890,'
                      '"ratio":1.00,"small":0.0000001,"z":0.0}')


@pytest.fixture(scope="module")
def exact_file(tmp_path_factory):
    return write_archive(tmp_path_factory.mktemp("exact"), [EXACT_SENT])


@pytest.fixture(scope="module")
def spark():
    """One local Spark session for the module (Java 17), timestamps rendered in UTC."""
    from pyspark.sql import SparkSession
    session = (SparkSession.builder.master("local[1]").appName("eis-archive-format")
               .config("spark.ui.enabled", "false")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.driver.bindAddress", "127.0.0.1")
               .getOrCreate())
    yield session
    session.stop()


def read_pyarrow(path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def read_duckdb(path) -> list[dict]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    cursor = con.execute("SELECT * FROM read_parquet(?)", [str(path)])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r)) for r in cursor.fetchall()]


def read_polars(path) -> list[dict]:
    return pl.read_parquet(path).to_dicts()


def read_spark(session, path) -> list[dict]:
    """Timestamps as microseconds since the epoch (collect() would render them in the local
    time zone of this process), made aware datetimes again here."""
    from pyspark.sql import functions as F
    frame = session.read.parquet(str(path))
    frame = frame.select(*[F.unix_micros(F.col(c)).alias(c) if c in TIMESTAMPS else F.col(c)
                           for c in frame.columns])
    rows = [r.asDict(recursive=True) for r in frame.collect()]
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    for row in rows:
        for c in TIMESTAMPS:
            if row.get(c) is not None:
                row[c] = epoch + timedelta(microseconds=row[c])
    return rows


def pairs(value) -> dict:
    """A map column as a dict, however the reader gives it: a dict (DuckDB, Spark), (key,
    value) tuples (pyarrow) or {"keys": …, "values": …} structs (polars)."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return dict(value)
    return dict(tuple(p.values()) if isinstance(p, dict) else p for p in value)


def normalise(row: dict) -> dict:
    """The typed columns and remainders merged back into the objects (the remainder's numbers
    as Decimal: exact), the metrics map a dict: comparable with EXPECTED. A key in both its
    typed column and the remainder fails."""
    out = {k: v for k, v in row.items() if not k.startswith(SHREDDED)}
    for name in ("context", "payload"):
        whole = json.loads(row[f"{name}_rest"], parse_float=Decimal)
        for column, value in row.items():
            if column.startswith(f"{name}_") and column != f"{name}_rest" and value is not None:
                key = column[len(name) + 1:]
                assert key not in whole, f"{key} twice"
                whole[key] = value
        out[name] = whole
    metrics = pairs(row["metrics_rest"])
    for column, value in row.items():
        if column.startswith("metrics_") and column != "metrics_rest" and value is not None:
            assert column[8:] not in metrics
            metrics[column[8:]] = value
    out["metrics"] = metrics
    return out


def test_payload_and_context_numbers_are_exact_text(exact_file, spark):
    for read in (read_pyarrow, read_duckdb, read_polars, lambda p: read_spark(spark, p)):
        row = read(exact_file)[0]
        # Written without a send time or a plan: those columns null, as in files from before
        # they existed.
        assert (row["sent_at"], row["adjusted_timestamp"]) == (None, None)
        assert (row["schema_version"], row["schema_violation"]) == (None, None)
        assert row["payload_rest"] == EXACT_PAYLOAD_REST
        assert row["context_rest"] == '{"amount":1.50}'
        assert row["payload_days"] == 9007199254740993
        assert row["payload_meals_per_day"] is None
        payload = normalise(row)["payload"]
        assert payload["order_id"] == 123456789012345678901234567890
        assert str(payload["ratio"]) == "1.00"

    con = duckdb.connect()
    payload, order_id, days = con.execute(
        "SELECT payload_rest, json_extract(payload_rest, '$.order_id')::VARCHAR, "
        "payload_days::VARCHAR FROM read_parquet(?)", [str(exact_file)]).fetchone()
    assert payload == EXACT_PAYLOAD_REST
    assert order_id == "123456789012345678901234567890"
    assert days == "9007199254740993"


def check_column_names(names: list[str]) -> None:
    assert names[:len(FIXED)] == FIXED
    assert all(n.startswith(SHREDDED) for n in names[len(FIXED):])
    assert {"context_platform", "payload_plan_id", "payload_days", "metrics_latency_ms"} <= set(names)


def test_pyarrow_reads_every_column_as_sent(archive_file):
    table = pq.read_table(archive_file)
    check_column_names(table.column_names)
    assert table.schema.field("event_type").type == pa.dictionary(pa.int32(), pa.string())
    assert table.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("received_at").type == pa.timestamp("us", tz="UTC")
    for name in ADDED_IN_2:
        assert table.schema.field(name).type == pa.timestamp("us", tz="UTC"), name
        assert table.schema.field(name).nullable, name
    # A few versions over many rows: a dictionary, like event_type.
    assert table.schema.field("schema_version").type == pa.dictionary(pa.int32(), pa.string())
    assert table.schema.field("schema_violation").type == pa.string()
    assert all(table.schema.field(name).nullable for name in ADDED_IN_3)
    assert pa.types.is_map(table.schema.field("metrics_rest").type)
    assert table.schema.field("payload_days").type == pa.int64()
    assert table.schema.field("payload_retry").type == pa.bool_()
    assert table.schema.field("payload_dietary_tags").type.value_type == pa.string()
    assert table.schema.field("metrics_latency_ms").type == pa.float64()
    experiments = table.schema.field("experiments").type
    assert pa.types.is_list(experiments)
    assert [f.name for f in experiments.value_type] == ["experiment_id", "variant_id"]
    assert table.schema.field("flags").type.value_type == pa.string()

    rows = [normalise(r) for r in table.to_pylist()]
    assert rows == EXPECTED


def test_the_file_is_zstd_with_statistics(archive_file):
    meta = pq.ParquetFile(archive_file).metadata
    assert meta.num_rows == len(SENT)
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            column = group.column(c)
            assert column.compression == "ZSTD", column.path_in_schema
            assert column.is_stats_set, column.path_in_schema
    columns = {meta.row_group(0).column(c).path_in_schema: meta.row_group(0).column(c)
               for c in range(meta.num_columns)}
    ts = columns["timestamp"]
    # docs/archive.md, "Writer settings": deltas for times, prefixes for identifiers.
    assert "DELTA_BINARY_PACKED" in ts.encodings
    for name in ("event_id", "unit_id", "payload_plan_id", "context_session_id"):
        assert "DELTA_BYTE_ARRAY" in columns[name].encodings, name
    assert ts.statistics.min == EXPECTED[1]["timestamp"]
    assert ts.statistics.max == EXPECTED[2]["timestamp"]


def test_duckdb_reads_the_unit_id_bloom_filter(archive_file):
    """Erasure finds a unit's files by their `unit_id` bloom filters (docs/privacy.md): the
    filter must be one other engines read too, saying "maybe" for every unit in the file and
    "no" for one that is not."""
    con = duckdb.connect()
    probe = "SELECT bloom_filter_excludes FROM parquet_bloom_probe(?, 'unit_id', ?)"
    for event in SENT:
        assert con.execute(probe, [str(archive_file), event["unit_id"]]).fetchall() == [(False,)]
    assert con.execute(probe, [str(archive_file), "nobody-here"]).fetchall() == [(True,)]


def test_duckdb_reads_every_column_as_sent(archive_file):
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    described = {name: kind for name, kind, *_ in
                 con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(archive_file)]).fetchall()}
    assert described["timestamp"] == "TIMESTAMP WITH TIME ZONE"
    assert described["metrics_rest"] == "MAP(VARCHAR, DOUBLE)"
    assert described["payload_days"] == "BIGINT"
    assert described["payload_dietary_tags"] == "VARCHAR[]"
    assert described["metrics_token_count"] == "DOUBLE"
    assert described["experiments"] == "STRUCT(experiment_id VARCHAR, variant_id VARCHAR)[]"
    assert described["flags"] == "VARCHAR[]"
    assert described["adjusted_timestamp"] == "TIMESTAMP WITH TIME ZONE"
    assert described["schema_version"] == "VARCHAR"
    assert described["schema_violation"] == "VARCHAR"

    cursor = con.execute("SELECT * FROM read_parquet(?) ORDER BY event_id", [str(archive_file)])
    names = [d[0] for d in cursor.description]
    check_column_names(names)
    rows = [normalise(dict(zip(names, r))) for r in cursor.fetchall()]
    assert rows == EXPECTED
    # A key wherever it is: its typed column, else the remainder (docs/archive.md).
    plan_ids = con.execute(
        "SELECT coalesce(payload_plan_id, payload_rest ->> '$.plan_id') FROM read_parquet(?) "
        "ORDER BY event_id", [str(archive_file)]).fetchall()
    assert plan_ids == [("pln_01",), (None,), (None,)]

    # The queries the archive is for: by experiment and by time, rendered in UTC.
    by_variant = con.execute(
        "SELECT e.variant_id, count(*) FROM read_parquet(?), unnest(experiments) AS t(e) "
        "GROUP BY 1 ORDER BY 1", [str(archive_file)]).fetchall()
    assert by_variant == [(VARIANT_A, 2), (VARIANT_B, 1)]
    rendered = con.execute(
        "SELECT strftime(timestamp, '%Y-%m-%dT%H:%M:%S.%f') FROM read_parquet(?) ORDER BY event_id",
        [str(archive_file)]).fetchall()
    assert [r[0] for r in rendered] == [
        "2026-01-05T09:15:30.123456", "2025-12-26T08:00:00.000000", "2026-01-05T09:29:59.999999"]
    # Plan health: events per type and version, and where the flagged ones failed.
    by_version = con.execute(
        "SELECT event_type, schema_version, count(*), list(schema_violation) FILTER "
        "(WHERE list_contains(flags, 'schema_violation')) FROM read_parquet(?) "
        "GROUP BY ALL ORDER BY ALL", [str(archive_file)]).fetchall()
    assert by_version == [("pantry_updated", "1-0-0", 2, ["/payload/added"]),
                          ("plan_generated", "1-1-0", 1, None)]


def by_id(rows: list[dict]) -> list[dict]:
    return sorted((normalise(r) for r in rows), key=lambda r: r["event_id"])


def test_polars_reads_every_column_as_sent(archive_file):
    frame = pl.read_parquet(archive_file)
    check_column_names(frame.columns)
    assert frame.schema["payload_days"] == pl.Int64
    assert frame.schema["payload_dietary_tags"] == pl.List(pl.String)
    assert frame.schema["timestamp"] == pl.Datetime("us", "UTC")
    assert by_id(frame.to_dicts()) == EXPECTED


def test_spark_reads_every_column_as_sent(archive_file, spark):
    frame = spark.read.parquet(str(archive_file))
    check_column_names(frame.columns)
    types = dict(frame.dtypes)
    assert types["payload_days"] == "bigint"
    assert types["payload_dietary_tags"] == "array<string>"
    assert types["metrics_rest"] == "map<string,double>"
    assert types["timestamp"] == "timestamp"
    assert by_id(read_spark(spark, archive_file)) == EXPECTED


def write_format(folder, version: str):
    """The events of SENT as the archiver wrote them in an older format (whole objects),
    with the same send time and plan: `EIS_SAMPLE_FORMAT` of the write-sample example."""
    folder.mkdir()
    events, out, plan = folder / "events.jsonl", folder / "events.parquet", folder / "plan.json"
    events.write_text("\n".join(json.dumps(e) for e in SENT) + "\n")
    plan.write_text(json.dumps(PLAN))
    run = subprocess.run(
        ["cargo", "run", "--quiet", "--locked", "-p", "archiver", "--example", "write-sample",
         "--", str(events), str(out), NOW, SENT_AT, str(plan)],
        cwd=ROOT, capture_output=True, text=True, timeout=3600, check=False,
        env={**os.environ, "EIS_SAMPLE_FORMAT": version})
    assert run.returncode == 0, run.stderr
    return out


def test_readers_query_across_the_format_changes(archive_file, tmp_path, spark):
    """docs/archive.md, "Across the changes": files of versions 1 (no send-time or plan
    columns), 2 (no plan columns) and 3 (whole context, payload and metrics), read together
    with a version 4 file (shredded) by DuckDB, pyarrow, polars and Spark; a key is taken from
    whichever column holds it."""
    old = {v: write_format(tmp_path / f"v{v}", v) for v in ("1", "2", "3")}
    assert pq.read_schema(old["3"]).names[5:8] == ["context", "metrics", "payload"]
    assert pq.read_schema(old["1"]).names[-1] == "flags"
    files = [str(archive_file), *(str(f) for f in old.values())]
    version = b"eis.archive.format_version"
    assert pq.read_metadata(archive_file).metadata[version] == b"4"
    for v, f in old.items():
        assert pq.read_metadata(f).metadata[version] == v.encode()
    n = len(SENT)

    con = duckdb.connect()
    rows = con.execute(
        "SELECT count(*), count(sent_at), count(schema_version), count(schema_violation) "
        "FROM read_parquet(?, union_by_name = true)", [files]).fetchone()
    assert rows == (4 * n, 3 * n, 2 * n, 2)
    # Rows of older files read as not checked: a query by version leaves them out.
    checked = con.execute(
        "SELECT schema_version, count(*) FROM read_parquet(?, union_by_name = true) "
        "GROUP BY 1 ORDER BY 1 NULLS LAST", [files]).fetchall()
    assert checked == [("1-0-0", 4), ("1-1-0", 2), (None, 2 * n)]
    across = con.execute(
        "SELECT coalesce(payload_plan_id, payload_rest ->> '$.plan_id', payload ->> '$.plan_id'),"
        " coalesce(payload_pantry_items_used::VARCHAR, payload ->> '$.pantry_items_used'),"
        " coalesce(metrics_latency_ms, metrics_rest['latency_ms'], metrics['latency_ms'])"
        " FROM read_parquet(?, union_by_name = true) WHERE event_type = 'plan_generated'",
        [files]).fetchall()
    assert across == [("pln_01", "9223372036854775807", 1843.5)] * 4

    import pyarrow.dataset as ds
    schema = pa.unify_schemas([pq.read_schema(f) for f in files])
    every = ds.dataset(files, schema=schema).to_table()
    assert every.num_rows == 4 * n
    assert every.column("sent_at").null_count == n
    assert every.column("schema_version").null_count == 2 * n
    assert every.column("context").null_count == n and every.column("context_rest").null_count == 3 * n
    flagged = every.filter(ds.field("schema_violation").is_valid())
    assert flagged.column("schema_violation").to_pylist() == ["/payload/added"] * 2

    frame = pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")
    assert frame.height == 4 * n
    plan_ids = frame.filter(pl.col("event_type") == "plan_generated").select(
        pl.coalesce(pl.col("payload_plan_id"),
                    pl.col("payload").str.json_path_match("$.plan_id"))).to_series().to_list()
    assert plan_ids == ["pln_01"] * 4

    merged = spark.read.option("mergeSchema", "true").parquet(*files)
    assert merged.count() == 4 * n
    from pyspark.sql import functions as F
    got = merged.where(F.col("event_type") == "plan_generated").select(
        F.coalesce(F.col("payload_pantry_items_used").cast("string"),
                   F.get_json_object("payload", "$.pantry_items_used"))).collect()
    assert [r[0] for r in got] == ["9223372036854775807"] * 4
