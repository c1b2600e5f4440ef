//! The benchmarks of `make bench` that need the project's code in-process. bench/run.sh drives
//! them; each prints one JSON object on stdout and logs to stderr. See BENCHMARKS.md.
//!
//!   eis-bench bodies OUT_DIR                 request bodies for the HTTP load generator
//!   eis-bench pg-write EVENTS ROUNDS         PgEventStore::insert vs \copy vs INSERT per row
//!   eis-bench encode EVENTS ROUNDS OUT_DIR   queue message bodies → zstd Parquet
//!   eis-bench compact EVENTS FILES DUP_PCT   one hour of FILES raw files compacted
//!   eis-bench archive-hour EVENTS HOURS_AGO  an archive hour of raw files, for restore_memory
//!   eis-bench erasure-find HOURS FILES FILE_EVENTS UNITS  bytes an erasure reads to find a unit
//!   eis-bench cpu-path ingest|archive EVENTS the pure-CPU work of one path, for callgrind
//!   eis-bench fill-queue QUEUE_URL EVENTS    a deep archive queue, for bench/memory-drain.sh
//!   eis-bench sqs-stub PORT                  an SQS stand-in that accepts everything
//!   eis-bench serve-ingest                   the ingest function's local server, for callgrind
//!   eis-bench value-parse BODY ROUNDS        serde_json::Value parse of a body, CPU per event
//!   eis-bench sdk-throughput URL SECONDS IN_FLIGHT GZIP  the Rust SDK's end-to-end events/s

mod archive_hour;
mod compaction;
mod cpu_path;
mod encode;
mod erasure_find;
mod fill_queue;
mod pg_write;
mod sdk_throughput;
mod serve_ingest;
mod sqs_stub;
mod value_parse;
mod workload;

use anyhow::{bail, Context};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |text: &str| -> anyhow::Result<usize> {
        text.parse()
            .with_context(|| format!("{text:?} is not a count"))
    };
    let report = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["bodies", out] => workload::write_bodies(out.as_ref())?,
        ["pg-write", events, rounds] => {
            runtime()?.block_on(pg_write::measure(number(events)?, number(rounds)?))?
        }
        ["serve-ingest"] => {
            // Multi-threaded, as the ingest binary's #[tokio::main].
            return tokio::runtime::Runtime::new()
                .context("tokio runtime")?
                .block_on(serve_ingest::serve());
        }
        ["sqs-stub", port] => {
            let port = port.parse().context("PORT")?;
            return runtime()?.block_on(sqs_stub::serve(port));
        }
        ["encode", events, rounds, out] => {
            encode::measure(number(events)?, number(rounds)?, out.as_ref())?
        }
        ["compact", events, files, duplicates] => runtime()?.block_on(compaction::measure(
            number(events)?,
            number(files)?,
            number(duplicates)?,
        ))?,
        ["archive-hour", events, hours_ago] => runtime()?.block_on(archive_hour::write(
            number(events)?,
            hours_ago.parse().context("HOURS_AGO")?,
        ))?,
        ["erasure-find", hours, files, file_events, units] => {
            runtime()?.block_on(erasure_find::measure(erasure_find::Shape {
                hours: number(hours)?,
                files_per_hour: number(files)?,
                file_events: number(file_events)?,
                units: number(units)?,
            }))?
        }
        ["cpu-path", path, events] => cpu_path::measure(path, number(events)?)?,
        ["fill-queue", queue_url, events] => {
            runtime()?.block_on(fill_queue::fill(queue_url, number(events)?))?
        }
        ["value-parse", body, rounds] => value_parse::measure(body.as_ref(), number(rounds)?)?,
        ["sdk-throughput", url, seconds, in_flight, gzip] => {
            // Multi-threaded, as an application's runtime: the caller captures on a thread of
            // its own while the SDK's sender and requests run here.
            tokio::runtime::Runtime::new()
                .context("tokio runtime")?
                .block_on(sdk_throughput::measure(
                    url,
                    seconds.parse().context("SECONDS")?,
                    number(in_flight)?,
                    *gzip == "1",
                ))?
        }
        _ => bail!(
            "usage: eis-bench bodies OUT_DIR | pg-write EVENTS ROUNDS | \
             encode EVENTS ROUNDS OUT_DIR | compact EVENTS FILES DUP_PCT | archive-hour EVENTS HOURS_AGO | erasure-find HOURS FILES FILE_EVENTS UNITS | cpu-path ingest|archive EVENTS | fill-queue QUEUE_URL EVENTS | sqs-stub PORT | serve-ingest | value-parse BODY ROUNDS | sdk-throughput URL SECONDS IN_FLIGHT GZIP"
        ),
    };
    println!("{report}");
    Ok(())
}

/// One thread, as a Lambda instance has about one vCPU or less.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")
}

/// CPU time of the calling thread (ns precision, unlike getrusage's ticks): the encoders run
/// on one thread, so this is their cost per core whatever else the shared machine does.
pub fn thread_cpu_seconds() -> anyhow::Result<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat")
        .context("reading /proc/thread-self/schedstat")?;
    let ns: u64 = text
        .split_whitespace()
        .next()
        .and_then(|f| f.parse().ok())
        .context("unexpected /proc/thread-self/schedstat")?;
    Ok(ns as f64 / 1e9)
}
