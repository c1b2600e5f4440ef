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
    #[error("database refused the data: {0}")]
    DataRefused(String, #[source] Option<Cause>),
    /// Anything else: a bug or a schema mismatch, not worth retrying blindly.
    #[error("database error: {0}")]
    Other(String, #[source] Option<Cause>),
    #[error("invalid database configuration: {0}")]
    Config(String, #[source] Option<Cause>),
    /// The server, or RDS Proxy in front of it, refused the login (SQLSTATE class 28). Not
    /// retryable: the secret, the user or the proxy's auth list must change first.
    #[error("database login refused: {0}")]
    LoginRefused(String, #[source] Option<Cause>),
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
            StoreError::DataRefused(m, _) => StoreError::DataRefused(m, cause),
            StoreError::Other(m, _) => StoreError::Other(m, cause),
            StoreError::Config(m, _) => StoreError::Config(m, cause),
            StoreError::LoginRefused(m, _) => StoreError::LoginRefused(m, cause),
        }
    }

    /// A login refused for the user of secret `secret_arn`, saying what lets it in: behind
    /// RDS Proxy the proxy logs in with its own copy of each secret, so a secret missing from
    /// its auth list is refused before the database is asked; directly, the user's password
    /// must be the secret's (the deploy's first step sets it).
    pub fn login_refused(self, user: &str, secret_arn: &str) -> Self {
        let StoreError::LoginRefused(detail, cause) = self else {
            return self;
        };
        StoreError::LoginRefused(
            format!(
                "user {user} of secret {secret_arn} ({detail}). Through RDS Proxy, the proxy \
                 must hold this secret: add it to the proxy's auth list with \
                 `aws rds modify-db-proxy --db-proxy-name <proxy> --auth <every secret the \
                 proxy serves, this one included>` (the list replaces the old one; \
                 docs/deploy.md, \"Database roles\"). Connecting directly, the user's \
                 password must be the secret's (a deploy sets the two EIS users' passwords \
                 from their secrets)"
            ),
            cause,
        )
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(..))
    }

    /// The stable code the functions report a storage error with (logs, Lambda's error
    /// message, CloudFormation's reason).
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Unavailable(..) => "database_unavailable",
            StoreError::LoginRefused(..) => "database_login_refused",
            _ => "database_error",
        }
    }

    /// Sorts a driver error by SQLSTATE class: connection (08), resources (53), operator
    /// intervention (57), system (58), serialization/deadlock (40001, 40P01) and I/O without a
    /// server answer are transient; data (22) and integrity (23) errors are the data's fault;
    /// a refused login (28) is the credentials'.
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
            "22" | "23" | "54" => StoreError::DataRefused(text, cause),
            "28" => StoreError::LoginRefused(text, cause),
            _ => StoreError::Other(text, cause),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:secretsmanager:us-east-1:000000000000:secret:eis/eis_deploy-Ab12";

    #[test]
    fn a_refused_login_says_which_secret_and_how_to_register_it() {
        let refused =
            StoreError::LoginRefused("28P01: password authentication failed".into(), None)
                .login_refused("eis_deploy", ARN);
        let text = refused.to_string();
        assert!(
            text.starts_with("database login refused: user eis_deploy of secret "),
            "{text}"
        );
        for needed in [
            ARN,
            "28P01",
            "aws rds modify-db-proxy",
            "--auth",
            "Database roles",
        ] {
            assert!(text.contains(needed), "{text:?} lacks {needed:?}");
        }
        assert!(!refused.is_retryable());
    }

    #[test]
    fn other_errors_are_left_as_they_are() {
        let other = StoreError::unavailable("timeout").login_refused("eis_deploy", ARN);
        assert_eq!(other.to_string(), "database unavailable: timeout");
    }
}
