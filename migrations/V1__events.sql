-- exp.events: every accepted event, kept 90 days (retention drops whole day partitions).
CREATE SCHEMA IF NOT EXISTS exp;

CREATE TABLE exp.events (
    event_id      uuid        NOT NULL,
    event_type    text        NOT NULL,
    unit_type     text        NOT NULL,
    unit_id       text        NOT NULL,
    experiments   jsonb       NOT NULL DEFAULT '[]',
    context       jsonb       NOT NULL DEFAULT '{}',
    metrics       jsonb       NOT NULL DEFAULT '{}',
    payload       jsonb       NOT NULL DEFAULT '{}',
    "timestamp"   timestamptz NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    flags         text[]      NOT NULL DEFAULT '{}',
    -- Set once SQS has confirmed the event for archival. NULL means the archiver's sweep
    -- must pick it up (the publish failed, or the function died between commit and publish).
    handed_off_at timestamptz,
    -- A client retry with the same event_id is stored once.
    PRIMARY KEY (event_id, "timestamp")
) PARTITION BY RANGE ("timestamp");

-- Catches whatever no day partition covers (very old or far-range timestamps), so that no
-- insert ever fails for want of a partition. exp.ensure_day_partition moves rows out of it.
CREATE TABLE exp.events_default PARTITION OF exp.events DEFAULT;

-- What the downstream consumers query: by time, by event type and time, by experiment.
CREATE INDEX events_timestamp_idx ON exp.events ("timestamp");
CREATE INDEX events_type_timestamp_idx ON exp.events (event_type, "timestamp");
CREATE INDEX events_experiments_idx ON exp.events USING gin (experiments jsonb_path_ops);
-- The archiver's sweep: events not yet handed to SQS, oldest first.
CREATE INDEX events_not_handed_off_idx ON exp.events (received_at) WHERE handed_off_at IS NULL;

-- Creates the partition of one UTC day (exp.events_pYYYYMMDD) unless it exists; returns
-- whether it did. Rows of that day already in the default partition are moved into it first
-- (ATTACH would otherwise fail). Serialised by an advisory lock: safe to run concurrently.
CREATE FUNCTION exp.ensure_day_partition(day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    part text := format('events_p%s', to_char(day, 'YYYYMMDD'));
    lo timestamptz := day::timestamp AT TIME ZONE 'UTC';
    hi timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('exp.events partitions'));
    IF to_regclass(format('exp.%I', part)) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE exp.%I (LIKE exp.events INCLUDING DEFAULTS)', part);
    EXECUTE format(
        'WITH moved AS (DELETE FROM exp.events_default WHERE "timestamp" >= $1 AND "timestamp" < $2 RETURNING *)
         INSERT INTO exp.%I SELECT * FROM moved', part) USING lo, hi;
    EXECUTE format('ALTER TABLE exp.events ATTACH PARTITION exp.%I FOR VALUES FROM (%L) TO (%L)',
        part, lo, hi);
    RETURN true;
END $$;

-- Retention: drops the day partitions that lie wholly before (today - keep_days) and deletes
-- such rows from the default partition. Never drops an event that has not been handed to the
-- archive yet: a partition holding one is kept until the sweep has archived it.
-- Returns the names of the dropped partitions.
CREATE FUNCTION exp.drop_expired_partitions(keep_days integer, at timestamptz DEFAULT now())
RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    cutoff date := (at AT TIME ZONE 'UTC')::date - keep_days;
    part record;
    pending boolean;
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
        EXECUTE format('DROP TABLE exp.%I', part.relname);
        RETURN NEXT part.relname;
    END LOOP;
    DELETE FROM exp.events_default
    WHERE "timestamp" < cutoff::timestamp AT TIME ZONE 'UTC' AND handed_off_at IS NOT NULL;
END $$;
