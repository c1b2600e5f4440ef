//! Decoding: every top-level field from JSON into a typed but not yet
//! checked form ([`Decoded`]). The checks in `validate.rs` then run on it in
//! the documented precedence order.
//!
//! There are two decoders with one result:
//! - [`fast`]: one serde pass over the whole event into typed fields. It
//!   gives up on anything unusual (a syntax error, a wrong JSON type, an
//!   unknown or repeated key, a `context`/`payload` that cannot be stored,
//!   ...), and it only runs on text without a `\u0000` escape.
//! - [`exact`]: splits the event into raw fields first, then decodes each on
//!   its own, so every problem is kept and blamed on its own field.
//!
//! Whenever `fast` succeeds, `exact` would have produced the same values
//! (the same serde_json parsers read the same text), so it is only a
//! shortcut. It exists because splitting first and parsing each field again
//! cost more than a plain `serde_json::Value` parse of the whole event.
//! (Over 400 lines with its unit tests; the code is ~340.)

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::code::Code;
use crate::json::{self, contains_nul, is_null, quoted, Shape, Str};
use crate::json_object::JsonObject;
use crate::rejection::{pointer, Rejection};
use crate::split::{self, Split};

/// A string field: `None` when absent or `null`.
pub(crate) type Text<'a> = Option<Cow<'a, str>>;

/// One element of `experiments`; an id is `None` when it is not a string.
pub(crate) struct ExperimentText<'a> {
    pub(crate) experiment_id: Option<Cow<'a, str>>,
    pub(crate) variant_id: Option<Cow<'a, str>>,
}

/// One metric in document order, its value as raw JSON text (judged, and
/// read as f64, by validation).
pub(crate) type MetricEntry<'a> = (Cow<'a, str>, &'a RawValue);

/// Each field decoded. An `Err` is that field's own decoding failure, to be
/// reported only if every earlier check passes.
pub(crate) struct Decoded<'a> {
    pub(crate) event_id: Result<Text<'a>, Rejection>,
    pub(crate) event_type: Result<Text<'a>, Rejection>,
    pub(crate) unit_type: Result<Text<'a>, Rejection>,
    pub(crate) unit_id: Result<Text<'a>, Rejection>,
    pub(crate) timestamp: Result<Text<'a>, Rejection>,
    /// Empty when absent or `null`.
    pub(crate) experiments: Result<Vec<ExperimentText<'a>>, Rejection>,
    /// `{}` when absent or `null`.
    pub(crate) context: Result<JsonObject, Rejection>,
    /// Empty when absent or `null`.
    pub(crate) metrics: Result<Vec<MetricEntry<'a>>, Rejection>,
    /// `{}` when absent or `null`.
    pub(crate) payload: Result<JsonObject, Rejection>,
    /// The tracking plan's version the event names (docs/plan.md).
    pub(crate) schema: Result<Text<'a>, Rejection>,
}

// ---- fast: one typed pass --------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FastEvent<'a> {
    #[serde(borrow)]
    event_id: Option<Str<'a>>,
    #[serde(borrow)]
    event_type: Option<Str<'a>>,
    #[serde(borrow)]
    unit_type: Option<Str<'a>>,
    #[serde(borrow)]
    unit_id: Option<Str<'a>>,
    #[serde(borrow)]
    timestamp: Option<Str<'a>>,
    #[serde(borrow)]
    experiments: Option<Vec<FastExperiment<'a>>>,
    #[serde(borrow)]
    context: Option<&'a RawValue>,
    #[serde(borrow)]
    metrics: Option<FastMetrics<'a>>,
    #[serde(borrow)]
    payload: Option<&'a RawValue>,
    #[serde(borrow)]
    schema: Option<Str<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FastExperiment<'a> {
    #[serde(borrow)]
    experiment_id: Str<'a>,
    #[serde(borrow)]
    variant_id: Str<'a>,
}

/// A metrics object read straight into entries, each value borrowed as raw
/// text (no allocation, no f64 yet).
struct FastMetrics<'a>(Vec<MetricEntry<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for FastMetrics<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(FastMetricsVisitor(PhantomData))
    }
}

