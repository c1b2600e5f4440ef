//! The quarantine record: what is kept of a rejected event (or of a request refused for its
//! body) so that it can be counted per variant, read back, and replayed once the contract or
//! the client is fixed. Its serde form travels on the archive hand-off and its fields are the
//! columns of `rejected/` in the archive (docs/quarantine.md).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::event::record_time;
use crate::rejection::{Rejection, Violation};

/// Whether the record holds one event's text or a whole request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// One event, refused by the rules (`POST /events`, or one element of a batch).
    Event,
    /// A body refused as a whole (`invalid_json`, a batch of the wrong shape).
    Request,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Event => "event",
            Scope::Request => "request",
        }
    }
}

/// Experiment and variant ids as the rejected text had them: any strings, not only UUIDs,
/// because the text did not pass the rules.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedVariant {
    pub experiment_id: String,
    pub variant_id: String,
}

/// Where and when the rejected text arrived.
#[derive(Debug, Clone, Copy)]
pub struct Arrival<'a> {
    pub request_id: &'a str,
    /// `POST /events` or `POST /events/batch`: replay reads a request-scope body as its
    /// route would.
    pub route: &'a str,
    pub received_at: DateTime<Utc>,
}

/// One quarantined text. Strict serde, as for event records: what is read back is exactly
/// what was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quarantined {
    /// Derived from (request_id, scope, batch_index): the same rejection written twice (an
    /// at-least-once hand-off) has the same id, and replay derives missing event ids from it.
    pub record_id: Uuid,
    pub request_id: String,
    pub route: String,
    pub scope: Scope,
    /// The event's position in its batch; `None` for `POST /events` and request scope.
    pub batch_index: Option<u32>,
    #[serde(with = "record_time")]
    pub received_at: DateTime<Utc>,
    pub code: String,
    pub message: String,
    /// The text as received (invalid UTF-8 replaced by U+FFFD, see `raw_lossy`), cut to the
    /// cap at a character boundary.
    pub raw: String,
    /// The text was not valid UTF-8: `raw` holds replacement characters where the client's
    /// bytes were, so it is not what the client sent and is never replayed. Absent on the
    /// hand-off when false, so that records without it read as before.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub raw_lossy: bool,
    /// The text's length in bytes before any cut.
    pub raw_bytes: u64,
    pub raw_truncated: bool,
    /// The experiment/variant pairs the text names, when it is an object with an
    /// `experiments` array of objects with string ids.
    pub experiments: Vec<NamedVariant>,
    /// `schema_violation`: every failure against the tracking plan (at most
    /// `plan::MAX_VIOLATIONS`). Absent on the hand-off when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<Violation>,
}

impl Quarantined {
    /// A rejected event; `raw` is kept up to `cap` bytes and read for its variants (at most
    /// `max_experiments` of them, see [`named_variants`]).
    pub fn event(
        arrival: Arrival<'_>,
        batch_index: Option<usize>,
        raw: &[u8],
        rejection: &Rejection,
        cap: usize,
        max_experiments: usize,
    ) -> Self {
        let named = named_variants(raw, max_experiments);
        Self::event_naming(arrival, batch_index, raw, rejection, cap, named)
    }

    /// A rejected event whose variants the caller has read already (and may have left out,
    /// to keep within a budget): `raw` is kept up to `cap` bytes.
    pub fn event_naming(
        arrival: Arrival<'_>,
        batch_index: Option<usize>,
        raw: &[u8],
        rejection: &Rejection,
        cap: usize,
        experiments: Vec<NamedVariant>,
    ) -> Self {
        let index = batch_index.and_then(|i| u32::try_from(i).ok());
        let mut record = Self::new(arrival, Scope::Event, index, raw, rejection, cap);
        record.experiments = experiments;
        record
    }

    /// Bytes of the record's variant strings (what they cost of a request's budget).
    pub fn variant_bytes(&self) -> usize {
        variant_bytes(&self.experiments)
    }

    /// Leaves the record's variants out: the last resort of a record too large for a message
    /// once its text is gone (never the case with the default bounds, see
    /// [`MAX_NAMED_ID_BYTES`]). False when it had none.
    pub fn shed_variants(&mut self) -> bool {
        let had = !self.experiments.is_empty();
        self.experiments.clear();
        had
    }

    /// A body refused as a whole, kept up to `cap` bytes.
    pub fn request(arrival: Arrival<'_>, raw: &[u8], rejection: &Rejection, cap: usize) -> Self {
        Self::new(arrival, Scope::Request, None, raw, rejection, cap)
    }

