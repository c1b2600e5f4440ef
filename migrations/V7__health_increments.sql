-- The health job counts increments (docs/health.md, "Cost"): a window adds its events'
-- contributions to the rollups instead of recomputing whole days from exp.events. What that
-- needs beyond V6: the units already counted per rollup key (for exact distinct units), a
-- sum per metric (for the exact mean), a histogram per metric (for p50/p95), and a lookup of
-- a unit's events (to back-fill them when an earlier first exposure arrives).

-- A unit's events by time: the back-fill reads only the events of the units whose first
-- exposure moved earlier. One b-tree entry per stored event (the write path's cost;
-- BENCHMARKS.md, the index costs).
CREATE INDEX events_unit_idx ON exp.events (unit_id, unit_type, "timestamp");

-- The units counted in each exp.variant_daily key: a contribution whose row is new here adds
-- one to `units`. Day first: retention deletes by day (docs/health.md, "Bounds").
CREATE TABLE exp.variant_daily_units (
    day           date NOT NULL,
    experiment_id text NOT NULL,
    variant_id    text NOT NULL,
    event_type    text NOT NULL,
    unit_type     text NOT NULL,
    unit_id       text NOT NULL,
    PRIMARY KEY (day, experiment_id, variant_id, event_type, unit_type, unit_id)
);

-- The exact sum beside the count: the mean is sum / count.
ALTER TABLE exp.variant_daily_metrics ADD COLUMN sum numeric;
UPDATE exp.variant_daily_metrics SET sum = mean * count;
ALTER TABLE exp.variant_daily_metrics ALTER COLUMN sum SET NOT NULL;

-- Per metric key, the values in logarithmic buckets (exp.metric_bucket): count, smallest and
-- largest value. p50/p95 are read from them; their accuracy is in docs/health.md.
CREATE TABLE exp.variant_daily_metric_buckets (
    day           date             NOT NULL,
    experiment_id text             NOT NULL,
    variant_id    text             NOT NULL,
    event_type    text             NOT NULL,
    metric        text             NOT NULL,
    bucket        integer          NOT NULL,
    count         bigint           NOT NULL,
    lo            double precision NOT NULL,
    hi            double precision NOT NULL,
    PRIMARY KEY (day, experiment_id, variant_id, event_type, metric, bucket)
);

-- Bucket i (> 0) holds the positive values in (1.01^(i-100001), 1.01^(i-100000)], -i their
-- negatives, 0 holds zero; the order of buckets is the order of values. Every finite double
-- fits (|i - 100000| < 75 000).
CREATE FUNCTION exp.metric_bucket(v double precision) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT CASE WHEN v = 0 THEN 0
                  ELSE sign(v)::integer * (100000 + ceil(ln(abs(v)) / ln(1.01::float8))::integer) END $$;

-- The value a bucket stands for: the point of its range at relative distance at most
-- (1.01 - 1) / (1.01 + 1) (under 0.5%) from every value in it.
CREATE FUNCTION exp.metric_bucket_value(b integer) RETURNS double precision
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT CASE WHEN b = 0 THEN 0::float8
                  ELSE sign(b) * 2 * power(1.01::float8, abs(b) - 100000) / 2.01 END $$;

-- Adds the contributions in the caller's temporary table health_counted (experiment_id,
-- variant_id, day, event_type, unit_type, unit_id, metrics: one row per event and variant it
-- counts for, each counted once ever) to the rollups, and recomputes p50/p95 of the metric
-- keys they change, from those keys' buckets only. Returns the (experiment, day) pairs changed.
CREATE FUNCTION exp.health_add_counted() RETURNS bigint
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

    -- The value at a rank (0-based) of a key: its bucket's smallest value for the bucket's
    -- first rank, its largest for the last, else the bucket's value within those; then
    -- percentile_cont's interpolation between the two closest ranks.
    WITH keys AS (
        SELECT DISTINCT day, experiment_id, variant_id, event_type, metric FROM health_values
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

    DROP TABLE health_values;
    SELECT count(*) INTO changed FROM (SELECT DISTINCT experiment_id, day FROM health_counted) d;
    RETURN changed;
END $$;

-- The rollups as V6 computed them cannot be extended (no units or buckets behind them): the
-- days exp.events still holds are recounted once here, with the job's rule, from every event
-- the watermark has passed. Days it no longer holds keep their rows (p50/p95 as V6 left them).
CREATE TEMP TABLE health_counted AS
SELECT a.experiment_id, a.variant_id, (e."timestamp" AT TIME ZONE 'UTC')::date AS day, e.event_type,
       e.unit_type, e.unit_id, e.metrics
FROM exp.events e
JOIN exp.assignments a
  ON a.unit_type = e.unit_type AND a.unit_id = e.unit_id AND a.first_exposure_at <= e."timestamp"
WHERE e.received_at < (SELECT processed_to FROM exp.health_progress)
  AND (NOT e.experiments @> jsonb_build_array(jsonb_build_object('experiment_id', a.experiment_id))
       OR e.experiments @> jsonb_build_array(
              jsonb_build_object('experiment_id', a.experiment_id, 'variant_id', a.variant_id)));
DELETE FROM exp.variant_daily v USING (SELECT DISTINCT experiment_id, day FROM health_counted) d
WHERE v.experiment_id = d.experiment_id AND v.day = d.day;
DELETE FROM exp.variant_daily_metrics v USING (SELECT DISTINCT experiment_id, day FROM health_counted) d
WHERE v.experiment_id = d.experiment_id AND v.day = d.day;
SELECT exp.health_add_counted();
DROP TABLE health_counted;

ALTER TABLE exp.variant_daily_units OWNER TO eis_migrator;
ALTER TABLE exp.variant_daily_metric_buckets OWNER TO eis_migrator;
ALTER FUNCTION exp.metric_bucket(double precision) OWNER TO eis_migrator;
ALTER FUNCTION exp.metric_bucket_value(integer) OWNER TO eis_migrator;
ALTER FUNCTION exp.health_add_counted() OWNER TO eis_migrator;
-- The health job (the archiver) maintains them, and ages out their days past retention.
GRANT UPDATE, DELETE ON exp.variant_daily_units, exp.variant_daily_metric_buckets TO eis_app;
