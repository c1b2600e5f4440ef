-- Retention that never stalls ingest and never drops a pending event (issue: retention).
--
-- Until now exp.drop_expired_partitions checked a day for pending hand-offs, then dropped it
-- with no lock timeout. DROP TABLE of a partition takes ACCESS EXCLUSIVE on exp.events: behind
-- any long reader it waited, and every insert queued behind it. And an event (with its
-- pending row) committed between the check and the drop was dropped with its hand-off pending.
--
-- Now, per expired day, in a subtransaction: the lock on exp.events is taken first, with
-- `lock_timeout_ms` (a day whose lock is not granted in time is reported 'locked' and tried
-- again by the next run; the waiting request is withdrawn, so the inserts queued behind it go
-- on); the day's partition is then locked NOWAIT (a reader of the partition itself makes the
-- day 'locked' at once rather than holding exp.events meanwhile). Only then is the day checked
-- for pending keys: every insert (which holds exp.events until its commit, and writes its
-- pending row in the same statement) and every requeue (which reads exp.events) has finished
-- by then, and none can start, so the check and the drop see the same pending keys.
--
-- The work that can take long is kept out of that lock: the ids of dropped days are
-- forgotten by the next call, before any lock on exp.events is asked for (until then a
-- resend of such an old id is answered as a duplicate, as it was before the drop). The
-- pending check reads the index below, not every pending key.
-- (DETACH PARTITION ... CONCURRENTLY is no way out: it is refused while exp.events has a
-- default partition, and cannot run in a transaction block.)

-- The earliest timestamp a pending row holds: indexed, so that the check for one old day
-- reads only the rows that hold an event that old (normally none), whatever the backlog.
CREATE FUNCTION exp.earliest(timestamptz[]) RETURNS timestamptz
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS 'SELECT pg_catalog.min(t) FROM pg_catalog.unnest($1) AS t';

CREATE INDEX pending_handoffs_earliest_idx ON exp.pending_handoffs (exp.earliest(timestamps));

-- The return type changes: the old function goes (with its grants), the new one is granted
-- below as V4 did.
DROP FUNCTION exp.drop_expired_partitions(integer, timestamptz);

-- Retention: for each day partition wholly before (at's UTC day - keep_days), oldest first,
-- one row (partition_name, outcome): 'dropped', 'pending' (holds an event not yet archived: kept
-- until the sweep has archived it) or 'locked' (the lock was not granted in time: kept, tried
-- again next call). Also deletes the default partition's rows that old and not pending, and
-- the ids of events no longer stored.
CREATE FUNCTION exp.drop_expired_partitions(
    keep_days integer,
    at timestamptz DEFAULT now(),
    lock_timeout_ms integer DEFAULT 1000
) RETURNS TABLE (partition_name text, outcome text)
LANGUAGE plpgsql AS $$
DECLARE
    cutoff date := (at AT TIME ZONE 'UTC')::date - keep_days;
    cutoff_ts timestamptz := cutoff::timestamp AT TIME ZONE 'UTC';
    part record;
    lo timestamptz;
    pending boolean;
    caller_lock_timeout text := current_setting('lock_timeout');
BEGIN
    IF keep_days < 1 THEN
        RAISE EXCEPTION 'keep_days must be at least 1, got %', keep_days;
    END IF;
    IF lock_timeout_ms < 1 THEN
        RAISE EXCEPTION 'lock_timeout_ms must be at least 1, got %', lock_timeout_ms;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('exp.events partitions'));

    -- Ids whose event is gone: those of the days dropped by earlier calls (and of default rows
    -- deleted below, next call). Before any strong lock: this may be a day's worth of ids.
    DELETE FROM exp.event_ids i
    WHERE i."timestamp" < cutoff_ts
      AND NOT EXISTS (SELECT 1 FROM exp.events e
                      WHERE e.event_id = i.event_id AND e."timestamp" = i."timestamp");

    -- The default partition's old rows, except pending ones: one statement, one snapshot, in
    -- which an event and its pending row (written by one statement) are both seen or neither.
    DELETE FROM exp.events_default d
    WHERE d."timestamp" < cutoff_ts
      AND NOT EXISTS (
          SELECT 1 FROM exp.pending_handoffs p, unnest(p.event_ids, p.timestamps) k(id, ts)
          WHERE exp.earliest(p.timestamps) <= d."timestamp"
            AND k.id = d.event_id AND k.ts = d."timestamp");

    PERFORM set_config('lock_timeout', lock_timeout_ms || 'ms', true);
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
        partition_name := part.relname;
        BEGIN
            -- The parent first, as DROP TABLE and every insert do (no lock-order deadlock).
            LOCK TABLE exp.events IN ACCESS EXCLUSIVE MODE;
            EXECUTE format('LOCK TABLE exp.%I IN ACCESS EXCLUSIVE MODE NOWAIT', part.relname);
            SELECT EXISTS (
                SELECT 1 FROM exp.pending_handoffs p, unnest(p.timestamps) t
                WHERE exp.earliest(p.timestamps) < lo + interval '1 day'
                  AND t >= lo AND t < lo + interval '1 day'
            ) INTO pending;
            IF pending THEN
                outcome := 'pending';
            ELSE
                EXECUTE format('DROP TABLE exp.%I', part.relname);
                outcome := 'dropped';
            END IF;
        EXCEPTION WHEN lock_not_available THEN
            -- The subtransaction's locks and its waiting request are gone with it.
            outcome := 'locked';
        END;
        RETURN NEXT;
    END LOOP;
    PERFORM set_config('lock_timeout', caller_lock_timeout, true);
END $$;

-- As V4: owned by eis_migrator, run with its rights and a fixed search_path, executable by
-- the application only.
ALTER FUNCTION exp.earliest(timestamptz[]) OWNER TO eis_migrator;
ALTER FUNCTION exp.drop_expired_partitions(integer, timestamptz, integer) OWNER TO eis_migrator;
ALTER FUNCTION exp.drop_expired_partitions(integer, timestamptz, integer)
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION exp.drop_expired_partitions(integer, timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION exp.drop_expired_partitions(integer, timestamptz, integer) TO eis_app;
