"""The archive's Parquet format read by engines nobody here wrote: DuckDB and pyarrow.

The events are defined here as a client would send them; the archiver's own encoder writes
them to a file (`cargo run -p archiver --example write-sample`), and every column must read
back with the values sent: UUIDs, the experiments list, JSON objects, the metrics map, UTC
timestamps in microseconds, and the flags the contract sets.
"""

import json
from datetime import datetime, timezone

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import write_with_example

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
        "payload": {"plan_id": "pln_01", "note": "ünïcödé ✓"},
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

COLUMNS = ["event_id", "event_type", "unit_type", "unit_id", "experiments", "context",
           "metrics", "payload", "timestamp", "received_at", "flags", "sent_at",
           "adjusted_timestamp", "schema_version", "schema_violation"]
# The columns each format version added (docs/archive.md, "Across the changes").
ADDED_IN_2 = ["sent_at", "adjusted_timestamp"]
ADDED_IN_3 = ["schema_version", "schema_violation"]


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
# exact, in canonical form (docs/contract.md, Numbers).
EXACT_SENT = ('{"event_type": "order_placed", "unit_type": "user", "unit_id": "u-1", '
              '"timestamp": "2026-01-05T09:00:00Z", "context": {"amount": 1.50}, '
              '"payload": {"order_id": 123456789012345678901234567890, "big": 1e400, '
              '"small": 1e-7, "z": -0.0, "ratio": 100e-2}}')
EXACT_PAYLOAD = ('{"big":1' + "0" * 400 + ',"order_id":123456789012345678901234567890,'
                 '"ratio":1.00,"small":0.0000001,"z":0.0}')


@pytest.fixture(scope="module")
def exact_file(tmp_path_factory):
    return write_archive(tmp_path_factory.mktemp("exact"), [EXACT_SENT])


def test_payload_and_context_numbers_are_exact_text(exact_file):
    row = pq.read_table(exact_file).to_pylist()[0]
    # Written without a send time or a plan: those columns null, as in files from before
    # they existed.
    assert (row["sent_at"], row["adjusted_timestamp"]) == (None, None)
    assert (row["schema_version"], row["schema_violation"]) == (None, None)
    assert row["payload"] == EXACT_PAYLOAD
    assert row["context"] == '{"amount":1.50}'
    assert json.loads(row["payload"])["order_id"] == 123456789012345678901234567890

    con = duckdb.connect()
    payload, order_id = con.execute(
        "SELECT payload, json_extract(payload, '$.order_id')::VARCHAR FROM read_parquet(?)",
        [str(exact_file)]).fetchone()
    assert payload == EXACT_PAYLOAD
    assert order_id == "123456789012345678901234567890"


def normalise(row: dict) -> dict:
    """JSON columns parsed, the map as a dict: comparable with EXPECTED."""
    row = dict(row)
    row["context"] = json.loads(row["context"])
    row["payload"] = json.loads(row["payload"])
    if isinstance(row["metrics"], list):  # pyarrow: a list of (key, value) pairs
        row["metrics"] = dict(row["metrics"])
    return row


def test_pyarrow_reads_every_column_as_sent(archive_file):
    table = pq.read_table(archive_file)
    assert table.column_names == COLUMNS
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
    assert pa.types.is_map(table.schema.field("metrics").type)
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
    ts = [meta.row_group(0).column(c) for c in range(meta.num_columns)
          if meta.row_group(0).column(c).path_in_schema == "timestamp"][0]
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
    assert described["metrics"] == "MAP(VARCHAR, DOUBLE)"
    assert described["experiments"] == "STRUCT(experiment_id VARCHAR, variant_id VARCHAR)[]"
    assert described["flags"] == "VARCHAR[]"
    assert described["adjusted_timestamp"] == "TIMESTAMP WITH TIME ZONE"
    assert described["schema_version"] == "VARCHAR"
    assert described["schema_violation"] == "VARCHAR"

    cursor = con.execute("SELECT * FROM read_parquet(?) ORDER BY event_id", [str(archive_file)])
    names = [d[0] for d in cursor.description]
    assert names == COLUMNS
    rows = [normalise(dict(zip(names, r))) for r in cursor.fetchall()]
    assert rows == EXPECTED

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


def test_readers_query_across_the_format_changes(archive_file, tmp_path):
    """docs/archive.md, "Across the changes": a version 1 file (no send-time or plan columns)
    and a version 2 file (no plan columns), made here by dropping them, read together with a
    version 3 file, by DuckDB and by pyarrow."""
    current = pq.read_table(archive_file)
    v1, v2 = tmp_path / "v1.parquet", tmp_path / "v2.parquet"
    pq.write_table(current.drop_columns(ADDED_IN_2 + ADDED_IN_3), v1)
    pq.write_table(current.drop_columns(ADDED_IN_3), v2)
    files = [str(archive_file), str(v1), str(v2)]

    con = duckdb.connect()
    rows = con.execute(
        "SELECT count(*), count(sent_at), count(schema_version), count(schema_violation) "
        "FROM read_parquet(?, union_by_name = true)", [files]).fetchone()
    assert rows == (3 * len(SENT), 2 * len(SENT), len(SENT), 1)
    # Rows of older files read as not checked: a query by version leaves them out.
    checked = con.execute(
        "SELECT schema_version, count(*) FROM read_parquet(?, union_by_name = true) "
        "GROUP BY 1 ORDER BY 1 NULLS LAST", [files]).fetchall()
    assert checked == [("1-0-0", 2), ("1-1-0", 1), (None, 2 * len(SENT))]

    import pyarrow.dataset as ds
    every = ds.dataset(files, schema=current.schema).to_table()
    assert every.num_rows == 3 * len(SENT)
    assert every.column("sent_at").null_count == len(SENT)
    assert every.column("schema_version").null_count == 2 * len(SENT)
    flagged = every.filter(ds.field("schema_violation").is_valid())
    assert flagged.column("schema_violation").to_pylist() == ["/payload/added"]
    assert flagged.column("schema_version").to_pylist() == ["1-0-0"]
