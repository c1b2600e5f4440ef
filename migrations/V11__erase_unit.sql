-- Erasure's PostgreSQL step (issue 27, docs/privacy.md; the requests and tombstones are V10's):
-- exp.erase_unit removes one unit's covered events from every table of exp and takes their
-- contributions out of the health job's rollups, in the caller's transaction.
--
-- An event of the unit is covered when p_suppress, or it was received or timestamped before
-- p_erased_at. Everything is found from the unit: its events through events_unit_idx (V7), its
-- assignments through assignments_unit_idx, the rollup rows by their keys. No statement reads
-- exp.events, exp.event_ids, exp.assignments or a rollup table beyond the unit's rows and keys,
-- except where said below.
--
-- The rollups end as the health job (shared/store/src/health/count.rs) would have counted them
-- had the covered events never existed. The job counts an event (received before the watermark
-- exp.health_progress.processed_to) for each variant the unit was exposed to at or before it,
-- on days from the retention floor (today - keep_days) on; the result is that rule applied to
-- the counted events and the final assignments (docs/health.md, "Cost"). Removing events only
-- removes contributions: the unit's remaining events are a subset, its first exposures can only
-- move later or go, so the remaining contributions are a subset of the old ones. The function
-- therefore computes the unit's old contributions (its counted events, covered or not, with its
-- assignments as they are) and the new ones (its remaining counted events with its assignments
-- as they become), and subtracts exactly the difference. Keys the unit does not lose anything
-- in are not written.
--
-- Exact: exp.assignments (the unit's rows), exp.variant_daily_units and exp.variant_daily
-- (events, units), exp.variant_daily_metrics (count, sum, mean, p50, p95),
-- exp.variant_daily_metric_buckets (count, lo, hi), exp.context_hourly (events,
-- without_context). The bucket extremes and the sum's scale need the other values of their key:
-- - a bucket that keeps values but lost its smallest or largest one (the unit's) gets lo/hi
--   re-read from the values of its key: the key's units (exp.variant_daily_units, by its primary
--   key), their assignment, their events of that day (events_unit_idx). That costs the key's
--   units' events of one day, and is done only for such buckets;
-- - the mean is sum / count with numeric division, whose precision follows the sum's display
--   scale (the most decimals of any value added) once that exceeds about 16 significant digits.
--   When the unit's values may have held the most decimals (the sum now ends in zeros there),
--   and either the mean would differ at a smaller scale or that scale is above 12 decimals, the
--   sum is re-read from the key's values the same way. Otherwise the stored sum may keep
--   trailing zeros of the unit's decimals: the same value, and the mean stored now is the value
--   the job would have; only a later mean of a key above 10^8 could differ, beyond its 16th
--   significant digit.
-- A re-read is applied only if it finds the key's count (and each bucket's count) as stored;
-- otherwise (the key's other events are gone: retention dropped them, or their experiment's
-- assignments aged out) lo/hi and the sum are left as they are: lo/hi then still bound the
-- bucket's values, and p50/p95 stay within the documented error.
--
-- Not changed:
-- - rollup rows of days before the floor: the job never changes them and their events are gone
--   (docs/health.md, "Bounds"). The unit's exp.variant_daily_units rows of those days, which name
--   it, are deleted (they are only kept until the job ages them out, and nothing reads them);
-- - contributions to experiments whose assignments have aged out (no exposure in retention):
--   without the unit's assignment they cannot be attributed; they age out with their days;
-- - events and exposures that retention already dropped: their counts cannot be read, and all
--   of them are covered when p_erased_at is after the floor, as it is for any request;
-- - exp.experiment_health and exp.variant_health: the next health run rewrites them.
--
-- p_keep_days must be the health job's EIS_RETENTION_DAYS: the floor decides which days hold
-- the unit's contributions. The function takes the health job's lock, so no window is counted
-- or aged meanwhile (a running one is waited for; the job's next run finds the lock taken until
-- the caller commits and says busy).
--
-- Returns what it removed: {"events", "event_ids", "pending_keys" (keys taken out of
-- exp.pending_handoffs), "assignments" (rows deleted), "rollup_days" ((experiment, day) pairs
-- whose rollups changed), "context_hours" (exp.context_hourly rows changed)}. A second call for
-- the same unit finds nothing covered and returns zeros.

