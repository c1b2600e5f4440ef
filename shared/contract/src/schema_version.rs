//! A schema version, `MODEL-REVISION-ADDITION` (Snowplow's SchemaVer; docs/plan.md,
//! "Versions"), and the `schema` field that names one: `event_type/MODEL-REVISION-ADDITION`.

use std::fmt;

/// One version of a type's schema. Ordered by model, then revision, then addition: the newest
/// is the greatest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SchemaVersion {
    pub model: u32,
    pub revision: u32,
    pub addition: u32,
}

/// Digits of one part at most: every u32 fits, and no text is long.
const MAX_PART_DIGITS: usize = 9;

impl SchemaVersion {
    /// `MODEL-REVISION-ADDITION`: three decimal numbers without leading zeros, model ≥ 1.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split('-').map(|part| {
            let canonical = !part.is_empty()
                && part.len() <= MAX_PART_DIGITS
                && part.bytes().all(|b| b.is_ascii_digit())
                && (part == "0" || !part.starts_with('0'));
            canonical.then(|| part.parse::<u32>().ok()).flatten()
        });
        let version = SchemaVersion {
            model: parts.next()??,
            revision: parts.next()??,
            addition: parts.next()??,
        };
        (parts.next().is_none() && version.model >= 1).then_some(version)
    }
}

impl fmt::Display for SchemaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.model, self.revision, self.addition)
    }
}

/// The version an event's `schema` field names, when it names one of the event's own type.
pub(crate) fn named(schema: &str, event_type: &str) -> Option<SchemaVersion> {
    let (of_type, version) = schema.split_once('/')?;
    (of_type == event_type)
        .then(|| SchemaVersion::parse(version))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_only_in_their_canonical_form_and_order_by_part() {
        let v = |m, r, a| SchemaVersion {
            model: m,
            revision: r,
            addition: a,
        };
        for (text, want) in [
            ("1-0-0", Some(v(1, 0, 0))),
            ("2-10-3", Some(v(2, 10, 3))),
            ("0-1-0", None),
            ("1-01-0", None),
            ("1-0", None),
            ("1-0-0-0", None),
            ("1-0-x", None),
            ("1-+1-0", None),
            ("1-0-1234567890", None),
            ("", None),
        ] {
            assert_eq!(SchemaVersion::parse(text), want, "{text}");
        }
        assert!(v(1, 10, 0) > v(1, 9, 9));
        assert!(v(2, 0, 0) > v(1, 10, 0));
        assert_eq!(v(3, 1, 4).to_string(), "3-1-4");
    }

    #[test]
    fn a_schema_field_names_a_version_of_the_events_own_type() {
        for (schema, want) in [
            ("plan_generated/1-1-0", Some("1-1-0")),
            ("pantry_updated/1-1-0", None),
            ("plan_generated", None),
            ("plan_generated/1-1", None),
            ("plan_generated/1-1-0/x", None),
        ] {
            let got = named(schema, "plan_generated").map(|v| v.to_string());
            assert_eq!(got.as_deref(), want, "{schema}");
        }
    }
}
