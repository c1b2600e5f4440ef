//! Storing one archive object in S3.

use aws_sdk_s3::primitives::ByteStream;
use uuid::Uuid;

use crate::error::ArchiveError;

/// The media type registered for Parquet.
const CONTENT_TYPE: &str = "application/vnd.apache.parquet";

/// One PutObject. The SDK computes a CRC32 checksum, which S3 verifies (and which Object
/// Lock buckets require). The run id and row count travel as object metadata, so an object
/// can be traced to the run (and log line) that wrote it without opening it.
pub async fn put(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
    run_id: Uuid,
    events: usize,
) -> Result<(), ArchiveError> {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type(CONTENT_TYPE)
        .metadata("eis-run-id", run_id.to_string())
        .metadata("eis-events", events.to_string())
        .body(ByteStream::from(body))
        .send()
        .await
        .map_err(|e| ArchiveError::storage(&e))?;
    Ok(())
}