-- p50/p95 of the given metric keys (arrays of equal length: day, experiment, variant, event type,
-- metric), from those keys' buckets only: V7's statement, now shared by the job
-- (exp.health_add_counted) and exp.erase_unit. Keys without a row are skipped.
CREATE FUNCTION exp.health_update_quantiles(
    p_day date[], p_experiment text[], p_variant text[], p_event_type text[], p_metric text[]
) RETURNS void
LANGUAGE sql AS $$
    -- The value at a rank (0-based) of a key: its bucket's smallest value for the bucket's
    -- first rank, its largest for the last, else the bucket's value within those; then
    -- percentile_cont's interpolation between the two closest ranks.
    WITH keys AS (
        SELECT DISTINCT day, experiment_id, variant_id, event_type, metric
        FROM unnest(p_day, p_experiment, p_variant, p_event_type, p_metric)
             AS k(day, experiment_id, variant_id, event_type, metric)
    ), ranked AS (
        -- The total is the buckets' own (not the row's count), so every rank has a bucket.
        SELECT b.day, b.experiment_id, b.variant_id, b.event_type, b.metric, b.bucket, b.count AS n,
               b.lo, b.hi,
               sum(b.count) OVER (PARTITION BY b.day, b.experiment_id, b.variant_id, b.event_type, b.metric)
                   AS total,
               sum(b.count) OVER (PARTITION BY b.day, b.experiment_id, b.variant_id, b.event_type, b.metric
                                  ORDER BY b.bucket) - b.count AS before
        FROM keys k
        JOIN exp.variant_daily_metric_buckets b USING (day, experiment_id, variant_id, event_type, metric)
    ), at_rank AS (
        SELECT r.day, r.experiment_id, r.variant_id, r.event_type, r.metric, q.p, q.pos, x.upper,
               CASE WHEN x.rank = r.before THEN r.lo
                    WHEN x.rank = r.before + r.n - 1 THEN r.hi
                    ELSE least(r.hi, greatest(r.lo, exp.metric_bucket_value(r.bucket))) END AS value
        FROM ranked r
        CROSS JOIN LATERAL (SELECT p, p * (r.total - 1) AS pos FROM unnest('{0.5,0.95}'::float8[]) p) q
        CROSS JOIN LATERAL (VALUES (floor(q.pos), false), (ceil(q.pos), true)) x(rank, upper)
        WHERE x.rank >= r.before AND x.rank < r.before + r.n
    ), quantiles AS (
        SELECT day, experiment_id, variant_id, event_type, metric, p,
               lower + (upper - lower) * (pos - floor(pos)) AS value
        FROM (SELECT day, experiment_id, variant_id, event_type, metric, p, pos,
                     max(value) FILTER (WHERE NOT upper) AS lower, max(value) FILTER (WHERE upper) AS upper
              FROM at_rank GROUP BY 1, 2, 3, 4, 5, 6, 7) s
    )
    UPDATE exp.variant_daily_metrics m
    SET p50 = coalesce(q50.value, m.p50), p95 = coalesce(q95.value, m.p95)
    FROM quantiles q50, quantiles q95
    WHERE q50.p = 0.5 AND q95.p = 0.95
      AND (q50.day, q50.experiment_id, q50.variant_id, q50.event_type, q50.metric)
        = (q95.day, q95.experiment_id, q95.variant_id, q95.event_type, q95.metric)
      AND (m.day, m.experiment_id, m.variant_id, m.event_type, m.metric)
        = (q50.day, q50.experiment_id, q50.variant_id, q50.event_type, q50.metric);
$$;

