//! The ingest function: validates events, commits them to PostgreSQL and hands them to SQS
//! for archival. `main.rs` wires it; this library is what tests drive.

pub mod answer;
pub mod app;
pub mod body;
pub mod cache;
pub mod config;
pub mod erasure;
pub mod error;
pub mod intake;
pub mod local;
pub mod plan;
pub mod quarantine;
pub mod refusal;
pub mod registry;
pub mod routes;
pub mod sender;
pub mod series;
pub mod telemetry;
