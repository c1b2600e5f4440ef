"""migrations/V14__leaner_indexes.sql on a database that V1-V13 left with data in two day
partitions: the three replaced indexes go, the new ones cover every partition (the default one
and a partition created later too), an index built beforehand with CREATE INDEX CONCURRENTLY
(docs/deploy.md, "V14 on a large database") is attached instead of built again, and the
readers' queries use the new indexes.

The files are applied with psql in order, as in test_migration_v5.py (refinery cannot stop at
V13).
"""

import datetime as dt

from test_migration_v5 import MIGRATIONS, apply, psql, scratch_db  # noqa: F401 (fixture)

NEW = {
    "events_timestamp_brin": "brin",
    "events_type_idx": "btree",
    "events_unit_id_idx": "btree",
    "events_experiments_idx": "gin",
}
OLD = ["events_timestamp_idx", "events_type_timestamp_idx", "events_unit_idx"]


def partition_indexes(url: str, parent_index: str) -> list[str]:
    """The partitions' indexes attached to `parent_index`, as `partition:index`."""
    out = psql(url, "-c", f"""
        SELECT t.relname || ':' || c.relname FROM pg_inherits h
        JOIN pg_class c ON c.oid = h.inhrelid
        JOIN pg_index i ON i.indexrelid = c.oid
        JOIN pg_class t ON t.oid = i.indrelid
        WHERE h.inhparent = 'exp.{parent_index}'::regclass ORDER BY 1""")
    return out.splitlines()


def plan(url: str, query: str) -> str:
    return psql(url, "-c", f"SET enable_seqscan = off; EXPLAIN (COSTS OFF) {query}")


def test_v14_replaces_the_indexes_on_a_database_holding_data(scratch_db):
    for m in MIGRATIONS:
        if int(m.name[1:].split("__")[0]) < 14:
            apply(scratch_db, m)
    today = dt.datetime.now(dt.timezone.utc).date()
    days = [today - dt.timedelta(days=1), today]
    for day in days:
        psql(scratch_db, "-c", f"SELECT exp.ensure_day_partition('{day}')")
        psql(scratch_db, "-c", f"""
            INSERT INTO exp.events (event_id, event_type, unit_type, unit_id, "timestamp")
            SELECT gen_random_uuid(), (ARRAY['plan_generated', 'meal_swapped'])[1 + i % 2], 'user',
                   'u' || (i % 50), '{day}'::timestamptz + i * interval '1 minute'
            FROM generate_series(0, 199) i""")
    # The online way for a large database: one partition's index built beforehand, concurrently.
    yesterday = f"events_p{days[0]:%Y%m%d}"
    for name, definition in [("ts_brin", 'USING brin ("timestamp") WITH (autosummarize = on)'),
                             ("type", "(event_type)"), ("unit", "(unit_id)")]:
        psql(scratch_db, "-c",
             f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {yesterday}_{name} ON exp.{yesterday} {definition}")

    apply(scratch_db, next(m for m in MIGRATIONS if m.name.startswith("V14__")))

    for name in OLD:
        assert psql(scratch_db, "-c", f"SELECT to_regclass('exp.{name}') IS NULL") == "t", name
    # A partition made after the migration gets the new indexes like the others.
    psql(scratch_db, "-c", f"SELECT exp.ensure_day_partition('{today + dt.timedelta(days=1)}')")
    partitions = psql(scratch_db, "-c", """
        SELECT c.relname FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid
        WHERE h.inhparent = 'exp.events'::regclass ORDER BY 1""").splitlines()
    assert len(partitions) == 4  # the default and three days
    for name, method in NEW.items():
        assert psql(scratch_db, "-c", f"""
            SELECT a.amname FROM pg_class c JOIN pg_am a ON a.oid = c.relam
            WHERE c.oid = 'exp.{name}'::regclass""") == method
        attached = partition_indexes(scratch_db, name)
        assert [a.split(":")[0] for a in attached] == partitions, name
    # Every partition's GIN has the short pending list.
    assert psql(scratch_db, "-c", """
        SELECT DISTINCT array_to_string(c.reloptions, ',') FROM pg_inherits h
        JOIN pg_class c ON c.oid = h.inhrelid
        WHERE h.inhparent = 'exp.events_experiments_idx'::regclass""") == "gin_pending_list_limit=64"
    for parent, name in [("events_timestamp_brin", "ts_brin"), ("events_type_idx", "type"),
                         ("events_unit_id_idx", "unit")]:
        assert f"{yesterday}:{yesterday}_{name}" in partition_indexes(scratch_db, parent)
    # The partition with the prebuilt indexes holds no second one: its primary key, the GIN
    # and the received_at BRIN V14 kept or made, and the three prebuilt.
    assert psql(scratch_db, "-c", f"SELECT count(*) FROM pg_index WHERE indrelid = 'exp.{yesterday}'::regclass") == "6"

    # The readers' queries go through the new indexes.
    psql(scratch_db, "-c", "ANALYZE exp.events")
    by_unit = plan(scratch_db, "SELECT * FROM exp.events WHERE unit_id = 'u7' AND unit_type = 'user'")
    assert "Seq Scan" not in by_unit and "unit_id_idx" in by_unit and f"{yesterday}_unit" in by_unit, by_unit
    # On so few rows the primary key (event_id, "timestamp") also serves a window; without it
    # (in a rolled-back transaction) the BRIN does.
    window = psql(scratch_db, "-c", f"""BEGIN; ALTER TABLE exp.events DROP CONSTRAINT events_pkey;
        SET LOCAL enable_seqscan = off; EXPLAIN (COSTS OFF) SELECT event_id FROM exp.events
        WHERE "timestamp" >= '{today}' AND "timestamp" < '{today}'::timestamptz + interval '1 hour';
        ROLLBACK""")
    assert "Seq Scan" not in window and "timestamp_idx" in window, window
    by_type = plan(scratch_db, "SELECT count(*) FROM exp.events WHERE event_type = 'meal_swapped'")
    assert "Seq Scan" not in by_type and "event_type_idx" in by_type, by_type
    assert psql(scratch_db, "-c", "SELECT count(*) FROM exp.events") == "400"
