//! Cost of the tracking plan (issue 28): validation CPU per event with a plan of 50 event
//! types against validation with no plan, on the same 1 000 events; an event that fails its
//! type's schema in quarantine mode; and the plan's load (serde parse of its JSON) and
//! compile time.
//!
//! Everything is generated here, deterministically (SplitMix64 with a fixed seed): 50 types,
//! each with a payload schema of 5 to 15 properties of mixed kinds (strings with `maxLength`,
//! `enum` or `pattern`, integers with bounds, numbers, booleans, nested objects and arrays,
//! `required`, mostly `additionalProperties: false`), some with a `context` and a `metrics`
//! schema and a deprecated older version; and 1 000 events over the types in a skewed mix
//! (a few types make most of the traffic, every type appears), each matching its type's
//! newest version.
//!
//! Run: `cargo bench -p eis-contract --bench plan`. With `EIS_BENCH_PLAN_SETUP=<path>`, the
//! setup's sizes are written there as JSON (for bench/plan.py).

use std::hint::black_box;
use std::time::Duration;

use chrono::{DateTime, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use eis_contract::plan::{Plan, PlanDocument, PlanVerdict};
use eis_contract::{validate_event, Flag, Limits};
use serde_json::{json, Map, Value};

/// Event types in the plan.
const TYPES: usize = 50;
/// Pre-generated events, cycled through by each measurement.
const EVENTS: usize = 1_000;
const SEED: u64 = 0x0028_7a11_5eed_2026;

/// A fixed `now` a little after the events' timestamps: neither future nor old.
fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T11:00:00Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

/// SplitMix64: a fixed sequence from a fixed seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// In `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// In `lo..=hi`.
    fn between(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const WORDS: &[&str] = &[
    "tomato", "basil", "lentil", "quinoa", "spinach", "salmon", "chickpea", "oat", "yogurt",
    "pepper", "garlic", "ginger", "rice", "tofu", "mushroom", "almond", "lemon", "feta", "avocado",
    "carrot", "walnut", "cumin", "paprika", "honey",
];
const ENUMS: &[&[&str]] = &[
    &["breakfast", "lunch", "dinner", "snack"],
    &[
        "vegetarian",
        "vegan",
        "pescatarian",
        "omnivore",
        "keto",
        "paleo",
    ],
    &["low", "medium", "high"],
    &["manual", "suggested", "automatic", "imported"],
    &["grams", "ounces", "cups", "pieces", "millilitres"],
];
const ULID_CHARS: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const PLATFORMS: &[&str] = &["ios", "android", "web"];

/// The kinds of payload property a type's schema is made of.
#[derive(Clone, Copy)]
enum Kind {
    /// A prefixed id: `pattern`.
    Id,
    /// Free text: `maxLength`.
    Text,
    /// One of a few strings: `enum` (one of `ENUMS`, by type).
    Choice,
    /// An integer with `minimum`.
    Count,
    /// An integer with `minimum` and `maximum`.
    Days,
    /// A number with `minimum`.
    Amount,
    Toggle,
    /// A date: `pattern`.
    Date,
    /// An array of short strings: `maxItems`, `uniqueItems`.
    Tags,
    /// A nested object: `required`, `additionalProperties: false`.
    Item,
    /// An array of nested objects.
    Items,
    /// A string or null: `type` as a list, `maxLength`.
    Note,
}

const KINDS: [Kind; 12] = [
    Kind::Id,
    Kind::Text,
    Kind::Choice,
    Kind::Count,
    Kind::Days,
    Kind::Amount,
    Kind::Toggle,
    Kind::Date,
    Kind::Tags,
    Kind::Item,
    Kind::Items,
    Kind::Note,
];

impl Kind {
    fn base_name(self) -> &'static str {
        match self {
            Kind::Id => "plan_id",
            Kind::Text => "summary",
            Kind::Choice => "category",
            Kind::Count => "item_count",
            Kind::Days => "days",
            Kind::Amount => "budget_gbp",
            Kind::Toggle => "retry",
            Kind::Date => "week_start",
            Kind::Tags => "dietary_tags",
            Kind::Item => "main_ingredient",
            Kind::Items => "ingredients",
            Kind::Note => "note",
        }
    }

    fn item_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "ingredient_id": {"type": "string", "maxLength": 64},
                "quantity": {"type": "number", "minimum": 0},
                "unit": {"type": "string", "enum": ENUMS[4]},
                "optional": {"type": "boolean"}
            },
            "required": ["ingredient_id", "quantity"],
            "additionalProperties": false
        })
    }

    fn schema(self, choices: &[&str]) -> Value {
        match self {
            Kind::Id => json!({"type": "string", "pattern": "^[a-z]{3}_[0-9A-Z]{12}$"}),
            Kind::Text => json!({"type": "string", "maxLength": 200}),
            Kind::Choice => json!({"type": "string", "enum": choices}),
            Kind::Count => json!({"type": "integer", "minimum": 0}),
            Kind::Days => json!({"type": "integer", "minimum": 1, "maximum": 14}),
            Kind::Amount => json!({"type": "number", "minimum": 0}),
            Kind::Toggle => json!({"type": "boolean"}),
            Kind::Date => json!({"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}),
            Kind::Tags => json!({
                "type": "array",
                "items": {"type": "string", "maxLength": 32},
                "maxItems": 10,
                "uniqueItems": true
            }),
            Kind::Item => Kind::item_schema(),
            Kind::Items => json!({"type": "array", "items": Kind::item_schema(), "maxItems": 50}),
            Kind::Note => json!({"type": ["string", "null"], "maxLength": 64}),
        }
    }

    fn item(rng: &mut Rng) -> Value {
        let mut item = json!({
            "ingredient_id": format!("ing_{}", rng.pick(WORDS)),
            "quantity": rng.between(1, 2_000) as f64 / 4.0,
        });
        if rng.chance(70) {
            item["unit"] = json!(rng.pick(ENUMS[4]));
        }
        if rng.chance(20) {
            item["optional"] = json!(true);
        }
        item
    }

    /// A value the kind's schema accepts.
    fn value(self, rng: &mut Rng, choices: &[&str]) -> Value {
        match self {
            Kind::Id => {
                let mut id = String::from(rng.pick(&["pln", "mel", "rcp", "usr", "pnt"]));
                id.push('_');
                for _ in 0..12 {
                    id.push(char::from(ULID_CHARS[rng.below(ULID_CHARS.len())]));
                }
                json!(id)
            }
            Kind::Text => {
                let words: Vec<&str> = (0..rng.between(3, 14)).map(|_| rng.pick(WORDS)).collect();
                json!(words.join(" "))
            }
            Kind::Choice => json!(rng.pick(choices)),
            Kind::Count => json!(rng.between(0, 500)),
            Kind::Days => json!(rng.between(1, 14)),
            Kind::Amount => json!(rng.between(0, 20_000) as f64 / 100.0),
            Kind::Toggle => json!(rng.chance(30)),
            Kind::Date => json!(format!(
                "2026-{:02}-{:02}",
                rng.between(1, 3),
                rng.between(1, 28)
            )),
            Kind::Tags => {
                let start = rng.below(WORDS.len());
                let n = rng.below(6);
                json!((0..n)
                    .map(|k| WORDS[(start + k) % WORDS.len()])
                    .collect::<Vec<_>>())
            }
            Kind::Item => Kind::item(rng),
            Kind::Items => {
                let n = rng.between(1, 8);
                Value::Array((0..n).map(|_| Kind::item(rng)).collect())
            }
            Kind::Note => {
                if rng.chance(40) {
                    Value::Null
                } else {
                    json!(format!("{} {}", rng.pick(WORDS), rng.pick(WORDS)))
                }
            }
        }
    }
}

/// How a generated event of a type fails its schema (the quarantine measure).
#[derive(Clone, Copy)]
enum Break {
    /// A required property left out.
    Missing,
    /// A required property of the wrong type.
    WrongType,
    /// A property the schema does not name (`additionalProperties: false`).
    Extra,
}

/// One generated event type: its schema's properties and what the generator needs.
struct TypeSpec {
    name: String,
    mode: &'static str,
    /// (name, kind), in schema order; the first `required` are required.
    properties: Vec<(String, Kind)>,
    required: usize,
    closed: bool,
    choices: &'static [&'static str],
    context_schema: bool,
    metrics_schema: bool,
    /// A deprecated 1-0-0 before the active 1-1-0 (which adds the last property).
    two_versions: bool,
}

