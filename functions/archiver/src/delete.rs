//! Deleting archived messages from the queue: DeleteMessageBatch, 10 at a time.

use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;

use crate::error::ArchiveError;

/// SQS deletes at most 10 messages per call.
pub const MAX_BATCH: usize = 10;

#[derive(Debug, Default)]
pub struct Deleted {
    pub deleted: usize,
    pub failed: usize,
    pub error: Option<ArchiveError>,
}

/// Deletes up to [`MAX_BATCH`] messages by receipt handle. A message not deleted comes back
/// after its visibility timeout and is archived again: a duplicate, never a loss.
pub async fn delete(
    client: aws_sdk_sqs::Client,
    queue_url: String,
    handles: Vec<String>,
) -> Deleted {
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
    match client
        .delete_message_batch()
        .queue_url(queue_url)
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
