//! Cost of the typed validator against an untyped `serde_json::Value` parse
//! of the same ~1 KiB event, of the experiment registry's check on top of it,
//! and of splitting a 1000-event batch.
//!
//! Run: `cargo bench -p eis-contract --bench validate`.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use chrono::{DateTime, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use eis_contract::{
    parse_batch, validate_event, Limits, RegisteredExperiment, Registry, RegistryMode,
};
use uuid::Uuid;

const EVENT: &[u8] = include_bytes!("../../../events/plan_generated.json");

/// A fixed `now` a little after the fixture's timestamp, so the event is
/// neither future nor old and every rule runs.
fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T11:00:00Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

/// 20 experiments of 2 to 4 variants, among them the fixture's two (so that every check runs
/// for both): a registry of a realistic size.
fn registry() -> Registry {
    let fixture: [(&str, &str); 2] = [
        (
            "0191e3b2-7a10-7c44-8f0e-2b9d6a1c3e58",
            "0191e3b2-7a10-7c44-8f0e-2b9d6a1c3e5a",
        ),
        (
            "0191f0c4-1d22-7e90-a3b5-6c7d8e9f0a12",
            "0191f0c4-1d22-7e90-a3b5-6c7d8e9f0a15",
        ),
    ];
    let experiment = |variants: Vec<Uuid>| RegisteredExperiment {
        unit_type: "user".into(),
        stopped: false,
        starts_at: DateTime::<Utc>::UNIX_EPOCH,
        ends_at: None,
        variants,
    };
    let mut experiments: HashMap<Uuid, RegisteredExperiment> = (0..18u128)
        .map(|i| {
            let variants = (0..2 + i % 3)
                .map(|v| Uuid::from_u128(i << 8 | v))
                .collect();
            (Uuid::from_u128(i << 16), experiment(variants))
        })
        .collect();
    for (id, variant) in fixture {
        let (id, variant) = (Uuid::parse_str(id), Uuid::parse_str(variant));
        if let (Ok(id), Ok(variant)) = (id, variant) {
            experiments.insert(id, experiment(vec![Uuid::from_u128(1), variant]));
        }
    }
    Registry::new(experiments)
}

fn batch_body(events: usize) -> Vec<u8> {
    let mut body = b"{\"events\": [".to_vec();
    for i in 0..events {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(EVENT);
    }
    body.extend_from_slice(b"]}");
    body
}

fn single_event(c: &mut Criterion) {
    let limits = Limits::default();
    let now = now();
    assert!(
        validate_event(EVENT, now, &limits).is_ok(),
        "the fixture must be a valid event"
    );

    let mut group = c.benchmark_group("event_1k");
    group.throughput(Throughput::Bytes(EVENT.len() as u64));
    group.bench_function("validate_event", |b| {
        b.iter(|| validate_event(black_box(EVENT), now, &limits))
    });
    let registry = registry();
    let admitted = validate_event(EVENT, now, &limits)
        .and_then(|e| registry.admit(e, RegistryMode::Flag))
        .map(|e| e.flags);
    assert_eq!(admitted.ok(), Some(vec![]), "the fixture fits the registry");
    group.bench_function("validate_and_registry_check", |b| {
        b.iter(|| {
            validate_event(black_box(EVENT), now, &limits)
                .and_then(|e| registry.admit(e, RegistryMode::Flag))
        })
    });
    group.bench_function("serde_json_value", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(EVENT)))
    });
    group.finish();
}

fn batch(c: &mut Criterion) {
    let limits = Limits::default();
    let body = batch_body(limits.max_batch_events);
    assert_eq!(
        parse_batch(&body, &limits).map(|events| events.len()).ok(),
        Some(limits.max_batch_events)
    );

    let mut group = c.benchmark_group("batch_1000");
    // One iteration takes milliseconds: fewer samples keep the run short.
    group.sample_size(20);
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("parse_batch", |b| {
        b.iter(|| parse_batch(black_box(&body), &limits))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    // Short runs: this bench is a sanity check on a 2-core machine, not a
    // long-running regression suite.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    targets = single_event, batch
}
criterion_main!(benches);
