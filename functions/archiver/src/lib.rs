//! The archiver function: drains the archive queue into hourly-partitioned Parquet on S3,
//! sweeps the events the ingest function could not hand to the queue, and keeps the
//! PostgreSQL partitions. `main.rs` wires it; this library is what tests drive.
//!
//! Modules follow the data: `queue` (receive) → `partition` and `batcher` (hours, files) →
//! `parquet_encoder` → `bucket` (store) → `queue` (delete), with `run` orchestrating one
//! scheduled run, its `ledger` of what to acknowledge and the `summary` it tallies, and
//! `handler` dispatching an invocation. Once an hour is settled, `compact` rewrites it (read
//! back through `bucket`, deduplicated by `dedupe`) to hold each event once; `audit`
//! compares the archive with PostgreSQL by `digest`. A scheduled run facing a deep queue
//! starts drain workers of its own function (`fanout`). `health` maintains the experiments'
//! assignments, rollups and health rows (with `srm`'s sample-ratio test).

pub mod app;
pub mod archived;
pub mod audit;
pub mod batcher;
pub mod bucket;
pub mod columns;
pub mod compact;
pub mod config;
pub mod dedupe;
pub mod digest;
pub mod error;
pub mod fanout;
pub mod handler;
pub mod health;
pub mod hour_stream;
pub mod ledger;
pub mod parquet_encoder;
pub mod partition;
pub mod queue;
pub mod rejected;
pub mod replay;
pub mod restore;
pub mod run;
pub mod srm;
pub mod summary;
#[cfg(test)]
mod test_events;
