//! `eis-bench value-parse BODY ROUNDS`: the reference of the ingest function's CPU goal (BENCHMARKS.md, Validation).
//! `serde_json::from_slice::<serde_json::Value>` of the very request body the HTTP run sends
//! (bench/ingest_http.py passes its batch-500 file), repeated until each round has used at
//! least `ROUND_CPU_SECONDS` of this thread's CPU time (not wall time), per event. The ingest
//! process's own CPU per event comes from the same run's /proc figures.

use std::path::Path;

use anyhow::Context;
use serde_json::{json, Value};

use crate::thread_cpu_seconds;

const ROUND_CPU_SECONDS: f64 = 0.5;

pub fn measure(body: &Path, rounds: usize) -> anyhow::Result<Value> {
    let bytes = std::fs::read(body).with_context(|| format!("reading {}", body.display()))?;
    let parsed: Value = serde_json::from_slice(&bytes).context("the body is not JSON")?;
    // A batch body is {"events": [...]}; anything else is one event.
    let events = parsed
        .get("events")
        .and_then(Value::as_array)
        .map_or(1, Vec::len)
        .max(1);
    drop(parsed);
    let parse = || parse_body(&bytes);
    // Warm-up: allocator and caches.
    for _ in 0..20 {
        parse()?;
    }
    let mut us_per_event = Vec::with_capacity(rounds);
    let mut iterations = Vec::with_capacity(rounds);
    for _ in 0..rounds.max(1) {
        let started = thread_cpu_seconds()?;
        let mut n = 0usize;
        let cpu = loop {
            for _ in 0..10 {
                parse()?;
            }
            n += 10;
            let cpu = thread_cpu_seconds()? - started;
            if cpu >= ROUND_CPU_SECONDS {
                break cpu;
            }
        };
        us_per_event.push(cpu * 1e6 / (n * events) as f64);
        iterations.push(n);
    }
    Ok(json!({
        "body": body.display().to_string(),
        "body_bytes": bytes.len(),
        "events_per_body": events,
        "iterations": iterations,
        "us_per_event": us_per_event,
    }))
}

/// One parse of the body. Never inlined: callgrind collects from this symbol
/// (`--toggle-collect=eis_bench::value_parse::parse_body*`), to compare instruction counts
/// with the ingest's CPU path (`eis_bench::cpu_path::ingest_batches`) on the same bytes.
#[inline(never)]
fn parse_body(bytes: &[u8]) -> anyhow::Result<()> {
    let value: Value = serde_json::from_slice(std::hint::black_box(bytes))?;
    std::hint::black_box(&value);
    Ok(())
}