struct FastMetricsVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for FastMetricsVisitor<'a> {
    type Value = FastMetrics<'a>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of numbers")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        while let Some((Str(key), value)) = map.next_entry::<Str<'a>, &'de RawValue>()? {
            entries.push((key, value));
        }
        Ok(FastMetrics(entries))
    }
}

fn unwrap_str(s: Option<Str<'_>>) -> Text<'_> {
    s.map(|Str(s)| s)
}

/// The one-pass decoder; `None` means "use [`exact`]".
pub(crate) fn fast(text: &str) -> Option<Decoded<'_>> {
    // No raw context/payload/metrics text is kept here to look for U+0000
    // in, so this path only takes texts that cannot contain it.
    if contains_nul(text) {
        return None;
    }
    let event: FastEvent = serde_json::from_str(text).ok()?;
    let experiments = event
        .experiments
        .unwrap_or_default()
        .into_iter()
        .map(|e| ExperimentText {
            experiment_id: Some(e.experiment_id.0),
            variant_id: Some(e.variant_id.0),
        })
        .collect();
    // A `context`/`payload` that cannot be stored is left to `exact`, which
    // says why.
    let object = |raw: Option<&RawValue>| match raw {
        None => Some(JsonObject::default()),
        Some(raw) => JsonObject::from_raw(raw).ok(),
    };
    let context = object(event.context)?;
    let payload = object(event.payload)?;
    Some(Decoded {
        event_id: Ok(unwrap_str(event.event_id)),
        event_type: Ok(unwrap_str(event.event_type)),
        unit_type: Ok(unwrap_str(event.unit_type)),
        unit_id: Ok(unwrap_str(event.unit_id)),
        timestamp: Ok(unwrap_str(event.timestamp)),
        experiments: Ok(experiments),
        context: Ok(context),
        metrics: Ok(event.metrics.map(|m| m.0).unwrap_or_default()),
        payload: Ok(payload),
        schema: Ok(unwrap_str(event.schema)),
    })
}

// ---- exact: split, then field by field -------------------------------------

/// The exact decoder. Its own `Err` covers the stages before any field:
/// JSON syntax (`invalid_json`), object shape and repeated keys
/// (`invalid_event`), unknown keys (`unknown_field`).
pub(crate) fn exact(text: &str) -> Result<Decoded<'_>, Rejection> {
    let fields = match split::split(text) {
        Err(e) => {
            return Err(Rejection::new(
                Code::InvalidJson,
                format!("the event is not valid JSON: {e}"),
            ))
        }
        Ok(Split::NotObject) => {
            return Err(Rejection::new(
                Code::InvalidEvent,
                "the event must be a JSON object",
            ))
        }
        // A repeated key would make one of its values win silently (e.g. a
        // second, empty `experiments`), so it is refused.
        Ok(Split::Object {
            repeated: Some(key),
            ..
        }) => {
            return Err(Rejection::new(
                Code::InvalidEvent,
                format!("the key {} appears more than once", quoted(&key)),
            )
            .at(&pointer("", &key)))
        }
        Ok(Split::Object {
            unknown: Some(key), ..
        }) => {
            return Err(Rejection::new(
                Code::UnknownField,
                format!("unknown field {}", quoted(&key)),
            )
            .at(&pointer("", &key)))
        }
        Ok(Split::Object { fields, .. }) => fields,
    };
    Ok(Decoded {
        event_id: string_field(fields.event_id, "event_id", Code::InvalidEventId),
        event_type: string_field(fields.event_type, "event_type", Code::InvalidEventType),
        unit_type: string_field(fields.unit_type, "unit_type", Code::InvalidUnitType),
        unit_id: string_field(fields.unit_id, "unit_id", Code::InvalidUnitId),
        timestamp: string_field(fields.timestamp, "timestamp", Code::InvalidTimestamp),
        experiments: experiments(fields.experiments),
        context: object(fields.context, "context", Code::InvalidContext),
        metrics: metrics(fields.metrics),
        payload: object(fields.payload, "payload", Code::InvalidPayload),
        schema: string_field(fields.schema, "schema", Code::InvalidSchema),
    })
}

/// A field's raw value unless it is absent or JSON `null`.
fn present(raw: Option<&RawValue>) -> Option<&RawValue> {
    raw.filter(|r| !is_null(r))
}

