//! The SQS message format of the archive hand-off, written by [`crate::publish`] (the ingest
//! function, and the archiver's replay) and read by the archiver: many records per message, so that a batch of 500
//! events costs a handful of requests, not 500.
//!
//! Bodies: `{"v":1,"events":[<record>, ...]}` where a record is `eis_contract::Event`'s serde
//! form, and `{"v":1,"rejected":[<quarantined>, ...]}` for `eis_contract::Quarantined`
//! records (the quarantine: input the contract rejected, kept under `rejected/`; the key stays
//! `rejected`, as messages already on a queue carry it). The archiver decodes with [`decode`]; a
//! body it cannot decode is left for the DLQ.

use std::borrow::Cow;
use std::ops::Range;

use eis_contract::{Event, Quarantined, ToRecord};
use serde::Deserialize;

pub const FORMAT_VERSION: u32 = 1;
const HEAD: &str = r#"{"v":1,"events":["#;
const QUARANTINE_HEAD: &str = r#"{"v":1,"rejected":["#;
const TAIL: &str = "]}";

/// SQS's limit on one message, and on the sum of the messages of one SendMessageBatch.
pub const SQS_MAX_MESSAGE_BYTES: usize = 262_144;

#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("event {event_id} needs {bytes} bytes, more than a message may hold ({max})")]
    EventTooLarge {
        event_id: uuid::Uuid,
        bytes: usize,
        max: usize,
    },
    #[error("a quarantine record needs {bytes} bytes without its text, more than {max}")]
    RecordTooLarge { bytes: usize, max: usize },
    #[error("cannot encode event: {0}")]
    Encode(#[from] serde_json::Error),
}

#[derive(Debug, thiserror::Error)]
#[error("undecodable archive message: {0}")]
pub struct DecodeError(String);

/// One message body and which of the input events it carries.
#[derive(Debug)]
pub struct PackedMessage {
    pub body: String,
    pub events: Range<usize>,
}

/// Packs events (or their records, written already: [`eis_contract::Encoded`]), in order,
/// into as few bodies of at most `max_bytes` as they fit in.
pub fn pack<E: ToRecord>(
    events: &[E],
    max_bytes: usize,
) -> Result<Vec<PackedMessage>, MessageError> {
    let mut records = Vec::with_capacity(events.len());
    for event in events {
        let record = sqs_safe(event.record()?);
        let alone = HEAD.len() + record.len() + TAIL.len();
        if alone > max_bytes {
            return Err(MessageError::EventTooLarge {
                event_id: event.event_id(),
                bytes: alone,
                max: max_bytes,
            });
        }
        records.push(record);
    }
    Ok(join(HEAD, &records, max_bytes))
}

/// Packs quarantine records into bodies of at most `max_bytes`. A record too large for a
/// message alone (JSON escaping can make it larger than its raw text) has its text cut
/// until it fits, and is marked truncated; without text, it loses its variants: a rejection
/// (and with it its request's others) is never dropped for its size.
pub fn pack_quarantined(
    records: &mut [Quarantined],
    max_bytes: usize,
) -> Result<Vec<PackedMessage>, MessageError> {
    let room = max_bytes.saturating_sub(QUARANTINE_HEAD.len() + TAIL.len());
    let mut texts = Vec::with_capacity(records.len());
    for record in records.iter_mut() {
        let text = loop {
            let text = sqs_safe(Cow::Owned(serde_json::to_string(record)?)).into_owned();
            let excess = text.len().saturating_sub(room);
            if excess == 0 {
                break text;
            }
            if record.raw.is_empty() {
                if record.shed_variants() {
                    continue;
                }
                return Err(MessageError::RecordTooLarge {
                    bytes: text.len(),
                    max: room,
                });
            }
            // Each byte of text takes at least one byte of the record: one cut usually does.
            record.cut_raw(record.raw.len().saturating_sub(excess));
        };
        texts.push(Cow::Owned(text));
    }
    Ok(join(QUARANTINE_HEAD, &texts, max_bytes))
}

