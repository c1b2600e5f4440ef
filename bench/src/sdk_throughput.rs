//! `eis-bench sdk-throughput URL SECONDS IN_FLIGHT GZIP`: the Rust SDK's end-to-end throughput
//! into an ingest API served at URL (bench/sdk_throughput.py starts the release `ingest` binary
//! and compares with wrk's batch-500 run on the same server).
//!
//! A caller thread captures the very events of wrk's batch-500 body (workload::request_body
//! 0..500, stamped a minute ago) for SECONDS, as fast as the SDK takes them: when the queue is
//! full it sleeps 1 ms and tries again, as a well-behaved caller would. The client sends
//! batches of 500 with IN_FLIGHT requests at once, gzip-compressed or not (GZIP 1/0). The
//! clock stops when `flush` has every event's final result: events/s is delivered events over
//! that whole time. Also reported: capture latency (each call, the queue-full ones excluded),
//! this process's CPU per event (the SDK's cost on the caller's machine, with the caller's
//! clone of each event), and that clone's own CPU cost, measured apart.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{TimeDelta, Utc};
use eis_client::{CaptureError, Client, Config};
use serde_json::{json, Value};

use crate::workload;

/// Events held by the client (waiting and in flight) before capture is refused: a few
/// batches ahead of the requests in flight, so the caller meets backpressure early.
const QUEUE_EVENTS: usize = 10_000;

pub async fn measure(
    url: &str,
    seconds: f64,
    in_flight: usize,
    gzip: bool,
) -> anyhow::Result<Value> {
    let at = Utc::now() - TimeDelta::minutes(1);
    let pool: Vec<Value> = (0..500).map(|i| workload::request_body(i, at)).collect();
    let client = Client::new(
        Config::new(url)
            .flush_at(500)
            .max_batch_events(500)
            .max_in_flight(in_flight)
            .max_queue_events(QUEUE_EVENTS)
            .flush_interval(Duration::from_millis(100))
            .gzip_above(gzip.then_some(4096)),
    )
    .context("client")?;

    // Warm-up: connections and allocator; not counted.
    for event in pool.iter().take(500) {
        client.capture(event.clone()).context("warm-up capture")?;
    }
    let warm = client.flush(Duration::from_secs(60)).await;
    if warm.pending() > 0 || warm.results.iter().any(|r| !r.outcome.delivered()) {
        bail!("warm-up not delivered: {:?}", warm.results.first());
    }
    let before = client.stats();
    let clone_us = clone_cost_us(&pool)?;

    let cpu_before = process_cpu_seconds()?;
    let started = Instant::now();
    let caller = {
        let client = client.clone();
        let until = started + Duration::from_secs_f64(seconds);
        std::thread::spawn(move || capture_until(&client, &pool, until))
    };
    let (captured, full_waits, mut latencies) = tokio::task::spawn_blocking(move || caller.join())
        .await
        .context("caller thread")?
        .map_err(|_| anyhow::anyhow!("the caller thread panicked"))??;
    let capture_seconds = started.elapsed().as_secs_f64();
    let report = client.flush(Duration::from_secs(300)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds()? - cpu_before;
    let after = client.stats();
    let delivered = after.delivered - before.delivered;
    if report.pending() > 0 || after.rejected + after.given_up > 0 {
        bail!(
            "not every event delivered: {} pending, stats {after:?}",
            report.pending()
        );
    }
    latencies.sort_unstable();
    let pct = |p: f64| {
        let i = ((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1));
        latencies.get(i).copied().unwrap_or_default() as f64 / 1000.0
    };
    Ok(json!({
        "events_per_s": delivered as f64 / elapsed,
        "captured": captured,
        "delivered": delivered,
        "duplicates": after.duplicates - before.duplicates,
        "retries": after.retries - before.retries,
        "seconds": elapsed,
        "capture_seconds": capture_seconds,
        "queue_full_waits": full_waits,
        "capture_us": {"p50": pct(0.5), "p99": pct(0.99), "p999": pct(0.999),
                       "max": latencies.last().copied().unwrap_or_default() as f64 / 1000.0},
        "sdk_cpu_ms_per_event": 1000.0 * cpu / delivered.max(1) as f64,
        "caller_clone_us_per_event": clone_us,
        "in_flight": in_flight,
        "gzip": gzip,
    }))
}

/// Captures events from `pool` round-robin until `until`; gives the count, how often the
/// queue was full, and each accepted capture's duration in ns.
fn capture_until(
    client: &Client,
    pool: &[Value],
    until: Instant,
) -> anyhow::Result<(usize, usize, Vec<u64>)> {
    let (mut captured, mut full_waits) = (0usize, 0usize);
    let mut latencies = Vec::with_capacity(1 << 20);
    while Instant::now() < until {
        let event = pool[captured % pool.len()].clone();
        let t = Instant::now();
        match client.capture(event) {
            Ok(_) => {
                latencies.push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
                captured += 1;
            }
            Err(CaptureError::QueueFull { .. }) => {
                full_waits += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => bail!("capture refused: {e}"),
        }
    }
    Ok((captured, full_waits, latencies))
}

/// The caller's own part of `sdk_cpu_ms_per_event`: this thread's CPU per clone of a pool
/// event (what `capture_until` does before each capture), over 20 000 clones.
fn clone_cost_us(pool: &[Value]) -> anyhow::Result<f64> {
    const CLONES: usize = 20_000;
    let started = crate::thread_cpu_seconds()?;
    for i in 0..CLONES {
        std::hint::black_box(pool[i % pool.len()].clone());
    }
    Ok(1e6 * (crate::thread_cpu_seconds()? - started) / CLONES as f64)
}

/// User + system CPU seconds of this process (all threads), from /proc/self/stat.
fn process_cpu_seconds() -> anyhow::Result<f64> {
    let text = std::fs::read_to_string("/proc/self/stat").context("/proc/self/stat")?;
    let fields: Vec<&str> = text
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .context("unexpected /proc/self/stat")
    };
    // utime and stime, in clock ticks (100 per second on Linux).
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}
