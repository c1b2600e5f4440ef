//! Grouping an hour partition's events into files, and knowing when each source of events
//! (a queue message, a set of swept rows) is wholly stored. Pure: no I/O, no clock.
//!
//! A source may only be acknowledged (its message deleted, its pending hand-off keys settled) once
//! every file holding one of its events is stored, so each source counts the files it is
//! still waiting for. A file that fails to store fails its sources for the rest of the run:
//! they are not acknowledged, and the next run archives them again.
//! (Over 400 lines with its unit tests; the code is ~250.)

use std::collections::{BTreeMap, HashMap, VecDeque};

use eis_contract::Event;

use crate::archive::event_parquet::{EventColumns, FormatError};
use crate::archive::partition::HourPartition;

/// When a partition's buffer becomes a file, and how much may be held in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferLimits {
    /// A buffer reaching this many events becomes a file (`EIS_MAX_FILE_EVENTS`).
    pub max_file_events: usize,
    /// ... or this many column bytes (`EIS_MAX_FILE_BYTES`).
    pub max_file_bytes: usize,
    /// Column bytes held in all (buffers, and files not yet stored) above which receiving
    /// pauses and the largest buffer is written early (`EIS_MAX_BUFFERED_BYTES`).
    pub max_held_bytes: usize,
}

pub type SourceId = usize;
pub type ChunkId = u64;

/// A buffer cut for writing: one future object.
pub struct Chunk {
    pub id: ChunkId,
    pub partition: HourPartition,
    pub columns: EventColumns,
}

struct Source<S> {
    /// Taken when the source completes.
    payload: Option<S>,
    /// Buffers and chunks holding its events that are not stored yet.
    pending: usize,
    failed: bool,
}

struct Open {
    columns: EventColumns,
    /// Sources with events in this buffer, each once.
    sources: Vec<SourceId>,
}

struct InFlight {
    sources: Vec<SourceId>,
    bytes: usize,
}

/// Buffers per partition plus the bookkeeping of which sources each buffer and chunk holds.
/// `S` is what acknowledging a source needs (a receipt handle, the swept rows' keys).
pub struct Batcher<S> {
    limits: BufferLimits,
    open: BTreeMap<HourPartition, Open>,
    sources: Vec<Source<S>>,
    in_flight: HashMap<ChunkId, InFlight>,
    ready: VecDeque<Chunk>,
    completed: Vec<S>,
    next_chunk: ChunkId,
    buffered_bytes: usize,
    in_flight_bytes: usize,
}

impl<S> Batcher<S> {
    pub fn new(limits: BufferLimits) -> Self {
        Self {
            limits,
            open: BTreeMap::new(),
            sources: Vec::new(),
            in_flight: HashMap::new(),
            ready: VecDeque::new(),
            completed: Vec::new(),
            next_chunk: 0,
            buffered_bytes: 0,
            in_flight_bytes: 0,
        }
    }

    /// Buffers the events of one source. Buffers reaching a file limit are cut into ready
    /// chunks. A source without events completes at once. On an error the source is failed
    /// (never completes) and the error returned; events already buffered stay (they will be
    /// written, which at worst duplicates them).
    pub fn add(&mut self, payload: S, events: &[Event]) -> Result<SourceId, FormatError> {
        let id = self.sources.len();
        self.sources.push(Source {
            payload: Some(payload),
            pending: 0,
            failed: false,
        });
        for event in events {
            if let Err(e) = self.push(id, event) {
                self.fail_source(id);
                return Err(e);
            }
        }
        self.complete_if_done(id);
        Ok(id)
    }

    fn push(&mut self, id: SourceId, event: &Event) -> Result<(), FormatError> {
        let partition = HourPartition::of(event.timestamp);
        let open = self.open.entry(partition).or_insert_with(|| Open {
            columns: EventColumns::new(),
            sources: Vec::new(),
        });
        let bytes = open.columns.push(event)?;
        // Events of one source arrive together, so "not the last one" means "not there".
        if open.sources.last() != Some(&id) {
            open.sources.push(id);
            if let Some(source) = self.sources.get_mut(id) {
                source.pending += 1;
            }
        }
        self.buffered_bytes += bytes;
        let full = open.columns.len() >= self.limits.max_file_events
            || open.columns.bytes() >= self.limits.max_file_bytes;
        if full {
            self.cut(partition);
        }
        Ok(())
    }