-- V7's function with its quantile statement moved to exp.health_update_quantiles; otherwise
-- unchanged (CREATE OR REPLACE keeps its owner and grants).
CREATE OR REPLACE FUNCTION exp.health_add_counted() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    changed bigint;
BEGIN
    WITH new_units AS (
        INSERT INTO exp.variant_daily_units
        SELECT DISTINCT day, experiment_id, variant_id, event_type, unit_type, unit_id
        FROM health_counted
        ON CONFLICT DO NOTHING
        RETURNING day, experiment_id, variant_id, event_type
    ), units AS (
        SELECT day, experiment_id, variant_id, event_type, count(*) AS n FROM new_units GROUP BY 1, 2, 3, 4
    ), events AS (
        SELECT day, experiment_id, variant_id, event_type, count(*) AS n FROM health_counted GROUP BY 1, 2, 3, 4
    )
    INSERT INTO exp.variant_daily AS v (experiment_id, variant_id, day, event_type, events, units)
    SELECT e.experiment_id, e.variant_id, e.day, e.event_type, e.n, coalesce(u.n, 0)
    FROM events e LEFT JOIN units u USING (day, experiment_id, variant_id, event_type)
    ON CONFLICT (experiment_id, day, variant_id, event_type) DO UPDATE
    SET events = v.events + EXCLUDED.events, units = v.units + EXCLUDED.units;

    -- Numbers a double cannot hold (beyond about 1e308, or non-zero below 1e-307) are left out.
    CREATE TEMP TABLE health_values ON COMMIT DROP AS
    SELECT c.day, c.experiment_id, c.variant_id, c.event_type, m.key AS metric,
           m.value::numeric AS exact, m.value::numeric::float8 AS value
    FROM health_counted c, jsonb_each(c.metrics) m
    WHERE jsonb_typeof(m.value) = 'number'
      AND (m.value::numeric = 0 OR abs(m.value::numeric) BETWEEN 1e-307 AND 1e308);

    INSERT INTO exp.variant_daily_metric_buckets AS b
    SELECT day, experiment_id, variant_id, event_type, metric, exp.metric_bucket(value),
           count(*), min(value), max(value)
    FROM health_values GROUP BY 1, 2, 3, 4, 5, 6
    ON CONFLICT (day, experiment_id, variant_id, event_type, metric, bucket) DO UPDATE
    SET count = b.count + EXCLUDED.count, lo = least(b.lo, EXCLUDED.lo), hi = greatest(b.hi, EXCLUDED.hi);

    INSERT INTO exp.variant_daily_metrics AS m
        (experiment_id, variant_id, day, event_type, metric, count, sum, mean, p50, p95)
    SELECT experiment_id, variant_id, day, event_type, metric, count(*), sum(exact),
           sum(exact) / count(*), 0, 0
    FROM health_values GROUP BY 1, 2, 3, 4, 5
    ON CONFLICT (experiment_id, day, variant_id, event_type, metric) DO UPDATE
    SET count = m.count + EXCLUDED.count, sum = m.sum + EXCLUDED.sum,
        mean = (m.sum + EXCLUDED.sum) / (m.count + EXCLUDED.count);

    PERFORM exp.health_update_quantiles(array_agg(day), array_agg(experiment_id),
                                        array_agg(variant_id), array_agg(event_type), array_agg(metric))
    FROM (SELECT DISTINCT day, experiment_id, variant_id, event_type, metric FROM health_values) k;

    DROP TABLE health_values;
    SELECT count(*) INTO changed FROM (SELECT DISTINCT experiment_id, day FROM health_counted) d;
    RETURN changed;
END $$;

CREATE FUNCTION exp.erase_unit(
    p_unit_type text,
    p_unit_id text,
    p_erased_at timestamptz,
    p_suppress boolean,
    p_keep_days integer
) RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_processed_to timestamptz;
    v_floor timestamptz;
    n_events bigint := 0;
    n_event_ids bigint := 0;
    n_pending_keys bigint := 0;
    n_assignments bigint := 0;
    n_rollup_days bigint := 0;
    n_context_hours bigint := 0;
    rk record;
    day_lo timestamptz;
