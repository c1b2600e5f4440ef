"""The quarantine's Parquet format (docs/quarantine.md) read by engines nobody here wrote:
DuckDB and pyarrow. A batch body is judged and kept exactly as the ingest does it and
written by the archiver's own encoder (`cargo run -p archiver --example
write-rejected-sample`); every column must read back as documented, and the Glue table
`rejected_events` must have the file's columns and types."""

import json
from datetime import datetime, timezone

import duckdb
import pyarrow.parquet as pq
import pytest

from conftest import write_with_example
from test_glue_schema import hive_type, load_template

NOW = "2026-01-05T09:30:00Z"
EXPERIMENT = "0b7e6a43-2d1e-4f55-9d7c-6f6f6b1f0a01"
VARIANT = "5c0c8f5e-8b4a-4a43-b7c5-0f2f0c0b9a02"

VALID = {"event_type": "pantry_updated", "unit_type": "user", "unit_id": "u-1",
         "timestamp": "2026-01-05T09:00:00Z"}
# Index 1: plan_accepted without its plan_id, in a variant; index 2: no unit_type; index 3:
# larger than an event may be (kept cut to 64 KiB).
BODY = {"events": [
    VALID,
    {"event_type": "plan_accepted", "unit_type": "user", "unit_id": "u-2",
     "timestamp": "2026-01-05T09:00:00Z",
     "experiments": [{"experiment_id": EXPERIMENT, "variant_id": VARIANT}]},
    {"event_type": "pantry_updated", "unit_id": "u-3", "timestamp": "2026-01-05T09:00:00Z"},
    dict(VALID, payload={"note": "x" * 70_000}),
]}
COLUMNS = ["record_id", "request_id", "route", "scope", "batch_index", "received_at", "code",
           "message", "raw", "raw_bytes", "raw_truncated", "raw_lossy", "experiments", "violations"]


def write_rejected(folder, body: bytes):
    src, out = folder / "body.json", folder / "rejected.parquet"
    src.write_bytes(body)
    return write_with_example("write-rejected-sample", src, out, NOW)


@pytest.fixture(scope="module")
def rejected_file(tmp_path_factory):
    return write_rejected(tmp_path_factory.mktemp("rejected"), json.dumps(BODY).encode())


def test_duckdb_reads_every_column(rejected_file):
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    rows = con.execute(
        f"SELECT {', '.join(COLUMNS)} FROM read_parquet(?) ORDER BY batch_index",
        [str(rejected_file)],
    ).fetchall()
    assert [r[4] for r in rows] == [1, 2, 3]
    by_index = {r[4]: dict(zip(COLUMNS, r)) for r in rows}
    accepted_missing_plan = by_index[1]
    assert accepted_missing_plan["code"] == "missing_plan_id"
    assert accepted_missing_plan["raw"] == json.dumps(BODY["events"][1])
    assert accepted_missing_plan["experiments"] == [
        {"experiment_id": EXPERIMENT, "variant_id": VARIANT}]
    assert accepted_missing_plan["scope"] == "event"
    assert accepted_missing_plan["route"] == "POST /events/batch"
    assert accepted_missing_plan["received_at"] == datetime(2026, 1, 5, 9, 30, tzinfo=timezone.utc)
    assert by_index[2]["code"] == "missing_unit_type" and by_index[2]["experiments"] == []
    large = by_index[3]
    assert large["code"] == "event_too_large"
    assert large["raw_truncated"] and len(large["raw"].encode()) == 64 * 1024
    assert large["raw_bytes"] == len(json.dumps(BODY["events"][3]).encode())
    assert len({r[0] for r in rows}) == 3, "record ids are distinct"
    assert not any(r[COLUMNS.index("raw_lossy")] for r in rows), "valid UTF-8 is not lossy"


def test_a_body_refused_whole_is_one_request_record(tmp_path):
    out = write_rejected(tmp_path, b'{"events": [1, 2')
    table = pq.read_table(out)
    assert table.num_rows == 1
    row = table.to_pylist()[0]
    assert (row["scope"], row["code"], row["batch_index"]) == ("request", "invalid_json", None)
    assert row["raw"] == '{"events": [1, 2'
    assert row["raw_lossy"] is False


def test_invalid_utf8_is_kept_marked_lossy(tmp_path):
    table = pq.read_table(write_rejected(tmp_path, b'{"events": [1, "\xff"'))
    row = table.to_pylist()[0]
    assert row["raw_lossy"] is True and "\ufffd" in row["raw"]


def test_glue_columns_are_the_files_schema(rejected_file):
    schema = pq.read_schema(rejected_file)
    from_file = [(f.name, hive_type(f.type)) for f in schema]
    table = load_template()["Resources"]["RejectedGlueTable"]["Properties"]["TableInput"]
    in_glue = [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]]
    assert in_glue == from_file
    assert [name for name, _ in from_file] == COLUMNS