/// Joins records that each fit alone into bodies `head … TAIL` of at most `max_bytes`.
fn join(head: &str, records: &[Cow<'_, str>], max_bytes: usize) -> Vec<PackedMessage> {
    let mut messages = Vec::new();
    let mut body = String::from(head);
    let mut first = 0;
    for (i, record) in records.iter().enumerate() {
        let separator = usize::from(i > first);
        if body.len() + separator + record.len() + TAIL.len() > max_bytes {
            body.push_str(TAIL);
            messages.push(PackedMessage {
                body: std::mem::replace(&mut body, String::from(head)),
                events: first..i,
            });
            first = i;
        } else if separator == 1 {
            body.push(',');
        }
        body.push_str(record);
    }
    if first < records.len() {
        body.push_str(TAIL);
        messages.push(PackedMessage {
            body,
            events: first..records.len(),
        });
    }
    messages
}

/// What one message carries.
#[derive(Debug, PartialEq)]
pub enum Message {
    Events(Vec<Event>),
    Quarantined(Vec<Quarantined>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    v: u32,
    events: Option<Vec<Event>>,
    rejected: Option<Vec<Quarantined>>,
}

pub fn decode(body: &str) -> Result<Message, DecodeError> {
    let parsed: Body = serde_json::from_str(body).map_err(|e| DecodeError(e.to_string()))?;
    if parsed.v != FORMAT_VERSION {
        return Err(DecodeError(format!("unknown format version {}", parsed.v)));
    }
    match (parsed.events, parsed.rejected) {
        (Some(events), None) => Ok(Message::Events(events)),
        (None, Some(rejected)) => Ok(Message::Quarantined(rejected)),
        _ => Err(DecodeError(
            "a body holds exactly one of `events` and `rejected`".into(),
        )),
    }
}

/// The events of an events body; a quarantine body is an error here (for readers that
/// expect events only: tests, benchmarks).
pub fn decode_events(body: &str) -> Result<Vec<Event>, DecodeError> {
    match decode(body)? {
        Message::Events(events) => Ok(events),
        Message::Quarantined(_) => Err(DecodeError("a quarantine body, not events".into())),
    }
}

/// SQS refuses U+FFFE and U+FFFF in message bodies; JSON may carry them escaped instead.
/// (Every other character serde_json leaves unescaped is allowed.)
fn sqs_safe(json: Cow<'_, str>) -> Cow<'_, str> {
    // One memchr-backed search per character: a search for either character at once walks
    // the text char by char, which was 5% of a batch request's CPU (callgrind, `make bench`).
    if json.contains('\u{fffe}') || json.contains('\u{ffff}') {
        Cow::Owned(
            json.replace('\u{fffe}', "\\ufffe")
                .replace('\u{ffff}', "\\uffff"),
        )
    } else {
        json
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::{TimeZone, Utc};

    fn event(n: u32, payload_bytes: usize) -> Event {
        let now = Utc.with_ymd_and_hms(2026, 11, 28, 10, 0, 0).unwrap();
        let body = serde_json::json!({
            "event_type": "pantry_updated",
            "unit_type": "user",
            "unit_id": format!("user-{n}"),
            "timestamp": "2026-11-28T09:59:00Z",
            "payload": {"note": "x".repeat(payload_bytes)},
        });
        eis_contract::validate_event(
            body.to_string().as_bytes(),
            now,
            &eis_contract::Limits::default(),
        )
        .unwrap()
    }

    #[test]
    fn packs_in_order_within_the_limit_and_decodes_back() {
        let events: Vec<Event> = (0..500).map(|n| event(n, 700)).collect();
        let messages = pack(&events, SQS_MAX_MESSAGE_BYTES).unwrap();
        assert!(
            messages.len() > 1 && messages.len() < 5,
            "{} messages",
            messages.len()
        );
        let mut decoded = Vec::new();
        let mut next = 0;
        for m in &messages {
            assert!(m.body.len() <= SQS_MAX_MESSAGE_BYTES);
            assert_eq!(m.events.start, next);
            next = m.events.end;
            decoded.extend(events_of(&m.body));
        }
        assert_eq!(decoded, events);
    }

    #[test]
    fn an_event_larger_than_a_message_is_an_error() {
        let err = pack(&[event(1, 2_000)], 1_000).unwrap_err();
        assert!(matches!(err, MessageError::EventTooLarge { .. }));
    }

    #[test]
    fn no_events_no_messages() {
        assert!(pack::<Event>(&[], SQS_MAX_MESSAGE_BYTES)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn characters_sqs_refuses_travel_escaped() {
        let mut e = event(1, 1);
        e.payload = eis_contract::JsonObject::parse("{\"odd\": \"a\u{fffe}b\u{ffff}\"}").unwrap();
        let m = pack(std::slice::from_ref(&e), SQS_MAX_MESSAGE_BYTES).unwrap();
        assert!(!m[0].body.contains(['\u{fffe}', '\u{ffff}']));
        assert_eq!(events_of(&m[0].body), vec![e]);
    }

    #[test]
    fn foreign_bodies_do_not_decode() {
        assert!(decode("not json").is_err());
        assert!(decode(r#"{"v":2,"events":[]}"#).is_err());
        assert!(decode(r#"{"v":1,"events":[{"event_id":"x"}]}"#).is_err());
        assert!(decode(r#"{"v":1,"events":[],"rejected":[]}"#).is_err());
        assert!(decode(r#"{"v":1}"#).is_err());
    }

    fn events_of(body: &str) -> Vec<Event> {
        decode_events(body).unwrap()
    }

    fn quarantined(n: usize, raw: &str) -> Quarantined {
        let arrival = eis_contract::Arrival {
            request_id: "req",
            route: "POST /events/batch",
            received_at: Utc.with_ymd_and_hms(2026, 12, 2, 10, 0, 0).unwrap(),
        };
        let rejection =
            eis_contract::validate_event(b"{}", arrival.received_at, &Default::default())
                .unwrap_err();
        eis_contract::Quarantined::event(arrival, Some(n), raw.as_bytes(), &rejection, 1 << 20, 32)
    }

    #[test]
    fn quarantine_records_pack_and_decode_back() {
        let mut records: Vec<Quarantined> = (0..300)
            .map(|n| quarantined(n, &"x".repeat(2_000)))
            .collect();
        let original = records.clone();
        let messages = pack_quarantined(&mut records, SQS_MAX_MESSAGE_BYTES).unwrap();
        assert!(messages.len() > 1);
        let mut decoded = Vec::new();
        for m in &messages {
            assert!(m.body.len() <= SQS_MAX_MESSAGE_BYTES);
            match decode(&m.body).unwrap() {
                Message::Quarantined(r) => decoded.extend(r),
                Message::Events(_) => panic!("a quarantine body decoded as events"),
            }
        }
        assert_eq!(decoded, original);
    }

    #[test]
    fn a_record_whose_escaped_text_overflows_a_message_is_cut_to_fit() {
        // Control characters take six bytes each once escaped: 60 000 of them need 360 000.
        let mut records = vec![quarantined(0, ""), quarantined(1, "{}")];
        records[0].raw = "\u{1}".repeat(60_000);
        let messages = pack_quarantined(&mut records, SQS_MAX_MESSAGE_BYTES).unwrap();
        assert!(messages
            .iter()
            .all(|m| m.body.len() <= SQS_MAX_MESSAGE_BYTES));
        assert!(records[0].raw_truncated && records[0].raw.len() < 60_000);
        assert!(records[0].raw.chars().all(|c| c == '\u{1}'));
        assert!(!records[1].raw_truncated);
    }

    #[test]
    fn a_record_too_large_without_its_text_loses_its_variants_not_its_neighbours() {
        let id = "\u{1}".repeat(eis_contract::MAX_NAMED_ID_BYTES);
        let mut records = vec![
            quarantined(0, "{}"),
            quarantined(1, "{}"),
            quarantined(2, "{}"),
        ];
        records[1].experiments = (0..10)
            .map(|_| eis_contract::NamedVariant {
                experiment_id: id.clone(),
                variant_id: id.clone(),
            })
            .collect();
        // 20 ids of 128 control characters escape to 15 KiB: more than a 4 KiB message.
        let messages = pack_quarantined(&mut records, 4096).expect("every record is packed");
        assert_eq!(messages.iter().map(|m| m.events.len()).sum::<usize>(), 3);
        assert!(messages.iter().all(|m| m.body.len() <= 4096));
        assert!(records[1].raw.is_empty() && records[1].experiments.is_empty());
        assert_eq!(records[0].raw, "{}");
    }
}
