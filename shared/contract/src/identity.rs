//! An event's identity is its `event_id`; its content digest tells a faithful retry (same
//! content under the same id) from a conflicting resend (other content under the same id).

use std::collections::HashMap;

use uuid::Uuid;

/// SHA-256 of the event's content in its canonical record form, truncated to 128 bits: far
/// beyond accidental collisions, and a colliding resend could only mask the sender's own
/// conflict. Stable across releases (it is stored in `exp.event_ids`). The content is what
/// two sends of one event_id must agree on to be the same event: everything the client sent,
/// not `received_at` and `flags`, which depend on when the server saw it. Computed by
/// [`crate::Encoded::new`], with the record, in one pass.
pub type ContentDigest = [u8; 16];

/// Where an event of a batch stands against the earlier events of the same batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InBatch {
    /// The first event of the batch with this id.
    First,
    /// Repeats the event at this earlier index, with the same content: stored once.
    CopyOf(usize),
    /// Repeats the id of the event at this earlier index with other content: rejected.
    ConflictsWith(usize),
}

/// Classifies each event against the first one of the batch that carries its id.
pub fn in_batch(events: &[(Uuid, ContentDigest)]) -> Vec<InBatch> {
    let mut first: HashMap<Uuid, usize> = HashMap::with_capacity(events.len());
    events
        .iter()
        .enumerate()
        .map(|(i, (id, digest))| match first.get(id) {
            None => {
                first.insert(*id, i);
                InBatch::First
            }
            Some(&j) if events[j].1 == *digest => InBatch::CopyOf(j),
            Some(&j) => InBatch::ConflictsWith(j),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{validate_event, Encoded, Event, Limits};

    fn content_digest(event: &Event) -> ContentDigest {
        Encoded::new(event).expect("encode").digest
    }
    use chrono::{TimeZone, Utc};

    fn event(body: &str, minute: u32) -> Event {
        let now = Utc
            .with_ymd_and_hms(2026, 11, 28, 10, minute, 0)
            .single()
            .expect("valid date");
        validate_event(body.as_bytes(), now, &Limits::default()).expect("valid event")
    }

    const ID: &str = "01900000-0000-7000-8000-000000000001";

    fn body(timestamp: &str, payload: &str) -> String {
        format!(
            r#"{{"event_id":"{ID}","event_type":"pantry_updated","unit_type":"user",
                "unit_id":"u-1","timestamp":"{timestamp}","payload":{payload}}}"#
        )
    }

    #[test]
    fn a_retry_has_the_same_digest_whenever_it_arrives() {
        let first = event(&body("2026-11-28T09:00:00Z", r#"{"a":1,"b":2}"#), 0);
        // Later, the same instant written another way, keys in another order.
        let mut retry = event(&body("2026-11-28T10:00:00+01:00", r#"{"b":2, "a":1}"#), 30);
        assert_ne!(first.received_at, retry.received_at);
        assert_eq!(content_digest(&first), content_digest(&retry));
        // A retry carries its own send time: not content either.
        retry.sent_at = Some(retry.received_at);
        assert_eq!(content_digest(&first), content_digest(&retry));
    }

    #[test]
    fn other_content_under_the_same_id_has_another_digest() {
        let first = event(&body("2026-11-28T09:00:00Z", r#"{"a":1}"#), 0);
        let cases = [
            body("2026-11-28T09:00:01Z", r#"{"a":1}"#),
            body("2026-11-28T09:00:00Z", r#"{"a":2}"#),
            body("2026-11-28T09:00:00Z", r#"{"a":1,"b":null}"#),
            body("2026-11-28T09:00:00Z", r#"{"a":"1"}"#),
        ];
        for case in cases {
            assert_ne!(
                content_digest(&first),
                content_digest(&event(&case, 0)),
                "{case}"
            );
        }
    }

    #[test]
    fn a_batch_is_classified_against_the_first_of_each_id() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let input = [
            (a, [1; 16]),
            (b, [2; 16]),
            (a, [1; 16]),
            (a, [9; 16]),
            (b, [2; 16]),
        ];
        assert_eq!(
            in_batch(&input),
            vec![
                InBatch::First,
                InBatch::First,
                InBatch::CopyOf(0),
                InBatch::ConflictsWith(0),
                InBatch::CopyOf(1),
            ]
        );
    }
}
