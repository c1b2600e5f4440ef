//! Every way a request can fail, and the one place that maps failures to HTTP statuses.

use axum::http::{header, StatusCode};
use axum::response::{AppendHeaders, IntoResponse, Response};
use axum::Json;
use eis_contract::{Code, Rejection};
use serde::Serialize;

use crate::refusal::Refusal;
use crate::registry::RegistryUnavailable;

/// Seconds a client should wait before retrying when storage (or the registry) is unavailable.
const RETRY_AFTER_SECS: &str = "5";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request or event breaks the contract (codes of `eis_contract::Code`).
    #[error("{0}")]
    Invalid(#[from] Rejection),
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("unsupported Content-Encoding {0:?}: send identity or gzip")]
    UnsupportedEncoding(String),
    #[error("the gzip body cannot be decompressed")]
    InvalidGzip,
    #[error("the request body could not be read")]
    UnreadableBody,
    #[error("the EIS-Sent-At header must be an RFC 3339 date-time with an offset, e.g. 2026-03-01T12:00:00.000Z")]
    InvalidSentAt,
    /// Storage did not take an event that the contract accepted.
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("storage is unavailable, retry later")]
    StorageUnavailable,
    /// Reject mode, before the function's first registry load succeeded: an event naming
    /// experiments cannot be checked, so nothing of the request is stored.
    #[error("the experiment registry could not be loaded, so events naming experiments cannot be checked; nothing was stored, retry later")]
    RegistryUnavailable,
    #[error("internal error")]
    Internal,
    #[error("no such route")]
    NotFound,
    #[error("method not allowed on this route")]
    MethodNotAllowed,
}

impl ApiError {
    /// The stable snake_case code of the response body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Invalid(r) => r.code.as_str(),
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::UnsupportedEncoding(_) => "unsupported_content_encoding",
            ApiError::InvalidGzip => "invalid_gzip",
            ApiError::UnreadableBody => "unreadable_body",
            ApiError::InvalidSentAt => "invalid_sent_at",
            ApiError::Refused(r) => r.code(),
            ApiError::StorageUnavailable => "storage_unavailable",
            ApiError::RegistryUnavailable => "registry_unavailable",
            ApiError::Internal => "internal_error",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Invalid(r) => code_status(r.code),
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType | ApiError::UnsupportedEncoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ApiError::InvalidGzip
            | ApiError::UnreadableBody
            | ApiError::InvalidSentAt
            | ApiError::Refused(Refusal::Database(_)) => StatusCode::BAD_REQUEST,
            ApiError::Refused(Refusal::Conflict(_)) => StatusCode::CONFLICT,
            ApiError::StorageUnavailable | ApiError::RegistryUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    /// The human sentence of the response body (internal details are logged, never sent).
    pub fn message(&self) -> String {
        match self {
            ApiError::Invalid(r) => r.message.clone(),
            ApiError::Refused(r) => r.message(),
            other => other.to_string(),
        }
    }

    /// The JSON pointer of the value at fault, for failures of one event (or of a batch body);
    /// None for failures of the request itself.
    pub fn field(&self) -> Option<String> {
        match self {
            ApiError::Invalid(r) => Some(r.field.clone()),
            ApiError::Refused(r) => Some(r.field().to_string()),
            _ => None,
        }
    }
}

impl From<RegistryUnavailable> for ApiError {
    fn from(_: RegistryUnavailable) -> Self {
        ApiError::RegistryUnavailable
    }
}

/// Size rejections are 413, every other contract code is 400: the erasure's `unit_erased` and
/// `unit_suppressed` too (like `unit_not_authorized`, a refusal for good that clients do not
/// retry).
fn code_status(code: Code) -> StatusCode {
    match code {
        Code::EventTooLarge | Code::BatchTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    }
}

impl From<eis_store::StoreError> for ApiError {
    fn from(err: eis_store::StoreError) -> Self {
        // The boundary: the whole chain is logged here, once; the client gets the code.
        let error = eis_runtime::telemetry::chain(&err);
        if err.is_retryable() {
            tracing::warn!(%error, "storage unavailable");
            ApiError::StorageUnavailable
        } else {
            tracing::error!(%error, "storage failed");
            ApiError::Internal
        }
    }
}

/// The body of every error answer (the batch route adds its counts around it).
#[derive(Serialize)]
pub struct ErrorBody {
    pub error: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// `schema_violation`: where in the tracking plan's schema the failing keyword is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_path: Option<String>,
}

