//! The archiver function: drains the archive queue into hourly-partitioned Parquet on S3,
//! sweeps the events the ingest function could not hand to the queue, and keeps the
//! PostgreSQL partitions; and the jobs on what it archived. `main.rs` wires it; this library
//! is what tests drive. One folder per job, beside what they share:
//!
//! - `archive`: the bucket and its hour partitions, the archive's Parquet formats (events,
//!   quarantine) and their readers, the id digest.
//! - `drain`: a scheduled run: queue → batcher (hours, files) → bucket → queue (delete), with
//!   its ledger of what to acknowledge, its summary, and the fan-out to drain workers.
//! - `compaction`: rewriting settled hours to hold each event once, and the audit of the
//!   archive against PostgreSQL.
//! - `recovery`: replay of the quarantine and restore of archived events into PostgreSQL.
//! - `health`: the experiments' assignments, rollups and health rows, with the SRM test.
//! - `erasure`: a unit's data removed from PostgreSQL, the archive and the quarantine, and
//!   the row filters that keep erased units out of every rewrite.
//!
//! `app` is the composition root (the clients built once per container) and `handler` the
//! invocation's input, dispatch and answer; only they know every job.

pub mod app;
pub mod archive;
pub mod compaction;
pub mod config;
pub mod drain;
pub mod erasure;
pub mod error;
pub mod handler;
pub mod health;
pub mod plan;
pub mod recovery;
#[cfg(test)]
mod test_events;
