//! The storage path of accepted events: commit to PostgreSQL, then hand the new ones to SQS
//! and record the hand-off. Nothing acknowledged can be lost: what SQS did not confirm stays
//! `handed_off_at IS NULL` in PostgreSQL, and the archiver's sweep archives it later.

use std::time::{Duration, Instant};

use eis_contract::Event;
use eis_store::{EventKey, InsertOutcome, PgEventStore, SqsPublisher};

use crate::error::ApiError;

pub struct Ingestor {
    store: PgEventStore,
    publisher: SqsPublisher,
}

/// What happened to a set of valid events, for the response and the metrics.
#[derive(Debug)]
pub struct StoreReport {
    /// Per input event, in order.
    pub outcomes: Vec<InsertOutcome>,
    pub pg_latency: Duration,
    pub sqs_latency: Duration,
    /// New events that SQS did not confirm (left to the sweep).
    pub publish_failures: usize,
}

impl Ingestor {
    pub fn new(store: PgEventStore, publisher: SqsPublisher) -> Self {
        Self { store, publisher }
    }

    pub fn store(&self) -> &PgEventStore {
        &self.store
    }

    /// Commits the events (one transaction), then publishes those that were new: a client
    /// retry of an already stored event is never published twice.
    pub async fn ingest(&self, events: &[Event]) -> Result<StoreReport, ApiError> {
        let started = Instant::now();
        let outcomes = self.store.insert(events).await?;
        let pg_latency = started.elapsed();

        let new: Vec<&Event> = events
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| **o == InsertOutcome::Inserted)
            .map(|(e, _)| e)
            .collect();
        let started = Instant::now();
        let publish_failures = self.publish(&new).await;
        Ok(StoreReport {
            outcomes,
            pg_latency,
            sqs_latency: started.elapsed(),
            publish_failures,
        })
    }

    /// Returns how many events were not handed over. Errors here never fail the request:
    /// the events are committed already, and the sweep covers what did not go through.
    async fn publish(&self, events: &[&Event]) -> usize {
        if events.is_empty() {
            return 0;
        }
        let outcome = self.publisher.publish(events).await;
        for error in &outcome.errors {
            tracing::warn!(%error, "publish to SQS failed; events left for the sweep");
        }
        let keys: Vec<EventKey> = outcome
            .published
            .iter()
            .filter_map(|&i| events.get(i))
            .map(|e| (e.event_id, e.timestamp))
            .collect();
        if let Err(error) = self.store.mark_handed_off(&keys).await {
            // SQS has them; the sweep will archive them once more and readers dedupe by id.
            tracing::warn!(%error, "could not record the hand-off");
        }
        events.len() - keys.len()
    }
}