    fn cut(&mut self, partition: HourPartition) {
        let Some(open) = self.open.remove(&partition) else {
            return;
        };
        let id = self.next_chunk;
        self.next_chunk += 1;
        let bytes = open.columns.bytes();
        self.buffered_bytes -= bytes;
        self.in_flight_bytes += bytes;
        self.in_flight.insert(
            id,
            InFlight {
                sources: open.sources,
                bytes,
            },
        );
        self.ready.push_back(Chunk {
            id,
            partition,
            columns: open.columns,
        });
    }

    /// Cuts every buffer: the end of a run.
    pub fn cut_all(&mut self) {
        let partitions: Vec<HourPartition> = self.open.keys().copied().collect();
        for partition in partitions {
            self.cut(partition);
        }
    }

    /// Cuts the buffer holding the most bytes, if any: frees memory under pressure.
    pub fn cut_largest(&mut self) -> bool {
        let largest = self
            .open
            .iter()
            .max_by_key(|(_, open)| open.columns.bytes())
            .map(|(partition, _)| *partition);
        match largest {
            Some(partition) => {
                self.cut(partition);
                true
            }
            None => false,
        }
    }

    /// The next chunk to write, oldest cut first.
    pub fn next_ready(&mut self) -> Option<Chunk> {
        self.ready.pop_front()
    }

    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Bytes held in buffers and in chunks not yet stored.
    pub fn held_bytes(&self) -> usize {
        self.buffered_bytes + self.in_flight_bytes
    }

    pub fn under_pressure(&self) -> bool {
        self.held_bytes() >= self.limits.max_held_bytes
    }

    /// The chunk's object is stored: its sources are one file closer to complete.
    pub fn stored(&mut self, chunk: ChunkId) {
        let Some(done) = self.settle(chunk) else {
            return;
        };
        for id in done.sources {
            if let Some(source) = self.sources.get_mut(id) {
                source.pending = source.pending.saturating_sub(1);
            }
            self.complete_if_done(id);
        }
    }

    /// The chunk's object could not be stored: its sources must not be acknowledged.
    pub fn failed(&mut self, chunk: ChunkId) {
        if let Some(lost) = self.settle(chunk) {
            for id in lost.sources {
                self.fail_source(id);
            }
        }
    }

    fn settle(&mut self, chunk: ChunkId) -> Option<InFlight> {
        let done = self.in_flight.remove(&chunk)?;
        self.in_flight_bytes -= done.bytes;
        Some(done)
    }

    fn fail_source(&mut self, id: SourceId) {
        if let Some(source) = self.sources.get_mut(id) {
            source.failed = true;
            source.payload = None;
        }
    }

    fn complete_if_done(&mut self, id: SourceId) {
        if let Some(source) = self.sources.get_mut(id) {
            if source.pending == 0 && !source.failed {
                if let Some(payload) = source.payload.take() {
                    self.completed.push(payload);
                }
            }
        }
    }

    /// Sources completed since the last call: safe to acknowledge now.
    pub fn take_completed(&mut self) -> Vec<S> {
        std::mem::take(&mut self.completed)
    }