    fn new(
        arrival: Arrival<'_>,
        scope: Scope,
        batch_index: Option<u32>,
        raw: &[u8],
        rejection: &Rejection,
        cap: usize,
    ) -> Self {
        let text = String::from_utf8_lossy(raw);
        let mut record = Quarantined {
            raw_lossy: matches!(text, std::borrow::Cow::Owned(_)),
            record_id: record_id(arrival.request_id, scope, batch_index),
            request_id: arrival.request_id.to_string(),
            route: arrival.route.to_string(),
            scope,
            batch_index,
            received_at: crate::timestamp::normalise(arrival.received_at),
            code: rejection.code.as_str().to_string(),
            message: rejection.message.clone(),
            raw: text.into_owned(),
            raw_bytes: raw.len() as u64,
            raw_truncated: false,
            experiments: Vec::new(),
            violations: rejection.violations.clone(),
        };
        record.cut_raw(cap);
        record
    }

    /// Cuts `raw` to at most `cap` bytes, at a character boundary (never grows it).
    pub fn cut_raw(&mut self, cap: usize) {
        if self.raw.len() <= cap {
            return;
        }
        let mut end = cap;
        while !self.raw.is_char_boundary(end) {
            end -= 1;
        }
        self.raw.truncate(end);
        self.raw_truncated = true;
    }

    /// The event id a replay gives the `position`-th event of this record's text when that
    /// event has no `event_id`: the same on every replay.
    pub fn replay_event_id(&self, position: usize) -> Uuid {
        let mut hash = Sha256::new();
        hash.update(b"eis.replay\0");
        hash.update(self.record_id.as_bytes());
        hash.update(position.to_be_bytes());
        v8(hash)
    }
}

fn record_id(request_id: &str, scope: Scope, batch_index: Option<u32>) -> Uuid {
    let mut hash = Sha256::new();
    hash.update(b"eis.quarantine\0");
    hash.update(request_id.as_bytes());
    hash.update(b"\0");
    hash.update(scope.as_str().as_bytes());
    hash.update(b"\0");
    if let Some(i) = batch_index {
        hash.update(i.to_be_bytes());
    }
    v8(hash)
}

/// A UUID v8 (custom) from the first 16 bytes of a SHA-256.
fn v8(hash: Sha256) -> Uuid {
    let sum = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&sum[..16]);
    Uuid::new_v8(bytes)
}

#[derive(Deserialize)]
struct Loose {
    #[serde(default)]
    experiments: Option<serde_json::Value>,
}

/// The longest experiment or variant id a quarantine record keeps, in bytes; longer strings
/// are cut at a character boundary. A real id is a 36-byte UUID; 128 leaves room for its
/// braced or `urn:uuid:` forms and for the readable names a broken client may send, while 32
/// pairs (`Limits::max_experiments`) then cost at most 8 KiB of a record, JSON-escaped at
/// most 48 KiB: a record stripped of its text always fits an SQS message.
pub const MAX_NAMED_ID_BYTES: usize = 128;

/// Bytes of the strings of `pairs`.
pub fn variant_bytes(pairs: &[NamedVariant]) -> usize {
    pairs
        .iter()
        .map(|p| p.experiment_id.len() + p.variant_id.len())
        .sum()
}

