//! The pure half of compaction: which hours need it, the name of a generation, and the
//! dedupe, sharding and encoding of one shard's rows. No I/O.

use std::collections::{BTreeSet, HashMap};

use arrow::array::{AsArray, RecordBatch, UInt32Array};
use arrow::datatypes::TimestampMicrosecondType;
use md5::{Digest, Md5};
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;

use crate::archive::bucket::{ArchiveFile, Kind};
use crate::archive::columns::{invalid, named};

/// Which file an error is about.
const FILE: &str = "archive file";
use crate::archive::digest::{self, IdDigest};
use crate::archive::event_parquet::{self, FormatError};

pub const GENERATION_KEY: &str = "eis.compaction.generation";
pub const SHARD_KEY: &str = "eis.compaction.shard";
pub const INPUTS_KEY: &str = "eis.compaction.inputs";
pub const DROPPED_KEY: &str = "eis.compaction.duplicates_dropped";
/// `count:sum` of the file's ids (see [`digest`]); the shards of one generation hold
/// disjoint ids, so their digests add up to the hour's.
pub const DIGEST_KEY: &str = "eis.compaction.ids_digest";

/// An hour needs compacting when it holds a raw file, more than one generation, or a
/// generation missing shards.
pub fn needs_compaction(files: &[ArchiveFile]) -> bool {
    let mut generations: HashMap<&str, (u32, BTreeSet<u32>)> = HashMap::new();
    for file in files {
        match &file.kind {
            Kind::Raw => return true,
            Kind::Compacted {
                generation,
                shard,
                shards,
            } => {
                let entry = generations
                    .entry(generation)
                    .or_insert((*shards, BTreeSet::new()));
                if entry.0 != *shards {
                    return true;
                }
                entry.1.insert(*shard);
            }
        }
    }
    generations.len() > 1
        || generations
            .values()
            .any(|(shards, present)| present.len() != *shards as usize)
}