    /// The payload of a source still waiting for its files (to refresh a receipt handle).
    pub fn pending_payload(&mut self, id: SourceId) -> Option<&mut S> {
        self.sources.get_mut(id).and_then(|s| s.payload.as_mut())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_events::{event, events};

    fn limits(max_file_events: usize) -> BufferLimits {
        BufferLimits {
            max_file_events,
            max_file_bytes: usize::MAX,
            max_held_bytes: usize::MAX,
        }
    }

    fn drain_ready<S>(b: &mut Batcher<S>) -> Vec<Chunk> {
        std::iter::from_fn(|| b.next_ready()).collect()
    }

    #[test]
    fn a_full_partition_rolls_over_to_another_file() {
        let mut b = Batcher::new(limits(100));
        b.add("m1", &events(0..150, "2026-01-05T09:00:00Z"))
            .expect("add");
        b.add("m2", &events(150..250, "2026-01-05T09:30:00Z"))
            .expect("add");
        let first = drain_ready(&mut b);
        assert_eq!(
            first.iter().map(|c| c.columns.len()).collect::<Vec<_>>(),
            vec![100, 100]
        );
        b.cut_all();
        let rest = drain_ready(&mut b);
        assert_eq!(
            rest.iter().map(|c| c.columns.len()).collect::<Vec<_>>(),
            vec![50]
        );
        assert!(first
            .iter()
            .chain(&rest)
            .all(|c| c.partition.folder() == "2026/01/05/09/"));
    }

    #[test]
    fn a_partition_also_rolls_over_by_bytes() {
        let one = {
            let mut c = EventColumns::new();
            c.push(&event(0, "2026-01-05T09:00:00Z")).expect("push")
        };
        let mut b = Batcher::new(BufferLimits {
            max_file_events: usize::MAX,
            max_file_bytes: one * 10,
            max_held_bytes: usize::MAX,
        });
        b.add("m", &events(0..25, "2026-01-05T09:00:00Z"))
            .expect("add");
        let sizes: Vec<usize> = drain_ready(&mut b)
            .iter()
            .map(|c| c.columns.len())
            .collect();
        assert_eq!(sizes, vec![10, 10]);
    }

    #[test]
    fn a_source_completes_only_when_all_its_files_are_stored() {
        let mut b = Batcher::new(limits(100));
        // m1 spans two hours and a rollover: three files in all.
        let mut m1 = events(0..150, "2026-01-05T09:00:00Z");
        m1.extend(events(150..160, "2026-01-02T03:00:00Z"));
        b.add("m1", &m1).expect("add");
        b.add("m2", &events(160..170, "2026-01-02T03:00:00Z"))
            .expect("add");
        b.cut_all();
        let chunks = drain_ready(&mut b);
        assert_eq!(chunks.len(), 3);
        assert!(b.take_completed().is_empty());

        let (old_hour, nine) = chunks
            .iter()
            .partition::<Vec<&Chunk>, _>(|c| c.partition.folder() == "2026/01/02/03/");
        b.stored(old_hour[0].id);
        assert_eq!(
            b.take_completed(),
            vec!["m2"],
            "m2 is wholly in the stored file"
        );
        b.stored(nine[0].id);
        assert!(
            b.take_completed().is_empty(),
            "m1 still has a file to store"
        );
        b.stored(nine[1].id);
        assert_eq!(b.take_completed(), vec!["m1"]);
        assert_eq!(b.held_bytes(), 0);
    }

    #[test]
    fn a_failed_file_fails_its_sources_for_good() {
        let mut b = Batcher::new(limits(1000));
        let mut m1 = events(0..5, "2026-01-05T09:00:00Z");
        m1.extend(events(5..10, "2026-01-05T10:00:00Z"));
        b.add("m1", &m1).expect("add");
        b.add("m2", &events(10..15, "2026-01-05T10:00:00Z"))
            .expect("add");
        b.cut_all();
        let chunks = drain_ready(&mut b);
        let ten = chunks
            .iter()
            .find(|c| c.partition.folder() == "2026/01/05/10/")
            .expect("10h");
        let nine = chunks
            .iter()
            .find(|c| c.partition.folder() == "2026/01/05/09/")
            .expect("9h");
        b.failed(ten.id);
        b.stored(nine.id);
        assert!(
            b.take_completed().is_empty(),
            "both had events in the failed file"
        );
        assert_eq!(b.held_bytes(), 0);
    }

    #[test]
    fn a_source_without_events_completes_at_once() {
        let mut b: Batcher<&str> = Batcher::new(limits(10));
        b.add("empty", &[]).expect("add");
        assert_eq!(b.take_completed(), vec!["empty"]);
    }

    #[test]
    fn pressure_cuts_the_largest_buffer_first() {
        let one = {
            let mut c = EventColumns::new();
            c.push(&event(0, "2026-01-05T09:00:00Z")).expect("push")
        };
        let mut b = Batcher::new(BufferLimits {
            max_file_events: 1000,
            max_file_bytes: usize::MAX,
            max_held_bytes: one * 12,
        });
        b.add("a", &events(0..3, "2026-01-05T09:00:00Z"))
            .expect("add");
        assert!(!b.under_pressure());
        b.add("b", &events(3..12, "2026-01-05T10:00:00Z"))
            .expect("add");
        assert!(b.under_pressure());
        assert!(b.cut_largest());
        let chunk = b.next_ready().expect("a chunk");
        assert_eq!(chunk.partition.folder(), "2026/01/05/10/");
        assert_eq!(chunk.columns.len(), 9);
        assert!(b.under_pressure(), "a cut chunk is held until it is stored");
        b.stored(chunk.id);
        assert!(!b.under_pressure());
        assert_eq!(b.take_completed(), vec!["b"]);
    }

    #[test]
    fn a_pending_payload_can_be_refreshed_until_it_completes() {
        let mut b = Batcher::new(limits(10));
        let id = b
            .add(
                String::from("handle-1"),
                &events(0..2, "2026-01-05T09:00:00Z"),
            )
            .expect("add");
        if let Some(handle) = b.pending_payload(id) {
            *handle = "handle-2".into();
        }
        b.cut_all();
        let chunk = b.next_ready().expect("chunk");
        b.stored(chunk.id);
        assert_eq!(b.take_completed(), vec!["handle-2".to_string()]);
        assert!(b.pending_payload(id).is_none());
    }
}
