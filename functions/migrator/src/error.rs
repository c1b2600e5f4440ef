//! Errors at the migrator's boundary: one enum, stable codes, and the one place that decides
//! what is worth retrying. Lambda sees `error_type` Retryable or NonRetryable and a message
//! that starts with the code; CloudFormation sees the same text as a FAILED answer's reason.

use eis_store::StoreError;
use lambda_runtime::Diagnostic;

use crate::registry::RegistryInputError;

/// What caused an error at the response URL: the HTTP client's or TLS's.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum MigratorError {
    /// The input is none of the migrator's.
    #[error("input is neither {{\"action\":\"migrate\"}}, {{\"action\":\"registry\",\"experiments\"}} nor a CloudFormation custom-resource request: {0}")]
    InvalidInput(String),
    /// A `{"action":"registry"}` input that cannot be loaded as it is; its code says why.
    #[error("registry input refused: {0}")]
    InvalidRegistry(#[from] RegistryInputError),
    /// A registry load where the database user is the application's (`EIS_DB_SECRET_ARN`
    /// without the role secrets): only the migrator, or a local user without any secret,
    /// writes the registry.
    #[error("registry loads run as the migrator (EIS_DB_MIGRATOR_SECRET_ARN); this function's database user is the application's")]
    MigratorOnly,
    /// The migrations (or a load) did not finish before the time kept for answering.
    #[error("out of time: {0}")]
    OutOfTime(String),
    /// The database was unavailable (retryable) or answered with an error that retrying will
    /// not fix (schema, login, config): `StoreError` says which.
    #[error(transparent)]
    Database(#[from] StoreError),
    /// CloudFormation's response URL could not be reached or refused the answer.
    #[error("CloudFormation's response URL: {0}")]
    Response(String, #[source] Option<Cause>),
    #[error("internal error: {0}")]
    Internal(String),
}

impl MigratorError {
    /// Stable snake_case code: in logs, Lambda's error message and CloudFormation's reason.
    pub fn code(&self) -> &'static str {
        match self {
            MigratorError::InvalidInput(_) => "invalid_input",
            MigratorError::InvalidRegistry(e) => e.code(),
            MigratorError::MigratorOnly => "migrator_only",
            MigratorError::OutOfTime(_) => "out_of_time",
            MigratorError::Database(e) => e.code(),
            MigratorError::Response(..) => "response_failed",
            MigratorError::Internal(_) => "internal_error",
        }
    }

    /// Transient: the same input later may well succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            MigratorError::Database(e) => e.is_retryable(),
            MigratorError::Response(..) | MigratorError::OutOfTime(_) => true,
            _ => false,
        }
    }

    /// The code and the whole chain of causes, as Lambda and CloudFormation show it.
    pub fn message(&self) -> String {
        format!("{}: {}", self.code(), eis_runtime::telemetry::chain(self))
    }
}

impl From<MigratorError> for Diagnostic {
    fn from(err: MigratorError) -> Self {
        let error_type = if err.is_retryable() {
            "Retryable"
        } else {
            "NonRetryable"
        };
        Diagnostic {
            error_type: error_type.into(),
            error_message: err.message(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_sees_the_class_and_the_code() {
        let d = Diagnostic::from(MigratorError::from(StoreError::LoginRefused(
            "28P01: password authentication failed".into(),
            None,
        )));
        assert_eq!(d.error_type, "NonRetryable");
        assert!(
            d.error_message
                .starts_with("database_login_refused: database login refused: 28P01"),
            "{}",
            d.error_message
        );
        let d = Diagnostic::from(MigratorError::Response("timed out".into(), None));
        assert_eq!(d.error_type, "Retryable");
        assert_eq!(
            d.error_message,
            "response_failed: CloudFormation's response URL: timed out"
        );
    }

    #[test]
    fn store_errors_keep_their_class() {
        let unavailable = MigratorError::from(StoreError::unavailable("timeout"));
        assert_eq!(unavailable.code(), "database_unavailable");
        assert!(unavailable.is_retryable());
        let other = MigratorError::from(StoreError::other("42P01: no such table"));
        assert_eq!(other.code(), "database_error");
        assert!(!other.is_retryable());
    }
}
