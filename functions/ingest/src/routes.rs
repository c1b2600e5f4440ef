//! The HTTP API: POST /events, POST /events/batch, GET /health. Handlers turn requests into
//! domain calls and answers; statuses come from `ApiError` and the batch rules below.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use eis_contract::{parse_batch, validate_event, Event, Flag, Limits};
use eis_store::InsertOutcome;
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use crate::body;
use crate::error::ApiError;
use crate::ingest::{Ingestor, StoreReport};
use crate::telemetry::RequestLog;

#[derive(Clone)]
pub struct AppState {
    pub ingestor: Arc<Ingestor>,
    pub limits: Limits,
    pub max_body_bytes: usize,
    /// The clock, injectable so that tests of time rules neither sleep nor race midnight.
    pub now: fn() -> DateTime<Utc>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/events", post(post_event))
        .route("/events/batch", post(post_batch))
        .route("/health", get(health))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
}

#[derive(Serialize)]
struct Accepted<'a> {
    event_id: Uuid,
    status: &'static str,
    /// Present (true) when this event_id was already stored with the same content.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    duplicate: bool,
    #[serde(skip_serializing_if = "<[Flag]>::is_empty")]
    warnings: &'a [Flag],
}

async fn post_event(State(state): State<AppState>, request: Request) -> Response {
    let started = Instant::now();
    let mut log = RequestLog {
        request_id: request_id(&request),
        route: "POST /events",
        ..Default::default()
    };
    let response = match one_event(&state, request, &mut log).await {
        Ok(response) => response,
        Err(err) => {
            log.error = Some(err.code());
            if let ApiError::Invalid(r) = &err {
                log.reject(r.code.as_str());
            }
            err.into_response()
        }
    };
    log.status = response.status().as_u16();
    log.finish(started.elapsed());
    response
}