impl From<&ApiError> for ErrorBody {
    fn from(err: &ApiError) -> Self {
        ErrorBody {
            error: err.code(),
            message: err.message(),
            field: err.field(),
            schema_path: match err {
                ApiError::Invalid(r) => r.schema_path.clone(),
                _ => None,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody::from(&self);
        (self.status(), AppendHeaders(self.headers()), Json(body)).into_response()
    }
}

impl ApiError {
    /// Extra headers: Retry-After tells clients when storage (or the registry) may be back.
    pub fn headers(&self) -> Vec<(header::HeaderName, &'static str)> {
        match self {
            ApiError::StorageUnavailable | ApiError::RegistryUnavailable => {
                vec![(header::RETRY_AFTER, RETRY_AFTER_SECS)]
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eis_contract::Flag;

    /// One of each variant. The match below stops compiling when a variant is added, so the
    /// list (and with it the documentation check) cannot silently fall behind.
    fn every_error() -> Vec<ApiError> {
        let all = vec![
            ApiError::Invalid(Rejection {
                code: Code::InvalidJson,
                message: String::new(),
                field: String::new(),
                schema_path: None,
                violations: Vec::new(),
            }),
            ApiError::PayloadTooLarge { limit: 1 },
            ApiError::UnsupportedMediaType,
            ApiError::UnsupportedEncoding("br".into()),
            ApiError::InvalidGzip,
            ApiError::UnreadableBody,
            ApiError::InvalidSentAt,
            ApiError::Refused(Refusal::Database(String::new())),
            ApiError::Refused(Refusal::Conflict(uuid::Uuid::nil())),
            ApiError::StorageUnavailable,
            ApiError::RegistryUnavailable,
            ApiError::Internal,
            ApiError::NotFound,
            ApiError::MethodNotAllowed,
        ];
        for e in &all {
            match e {
                ApiError::Invalid(_)
                | ApiError::PayloadTooLarge { .. }
                | ApiError::UnsupportedMediaType
                | ApiError::UnsupportedEncoding(_)
                | ApiError::InvalidGzip
                | ApiError::UnreadableBody
                | ApiError::InvalidSentAt
                | ApiError::Refused(Refusal::Database(_))
                | ApiError::Refused(Refusal::Conflict(_))
                | ApiError::StorageUnavailable
                | ApiError::RegistryUnavailable
                | ApiError::Internal
                | ApiError::NotFound
                | ApiError::MethodNotAllowed => {}
            }
        }
        all
    }

    #[test]
    fn every_code_and_flag_is_in_the_openapi_spec_and_the_docs() {
        let spec = include_str!("../../../openapi.yaml");
        let api_doc = include_str!("../../../docs/api.md");
        let contract_doc = include_str!("../../../docs/contract.md");
        let errors = every_error();
        let codes = Code::ALL
            .iter()
            .map(|c| c.as_str())
            .chain(errors.iter().map(ApiError::code))
            .chain(Flag::ALL.iter().map(|f| f.as_str()));
        for code in codes {
            assert!(
                spec.contains(&format!(" {code}\n")) || spec.contains(&format!(" {code}]")),
                "{code} missing from openapi.yaml"
            );
            let documented = format!("`{code}`");
            assert!(
                api_doc.contains(&documented) || contract_doc.contains(&documented),
                "{code} missing from docs/api.md and docs/contract.md"
            );
        }
    }

    #[test]
    fn statuses() {
        let status = |e: ApiError| e.status().as_u16();
        let invalid = |code| {
            ApiError::Invalid(Rejection {
                code,
                message: String::new(),
                field: String::new(),
                schema_path: None,
                violations: Vec::new(),
            })
        };
        assert_eq!(status(invalid(Code::MissingTimestamp)), 400);
        assert_eq!(status(invalid(Code::EventTooLarge)), 413);
        assert_eq!(status(invalid(Code::BatchTooLarge)), 413);
        assert_eq!(status(invalid(Code::UnitErased)), 400);
        assert_eq!(status(invalid(Code::UnitSuppressed)), 400);
        assert_eq!(status(ApiError::PayloadTooLarge { limit: 1 }), 413);
        assert_eq!(status(ApiError::UnsupportedMediaType), 415);
        assert_eq!(status(ApiError::InvalidSentAt), 400);
        assert_eq!(status(Refusal::Conflict(uuid::Uuid::nil()).into()), 409);
        assert_eq!(status(Refusal::Database("22P05".into()).into()), 400);
        assert_eq!(status(ApiError::StorageUnavailable), 503);
        assert_eq!(status(ApiError::RegistryUnavailable), 503);
        assert_eq!(ApiError::RegistryUnavailable.headers().len(), 1);
        assert_eq!(status(ApiError::NotFound), 404);
        assert_eq!(status(ApiError::MethodNotAllowed), 405);
        assert_eq!(ApiError::StorageUnavailable.headers().len(), 1);
        assert!(ApiError::Internal.headers().is_empty());
    }
}
