//! The rows of an archive file that erasure removes: those of erased units that the
//! tombstones' rule covers (eis_contract::Tombstones). Pure; used by compaction (every
//! rewrite of an hour drops them) and by the erasure's check of a candidate file.

use std::collections::HashMap;

use arrow::array::{AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::TimestampMicrosecondType;
use chrono::{DateTime, Utc};
use eis_contract::{Tombstone, Tombstones};

use crate::archive::columns::{invalid, named, Text};
use crate::archive::event_parquet::FormatError;

/// Which file an error is about.
const FILE: &str = "archive file";

/// Which rows of `batch` are erased (true), or None when no row is: the batch needs no
/// rewrite. The units are hashed once each, not once per row.
pub fn erased_rows(
    batch: &RecordBatch,
    tombstones: &Tombstones,
) -> Result<Option<BooleanArray>, FormatError> {
    if tombstones.is_empty() || batch.num_rows() == 0 {
        return Ok(None);
    }
    let text = |name: &str| {
        named(batch, name, FILE).and_then(|c| Text::of(c).ok_or_else(|| invalid(FILE, name)))
    };
    let time = |name: &str| {
        named(batch, name, FILE)?
            .as_primitive_opt::<TimestampMicrosecondType>()
            .ok_or_else(|| invalid(FILE, name))
    };
    let (types, ids) = (text("unit_type")?, text("unit_id")?);
    let (timestamps, received) = (time("timestamp")?, time("received_at")?);
    let micros = |v: i64, name: &str| -> Result<DateTime<Utc>, FormatError> {
        DateTime::from_timestamp_micros(v).ok_or_else(|| invalid(FILE, name))
    };
    let mut units: HashMap<(&str, &str), Option<Tombstone>> = HashMap::new();
    let mut any = false;
    let mut erased = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let (Some(unit_type), Some(unit_id)) = (types.get(row), ids.get(row)) else {
            return Err(invalid(FILE, "unit_type/unit_id"));
        };
        let tombstone = *units
            .entry((unit_type, unit_id))
            .or_insert_with(|| tombstones.of(unit_type, unit_id));
        let hit = match tombstone {
            Some(t) => t.covers(
                micros(timestamps.value(row), "timestamp")?,
                micros(received.value(row), "received_at")?,
            ),
            None => false,
        };
        any |= hit;
        erased.push(hit);
    }
    Ok(any.then(|| BooleanArray::from(erased)))
}

/// `batch` without its erased rows, and how many those were.
pub fn without_erased(
    batch: RecordBatch,
    tombstones: &Tombstones,
) -> Result<(RecordBatch, u64), FormatError> {
    let Some(erased) = erased_rows(&batch, tombstones)? else {
        return Ok((batch, 0));
    };
    let keep = arrow::compute::not(&erased)?;
    let kept = arrow::compute::filter_record_batch(&batch, &keep)?;
    let removed = (batch.num_rows() - kept.num_rows()) as u64;
    Ok((kept, removed))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use eis_contract::{unit_hash, Event};

    use super::*;
    use crate::archive::event_parquet::EventColumns;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 4, 10, minute, 0)
            .single()
            .expect("time")
    }

    fn event(n: u128, unit: &str, timestamp: u32) -> Event {
        Event {
            unit_id: unit.into(),
            received_at: at(timestamp + 1),
            ..crate::test_events::bare(n, at(timestamp))
        }
    }

    #[test]
    fn only_the_covered_rows_of_erased_units_go() {
        let key = vec![1u8; 32];
        let erased_at = at(30);
        let tombstones = Tombstones::new(
            key.clone(),
            HashMap::from([(
                unit_hash(&key, "user", "gone"),
                Tombstone {
                    erased_at,
                    suppress: false,
                },
            )]),
        );
        let mut columns = EventColumns::new();
        // gone before, gone after (new activity: kept), someone else before.
        for e in [
            event(1, "gone", 10),
            event(2, "gone", 40),
            event(3, "kept", 10),
        ] {
            columns.push(&e).expect("push");
        }
        let batch = columns.finish().expect("batch");
        let (kept, removed) = without_erased(batch.clone(), &tombstones).expect("filter");
        assert_eq!((kept.num_rows(), removed), (2, 1));
        let units: Vec<_> = kept.column(3).as_string::<i32>().iter().flatten().collect();
        assert_eq!(units, ["gone", "kept"]);
        let (same, none) = without_erased(batch, &Tombstones::default()).expect("no tombstones");
        assert_eq!((same.num_rows(), none), (3, 0));
    }
}
