//! Receiving from the archive queue: one ReceiveMessage call (long polling, up to 10
//! messages). How many calls run at once and when to stop is the run's business.

use std::time::Duration;

use aws_sdk_sqs::types::MessageSystemAttributeName;

use crate::error::ArchiveError;

/// SQS returns at most 10 messages per call.
const MAX_MESSAGES: i32 = 10;

/// One received message, with what deleting it and reporting on it need.
#[derive(Debug, Clone)]
pub struct Received {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    /// How many times SQS has delivered it (including this time): for poison messages' logs.
    pub receive_count: Option<u32>,
}

/// One long-polling receive. `wait` is rounded down to whole seconds (SQS's unit).
pub async fn receive(
    client: aws_sdk_sqs::Client,
    queue_url: String,
    wait: Duration,
) -> Result<Vec<Received>, ArchiveError> {
    let wait_secs = i32::try_from(wait.as_secs()).unwrap_or(20).min(20);
    let output = client
        .receive_message()
        .queue_url(queue_url)
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
            let (Some(message_id), Some(receipt_handle)) = (m.message_id, m.receipt_handle) else {
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
