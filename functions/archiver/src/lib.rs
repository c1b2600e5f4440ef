//! The archiver function: drains the archive queue into hourly-partitioned Parquet on S3,
//! sweeps the events the ingest function could not hand to the queue, and keeps the
//! PostgreSQL partitions. `main.rs` wires it; this library is what tests drive.
//!
//! Modules follow the data: `queue` (receive) → `group` → `format` (encode) → `bucket` (store)
//! → `queue` (delete), with `run` orchestrating one scheduled run, its `ledger` of what to
//! acknowledge and the `summary` it tallies, and `handler` dispatching an invocation. Once an
//! hour is settled, `compact` rewrites it (read back through `bucket`) to hold each event
//! once; `audit` compares the archive with PostgreSQL by `digest`.

pub mod app;
pub mod audit;
pub mod bucket;
pub mod compact;
pub mod config;
pub mod dedupe;
pub mod digest;
pub mod error;
pub mod format;
pub mod group;
pub mod handler;
pub mod ledger;
pub mod queue;
pub mod run;
pub mod summary;
