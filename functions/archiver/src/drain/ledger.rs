//! The run's acknowledgement ledger: where each buffered event came from, which messages the
//! run has met already, and what is to be deleted from the queue or settled in exp.pending_handoffs in
//! PostgreSQL once every file holding an origin's events is stored.

use std::collections::HashMap;

use eis_store::EventKey;

use crate::drain::batcher::SourceId;
use crate::drain::queue::MAX_DELETE_BATCH;

/// Where a buffered event came from: what acknowledging it takes.
pub enum Origin {
    Message {
        message_id: String,
        receipt_handle: String,
    },
    Swept(Vec<EventKey>),
}

/// A message already met in this run. A message can come back within a run when its
/// visibility timeout is shorter than the run: it is then neither buffered nor counted again.
pub enum Seen {
    /// Its events are buffered under this id, not yet all stored.
    Pending(SourceId),
    /// Its events are stored; its delete may already be under way.
    Done,
    /// Undecodable, or its events could not be buffered: left in the queue.
    Ignored,
}

#[derive(Default)]
pub struct Ledger {
    seen: HashMap<String, Seen>,
    to_delete: Vec<String>,
    to_mark: Vec<EventKey>,
}

impl Ledger {
    pub fn seen(&self, message_id: &str) -> Option<&Seen> {
        self.seen.get(message_id)
    }

    /// A first meeting. An origin that completed while it was buffered (no events) is
    /// already Done and stays so.
    pub fn met(&mut self, message_id: String, seen: Seen) {
        self.seen.entry(message_id).or_insert(seen);
    }

    /// A message whose events are all stored came back: only this receipt deletes it now.
    pub fn delete_again(&mut self, receipt_handle: String) {
        self.to_delete.push(receipt_handle);
    }

    /// An origin whose files are all stored: delete its message or mark its rows.
    pub fn completed(&mut self, origin: Origin) {
        match origin {
            Origin::Message {
                message_id,
                receipt_handle,
            } => {
                self.to_delete.push(receipt_handle);
                self.seen.insert(message_id, Seen::Done);
            }
            Origin::Swept(keys) => self.to_mark.extend(keys),
        }
    }

    /// The next delete batch: full batches only, unless `all` (deletes are cheapest 10 at
    /// a time).
    pub fn next_deletes(&mut self, all: bool) -> Option<Vec<String>> {
        let ready = self.to_delete.len() >= MAX_DELETE_BATCH || (all && !self.to_delete.is_empty());
        ready.then(|| {
            let n = self.to_delete.len().min(MAX_DELETE_BATCH);
            self.to_delete.drain(..n).collect()
        })
    }

    /// The swept rows to mark handed off, all at once at the end of the drain.
    pub fn take_marks(&mut self) -> Vec<EventKey> {
        std::mem::take(&mut self.to_mark)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: usize) -> Origin {
        Origin::Message {
            message_id: format!("m{n}"),
            receipt_handle: format!("r{n}"),
        }
    }

    #[test]
    fn deletes_go_in_full_batches_until_the_end() {
        let mut ledger = Ledger::default();
        for n in 0..25 {
            ledger.completed(message(n));
        }
        assert!(matches!(ledger.seen("m3"), Some(Seen::Done)));
        let sizes = |ledger: &mut Ledger, all| {
            std::iter::from_fn(|| ledger.next_deletes(all).map(|b| b.len())).collect::<Vec<_>>()
        };
        assert_eq!(sizes(&mut ledger, false), vec![10, 10]);
        assert_eq!(sizes(&mut ledger, true), vec![5]);
        assert_eq!(sizes(&mut ledger, true), Vec::<usize>::new());
    }

    #[test]
    fn a_completed_origin_stays_done_and_swept_rows_wait_for_the_end() {
        let mut ledger = Ledger::default();
        ledger.completed(message(1));
        ledger.met("m1".into(), Seen::Pending(0));
        assert!(matches!(ledger.seen("m1"), Some(Seen::Done)));
        let key = (uuid::Uuid::nil(), chrono::Utc::now());
        ledger.completed(Origin::Swept(vec![key]));
        assert_eq!(ledger.take_marks(), vec![key]);
        assert!(ledger.take_marks().is_empty());
    }
}