const TYPE_WORDS: &[&str] = &[
    "plan", "meal", "recipe", "pantry", "basket", "profile", "reminder", "coach", "search", "share",
];
const TYPE_VERBS: &[&str] = &["viewed", "created", "updated", "completed", "opened"];

fn type_specs() -> Vec<TypeSpec> {
    (0..TYPES)
        .map(|i| {
            let n = 5 + (i * 7) % 11; // 5..=15 properties
            let properties = (0..n)
                .map(|j| {
                    let kind = KINDS[(i + 5 * j) % KINDS.len()];
                    let name = if j < KINDS.len() {
                        kind.base_name().to_string()
                    } else {
                        format!("{}_2", kind.base_name())
                    };
                    (name, kind)
                })
                .collect();
            TypeSpec {
                name: format!(
                    "{}_{}_{i}",
                    TYPE_WORDS[i % TYPE_WORDS.len()],
                    TYPE_VERBS[(i / TYPE_WORDS.len()) % TYPE_VERBS.len()]
                ),
                mode: ["quarantine", "flag", "reject"][i % 3],
                properties,
                required: (2 * n).div_ceil(3),
                closed: i % 4 != 3,
                choices: ENUMS[i % ENUMS.len()],
                context_schema: i % 3 == 0,
                metrics_schema: i % 5 == 0,
                two_versions: i % 4 == 1,
            }
        })
        .collect()
}