BEGIN
    IF p_unit_type IS NULL OR p_unit_id IS NULL OR p_erased_at IS NULL OR p_suppress IS NULL
       OR p_keep_days IS NULL THEN
        RAISE EXCEPTION 'exp.erase_unit: no argument may be NULL';
    END IF;
    IF p_keep_days < 1 THEN
        RAISE EXCEPTION 'keep_days must be at least 1, got %', p_keep_days;
    END IF;
    -- The health job's lock (shared/store/src/health/mod.rs): the watermark read here and the
    -- counts changed below are not moved by a window meanwhile.
    PERFORM pg_advisory_xact_lock(hashtext('exp.health'));
    SELECT h.processed_to INTO v_processed_to FROM exp.health_progress h;
    -- count.rs's FLOOR.
    v_floor := ((now() AT TIME ZONE 'UTC')::date - p_keep_days)::timestamp AT TIME ZONE 'UTC';

    -- The covered events, deleted; `counted`: the job has counted them.
    CREATE TEMP TABLE erase_gone (
        event_id    uuid,
        ts          timestamptz,
        event_type  text,
        experiments jsonb,
        metrics     jsonb,
        counted     boolean
    ) ON COMMIT DROP;
    WITH gone AS (
        DELETE FROM exp.events
        WHERE unit_id = p_unit_id AND unit_type = p_unit_type
          AND (p_suppress OR received_at < p_erased_at OR "timestamp" < p_erased_at)
        RETURNING event_id, "timestamp", received_at, event_type, experiments, metrics
    )
    INSERT INTO pg_temp.erase_gone
    SELECT event_id, "timestamp", event_type, experiments, metrics,
           coalesce(received_at < v_processed_to, false)
    FROM gone;
    GET DIAGNOSTICS n_events = ROW_COUNT;
    IF n_events = 0 THEN
        DROP TABLE pg_temp.erase_gone;
        RETURN jsonb_build_object('events', 0, 'event_ids', 0, 'pending_keys', 0,
                                  'assignments', 0, 'rollup_days', 0, 'context_hours', 0);
    END IF;
    ANALYZE pg_temp.erase_gone;

    DELETE FROM exp.event_ids
    WHERE event_id = ANY (ARRAY(SELECT event_id FROM pg_temp.erase_gone));
    GET DIAGNOSTICS n_event_ids = ROW_COUNT;

    -- Their keys in exp.pending_handoffs (a small table: requests in flight), as the store's
    -- SETTLE does; the rows are locked first, so that no one changes their keys meanwhile.
    PERFORM 1 FROM exp.pending_handoffs p
    WHERE p.event_ids && ARRAY(SELECT event_id FROM pg_temp.erase_gone)
    FOR UPDATE;
    WITH rest AS (
        SELECT p.id,
               array_agg(k.id ORDER BY k.n) FILTER (WHERE g.event_id IS NULL) AS ids,
               array_agg(k.ts ORDER BY k.n) FILTER (WHERE g.event_id IS NULL) AS tss,
               count(g.event_id) AS removed
        FROM exp.pending_handoffs p
        CROSS JOIN LATERAL unnest(p.event_ids, p.timestamps) WITH ORDINALITY AS k(id, ts, n)
        LEFT JOIN pg_temp.erase_gone g ON g.event_id = k.id AND g.ts = k.ts
        WHERE p.event_ids && ARRAY(SELECT event_id FROM pg_temp.erase_gone)
        GROUP BY p.id
        HAVING count(g.event_id) > 0
    ), kept AS (
        UPDATE exp.pending_handoffs p SET event_ids = rest.ids, timestamps = rest.tss
        FROM rest WHERE p.id = rest.id AND rest.ids IS NOT NULL
    ), emptied AS (
        DELETE FROM exp.pending_handoffs p USING rest WHERE p.id = rest.id AND rest.ids IS NULL
    )
    SELECT coalesce(sum(removed), 0) INTO n_pending_keys FROM rest;

    -- exp.context_hourly counts every counted event by the hour of its timestamp (no floor).
    WITH hours AS (
        SELECT date_trunc('hour', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour, count(*) AS n,
               count(*) FILTER (WHERE experiments = '[]'::jsonb) AS without_context
        FROM pg_temp.erase_gone WHERE counted GROUP BY 1
    )
    UPDATE exp.context_hourly c
    SET events = c.events - h.n, without_context = c.without_context - h.without_context
    FROM hours h WHERE c.hour = h.hour;
    GET DIAGNOSTICS n_context_hours = ROW_COUNT;
    DELETE FROM exp.context_hourly
    WHERE events = 0
      AND hour = ANY (ARRAY(SELECT DISTINCT date_trunc('hour', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                            FROM pg_temp.erase_gone WHERE counted));

    -- The unit's remaining counted events.
    CREATE TEMP TABLE erase_kept ON COMMIT DROP AS
    SELECT "timestamp" AS ts, event_type, experiments, metrics
    FROM exp.events
    WHERE unit_id = p_unit_id AND unit_type = p_unit_type AND received_at < v_processed_to;
    ANALYZE pg_temp.erase_kept;

    -- The unit's assignments as they are, and as they become: the covered exposures (as the
    -- job's EXPOSURES counts them) come off `events`; a first or last exposure that was covered
    -- is re-read from the remaining ones; a row left with no exposure goes.
    CREATE TEMP TABLE erase_assignments ON COMMIT DROP AS
    WITH gone AS (
        SELECT x ->> 'experiment_id' AS experiment_id, x ->> 'variant_id' AS variant_id,
               count(*) AS n, min(g.ts) AS first_at, max(g.ts) AS last_at
        FROM pg_temp.erase_gone g, jsonb_array_elements(g.experiments) x
        WHERE g.counted
        GROUP BY 1, 2
    ), kept AS (
        SELECT x ->> 'experiment_id' AS experiment_id, x ->> 'variant_id' AS variant_id,
               min(k.ts) AS first_at, max(k.ts) AS last_at
        FROM pg_temp.erase_kept k, jsonb_array_elements(k.experiments) x
        GROUP BY 1, 2
    )
    SELECT a.experiment_id, a.variant_id, a.first_exposure_at AS old_first,
           g.n IS NOT NULL AS changed,
           a.events - coalesce(g.n, 0) AS events,
           CASE WHEN g.n IS NULL OR g.first_at > a.first_exposure_at THEN a.first_exposure_at
                ELSE coalesce(k.first_at, a.first_exposure_at) END AS first_at,
           CASE WHEN g.n IS NULL OR g.last_at < a.last_exposure_at THEN a.last_exposure_at
                ELSE coalesce(k.last_at, a.last_exposure_at) END AS last_at
    FROM exp.assignments a
    LEFT JOIN gone g USING (experiment_id, variant_id)
    LEFT JOIN kept k USING (experiment_id, variant_id)
    WHERE a.unit_type = p_unit_type AND a.unit_id = p_unit_id;

    -- The unit's contributions to the rollups (count.rs's COUNTED rule, days from the floor on),
    -- each marked `removed` unless it also counts with the remaining events and assignments.
    CREATE TEMP TABLE erase_contributions ON COMMIT DROP AS
    SELECT a.experiment_id, a.variant_id, (e.ts AT TIME ZONE 'UTC')::date AS day, e.event_type,
           e.metrics, e.gone OR a.events <= 0 OR a.first_at > e.ts AS removed
    FROM (SELECT ts, event_type, experiments, metrics, true AS gone
          FROM pg_temp.erase_gone WHERE counted
          UNION ALL
          SELECT ts, event_type, experiments, metrics, false FROM pg_temp.erase_kept) e
    JOIN pg_temp.erase_assignments a ON a.old_first <= e.ts
    WHERE e.ts >= v_floor
      AND (NOT e.experiments @> jsonb_build_array(jsonb_build_object('experiment_id', a.experiment_id))
           OR e.experiments @> jsonb_build_array(
                  jsonb_build_object('experiment_id', a.experiment_id, 'variant_id', a.variant_id)));

    -- Per rollup key that loses something: the events it loses, and whether the unit leaves it.
    CREATE TEMP TABLE erase_keys ON COMMIT DROP AS
    SELECT day, experiment_id, variant_id, event_type,
           count(*) FILTER (WHERE removed) AS events, bool_and(removed) AS unit_leaves
    FROM pg_temp.erase_contributions
    GROUP BY 1, 2, 3, 4
    HAVING bool_or(removed);
    ANALYZE pg_temp.erase_keys;
    SELECT count(*) INTO n_rollup_days FROM (SELECT DISTINCT experiment_id, day FROM pg_temp.erase_keys) d;

    WITH left_units AS (
        DELETE FROM exp.variant_daily_units u USING pg_temp.erase_keys k
        WHERE k.unit_leaves
          AND (u.day, u.experiment_id, u.variant_id, u.event_type, u.unit_type, u.unit_id)
            = (k.day, k.experiment_id, k.variant_id, k.event_type, p_unit_type, p_unit_id)
        RETURNING u.day, u.experiment_id, u.variant_id, u.event_type
    )
    UPDATE exp.variant_daily v
    SET events = v.events - k.events,
        units = v.units - (l.day IS NOT NULL)::int
    FROM pg_temp.erase_keys k
    LEFT JOIN left_units l USING (day, experiment_id, variant_id, event_type)
    WHERE (v.experiment_id, v.day, v.variant_id, v.event_type)
        = (k.experiment_id, k.day, k.variant_id, k.event_type);
    DELETE FROM exp.variant_daily v USING pg_temp.erase_keys k
    WHERE (v.experiment_id, v.day, v.variant_id, v.event_type)
        = (k.experiment_id, k.day, k.variant_id, k.event_type)
      AND v.events = 0;

    -- The metric values removed, as exp.health_add_counted reads them.
    CREATE TEMP TABLE erase_values ON COMMIT DROP AS
    SELECT c.day, c.experiment_id, c.variant_id, c.event_type, m.key AS metric,
           m.value::numeric AS exact, m.value::numeric::float8 AS value
    FROM pg_temp.erase_contributions c, jsonb_each(c.metrics) m
    WHERE c.removed
      AND jsonb_typeof(m.value) = 'number'
      AND (m.value::numeric = 0 OR abs(m.value::numeric) BETWEEN 1e-307 AND 1e308);
    ANALYZE pg_temp.erase_values;

    -- Metric keys whose values must be re-read (see the top): a bucket that keeps values lost
    -- its smallest or largest one, or the sum's scale may have been the unit's.
    CREATE TEMP TABLE erase_reread (
        day date, experiment_id text, variant_id text, event_type text, metric text
    ) ON COMMIT DROP;

    WITH removed AS (
        SELECT day, experiment_id, variant_id, event_type, metric,
               count(*) AS n, sum(exact) AS s, max(scale(exact)) AS decimals
        FROM pg_temp.erase_values GROUP BY 1, 2, 3, 4, 5
    ), updated AS (
        UPDATE exp.variant_daily_metrics m
        SET count = m.count - r.n, sum = m.sum - r.s,
            mean = CASE WHEN m.count > r.n THEN (m.sum - r.s) / (m.count - r.n) ELSE m.mean END
        FROM removed r
        WHERE (m.experiment_id, m.day, m.variant_id, m.event_type, m.metric)
            = (r.experiment_id, r.day, r.variant_id, r.event_type, r.metric)
        RETURNING m.day, m.experiment_id, m.variant_id, m.event_type, m.metric, m.count, m.sum,
                  r.decimals
    )
    INSERT INTO pg_temp.erase_reread
    SELECT day, experiment_id, variant_id, event_type, metric FROM updated
    WHERE count > 0 AND decimals >= scale(sum) AND scale(sum) > scale(trim_scale(sum))
      AND (sum / count <> trim_scale(sum) / count OR scale(sum) > 12);

    WITH removed AS (
        SELECT day, experiment_id, variant_id, event_type, metric, exp.metric_bucket(value) AS bucket,
               count(*) AS n, min(value) AS lo, max(value) AS hi
        FROM pg_temp.erase_values GROUP BY 1, 2, 3, 4, 5, 6
    ), updated AS (
        UPDATE exp.variant_daily_metric_buckets b
        SET count = b.count - r.n
        FROM removed r
        WHERE (b.day, b.experiment_id, b.variant_id, b.event_type, b.metric, b.bucket)
            = (r.day, r.experiment_id, r.variant_id, r.event_type, r.metric, r.bucket)
        RETURNING b.day, b.experiment_id, b.variant_id, b.event_type, b.metric, b.count,
                  r.lo = b.lo OR r.hi = b.hi AS extreme
    )
    INSERT INTO pg_temp.erase_reread
    SELECT day, experiment_id, variant_id, event_type, metric FROM updated
    WHERE count > 0 AND extreme;

    DELETE FROM exp.variant_daily_metrics m
    USING (SELECT DISTINCT day, experiment_id, variant_id, event_type, metric FROM pg_temp.erase_values) r
    WHERE (m.experiment_id, m.day, m.variant_id, m.event_type, m.metric)
        = (r.experiment_id, r.day, r.variant_id, r.event_type, r.metric)
      AND m.count = 0;
    DELETE FROM exp.variant_daily_metric_buckets b
    USING (SELECT DISTINCT day, experiment_id, variant_id, event_type, metric FROM pg_temp.erase_values) r
    WHERE (b.day, b.experiment_id, b.variant_id, b.event_type, b.metric)
        = (r.day, r.experiment_id, r.variant_id, r.event_type, r.metric)
      AND b.count = 0;

    -- The assignments as they become.
    DELETE FROM exp.assignments a USING pg_temp.erase_assignments x
    WHERE (a.experiment_id, a.unit_type, a.unit_id, a.variant_id)
        = (x.experiment_id, p_unit_type, p_unit_id, x.variant_id)
      AND x.events <= 0;
    GET DIAGNOSTICS n_assignments = ROW_COUNT;
    UPDATE exp.assignments a
    SET first_exposure_at = x.first_at, last_exposure_at = x.last_at, events = x.events
    FROM pg_temp.erase_assignments x
    WHERE (a.experiment_id, a.unit_type, a.unit_id, a.variant_id)
        = (x.experiment_id, p_unit_type, p_unit_id, x.variant_id)
      AND x.changed AND x.events > 0;

    -- The unit's exp.variant_daily_units rows of days before the floor: never read again (the
    -- job ages them out), but they name the unit. The primary key's day leads: this reads the
    -- rows the job has not aged yet, not the table.
    DELETE FROM exp.variant_daily_units
    WHERE day < (v_floor AT TIME ZONE 'UTC')::date AND unit_type = p_unit_type AND unit_id = p_unit_id;

    -- Re-reads, one key at a time (its day bounds the events read): the key's counted values
    -- now, from its units' events of that day under the same rule.
    CREATE TEMP TABLE erase_reread_values (
        day date, experiment_id text, variant_id text, event_type text, metric text,
        exact numeric, value double precision
    ) ON COMMIT DROP;
    FOR rk IN SELECT DISTINCT day, experiment_id, variant_id, event_type, metric FROM pg_temp.erase_reread LOOP
        day_lo := rk.day::timestamp AT TIME ZONE 'UTC';
        INSERT INTO pg_temp.erase_reread_values
        SELECT rk.day, rk.experiment_id, rk.variant_id, rk.event_type, rk.metric,
               v.value::numeric, v.value::numeric::float8
        FROM exp.variant_daily_units u
        JOIN exp.assignments a
          ON (a.experiment_id, a.unit_type, a.unit_id, a.variant_id)
           = (u.experiment_id, u.unit_type, u.unit_id, u.variant_id)
        JOIN exp.events e
          ON e.unit_id = u.unit_id AND e.unit_type = u.unit_type
         AND e."timestamp" >= day_lo AND e."timestamp" < day_lo + interval '1 day'
         AND e."timestamp" >= a.first_exposure_at
        CROSS JOIN LATERAL (SELECT e.metrics -> rk.metric) v(value)
        WHERE (u.day, u.experiment_id, u.variant_id, u.event_type)
            = (rk.day, rk.experiment_id, rk.variant_id, rk.event_type)
          AND e.event_type = rk.event_type
          AND e.received_at < v_processed_to AND e."timestamp" >= v_floor
          AND (NOT e.experiments @> jsonb_build_array(jsonb_build_object('experiment_id', rk.experiment_id))
               OR e.experiments @> jsonb_build_array(
                      jsonb_build_object('experiment_id', rk.experiment_id, 'variant_id', rk.variant_id)))
          AND jsonb_typeof(v.value) = 'number'
          AND (v.value::numeric = 0 OR abs(v.value::numeric) BETWEEN 1e-307 AND 1e308);
    END LOOP;
    -- Applied where the re-read finds what is stored: the key's count and sum, each bucket's count.
    UPDATE exp.variant_daily_metrics m
    SET sum = r.s, mean = r.s / r.n
    FROM (SELECT day, experiment_id, variant_id, event_type, metric, count(*) AS n, sum(exact) AS s
          FROM pg_temp.erase_reread_values GROUP BY 1, 2, 3, 4, 5) r
    WHERE (m.experiment_id, m.day, m.variant_id, m.event_type, m.metric)
        = (r.experiment_id, r.day, r.variant_id, r.event_type, r.metric)
      AND m.count = r.n AND m.sum = r.s;
    UPDATE exp.variant_daily_metric_buckets b
    SET lo = r.lo, hi = r.hi
    FROM (SELECT day, experiment_id, variant_id, event_type, metric, exp.metric_bucket(value) AS bucket,
                 count(*) AS n, min(value) AS lo, max(value) AS hi
          FROM pg_temp.erase_reread_values GROUP BY 1, 2, 3, 4, 5, 6) r
    WHERE (b.day, b.experiment_id, b.variant_id, b.event_type, b.metric, b.bucket)
        = (r.day, r.experiment_id, r.variant_id, r.event_type, r.metric, r.bucket)
      AND b.count = r.n;

    -- p50/p95 of every key that lost a value, from its buckets as they now are.
    PERFORM exp.health_update_quantiles(array_agg(day), array_agg(experiment_id),
                                        array_agg(variant_id), array_agg(event_type), array_agg(metric))
    FROM (SELECT DISTINCT day, experiment_id, variant_id, event_type, metric FROM pg_temp.erase_values) k;

    DROP TABLE pg_temp.erase_gone, pg_temp.erase_kept, pg_temp.erase_assignments,
        pg_temp.erase_contributions, pg_temp.erase_keys, pg_temp.erase_values,
        pg_temp.erase_reread, pg_temp.erase_reread_values;
    RETURN jsonb_build_object('events', n_events, 'event_ids', n_event_ids,
                              'pending_keys', n_pending_keys, 'assignments', n_assignments,
                              'rollup_days', n_rollup_days, 'context_hours', n_context_hours);
END $$;

-- As V4 and V8: owned by eis_migrator, run with its rights and a fixed search_path, executable
-- by the application only (which may not delete from exp.events, exp.event_ids or the rollups
-- itself: the function is its only way to).
ALTER FUNCTION exp.health_update_quantiles(date[], text[], text[], text[], text[]) OWNER TO eis_migrator;
ALTER FUNCTION exp.erase_unit(text, text, timestamptz, boolean, integer) OWNER TO eis_migrator;
REVOKE ALL ON FUNCTION exp.erase_unit(text, text, timestamptz, boolean, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION exp.erase_unit(text, text, timestamptz, boolean, integer) TO eis_app;
