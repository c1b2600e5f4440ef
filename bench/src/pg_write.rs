//! PostgreSQL write path: rows/s of the project's batch writer (`PgEventStore::insert`, one
//! UNNEST statement per batch) next to `psql \copy` of the same rows into the same table (the
//! server's practical limit) and one prepared INSERT per row (what a naive Lambda does).
//!
//! Needs DATABASE_URL pointing at a database of its own (bench/run.sh creates `eis_bench`):
//! every measurement starts from an empty exp.events.

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use eis_contract::Event;
use eis_store::{Db, DbConfig, InsertOutcome, PgEventStore};
use serde_json::{json, Value};
use tokio_postgres::Client;

use crate::workload;

const COLUMNS: &str = r#"event_id, event_type, unit_type, unit_id, experiments, context, metrics, payload, "timestamp", received_at, flags"#;

/// Per-row INSERTs are ~100× slower: they get a slice of the rows so a run stays short.
const ROW_BY_ROW_SHARE: usize = 10;

#[derive(Clone, Copy)]
enum Method {
    Batch(usize),
    Copy,
    RowByRow,
}

impl Method {
    fn name(self) -> String {
        match self {
            Method::Batch(n) => format!("batch_{n}"),
            Method::Copy => "psql_copy".into(),
            Method::RowByRow => "insert_per_row".into(),
        }
    }
}

pub async fn run(n: usize, rounds: usize) -> anyhow::Result<Value> {
    let config = DbConfig::from_env().context("DATABASE_URL")?;
    let url = config.url.clone();
    let db = Arc::new(Db::new(&config)?);
    let store = PgEventStore::new(Arc::clone(&db));
    let admin = db.connect().await?;
    let events = workload::events(n)?;
    let csv = std::env::temp_dir().join(format!("eis-bench-{}.csv", std::process::id()));
    write_csv(&csv, &events)?;

    let methods = [
        Method::Batch(100),
        Method::Batch(1000),
        Method::Copy,
        Method::RowByRow,
    ];
    let mut results: Vec<(String, usize, Vec<f64>)> =
        methods.iter().map(|m| (m.name(), 0, Vec::new())).collect();
    // Rounds interleave the methods, so a burst of load on the shared machine hits them all.
    for round in 0..rounds {
        for (method, result) in methods.iter().zip(results.iter_mut()) {
            let rows = match method {
                Method::RowByRow => &events[..(n / ROW_BY_ROW_SHARE).max(1)],
                _ => &events[..],
            };
            admin
                .batch_execute("TRUNCATE exp.events")
                .await
                .context("TRUNCATE")?;
            let started = Instant::now();
            match *method {
                Method::Batch(size) => {
                    for chunk in rows.chunks(size) {
                        let outcomes = store.insert(chunk).await?;
                        if outcomes.iter().any(|o| *o != InsertOutcome::Inserted) {
                            bail!("batch writer did not insert every row");
                        }
                    }
                }
                Method::Copy => copy(&url, &csv).await?,
                Method::RowByRow => row_by_row(&admin, rows).await?,
            }
            let seconds = started.elapsed().as_secs_f64();
            let stored: i64 = admin
                .query_one("SELECT count(*) FROM exp.events", &[])
                .await?
                .get(0);
            if stored != rows.len() as i64 {
                bail!("{}: {stored} rows stored of {}", method.name(), rows.len());
            }
            eprintln!(
                "[pg-write] round {round} {}: {} rows in {seconds:.3} s",
                method.name(),
                rows.len()
            );
            result.1 = rows.len();
            result.2.push(rows.len() as f64 / seconds);
        }
    }
    admin.batch_execute("TRUNCATE exp.events").await?;
    std::fs::remove_file(&csv).ok();
    let methods: serde_json::Map<String, Value> = results
        .into_iter()
        .map(|(name, rows, rates)| (name, json!({"rows": rows, "rows_per_s": rates})))
        .collect();
    Ok(json!({"events": n, "rounds": rounds, "methods": methods}))
}

/// The same values the batch writer sends, as CSV for `\copy` (jsonb as JSON text, flags as
/// an array literal). Written before the clock starts: COPY is timed from psql's start.
fn write_csv(path: &std::path::Path, events: &[Event]) -> anyhow::Result<()> {
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    for e in events {
        let flags: Vec<&str> = e.flags.iter().map(|f| f.as_str()).collect();
        writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{}",
            e.event_id,
            quote(&e.event_type),
            quote(&e.unit_type),
            quote(&e.unit_id),
            quote(&serde_json::to_string(&e.experiments)?),
            quote(&serde_json::to_string(&e.context)?),
            quote(&serde_json::to_string(&e.metrics)?),
            quote(&serde_json::to_string(&e.payload)?),
            e.timestamp.to_rfc3339(),
            e.received_at.to_rfc3339(),
            quote(&format!("{{{}}}", flags.join(","))),
        )?;
    }
    out.flush()?;
    Ok(())
}

async fn copy(url: &str, csv: &std::path::Path) -> anyhow::Result<()> {
    let command = format!(
        "\\copy exp.events ({COLUMNS}) FROM '{}' WITH (FORMAT csv)",
        csv.display()
    );
    let status = tokio::process::Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qc", &command])
        .status()
        .await
        .context("running psql")?;
    if !status.success() {
        bail!("psql \\copy failed: {status}");
    }
    Ok(())
}

/// One prepared statement, one round trip and one (autocommit) transaction per event, with
/// the same per-event serialisation as the batch writer.
async fn row_by_row(client: &Client, events: &[Event]) -> anyhow::Result<()> {
    let insert = client
        .prepare(&format!(
            "INSERT INTO exp.events ({COLUMNS}) VALUES ($1, $2, $3, $4, $5::text::jsonb, \
             $6::text::jsonb, $7::text::jsonb, $8::text::jsonb, $9, $10, $11) \
             ON CONFLICT DO NOTHING"
        ))
        .await?;
    for e in events {
        let flags: Vec<&str> = e.flags.iter().map(|f| f.as_str()).collect();
        client
            .execute(
                &insert,
                &[
                    &e.event_id,
                    &e.event_type,
                    &e.unit_type,
                    &e.unit_id,
                    &serde_json::to_string(&e.experiments)?,
                    &serde_json::to_string(&e.context)?,
                    &serde_json::to_string(&e.metrics)?,
                    &serde_json::to_string(&e.payload)?,
                    &e.timestamp,
                    &e.received_at,
                    &flags,
                ],
            )
            .await?;
    }
    Ok(())
}
