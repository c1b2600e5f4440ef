//! One pass over a JSON object's text (already known to be valid JSON) that writes its
//! canonical text (see [`crate::JsonObject`]). The exact canonicaliser in `json_object.rs`
//! re-splits every level with serde (each byte read once per level it is nested in, a vector
//! of raw values per level); this one reads each byte once. It is only a shortcut: on
//! anything it does not take (a string escape that does not decode, a number too long,
//! nesting too deep, a token it does not expect) it gives up with `None` and the exact one
//! decides, error and message included. Whenever it succeeds, the exact one gives the same
//! text and depth (a property test says so). (Over 400 lines with the tests that hold it
//! to the exact one; the code is ~280.)

use std::borrow::Cow;
use std::ops::Range;

use crate::json::Str;
use crate::number::Decimal;

/// One entry of an object being written: its key (decoded), where `"key":value` lies in the
/// output, and the value's depth.
struct Entry<'a> {
    key: Cow<'a, str>,
    span: Range<usize>,
    depth: usize,
}

struct Scanner<'a> {
    text: &'a str,
    pos: usize,
    /// The entries of the objects open on the way down, innermost last (one vector for the
    /// whole pass, not one per object).
    entries: Vec<Entry<'a>>,
    /// Reordering room, reused for every object whose keys are not in order.
    scratch: Vec<u8>,
}

/// The canonical text of the object `text` and its depth, or `None`: ask the exact
/// canonicaliser. `max_depth` as [`crate::JsonObject::MAX_DEPTH`].
pub(crate) fn object(text: &str, max_depth: usize) -> Option<(Vec<u8>, usize)> {
    let mut scanner = Scanner {
        text,
        pos: 0,
        entries: Vec::new(),
        scratch: Vec::new(),
    };
    let mut out = Vec::with_capacity(text.len());
    scanner.skip_ws();
    if scanner.peek() != Some(b'{') {
        return None;
    }
    let depth = scanner.value(0, max_depth, &mut out)?;
    scanner.skip_ws();
    (scanner.pos == text.len()).then_some((out, depth))
}

/// The text of the value under `key` at the top level of the canonical object `text` (no
/// whitespace, each key once), found by skipping over the values before it rather than
/// splitting the object: `Some(None)` when the key is absent, `None` when in doubt (ask
/// the exact lookup).
pub(crate) fn get<'a>(text: &'a str, key: &str) -> Option<Option<&'a str>> {
    let mut scanner = Scanner {
        text,
        pos: 0,
        entries: Vec::new(),
        scratch: Vec::new(),
    };
    scanner.expect(b'{')?;
    if scanner.peek() == Some(b'}') {
        return Some(None);
    }
    loop {
        let (raw, escaped) = scanner.string()?;
        // A key with an escape is left to the exact lookup, which decodes it.
        if escaped {
            return None;
        }
        scanner.expect(b':')?;
        let start = scanner.pos;
        scanner.skip_value()?;
        if raw.get(1..raw.len() - 1) == Some(key) {
            return Some(text.get(start..scanner.pos));
        }
        match scanner.peek()? {
            b',' => scanner.pos += 1,
            b'}' => return Some(None),
            _ => return None,
        }
    }
}

impl<'a> Scanner<'a> {
    /// Moves past the value at `pos` (valid JSON without whitespace).
    fn skip_value(&mut self) -> Option<()> {
        let bytes = self.text.as_bytes();
        let mut open = 0usize;
        loop {
            match self.peek()? {
                b'"' => {
                    self.string()?;
                }
                b'{' | b'[' => {
                    open += 1;
                    self.pos += 1;
                }
                b'}' | b']' => {
                    open = open.checked_sub(1)?;
                    self.pos += 1;
                }
                b',' | b':' if open > 0 => self.pos += 1,
                _ => {
                    // A number or a word: up to the next delimiter.
                    let rest = bytes.get(self.pos..)?;
                    let len = rest
                        .iter()
                        .position(|b| matches!(b, b',' | b'}' | b']'))
                        .unwrap_or(rest.len());
                    if len == 0 {
                        return None;
                    }
                    self.pos += len;
                }
            }
            if open == 0 {
                return Some(());
            }
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.pos += 1;
        }
    }

    /// Consumes `byte` after optional whitespace.
    fn expect(&mut self, byte: u8) -> Option<()> {
        self.skip_ws();
        (self.peek() == Some(byte)).then(|| self.pos += 1)
    }

