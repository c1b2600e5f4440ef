//! The events every benchmark uses: the canonical event (events/plan_generated.json, about
//! 1 KiB as a request body: two experiments, six context keys, five metrics, a payload
//! with lists), with values varied by a fixed-seed generator so that compression and indexes
//! see realistic, not identical, rows.

use std::path::Path;
use std::sync::LazyLock;

use anyhow::Context;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use eis_contract::{validate_event, Event, Limits};
use eis_handoff::message::{self, SQS_MAX_MESSAGE_BYTES};
use serde_json::{json, Value};

/// splitmix64: deterministic, dependency-free variety.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const EXPERIMENTS: [(&str, [&str; 2]); 3] = [
    (
        "0191e3b2-7a10-7c44-8f0e-2b9d6a1c3e58",
        [
            "0191e3b2-7a10-7c44-8f0e-2b9d6a1c3e5a",
            "0191e3b2-7a10-7c44-8f0e-2b9d6a1c3e5b",
        ],
    ),
    (
        "0191f0c4-1d22-7e90-a3b5-6c7d8e9f0a12",
        [
            "0191f0c4-1d22-7e90-a3b5-6c7d8e9f0a15",
            "0191f0c4-1d22-7e90-a3b5-6c7d8e9f0a16",
        ],
    ),
    (
        "0192a0d1-2e33-7f01-b4c6-7d8e9f0a1b23",
        [
            "0192a0d1-2e33-7f01-b4c6-7d8e9f0a1b24",
            "0192a0d1-2e33-7f01-b4c6-7d8e9f0a1b25",
        ],
    ),
];
/// Standard types whose required keys the body carries, and free-form ones.
const EVENT_TYPES: [&str; 4] = [
    "plan_generated",
    "plan_accepted",
    "recipe_viewed",
    "pantry_updated",
];
const TAGS: [&str; 5] = [
    "vegetarian",
    "high_protein",
    "low_carb",
    "gluten_free",
    "budget",
];
const INGREDIENTS: [&str; 5] = ["peanut", "shellfish", "dairy", "egg", "soy"];

/// The canonical event (events/plan_generated.json) without its `event_id`, parsed once: each
/// generated body is a copy with the varying fields drawn anew.
static CANONICAL: LazyLock<Value> = LazyLock::new(|| {
    // A constant that does not parse is a bug of the repository, not of the input.
    let mut body: Value = serde_json::from_str(include_str!("../../events/plan_generated.json"))
        .expect("events/plan_generated.json");
    if let Some(fields) = body.as_object_mut() {
        fields.remove("event_id");
    }
    body
});

/// Request body of event `i` (no `event_id`: the API assigns a fresh one, as for most clients).
pub fn request_body(i: u64, timestamp: DateTime<Utc>) -> Value {
    let mut r = Mix(i);
    let (experiment, variants) = EXPERIMENTS[(i % 3) as usize];
    let (other, other_variants) = EXPERIMENTS[((i + 1) % 3) as usize];
    let mut body = CANONICAL.clone();
    // In the order the generator is drawn from, so that the bodies stay what they were.
    body["event_type"] = EVENT_TYPES[r.below(4) as usize].into();
    body["unit_id"] = format!("usr_{:016x}", r.below(200_000)).into();
    body["timestamp"] = timestamp
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        .into();
    body["experiments"] = json!([
        {"experiment_id": experiment, "variant_id": variants[r.below(2) as usize]},
        {"experiment_id": other, "variant_id": other_variants[r.below(2) as usize]},
    ]);
    let context = &mut body["context"];
    context["app_version"] = ["4.12.1", "4.12.0", "4.11.3"][r.below(3) as usize].into();
    context["platform"] = ["ios", "android", "web"][r.below(3) as usize].into();
    context["locale"] = ["en-GB", "en-US", "de-DE", "fr-FR"][r.below(4) as usize].into();
    context["session_id"] = format!("s_{:012x}", r.below(1 << 48)).into();
    body["metrics"] = json!({
        "latency_ms": r.below(400_000) as f64 / 100.0,
        "token_count": r.below(4_000),
        "meal_count": 7 + r.below(21),
        "kcal_target": 1_500 + r.below(1_500),
        "budget_gbp": r.below(15_000) as f64 / 100.0,
    });
    let payload = &mut body["payload"];
    payload["plan_id"] = format!("pln_{:012X}", r.below(1 << 48)).into();
    payload["dietary_tags"] = json!([TAGS[r.below(5) as usize], TAGS[r.below(5) as usize]]);
    payload["excluded_ingredients"] = json!([INGREDIENTS[r.below(5) as usize]]);
    payload["pantry_items_used"] = r.below(20).into();
    payload["retry"] = (r.below(10) == 0).into();
    payload["summary"] = format!(
        "7-day plan, avg {} kcal/day, {}% protein",
        1_800 + r.below(600),
        20 + r.below(25)
    )
    .into();
    body
}

/// `n` validated events, all in the previous full UTC hour (one archive partition, so the
/// encoder writes one file, like DuckDB and pyarrow), received at `now`.
pub fn events(n: usize) -> anyhow::Result<Vec<Event>> {
    let now = Utc::now();
    let hour = now
        .duration_trunc(TimeDelta::hours(1))
        .context("truncating now to the hour")?
        - TimeDelta::hours(1);
    let step_us = 3_600_000_000 / n.max(1) as i64;
    let limits = Limits::default();
    (0..n)
        .map(|i| {
            let at = hour + TimeDelta::microseconds(step_us * i as i64);
            let body = request_body(i as u64, at).to_string();
            validate_event(body.as_bytes(), now, &limits)
                .map_err(|r| anyhow::anyhow!("generated event {i} invalid: {}", r.message))
        })
        .collect()
}

/// `events` packed into SQS message bodies, as the ingest function publishes them.
pub fn queue_bodies(events: &[Event]) -> anyhow::Result<Vec<String>> {
    Ok(message::pack(events, SQS_MAX_MESSAGE_BYTES)?
        .into_iter()
        .map(|m| m.body)
        .collect())
}

/// A batch request body of `n` events stamped `timestamp`.
pub fn batch_body(n: usize, timestamp: DateTime<Utc>) -> String {
    let events: Vec<Value> = (0..n as u64).map(|i| request_body(i, timestamp)).collect();
    json!({ "events": events }).to_string()
}

/// Bodies for the HTTP benchmark (single.json, batch-100.json, batch-500.json), stamped a
/// minute ago: valid for the whole run (the contract accepts up to 7 days back).
pub fn write_bodies(out: &Path) -> anyhow::Result<Value> {
    let at = Utc::now() - TimeDelta::minutes(1);
    let single = request_body(0, at).to_string();
    let mut sizes = serde_json::Map::new();
    for (name, body) in [
        ("single", single),
        ("batch-100", batch_body(100, at)),
        ("batch-500", batch_body(500, at)),
    ] {
        let path = out.join(format!("{name}.json"));
        std::fs::write(&path, &body).with_context(|| format!("writing {}", path.display()))?;
        sizes.insert(name.into(), body.len().into());
    }
    Ok(json!({ "body_bytes": sizes }))
}
