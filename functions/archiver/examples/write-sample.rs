//! Writes one archive file from request bodies, exactly as the archiver encodes them, for
//! readers nobody here wrote (tests/python/test_archive_format.py reads it with DuckDB and
//! pyarrow).
//!
//! Usage: write-sample EVENTS.jsonl OUT.parquet NOW [SENT_AT [PLAN.json]]
//! Each line of EVENTS.jsonl is one event as a client would POST it; NOW (RFC 3339) is the
//! receive time given to validation, so the caller knows every `received_at` and flag;
//! SENT_AT, when given, is the send time of the request (`EIS-Sent-At`) of every event.
//! PLAN.json, a tracking plan document (docs/plan.md), checks every event as the ingest does
//! (stamping `schema_version`, flagging in `flag` mode); without it no plan is in force.
//! EIS_SAMPLE_FORMAT=1, 2 or 3 writes the file in that older format instead (whole `context`,
//! `payload` and `metrics`; `archiver::archive::legacy`), for the tests of reading across the
//! format changes.

use anyhow::{bail, Context};
use archiver::archive::event_parquet::{self, EventColumns};
use archiver::archive::legacy;
use chrono::{DateTime, Utc};
use eis_contract::plan::{Plan, PlanDocument, PlanVerdict};

const USAGE: &str = "usage: write-sample EVENTS.jsonl OUT.parquet NOW [SENT_AT [PLAN.json]]";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (input, output, now, sent_at, plan) = match args.as_slice() {
        [input, output, now] => (input, output, now, None, None),
        [input, output, now, sent_at] => (input, output, now, Some(sent_at), None),
        [input, output, now, sent_at, plan] => (input, output, now, Some(sent_at), Some(plan)),
        _ => bail!(USAGE),
    };
    let time = |text: &str, what: &str| -> anyhow::Result<DateTime<Utc>> {
        Ok(DateTime::parse_from_rfc3339(text)
            .with_context(|| format!("{what} is not RFC 3339"))?
            .with_timezone(&Utc))
    };
    let now = time(now, "NOW")?;
    let sent_at = sent_at.map(|t| time(t, "SENT_AT")).transpose()?;
    let plan = match plan {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
            let document: PlanDocument =
                serde_json::from_str(&text).with_context(|| format!("{path}: not a plan"))?;
            Plan::compile(&document).with_context(|| format!("{path}: does not compile"))?
        }
        None => Plan::default(),
    };
    let text = std::fs::read_to_string(input).with_context(|| format!("reading {input}"))?;
    let limits = eis_contract::Limits::default();
    let mut columns = EventColumns::new();
    let mut events = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let refused = |r: eis_contract::Rejection| {
            anyhow::anyhow!("line {}: {} ({})", n + 1, r.code.as_str(), r.message)
        };
        let event = eis_contract::validate_event(line.as_bytes(), now, &limits).map_err(refused)?;
        // Even without a plan: the check is what turns the `schema` an event named into
        // the version it is stored with (none, when no plan is in force).
        let mut event = match plan.check(event) {
            PlanVerdict::Accepted(event) => event,
            PlanVerdict::Quarantined(r) | PlanVerdict::Refused(r) => return Err(refused(r)),
        };
        event.sent_at = sent_at;
        columns.push(&event)?;
        events.push(event);
    }
    let body = match std::env::var("EIS_SAMPLE_FORMAT").as_deref() {
        Err(_) | Ok("4") => event_parquet::encode(columns)?,
        Ok("1") => legacy::encode(&events, 1)?,
        Ok("2") => legacy::encode(&events, 2)?,
        Ok("3") => legacy::encode(&events, 3)?,
        Ok(other) => bail!("EIS_SAMPLE_FORMAT {other}: not 1, 2, 3 or 4"),
    };
    std::fs::write(output, body).with_context(|| format!("writing {output}"))?;
    Ok(())
}
