"""migrations/V5__pending_handoffs.sql on a database that V1-V4 left with data: events not
handed off yet (handed_off_at NULL) become one pending hand-off row, the others none; the
column and its partial index go; retention keeps a day holding a pending event.

The files are applied with psql in order (the project's runner, refinery, applies the same
SQL; running it here would need a way to stop it at V4, which it has not).
"""

import os
import subprocess
import urllib.parse as u
import uuid
from pathlib import Path

import pytest

from conftest import ROOT

MIGRATIONS = sorted((ROOT / "migrations").glob("V*__*.sql"), key=lambda p: int(p.name[1:].split("__")[0]))


def psql(url: str, *args: str) -> str:
    r = subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-qAtX", *args],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.fixture
def scratch_db():
    base = os.environ["DATABASE_URL"]
    name = f"eis_v5_{uuid.uuid4().hex[:8]}"
    parts = u.urlsplit(base)
    admin = u.urlunsplit(parts._replace(path="/postgres"))
    psql(admin, "-c", f"CREATE DATABASE {name}")
    try:
        yield u.urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        psql(admin, "-c", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def apply(url: str, migration: Path) -> None:
    psql(url, "-1", "-f", str(migration))


def test_v5_moves_what_was_not_handed_off_into_one_pending_row(scratch_db):
    before = [m for m in MIGRATIONS if int(m.name[1:].split("__")[0]) < 5]
    v5 = next(m for m in MIGRATIONS if m.name.startswith("V5__"))
    for m in before:
        apply(scratch_db, m)
    # The partition of 100 days ago; three events in it, one of them not handed off.
    psql(scratch_db, "-c", "SELECT exp.ensure_day_partition((now() - interval '100 days')::date)")
    ids = [str(uuid.uuid4()) for _ in range(3)]
    for i, event_id in enumerate(ids):
        handed = "NULL" if i == 1 else "now()"
        psql(scratch_db, "-c", f"""
            INSERT INTO exp.events (event_id, event_type, unit_type, unit_id, "timestamp", handed_off_at)
            VALUES ('{event_id}', 'exposure', 'user', 'u{i}', now() - interval '100 days', {handed})""")

    apply(scratch_db, v5)

    assert psql(scratch_db, "-c", "SELECT count(*), min(cardinality(event_ids)) FROM exp.pending_handoffs") == "1|1"
    assert psql(scratch_db, "-c", "SELECT event_ids[1] FROM exp.pending_handoffs") == ids[1]
    assert psql(scratch_db, "-c", """SELECT count(*) FROM information_schema.columns
                                     WHERE table_schema = 'exp' AND column_name = 'handed_off_at'""") == "0"
    assert psql(scratch_db, "-c", "SELECT to_regclass('exp.events_not_handed_off_idx') IS NULL") == "t"
    # The day 100 days back holds the pending event: retention keeps it; then, settled, drops it.
    assert psql(scratch_db, "-c", "SELECT count(*) FROM exp.drop_expired_partitions(90)") == "0"
    psql(scratch_db, "-c", "DELETE FROM exp.pending_handoffs")
    assert psql(scratch_db, "-c", "SELECT count(*) FROM exp.drop_expired_partitions(90)") == "1"
    assert psql(scratch_db, "-c", "SELECT count(*) FROM exp.events") == "0"
    # And the function is still SECURITY DEFINER with a fixed search_path (V4).
    assert psql(scratch_db, "-c", """SELECT prosecdef, proconfig FROM pg_proc
                                     WHERE proname = 'drop_expired_partitions'""") == 't|{"search_path=pg_catalog, pg_temp"}'