fn payload_schema(t: &TypeSpec, properties: &[(String, Kind)]) -> Value {
    let props: Map<String, Value> = properties
        .iter()
        .map(|(name, kind)| (name.clone(), kind.schema(t.choices)))
        .collect();
    let required: Vec<&str> = properties
        .iter()
        .take(t.required)
        .map(|(name, _)| name.as_str())
        .collect();
    let mut schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": props,
        "required": required,
    });
    if t.closed {
        schema["additionalProperties"] = json!(false);
    }
    schema
}

fn context_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "app_version": {"type": "string", "pattern": "^[0-9]+\\.[0-9]+\\.[0-9]+$"},
            "platform": {"type": "string", "enum": PLATFORMS},
            "locale": {"type": "string", "maxLength": 16},
            "session_id": {"type": "string", "maxLength": 64}
        },
        "required": ["app_version", "platform"]
    })
}

fn metrics_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "latency_ms": {"type": "number", "minimum": 0},
            "token_count": {"type": "number", "minimum": 0},
            "kcal_target": {"type": "number", "minimum": 0, "maximum": 10000}
        },
        "required": ["latency_ms"],
        "additionalProperties": false
    })
}

/// The plan document's JSON: what `make plan` loads and the functions read back.
fn plan_json(specs: &[TypeSpec]) -> String {
    let types: Vec<Value> = specs
        .iter()
        .map(|t| {
            let mut newest =
                json!({"version": "1-0-0", "payload": payload_schema(t, &t.properties)});
            if t.context_schema {
                newest["context"] = context_schema();
            }
            if t.metrics_schema {
                newest["metrics"] = metrics_schema();
            }
            let mut versions = vec![];
            if t.two_versions {
                let older = &t.properties[..t.properties.len() - 1];
                let mut old = newest.clone();
                old["status"] = json!("deprecated");
                old["payload"] = payload_schema(t, older);
                versions.push(old);
                newest["version"] = json!("1-1-0");
            }
            versions.push(newest);
            json!({"event_type": t.name, "mode": t.mode, "versions": versions})
        })
        .collect();
    json!({"unplanned": "flag", "types": types}).to_string()
}

fn newest_version(t: &TypeSpec) -> &'static str {
    if t.two_versions {
        "1-1-0"
    } else {
        "1-0-0"
    }
}