/// The text of a JSON string value; `None` if the value is not a string
/// (or holds an escape that is not valid Unicode, such as a lone surrogate).
pub(crate) fn string_value(raw: &RawValue) -> Option<Cow<'_, str>> {
    let json = raw.get();
    let inner = json.strip_prefix('"')?.strip_suffix('"')?;
    // Without a backslash the string's content is its raw text (raw
    // control characters were already rejected as bad syntax): no copy.
    if inner.contains('\\') {
        serde_json::from_str::<String>(json).ok().map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(inner))
    }
}

fn string_field<'a>(
    raw: Option<&'a RawValue>,
    field: &str,
    invalid: Code,
) -> Result<Text<'a>, Rejection> {
    match present(raw) {
        None => Ok(None),
        Some(raw) => string_value(raw)
            .map(Some)
            .ok_or_else(|| Rejection::new(invalid, format!("`{field}` must be a string"))),
    }
}

/// One element of `experiments`, exactly these two keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExperiment<'a> {
    #[serde(borrow)]
    experiment_id: &'a RawValue,
    #[serde(borrow)]
    variant_id: &'a RawValue,
}

fn experiments(raw: Option<&RawValue>) -> Result<Vec<ExperimentText<'_>>, Rejection> {
    let Some(raw) = present(raw) else {
        return Ok(Vec::new());
    };
    let elements: Vec<&RawValue> = serde_json::from_str(raw.get()).map_err(|_| {
        Rejection::new(
            Code::InvalidExperiments,
            "`experiments` must be an array of objects with exactly the keys \
             `experiment_id` and `variant_id`",
        )
    })?;
    elements
        .iter()
        .enumerate()
        .map(|(i, element)| {
            let e: RawExperiment = serde_json::from_str(element.get()).map_err(|_| {
                Rejection::new(
                    Code::InvalidExperiments,
                    format!(
                        "`experiments[{i}]` must be an object with exactly the keys \
                         `experiment_id` and `variant_id`"
                    ),
                )
                .at(&format!("/experiments/{i}"))
            })?;
            Ok(ExperimentText {
                experiment_id: string_value(e.experiment_id),
                variant_id: string_value(e.variant_id),
            })
        })
        .collect()
}

/// `context` / `payload`: any JSON object whose strings and keys, at any
/// depth, do not hold U+0000 (PostgreSQL text and jsonb cannot store it),
/// canonicalised (see [`JsonObject`]).
fn object(raw: Option<&RawValue>, field: &str, code: Code) -> Result<JsonObject, Rejection> {
    let Some(raw) = present(raw) else {
        return Ok(JsonObject::default());
    };
    if !raw.get().starts_with('{') {
        return Err(Rejection::new(code, format!("`{field}` must be an object")));
    }
    if contains_nul(raw.get()) {
        return Err(Rejection::new(
            code,
            format!("`{field}` contains the character U+0000, which cannot be stored"),
        ));
    }
    // Fails only on what the split skips over without converting: lone
    // surrogate escapes, numbers too long to write out, nesting deeper than
    // `JsonObject::MAX_DEPTH`.
    JsonObject::from_raw(raw)
        .map_err(|e| Rejection::new(code, format!("`{field}` cannot be stored: {e}")))
}

