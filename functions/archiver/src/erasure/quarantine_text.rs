//! Which quarantine records belong to a unit. A record keeps the text as the client sent it,
//! which did not pass the contract: it may be one event, a batch body, or not JSON at all.
//! A text that parses is searched for objects naming the unit (`unit_type` and `unit_id`,
//! anywhere in it); one that does not parse belongs to every unit whose id it holds as a JSON
//! string: erasure would rather remove a broken text that names the person than keep it.

use chrono::{DateTime, Utc};
use eis_contract::{Quarantined, Tombstones};
use serde_json::Value;

/// A unit an object in the text names, with the object's `timestamp` when it reads as one.
struct Named<'a> {
    unit_type: &'a str,
    unit_id: &'a str,
    timestamp: Option<DateTime<Utc>>,
}

fn named_units<'a>(value: &'a Value, found: &mut Vec<Named<'a>>) {
    match value {
        Value::Object(object) => {
            if let (Some(Value::String(unit_type)), Some(Value::String(unit_id))) =
                (object.get("unit_type"), object.get("unit_id"))
            {
                let timestamp = match object.get("timestamp") {
                    Some(Value::String(t)) => eis_contract::parse_timestamp(t),
                    _ => None,
                };
                found.push(Named {
                    unit_type,
                    unit_id,
                    timestamp,
                });
            }
            object.values().for_each(|v| named_units(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| named_units(v, found)),
        _ => {}
    }
}

/// Whether a record of the queue is of an erased unit and covered by its tombstone: it is not
/// archived. A text that does not parse names no unit here (the tombstones hold hashes, not
/// ids to look for); the erasure's own scan of the quarantine finds those.
pub fn erased(record: &Quarantined, tombstones: &Tombstones) -> bool {
    if tombstones.is_empty() {
        return false;
    }
    let Ok(value) = serde_json::from_str::<Value>(&record.raw) else {
        return false;
    };
    let mut found = Vec::new();
    named_units(&value, &mut found);
    found.iter().any(|n| {
        let timestamp = n.timestamp.unwrap_or(record.received_at);
        tombstones.erased(n.unit_type, n.unit_id, timestamp, record.received_at)
    })
}

/// Whether a record names the unit (see the module's notes).
pub fn mentions(record: &Quarantined, unit_type: &str, unit_id: &str) -> bool {
    match serde_json::from_str::<Value>(&record.raw) {
        Ok(value) => {
            let mut found = Vec::new();
            named_units(&value, &mut found);
            found
                .iter()
                .any(|n| n.unit_type == unit_type && n.unit_id == unit_id)
        }
        Err(_) => {
            let quoted = Value::String(unit_id.to_string()).to_string();
            record.raw.contains(&quoted)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(raw: &str) -> Quarantined {
        Quarantined {
            record_id: uuid::Uuid::from_u128(1),
            request_id: "r".into(),
            route: "/events/batch".into(),
            scope: eis_contract::Scope::Request,
            batch_index: None,
            received_at: crate::test_events::utc("2026-12-04T10:00:00Z"),
            code: "invalid_json".into(),
            message: "m".into(),
            raw: raw.into(),
            raw_lossy: false,
            raw_bytes: raw.len() as u64,
            raw_truncated: false,
            experiments: vec![],
            violations: vec![],
        }
    }

    #[test]
    fn a_record_belongs_to_the_units_its_text_names() {
        // (text, mentions user/u-1)
        let cases = [
            (
                r#"{"unit_type":"user","unit_id":"u-1","timestamp":"x"}"#,
                true,
            ),
            (
                r#"{"events":[{"unit_type":"user","unit_id":"u-2"},{"unit_type":"user","unit_id":"u-1"}]}"#,
                true,
            ),
            (r#"{"unit_type":"device","unit_id":"u-1"}"#, false),
            (r#"{"unit_type":"user","unit_id":"u-10"}"#, false),
            (r#"{"payload":{"note":"u-1"}}"#, false),
            (r#"{"events":[{"unit_type":"user","unit_id":"u-1""#, true),
            (r#"{"events":[{"unit_type":"user","unit_id":"u-10""#, false),
        ];
        for (raw, expected) in cases {
            assert_eq!(mentions(&record(raw), "user", "u-1"), expected, "{raw}");
        }
    }
}
