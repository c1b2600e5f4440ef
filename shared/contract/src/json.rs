//! Small JSON building blocks shared by event and batch parsing: splitting
//! an object or array into borrowed raw values (no allocation per value, no
//! number conversion, so each value can be judged on its own later),
//! borrowed strings, the U+0000 scan and quoting input in messages.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// A JSON value split one level deep: an object's entries in document order
/// (keys borrowed when they hold no escapes), or "something else".
pub(crate) enum Shape<'a> {
    Object(Vec<(Cow<'a, str>, &'a RawValue)>),
    NotObject,
}

struct ShapeReader;

impl<'de> OneLevel<'de> for ShapeReader {
    type Value = Shape<'de>;

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(Str(key)) = map.next_key()? {
            entries.push((key, map.next_value::<&'de RawValue>()?));
        }
        Ok(Shape::Object(entries))
    }

    fn other(self) -> Self::Value {
        Shape::NotObject
    }
}

/// What to make of one JSON value split one level deep, by its kind: the one visitor of
/// this crate ([`one_level`]) reads objects and arrays through these, and the default
/// methods consume them to the end, so that a syntax error anywhere in the text is still
/// reported as such (syntax comes before shape).
pub(crate) trait OneLevel<'de>: Sized {
    type Value;

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(self.other())
    }

    fn array<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(self.other())
    }

    /// A scalar, or a kind the implementation does not read.
    fn other(self) -> Self::Value;
}

/// Parses `text` as exactly one JSON value, handed to `reader` by its kind.
pub(crate) fn one_level<'de, R: OneLevel<'de>>(
    text: &'de str,
    reader: R,
) -> Result<R::Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = (&mut de).deserialize_any(OneLevelVisitor(reader))?;
    de.end()?;
    Ok(value)
}

struct OneLevelVisitor<R>(R);

impl<'de, R: OneLevel<'de>> Visitor<'de> for OneLevelVisitor<R> {
    type Value = R::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.0.object(map)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.0.array(seq)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(self.0.other())
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(self.0.other())
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(self.0.other())
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(self.0.other())
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(self.0.other())
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(self.0.other())
    }
}

/// A JSON string (value or object key), borrowed from the input unless it
/// had to be unescaped. (serde's own `Cow<str>` always copies unless it is a
/// direct struct field marked `borrow`.)
pub(crate) struct Str<'a>(pub(crate) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(StrVisitor(PhantomData))
    }
}

struct StrVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for StrVisitor<'a> {
    type Value = Str<'a>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Str(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Str(Cow::Owned(v)))
    }
}

/// Parses `text` (already known to be one JSON value) as a [`Shape`].
pub(crate) fn shape(text: &str) -> Result<Shape<'_>, serde_json::Error> {
    one_level(text, ShapeReader)
}

/// The elements of a JSON array, keeping at most `cap` of them but counting
/// all, so an oversized batch is reported without storing every element.
pub(crate) enum Elements<'a> {
    Array {
        kept: Vec<&'a RawValue>,
        total: usize,
    },
    NotArray,
}

/// Parses `text` (already known to be one JSON value) as [`Elements`].
pub(crate) fn elements(text: &str, cap: usize) -> Result<Elements<'_>, serde_json::Error> {
    one_level(text, CappedArray { cap })
}

struct CappedArray {
    cap: usize,
}

impl<'de> OneLevel<'de> for CappedArray {
    type Value = Elements<'de>;

    fn array<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut kept = Vec::new();
        let mut total = 0usize;
        while let Some(item) = seq.next_element::<&'de RawValue>()? {
            total = total.saturating_add(1);
            if kept.len() < self.cap {
                kept.push(item);
            }
        }
        Ok(Elements::Array { kept, total })
    }

    fn other(self) -> Self::Value {
        Elements::NotArray
    }
}

/// True when a raw value is JSON `null` (raw values carry no surrounding
/// whitespace, so a plain comparison is exact).
pub(crate) fn is_null(raw: &RawValue) -> bool {
    raw.get() == "null"
}