/// The output's name part: a hash of the sorted input keys (16 hex digits).
pub fn generation(files: &[ArchiveFile]) -> String {
    let mut keys: Vec<&str> = files.iter().map(|f| f.key.as_str()).collect();
    keys.sort_unstable();
    let mut hasher = Md5::new();
    for key in keys {
        hasher.update(key.as_bytes());
        hasher.update(b"\n");
    }
    let sum = hasher.finalize();
    sum[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// One shard's rows, deduplicated.
pub struct Deduped {
    pub rows: RecordBatch,
    pub dropped: u64,
    pub digest: IdDigest,
}

/// Keeps the first copy of each `event_id` among `parts` (given in input-key order, each in
/// row order): smallest `received_at`, then earliest part, then earliest row. The survivors
/// come out sorted by (`timestamp`, `event_id`), so the same inputs give the same file.
pub fn dedupe(parts: &[RecordBatch]) -> Result<Deduped, FormatError> {
    let all = arrow::compute::concat_batches(&event_parquet::schema(), parts)?;
    let ids = named(&all, "event_id", FILE)?
        .as_string_opt::<i32>()
        .ok_or_else(|| invalid(FILE, "event_id"))?;
    let received = named(&all, "received_at", FILE)?
        .as_primitive_opt::<TimestampMicrosecondType>()
        .ok_or_else(|| invalid(FILE, "received_at"))?;
    let timestamps = named(&all, "timestamp", FILE)?
        .as_primitive_opt::<TimestampMicrosecondType>()
        .ok_or_else(|| invalid(FILE, "timestamp"))?;
    // Rows are in (part, row) order: the first row met wins a tie on received_at.
    let mut first: HashMap<&str, usize> = HashMap::with_capacity(all.num_rows());
    for row in 0..all.num_rows() {
        let id = ids.value(row);
        first
            .entry(id)
            .and_modify(|best| {
                if received.value(row) < received.value(*best) {
                    *best = row;
                }
            })
            .or_insert(row);
    }
    let mut winners: Vec<usize> = first.values().copied().collect();
    winners.sort_unstable_by(|a, b| {
        (timestamps.value(*a), ids.value(*a)).cmp(&(timestamps.value(*b), ids.value(*b)))
    });
    let mut digest = IdDigest::default();
    for row in &winners {
        digest::add(&mut digest, ids.value(*row));
    }
    let indices = winners
        .iter()
        .map(|r| u32::try_from(*r).map_err(|_| FormatError::Overflow))
        .collect::<Result<UInt32Array, _>>()?;
    let columns = all
        .columns()
        .iter()
        .map(|c| arrow::compute::take(c.as_ref(), &indices, None))
        .collect::<Result<Vec<_>, _>>()?;
    let rows = RecordBatch::try_new(event_parquet::schema(), columns)?;
    let dropped = (all.num_rows() - rows.num_rows()) as u64;
    Ok(Deduped {
        rows,
        dropped,
        digest,
    })
}

/// The digest of the ids of rows that hold each id once (a shard's rows after erasure).
pub fn ids_digest(rows: &RecordBatch) -> Result<IdDigest, FormatError> {
    let ids = named(rows, "event_id", FILE)?
        .as_string_opt::<i32>()
        .ok_or_else(|| invalid(FILE, "event_id"))?;
    let mut digest = IdDigest::default();
    for id in ids.iter().flatten() {
        digest::add(&mut digest, id);
    }
    Ok(digest)
}

/// Only the rows of `shard` among `shards`.
pub fn shard_rows(batch: RecordBatch, shard: u32, shards: u32) -> Result<RecordBatch, FormatError> {
    if shards <= 1 {
        return Ok(batch);
    }
    let ids = crate::archive::columns::Text::of(named(&batch, "event_id", FILE)?)
        .ok_or_else(|| invalid(FILE, "event_id"))?;
    let keep: arrow::array::BooleanArray = (0..ids.len())
        .map(|i| Some(digest::shard_of(ids.get(i).unwrap_or_default(), shards) == shard))
        .collect();
    Ok(arrow::compute::filter_record_batch(&batch, &keep)?)
}

/// One compacted file: the archive's writer settings plus the compaction's metadata.
pub fn encode_shard(rows: &RecordBatch, metadata: Vec<KeyValue>) -> Result<Vec<u8>, FormatError> {
    let mut writer = ArrowWriter::try_new(
        Vec::new(),
        event_parquet::schema(),
        Some(event_parquet::writer_properties()?),
    )?;
    for kv in metadata {
        writer.append_key_value_metadata(kv);
    }
    writer.write(rows)?;
    Ok(writer.into_inner()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, TimeZone, Utc};
    use eis_contract::Event;

    use crate::archive::event_parquet::EventColumns;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 5, 9, minute, 0)
            .single()
            .expect("time")
    }

    fn event(n: u128, received: u32, unit: &str) -> Event {
        Event {
            unit_id: unit.into(),
            received_at: at(received),
            ..crate::test_events::bare(n, at(59 - n as u32))
        }
    }

    fn batch(events: &[Event]) -> RecordBatch {
        let mut c = EventColumns::new();
        for e in events {
            c.push(e).expect("push");
        }
        c.finish().expect("batch")
    }

    fn units(rows: &RecordBatch) -> Vec<(String, String)> {
        let ids = rows.column(0).as_string::<i32>();
        let units = rows.column(3).as_string::<i32>();
        (0..rows.num_rows())
            .map(|i| (ids.value(i)[24..].to_string(), units.value(i).to_string()))
            .collect()
    }

    #[test]
    fn the_first_stored_copy_wins_and_rows_come_out_by_timestamp() {
        let first = batch(&[event(1, 5, "a"), event(2, 9, "a"), event(3, 1, "a")]);
        let second = batch(&[event(2, 4, "b"), event(1, 5, "b"), event(3, 1, "b")]);
        let d = dedupe(&[first, second]).expect("dedupe");
        assert_eq!(d.dropped, 3);
        assert_eq!(d.digest.count, 3);
        // Timestamps fall with the id: id 3 first. Ties on received_at: the earlier part.
        assert_eq!(
            units(&d.rows),
            vec![
                ("000000000003".into(), "a".into()),
                ("000000000002".into(), "b".into()),
                ("000000000001".into(), "a".into()),
            ]
        );
        assert_eq!(d.rows.schema(), event_parquet::schema());
    }

    #[test]
    fn a_shard_keeps_only_its_ids() {
        let all = batch(&(0..50).map(|n| event(n, 0, "u")).collect::<Vec<_>>());
        let total: usize = (0..4)
            .map(|s| {
                let part = shard_rows(all.clone(), s, 4).expect("shard");
                let ids = part.column(0).as_string::<i32>();
                assert!(ids
                    .iter()
                    .all(|id| digest::shard_of(id.unwrap_or_default(), 4) == s));
                part.num_rows()
            })
            .sum();
        assert_eq!(total, 50);
    }

    #[test]
    fn one_complete_generation_alone_is_done() {
        let file = |name: &str| ArchiveFile {
            key: format!("2026/01/05/09/{name}"),
            size: 1,
            kind: crate::archive::bucket::kind_of(name).expect("archive name"),
        };
        let done = [
            file("events_cab_0-2.parquet"),
            file("events_cab_1-2.parquet"),
        ];
        assert!(!needs_compaction(&done));
        assert!(needs_compaction(&done[..1]), "a shard missing");
        let raw = file("events_01900000-0000-7000-8000-000000000001.parquet");
        assert!(needs_compaction(&[done[0].clone(), done[1].clone(), raw]));
        let other = file("events_ccd_0-1.parquet");
        assert!(needs_compaction(&[done[0].clone(), done[1].clone(), other]));
        assert_eq!(
            generation(&done),
            generation(&[done[1].clone(), done[0].clone()])
        );
        assert_eq!(generation(&done).len(), 16);
    }
}