/// The `k`th event's bytes, of type `t`: matching its newest version, or broken as `broken`.
fn event(k: usize, t: &TypeSpec, rng: &mut Rng, broken: Option<Break>) -> Vec<u8> {
    let mut payload = Map::new();
    for (j, (name, kind)) in t.properties.iter().enumerate() {
        if j < t.required || rng.chance(70) {
            payload.insert(name.clone(), kind.value(rng, t.choices));
        }
    }
    match broken {
        None => {}
        Some(Break::Missing) => {
            payload.remove(&t.properties[0].0);
        }
        Some(Break::WrongType) => {
            payload.insert(t.properties[0].0.clone(), json!([1, 2]));
        }
        Some(Break::Extra) => {
            payload.insert("unexpected_field".into(), json!(true));
        }
    }
    let mut context = json!({
        "app_version": format!("4.{}.{}", rng.between(0, 14), rng.between(0, 9)),
        "platform": rng.pick(PLATFORMS),
        "locale": rng.pick(&["en-GB", "en-US", "fr-FR", "de-DE"]),
        "session_id": format!("s_{:012x}", rng.next() >> 16),
    });
    if rng.chance(30) {
        context["model"] = json!("planner-2026-02");
    }
    let mut metrics = Map::new();
    if t.metrics_schema || rng.chance(50) {
        metrics.insert(
            "latency_ms".into(),
            json!(rng.between(50, 40_000) as f64 / 10.0),
        );
        if rng.chance(60) {
            metrics.insert("token_count".into(), json!(rng.between(100, 4_000)));
        }
    }
    let experiments: Vec<Value> = (0..rng.below(3))
        .map(|e| {
            json!({
                "experiment_id": format!("0191e3b2-7a10-7c44-8f0e-2b9d6a1c3e{e:02x}"),
                "variant_id": format!("0191e3b2-7a10-7c44-8f0e-2b9d6a1c{:04x}", rng.below(4)),
            })
        })
        .collect();
    let mut event = json!({
        "event_id": format!("0192f5a8-3c4e-7d21-9b6a-{:012x}", k + 1),
        "event_type": t.name,
        "unit_type": "user",
        "unit_id": format!("usr_{:016x}", rng.next()),
        "timestamp": format!("2026-03-01T10:{:02}:{:02}.{:03}Z", rng.below(60), rng.below(60), rng.below(1000)),
        "experiments": experiments,
        "context": context,
        "metrics": metrics,
        "payload": payload,
    });
    // One event in ten names its version, as a client pinned to a version does.
    if k % 10 == 0 {
        event["schema"] = json!(format!("{}/{}", t.name, newest_version(t)));
    }
    event.to_string().into_bytes()
}

/// A skewed mix over the types, every type at least once: the first `TYPES` events take one
/// type each, the others follow Zipf-like weights 1/(rank+1).
fn event_types(rng: &mut Rng, n: usize) -> Vec<usize> {
    let weights: Vec<f64> = (0..TYPES).map(|i| 1.0 / (i + 1) as f64).collect();
    let total: f64 = weights.iter().sum();
    (0..n)
        .map(|k| {
            if k < TYPES {
                return k;
            }
            let mut x = (rng.next() >> 11) as f64 / (1u64 << 53) as f64 * total;
            for (i, w) in weights.iter().enumerate() {
                if x < *w {
                    return i;
                }
                x -= w;
            }
            TYPES - 1
        })
        .collect()
}

struct Setup {
    json: String,
    document: PlanDocument,
    plan: Plan,
    /// Each matching its type's newest version.
    events: Vec<Vec<u8>>,
    /// Each failing its type's schema, all of quarantine-mode types.
    failing: Vec<Vec<u8>>,
}

fn setup() -> Setup {
    let specs = type_specs();
    let json = plan_json(&specs);
    let document: PlanDocument = serde_json::from_str(&json).expect("the plan document parses");
    let plan = Plan::compile(&document).expect("the plan compiles");
    assert_eq!(plan.len(), TYPES);
    let mut rng = Rng(SEED);
    let events = event_types(&mut rng, EVENTS)
        .into_iter()
        .enumerate()
        .map(|(k, t)| event(k, &specs[t], &mut rng, None))
        .collect();
    let quarantined: Vec<&TypeSpec> = specs.iter().filter(|t| t.mode == "quarantine").collect();
    let failing = (0..EVENTS)
        .map(|k| {
            let t = quarantined[k % quarantined.len()];
            let broken = match k % 3 {
                0 => Break::Missing,
                1 => Break::WrongType,
                _ if t.closed => Break::Extra,
                _ => Break::WrongType,
            };
            event(k, t, &mut rng, Some(broken))
        })
        .collect();
    Setup {
        json,
        document,
        plan,
        events,
        failing,
    }
}

/// Asserts what the measurements assume: every event passes the contract, and the plan
/// accepts each matching event unflagged and quarantines each failing one.
fn check_setup(s: &Setup) {
    let (limits, now) = (Limits::default(), now());
    for bytes in &s.events {
        let event = validate_event(bytes, now, &limits).expect("a contract-valid event");
        match s.plan.check(event) {
            PlanVerdict::Accepted(e) => {
                assert!(e.schema_version.is_some(), "matched a version");
                assert!(
                    !e.flags.contains(&Flag::SchemaViolation),
                    "matches its schema: {}",
                    String::from_utf8_lossy(bytes)
                );
            }
            other => panic!("not accepted: {other:?}"),
        }
    }
    for bytes in &s.failing {
        let event = validate_event(bytes, now, &limits).expect("a contract-valid event");
        assert!(
            matches!(s.plan.check(event), PlanVerdict::Quarantined(_)),
            "quarantined: {}",
            String::from_utf8_lossy(bytes)
        );
    }
}

