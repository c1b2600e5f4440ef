-- The hand-off to the archive without rewriting events (issue 14). Until V4 every stored row
-- was updated once more to set handed_off_at, and since a partial index depended on that
-- column the update was not HOT: each row and all its index entries were written twice.
-- Now the request that stores events also records their keys in one row here, in the same
-- statement; once SQS has confirmed them the row is deleted (one row per request, not per
-- event). A row still here after the sweep's grace period names events whose publish failed
-- or whose function died before publishing: the archiver's sweep archives them and settles
-- the row. Rows are few (requests in flight) except while SQS is down.
CREATE TABLE exp.pending_handoffs (
    id            bigint        GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at   timestamptz   NOT NULL DEFAULT now(),
    -- The keys of exp.events (event_id, "timestamp"), as two arrays of equal length.
    event_ids     uuid[]        NOT NULL,
    timestamps    timestamptz[] NOT NULL,
    -- Set by the sweep that took the row: concurrent archiver runs take disjoint rows, and a
    -- run that dies leaves its rows to the next one once this has passed.
    claimed_until timestamptz,
    CHECK (cardinality(event_ids) = cardinality(timestamps) AND cardinality(event_ids) > 0)
);
-- The sweep: oldest first.
CREATE INDEX pending_handoffs_received_idx ON exp.pending_handoffs (received_at, id);

-- Events not handed off so far become one pending row.
INSERT INTO exp.pending_handoffs (received_at, event_ids, timestamps)
SELECT min(received_at), array_agg(event_id), array_agg("timestamp")
FROM exp.events
WHERE handed_off_at IS NULL
HAVING count(*) > 0;

DROP INDEX exp.events_not_handed_off_idx;

-- Retention as in V2, with "not handed off" read from exp.pending_handoffs.
CREATE OR REPLACE FUNCTION exp.drop_expired_partitions(keep_days integer, at timestamptz DEFAULT now())
RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    cutoff date := (at AT TIME ZONE 'UTC')::date - keep_days;
    part record;
    pending boolean;
    lo timestamptz;
BEGIN
    IF keep_days < 1 THEN
        RAISE EXCEPTION 'keep_days must be at least 1, got %', keep_days;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('exp.events partitions'));
    FOR part IN
        SELECT c.relname
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'exp.events'::regclass
          AND c.relname ~ '^events_p[0-9]{8}$'
          AND to_date(substr(c.relname, 9), 'YYYYMMDD') < cutoff
        ORDER BY c.relname
    LOOP
        lo := to_date(substr(part.relname, 9), 'YYYYMMDD')::timestamp AT TIME ZONE 'UTC';
        SELECT EXISTS (
            SELECT 1 FROM exp.pending_handoffs p, unnest(p.timestamps) t
            WHERE t >= lo AND t < lo + interval '1 day'
        ) INTO pending;
        CONTINUE WHEN pending;
        EXECUTE format('DROP TABLE exp.%I', part.relname);
        DELETE FROM exp.event_ids WHERE "timestamp" >= lo AND "timestamp" < lo + interval '1 day';
        RETURN NEXT part.relname;
    END LOOP;
    WITH gone AS (
        DELETE FROM exp.events_default d
        WHERE d."timestamp" < cutoff::timestamp AT TIME ZONE 'UTC'
          AND NOT EXISTS (
              SELECT 1 FROM exp.pending_handoffs p, unnest(p.event_ids, p.timestamps) k(id, ts)
              WHERE k.id = d.event_id AND k.ts = d."timestamp")
        RETURNING event_id
    )
    DELETE FROM exp.event_ids i USING gone WHERE i.event_id = gone.event_id;
END $$;
-- CREATE OR REPLACE keeps the owner and the grants but resets V4's SECURITY DEFINER and
-- search_path: set again.
ALTER FUNCTION exp.drop_expired_partitions(integer, timestamptz) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

ALTER TABLE exp.events DROP COLUMN handed_off_at;

-- Owned like everything else in exp (V4), whoever runs the migration.
ALTER TABLE exp.pending_handoffs OWNER TO eis_migrator;
-- The application's rights (V4's default privileges gave SELECT, INSERT): the ingest deletes
-- its row once SQS confirmed; the sweep claims (UPDATE) and settles rows.
GRANT UPDATE, DELETE ON exp.pending_handoffs TO eis_app;