/// `text` cut to [`MAX_NAMED_ID_BYTES`] at a character boundary.
fn capped_id(text: &str) -> String {
    let mut end = text.len().min(MAX_NAMED_ID_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// The experiment/variant string pairs of an event's text, read leniently: anything that is
/// not an object with an `experiments` array of such pairs yields what could be read. At
/// most `max` pairs, each id cut to [`MAX_NAMED_ID_BYTES`].
pub fn named_variants(raw: &[u8], max: usize) -> Vec<NamedVariant> {
    let Ok(Loose {
        experiments: Some(serde_json::Value::Array(items)),
    }) = serde_json::from_slice::<Loose>(raw)
    else {
        return Vec::new();
    };
    let mut pairs: Vec<NamedVariant> = items
        .iter()
        .filter_map(|item| {
            Some(NamedVariant {
                experiment_id: capped_id(item.get("experiment_id")?.as_str()?),
                variant_id: capped_id(item.get("variant_id")?.as_str()?),
            })
        })
        .take(max)
        .collect();
    pairs.sort();
    pairs.dedup();
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::code::Code;
    use chrono::TimeZone;
    use serde_json::json;

    fn arrival() -> Arrival<'static> {
        Arrival {
            request_id: "req-1",
            route: "POST /events/batch",
            received_at: Utc
                .with_ymd_and_hms(2026, 12, 2, 10, 0, 0)
                .single()
                .expect("valid date"),
        }
    }

    fn rejection() -> Rejection {
        Rejection::new(Code::MissingTimestamp, "`timestamp` is required")
    }

    #[test]
    fn an_event_keeps_its_text_code_and_variants() {
        let raw = br#"{"event_type":"plan_accepted","experiments":[
            {"experiment_id":"e2","variant_id":"b"},{"experiment_id":"e1","variant_id":"a"},
            {"experiment_id":"e1","variant_id":"a"},{"experiment_id":3,"variant_id":"x"}]}"#;
        let q = Quarantined::event(arrival(), Some(4), raw, &rejection(), 1024, 32);
        assert_eq!(q.raw.as_bytes(), raw);
        assert_eq!((q.raw_bytes, q.raw_truncated), (raw.len() as u64, false));
        assert_eq!(
            (q.code.as_str(), q.batch_index),
            ("missing_timestamp", Some(4))
        );
        let names: Vec<_> = q
            .experiments
            .iter()
            .map(|v| (v.experiment_id.as_str(), v.variant_id.as_str()))
            .collect();
        assert_eq!(names, [("e1", "a"), ("e2", "b")]);
    }

    #[test]
    fn text_is_cut_at_a_character_boundary_and_marked() {
        let raw = "{\"note\":\"ééééé\"}".as_bytes();
        for cap in 0..raw.len() {
            let q = Quarantined::request(arrival(), raw, &rejection(), cap);
            assert!(q.raw.len() <= cap && q.raw_truncated, "cap {cap}");
            assert!(raw.starts_with(q.raw.as_bytes()));
            assert!(
                cap - q.raw.len() < 2,
                "cap {cap}: cut more than one character"
            );
            assert_eq!(q.raw_bytes, raw.len() as u64);
        }
    }

    #[test]
    fn unreadable_text_has_no_variants() {
        for raw in [
            &b"{not json"[..],
            b"[1,2]",
            b"{\"experiments\":{}}",
            b"\xff\xfe",
        ] {
            assert!(named_variants(raw, 32).is_empty());
        }
    }

    #[test]
    fn named_ids_are_capped_in_length_and_number() {
        let long = "x".repeat(MAX_NAMED_ID_BYTES * 100);
        // 'é' is two bytes: a cut never splits it.
        let accented = "é".repeat(MAX_NAMED_ID_BYTES);
        let pair = |e: &str, v: &str| json!({"experiment_id": e, "variant_id": v});
        let many: Vec<_> = (0..1000)
            .map(|i| pair(&format!("e{i:04}"), &long))
            .collect();
        // (what the text names, the pairs kept, the longest id kept, their bytes at most)
        let cases = [
            (vec![pair("e", "a")], 1, 1, 2),
            (
                vec![pair(&long, &long)],
                1,
                MAX_NAMED_ID_BYTES,
                2 * MAX_NAMED_ID_BYTES,
            ),
            (
                vec![pair(&accented, "a")],
                1,
                MAX_NAMED_ID_BYTES,
                MAX_NAMED_ID_BYTES + 1,
            ),
            (many, 32, MAX_NAMED_ID_BYTES, 32 * 2 * MAX_NAMED_ID_BYTES),
        ];
        for (i, (items, pairs, longest, bytes)) in cases.into_iter().enumerate() {
            let raw = serde_json::to_vec(&json!({ "experiments": items })).expect("json");
            let got = named_variants(&raw, 32);
            assert_eq!(got.len(), pairs, "case {i}");
            let max_id = got
                .iter()
                .flat_map(|p| [p.experiment_id.len(), p.variant_id.len()])
                .max();
            assert_eq!(max_id, Some(longest), "case {i}");
            assert!(variant_bytes(&got) <= bytes, "case {i}");
        }
    }

    #[test]
    fn ids_are_deterministic_per_request_scope_and_index() {
        let a = Quarantined::event(arrival(), Some(1), b"{}", &rejection(), 64, 32);
        let again = Quarantined::event(arrival(), Some(1), b"{}", &rejection(), 64, 32);
        let other = Quarantined::event(arrival(), Some(2), b"{}", &rejection(), 64, 32);
        let whole = Quarantined::request(arrival(), b"{}", &rejection(), 64);
        assert_eq!(a.record_id, again.record_id);
        assert_ne!(a.record_id, other.record_id);
        assert_ne!(a.record_id, whole.record_id);
        assert_eq!(a.replay_event_id(0), again.replay_event_id(0));
        assert_ne!(a.replay_event_id(0), a.replay_event_id(1));
        assert_eq!(a.record_id.get_version_num(), 8);
    }

    #[test]
    fn invalid_utf8_is_marked_lossy() {
        let q = Quarantined::event(arrival(), None, b"{\"a\":\"\xff\"}", &rejection(), 64, 32);
        assert!(q.raw_lossy && q.raw.contains('\u{FFFD}'));
        let fine = Quarantined::event(
            arrival(),
            None,
            "{\"a\":\"\u{FFFD}\"}".as_bytes(),
            &rejection(),
            64,
            32,
        );
        assert!(
            !fine.raw_lossy,
            "a replacement character the client sent is its text"
        );
        let text = serde_json::to_string(&q).expect("serialize");
        assert!(text.contains("\"raw_lossy\":true"));
        assert!(!serde_json::to_string(&fine)
            .expect("serialize")
            .contains("raw_lossy"));
        let back: Quarantined = serde_json::from_str(&text).expect("deserialize");
        assert_eq!(back, q);
    }

    #[test]
    fn the_record_round_trips() {
        let q = Quarantined::event(arrival(), None, b"{\"a\":1}", &rejection(), 64, 32);
        let text = serde_json::to_string(&q).expect("serialize");
        let back: Quarantined = serde_json::from_str(&text).expect("deserialize");
        assert_eq!(back, q);
    }
}
