//! Compaction of one hour: events per CPU-second of this process (reading, deduplicating and
//! writing the hour through moto), and what an hour costs readers before and after: files,
//! bytes per event. The hour is written as the scheduled runs write it (one raw file per run,
//! `FILES` of them), with a share of the events in two files (the sweep's and the queue's
//! copies of the same event).
//!
//! Needs the archiver's environment (DATABASE_URL, EIS_QUEUE_URL, EIS_BUCKET, AWS_*).

use anyhow::Context;
use archiver::app::Archiver;
use archiver::archive::bucket::ArchiveFile;
use archiver::archive::event_parquet::{self, EventColumns};
use archiver::archive::partition::HourPartition;
use archiver::compaction::compact::{self, HourOutcome};
use archiver::config::Config;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::workload;

pub async fn measure(
    events: usize,
    files: usize,
    duplicate_percent: usize,
) -> anyhow::Result<Value> {
    let archiver = Archiver::from_config(Config::from_env()?).await?;
    let all = workload::events(events)?;
    let hour = HourPartition::of(all.first().context("no events")?.timestamp);
    let folder = archiver.bucket.folder(hour);
    let per_file = events.div_ceil(files.max(1));
    let duplicates = events * duplicate_percent / 100;
    for (n, chunk) in all.chunks(per_file).enumerate() {
        let mut columns = EventColumns::new();
        for e in chunk {
            columns.push(e)?;
        }
        // The first file also carries a second copy of the last events.
        let copies = if n == 0 { duplicates } else { 0 };
        for e in all.iter().rev().take(copies) {
            columns.push(e)?;
        }
        write(&archiver, hour, columns, chunk.len() + copies).await?;
    }
    let before = archiver.bucket.list(&folder).await?;

    let cpu = process_cpu_seconds()?;
    let started = std::time::Instant::now();
    let outcome = compact::compact_hour(
        &archiver.compaction_job(),
        &Default::default(),
        hour,
        Instant::now() + std::time::Duration::from_secs(900),
        uuid::Uuid::now_v7(),
        false,
    )
    .await?;
    let cpu = process_cpu_seconds()? - cpu;
    let seconds = started.elapsed().as_secs_f64();
    let HourOutcome::Compacted {
        events_in,
        events_out,
        duplicates_dropped,
        ..
    } = outcome
    else {
        anyhow::bail!("the hour was not compacted: {outcome:?}");
    };
    let after = archiver.bucket.list(&folder).await?;
    archiver
        .bucket
        .delete(&after.iter().map(|f| f.key.clone()).collect::<Vec<_>>())
        .await?;
    let bytes = |files: &[ArchiveFile]| files.iter().map(|f| f.size).sum::<u64>();
    Ok(json!({
        "events": events,
        "events_in": events_in,
        "events_out": events_out,
        "duplicates_dropped": duplicates_dropped,
        "cpu_seconds": cpu,
        "wall_seconds": seconds,
        "events_per_cpu_second": events_in as f64 / cpu.max(1e-9),
        "before": {"files": before.len(), "bytes": bytes(&before),
                   "bytes_per_event": bytes(&before) as f64 / events_in.max(1) as f64},
        "after": {"files": after.len(), "bytes": bytes(&after),
                  "bytes_per_event": bytes(&after) as f64 / events_out.max(1) as f64},
    }))
}

/// One raw file of `hour`, recorded and uploaded as a scheduled run does it.
async fn write(
    archiver: &Archiver,
    hour: HourPartition,
    columns: EventColumns,
    events: usize,
) -> anyhow::Result<()> {
    archiver.hours.touch(hour.start()).await?;
    let key = archiver.bucket.raw_key(hour, uuid::Uuid::now_v7());
    let body = event_parquet::encode(columns)?;
    archiver
        .bucket
        .put(&key, body, uuid::Uuid::now_v7(), events)
        .await?;
    Ok(())
}

/// User + system CPU of this process, all threads (the compaction decodes and encodes on
/// tokio's blocking threads).
fn process_cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime: fields 14 and 15 of stat, 12 and 13 after the command name.
    let ticks: u64 = fields
        .get(11..13)
        .context("unexpected /proc/self/stat")?
        .iter()
        .filter_map(|v| v.parse::<u64>().ok())
        .sum();
    // /proc reports clock ticks of USER_HZ, which Linux fixes at 100 for user space.
    Ok(ticks as f64 / 100.0)
}
