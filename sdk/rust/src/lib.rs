//! Client for EIS, the Event Ingestion Service.
//!
//! ```no_run
//! use std::time::Duration;
//! use eis_client::{Client, Config, Event};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::new(
//!     Config::new("http://127.0.0.1:3000")
//!         .on_result(|r| if !r.outcome.delivered() { eprintln!("{r:?}") }),
//! )?;
//! let id = client.capture(Event::new("plan_accepted", "user", "user-123").payload("plan_id", "p1"))?;
//! let report = client.close(Duration::from_secs(5)).await;
//! println!("{id}: {} pending, {} stored", report.pending(), report.count("stored"));
//! # Ok(()) }
//! ```
//!
//! **Capture never waits.** [`Client::capture`] sets a UUIDv7 `event_id` and the `timestamp`
//! when absent, checks what can be checked locally (an object, the required fields, 64 KiB),
//! and queues the event; it fails at once with a distinct [`CaptureError`] otherwise, and
//! when the queue is full (`max_queue_events` / `max_queue_bytes`, counting events in flight).
//! No refusal is silent: each is returned, counted in [`Stats`] and passed to `on_refusal`.
//!
//! **Sending.** A background task on the caller's tokio runtime posts batches to
//! `/events/batch` (at most 1 000 events and 5 MiB each) when `flush_at` events wait or the
//! oldest has waited `flush_interval`, gzip-compressed above `gzip_above`, up to
//! `max_in_flight` at once. Every request carries `EIS-Sent-At` (a retry carries a new one).
//!
//! **Retries.** Connection failures, timeouts, 401/403, 408, 429 and 5xx are retried with the
//! same ids and bytes: after `Retry-After` (clamped to `max_retry_after`), otherwise after an
//! exponential backoff with full jitter (at most `max_retry_after`), until `retry_budget`
//! from the request's first attempt; then its events are `GivenUp`. A 413 sends the two
//! halves instead. After a 207 only events without a final answer are sent again; a
//! rejection (any per-event code, `event_id_conflict` included) is final and never resent.
//!
//! **Results.** Each event ends with one [`Outcome`]: `Stored`, `Duplicate`,
//! `Rejected { code, message, field }`, `Conflict` or `GivenUp`, passed to `on_result` and
//! listed in the [`Report`] of the next [`Client::flush`] / [`Client::close`], which return
//! within their timeout even when the server is down and name the events still pending.
//! [`Client::send`] is confirmed delivery for callers that must know before they return
//! (AWS Lambda handlers: the runtime freezes background tasks between invocations).
//!
//! **Spool.** With `Config::spool(dir)`, capture writes each event to an append-only segment
//! in `dir` before it returns (one `write(2)`, no fsync: a process killed with `kill -9`
//! loses nothing; fsync every `spool_sync_interval` bounds what an OS crash can lose). A
//! result writes `-<id>`; segments whose events all have results are deleted. A new client on
//! the same directory (one at a time: it is locked) sends what was left, with the original
//! ids: the server stores each once. See `spool.rs` for the format.
//!
//! **Auth.** [`Auth::None`], [`Auth::iam`] (SigV4 for `execute-api`, the standard AWS
//! credentials chain; cargo feature `iam`, on by default) or [`Auth::jwt`] (a bearer token from
//! your [`TokenProvider`]).

mod answer;
mod auth;
mod batch;
mod client;
mod config;
mod deliver;
mod error;
mod event;
mod queue;
mod report;
mod retry;
mod sender;
#[cfg(feature = "iam")]
mod sigv4;
mod spool;
mod transport;

pub use auth::{Auth, AuthError, StaticToken, TokenFuture, TokenProvider};
#[cfg(feature = "iam")]
pub use aws_credential_types::Credentials as AwsCredentials;
pub use client::Client;
pub use config::{Config, MAX_BATCH_BYTES, MAX_BATCH_EVENTS};
pub use error::{CaptureError, ConfigError, QueueBound};
pub use event::{Event, Experiment, IntoEvent, MAX_EVENT_BYTES};
pub use report::{EventResult, Outcome, Report, Stats};
#[cfg(feature = "iam")]
pub use sigv4::Iam;
pub use transport::SENT_AT;
pub use uuid::Uuid;

/// The README's example, compiled with the doc tests so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
