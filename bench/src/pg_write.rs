//! PostgreSQL write path: rows/s and server CPU per row of the project's batch writer
//! (`PgEventStore::insert`, one UNNEST statement per batch that also claims each id in
//! exp.event_ids) next to the same statement without the identity claim (the write path before
//! exp.event_ids: what identity costs), `psql \copy` of the same rows into the same table (the
//! server's practical limit) and one prepared INSERT per row (what a naive Lambda does).
//! Server CPU is read from /proc for every process of the cluster, not from wall time.
//!
//! Index cost per insert: the same `\copy` with each secondary index of exp.events
//! dropped in turn, and with all of them dropped (heap and primary key only); the difference
//! to the `\copy` with every index is that index's CPU per row. After the loads, the bytes
//! per row of the partitions, per index and of exp.event_ids (the capacity plan's storage).
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

/// The batch statement as it was before exp.event_ids: no identity claim.
const INSERT_WITHOUT_IDENTITY: &str = r#"
INSERT INTO exp.events (event_id, event_type, unit_type, unit_id, experiments, context,
                        metrics, payload, "timestamp", received_at, flags)
SELECT id, et, ut, ui, ex::jsonb, cx::jsonb, mx::jsonb, pl::jsonb, ts, ra, string_to_array(fl, ',')
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::text[], $8::text[], $9::timestamptz[], $10::timestamptz[], $11::text[])
     AS t(id, et, ut, ui, ex, cx, mx, pl, ts, ra, fl)
ON CONFLICT DO NOTHING
"#;

#[derive(Clone, Copy)]
enum Method {
    Batch(usize),
    BatchWithoutIdentity(usize),
    Copy,
    /// `\copy` with the secondary index at this position of the list dropped, or all of
    /// them (None).
    CopyWithout(Option<usize>),
    RowByRow,
}

impl Method {
    fn name(self, indexes: &[SecondaryIndex]) -> String {
        match self {
            Method::Batch(n) => format!("batch_{n}"),
            Method::BatchWithoutIdentity(n) => format!("batch_{n}_without_identity"),
            Method::Copy => "psql_copy".into(),
            Method::CopyWithout(Some(i)) => format!("psql_copy_without_{}", indexes[i].name),
            Method::CopyWithout(None) => "psql_copy_without_secondary_indexes".into(),
            Method::RowByRow => "insert_per_row".into(),
        }
    }

    /// The secondary indexes this method drops before it loads.
    fn dropped(self, indexes: &[SecondaryIndex]) -> Vec<&SecondaryIndex> {
        match self {
            Method::CopyWithout(Some(i)) => vec![&indexes[i]],
            Method::CopyWithout(None) => indexes.iter().collect(),
            _ => Vec::new(),
        }
    }
}

/// A secondary index of exp.events (any but the primary key), as the migrations define it.
struct SecondaryIndex {
    name: String,
    definition: String,
}

/// The secondary indexes of exp.events now (read from the catalog, so that the bench follows
/// the migrations).
async fn secondary_indexes(client: &Client) -> anyhow::Result<Vec<SecondaryIndex>> {
    Ok(client
        .query(
            "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indexrelid \
             WHERE i.indrelid = 'exp.events'::regclass AND NOT i.indisprimary ORDER BY c.relname",
            &[],
        )
        .await
        .context("listing the indexes of exp.events")?
        .iter()
        .map(|r| SecondaryIndex {
            name: r.get(0),
            // pg_get_indexdef says `ON ONLY` for a partitioned index: run as is, it would
            // create the parent's index alone (invalid), none on the partitions.
            definition: r.get::<_, String>(1).replacen(" ON ONLY ", " ON ", 1),
        })
        .collect())
}

