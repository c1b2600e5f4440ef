//! The pure-CPU part of each hot path, with no network, for `valgrind --tool=callgrind`
//! (instruction counts: repeatable on a shared machine). bench/run.sh summarises the profile.
//!
//! ingest:  batch request body → parse_batch → validate_event each → Encoded::new each (the
//!          record, digest and column text) → pack the records into SQS bodies (the request
//!          path minus the PostgreSQL and SQS round trips)
//! archive: SQS bodies → decode → batcher → zstd Parquet (as `eis-bench encode`)

use std::hint::black_box;

use anyhow::{bail, Context};
use chrono::Utc;
use eis_contract::{parse_batch, validate_event, Encoded, Limits};
use eis_handoff::message::{self, SQS_MAX_MESSAGE_BYTES};
use serde_json::{json, Value};

use crate::{encode, workload};

/// The largest batch the API takes per request by default.
const BATCH: usize = 500;

pub fn measure(path: &str, n: usize) -> anyhow::Result<Value> {
    match path {
        "ingest" => {
            let body = workload::batch_body(BATCH, Utc::now() - chrono::TimeDelta::minutes(1));
            let (events, messages) = ingest_batches(&body, n.div_ceil(BATCH))?;
            Ok(json!({"path": path, "events": events, "messages": messages}))
        }
        "archive" => {
            let events = workload::events(n)?;
            let bodies = workload::queue_bodies(&events)?;
            drop(events);
            let files = encode::encode(&bodies).context("encoding")?;
            let bytes: usize = files.iter().map(Vec::len).sum();
            Ok(json!({"path": path, "events": n, "bytes": bytes}))
        }
        _ => bail!("cpu-path: unknown path {path:?} (ingest or archive)"),
    }
}

/// What the ingest function does with `rounds` batch requests between reading the body and
/// the network calls. Never inlined: callgrind collects from this symbol.
#[inline(never)]
fn ingest_batches(body: &str, rounds: usize) -> anyhow::Result<(usize, usize)> {
    let limits = Limits::default();
    let (mut events_seen, mut messages) = (0, 0);
    for _ in 0..rounds {
        let raw = parse_batch(body.as_bytes(), &limits)
            .map_err(|r| anyhow::anyhow!("batch refused: {}", r.message))?;
        let now = Utc::now();
        let events = raw
            .iter()
            .map(|r| validate_event(r.get().as_bytes(), now, &limits))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|r| anyhow::anyhow!("event refused: {}", r.message))?;
        events_seen += events.len();
        let encoded = events
            .iter()
            .map(Encoded::new)
            .collect::<Result<Vec<_>, _>>()?;
        messages += black_box(message::pack(&encoded, SQS_MAX_MESSAGE_BYTES)?).len();
    }
    Ok((events_seen, messages))
}
