//! Errors at the storage boundary, classified once into retryable and permanent. Each keeps
//! what caused it (`source()`), so that the top of the binary logs the whole chain once.

/// What caused a storage error: a driver, TLS, SDK or I/O error.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or answered in time; the caller may retry later.
    #[error("database unavailable: {0}")]
    Unavailable(String, #[source] Option<Cause>),
    /// The database refused the data itself (e.g. a character it cannot store).
    #[error("database rejected the data: {0}")]
    Rejected(String, #[source] Option<Cause>),
    /// Anything else: a bug or a schema mismatch, not worth retrying blindly.
    #[error("database error: {0}")]
    Other(String, #[source] Option<Cause>),
    #[error("invalid database configuration: {0}")]
    Config(String, #[source] Option<Cause>),
}

impl StoreError {
    pub fn unavailable(message: impl Into<String>) -> Self {
        StoreError::Unavailable(message.into(), None)
    }

    pub fn other(message: impl Into<String>) -> Self {
        StoreError::Other(message.into(), None)
    }

    pub fn config(message: impl Into<String>) -> Self {
        StoreError::Config(message.into(), None)
    }

    /// The same error, caused by `cause`.
    pub fn caused_by(self, cause: impl Into<Cause>) -> Self {
        let cause = Some(cause.into());
        match self {
            StoreError::Unavailable(m, _) => StoreError::Unavailable(m, cause),
            StoreError::Rejected(m, _) => StoreError::Rejected(m, cause),
            StoreError::Other(m, _) => StoreError::Other(m, cause),
            StoreError::Config(m, _) => StoreError::Config(m, cause),
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(..))
    }

    /// Sorts a driver error by SQLSTATE class: connection (08), resources (53), operator
    /// intervention (57), system (58), serialization/deadlock (40001, 40P01) and I/O without a
    /// server answer are transient; data (22) and integrity (23) errors are the data's fault.
    pub fn from_pg(err: tokio_postgres::Error) -> Self {
        let Some(sqlstate) = err.code().map(|c| c.code().to_string()) else {
            return StoreError::Unavailable(err.to_string(), Some(err.into()));
        };
        let text = match err.as_db_error() {
            Some(db) => format!("{sqlstate}: {}", db.message()),
            None => sqlstate.clone(),
        };
        let cause = Some(err.into());
        match &sqlstate[..2] {
            "08" | "53" | "57" | "58" => StoreError::Unavailable(text, cause),
            "40" if sqlstate == "40001" || sqlstate == "40P01" => {
                StoreError::Unavailable(text, cause)
            }
            "22" | "23" | "54" => StoreError::Rejected(text, cause),
            _ => StoreError::Other(text, cause),
        }
    }
}
