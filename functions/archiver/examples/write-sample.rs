//! Writes one archive file from request bodies, exactly as the archiver encodes them, for
//! readers nobody here wrote (tests/python/test_archive_format.py reads it with DuckDB and
//! pyarrow).
//!
//! Usage: write-sample EVENTS.jsonl OUT.parquet NOW
//! Each line of EVENTS.jsonl is one event as a client would POST it; NOW (RFC 3339) is the
//! receive time given to validation, so the caller knows every `received_at` and flag.

use anyhow::{bail, Context};
use archiver::archive::event_parquet::{self, EventColumns};
use chrono::{DateTime, Utc};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output, now] = args.as_slice() else {
        bail!("usage: write-sample EVENTS.jsonl OUT.parquet NOW");
    };
    let now: DateTime<Utc> = DateTime::parse_from_rfc3339(now)
        .context("NOW is not RFC 3339")?
        .with_timezone(&Utc);
    let text = std::fs::read_to_string(input).with_context(|| format!("reading {input}"))?;
    let limits = eis_contract::Limits::default();
    let mut columns = EventColumns::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let event = eis_contract::validate_event(line.as_bytes(), now, &limits)
            .map_err(|r| anyhow::anyhow!("line {}: {} ({})", n + 1, r.code.as_str(), r.message))?;
        columns.push(&event)?;
    }
    std::fs::write(output, event_parquet::encode(columns)?)
        .with_context(|| format!("writing {output}"))?;
    Ok(())
}
