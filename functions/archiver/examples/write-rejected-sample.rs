//! Writes one quarantine file from a batch body, exactly as the ingest keeps its rejections
//! and the archiver encodes them, for readers nobody here wrote
//! (tests/python/test_rejected_format.py reads it with DuckDB and pyarrow).
//!
//! Usage: write-rejected-sample BODY.json OUT.parquet NOW
//! BODY.json is a `POST /events/batch` body; NOW (RFC 3339) is the receive time. A body
//! refused whole gives one request-scope record; otherwise each rejected event gives one.

use anyhow::{bail, Context};
use archiver::archive::quarantine_parquet;
use chrono::{DateTime, Utc};
use eis_contract::{parse_batch, validate_event, Arrival, Limits, Quarantined};

/// The ingest's default bounds (functions/ingest/src/quarantine.rs).
const EVENT_BYTES: usize = 64 * 1024;
const REQUEST_BYTES: usize = 192 * 1024;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output, now] = args.as_slice() else {
        bail!("usage: write-rejected-sample BODY.json OUT.parquet NOW");
    };
    let now: DateTime<Utc> = DateTime::parse_from_rfc3339(now)
        .context("NOW is not RFC 3339")?
        .with_timezone(&Utc);
    let body = std::fs::read(input).with_context(|| format!("reading {input}"))?;
    let limits = Limits::default();
    let arrival = Arrival {
        request_id: "sample-request",
        route: "POST /events/batch",
        received_at: now,
    };
    let records: Vec<Quarantined> = match parse_batch(&body, &limits) {
        Err(rejection) => vec![Quarantined::request(
            arrival,
            &body,
            &rejection,
            REQUEST_BYTES,
        )],
        Ok(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, raw)| {
                let raw = raw.get().as_bytes();
                let rejection = validate_event(raw, now, &limits).err()?;
                Some(Quarantined::event(
                    arrival,
                    Some(i),
                    raw,
                    &rejection,
                    EVENT_BYTES,
                    limits.max_experiments,
                ))
            })
            .collect(),
    };
    std::fs::write(output, quarantine_parquet::encode(&records)?)
        .with_context(|| format!("writing {output}"))?;
    Ok(())
}