    /// Appends the canonical text of the value at `pos`, `above` levels down; its depth.
    fn value(&mut self, above: usize, max_depth: usize, out: &mut Vec<u8>) -> Option<usize> {
        self.skip_ws();
        match self.peek()? {
            b'{' | b'[' if above >= max_depth => None,
            b'{' => self.object(above, max_depth, out),
            b'[' => self.array(above, max_depth, out),
            b'"' => {
                let (raw, escaped) = self.string()?;
                // Without a backslash the raw text is what serde_json writes (raw quotes and
                // control characters are invalid JSON), as in the exact canonicaliser.
                match escaped {
                    true => write_str(&decode(raw)?, out)?,
                    false => out.extend_from_slice(raw.as_bytes()),
                }
                Some(0)
            }
            b't' | b'f' | b'n' => {
                let word = ["true", "false", "null"]
                    .into_iter()
                    .find(|w| self.text.get(self.pos..self.pos + w.len()) == Some(*w))?;
                self.pos += word.len();
                out.extend_from_slice(word.as_bytes());
                Some(0)
            }
            _ => {
                let start = self.pos;
                while matches!(
                    self.peek(),
                    Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                ) {
                    self.pos += 1;
                }
                let number = Decimal::parse(self.text.get(start..self.pos)?)?;
                number.write_canonical(out).ok()?;
                Some(0)
            }
        }
    }

    /// The string token at `pos` with its quotes, and whether it holds a backslash.
    fn string(&mut self) -> Option<(&'a str, bool)> {
        let bytes = self.text.as_bytes();
        let start = self.pos;
        if bytes.get(start) != Some(&b'"') {
            return None;
        }
        let mut i = start + 1;
        let mut escaped = false;
        loop {
            let offset = bytes
                .get(i..)?
                .iter()
                .position(|&b| b == b'"' || b == b'\\')?;
            i += offset;
            if bytes.get(i) == Some(&b'\\') {
                escaped = true;
                // The backslash and the character it escapes (`\"` does not end the string).
                i += 2;
                continue;
            }
            self.pos = i + 1;
            return Some((self.text.get(start..self.pos)?, escaped));
        }
    }