/// True when some string inside this valid JSON text decodes to U+0000.
///
/// In valid JSON a backslash only occurs inside strings and always starts an
/// escape, so walking escapes pairwise finds `\u0000` without being fooled
/// by an escaped backslash followed by `u0000`.
pub(crate) fn contains_nul(text: &str) -> bool {
    // The substring search is vectorised; the exact walk below only runs
    // when the escape's text occurs at all.
    if !text.contains(r"\u0000") {
        return false;
    }
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(offset) = bytes
        .get(i..)
        .and_then(|rest| rest.iter().position(|&b| b == b'\\'))
    {
        let escape = i + offset;
        if bytes.get(escape + 1..escape + 6) == Some(b"u0000") {
            return true;
        }
        // Skip the backslash and the character it escapes.
        i = escape + 2;
    }
    false
}

/// A key or value quoted for a human message: at most 64 bytes (cut on a
/// character boundary) with control characters escaped, so a message never
/// echoes a long or unprintable input.
pub(crate) fn quoted(text: &str) -> String {
    const MAX: usize = 64;
    let mut end = text.len().min(MAX);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(end + 8);
    out.push('`');
    out.extend(text[..end].chars().flat_map(char::escape_debug));
    if end < text.len() {
        out.push('…');
    }
    out.push('`');
    out
}

/// The JSON type of `value`, for a message that says what an input was without echoing it.
pub fn kind(value: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match value {
        Value::Object(_) => "object",
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "boolean",
        Value::Null => "null",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_escape_detection_respects_escaped_backslashes() {
        assert!(contains_nul(r#""\u0000""#));
        assert!(contains_nul(r#"{"a": ["x\u0000y"]}"#));
        assert!(contains_nul(r#"{"\u0000": 1}"#));
        assert!(contains_nul(r#""\\\u0000""#));
        assert!(!contains_nul(r#""\\u0000""#));
        assert!(contains_nul(r#""\u00001""#));
        assert!(!contains_nul(r#""\u0001""#));
        assert!(!contains_nul(r#""\n\t\"""#));
        assert!(!contains_nul(r#""\u000""#));
        assert!(!contains_nul(""));
        assert!(!contains_nul("\\"));
    }

    #[test]
    fn shape_splits_objects_and_consumes_everything_else() {
        match shape(r#" {"a": 1, "b\n": [true]} "#) {
            Ok(Shape::Object(entries)) => {
                let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_ref()).collect();
                assert_eq!(keys, ["a", "b\n"]);
                assert!(matches!(entries[0].0, Cow::Borrowed(_)));
                assert_eq!(entries[1].1.get(), "[true]");
            }
            _ => panic!("expected an object"),
        }
        for text in [
            "[1, {\"a\": 2}]",
            "1",
            "-1.5",
            "\"s\"",
            "true",
            "null",
            "18446744073709551616",
        ] {
            assert!(matches!(shape(text), Ok(Shape::NotObject)), "{text}");
        }
        for text in ["[1,", "[1] x", "{\"a\"}", "", "nul"] {
            assert!(shape(text).is_err(), "{text}");
        }
    }

    #[test]
    fn elements_are_capped_but_counted() {
        match elements("[1, {\"a\": 2}, \"x\"]", 2) {
            Ok(Elements::Array { kept, total }) => {
                assert_eq!(total, 3);
                assert_eq!(kept.len(), 2);
                assert_eq!(kept[1].get(), "{\"a\": 2}");
            }
            _ => panic!("expected an array"),
        }
        assert!(matches!(elements("{\"a\": 1}", 2), Ok(Elements::NotArray)));
        assert!(elements("[1,,]", 2).is_err());
    }

    #[test]
    fn quoted_truncates_and_escapes() {
        assert_eq!(quoted("plain"), "`plain`");
        assert_eq!(quoted("a\u{0}b"), "`a\\0b`");
        let long = "é".repeat(100);
        let q = quoted(&long);
        assert!(q.len() <= 64 + 2 + '…'.len_utf8());
        assert!(q.ends_with("…`"));
    }
}
