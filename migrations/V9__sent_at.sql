-- The client's send time (issue 26): `sent_at`, from the request's EIS-Sent-At header, and the
-- event's time by the server's clock derived from it, `adjusted_timestamp` = timestamp +
-- (received_at - sent_at), computed by the ingest (in UTC microseconds, as the archive keeps
-- it). Both NULL for events whose request did not say. Neither is content: a retry carries a
-- new send time and stays a duplicate (the digest in exp.event_ids leaves them out).
--
-- Nullable columns without a default: adding them rewrites nothing, on a table of any size
-- (the catalog change takes a brief ACCESS EXCLUSIVE lock on exp.events and its partitions).
ALTER TABLE exp.events
    ADD COLUMN sent_at timestamptz,
    ADD COLUMN adjusted_timestamp timestamptz;
