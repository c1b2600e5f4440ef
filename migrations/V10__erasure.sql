-- Erasure (issue 27, docs/privacy.md): the requests to erase one unit's data, their progress
-- and receipt, and the tombstones that keep erased data from coming back.
--
-- Units are named outside this schema by a keyed hash only: HMAC-SHA256 of
-- unit_type || 0x00 || unit_id under exp.erasure_key's key (computed by the functions,
-- eis_contract::erasure). The key lives beside the tombstones so that the two cannot drift
-- apart (a restored backup holds both); it keeps unit ids out of receipts, logs and exports,
-- not away from someone who can read this database.

-- 32 bytes from two v4 UUIDs' random bits (gen_random_uuid uses the server's strong random
-- source; no extension needed). Generated once, never changed: a new key would orphan every
-- tombstone.
CREATE TABLE exp.erasure_key (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    key       bytea   NOT NULL CHECK (length(key) = 32)
);
INSERT INTO exp.erasure_key (key)
VALUES (decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'));

-- One row per erased unit, kept forever. An event of the unit is erased where it meets the
-- rule of docs/privacy.md: suppress, or received or timestamped before erased_at.
CREATE TABLE exp.erasure_tombstones (
    unit_hash bytea       PRIMARY KEY CHECK (length(unit_hash) = 32),
    erased_at timestamptz NOT NULL,
    -- Later events of the unit are refused at ingest (unit_suppressed) and dropped anywhere.
    suppress  boolean     NOT NULL DEFAULT false
);

-- One row per request. unit_type and unit_id are kept only while the request runs.
-- step: what the next run does (postgres, archive, quarantine, done), in that order;
-- position: the last object key the archive or quarantine scan finished ('' = from the start);
-- receipt: the counts per store so far (docs/privacy.md, "The receipt").
CREATE TABLE exp.erasure_requests (
    id           uuid        PRIMARY KEY,
    unit_type    text,
    unit_id      text,
    unit_hash    bytea       NOT NULL CHECK (length(unit_hash) = 32),
    suppress     boolean     NOT NULL DEFAULT false,
    requested_at timestamptz NOT NULL,
    status       text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'completed')),
    step         text        NOT NULL DEFAULT 'postgres'
                             CHECK (step IN ('postgres', 'archive', 'quarantine', 'done')),
    position     text        NOT NULL DEFAULT '',
    receipt      jsonb       NOT NULL DEFAULT '{}',
    -- Why the last run could not go on (e.g. archive_locked); NULL when it could.
    last_error   text,
    completed_at timestamptz,
    CHECK ((status = 'completed') = (completed_at IS NOT NULL)),
    CHECK (status = 'pending' OR step = 'done'),
    CHECK (status = 'completed' OR (unit_type IS NOT NULL AND unit_id IS NOT NULL)),
    CHECK (status = 'pending' OR (unit_type IS NULL AND unit_id IS NULL))
);
-- The scheduled run's queue, oldest first; the alarm's age.
CREATE INDEX erasure_requests_pending_idx ON exp.erasure_requests (requested_at) WHERE status = 'pending';

ALTER TABLE exp.erasure_key OWNER TO eis_migrator;
ALTER TABLE exp.erasure_tombstones OWNER TO eis_migrator;
ALTER TABLE exp.erasure_requests OWNER TO eis_migrator;
-- The functions read the key and may not replace it; they record requests and tombstones
-- and move requests along. Deleting a unit's rows is exp.erase_unit's alone (V11).
REVOKE INSERT ON exp.erasure_key FROM eis_app;
GRANT SELECT ON exp.erasure_key TO eis_app;
GRANT SELECT, INSERT, UPDATE ON exp.erasure_tombstones, exp.erasure_requests TO eis_app;
-- Analysts (eis_reader, default privileges of V6) see neither the key nor the open requests.
REVOKE ALL ON exp.erasure_key, exp.erasure_requests FROM eis_reader;