async fn one_event(
    state: &AppState,
    request: Request,
    log: &mut RequestLog,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let bytes = body::read_json(&parts.headers, body, state.max_body_bytes).await?;
    let event = validate_event(&bytes, (state.now)(), &state.limits)?;
    let report = state.ingestor.ingest(std::slice::from_ref(&event)).await?;
    log.record(&report);
    let duplicate = match report.outcomes.first() {
        Some(InsertOutcome::Rejected(reason)) => {
            return Err(ApiError::StorageRejected(reason.clone()))
        }
        Some(InsertOutcome::Conflict) => return Err(ApiError::EventIdConflict(event.event_id)),
        Some(InsertOutcome::Duplicate) => true,
        Some(InsertOutcome::Inserted) | None => false,
    };
    log.accepted = 1;
    log.duplicates = usize::from(duplicate);
    for flag in event.warnings() {
        log.flag(flag.as_str());
    }
    let body = Accepted {
        event_id: event.event_id,
        status: "accepted",
        duplicate,
        warnings: event.warnings(),
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

#[derive(Serialize, Default)]
struct BatchAnswer {
    accepted: usize,
    rejected: usize,
    errors: Vec<BatchError>,
    event_ids: Vec<Option<Uuid>>,
    /// Indexes of accepted events whose event_id was already stored with the same content
    /// (by an earlier request or earlier in this batch): stored once, not again.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    duplicates: Vec<usize>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<BatchWarning>,
}

#[derive(Serialize)]
struct BatchError {
    index: usize,
    error: &'static str,
    message: String,
}

#[derive(Serialize)]
struct BatchWarning {
    index: usize,
    warnings: Vec<Flag>,
}

async fn post_batch(State(state): State<AppState>, request: Request) -> Response {
    let started = Instant::now();
    let mut log = RequestLog {
        request_id: request_id(&request),
        route: "POST /events/batch",
        ..Default::default()
    };
    let response = match batch(&state, request, &mut log).await {
        Ok(answer) => {
            let status = if answer.accepted > 0 && answer.rejected == 0 {
                StatusCode::OK
            } else if answer.accepted > 0 {
                StatusCode::MULTI_STATUS
            } else {
                StatusCode::BAD_REQUEST
            };
            (status, Json(answer)).into_response()
        }
        Err(err) => {
            log.error = Some(err.code());
            batch_failure(err)
        }
    };
    log.status = response.status().as_u16();
    log.finish(started.elapsed());
    response
}

/// A batch refused as a whole. 4xx answers keep the batch shape (with zero counts) next to
/// `error` and `message`, so batch clients parse one shape; 5xx are the plain error body.
fn batch_failure(err: ApiError) -> Response {
    if err.status().is_server_error() {
        return err.into_response();
    }
    let body = json!({
        "accepted": 0, "rejected": 0, "errors": [], "event_ids": [],
        "error": err.code(), "message": err.message(),
    });
    (err.status(), Json(body)).into_response()
}

async fn batch(
    state: &AppState,
    request: Request,
    log: &mut RequestLog,
) -> Result<BatchAnswer, ApiError> {
    let (parts, body) = request.into_parts();
    let bytes = body::read_json(&parts.headers, body, state.max_body_bytes).await?;
    let raw_events = parse_batch(&bytes, &state.limits)?;
    let now = (state.now)();

    let mut answer = BatchAnswer {
        event_ids: vec![None; raw_events.len()],
        ..Default::default()
    };
    let mut valid: Vec<Event> = Vec::with_capacity(raw_events.len());
    let mut positions = Vec::with_capacity(raw_events.len());
    for (index, raw) in raw_events.iter().enumerate() {
        match validate_event(raw.get().as_bytes(), now, &state.limits) {
            Ok(event) => {
                valid.push(event);
                positions.push(index);
            }
            Err(rejection) => answer.errors.push(BatchError {
                index,
                error: rejection.code.as_str(),
                message: rejection.message,
            }),
        }
    }

    if !valid.is_empty() {
        let report = state.ingestor.ingest(&valid).await?;
        log.record(&report);
        for ((event, index), outcome) in valid.iter().zip(positions).zip(&report.outcomes) {
            let refused = match outcome {
                InsertOutcome::Rejected(reason) => {
                    tracing::warn!(index, %reason, "storage refused an event of a batch");
                    Some(ApiError::StorageRejected(reason.clone()))
                }
                InsertOutcome::Conflict => Some(ApiError::EventIdConflict(event.event_id)),
                InsertOutcome::Duplicate => {
                    answer.duplicates.push(index);
                    None
                }
                InsertOutcome::Inserted => None,
            };
            if let Some(err) = refused {
                answer.errors.push(BatchError {
                    index,
                    error: err.code(),
                    message: err.message(),
                });
                continue;
            }
            answer.event_ids[index] = Some(event.event_id);
            if !event.warnings().is_empty() {
                answer.warnings.push(BatchWarning {
                    index,
                    warnings: event.warnings().to_vec(),
                });
            }
        }
        answer.errors.sort_by_key(|e| e.index);
    }

    answer.rejected = answer.errors.len();
    answer.accepted = raw_events.len() - answer.rejected;
    log.accepted = answer.accepted;
    log.duplicates = answer.duplicates.len();
    for e in &answer.errors {
        log.reject(e.error);
    }
    for w in &answer.warnings {
        for flag in &w.warnings {
            log.flag(flag.as_str());
        }
    }
    Ok(answer)
}

async fn health(State(state): State<AppState>) -> Response {
    match state.ingestor.store().db().ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ok" }))).into_response(),
        Err(err) => ApiError::from(err).into_response(),
    }
}

/// API Gateway's request id when running in Lambda; a fresh id locally.
fn request_id(request: &Request) -> String {
    use lambda_http::RequestExt;
    request
        .lambda_context_ref()
        .map(|ctx| ctx.request_id.clone())
        .unwrap_or_else(|| Uuid::now_v7().to_string())
}

impl RequestLog {
    fn record(&mut self, report: &StoreReport) {
        self.pg_latency = Some(report.pg_latency);
        self.sqs_latency = Some(report.sqs_latency);
        self.publish_failures = report.publish_failures;
    }
}
