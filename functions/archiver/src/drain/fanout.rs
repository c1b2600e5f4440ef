//! Fan-out: a scheduled run that finds more in the queue than one run can drain starts extra
//! drain workers, asynchronous invocations of its own function with `{"action":"drain"}`.
//! A drain worker is the same run without this step, so workers never start workers.
//!
//! Safe because concurrent runs already are: SQS hands each message to one receiver at a
//! time, the sweep claims disjoint rows (SKIP LOCKED), and compaction and partition upkeep
//! tolerate being run twice at once (docs/archive.md, "Parallel runs").

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;

use crate::drain::queue::ArchiveQueue;

/// The input of a drain worker (events/archiver-drain.json).
pub const DRAIN_INPUT: &str = r#"{"action":"drain"}"#;

/// How far one scheduled run may fan out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanoutPolicy {
    /// Runs at once at most, the scheduled one included (`EIS_MAX_ARCHIVER_CONCURRENCY`, 4).
    pub max_concurrency: u32,
    /// Messages one run is expected to drain before its deadline
    /// (`EIS_RUN_CAPACITY_MESSAGES`, 5000; see docs/archive.md for the estimate).
    pub run_capacity_messages: u64,
    /// The function to invoke, `name` or `name:alias`: `AWS_LAMBDA_FUNCTION_NAME` (set by
    /// Lambda) and `EIS_FANOUT_QUALIFIER`. None outside Lambda: no fan-out.
    pub function: Option<String>,
}

/// Extra workers to start for `depth` visible messages: enough runs to drain it within one
/// run's time, at most `max_concurrency` runs in all, minus the run deciding.
pub fn extra_workers(depth: u64, max_concurrency: u32, run_capacity_messages: u64) -> u32 {
    let runs = depth.div_ceil(run_capacity_messages.max(1));
    let runs = u32::try_from(runs).unwrap_or(u32::MAX);
    runs.min(max_concurrency).saturating_sub(1)
}

#[derive(Debug, thiserror::Error)]
pub enum FanoutError {
    #[error("invoking {function} failed")]
    Invoke {
        function: String,
        #[source]
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Starts one drain worker. In Lambda: [`LambdaWorkers`] (Invoke, InvocationType=Event). This
/// seam stands in for Lambda, which the local stack cannot run: the tests record the
/// invocations (or refuse them) instead.
pub trait StartWorker: Send + Sync {
    fn start<'a>(
        &'a self,
        input: &'static str,
    ) -> Pin<Box<dyn Future<Output = Result<(), FanoutError>> + Send + 'a>>;
}

/// Asynchronous invocations of the archiver's own function.
pub struct LambdaWorkers {
    client: aws_sdk_lambda::Client,
    function: String,
}

impl LambdaWorkers {
    pub fn new(client: aws_sdk_lambda::Client, function: String) -> Self {
        Self { client, function }
    }
}

impl StartWorker for LambdaWorkers {
    fn start<'a>(
        &'a self,
        input: &'static str,
    ) -> Pin<Box<dyn Future<Output = Result<(), FanoutError>> + Send + 'a>> {
        Box::pin(async move {
            self.client
                .invoke()
                .function_name(&self.function)
                .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
                .payload(aws_sdk_lambda::primitives::Blob::new(input.as_bytes()))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| FanoutError::Invoke {
                    function: self.function.clone(),
                    cause: Box::new(e),
                })
        })
    }
}

/// What the fan-out did (part of the run's summary).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FanoutSummary {
    /// ApproximateNumberOfMessages at the start of the run (None: not read: a drain worker,
    /// no function to invoke, or the read failed).
    pub queue_depth: Option<u64>,
    /// Drain workers invoked.
    pub workers_started: u32,
    /// Invocations refused or failed (logged; the queue waits for the next run).
    pub workers_failed: u32,
}

/// What the fan-out works with: the queue whose depth it reads, the workers it starts, and
/// its bounds.
pub struct Fanout<'a> {
    pub queue: &'a ArchiveQueue,
    pub workers: &'a dyn StartWorker,
    pub policy: &'a FanoutPolicy,
}

/// Reads the queue's depth and starts the drain workers it calls for. Never fails the
/// run: a failed read or invoke is logged and counted, the queue waits for the next run.
pub async fn fan_out(fanout: &Fanout<'_>) -> FanoutSummary {
    let mut summary = FanoutSummary::default();
    let depth = match fanout.queue.depth().await {
        Ok(depth) => depth,
        Err(e) => {
            let error = eis_runtime::telemetry::chain(&e);
            tracing::warn!(code = e.code(), %error, "queue depth unread; no fan-out");
            return summary;
        }
    };
    summary.queue_depth = Some(depth);
    let policy = fanout.policy;
    let extra = extra_workers(depth, policy.max_concurrency, policy.run_capacity_messages);
    for _ in 0..extra {
        match fanout.workers.start(DRAIN_INPUT).await {
            Ok(()) => summary.workers_started += 1,
            Err(e) => {
                let error = eis_runtime::telemetry::chain(&e);
                tracing::warn!(%error, "drain worker not started");
                summary.workers_failed += 1;
            }
        }
    }
    if extra > 0 {
        tracing::info!(
            depth,
            started = summary.workers_started,
            failed = summary.workers_failed,
            "fan-out"
        );
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enough_workers_for_the_backlog_within_the_bound() {
        // (depth, max concurrency, capacity per run) → extra workers
        let cases = [
            (0, 4, 5000, 0),          // empty queue
            (1, 4, 5000, 0),          // small: this run alone
            (4999, 4, 5000, 0),       // just under one run
            (5000, 4, 5000, 0),       // exactly one run's capacity
            (5001, 4, 5000, 1),       // one message more: a second run
            (15_000, 4, 5000, 2),     // three runs' worth
            (10_000_000, 4, 5000, 3), // huge: the bound
            (10_000_000, 1, 5000, 0), // max 1: never fans out
            (u64::MAX, 4, 1, 3),      // beyond u32: still the bound
            (10, 4, 0, 3),            // a zero capacity counts as one message per run
        ];
        for (depth, max, capacity, expected) in cases {
            assert_eq!(
                extra_workers(depth, max, capacity),
                expected,
                "depth {depth}, max {max}, capacity {capacity}"
            );
        }
    }

    #[test]
    fn the_drain_input_is_the_fixture() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../events/archiver-drain.json"
        );
        let text = std::fs::read_to_string(path).expect("fixture");
        let fixture: serde_json::Value = serde_json::from_str(&text).expect("json");
        let input: serde_json::Value = serde_json::from_str(DRAIN_INPUT).expect("json");
        assert_eq!(fixture, input);
    }
}
