//! [`JsonObject`]: `context` and `payload` held as canonical JSON text, so
//! their numbers keep their exact value (no f64 on the way) and every copy
//! of an event (SQS, PostgreSQL, the archive) carries the same bytes.
//! (Over 400 lines with its unit tests; the code is ~240.)

use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::canonical;
use crate::json::{self, quoted, Shape};
use crate::number::{self, Decimal};

/// A JSON object held as its canonical text.
///
/// The canonical form, applied at every depth:
/// - no whitespace;
/// - object keys sorted by byte order; a repeated key keeps its LAST value
///   (as PostgreSQL `jsonb` does);
/// - strings (keys and values) written as serde_json writes them (`"`,
///   `\` and control characters escaped, everything else as is);
/// - `true`, `false`, `null` as is; arrays in order;
/// - numbers as PostgreSQL `numeric` prints them: no exponent, and the
///   scale `numeric_in` keeps, `max(0, fraction digits - exponent)`:
///   `1e2` -> `100`, `1.50` -> `1.50`, `100e-2` -> `1.00`, `1.5e1` -> `15`,
///   `1E-3` -> `0.001`, `-0` -> `0`, `-0.0` -> `0.0`. A number whose
///   canonical text would have more than [`JsonObject::MAX_NUMBER_DIGITS`]
///   digits (or whose exponent exceeds 1 000 000 in magnitude) is refused.
///
/// So what PostgreSQL prints back for a stored `jsonb` canonicalises to the
/// very same text, and canonicalising is idempotent.
#[derive(Clone)]
pub struct JsonObject {
    raw: Box<RawValue>,
    depth: usize,
}

/// Why a text is not a storable JSON object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonObjectError {
    #[error("not valid JSON: {0}")]
    Syntax(String),
    #[error("not a JSON object")]
    NotObject,
    #[error("it nests more than {} levels deep", JsonObject::MAX_DEPTH)]
    TooDeep,
    #[error(
        "the number {0} has more than {max} digits once written without an exponent",
        max = JsonObject::MAX_NUMBER_DIGITS
    )]
    NumberTooLong(String),
}

impl JsonObject {
    /// Deepest nesting held at all (the object itself is level 1); bounds
    /// the recursion. Validation applies its own, smaller limit.
    pub const MAX_DEPTH: usize = 128;
    /// Most digits of one canonical number.
    pub const MAX_NUMBER_DIGITS: usize = number::MAX_DIGITS;

    /// Parses and canonicalises one JSON object (surrounding whitespace
    /// allowed).
    pub fn parse(text: &str) -> Result<Self, JsonObjectError> {
        let raw: &RawValue =
            serde_json::from_str(text).map_err(|e| JsonObjectError::Syntax(e.to_string()))?;
        Self::from_raw(raw)
    }

    /// Canonicalises a raw JSON value, which must be an object.
    pub(crate) fn from_raw(raw: &RawValue) -> Result<Self, JsonObjectError> {
        let (text, depth) = canonical(raw)?;
        // Already canonical (a record read back): keep the bytes as they are.
        let raw = if text == raw.get().as_bytes() {
            raw.to_owned()
        } else {
            let text = String::from_utf8(text).map_err(|e| syntax(&e))?;
            RawValue::from_string(text).map_err(|e| syntax(&e))?
        };
        Ok(JsonObject { raw, depth })
    }

    /// The canonical text.
    pub fn as_str(&self) -> &str {
        self.raw.get()
    }

    /// Nesting depth: 1 for an object of scalars, +1 per array or object.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// True for `{}`.
    pub fn is_empty(&self) -> bool {
        self.as_str() == "{}"
    }

    /// The raw (canonical) text of the top-level value under `key`.
    pub fn get(&self, key: &str) -> Option<&RawValue> {
        // Skipping to the key rather than splitting the object (validation looks up the
        // standard types' keys in every event).
        match canonical::get(self.as_str(), key) {
            Some(None) => return None,
            Some(Some(text)) => {
                if let Ok(raw) = serde_json::from_str(text) {
                    return Some(raw);
                }
            }
            None => {}
        }
        self.exact_get(key)
    }

    /// [`Self::get`] by splitting the object.
    pub(crate) fn exact_get(&self, key: &str) -> Option<&RawValue> {
        match json::shape(self.as_str()) {
            Ok(Shape::Object(entries)) => entries
                .into_iter()
                .find(|(k, _)| k == key)
                .map(|(_, value)| value),
            _ => None,
        }
    }
}

fn syntax(e: &dyn fmt::Display) -> JsonObjectError {
    JsonObjectError::Syntax(e.to_string())
}

