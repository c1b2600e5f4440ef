//! Shredding: the frequent keys of `context`, `payload` and `metrics` in typed columns of
//! their own, the rest of each object in a remainder column, so that no key is ever lost.
//!
//! The shredded keys are declared here and nowhere else ([`CONTEXT`], [`PAYLOAD`],
//! [`METRICS`]): the keys of the canonical event (events/plan_generated.json, the seed every
//! test and benchmark sends) and the contract's standard keys (`eis_contract`'s
//! `STANDARD_EVENT_TYPES`, which may sit in `context` or `payload`). A stable list, so the
//! Glue table's columns do not change from hour to hour; changing it is a new format version.
//!
//! A value goes into its typed column only when it reads back exactly: the canonical text of
//! the object, rebuilt from the typed values and the remainder ([`rebuild`]), must equal the
//! stored text byte for byte; otherwise the whole object stays in the remainder. So a number
//! whose canonical text is not what `i64` prints (`1.0`, `1e30`), a string where the key's
//! column is an integer, or a `null`, stays JSON text.
//!
//! (Over 400 lines with its unit tests, which hold the rebuild to the stored text.)

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::value::RawValue;

/// What a shredded key's column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A JSON string: Parquet/Arrow string.
    Text,
    /// A JSON integer that `i64` holds, in its canonical text: int64.
    Integer,
    /// `true` / `false`: boolean.
    Boolean,
    /// An array of strings: list<string>.
    TextList,
}

/// The contract's standard keys (`eis_contract::standard`), which may sit in `context` or in
/// `payload`, all strings; `policy_version_id` comes first in `CONTEXT`, `plan_id` in both.
const STANDARD_TEXT: [&str; 7] = [
    "rejection_reason",
    "meal_id",
    "new_meal_id",
    "edit_type",
    "edit_details",
    "intervention_type",
    "plan_id",
];

/// Shredded `context` keys: the canonical event's six, then the standard keys.
pub const CONTEXT: &[(&str, Kind)] = &[
    ("policy_version_id", Kind::Text),
    ("app_version", Kind::Text),
    ("platform", Kind::Text),
    ("locale", Kind::Text),
    ("session_id", Kind::Text),
    ("model", Kind::Text),
    (STANDARD_TEXT[0], Kind::Text),
    (STANDARD_TEXT[1], Kind::Text),
    (STANDARD_TEXT[2], Kind::Text),
    (STANDARD_TEXT[3], Kind::Text),
    (STANDARD_TEXT[4], Kind::Text),
    (STANDARD_TEXT[5], Kind::Text),
    (STANDARD_TEXT[6], Kind::Text),
];

/// Shredded `payload` keys: the canonical event's nine, then the standard keys.
pub const PAYLOAD: &[(&str, Kind)] = &[
    ("plan_id", Kind::Text),
    ("week_start", Kind::Text),
    ("days", Kind::Integer),
    ("meals_per_day", Kind::Integer),
    ("dietary_tags", Kind::TextList),
    ("excluded_ingredients", Kind::TextList),
    ("pantry_items_used", Kind::Integer),
    ("retry", Kind::Boolean),
    ("summary", Kind::Text),
    ("policy_version_id", Kind::Text),
    (STANDARD_TEXT[0], Kind::Text),
    (STANDARD_TEXT[1], Kind::Text),
    (STANDARD_TEXT[2], Kind::Text),
    (STANDARD_TEXT[3], Kind::Text),
    (STANDARD_TEXT[4], Kind::Text),
    (STANDARD_TEXT[5], Kind::Text),
];

/// Shredded metrics (every metric is a 64-bit float, exact by the contract): the canonical
/// event's five and `edit_count`, the third metric the contract names.
pub const METRICS: &[&str] = &[
    "latency_ms",
    "token_count",
    "meal_count",
    "kcal_target",
    "budget_gbp",
    "edit_count",
];

/// The remainder columns: the keys of the object that are not in typed columns.
pub const CONTEXT_REST: &str = "context_rest";
pub const PAYLOAD_REST: &str = "payload_rest";
pub const METRICS_REST: &str = "metrics_rest";

/// The column of a shredded key: `context_platform`, `payload_plan_id`, `metrics_latency_ms`.
pub fn column_name(object: &str, key: &str) -> String {
    format!("{object}_{key}")
}

/// One typed value, as its column holds it (borrowed from the object's text where it can).
#[derive(Debug, Clone, PartialEq)]
pub enum Typed<'a> {
    Text(Cow<'a, str>),
    Integer(i64),
    Boolean(bool),
    TextList(Vec<Cow<'a, str>>),
}

impl Typed<'_> {
    /// The value's canonical JSON text.
    fn json(&self) -> Option<String> {
        match self {
            Typed::Text(s) => serde_json::to_string(s).ok(),
            Typed::Integer(i) => Some(i.to_string()),
            Typed::Boolean(b) => Some(b.to_string()),
            Typed::TextList(items) => serde_json::to_string(items).ok(),
        }
    }
}

