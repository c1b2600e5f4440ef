//! Hands accepted events to SQS for archival: packed messages, SendMessageBatch of up to 10.
//! Transient failures are retried by the SDK (standard retry mode); what still fails is
//! reported, so the caller leaves those events to the archiver's sweep.

use std::future::Future;
use std::pin::Pin;

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use eis_contract::{Encoded, Quarantined, ToRecord};

use eis_runtime::aws::is_transient;

use crate::message::{self, MessageError, PackedMessage};

/// SendMessageBatch takes at most 10 entries.
const MAX_BATCH_ENTRIES: usize = 10;

pub struct SqsPublisher {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    max_message_bytes: usize,
}

#[derive(Debug, Default)]
pub struct PublishOutcome {
    /// Indices (into the published slice) of the events SQS confirmed.
    pub published: Vec<usize>,
    pub messages: usize,
    pub requests: usize,
    /// One per failed request or entry; empty when everything was confirmed.
    pub errors: Vec<PublishError>,
}

impl PublishOutcome {
    fn failed(error: PublishError) -> Self {
        PublishOutcome {
            errors: vec![error],
            ..Default::default()
        }
    }
}

/// Why events were not handed over (they stay for the archiver's sweep either way).
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot pack the events into messages")]
    Pack(#[from] MessageError),
    #[error("cannot build a SendMessageBatch entry")]
    Entry(#[source] aws_sdk_sqs::error::BuildError),
    /// SQS refused one entry of a batch that it otherwise took.
    #[error("entry {id} failed: {code} {message}")]
    Refused {
        id: String,
        code: String,
        message: String,
    },
    /// The whole request failed; `transient` by `eis_runtime::aws::is_transient`.
    #[error("SendMessageBatch failed ({}): {detail}", if *.transient { "transient" } else { "refused" })]
    Request {
        transient: bool,
        detail: String,
        #[source]
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Where the ingest function hands its new events: [`SqsPublisher`] in every deployment;
/// the one other implementation is the tests' scripted publisher, for partial failures that
/// SQS cannot be made to produce on demand.
pub trait Publish: Send + Sync {
    fn publish<'a>(
        &'a self,
        events: &'a [&'a Encoded],
    ) -> Pin<Box<dyn Future<Output = PublishOutcome> + Send + 'a>>;
}

impl Publish for SqsPublisher {
    fn publish<'a>(
        &'a self,
        events: &'a [&'a Encoded],
    ) -> Pin<Box<dyn Future<Output = PublishOutcome> + Send + 'a>> {
        Box::pin(SqsPublisher::publish(self, events))
    }
}

impl SqsPublisher {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: String, max_message_bytes: usize) -> Self {
        Self {
            client,
            queue_url,
            max_message_bytes,
        }
    }

    /// Publishes events, or their records written already ([`Encoded`]).
    pub async fn publish<E: ToRecord + Sync>(&self, events: &[E]) -> PublishOutcome {
        match message::pack(events, self.max_message_bytes) {
            Ok(messages) => self.send_all(&messages).await,
            Err(e) => PublishOutcome::failed(e.into()),
        }
    }

    /// Publishes quarantine records (their texts cut where a record would not fit a message);
    /// `published` then indexes the records.
    pub async fn publish_quarantined(&self, records: &mut [Quarantined]) -> PublishOutcome {
        match message::pack_quarantined(records, self.max_message_bytes) {
            Ok(messages) => self.send_all(&messages).await,
            Err(e) => PublishOutcome::failed(e.into()),
        }
    }

    async fn send_all(&self, messages: &[PackedMessage]) -> PublishOutcome {
        let mut outcome = PublishOutcome {
            messages: messages.len(),
            ..Default::default()
        };
        for group in self.requests(messages) {
            outcome.requests += 1;
            self.send(group, &mut outcome).await;
        }
        outcome
    }

    /// Groups messages into requests: at most 10 entries and, as SQS also limits the sum of
    /// a batch's bodies, at most `max_message_bytes` in all.
    fn requests<'m>(&self, messages: &'m [PackedMessage]) -> Vec<&'m [PackedMessage]> {
        let mut groups = Vec::new();
        let (mut start, mut bytes) = (0, 0);
        for (i, m) in messages.iter().enumerate() {
            if i > start
                && (i - start == MAX_BATCH_ENTRIES || bytes + m.body.len() > self.max_message_bytes)
            {
                groups.push(&messages[start..i]);
                (start, bytes) = (i, 0);
            }
            bytes += m.body.len();
        }
        if start < messages.len() {
            groups.push(&messages[start..]);
        }
        groups
    }

    async fn send(&self, group: &[PackedMessage], outcome: &mut PublishOutcome) {
        let mut request = self.client.send_message_batch().queue_url(&self.queue_url);
        for (i, m) in group.iter().enumerate() {
            let entry = SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(&m.body)
                .build();
            match entry {
                Ok(entry) => request = request.entries(entry),
                Err(e) => {
                    outcome.errors.push(PublishError::Entry(e));
                    return;
                }
            }
        }
        match request.send().await {
            Ok(response) => {
                for ok in response.successful() {
                    if let Some(m) = ok.id().parse::<usize>().ok().and_then(|i| group.get(i)) {
                        outcome.published.extend(m.events.clone());
                    }
                }
                for failed in response.failed() {
                    outcome.errors.push(PublishError::Refused {
                        id: failed.id().to_string(),
                        code: failed.code().to_string(),
                        message: failed.message().unwrap_or_default().to_string(),
                    });
                }
            }
            Err(e) => outcome.errors.push(PublishError::Request {
                transient: is_transient(&e),
                detail: aws_sdk_sqs::error::DisplayErrorContext(&e).to_string(),
                cause: e.into(),
            }),
        }
    }
}
