-- exp.event_ids: an event's identity is its event_id alone, for as long as exp.events holds
-- the event. exp.events is partitioned by "timestamp", so it cannot enforce a unique
-- event_id by itself; this table does, and is claimed in the same statement that inserts the
-- event (a resend waits on the first writer's lock, then sees its row: race-free).
-- `digest` is the contract's content digest (eis_contract::content_digest): equal digests
-- mean a faithful retry, different ones an event_id_conflict. Rows that predate this table
-- get an empty digest: their body is unknown, so a resend of one counts as a retry.
CREATE TABLE exp.event_ids (
    event_id    uuid        PRIMARY KEY,
    "timestamp" timestamptz NOT NULL,
    digest      bytea       NOT NULL
);
-- Retention deletes by "timestamp"; ids arrive roughly in time order, so BRIN is enough and
-- costs next to nothing per insert.
CREATE INDEX event_ids_timestamp_idx ON exp.event_ids USING brin ("timestamp");

-- Existing events: the earliest received copy of each id is the one kept.
INSERT INTO exp.event_ids (event_id, "timestamp", digest)
SELECT DISTINCT ON (event_id) event_id, "timestamp", '\x'::bytea
FROM exp.events
ORDER BY event_id, received_at, "timestamp";

-- Retention as in V1, with the ids following their events: an id is forgotten exactly when
-- its event is dropped.
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
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM exp.%I WHERE handed_off_at IS NULL)', part.relname)
            INTO pending;
        CONTINUE WHEN pending;
        lo := to_date(substr(part.relname, 9), 'YYYYMMDD')::timestamp AT TIME ZONE 'UTC';
        EXECUTE format('DROP TABLE exp.%I', part.relname);
        DELETE FROM exp.event_ids WHERE "timestamp" >= lo AND "timestamp" < lo + interval '1 day';
        RETURN NEXT part.relname;
    END LOOP;
    WITH gone AS (
        DELETE FROM exp.events_default
        WHERE "timestamp" < cutoff::timestamp AT TIME ZONE 'UTC' AND handed_off_at IS NOT NULL
        RETURNING event_id
    )
    DELETE FROM exp.event_ids i USING gone WHERE i.event_id = gone.event_id;
END $$;