/// The value of `raw` (canonical JSON text) as `kind`, when its text is what the typed value
/// writes back; `None` keeps it in the remainder.
fn typed(raw: &RawValue, kind: Kind) -> Option<Typed<'_>> {
    let text = raw.get();
    let value = match kind {
        Kind::Text => {
            let inner = text.strip_prefix('"')?.strip_suffix('"')?;
            // A JSON string without a backslash holds no quote or control character: its
            // text is what serde_json writes for its value, nothing to check.
            if !text.contains('\\') {
                return Some(Typed::Text(Cow::Borrowed(inner)));
            }
            Typed::Text(Cow::Owned(serde_json::from_str::<String>(text).ok()?))
        }
        Kind::Integer => Typed::Integer(text.parse::<i64>().ok()?),
        Kind::Boolean => match text {
            "true" => return Some(Typed::Boolean(true)),
            "false" => return Some(Typed::Boolean(false)),
            _ => return None,
        },
        Kind::TextList => match serde_json::from_str::<Vec<&str>>(text) {
            Ok(items) => Typed::TextList(items.into_iter().map(Cow::Borrowed).collect()),
            // Escaped items: owned strings.
            Err(_) => Typed::TextList(
                serde_json::from_str::<Vec<String>>(text)
                    .ok()?
                    .into_iter()
                    .map(Cow::Owned)
                    .collect(),
            ),
        },
    };
    (value.json()? == text).then_some(value)
}

/// An object split into its typed values (one per declared key, `None` when the key is absent
/// or stays in the remainder) and the canonical text of the rest.
#[derive(Debug, PartialEq)]
pub struct Split<'a> {
    pub typed: Vec<Option<Typed<'a>>>,
    pub rest: Cow<'a, str>,
}

/// Splits the canonical object `text` by `keys`. Whatever cannot be split exactly (not an
/// object, an escaped key, a value that does not read back) stays whole in the remainder.
///
/// Exact by construction, and checked: each typed value writes back its own text (`typed`),
/// and the entries, written again in order, make `text` itself; the remainder is the same
/// entries without the typed ones, so [`rebuild`] (which sorts the typed ones back in) gives
/// `text` again.
pub fn split<'a>(text: &'a str, keys: &[(&str, Kind)]) -> Split<'a> {
    let whole = || Split {
        typed: vec![None; keys.len()],
        rest: Cow::Borrowed(text),
    };
    if text == "{}" {
        return whole();
    }
    // Borrowed strings fail on escaped keys: those objects stay whole (they still read back).
    let Ok(Entries(entries)) = serde_json::from_str::<Entries>(text) else {
        return whole();
    };
    let get = |key: &str| entries.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    let typed: Vec<Option<Typed>> = keys
        .iter()
        .map(|(key, kind)| typed(get(key)?, *kind))
        .collect();
    if typed.iter().all(Option::is_none) {
        return whole();
    }
    let is_typed = |key: &str| {
        keys.iter()
            .zip(&typed)
            .any(|((k, _), v)| *k == key && v.is_some())
    };
    let mut again = String::with_capacity(text.len());
    write_entries(entries.iter().map(|(k, v)| (*k, v.get())), &mut again);
    if again != text {
        return whole();
    }
    let mut rest = String::with_capacity(text.len());
    write_entries(
        entries
            .iter()
            .filter(|(k, _)| !is_typed(k))
            .map(|(k, v)| (*k, v.get())),
        &mut rest,
    );
    Split {
        typed,
        rest: Cow::Owned(rest),
    }
}

/// An object's entries in the order of its text (sorted, in canonical text): no map to build
/// for the handful of keys an event has.
struct Entries<'a>(Vec<(&'a str, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for Entries<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Self::Value, M::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(entry) = map.next_entry::<&str, &RawValue>()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

/// `{"key":value,…}` from keys that need no escaping and canonical value texts, in the order
/// given.
fn write_entries<'e>(entries: impl Iterator<Item = (&'e str, &'e str)>, out: &mut String) {
    out.push('{');
    for (i, (key, value)) in entries.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(key);
        out.push_str("\":");
        out.push_str(value);
    }
    out.push('}');
}

/// `{"key":value,…}` with keys in byte order (the canonical order), from already canonical
/// value texts; `None` if a key cannot be written.
fn write_object(sorted: &BTreeMap<String, String>) -> Option<String> {
    let mut out = String::from("{");
    for (i, (key, value)) in sorted.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(key).ok()?);
        out.push(':');
        out.push_str(value);
    }
    out.push('}');
    Some(out)
}

/// The canonical text of an object from its typed values and its remainder's text: the
/// inverse of [`split`]. `None` when the remainder is not an object or holds a typed key too.
pub fn rebuild<'a>(
    typed: impl IntoIterator<Item = (&'a str, &'a Typed<'a>)>,
    rest: &str,
) -> Option<String> {
    let mut entries: BTreeMap<String, String> = if rest == "{}" {
        BTreeMap::new()
    } else {
        serde_json::from_str::<BTreeMap<String, &RawValue>>(rest)
            .ok()?
            .into_iter()
            .map(|(k, v)| (k, v.get().to_string()))
            .collect()
    };
    for (key, value) in typed {
        if entries.insert(key.to_string(), value.json()?).is_some() {
            return None;
        }
    }
    write_object(&entries)
}

