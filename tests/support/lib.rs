//! Shared by the integration tests (tests/it): each test gets its own database (migrated), its
//! own queue and bucket on moto, all on the local stack that `make test` starts
//! (`.local/env`). One module per resource: `database` (PostgreSQL), `aws` (SQS and S3 on
//! moto), `faults` (the fakes that inject what a real service cannot produce on demand), `api`
//! (the ingest API on a test's own resources); `events` is the test event, `archive` a whole
//! archiver stack. Everything but `faults` is the real service over a real connection.

pub mod api;
pub mod archive;
pub mod aws;
pub mod database;
pub mod events;
pub mod faults;

pub use api::{api_state, ingest_config, serve};
pub use aws::{depth, queued_events, sdk, test_bucket, BucketGuard, TestQueue};
pub use database::{connect, db_config, pairs, pg_addr, stored_counts, with_database, TestDb};
pub use faults::{unreachable_publisher, FaultyProxy, ScriptedPublisher};

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A variable of the local stack, with a hint when the stack is not there.
pub fn stack_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: integration tests run against the local stack; use `make test` or `make up && . .local/env`")
    })
}

/// A name no other test run uses: `prefix`, the creation second (for the stale-resource
/// sweep) and a random tail.
pub(crate) fn unique(prefix: &str) -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    format!(
        "{prefix}{secs}_{}",
        &uuid::Uuid::now_v7().simple().to_string()[24..]
    )
}

/// Runs a test resource's cleanup from its `Drop`, also while the test panics: on a runtime of
/// its own in another thread (Drop cannot await, and the test's runtime may be unwinding).
pub(crate) fn clean_up(work: impl Future<Output = ()> + Send + 'static) {
    let worker = std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            rt.block_on(work);
        }
    });
    let _ = worker.join();
}

/// Polls `check` until it returns Some or `limit` passes (for eventually-consistent state,
/// never for timing assertions).
pub async fn eventually<T, F, Fut>(limit: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
