-- The tracking plan (issue 28, docs/plan.md): per event type a mode and versioned JSON Schemas,
-- loaded by operators through exp.load_event_schemas and read by the functions (the ingest's
-- copy checks each event; the health job names the planned types). And the plan's health,
-- counted by the health job from the columns V12 added to exp.events (schema_version,
-- schema_violation) and the flag schema_violation.

-- What the plan does with an event type it does not name. One row.
CREATE TABLE exp.event_plan (
    singleton  boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    unplanned  text        NOT NULL DEFAULT 'allow' CHECK (unplanned IN ('allow', 'flag', 'reject')),
    -- The last load that changed anything of the plan.
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO exp.event_plan DEFAULT VALUES;

-- The planned event types, named as events name them (the contract's rule: [a-z][a-z0-9_]*,
-- at most 64 bytes), and what is done with an event that fails its type's schemas.
CREATE TABLE exp.event_types (
    event_type text        PRIMARY KEY
                           CHECK (event_type ~ '^[a-z][a-z0-9_]*$' AND octet_length(event_type) <= 64),
    mode       text        NOT NULL CHECK (mode IN ('flag', 'quarantine', 'reject')),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The versions of each type's schemas, MODEL-REVISION-ADDITION (each part at most 9 digits,
-- without leading zeros, model from 1: the text is exactly its three numbers). A version is
-- immutable once loaded (events are stamped with it); only its status changes.
CREATE TABLE exp.event_schemas (
    event_type     text        NOT NULL REFERENCES exp.event_types,
    version        text        NOT NULL,
    model          integer     NOT NULL CHECK (model BETWEEN 1 AND 999999999),
    revision       integer     NOT NULL CHECK (revision BETWEEN 0 AND 999999999),
    addition       integer     NOT NULL CHECK (addition BETWEEN 0 AND 999999999),
    status         text        NOT NULL CHECK (status IN ('active', 'deprecated')),
    -- JSON Schemas (draft 2020-12): objects or booleans. NULL: that part is not checked.
    payload_schema jsonb       NOT NULL CHECK (jsonb_typeof(payload_schema) IN ('object', 'boolean')),
    context_schema jsonb       CHECK (jsonb_typeof(context_schema) IN ('object', 'boolean')),
    metrics_schema jsonb       CHECK (jsonb_typeof(metrics_schema) IN ('object', 'boolean')),
    loaded_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_type, version),
    CHECK (version = model || '-' || revision || '-' || addition)
);

