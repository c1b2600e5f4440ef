//! An archive hour of EVENTS events for the restore_memory section (bench/restore_memory.py):
//! raw files of at most 100 000 events (`EIS_MAX_FILE_EVENTS`' default), as the scheduled runs
//! write them, in the hour HOURS_AGO hours before now. Generated one file at a time, so that
//! this process never holds the hour. Prints {"hour", "files", "events"}.
//!
//! Needs the archiver's environment (DATABASE_URL, EIS_QUEUE_URL, EIS_BUCKET, AWS_*).

use anyhow::Context;
use archiver::app::Archiver;
use archiver::archive::event_parquet::{self, EventColumns};
use archiver::archive::partition::HourPartition;
use archiver::config::Config;
use chrono::{DurationRound, TimeDelta, Utc};
use eis_contract::{validate_event, Limits};
use serde_json::{json, Value};

use crate::workload;

const FILE_EVENTS: usize = 100_000;

pub async fn write(events: usize, hours_ago: i64) -> anyhow::Result<Value> {
    let archiver = Archiver::from_config(Config::from_env()?).await?;
    let now = Utc::now();
    let start = now
        .duration_trunc(TimeDelta::hours(1))
        .context("truncating now to the hour")?
        - TimeDelta::hours(hours_ago);
    let hour = HourPartition::of(start);
    let step_us = 3_600_000_000 / events.max(1) as i64;
    let limits = Limits::default();
    let mut files = 0;
    for first in (0..events).step_by(FILE_EVENTS) {
        let mut columns = EventColumns::new();
        for i in first..(first + FILE_EVENTS).min(events) {
            let at = start + TimeDelta::microseconds(step_us * i as i64);
            let body = workload::request_body(i as u64, at).to_string();
            let event = validate_event(body.as_bytes(), now, &limits)
                .map_err(|r| anyhow::anyhow!("generated event {i} invalid: {}", r.message))?;
            columns.push(&event)?;
        }
        let key = archiver.bucket.raw_key(hour, uuid::Uuid::now_v7());
        let body = event_parquet::encode(columns)?;
        let n = (first + FILE_EVENTS).min(events) - first;
        archiver
            .bucket
            .put(&key, body, uuid::Uuid::now_v7(), n)
            .await?;
        files += 1;
    }
    Ok(json!({"hour": hour.start(), "files": files, "events": events}))
}