/// Metrics split by [`METRICS`]: the declared ones' values (`None` when absent) and the rest.
pub fn split_metrics(metrics: &BTreeMap<String, f64>) -> (Vec<Option<f64>>, Vec<(&str, f64)>) {
    let typed = METRICS.iter().map(|k| metrics.get(*k).copied()).collect();
    let rest = metrics
        .iter()
        .filter(|(k, _)| !METRICS.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    (typed, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(text: &str) -> String {
        eis_contract::JsonObject::parse(text)
            .expect("an object")
            .as_str()
            .to_string()
    }

    fn back(split: &Split, keys: &[(&str, Kind)]) -> Option<String> {
        let named = keys
            .iter()
            .zip(&split.typed)
            .filter_map(|((k, _), v)| Some((*k, v.as_ref()?)));
        rebuild(named, &split.rest)
    }

    #[test]
    fn declared_keys_go_to_typed_columns_and_the_rest_stays_text() {
        let text = canonical(
            r#"{"plan_id": "p-\"1\"\n", "days": 7, "retry": false, "dietary_tags": ["a", "ü"],
                "summary": "x", "extra": {"n": 1.50}, "meals_per_day": -3}"#,
        );
        let split = split(&text, PAYLOAD);
        assert_eq!(split.rest, r#"{"extra":{"n":1.50}}"#);
        let value = |key: &str| {
            let i = PAYLOAD.iter().position(|(k, _)| *k == key).expect(key);
            split.typed[i].clone()
        };
        assert_eq!(
            value("plan_id"),
            Some(Typed::Text(Cow::Borrowed("p-\"1\"\n")))
        );
        assert_eq!(value("days"), Some(Typed::Integer(7)));
        assert_eq!(value("meals_per_day"), Some(Typed::Integer(-3)));
        assert_eq!(value("retry"), Some(Typed::Boolean(false)));
        assert_eq!(
            value("dietary_tags"),
            Some(Typed::TextList(vec!["a".into(), "ü".into()]))
        );
        assert_eq!(value("week_start"), None);
        assert_eq!(back(&split, PAYLOAD).as_deref(), Some(text.as_str()));
    }

    #[test]
    fn values_that_would_not_read_back_exactly_stay_in_the_remainder() {
        // Not i64 text (a fraction, past i64), another kind, null, a list with a non-string.
        let text = canonical(
            r#"{"days": 7.0, "meals_per_day": 92233720368547758070, "pantry_items_used": "3",
                "retry": null, "dietary_tags": ["a", 1], "plan_id": "p"}"#,
        );
        let split = split(&text, PAYLOAD);
        let typed: Vec<&Typed> = split.typed.iter().flatten().collect();
        assert_eq!(typed, [&Typed::Text("p".into())]);
        assert_eq!(
            split.rest,
            r#"{"days":7.0,"dietary_tags":["a",1],"meals_per_day":92233720368547758070,"pantry_items_used":"3","retry":null}"#
        );
        assert_eq!(back(&split, PAYLOAD).as_deref(), Some(text.as_str()));
    }

    #[test]
    fn objects_without_declared_keys_or_with_escaped_keys_stay_whole() {
        for text in [
            "{}",
            r#"{"a":1}"#,
            &canonical(r#"{"plan_id": "p", "k\u00e9\n": 1}"#),
        ] {
            let split = split(text, PAYLOAD);
            assert!(split.typed.iter().all(Option::is_none), "{text}");
            assert_eq!(split.rest, text);
        }
    }

    #[test]
    fn a_remainder_holding_a_typed_key_is_refused() {
        let typed = Typed::Text("p".into());
        assert_eq!(rebuild([("plan_id", &typed)], r#"{"plan_id":"q"}"#), None);
        assert_eq!(rebuild([("plan_id", &typed)], "[1]"), None);
        assert_eq!(
            rebuild([("plan_id", &typed)], r#"{"a":1,"z":2}"#).as_deref(),
            Some(r#"{"a":1,"plan_id":"p","z":2}"#)
        );
    }

    #[test]
    fn the_declared_keys_are_unique_and_make_column_names() {
        for (object, keys) in [
            (
                "context",
                CONTEXT.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            ),
            ("payload", PAYLOAD.iter().map(|(k, _)| *k).collect()),
            ("metrics", METRICS.to_vec()),
        ] {
            let mut unique = keys.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), keys.len(), "{object}");
            for key in keys {
                let name = column_name(object, key);
                assert!(
                    name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                    "{name}: a plain Glue column name"
                );
                assert_ne!(name, CONTEXT_REST);
                assert_ne!(name, PAYLOAD_REST);
                assert_ne!(name, METRICS_REST);
            }
        }
        // The contract's standard keys are all shredded, in both objects.
        for (_, keys) in eis_contract::STANDARD_EVENT_TYPES {
            for (key, _) in *keys {
                assert!(CONTEXT.iter().any(|(k, _)| k == key), "context {key}");
                assert!(PAYLOAD.iter().any(|(k, _)| k == key), "payload {key}");
            }
        }
    }
}
