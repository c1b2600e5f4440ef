//! The storage path of accepted events: commit to PostgreSQL (the events and, in the same
//! statement, their pending hand-off row), then hand the new ones to SQS and settle that row.
//! Nothing acknowledged can be lost: what SQS did not confirm stays in
//! exp.pending_handoffs, and the archiver's sweep archives it later. The ingest API and the
//! archiver's replay of quarantined events both store through it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use eis_contract::{Encoded, Event};
use eis_store::events::{self, InsertOutcome, PgEventStore};
use eis_store::{Db, EventKey, PendingHandoffs, PendingId, StoreError};

use crate::publish::Publish;

pub struct Storage {
    store: PgEventStore,
    pending: PendingHandoffs,
    publisher: Box<dyn Publish>,
}

/// What happened to a set of valid events, for the response and the metrics.
#[derive(Debug)]
pub struct SaveReport {
    /// Per input event, in order.
    pub outcomes: Vec<InsertOutcome>,
    pub pg_latency: Duration,
    pub sqs_latency: Duration,
    /// New events that SQS did not confirm (left to the sweep).
    pub publish_failures: usize,
}

impl Storage {
    pub fn new(db: Arc<Db>, publisher: impl Publish + 'static) -> Self {
        Self {
            store: PgEventStore::new(db.clone()),
            pending: PendingHandoffs::new(db),
            publisher: Box::new(publisher),
        }
    }

    /// A cheap database round trip, for health checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.store.db().ping().await
    }

    /// Commits the events (one transaction), then publishes those that were new: a client
    /// retry of an already stored event is never published twice. Each event is written
    /// once (`Encoded`): its digest, its PostgreSQL columns and its SQS record.
    pub async fn save(&self, events: &[Event]) -> Result<SaveReport, StoreError> {
        let started = Instant::now();
        let encoded = events::encode(events)?;
        let stored = self.store.insert_encoded(events, &encoded).await?;
        let pg_latency = started.elapsed();

        let new: Vec<(&Event, &Encoded)> = events
            .iter()
            .zip(&encoded)
            .zip(&stored.outcomes)
            .filter(|(_, o)| **o == InsertOutcome::Inserted)
            .map(|(pair, _)| pair)
            .collect();
        let started = Instant::now();
        let publish_failures = self.publish(&new, &stored.pending).await;
        Ok(SaveReport {
            outcomes: stored.outcomes,
            pg_latency,
            sqs_latency: started.elapsed(),
            publish_failures,
        })
    }

    /// Returns how many events were not handed over. Errors here never fail the request:
    /// the events are committed already, and the sweep covers what did not go through.
    async fn publish(&self, events: &[(&Event, &Encoded)], pending: &[PendingId]) -> usize {
        if events.is_empty() {
            return 0;
        }
        let records: Vec<&Encoded> = events.iter().map(|(_, r)| *r).collect();
        let outcome = self.publisher.publish(&records).await;
        for error in &outcome.errors {
            tracing::warn!(%error, "publish to SQS failed; events left for the sweep");
        }
        let unconfirmed = events.len() - outcome.published.len();
        let settled = if unconfirmed == 0 {
            self.pending.forget(pending).await.map(|_| ())
        } else {
            let keys: Vec<EventKey> = outcome
                .published
                .iter()
                .filter_map(|&i| events.get(i))
                .map(|(e, _)| (e.event_id, e.timestamp))
                .collect();
            self.pending.settle(pending, &keys).await
        };
        if let Err(error) = settled {
            // SQS has them; the sweep will archive them once more and compaction keeps one.
            tracing::warn!(%error, "could not record the hand-off");
        }
        unconfirmed
    }
}