pub async fn measure(n: usize, rounds: usize) -> anyhow::Result<Value> {
    let config = DbConfig::from_env().context("DATABASE_URL")?;
    let url = config.url.clone();
    let db = Arc::new(Db::new(&config)?);
    let store = PgEventStore::new(Arc::clone(&db));
    let admin = db.connect().await?;
    let events = workload::events(n)?;
    let csv = std::env::temp_dir().join(format!("eis-bench-{}.csv", std::process::id()));
    write_csv(&csv, &events)?;

    let postmaster = postmaster_pid(&admin).await?;
    let indexes = secondary_indexes(&admin).await?;
    let mut methods = vec![
        Method::Batch(100),
        Method::Batch(500),
        Method::BatchWithoutIdentity(500),
        Method::Batch(1000),
        Method::Copy,
    ];
    methods.extend((0..indexes.len()).map(|i| Method::CopyWithout(Some(i))));
    methods.push(Method::CopyWithout(None));
    methods.push(Method::RowByRow);
    let mut results: Vec<Measured> = methods
        .iter()
        .map(|m| Measured::new(m.name(&indexes)))
        .collect();
    let mut sizes = Vec::new();
    // Rounds interleave the methods, so a burst of load on the shared machine hits them all.
    for round in 0..rounds {
        for (method, result) in methods.iter().zip(results.iter_mut()) {
            let rows = match method {
                Method::RowByRow => &events[..(n / ROW_BY_ROW_SHARE).max(1)],
                _ => &events[..],
            };
            admin
                .batch_execute("TRUNCATE exp.events, exp.event_ids, exp.pending_handoffs")
                .await
                .context("TRUNCATE")?;
            for index in method.dropped(&indexes) {
                admin
                    .batch_execute(&format!("DROP INDEX exp.{}", index.name))
                    .await
                    .with_context(|| format!("dropping {}", index.name))?;
            }
            let cpu_before = cluster_cpu_seconds(postmaster)?;
            let started = Instant::now();
            match *method {
                Method::Batch(size) => {
                    for chunk in rows.chunks(size) {
                        let outcomes = store.insert(chunk).await?.outcomes;
                        if outcomes.iter().any(|o| *o != InsertOutcome::Inserted) {
                            bail!("batch writer did not insert every row");
                        }
                    }
                }
                Method::BatchWithoutIdentity(size) => {
                    for chunk in rows.chunks(size) {
                        without_identity(&admin, chunk).await?;
                    }
                }
                Method::Copy | Method::CopyWithout(_) => copy(&url, &csv).await?,
                Method::RowByRow => row_by_row(&admin, rows).await?,
            }
            let seconds = started.elapsed().as_secs_f64();
            // COPY's backend is psql's and ends with it: wait until the postmaster has reaped
            // it, so that its CPU shows in the postmaster's children's times.
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            let cpu = cluster_cpu_seconds(postmaster)? - cpu_before;
            let stored: i64 = admin
                .query_one("SELECT count(*) FROM exp.events", &[])
                .await?
                .get(0);
            if stored != rows.len() as i64 {
                bail!(
                    "{}: {stored} rows stored of {}",
                    method.name(&indexes),
                    rows.len()
                );
            }
            eprintln!(
                "[pg-write] round {round} {}: {} rows in {seconds:.3} s, {:.1} µs server CPU per row",
                method.name(&indexes),
                rows.len(),
                cpu * 1e6 / rows.len() as f64
            );
            // Storage per row once loaded: after the COPY with every index (the table as
            // queried) and after the batch writer (which also fills exp.event_ids).
            if round == 0 && matches!(method, Method::Copy | Method::Batch(500)) {
                sizes.push(json!({
                    "after": method.name(&indexes),
                    "rows": stored,
                    "bytes": relation_sizes(&admin).await?,
                }));
            }
            let dropped = method.dropped(&indexes);
            if !dropped.is_empty() {
                // On the emptied table: building the index again costs nothing to measure.
                admin
                    .batch_execute("TRUNCATE exp.events, exp.event_ids, exp.pending_handoffs")
                    .await?;
                for index in dropped {
                    admin
                        .batch_execute(&index.definition)
                        .await
                        .with_context(|| format!("creating {} again", index.name))?;
                }
            }
            result.rows = rows.len();
            result.rows_per_s.push(rows.len() as f64 / seconds);
            result.pg_cpu_us_per_row.push(cpu * 1e6 / rows.len() as f64);
        }
    }
    admin
        .batch_execute("TRUNCATE exp.events, exp.event_ids, exp.pending_handoffs")
        .await?;
    std::fs::remove_file(&csv).ok();
    let methods: serde_json::Map<String, Value> = results
        .into_iter()
        .map(|m| {
            let figures = json!({
                "rows": m.rows,
                "rows_per_s": m.rows_per_s,
                "pg_cpu_us_per_row": m.pg_cpu_us_per_row,
            });
            (m.name, figures)
        })
        .collect();
    let indexes: Vec<Value> = indexes
        .iter()
        .map(|i| json!({"name": i.name, "definition": i.definition}))
        .collect();
    Ok(json!({"events": n, "rounds": rounds, "methods": methods,
              "secondary_indexes": indexes, "sizes": sizes}))
}

