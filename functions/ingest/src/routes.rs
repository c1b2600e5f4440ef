//! The HTTP API: POST /events, POST /events/batch, GET /health. Handlers turn a request into
//! domain calls (validate, then `Storage`, and `Quarantine` for what was rejected) and an
//! answer; answers own their statuses (answer.rs, error.rs) and `telemetry::log_requests`
//! logs every request once.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Router};
use chrono::{DateTime, Utc};
use eis_contract::{parse_batch, validate_event, Arrival, Event, Limits};
use eis_runtime::telemetry::Namespace;
use eis_store::{InsertOutcome, Storage};

use crate::answer::{BatchAnswer, BatchError, BatchRefused, BatchWarning, EventAccepted, Healthy};
use crate::body;
use crate::error::ApiError;
use crate::quarantine::{Quarantine, QuarantineBounds, Rejects};
use crate::refusal::Refusal;
use crate::registry::RegistryCache;
use crate::telemetry::{log_requests, RequestId, RequestLog};

const EVENT_ROUTE: &str = "POST /events";
const BATCH_ROUTE: &str = "POST /events/batch";

#[derive(Clone)]
pub struct AppState {
    pub storage: Arc<Storage>,
    /// The experiment registry's copy: accepted events are checked against it.
    pub registry: Arc<RegistryCache>,
    /// Where rejected input is kept, within `quarantine_bounds`.
    pub quarantine: Arc<Quarantine>,
    pub quarantine_bounds: QuarantineBounds,
    pub limits: Limits,
    pub max_body_bytes: usize,
    /// The CloudWatch namespace of the requests' metrics.
    pub metrics_namespace: Namespace,
    /// The clock, injectable so that tests of time rules neither sleep nor race midnight.
    pub now: fn() -> DateTime<Utc>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/events", post(post_event))
        .route("/events/batch", post(post_batch))
        .route("/health", get(health))
        .fallback(|| async { failed(RequestLog::new("unmatched"), ApiError::NotFound) })
        .method_not_allowed_fallback(|| async {
            failed(RequestLog::new("unmatched"), ApiError::MethodNotAllowed)
        })
        .layer(middleware::from_fn_with_state(
            state.metrics_namespace.clone(),
            log_requests,
        ))
        .with_state(state)
}

/// An answer with what its request did attached, for `log_requests`.
fn logged(answer: impl IntoResponse, log: RequestLog) -> Response {
    let mut response = answer.into_response();
    response.extensions_mut().insert(log);
    response
}

fn failed(mut log: RequestLog, err: ApiError) -> Response {
    log.failed(&err);
    logged(err, log)
}

async fn post_event(State(state): State<AppState>, request: Request) -> Response {
    let mut log = RequestLog::new(EVENT_ROUTE);
    match one_event(&state, request, &mut log).await {
        Ok(answer) => logged(answer, log),
        Err(err) => failed(log, err),
    }
}

async fn one_event(
    state: &AppState,
    request: Request,
    log: &mut RequestLog,
) -> Result<EventAccepted, ApiError> {
    let request_id = request_id(&request);
    let (parts, body) = request.into_parts();
    let bytes = body::read_json(&parts.headers, body, state.max_body_bytes).await?;
    let now = (state.now)();
    // The registry copy only for an event the contract accepts (as before the quarantine):
    // garbage never triggers its reload.
    let (admitted, registry) = match validate_event(&bytes, now, &state.limits) {
        Ok(event) => {
            let registry = state.registry.get().await;
            (state.registry.admit(registry.as_deref(), event)?, registry)
        }
        Err(rejection) => (Err(rejection), state.registry.held()),
    };
    let event = match admitted {
        Ok(event) => event,
        Err(rejection) => {
            let mut rejects = Rejects::new(state.quarantine_bounds, state.limits.max_experiments);
            let named = rejects.event(
                arrival(&request_id, EVENT_ROUTE, now),
                None,
                &bytes,
                &rejection,
            );
            log.variants_of_rejected(&named, registry.as_deref());
            log.quarantine = state.quarantine.keep(rejects.records).await;
            return Err(rejection.into());
        }
    };
    log.variants_of_accepted(&event, registry.as_deref());
    let report = state.storage.save(std::slice::from_ref(&event)).await?;
    log.record(&report);
    let outcome = report.outcomes.first().unwrap_or(&InsertOutcome::Inserted);
    if let Some(refusal) = Refusal::of(outcome, event.event_id) {
        return Err(refusal.into());
    }
    let duplicate = *outcome == InsertOutcome::Duplicate;
    log.accepted = 1;
    log.duplicates = usize::from(duplicate);
    for flag in event.warnings() {
        log.flag(flag.as_str());
    }
    Ok(EventAccepted {
        event_id: event.event_id,
        status: "accepted",
        duplicate,
        warnings: event.warnings().to_vec(),
    })
}

