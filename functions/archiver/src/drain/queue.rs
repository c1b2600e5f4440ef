//! The archive queue: receiving (one long-polling ReceiveMessage call, up to 10 messages)
//! and deleting what is archived (DeleteMessageBatch, 10 at a time). How many calls run at
//! once and when to stop is the run's business.

use std::time::Duration;

use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
};

use crate::error::ArchiveError;

/// SQS returns at most 10 messages per call.
const MAX_MESSAGES: i32 = 10;
/// SQS deletes at most 10 messages per call.
pub const MAX_DELETE_BATCH: usize = 10;

/// The queue's URL and the client that reaches it. Cheap to clone (the client is shared),
/// so each receive and delete task takes its own.
#[derive(Clone, Debug)]
pub struct ArchiveQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

/// One received message, with what deleting it and reporting on it need.
#[derive(Debug, Clone)]
pub struct Received {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    /// How many times SQS has delivered it (including this time): for poison messages' logs.
    pub receive_count: Option<u32>,
}

#[derive(Debug, Default)]
pub struct Deleted {
    pub deleted: usize,
    pub failed: usize,
    pub error: Option<ArchiveError>,
}

impl ArchiveQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: String) -> Self {
        Self { client, url }
    }

    /// Messages waiting to be received (ApproximateNumberOfMessages: visible, not in flight).
    pub async fn depth(&self) -> Result<u64, ArchiveError> {
        let name = QueueAttributeName::ApproximateNumberOfMessages;
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(name.clone())
            .send()
            .await
            .map_err(|e| ArchiveError::queue(&e))?;
        let value = output.attributes().and_then(|a| a.get(&name));
        value.and_then(|v| v.parse().ok()).ok_or_else(|| {
            ArchiveError::QueueRefused(format!("ApproximateNumberOfMessages unreadable: {value:?}"))
        })
    }

    /// One long-polling receive. `wait` is rounded down to whole seconds (SQS's unit).
    pub async fn receive(self, wait: Duration) -> Result<Vec<Received>, ArchiveError> {
        let wait_secs = i32::try_from(wait.as_secs()).unwrap_or(20).min(20);
        let output = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(MAX_MESSAGES)
            .wait_time_seconds(wait_secs)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| ArchiveError::queue(&e))?;
        Ok(output
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                let receive_count = m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|n| n.parse().ok());
                // SQS always sends both; without them a message could be neither tracked nor deleted.
                let (Some(message_id), Some(receipt_handle)) = (m.message_id, m.receipt_handle)
                else {
                    tracing::warn!("received a message without id or receipt handle; ignored");
                    return None;
                };
                Some(Received {
                    message_id,
                    receipt_handle,
                    body: m.body.unwrap_or_default(),
                    receive_count,
                })
            })
            .collect())
    }

    /// Deletes up to [`MAX_DELETE_BATCH`] messages by receipt handle. A message not deleted
    /// comes back after its visibility timeout and is archived again: a duplicate, never a
    /// loss.
    pub async fn delete(self, handles: Vec<String>) -> Deleted {
        let mut entries = Vec::with_capacity(handles.len());
        for (i, handle) in handles.iter().enumerate() {
            match DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(handle)
                .build()
            {
                Ok(entry) => entries.push(entry),
                Err(e) => {
                    return Deleted {
                        failed: handles.len(),
                        error: Some(ArchiveError::Internal(e.to_string())),
                        ..Deleted::default()
                    }
                }
            }
        }
        match self
            .client
            .delete_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) => {
                let failed = out.failed();
                if let Some(first) = failed.first() {
                    tracing::warn!(
                        failed = failed.len(),
                        code = first.code(),
                        message = first.message().unwrap_or_default(),
                        "some archived messages were not deleted; they will be archived again"
                    );
                }
                Deleted {
                    deleted: out.successful().len(),
                    failed: failed.len(),
                    error: None,
                }
            }
            Err(e) => Deleted {
                failed: handles.len(),
                error: Some(ArchiveError::queue(&e)),
                ..Deleted::default()
            },
        }
    }
}