/// Bytes on disk of exp.events' partitions (heap with TOAST, each index summed over the
/// partitions, everything) and of exp.event_ids and exp.pending_handoffs.
async fn relation_sizes(client: &Client) -> anyhow::Result<Value> {
    let row = client
        .query_one(
            "SELECT coalesce(sum(pg_table_size(inhrelid)), 0)::bigint, \
                    coalesce(sum(pg_indexes_size(inhrelid)), 0)::bigint, \
                    coalesce(sum(pg_total_relation_size(inhrelid)), 0)::bigint \
             FROM pg_inherits WHERE inhparent = 'exp.events'::regclass",
            &[],
        )
        .await?;
    let (heap, indexes, total): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    // A partition's index is attached to the parent's index of the same definition.
    let per_index: serde_json::Map<String, Value> = client
        .query(
            "SELECT p.relname, coalesce(sum(pg_relation_size(h.inhrelid)), 0)::bigint \
             FROM pg_index i JOIN pg_class p ON p.oid = i.indexrelid \
             LEFT JOIN pg_inherits h ON h.inhparent = i.indexrelid \
             WHERE i.indrelid = 'exp.events'::regclass GROUP BY p.relname ORDER BY p.relname",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get::<_, String>(0), Value::from(r.get::<_, i64>(1))))
        .collect();
    let total_of = |table: &str| format!("SELECT pg_total_relation_size('{table}'::regclass)");
    let event_ids: i64 = client
        .query_one(&total_of("exp.event_ids"), &[])
        .await?
        .get(0);
    let pending: i64 = client
        .query_one(&total_of("exp.pending_handoffs"), &[])
        .await?
        .get(0);
    Ok(json!({
        "events_table": heap,
        "events_indexes": indexes,
        "events_total": total,
        "events_per_index": per_index,
        "event_ids_total": event_ids,
        "pending_handoffs_total": pending,
    }))
}

struct Measured {
    name: String,
    rows: usize,
    rows_per_s: Vec<f64>,
    pg_cpu_us_per_row: Vec<f64>,
}

impl Measured {
    fn new(name: String) -> Self {
        Self {
            name,
            rows: 0,
            rows_per_s: Vec::new(),
            pg_cpu_us_per_row: Vec::new(),
        }
    }
}

/// The cluster's postmaster: the parent of this connection's backend.
async fn postmaster_pid(client: &Client) -> anyhow::Result<u32> {
    let backend: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await?
        .get(0);
    let stat = std::fs::read_to_string(format!("/proc/{backend}/stat"))
        .context("the bench reads the server's CPU from /proc: run it on the server's machine")?;
    stat_fields(&stat)
        .and_then(|f| f.get(1).and_then(|p| p.parse().ok()))
        .context("no ppid in /proc/<backend>/stat")
}

/// The fields of /proc/<pid>/stat after the command name: state, ppid, ...
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().collect())
}

/// CPU seconds (user + system, with reaped children) of the postmaster and its children.
fn cluster_cpu_seconds(postmaster: u32) -> anyhow::Result<f64> {
    // /proc reports clock ticks of USER_HZ, which Linux fixes at 100 for user space.
    const TICKS_PER_SECOND: f64 = 100.0;
    let mut ticks = 0u64;
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(f) = stat_fields(&stat) else {
            continue;
        };
        let ppid: u32 = f.get(1).and_then(|p| p.parse().ok()).unwrap_or(0);
        if pid != postmaster && ppid != postmaster {
            continue;
        }
        // utime, stime, cutime, cstime are fields 14-17 of stat, 12-15 after the name.
        ticks += f[11..15.min(f.len())]
            .iter()
            .filter_map(|v| v.parse::<u64>().ok())
            .sum::<u64>();
    }
    Ok(ticks as f64 / TICKS_PER_SECOND)
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

/// The batch statement without the identity claim, for the comparison.
async fn without_identity(client: &Client, events: &[Event]) -> anyhow::Result<()> {
    let text = |f: &dyn Fn(&Event) -> Result<String, serde_json::Error>| {
        events.iter().map(f).collect::<Result<Vec<String>, _>>()
    };
    let ids: Vec<_> = events.iter().map(|e| e.event_id).collect();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    let unit_types: Vec<&str> = events.iter().map(|e| e.unit_type.as_str()).collect();
    let unit_ids: Vec<&str> = events.iter().map(|e| e.unit_id.as_str()).collect();
    let experiments = text(&|e| serde_json::to_string(&e.experiments))?;
    let contexts = text(&|e| serde_json::to_string(&e.context))?;
    let metrics = text(&|e| serde_json::to_string(&e.metrics))?;
    let payloads = text(&|e| serde_json::to_string(&e.payload))?;
    let timestamps: Vec<_> = events.iter().map(|e| e.timestamp).collect();
    let received: Vec<_> = events.iter().map(|e| e.received_at).collect();
    let flags: Vec<String> = events
        .iter()
        .map(|e| {
            let f: Vec<&str> = e.flags.iter().map(|f| f.as_str()).collect();
            f.join(",")
        })
        .collect();
    client
        .execute(
            INSERT_WITHOUT_IDENTITY,
            &[
                &ids,
                &types,
                &unit_types,
                &unit_ids,
                &experiments,
                &contexts,
                &metrics,
                &payloads,
                &timestamps,
                &received,
                &flags,
            ],
        )
        .await?;
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