/// The canonical text of an object and its depth.
fn canonical(raw: &RawValue) -> Result<(Vec<u8>, usize), JsonObjectError> {
    if !raw.get().starts_with('{') {
        return Err(JsonObjectError::NotObject);
    }
    // One pass when it can; the exact passes decide everything else.
    if let Some(done) = canonical::object(raw.get(), JsonObject::MAX_DEPTH) {
        return Ok(done);
    }
    exact_canonical(raw)
}

/// [`canonical`] level by level, each re-split by serde: what decides every error.
pub(crate) fn exact_canonical(raw: &RawValue) -> Result<(Vec<u8>, usize), JsonObjectError> {
    let mut out = Vec::with_capacity(raw.get().len());
    let depth = write_value(raw, 0, &mut out)?;
    Ok((out, depth))
}

/// Appends the canonical text of `raw`, `above` levels down; returns its
/// depth (0 for a scalar). Each level re-splits its own text, which is
/// bounded by `MAX_DEPTH` passes over the input.
fn write_value(raw: &RawValue, above: usize, out: &mut Vec<u8>) -> Result<usize, JsonObjectError> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'{') | Some(b'[') if above >= JsonObject::MAX_DEPTH => Err(JsonObjectError::TooDeep),
        Some(b'{') => {
            let Shape::Object(mut entries) = json::shape(text).map_err(|e| syntax(&e))? else {
                return Err(JsonObjectError::NotObject);
            };
            // Stable: among equal keys the last in the document comes last.
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let mut depth = 0;
            let mut first = true;
            out.push(b'{');
            for (i, (key, value)) in entries.iter().enumerate() {
                if entries.get(i + 1).is_some_and(|(next, _)| next == key) {
                    continue;
                }
                if !std::mem::take(&mut first) {
                    out.push(b',');
                }
                write_str(key, out)?;
                out.push(b':');
                depth = depth.max(write_value(value, above + 1, out)?);
            }
            out.push(b'}');
            Ok(depth + 1)
        }
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(text).map_err(|e| syntax(&e))?;
            let mut depth = 0;
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                depth = depth.max(write_value(item, above + 1, out)?);
            }
            out.push(b']');
            Ok(depth + 1)
        }
        Some(b'"') => {
            // Without a backslash the raw text is what serde_json writes
            // (raw quotes and control characters are invalid JSON).
            if text.contains('\\') {
                let json::Str(s) = serde_json::from_str(text).map_err(|e| syntax(&e))?;
                write_str(&s, out)?;
            } else {
                out.extend_from_slice(text.as_bytes());
            }
            Ok(0)
        }
        Some(b't' | b'f' | b'n') => {
            out.extend_from_slice(text.as_bytes());
            Ok(0)
        }
        _ => {
            let number = Decimal::parse(text)
                .ok_or_else(|| JsonObjectError::Syntax(format!("bad number {}", quoted(text))))?;
            number
                .write_canonical(out)
                .map_err(|_| JsonObjectError::NumberTooLong(quoted(text)))?;
            Ok(0)
        }
    }
}

fn write_str(s: &str, out: &mut Vec<u8>) -> Result<(), JsonObjectError> {
    serde_json::to_writer(out, s).map_err(|e| syntax(&e))
}

impl Default for JsonObject {
    /// `{}`.
    fn default() -> Self {
        JsonObject {
            raw: serde_json::from_str("{}").expect("`{}` is one JSON value"),
            depth: 1,
        }
    }
}

impl PartialEq for JsonObject {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for JsonObject {}

impl fmt::Debug for JsonObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for JsonObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Writes the canonical text as is (a raw JSON value).
impl Serialize for JsonObject {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(s)
    }
}

