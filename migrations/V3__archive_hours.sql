-- Hours of the archive that hold files not produced by compaction (or may): the archiver
-- records an hour here before it uploads a raw file into it, and its compaction deletes the
-- row once the hour is rewritten. Listing this table replaces listing the whole bucket.
CREATE TABLE exp.archive_hours (
    -- Start of the UTC hour (the folder {year}/{month}/{day}/{hour}/).
    hour       timestamptz PRIMARY KEY,
    -- Bumped by every record: a compaction clears the row only if nobody recorded the hour
    -- again since it read it.
    version    bigint      NOT NULL DEFAULT 1,
    touched_at timestamptz NOT NULL DEFAULT now()
);
