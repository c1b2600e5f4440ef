-- The tracking plan (issue 28): `schema_version`, the plan's version the event was checked
-- against (MODEL-REVISION-ADDITION, e.g. 1-1-0), and with the flag `schema_violation`,
-- `schema_violation`, the JSON pointer of the first value the plan refused
-- (/payload/meal_count). Both NULL for events not checked (no plan, an unplanned type).
-- Neither is content: a retry judged by a newer plan stays a duplicate (the digest in
-- exp.event_ids leaves them out).
--
-- Nullable columns without a default: adding them rewrites nothing, on a table of any size
-- (the catalog change takes a brief ACCESS EXCLUSIVE lock on exp.events and its partitions).
ALTER TABLE exp.events
    ADD COLUMN schema_version text,
    ADD COLUMN schema_violation text;
