//! The answers of the API. Each owns its status: the HTTP mapping of a success is decided
//! here, that of a failure in error.rs, and nowhere else.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use eis_contract::Flag;
use serde::Serialize;
use uuid::Uuid;

use crate::error::{ApiError, ErrorBody};

/// 202: one event stored (or already stored with the same content).
#[derive(Serialize)]
pub struct EventAccepted {
    pub event_id: Uuid,
    pub status: &'static str,
    /// Present (true) when this event_id was already stored with the same content.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Flag>,
}

impl IntoResponse for EventAccepted {
    fn into_response(self) -> Response {
        (StatusCode::ACCEPTED, Json(self)).into_response()
    }
}

/// A batch judged event by event.
#[derive(Serialize, Default)]
pub struct BatchAnswer {
    pub accepted: usize,
    pub rejected: usize,
    pub errors: Vec<BatchError>,
    pub event_ids: Vec<Option<Uuid>>,
    /// Indexes of accepted events whose event_id was already stored with the same content
    /// (by an earlier request or earlier in this batch): stored once, not again.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub duplicates: Vec<usize>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<BatchWarning>,
}

#[derive(Serialize)]
pub struct BatchError {
    pub index: usize,
    pub error: &'static str,
    pub message: String,
    /// The JSON pointer of the value at fault within the event (`""`: the whole event).
    pub field: String,
    /// `schema_violation`: where in the tracking plan's schema the failing keyword is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_path: Option<String>,
}

#[derive(Serialize)]
pub struct BatchWarning {
    pub index: usize,
    pub warnings: Vec<Flag>,
}

impl BatchAnswer {
    /// 200 when every event was accepted, 207 when some were, 400 when none was.
    pub fn status(&self) -> StatusCode {
        match (self.accepted, self.rejected) {
            (0, _) => StatusCode::BAD_REQUEST,
            (_, 0) => StatusCode::OK,
            _ => StatusCode::MULTI_STATUS,
        }
    }
}

impl IntoResponse for BatchAnswer {
    fn into_response(self) -> Response {
        (self.status(), Json(self)).into_response()
    }
}

/// A batch refused as a whole. 4xx answers keep the batch shape (with zero counts) next to
/// `error` and `message`, so that batch clients parse one shape; 5xx are the plain error.
pub struct BatchRefused(pub ApiError);

#[derive(Serialize)]
struct RefusedBatchBody {
    accepted: usize,
    rejected: usize,
    errors: [BatchError; 0],
    event_ids: [Uuid; 0],
    #[serde(flatten)]
    error: ErrorBody,
}

impl IntoResponse for BatchRefused {
    fn into_response(self) -> Response {
        let err = self.0;
        if err.status().is_server_error() {
            return err.into_response();
        }
        let body = RefusedBatchBody {
            accepted: 0,
            rejected: 0,
            errors: [],
            event_ids: [],
            error: ErrorBody::from(&err),
        };
        (err.status(), Json(body)).into_response()
    }
}

/// 200 `{"status":"ok"}`: the database answered.
pub struct Healthy;

impl IntoResponse for Healthy {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body {
            status: &'static str,
        }
        (StatusCode::OK, Json(Body { status: "ok" })).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_status_follows_the_counts() {
        for (accepted, rejected, status) in [(3, 0, 200), (2, 1, 207), (0, 3, 400), (0, 0, 400)] {
            let answer = BatchAnswer {
                accepted,
                rejected,
                ..Default::default()
            };
            assert_eq!(answer.status().as_u16(), status, "{accepted}/{rejected}");
        }
    }
}
