//! Errors at the storage boundary, classified once into retryable and permanent.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or answered in time; the caller may retry later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database refused the data itself (e.g. a character it cannot store).
    #[error("database rejected the data: {0}")]
    Rejected(String),
    /// Anything else: a bug or a schema mismatch, not worth retrying blindly.
    #[error("database error: {0}")]
    Other(String),
    #[error("invalid database configuration: {0}")]
    Config(String),
}

impl StoreError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }

    /// Sorts a driver error by SQLSTATE class: connection (08), resources (53), operator
    /// intervention (57), system (58), serialization/deadlock (40001, 40P01) and I/O without a
    /// server answer are transient; data (22) and integrity (23) errors are the data's fault.
    pub fn from_pg(err: tokio_postgres::Error) -> Self {
        let Some(code) = err.code() else {
            return StoreError::Unavailable(err.to_string());
        };
        let sqlstate = code.code();
        let text = match err.as_db_error() {
            Some(db) => format!("{sqlstate}: {}", db.message()),
            None => err.to_string(),
        };
        match &sqlstate[..2] {
            "08" | "53" | "57" | "58" => StoreError::Unavailable(text),
            "40" if sqlstate == "40001" || sqlstate == "40P01" => StoreError::Unavailable(text),
            "22" | "23" | "54" => StoreError::Rejected(text),
            _ => StoreError::Other(text),
        }
    }
}