-- Loads a plan document (docs/plan.md, "The format"; eis_contract::plan::PlanDocument):
--   {"unplanned": "allow|flag|reject" (optional: unchanged),
--    "types": [{"event_type", "mode", "versions": [{"version", "status" (default active),
--               "payload", "context" (optional), "metrics" (optional)}]}]}
-- in the caller's transaction, all of it or none:
-- - `unplanned` is set when the document has it;
-- - each type is added, or its mode set;
-- - each version is added, or, when it is loaded already, its three schemas must be the ones
--   loaded (jsonb equality: key order and number spelling aside) and only its status is set.
--   A changed schema is refused: events are stamped with the version, so it must keep meaning
--   what it meant; a changed schema is a new version.
-- Types and versions the document does not name are kept (stored events name them).
-- Returns how many versions were added or had their status changed.
--
-- The loaders (make plan, the archiver's {"action":"plan"}) compile every schema first
-- (eis_contract::plan::Plan::compile); the checks here are the guard for SQL used directly:
-- the document's shape, names, versions, modes and statuses, schemas that are JSON objects or
-- booleans, no type or version given twice. Refusals: SQLSTATE 22023 for the document's
-- shape, 23000 for a changed schema; the message names the type (and version) at fault.
CREATE FUNCTION exp.load_event_schemas(doc jsonb) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    typ jsonb;
    ver jsonb;
    i integer;
    j integer;
    type_name text;
    label text;
    part text;
    extra text;
    seen_types text[] := '{}';
    seen_versions text[];
    n_versions integer;
    n_changed integer := 0;
BEGIN
    IF jsonb_typeof(doc) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'the plan document must be a JSON object {"unplanned": ..., "types": [...]}'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT string_agg(k, ', ' ORDER BY k) INTO extra
    FROM jsonb_object_keys(doc) k WHERE k NOT IN ('unplanned', 'types');
    IF extra IS NOT NULL THEN
        RAISE EXCEPTION 'the plan document has unknown keys: %', left(extra, 200)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF jsonb_typeof(doc -> 'unplanned') NOT IN ('null', 'string')
       OR doc ->> 'unplanned' NOT IN ('allow', 'flag', 'reject') THEN
        RAISE EXCEPTION 'the plan document: unplanned must be allow, flag or reject'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF doc ? 'types' AND jsonb_typeof(doc -> 'types') <> 'array' THEN
        RAISE EXCEPTION 'the plan document: types must be an array'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- Every check before any write: a refused document changes nothing, and says why first.
    FOR typ, i IN SELECT value, ordinality - 1
                  FROM jsonb_array_elements(coalesce(doc -> 'types', '[]')) WITH ORDINALITY LOOP
        IF jsonb_typeof(typ) <> 'object' THEN
            RAISE EXCEPTION 'the plan document: types[%] must be an object', i
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        type_name := CASE WHEN jsonb_typeof(typ -> 'event_type') = 'string' THEN typ ->> 'event_type' END;
        IF type_name IS NULL OR type_name !~ '^[a-z][a-z0-9_]*$' OR octet_length(type_name) > 64 THEN
            RAISE EXCEPTION 'the plan document: types[%]: event_type % is not an event type name ([a-z][a-z0-9_]*, at most 64 bytes)',
                i, left(coalesce(typ -> 'event_type', 'null')::text, 100)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        SELECT string_agg(k, ', ' ORDER BY k) INTO extra
        FROM jsonb_object_keys(typ) k WHERE k NOT IN ('event_type', 'mode', 'versions');
        IF extra IS NOT NULL THEN
            RAISE EXCEPTION '%: unknown keys: %', type_name, left(extra, 200)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF type_name = ANY (seen_types) THEN
            RAISE EXCEPTION '% is given twice', type_name USING ERRCODE = 'invalid_parameter_value';
        END IF;
        seen_types := seen_types || type_name;
        IF jsonb_typeof(typ -> 'mode') IS DISTINCT FROM 'string'
           OR typ ->> 'mode' NOT IN ('flag', 'quarantine', 'reject') THEN
            RAISE EXCEPTION '%: mode must be flag, quarantine or reject', type_name
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF typ ? 'versions' AND jsonb_typeof(typ -> 'versions') <> 'array' THEN
            RAISE EXCEPTION '%: versions must be an array', type_name USING ERRCODE = 'invalid_parameter_value';
        END IF;
        seen_versions := '{}';
        FOR ver, j IN SELECT value, ordinality - 1
                      FROM jsonb_array_elements(coalesce(typ -> 'versions', '[]')) WITH ORDINALITY LOOP
            IF jsonb_typeof(ver) <> 'object' THEN
                RAISE EXCEPTION '%: versions[%] must be an object', type_name, j
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
            label := CASE WHEN jsonb_typeof(ver -> 'version') = 'string' THEN ver ->> 'version' END;
            IF label IS NULL
               OR label !~ '^[1-9][0-9]{0,8}-(0|[1-9][0-9]{0,8})-(0|[1-9][0-9]{0,8})$' THEN
                RAISE EXCEPTION '%: versions[%]: version % is not MODEL-REVISION-ADDITION (e.g. 1-0-0)',
                    type_name, j, left(coalesce(ver -> 'version', 'null')::text, 100)
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
            SELECT string_agg(k, ', ' ORDER BY k) INTO extra
            FROM jsonb_object_keys(ver) k WHERE k NOT IN ('version', 'status', 'payload', 'context', 'metrics');
            IF extra IS NOT NULL THEN
                RAISE EXCEPTION '% %: unknown keys: %', type_name, label, left(extra, 200)
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
            IF label = ANY (seen_versions) THEN
                RAISE EXCEPTION '%: version % is given twice', type_name, label
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
            seen_versions := seen_versions || label;
            IF ver ? 'status' AND (jsonb_typeof(ver -> 'status') <> 'string'
                                   OR ver ->> 'status' NOT IN ('active', 'deprecated')) THEN
                RAISE EXCEPTION '% %: status must be active or deprecated', type_name, label
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
            IF coalesce(jsonb_typeof(ver -> 'payload') NOT IN ('object', 'boolean'), true) THEN
                RAISE EXCEPTION '% %: the payload schema must be a JSON object or a boolean', type_name, label
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
            FOREACH part IN ARRAY ARRAY['context', 'metrics'] LOOP
                IF jsonb_typeof(ver -> part) NOT IN ('null', 'object', 'boolean') THEN
                    RAISE EXCEPTION '% %: the % schema must be a JSON object, a boolean or null',
                        type_name, label, part
                        USING ERRCODE = 'invalid_parameter_value';
                END IF;
            END LOOP;
        END LOOP;
    END LOOP;

    -- One load at a time: the comparison below and the writes see the same rows.
    PERFORM 1 FROM exp.event_plan FOR UPDATE;

    CREATE TEMP TABLE load_versions ON COMMIT DROP AS
    SELECT ty.d ->> 'event_type' AS event_type, ve.d ->> 'version' AS version,
           coalesce(ve.d ->> 'status', 'active') AS status, ve.d -> 'payload' AS payload,
           nullif(ve.d -> 'context', 'null') AS context, nullif(ve.d -> 'metrics', 'null') AS metrics
    FROM jsonb_array_elements(coalesce(doc -> 'types', '[]')) AS ty(d),
         jsonb_array_elements(coalesce(ty.d -> 'versions', '[]')) AS ve(d);

    SELECT format('%s %s is already loaded with another schema: a changed schema is a new version',
                  s.event_type, s.version)
    INTO extra
    FROM pg_temp.load_versions l
    JOIN exp.event_schemas s USING (event_type, version)
    WHERE (s.payload_schema, s.context_schema, s.metrics_schema)
          IS DISTINCT FROM (l.payload, l.context, l.metrics)
    ORDER BY s.event_type, s.model, s.revision, s.addition
    LIMIT 1;
    IF extra IS NOT NULL THEN
        RAISE EXCEPTION '%', extra USING ERRCODE = 'integrity_constraint_violation';
    END IF;

    UPDATE exp.event_plan SET unplanned = doc ->> 'unplanned'
    WHERE doc ->> 'unplanned' IS NOT NULL AND unplanned <> doc ->> 'unplanned';
    GET DIAGNOSTICS i = ROW_COUNT;
    n_changed := n_changed + i;

    INSERT INTO exp.event_types AS et (event_type, mode)
    SELECT ty.d ->> 'event_type', ty.d ->> 'mode'
    FROM jsonb_array_elements(coalesce(doc -> 'types', '[]')) AS ty(d)
    ON CONFLICT (event_type) DO UPDATE SET mode = EXCLUDED.mode, updated_at = now()
    WHERE et.mode <> EXCLUDED.mode;
    GET DIAGNOSTICS i = ROW_COUNT;
    n_changed := n_changed + i;

    INSERT INTO exp.event_schemas AS s (event_type, version, model, revision, addition, status,
                                        payload_schema, context_schema, metrics_schema)
    SELECT l.event_type, l.version, split_part(l.version, '-', 1)::integer,
           split_part(l.version, '-', 2)::integer, split_part(l.version, '-', 3)::integer, l.status,
           l.payload, l.context, l.metrics
    FROM pg_temp.load_versions l
    ON CONFLICT (event_type, version) DO UPDATE SET status = EXCLUDED.status
    WHERE s.status <> EXCLUDED.status;
    GET DIAGNOSTICS n_versions = ROW_COUNT;

    IF n_changed + n_versions > 0 THEN
        UPDATE exp.event_plan SET updated_at = now();
    END IF;
    DROP TABLE pg_temp.load_versions;
    RETURN n_versions;
END $$;

-- The plan's health, per UTC day of received_at (when the ingest checked the event), event
-- type and version checked ('' for none: the event named a version the plan lacks, or its type
-- had no active version): the stored events checked against the plan (schema_version set or
-- flagged schema_violation) and those flagged schema_violation. Only flag-mode types store
-- failing events; quarantine and reject modes refuse them (docs/quarantine.md counts those).
-- A day is final once the health job's watermark has passed its end.
CREATE TABLE exp.plan_daily (
    day            date   NOT NULL,
    event_type     text   NOT NULL,
    schema_version text   NOT NULL,
    events         bigint NOT NULL,
    violations     bigint NOT NULL,
    PRIMARY KEY (day, event_type, schema_version)
);

-- The flagged events of exp.plan_daily by the pointer of their first failing value
-- (exp.events.schema_violation). Paths come from what clients send (payload keys), so they are
-- bounded: at most 256 characters (the contract cuts longer ones at a '/' already; the job cuts
-- any other), and at most 20 distinct paths per (day, type, version). Once 20 are held, the
-- events of any further path are added under the path '(other)' (a pointer is '' or starts with
-- '/', so no path is mistaken for it): a key has at most 21 rows whatever clients send. Within
-- one window, new paths are admitted by their events, most first. Aged out by day past
-- retention, like the counting state of V7 (docs/health.md, "Bounds"); exp.plan_daily stays.
CREATE TABLE exp.plan_daily_paths (
    day            date   NOT NULL,
    event_type     text   NOT NULL,
    schema_version text   NOT NULL,
    path           text   NOT NULL CHECK (char_length(path) <= 256),
    events         bigint NOT NULL,
    PRIMARY KEY (day, event_type, schema_version, path)
);

-- Owned like everything else in exp (V4). The loader runs as its owner with a fixed
-- search_path (as exp.erase_unit, V11): the functions' role may load a plan only through it
-- (the archiver's {"action":"plan"}), never write the plan's tables itself. The owner
-- (eis_migrator, the migrator function's `make plan` path) may run it as any owner may.
ALTER TABLE exp.event_plan OWNER TO eis_migrator;
ALTER TABLE exp.event_types OWNER TO eis_migrator;
ALTER TABLE exp.event_schemas OWNER TO eis_migrator;
ALTER TABLE exp.plan_daily OWNER TO eis_migrator;
ALTER TABLE exp.plan_daily_paths OWNER TO eis_migrator;
ALTER FUNCTION exp.load_event_schemas(jsonb) OWNER TO eis_migrator;
ALTER FUNCTION exp.load_event_schemas(jsonb) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION exp.load_event_schemas(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION exp.load_event_schemas(jsonb) TO eis_migrator, eis_app;

-- Stated rather than left to V4's and V6's default privileges, which cover only tables made by
-- the role that ran those migrations or by eis_migrator: the ingest and the archiver (eis_app)
-- and the dashboards (eis_reader) read the plan; the health job (eis_app) counts into the plan
-- health tables and ages them.
REVOKE ALL ON exp.event_plan, exp.event_types, exp.event_schemas FROM eis_app;
GRANT SELECT ON exp.event_plan, exp.event_types, exp.event_schemas TO eis_app, eis_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON exp.plan_daily, exp.plan_daily_paths TO eis_app;
GRANT SELECT ON exp.plan_daily, exp.plan_daily_paths TO eis_reader;
