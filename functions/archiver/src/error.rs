//! Errors at the archiver's boundary: one enum, stable codes, and the one place that decides
//! what is worth retrying. Lambda sees `error_type` Retryable or NonRetryable and a message
//! that starts with the code.

use aws_sdk_s3::error::DisplayErrorContext;
use eis_runtime::aws::{is_transient, HttpResponse, SdkError};
use eis_store::StoreError;
use lambda_runtime::Diagnostic;

use crate::archive::event_parquet::FormatError;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The invocation input is neither a scheduled event nor a known action.
    #[error("input is neither an EventBridge Scheduled Event nor {{\"action\":\"drain\"}} / {{\"action\":\"audit\"}} / {{\"action\":\"health\"}} / {{\"action\":\"replay\",\"from\",\"to\"[,\"code\"]}} / {{\"action\":\"restore\",\"from\",\"to\"}} / {{\"action\":\"erase\"[,\"requests\"]}} / {{\"action\":\"plan\",\"plan\"}}: {0}")]
    InvalidInput(String),
    /// The database was unavailable (retryable) or answered with an error that retrying will
    /// not fix (schema, data, config): `StoreError` says which.
    #[error(transparent)]
    Database(#[from] StoreError),
    #[error("queue unavailable: {0}")]
    QueueUnavailable(String),
    /// SQS refused the request itself (permissions, a missing queue).
    #[error("queue refused the request: {0}")]
    QueueRefused(String),
    #[error("archive bucket unavailable: {0}")]
    StorageUnavailable(String),
    /// S3 refused the request itself (permissions, a missing bucket, Object Lock settings).
    #[error("archive bucket refused the request: {0}")]
    StorageRefused(String),
    /// The archive bucket has Object Lock on: its versions cannot be deleted before their
    /// retention ends, so an erasure cannot go on (docs/privacy.md).
    #[error("the archive bucket has Object Lock enabled: erased data cannot be deleted from it before its retention ends (docs/privacy.md)")]
    ArchiveLocked,
    /// A tracking plan whose schema (or name, or version) is invalid: nothing of it is loaded.
    #[error("the tracking plan is invalid")]
    PlanInvalid(#[from] eis_contract::plan::PlanError),
    #[error("cannot encode Parquet: {0}")]
    Encode(#[from] FormatError),
    /// A task of the run panicked or was cancelled: a bug, not the environment.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ArchiveError {
    /// Stable snake_case code: in logs, the summary, metrics and Lambda's error message.
    pub fn code(&self) -> &'static str {
        match self {
            ArchiveError::InvalidInput(_) => "invalid_input",
            ArchiveError::Database(e) => e.code(),
            ArchiveError::QueueUnavailable(_) => "queue_unavailable",
            ArchiveError::QueueRefused(_) => "queue_refused",
            ArchiveError::StorageUnavailable(_) => "storage_unavailable",
            ArchiveError::StorageRefused(_) => "storage_refused",
            ArchiveError::ArchiveLocked => "archive_locked",
            ArchiveError::PlanInvalid(_) => eis_contract::plan::PlanError::CODE,
            ArchiveError::Encode(_) => "encode_failed",
            ArchiveError::Internal(_) => "internal_error",
        }
    }

    /// Transient: the same run later (the next schedule) may well succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            ArchiveError::Database(e) => e.is_retryable(),
            ArchiveError::QueueUnavailable(_) | ArchiveError::StorageUnavailable(_) => true,
            _ => false,
        }
    }

    /// An S3 failure (after the SDK's own retries), sorted by [`is_transient`].
    pub fn storage<E: std::error::Error + 'static>(err: &SdkError<E, HttpResponse>) -> Self {
        let text = DisplayErrorContext(err).to_string();
        if is_transient(err) {
            ArchiveError::StorageUnavailable(text)
        } else {
            ArchiveError::StorageRefused(text)
        }
    }

    /// An SQS failure (after the SDK's own retries), sorted by [`is_transient`].
    pub fn queue<E: std::error::Error + 'static>(err: &SdkError<E, HttpResponse>) -> Self {
        let text = DisplayErrorContext(err).to_string();
        if is_transient(err) {
            ArchiveError::QueueUnavailable(text)
        } else {
            ArchiveError::QueueRefused(text)
        }
    }
}

impl From<ArchiveError> for Diagnostic {
    fn from(err: ArchiveError) -> Self {
        Diagnostic {
            error_type: if err.is_retryable() {
                "Retryable"
            } else {
                "NonRetryable"
            }
            .into(),
            error_message: format!("{}: {}", err.code(), eis_runtime::telemetry::chain(&err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_sees_the_class_and_the_code() {
        let d = Diagnostic::from(ArchiveError::StorageUnavailable(
            "connection refused".into(),
        ));
        assert_eq!(d.error_type, "Retryable");
        assert_eq!(
            d.error_message,
            "storage_unavailable: archive bucket unavailable: connection refused"
        );
        let d = Diagnostic::from(ArchiveError::InvalidInput("expected an object".into()));
        assert_eq!(d.error_type, "NonRetryable");
        assert!(d.error_message.starts_with("invalid_input: "));
    }

    #[test]
    fn store_errors_keep_their_class() {
        let unavailable = ArchiveError::from(StoreError::unavailable("timeout"));
        assert_eq!(unavailable.code(), "database_unavailable");
        assert!(unavailable.is_retryable());
        let other = ArchiveError::from(StoreError::other("42P01: no such table"));
        assert_eq!(other.code(), "database_error");
        assert!(!other.is_retryable());
        let refused = ArchiveError::from(StoreError::LoginRefused("28P01".into(), None));
        assert_eq!(refused.code(), "database_login_refused");
        assert!(!refused.is_retryable());
    }
}