/// The setup's sizes, for the report (bench/plan.py), when `EIS_BENCH_PLAN_SETUP` names a file.
fn write_setup(s: &Setup) {
    let Ok(path) = std::env::var("EIS_BENCH_PLAN_SETUP") else {
        return;
    };
    let versions: Vec<_> = s.document.types.iter().flat_map(|t| &t.versions).collect();
    let schemas = versions
        .iter()
        .map(|v| 1 + usize::from(v.context.is_some()) + usize::from(v.metrics.is_some()))
        .sum::<usize>();
    let properties: Vec<usize> = s
        .document
        .types
        .iter()
        .filter_map(|t| t.versions.last())
        .filter_map(|v| v.payload["properties"].as_object().map(Map::len))
        .collect();
    let mean = |events: &[Vec<u8>]| {
        events.iter().map(Vec::len).sum::<usize>() as f64 / events.len() as f64
    };
    let out = json!({
        "types": s.document.types.len(),
        "versions": versions.len(),
        "schemas": schemas,
        "with_context_schema": versions.iter().filter(|v| v.context.is_some()).count(),
        "with_metrics_schema": versions.iter().filter(|v| v.metrics.is_some()).count(),
        "properties_min": properties.iter().min(),
        "properties_max": properties.iter().max(),
        "document_bytes": s.json.len(),
        "events": s.events.len(),
        "event_bytes_mean": mean(&s.events),
        "failing_events": s.failing.len(),
        "failing_event_bytes_mean": mean(&s.failing),
        "quarantine_types": s.document.types.iter().filter(|t| t.mode == eis_contract::plan::PlanMode::Quarantine).count(),
        "seed": SEED,
    });
    if let Err(e) = std::fs::write(&path, out.to_string()) {
        panic!("writing {path}: {e}");
    }
}

/// An endless walk through `events`: each call the next one. Made once per measurement, outside
/// criterion's routine (which criterion calls again for every sample), so that every sample
/// continues the walk and the whole mix is measured, not its first events again and again.
fn cycle<'a>(events: &'a [Vec<u8>]) -> impl FnMut() -> &'a [u8] + 'a {
    let mut i = 0;
    move || {
        let bytes = &events[i];
        i = (i + 1) % events.len();
        bytes
    }
}

fn bench_plan(c: &mut Criterion) {
    let s = setup();
    check_setup(&s);
    write_setup(&s);
    let (limits, now) = (Limits::default(), now());
    // No plan: the ingest's path without one (an empty plan's check returns at once).
    let empty = Plan::default();

    // The goal's two measurements: one group, the same events in the same order.
    let mut group = c.benchmark_group("plan_50_types");
    let mut next = cycle(&s.events);
    group.bench_function("no_plan", |b| {
        b.iter(|| validate_event(black_box(next()), now, &limits).map(|e| empty.check(e)))
    });
    let mut next = cycle(&s.events);
    group.bench_function("with_plan", |b| {
        b.iter(|| validate_event(black_box(next()), now, &limits).map(|e| s.plan.check(e)))
    });
    group.finish();

    // Events failing their type's schema in quarantine mode (reported): the violations are
    // collected and the rejection built.
    let mut group = c.benchmark_group("plan_50_failing");
    let mut next = cycle(&s.failing);
    group.bench_function("no_plan", |b| {
        b.iter(|| validate_event(black_box(next()), now, &limits).map(|e| empty.check(e)))
    });
    let mut next = cycle(&s.failing);
    group.bench_function("quarantined", |b| {
        b.iter(|| validate_event(black_box(next()), now, &limits).map(|e| s.plan.check(e)))
    });
    group.finish();

    // Loading the plan: the document's JSON parsed, then every schema compiled.
    let mut group = c.benchmark_group("plan_50_load");
    group.sample_size(20);
    group.bench_function("parse", |b| {
        b.iter(|| serde_json::from_str::<PlanDocument>(black_box(&s.json)))
    });
    group.bench_function("compile", |b| {
        b.iter(|| Plan::compile(black_box(&s.document)))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    // More samples and a longer measurement than validate.rs: the ratio is the figure, and the
    // 2-core machine is shared (CPU-frequency and neighbour noise).
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(3))
        .measurement_time(Duration::from_secs(10))
        .sample_size(100);
    targets = bench_plan
}
criterion_main!(benches);
