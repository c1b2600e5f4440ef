//! Archive encoding: queue message bodies (as the ingest function packs them) → decoded
//! events → the archiver's hour batcher and Parquet encoder → zstd Parquet bytes, on one
//! thread. Also writes the same events as JSON lines, for bench/encode_ref.py to convert with
//! DuckDB and pyarrow, and the file this encoder produced, for checking it reads back.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context};
use archiver::archive::event_parquet;
use archiver::drain::batcher::{Batcher, BufferLimits};
use eis_handoff::message;
use serde_json::{json, Value};

use crate::{thread_cpu_seconds, workload};

pub fn measure(n: usize, rounds: usize, out: &Path) -> anyhow::Result<Value> {
    let events = workload::events(n)?;
    let bodies = workload::queue_bodies(&events)?;
    let jsonl = out.join("events.jsonl");
    let mut lines = std::io::BufWriter::new(
        std::fs::File::create(&jsonl).with_context(|| format!("creating {}", jsonl.display()))?,
    );
    for e in &events {
        serde_json::to_writer(&mut lines, e)?;
        lines.write_all(b"\n")?;
    }
    lines.flush()?;
    drop(events);

    let mut runs = Vec::with_capacity(rounds);
    let mut files = Vec::new();
    for round in 0..rounds {
        let (cpu, wall) = (thread_cpu_seconds()?, Instant::now());
        files = encode(&bodies)?;
        let (cpu, wall) = (thread_cpu_seconds()? - cpu, wall.elapsed().as_secs_f64());
        eprintln!("[encode] round {round}: {n} events in {wall:.3} s wall, {cpu:.3} s CPU");
        runs.push(json!({"wall_s": wall, "cpu_s": cpu}));
    }
    let [file] = files.as_slice() else {
        bail!(
            "expected one file (one hour partition), got {}",
            files.len()
        );
    };
    std::fs::write(out.join("eis.parquet"), file)?;
    Ok(json!({
        "events": n,
        "messages": bodies.len(),
        "message_bytes": bodies.iter().map(String::len).sum::<usize>(),
        "parquet_bytes": file.len(),
        "runs": runs,
    }))
}

/// What one archiver run does with received bodies, minus the network: decode, batch by
/// hour, encode each batch as one file. Never inlined: callgrind collects from this symbol.
#[inline(never)]
pub fn encode(bodies: &[String]) -> anyhow::Result<Vec<Vec<u8>>> {
    // No file limits: every event of an hour in one file, as the references write it.
    let mut batcher = Batcher::new(BufferLimits {
        max_file_events: usize::MAX,
        max_file_bytes: usize::MAX,
        max_held_bytes: usize::MAX,
    });
    for (i, body) in bodies.iter().enumerate() {
        batcher.add(i, &message::decode_events(body)?)?;
    }
    batcher.cut_all();
    std::iter::from_fn(|| batcher.next_ready())
        .map(|chunk| Ok(event_parquet::encode(chunk.columns)?))
        .collect()
}