/// Reads any JSON object and canonicalises it, so a record from SQS or a
/// row's `payload::text` from PostgreSQL yields the canonical text.
impl<'de> Deserialize<'de> for JsonObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        JsonObject::from_raw(&raw).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn canon(text: &str) -> String {
        JsonObject::parse(text)
            .expect("storable")
            .as_str()
            .to_owned()
    }

    #[test]
    fn canonical_form_sorts_dedupes_and_strips() {
        assert_eq!(
            canon(r#" { "b" : [1e2, -0, "x\u0041\n"], "a": {"z": null, "y": true}, "b": 1.50 } "#),
            r#"{"a":{"y":true,"z":null},"b":1.50}"#
        );
        assert_eq!(
            canon(r#"{"\u00e9": "\u00e9", "e": "\/", "list": [100e-2, 1.5e1, 1E-3, -0.0]}"#),
            r#"{"e":"/","list":[1.00,15,0.001,0.0],"é":"é"}"#
        );
        assert_eq!(canon("{}"), "{}");
        assert_eq!(JsonObject::default().as_str(), "{}");
        assert_eq!(
            canon(r#"{"n": 123456789012345678901234567890}"#),
            r#"{"n":123456789012345678901234567890}"#
        );
    }

    #[test]
    fn keys_sort_by_bytes_not_by_length() {
        // jsonb itself orders shorter keys first; the canonical form does not.
        assert_eq!(
            canon(r#"{"bb": 1, "a": 2, "B": 3}"#),
            r#"{"B":3,"a":2,"bb":1}"#
        );
    }

    #[test]
    fn depth_and_lookup() {
        let obj = JsonObject::parse(r#"{"a": [{"b": 1}], "s": "", "n": null}"#).expect("ok");
        assert_eq!(obj.depth(), 3);
        assert_eq!(JsonObject::default().depth(), 1);
        assert_eq!(obj.get("s").map(RawValue::get), Some(r#""""#));
        assert_eq!(obj.get("n").map(RawValue::get), Some("null"));
        assert_eq!(obj.get("a").map(RawValue::get), Some(r#"[{"b":1}]"#));
        assert!(obj.get("b").is_none());
    }

    #[test]
    fn refusals() {
        assert!(matches!(
            JsonObject::parse("[1]"),
            Err(JsonObjectError::NotObject)
        ));
        assert!(matches!(
            JsonObject::parse("{"),
            Err(JsonObjectError::Syntax(_))
        ));
        assert!(matches!(
            JsonObject::parse(r#"{"s": "\ud800"}"#),
            Err(JsonObjectError::Syntax(_))
        ));
        assert!(matches!(
            JsonObject::parse(r#"{"n": 1e1000}"#),
            Err(JsonObjectError::NumberTooLong(_))
        ));
        let deep = format!("{{\"d\": {}{}}}", "[".repeat(20_000), "]".repeat(20_000));
        assert!(matches!(
            JsonObject::parse(&deep),
            Err(JsonObjectError::TooDeep)
        ));
        let at_limit = format!("{{\"d\": {}{}}}", "[".repeat(127), "]".repeat(127));
        assert_eq!(JsonObject::parse(&at_limit).map(|o| o.depth()), Ok(128));
    }

    #[test]
    fn serde_writes_raw_and_reads_canonically() {
        let obj = JsonObject::parse(r#"{"n": 1e400, "m": 0.10000000000000001}"#).expect("ok");
        let text = serde_json::to_string(&vec![&obj]).expect("serialize");
        assert_eq!(text, format!("[{}]", obj.as_str()));
        let back: Vec<JsonObject> = serde_json::from_str(&text).expect("deserialize");
        assert_eq!(back, [obj]);
        let loose: JsonObject = serde_json::from_str(r#"{ "b": 1, "a": 2e0 }"#).expect("ok");
        assert_eq!(loose.as_str(), r#"{"a":2,"b":1}"#);
        assert!(serde_json::from_str::<JsonObject>("[]").is_err());
    }

    fn arb_number() -> impl Strategy<Value = String> {
        (
            any::<bool>(),
            "(0|[1-9][0-9]{0,25})",
            proptest::option::of("[0-9]{1,12}"),
            proptest::option::of((
                prop_oneof![Just("e"), Just("E")],
                prop_oneof![Just(""), Just("+"), Just("-")],
                0u32..40,
            )),
        )
            .prop_map(|(neg, int, frac, exp)| {
                let mut s = String::new();
                if neg {
                    s.push('-');
                }
                s.push_str(&int);
                if let Some(frac) = frac {
                    s.push('.');
                    s.push_str(&frac);
                }
                if let Some((e, sign, n)) = exp {
                    s.push_str(&format!("{e}{sign}{n}"));
                }
                s
            })
    }

    fn arb_json() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            arb_number(),
            Just("null".to_owned()),
            Just("true".to_owned()),
            ".{0,5}".prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
            Just(r#""\u00e9\t\/""#.to_owned()),
        ];
        leaf.prop_recursive(4, 32, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[ {} ]", v.join(" , "))),
                proptest::collection::vec(("[a-c]{0,2}", inner), 0..5).prop_map(|v| {
                    let members: Vec<String> = v
                        .into_iter()
                        .map(|(k, v)| format!("\"{k}\" : {v}"))
                        .collect();
                    format!("{{ {} }}", members.join(" , "))
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn canonicalisation_is_idempotent(inner in arb_json()) {
            let text = format!(r#"{{"v": {inner}, "v2": [{inner}]}}"#);
            let once = JsonObject::parse(&text).expect("storable");
            let twice = JsonObject::parse(once.as_str()).expect("storable");
            prop_assert_eq!(once.as_str(), twice.as_str());
            prop_assert_eq!(once.depth(), twice.depth());
        }
    }
}
