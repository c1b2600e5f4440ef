-- Experiment health (issue 15): an optional registry of experiments, and what the health job
-- (the archiver's {"action":"health"} input) derives from stored events off the ingest path:
-- assignments, per-variant daily rollups and one health row per experiment.
-- docs/health.md describes every table; docs/metabase.md the dashboards on them.

-- The registry: loaded by operators (exp.load_experiments below), read by the ingest, which
-- caches it and flags events that do not fit their experiment.
-- Ids are UUIDs, kept as their canonical text: the form events carry in exp.events.experiments.
CREATE TABLE exp.experiments (
    experiment_id text        PRIMARY KEY CHECK (experiment_id = experiment_id::uuid::text),
    name          text        NOT NULL,
    unit_type     text        NOT NULL,
    status        text        NOT NULL CHECK (status IN ('running', 'stopped')),
    starts_at     timestamptz NOT NULL,
    -- NULL: open-ended.
    ends_at       timestamptz CHECK (ends_at > starts_at),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- The variants of a registered experiment and their expected shares of units (weights are
-- relative: 1/1 and 50/50 are the same split).
CREATE TABLE exp.experiment_variants (
    experiment_id text             NOT NULL REFERENCES exp.experiments ON DELETE CASCADE,
    variant_id    text             NOT NULL CHECK (variant_id = variant_id::uuid::text),
    weight        double precision NOT NULL CHECK (weight > 0 AND weight < 'infinity'),
    PRIMARY KEY (experiment_id, variant_id)
);

-- Loads registry entries from a JSON array (the file format of docs/health.md): each element
-- replaces the experiment of that id, its variants included. Returns how many were loaded.
CREATE FUNCTION exp.load_experiments(doc jsonb) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    e jsonb;
    n integer := 0;
BEGIN
    IF jsonb_typeof(doc) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'the registry document must be a JSON array of experiments';
    END IF;
    FOR e IN SELECT value FROM jsonb_array_elements(doc) LOOP
        IF jsonb_typeof(e -> 'variants') IS DISTINCT FROM 'array'
           OR jsonb_array_length(e -> 'variants') = 0 THEN
            RAISE EXCEPTION 'experiment %: variants must be a non-empty array', e ->> 'experiment_id';
        END IF;
        INSERT INTO exp.experiments AS x (experiment_id, name, unit_type, status, starts_at, ends_at)
        VALUES (e ->> 'experiment_id', coalesce(e ->> 'name', e ->> 'experiment_id'),
                e ->> 'unit_type', coalesce(e ->> 'status', 'running'),
                (e ->> 'starts_at')::timestamptz, (e ->> 'ends_at')::timestamptz)
        ON CONFLICT (experiment_id) DO UPDATE
        SET name = EXCLUDED.name, unit_type = EXCLUDED.unit_type, status = EXCLUDED.status,
            starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at, updated_at = now();
        DELETE FROM exp.experiment_variants WHERE experiment_id = e ->> 'experiment_id';
        INSERT INTO exp.experiment_variants (experiment_id, variant_id, weight)
        SELECT e ->> 'experiment_id', v ->> 'variant_id', coalesce((v ->> 'weight')::float8, 1)
        FROM jsonb_array_elements(e -> 'variants') v;
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;

-- The job finds new events by received_at. A BRIN index is a few pages per partition and
-- costs the write path almost nothing (received_at follows the physical order of inserts);
-- a b-tree would add an entry per row (BENCHMARKS.md, the index costs).
CREATE INDEX events_received_brin ON exp.events USING brin (received_at) WITH (autosummarize = on);

-- One row per unit and variant of an experiment it was exposed to (an event naming that
-- experiment and variant). Grows with units x experiments, not with events.
CREATE TABLE exp.assignments (
    experiment_id     text        NOT NULL,
    unit_type         text        NOT NULL,
    unit_id           text        NOT NULL,
    variant_id        text        NOT NULL,
    first_exposure_at timestamptz NOT NULL,
    last_exposure_at  timestamptz NOT NULL,
    -- Events naming this experiment and variant for this unit.
    events            bigint      NOT NULL,
    PRIMARY KEY (experiment_id, unit_type, unit_id, variant_id)
);
-- The rollups attribute a unit's other events to its variants: looked up by unit.
CREATE INDEX assignments_unit_idx ON exp.assignments (unit_type, unit_id);

-- The job's watermark: every event with received_at < processed_to has been counted (NULL:
-- none yet; the first run starts at the oldest event).
CREATE TABLE exp.health_progress (
    singleton    boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    processed_to timestamptz
);
INSERT INTO exp.health_progress (processed_to) VALUES (NULL);

-- What the watermark may pass (docs/health.md, "The watermark"): at taken_at no transaction
-- id at or above next_xid had been handed out, so once the oldest running transaction is at
-- or above next_xid, every event whose insert began before taken_at is committed or gone.
CREATE TABLE exp.health_horizons (
    taken_at timestamptz PRIMARY KEY,
    next_xid xid8        NOT NULL
);

-- Events per UTC hour of their timestamp, and those without experiment context: the
-- "events without context in the window" of exp.experiment_health.
CREATE TABLE exp.context_hourly (
    hour            timestamptz PRIMARY KEY,
    events          bigint      NOT NULL,
    without_context bigint      NOT NULL
);

-- Per experiment, variant, UTC day and event type: events and distinct units, counting a
-- unit's events at or after its first exposure to the experiment (docs/health.md).
CREATE TABLE exp.variant_daily (
    experiment_id text   NOT NULL,
    variant_id    text   NOT NULL,
    day           date   NOT NULL,
    event_type    text   NOT NULL,
    events        bigint NOT NULL,
    units         bigint NOT NULL,
    PRIMARY KEY (experiment_id, day, variant_id, event_type)
);

-- The metrics of the same events, one row per metric seen: count, mean and the percentiles
-- of percentile_cont (linear interpolation between the closest ranks).
CREATE TABLE exp.variant_daily_metrics (
    experiment_id text             NOT NULL,
    variant_id    text             NOT NULL,
    day           date             NOT NULL,
    event_type    text             NOT NULL,
    metric        text             NOT NULL,
    count         bigint           NOT NULL,
    mean          numeric          NOT NULL,
    p50           double precision NOT NULL,
    p95           double precision NOT NULL,
    PRIMARY KEY (experiment_id, day, variant_id, event_type, metric)
);

-- One row per experiment seen in events or registered.
CREATE TABLE exp.experiment_health (
    experiment_id          text             PRIMARY KEY,
    registered             boolean          NOT NULL,
    computed_at            timestamptz      NOT NULL,
    -- Units in exactly one known variant: the sample-ratio test's input.
    units                  bigint           NOT NULL,
    chi_squared            double precision,
    p_value                double precision,
    degrees_of_freedom     integer,
    -- Every known variant has at least the job's minimum of units (EIS_SRM_MIN_UNITS).
    srm_checked            boolean          NOT NULL,
    -- Units seen in more than one variant, and their share of all units of the experiment.
    crossover_units        bigint           NOT NULL,
    crossover_share        double precision NOT NULL,
    -- Events naming the experiment; those whose variant the registry does not list.
    events                 bigint           NOT NULL,
    unknown_variant_events bigint           NOT NULL,
    unknown_variant_share  double precision NOT NULL,
    -- The window (registered: starts_at..ends_at or now; else first..last exposure), and the
    -- share of all events in its hours that carried no experiment context.
    window_start           timestamptz      NOT NULL,
    window_end             timestamptz      NOT NULL,
    window_events          bigint           NOT NULL,
    no_context_events      bigint           NOT NULL,
    no_context_share       double precision NOT NULL
);

-- Units per variant against the expected split (equal shares when not registered).
CREATE TABLE exp.variant_health (
    experiment_id  text             NOT NULL REFERENCES exp.experiment_health ON DELETE CASCADE,
    variant_id     text             NOT NULL,
    -- Listed by the registry (always true for an unregistered experiment).
    known          boolean          NOT NULL,
    units          bigint           NOT NULL,
    expected_share double precision,
    expected_units double precision,
    PRIMARY KEY (experiment_id, variant_id)
);

-- Owned like everything else in exp (V4), whoever runs the migration.
ALTER TABLE exp.experiments OWNER TO eis_migrator;
ALTER TABLE exp.experiment_variants OWNER TO eis_migrator;
ALTER TABLE exp.assignments OWNER TO eis_migrator;
ALTER TABLE exp.health_progress OWNER TO eis_migrator;
ALTER TABLE exp.health_horizons OWNER TO eis_migrator;
ALTER TABLE exp.context_hourly OWNER TO eis_migrator;
ALTER TABLE exp.variant_daily OWNER TO eis_migrator;
ALTER TABLE exp.variant_daily_metrics OWNER TO eis_migrator;
ALTER TABLE exp.experiment_health OWNER TO eis_migrator;
ALTER TABLE exp.variant_health OWNER TO eis_migrator;
ALTER FUNCTION exp.load_experiments(jsonb) OWNER TO eis_migrator;
REVOKE ALL ON FUNCTION exp.load_experiments(jsonb) FROM PUBLIC;

-- The application's rights (V4's default privileges gave SELECT, INSERT on every table): the
-- registry is the operators', read only by the functions; the health job (the archiver)
-- rewrites its own tables.
REVOKE INSERT ON exp.experiments, exp.experiment_variants FROM eis_app;
GRANT UPDATE, DELETE ON exp.assignments, exp.health_progress, exp.health_horizons,
    exp.context_hourly, exp.variant_daily, exp.variant_daily_metrics, exp.experiment_health,
    exp.variant_health TO eis_app;

-- Read-only access for dashboards (Metabase, docs/metabase.md): a group role that login
-- users join, with SELECT on everything in exp, present and future.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'eis_reader') THEN
        BEGIN
            CREATE ROLE eis_reader NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
END $$;
GRANT USAGE ON SCHEMA exp TO eis_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA exp TO eis_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE eis_migrator IN SCHEMA exp GRANT SELECT ON TABLES TO eis_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA exp GRANT SELECT ON TABLES TO eis_reader;
