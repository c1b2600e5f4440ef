-- Fewer bytes per stored event (issue 29): the secondary indexes of exp.events, each kept at
-- the smallest form that still serves its reader (docs/storage.md, "Indexes"; the bench's
-- bytes per row in BENCHMARKS.md §2).
--
-- - "timestamp": a btree of ~23-33 B per row becomes a BRIN of under 1 B. Rows of a day
--   partition arrive in about their timestamp order (late events append their own page
--   ranges), so a window (the audit's hour, a dashboard's day) reads the few ranges that hold
--   it.
-- - (event_type, "timestamp"): a btree of ~41-66 B per row becomes (event_type), whose equal
--   keys btree deduplication stores once per leaf page (~7 B per row); a type over a window
--   combines it with the BRIN above (a bitmap AND).
-- - (unit_id, unit_type, "timestamp") (V7): becomes (unit_id). Its readers (the health job's
--   back-fill, exp.erase_unit) name one unit and filter the rest; a unit's many events share
--   one deduplicated key.
-- - The GIN on experiments keeps its definition, with a pending list of 64 kB instead of 4 MB.
--   Inserts append to that list, merged into the index when it is full: 4 MB of it held up to
--   ~80 B per row of a 50 000-row partition (and made the one insert that merged it wait); at
--   64 kB the index is ~10 B per row for the same insert CPU. (fastupdate = off, the other
--   way to keep it small, cost ~18 µs more CPU per row.)
--
-- On a database holding data, CREATE INDEX on the partitioned table builds each partition's
-- index under a lock that blocks inserts into it until the migration commits. Where that is too
-- long, build them beforehand without blocking (docs/deploy.md, "V14 on a large database"):
-- `CREATE INDEX CONCURRENTLY` on each partition with the definitions below. CREATE INDEX on the
-- parent then attaches a partition's equivalent index instead of building another.
DROP INDEX exp.events_timestamp_idx;
DROP INDEX exp.events_type_timestamp_idx;
DROP INDEX exp.events_unit_idx;
DROP INDEX exp.events_experiments_idx;

CREATE INDEX events_timestamp_brin ON exp.events USING brin ("timestamp") WITH (autosummarize = on);
CREATE INDEX events_type_idx ON exp.events (event_type);
CREATE INDEX events_unit_id_idx ON exp.events (unit_id);
CREATE INDEX events_experiments_idx ON exp.events USING gin (experiments jsonb_path_ops)
    WITH (gin_pending_list_limit = 64);