fn metrics(raw: Option<&RawValue>) -> Result<Vec<MetricEntry<'_>>, Rejection> {
    let Some(raw) = present(raw) else {
        return Ok(Vec::new());
    };
    let Ok(Shape::Object(entries)) = json::shape(raw.get()) else {
        return Err(Rejection::new(
            Code::InvalidMetrics,
            "`metrics` must be an object of numbers",
        ));
    };
    if contains_nul(raw.get()) {
        return Err(Rejection::new(
            Code::InvalidMetrics,
            "`metrics` contains the character U+0000, which cannot be stored",
        ));
    }
    // Values stay raw: validation reads each as f64 and blames a number out
    // of range (e.g. 1e400) or inexact on its own metric.
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::{btree_map, vec};
    use proptest::prelude::*;
    use serde_json::{json, Map, Value};

    /// Decoded fields rendered comparably (Rejection and Map are PartialEq;
    /// the Cow-bearing parts are turned into owned strings).
    fn render(d: Decoded<'_>) -> String {
        let texts = [
            d.event_id,
            d.event_type,
            d.unit_type,
            d.unit_id,
            d.timestamp,
        ]
        .map(|t| format!("{:?}", t.map(|t| t.map(Cow::into_owned))));
        let experiments = d.experiments.map(|v| {
            v.into_iter()
                .map(|e| {
                    (
                        e.experiment_id.map(Cow::into_owned),
                        e.variant_id.map(Cow::into_owned),
                    )
                })
                .collect::<Vec<_>>()
        });
        let metrics = d.metrics.map(|v| {
            v.into_iter()
                .map(|(k, n)| (k.into_owned(), n.get().to_owned()))
                .collect::<Vec<_>>()
        });
        format!(
            "{texts:?} {experiments:?} {:?} {metrics:?} {:?}",
            d.context, d.payload
        )
    }

    #[test]
    fn fast_and_exact_agree_on_the_fixture() {
        let text = include_str!("../../../events/plan_generated.json");
        let fast = fast(text).expect("the fixture takes the fast path");
        let exact = exact(text).expect("the fixture splits");
        assert_eq!(render(fast), render(exact));
    }

    #[test]
    fn fast_gives_up_on_what_exact_must_judge() {
        for text in [
            r#"{"event_type": 1}"#,
            r#"{"bogus": 1}"#,
            r#"{"event_type": "a", "event_type": "b"}"#,
            r#"{"payload": {"a": 1e1000}}"#,
            r#"{"payload": {"a": "\ud800"}}"#,
            r#"{"payload": "x"}"#,
            r#"{"payload": {"a": "\u0000"}}"#,
            r#"{"experiments": [{"experiment_id": 1, "variant_id": "x"}]}"#,
            r#"{"experiments": [{"experiment_id": "x"}]}"#,
            r#"["not", "an", "object"]"#,
            r#"{"unit_id": "x""#,
        ] {
            assert!(fast(text).is_none(), "{text}");
        }
    }

    #[test]
    fn null_means_absent_in_both_decoders() {
        let text = r#"{"event_id": null, "experiments": null, "context": null,
                       "metrics": null, "payload": null}"#;
        let fast = fast(text).expect("nulls take the fast path");
        let exact = exact(text).expect("nulls split");
        assert_eq!(render(fast), render(exact));
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".{0,6}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..4).prop_map(Value::Array),
                btree_map(".{0,4}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Mostly the type each field expects (so the fast decoder often
    /// succeeds), sometimes anything.
    fn arb_field(key: &'static str) -> BoxedStrategy<Option<Value>> {
        let typed = match key {
            "experiments" => vec(
                (".{0,4}", ".{0,4}")
                    .prop_map(|(e, v)| json!({"experiment_id": e, "variant_id": v})),
                0..3,
            )
            .prop_map(Value::Array)
            .boxed(),
            "metrics" => btree_map(".{0,4}", any::<f64>(), 0..4)
                .prop_map(|m| json!(m))
                .boxed(),
            "context" | "payload" => btree_map(".{0,4}", arb_value(), 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect()))
                .boxed(),
            _ => ".{0,6}".prop_map(Value::from).boxed(),
        };
        proptest::option::of(prop_oneof![6 => typed, 1 => arb_value()]).boxed()
    }

    const KEYS: [&str; 9] = [
        "event_id",
        "event_type",
        "unit_type",
        "unit_id",
        "timestamp",
        "experiments",
        "context",
        "metrics",
        "payload",
    ];

    proptest! {
        /// The fast decoder is only a shortcut: whenever it succeeds, the
        /// exact decoder succeeds with the same fields.
        #[test]
        fn fast_agrees_with_exact(
            values in KEYS.map(arb_field),
            extra in proptest::option::of(".{1,4}"),
        ) {
            let mut event = Map::new();
            for (key, value) in KEYS.iter().zip(values) {
                if let Some(value) = value {
                    event.insert((*key).to_owned(), value);
                }
            }
            if let Some(extra) = extra {
                event.entry(extra).or_insert(Value::Null);
            }
            let text = serde_json::to_string(&event).expect("serialize");
            if let Some(fast) = fast(&text) {
                let exact = exact(&text);
                prop_assert!(exact.is_ok(), "{}", text);
                if let Ok(exact) = exact {
                    prop_assert_eq!(render(fast), render(exact));
                }
            }
        }
    }
}
