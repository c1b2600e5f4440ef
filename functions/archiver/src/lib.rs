//! The archiver function: drains the archive queue into hourly-partitioned Parquet on S3,
//! sweeps the events the ingest function could not hand to the queue, and keeps the
//! PostgreSQL partitions. `main.rs` wires it; this library is what tests drive.
//!
//! Modules follow the data: `receive` → `group` → `format` (encode) → `upload` → `delete`,
//! with `run` orchestrating one scheduled run and `handler` dispatching an invocation. Once an
//! hour is settled, `compact` rewrites it (read back through `objects`) to hold each event
//! once; `audit` compares the archive with PostgreSQL by `digest`.

pub mod app;
pub mod audit;
pub mod compact;
pub mod config;
pub mod dedupe;
pub mod delete;
pub mod digest;
pub mod error;
pub mod format;
pub mod group;
pub mod handler;
pub mod objects;
pub mod receive;
pub mod run;
pub mod summary;
pub mod upload;