async fn post_batch(State(state): State<AppState>, request: Request) -> Response {
    let mut log = RequestLog::new(BATCH_ROUTE);
    match batch(&state, request, &mut log).await {
        Ok(answer) => logged(answer, log),
        Err(err) => {
            log.failed_whole(&err);
            logged(BatchRefused(err), log)
        }
    }
}

async fn batch(
    state: &AppState,
    request: Request,
    log: &mut RequestLog,
) -> Result<BatchAnswer, ApiError> {
    let request_id = request_id(&request);
    let (parts, body) = request.into_parts();
    let bytes = body::read_json(&parts.headers, body, state.max_body_bytes).await?;
    let now = (state.now)();
    let arrival = arrival(&request_id, BATCH_ROUTE, now);
    let mut rejects = Rejects::new(state.quarantine_bounds, state.limits.max_experiments);
    let raw_events = match parse_batch(&bytes, &state.limits) {
        Ok(raw_events) => raw_events,
        Err(rejection) => {
            rejects.request(arrival, &bytes, &rejection);
            log.quarantine = state.quarantine.keep(rejects.records).await;
            return Err(rejection.into());
        }
    };
    let registry = state.registry.get().await;
    let held = registry.as_deref();

    let mut answer = BatchAnswer {
        event_ids: vec![None; raw_events.len()],
        ..Default::default()
    };
    let mut valid: Vec<Event> = Vec::with_capacity(raw_events.len());
    let mut positions = Vec::with_capacity(raw_events.len());
    for (index, raw) in raw_events.iter().enumerate() {
        let raw = raw.get().as_bytes();
        // Without a registry copy in reject mode, the whole batch is refused (503) before
        // anything is stored or kept: the client's retry is judged in full.
        let admitted = match validate_event(raw, now, &state.limits) {
            Ok(event) => state.registry.admit(held, event)?,
            Err(rejection) => Err(rejection),
        };
        match admitted {
            Ok(event) => {
                log.variants_of_accepted(&event, held);
                valid.push(event);
                positions.push(index);
            }
            Err(rejection) => {
                let named = rejects.event(arrival, Some(index), raw, &rejection);
                log.variants_of_rejected(&named, held);
                answer.errors.push(BatchError {
                    index,
                    error: rejection.code.as_str(),
                    message: rejection.message,
                });
            }
        }
    }

    // The quarantine's send runs beside the storage's, so that it never delays valid events.
    let save = async {
        if valid.is_empty() {
            Ok(None)
        } else {
            state.storage.save(&valid).await.map(Some)
        }
    };
    let (saved, quarantined) = tokio::join!(save, state.quarantine.keep(rejects.records));
    log.quarantine = quarantined;
    if let Some(report) = saved? {
        log.record(&report);
        for ((event, index), outcome) in valid.iter().zip(positions).zip(&report.outcomes) {
            if let Some(refusal) = Refusal::of(outcome, event.event_id) {
                if let Refusal::Rejected(reason) = &refusal {
                    tracing::warn!(index, %reason, "storage refused an event of a batch");
                }
                answer.errors.push(BatchError {
                    index,
                    error: refusal.code(),
                    message: refusal.message(),
                });
                continue;
            }
            if *outcome == InsertOutcome::Duplicate {
                answer.duplicates.push(index);
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

/// The id `log_requests` gave the request.
fn request_id(request: &Request) -> String {
    request
        .extensions()
        .get::<RequestId>()
        .map(|id| id.0.clone())
        .unwrap_or_default()
}

fn arrival<'a>(request_id: &'a str, route: &'a str, received_at: DateTime<Utc>) -> Arrival<'a> {
    Arrival {
        request_id,
        route,
        received_at,
    }
}

async fn health(State(state): State<AppState>) -> Response {
    let log = RequestLog::new("GET /health");
    match state.storage.ping().await {
        Ok(()) => logged(Healthy, log),
        Err(err) => failed(log, err.into()),
    }
}

/// The router with no stack behind it: every case here is decided before storage (the
/// database address refuses connections, and no case reaches SQS).
#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::{header, Request, StatusCode};
    use eis_runtime::SqsPublisher;
    use eis_store::{Db, DbConfig};
    use http_body_util::BodyExt;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;

    fn stackless() -> Router {
        let db = Db::new(&DbConfig {
            url: "postgres://eis@127.0.0.1:1/eis?sslmode=disable".into(),
            ca_file: None,
            secret_arn: None,
            connect_timeout: Duration::from_secs(1),
            query_timeout: Duration::from_secs(1),
            idle_probe_after: Duration::from_secs(60),
        })
        .expect("valid config");
        let sqs = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::Config::builder()
                .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
                .region(aws_sdk_sqs::config::Region::from_static("us-east-1"))
                .endpoint_url("http://127.0.0.1:1")
                .build(),
        );
        let db = Arc::new(db);
        let quarantine = Quarantine::new(
            SqsPublisher::new(sqs.clone(), "http://127.0.0.1:1/queue".into(), 256 * 1024),
            Duration::from_millis(200),
        );
        router(AppState {
            quarantine: Arc::new(quarantine),
            quarantine_bounds: QuarantineBounds::default(),
            registry: Arc::new(RegistryCache::new(
                Arc::clone(&db),
                Duration::from_secs(60),
                eis_contract::RegistryMode::Flag,
            )),
            storage: Arc::new(Storage::new(
                db,
                SqsPublisher::new(sqs, "http://127.0.0.1:1/queue".into(), 256 * 1024),
            )),
            limits: Limits::default(),
            max_body_bytes: 1024 * 1024,
            metrics_namespace: Namespace::default(),
            now: Utc::now,
        })
    }

    async fn send(
        method: &str,
        path: &str,
        content_type: &str,
        body: &str,
    ) -> (StatusCode, Value, bool) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body.to_string()))
            .expect("valid request");
        let response = stackless().oneshot(request).await.expect("infallible");
        let status = response.status();
        let retry_after = response.headers().contains_key(header::RETRY_AFTER);
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).expect("JSON answer"),
            retry_after,
        )
    }

    #[tokio::test]
    async fn requests_decided_before_storage() {
        let json = "application/json";
        let cases = [
            ("POST", "/events", json, "{not json", 400, "invalid_json"),
            (
                "POST",
                "/events",
                "text/plain",
                "{}",
                415,
                "unsupported_media_type",
            ),
            (
                "POST",
                "/events",
                json,
                r#"{"unit_type":"user"}"#,
                400,
                "missing_event_type",
            ),
            ("POST", "/events/batch", json, "[]", 400, "missing_events"),
            (
                "POST",
                "/events/batch",
                json,
                r#"{"events":[]}"#,
                400,
                "empty_batch",
            ),
            ("GET", "/nowhere", json, "", 404, "not_found"),
            ("GET", "/events", json, "", 405, "method_not_allowed"),
            ("GET", "/health", json, "", 503, "storage_unavailable"),
        ];
        for (method, path, content_type, body, status, code) in cases {
            let (got, answer, retry_after) = send(method, path, content_type, body).await;
            assert_eq!(got.as_u16(), status, "{method} {path} {body}: {answer}");
            assert_eq!(answer["error"], code, "{method} {path} {body}");
            assert_eq!(
                retry_after,
                status == 503,
                "{method} {path}: Retry-After only on 503"
            );
            // Batch clients parse one shape, even when the batch is refused as a whole.
            if path == "/events/batch" {
                assert_eq!(
                    (answer["accepted"].as_u64(), answer["rejected"].as_u64()),
                    (Some(0), Some(0))
                );
            }
        }
    }

    #[tokio::test]
    async fn a_batch_of_only_invalid_events_is_judged_per_event_without_storage() {
        let body = r#"{"events":[{"unit_type":"user"},{not an event}]}"#;
        let (status, answer, _) = send("POST", "/events/batch", "application/json", body).await;
        // The second element is not JSON at all, so the whole body is.
        assert_eq!(
            (status.as_u16(), answer["error"].as_str()),
            (400, Some("invalid_json"))
        );
        let body = r#"{"events":[{"unit_type":"user"},17]}"#;
        let (status, answer, _) = send("POST", "/events/batch", "application/json", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            (answer["accepted"].as_u64(), answer["rejected"].as_u64()),
            (Some(0), Some(2))
        );
        assert_eq!(answer["errors"][0]["index"], 0);
        assert_eq!(answer["errors"][0]["error"], "missing_event_type");
        assert_eq!(answer["errors"][1]["index"], 1);
        assert_eq!(answer["event_ids"], serde_json::json!([null, null]));
    }
}