    fn object(&mut self, above: usize, max_depth: usize, out: &mut Vec<u8>) -> Option<usize> {
        self.pos += 1;
        let open = out.len();
        out.push(b'{');
        let base = self.entries.len();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            out.push(b'}');
            return Some(1);
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return None;
            }
            let (raw, escaped) = self.string()?;
            if self.entries.len() > base {
                out.push(b',');
            }
            let start = out.len();
            let key = match escaped {
                true => {
                    let key = decode(raw)?;
                    write_str(&key, out)?;
                    key
                }
                false => {
                    out.extend_from_slice(raw.as_bytes());
                    Cow::Borrowed(raw.get(1..raw.len() - 1)?)
                }
            };
            self.expect(b':')?;
            out.push(b':');
            let depth = self.value(above + 1, max_depth, out)?;
            self.entries.push(Entry {
                key,
                span: start..out.len(),
                depth,
            });
            self.skip_ws();
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    break;
                }
                _ => return None,
            }
        }
        let entries = self.entries.get_mut(base..)?;
        let in_order = entries.windows(2).all(|w| w[0].key < w[1].key);
        let depth;
        if in_order {
            depth = entries.iter().map(|e| e.depth).max().unwrap_or(0);
        } else {
            // Stable: among equal keys the last in the document comes last, and is kept
            // (as jsonb keeps it).
            entries.sort_by(|a, b| a.key.cmp(&b.key));
            let scratch = &mut self.scratch;
            scratch.clear();
            let mut kept_depth = 0;
            for (i, entry) in entries.iter().enumerate() {
                if entries.get(i + 1).is_some_and(|next| next.key == entry.key) {
                    continue;
                }
                if !scratch.is_empty() {
                    scratch.push(b',');
                }
                scratch.extend_from_slice(out.get(entry.span.clone())?);
                kept_depth = kept_depth.max(entry.depth);
            }
            out.truncate(open + 1);
            out.extend_from_slice(scratch);
            depth = kept_depth;
        }
        self.entries.truncate(base);
        out.push(b'}');
        Some(depth + 1)
    }

    fn array(&mut self, above: usize, max_depth: usize, out: &mut Vec<u8>) -> Option<usize> {
        self.pos += 1;
        out.push(b'[');
        self.skip_ws();
        let mut depth = 0;
        if self.peek() == Some(b']') {
            self.pos += 1;
        } else {
            loop {
                depth = depth.max(self.value(above + 1, max_depth, out)?);
                self.skip_ws();
                match self.peek()? {
                    b',' => {
                        self.pos += 1;
                        out.push(b',');
                    }
                    b']' => {
                        self.pos += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        out.push(b']');
        Some(depth + 1)
    }
}

/// A string token's text, unescaped by serde_json (`None`: an escape that is not valid
/// Unicode, such as a lone surrogate).
fn decode(raw: &str) -> Option<Cow<'_, str>> {
    serde_json::from_str::<Str>(raw).ok().map(|Str(s)| s)
}

fn write_str(s: &str, out: &mut Vec<u8>) -> Option<()> {
    serde_json::to_writer(out, s).ok()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::value::RawValue;

    use crate::json_object::{exact_canonical, JsonObject};

    /// A canonical text and its depth, if any.
    type Canonical = Option<(Vec<u8>, usize)>;

    fn both(text: &str) -> (Canonical, Canonical) {
        let raw: &RawValue = serde_json::from_str(text).expect("valid JSON");
        (
            super::object(raw.get(), JsonObject::MAX_DEPTH),
            exact_canonical(raw).ok(),
        )
    }

    #[test]
    fn one_pass_agrees_with_the_exact_passes() {
        for text in [
            "{}",
            r#"{"a":1}"#,
            r#" { "b" : [1e2, -0, "x\u0041\n"], "a": {"z": null, "y": true}, "b": 1.50 } "#,
            r#"{"\u00e9": "\u00e9", "e": "\/", "list": [100e-2, 1.5e1, 1E-3, -0.0]}"#,
            r#"{"bb": 1, "a": 2, "B": 3, "a": [[[]]], "a": {}}"#,
            r#"{"a": [[[1]]], "a": 1}"#,
            r#"{"q": "say \"hi\"\\", "\"k": [{}, [], "", 0]}"#,
            r#"{"n": 123456789012345678901234567890, "m": 0.10000000000000001}"#,
            r#"{"a\u0000b": 1, "a": "\ud83d\ude00"}"#,
        ] {
            let (fast, exact) = both(text);
            assert!(fast.is_some(), "{text}");
            assert_eq!(fast, exact, "{text}");
        }
    }

    #[test]
    fn what_the_exact_passes_refuse_is_left_to_them() {
        let deep = format!("{{\"d\": {}{}}}", "[".repeat(200), "]".repeat(200));
        for text in [
            r#"{"s": "\ud800"}"#,
            r#"{"\udc00": 1}"#,
            r#"{"n": 1e1000}"#,
            deep.as_str(),
        ] {
            assert_eq!(both(text).0, None, "{text}");
        }
        // A refused value that a later key replaces: the exact passes keep the object.
        let (fast, exact) = both(r#"{"a": 1e1000, "a": 1}"#);
        assert_eq!(fast, None);
        assert!(exact.is_some());
    }

    #[test]
    fn lookup_finds_top_level_values_only() {
        let obj = JsonObject::parse(
            r#"{"a": [{"b": 1}], "s": "x,}", "n": null, "o": {"b": 2}, "z": 1.50}"#,
        )
        .expect("ok");
        assert_eq!(super::get(obj.as_str(), "a"), Some(Some(r#"[{"b":1}]"#)));
        assert_eq!(super::get(obj.as_str(), "s"), Some(Some(r#""x,}""#)));
        assert_eq!(super::get(obj.as_str(), "n"), Some(Some("null")));
        assert_eq!(super::get(obj.as_str(), "o"), Some(Some(r#"{"b":2}"#)));
        assert_eq!(super::get(obj.as_str(), "z"), Some(Some("1.50")));
        assert_eq!(super::get(obj.as_str(), "b"), Some(None));
        assert_eq!(super::get("{}", "b"), Some(None));
    }

    fn arb_string() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-c]{0,3}".prop_map(|s| format!("\"{s}\"")),
            Just(r#""\u00e9\t\/""#.to_owned()),
            Just(r#""\"\\""#.to_owned()),
            Just(r#""\ud800""#.to_owned()),
            ".{0,4}".prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
        ]
    }

    fn arb_json() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            "-?(0|[1-9][0-9]{0,20})(\\.[0-9]{1,8})?([eE][+-]?[0-9]{1,3})?",
            Just("null".to_owned()),
            Just("true".to_owned()),
            Just("false".to_owned()),
            arb_string(),
        ];
        leaf.prop_recursive(5, 40, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[ {} ]", v.join(" , "))),
                proptest::collection::vec((arb_string(), inner), 0..5).prop_map(|v| {
                    let members: Vec<String> =
                        v.into_iter().map(|(k, v)| format!("{k} : {v}")).collect();
                    format!("{{ {} }}", members.join(" , "))
                }),
            ]
        })
    }

    proptest! {
        /// Only a shortcut: wherever the one pass answers, the exact passes answer the same.
        #[test]
        fn one_pass_is_a_shortcut(inner in arb_json(), key in arb_string()) {
            let text = format!(r#"{{"v": {inner}, {key}: [{inner}], "a": {inner}}}"#);
            if let Ok(raw) = serde_json::from_str::<&RawValue>(&text) {
                let fast = super::object(raw.get(), JsonObject::MAX_DEPTH);
                let exact = exact_canonical(raw).ok();
                if fast.is_some() {
                    prop_assert_eq!(&fast, &exact, "{}", text);
                }
                if let Some((canonical, _)) = exact {
                    // Canonical text always takes the one pass.
                    let again = std::str::from_utf8(&canonical).expect("UTF-8");
                    prop_assert!(super::object(again, JsonObject::MAX_DEPTH).is_some(), "{}", again);
                    let obj = JsonObject::parse(again).expect("canonical");
                    for k in ["v", "a", "zz"] {
                        let shortcut = super::get(obj.as_str(), k);
                        if let Some(found) = shortcut {
                            prop_assert_eq!(found, obj.exact_get(k).map(RawValue::get));
                        }
                    }
                }
            }
        }
    }
}
