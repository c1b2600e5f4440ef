//! The HTTP API: POST /events, POST /events/batch, POST /events/validate, GET /health. The
//! storing routes take their events in by one path (intake.rs: judge, quarantine, store) and
//! differ in their answers; the dry run judges the same way and stops there. Answers own
//! their statuses (answer.rs, error.rs), and the request log is filled once from the finished
//! answer, then written by `telemetry::log_requests`.

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Router};
use chrono::{DateTime, Utc};
use eis_contract::{parse_batch, Arrival};
use uuid::Uuid;

use crate::answer::{BatchAnswer, BatchError, BatchRefused, BatchWarning, EventAccepted, Healthy};
use crate::app::AppState;
use crate::body;
use crate::error::ApiError;
use crate::intake::{self, Fate, Taken, Verdict};
use crate::refusal::Refusal;
use crate::sender::Sender;
use crate::telemetry::{log_requests, RequestId, RequestLog};

const EVENT_ROUTE: &str = "POST /events";
const BATCH_ROUTE: &str = "POST /events/batch";
const VALIDATE_ROUTE: &str = "POST /events/validate";

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/events", post(post_event))
        .route("/events/batch", post(post_batch))
        .route("/events/validate", post(post_validate))
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
    let (taken, answer) = one_event(&state, request).await;
    let mut log = RequestLog::new(EVENT_ROUTE);
    log.event_answered(taken, &answer);
    match answer {
        Ok(accepted) => logged(accepted, log),
        Err(err) => logged(err, log),
    }
}

/// `POST /events`: the body is a batch of one, answered on its own.
async fn one_event(
    state: &AppState,
    request: Request,
) -> (Option<Taken>, Result<EventAccepted, ApiError>) {
    let request_id = request_id(&request);
    let (parts, body) = request.into_parts();
    let sender = match Sender::of(&parts, state.binding.as_ref()) {
        Ok(sender) => sender,
        Err(err) => return (None, Err(err)),
    };
    let bytes = match body::read_json(&parts.headers, body, state.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(err) => return (None, Err(err)),
    };
    let arrival = arrival(&request_id, EVENT_ROUTE, (state.now)());
    let mut taken = match intake::take(state, arrival, &[&bytes], false, &sender).await {
        Ok(taken) => taken,
        Err(err) => return (None, Err(err)),
    };
    let answer = match (taken.failed.take(), taken.fates.pop()) {
        (Some(err), _) => Err(err),
        (
            None,
            Some(Fate::Stored {
                event_id,
                duplicate,
                warnings,
            }),
        ) => Ok(EventAccepted {
            event_id,
            status: "accepted",
            duplicate,
            warnings,
        }),
        (None, Some(Fate::Invalid(rejection))) => Err(rejection.into()),
        (None, Some(Fate::Refused(refusal))) => Err(refusal.into()),
        // One event in, one fate out: storage answered for each event it was given.
        (None, None) => Err(ApiError::Internal),
    };
    (Some(taken), answer)
}

async fn post_batch(State(state): State<AppState>, request: Request) -> Response {
    let (taken, answer) = batch(&state, request).await;
    let mut log = RequestLog::new(BATCH_ROUTE);
    log.batch_answered(taken, &answer);
    match answer {
        Ok(answer) => logged(answer, log),
        Err(err) => logged(BatchRefused(err), log),
    }
}

async fn batch(
    state: &AppState,
    request: Request,
) -> (Option<Taken>, Result<BatchAnswer, ApiError>) {
    let request_id = request_id(&request);
    let (parts, body) = request.into_parts();
    let sender = match Sender::of(&parts, state.binding.as_ref()) {
        Ok(sender) => sender,
        Err(err) => return (None, Err(err)),
    };
    let bytes = match body::read_json(&parts.headers, body, state.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(err) => return (None, Err(err)),
    };
    let arrival = arrival(&request_id, BATCH_ROUTE, (state.now)());
    let raw_events = match parse_batch(&bytes, &state.limits) {
        Ok(raw_events) => raw_events,
        Err(rejection) => {
            let quarantine = intake::refuse_body(state, arrival, &bytes, &rejection).await;
            return (Some(Taken::nothing(quarantine)), Err(rejection.into()));
        }
    };
    let texts: Vec<&[u8]> = raw_events.iter().map(|raw| raw.get().as_bytes()).collect();
    let mut taken = match intake::take(state, arrival, &texts, true, &sender).await {
        Ok(taken) => taken,
        Err(err) => return (None, Err(err)),
    };
    if let Some(err) = taken.failed.take() {
        return (Some(taken), Err(err));
    }
    let answer = batch_answer(std::mem::take(&mut taken.fates));
    (Some(taken), Ok(answer))
}

/// The batch's answer from its events' fates, in request order.
fn batch_answer(fates: Vec<Fate>) -> BatchAnswer {
    let mut answer = BatchAnswer {
        event_ids: vec![None; fates.len()],
        ..Default::default()
    };
    for (index, fate) in fates.into_iter().enumerate() {
        match fate {
            Fate::Stored {
                event_id,
                duplicate,
                warnings,
            } => {
                if duplicate {
                    answer.duplicates.push(index);
                }
                answer.event_ids[index] = Some(event_id);
                if !warnings.is_empty() {
                    answer.warnings.push(BatchWarning { index, warnings });
                }
            }
            Fate::Invalid(rejection) => answer.errors.push(BatchError {
                index,
                error: rejection.code.as_str(),
                message: rejection.message,
                field: rejection.field,
                schema_path: rejection.schema_path,
            }),
            Fate::Refused(refusal) => {
                if let Refusal::Database(reason) = &refusal {
                    tracing::warn!(index, %reason, "storage refused an event of a batch");
                }
                answer.errors.push(BatchError {
                    index,
                    error: refusal.code(),
                    message: refusal.message(),
                    field: refusal.field().to_string(),
                    schema_path: None,
                });
            }
        }
    }
    answer.rejected = answer.errors.len();
    answer.accepted = answer.event_ids.len() - answer.rejected;
    answer
}

async fn post_validate(State(state): State<AppState>, request: Request) -> Response {
    let mut log = RequestLog::new(VALIDATE_ROUTE);
    match dry_run(&state, request).await {
        Ok(answer) => logged(answer, log),
        Err(err) => {
            log.failed(&err);
            logged(BatchRefused(err), log)
        }
    }
}

/// `POST /events/validate`: the batch route's judgement, answered in its shape, with nothing
/// stored or kept. Nor is anything counted as traffic: the log has the route and status only.
async fn dry_run(state: &AppState, request: Request) -> Result<BatchAnswer, ApiError> {
    let (parts, body) = request.into_parts();
    let sender = Sender::of(&parts, state.binding.as_ref())?;
    let bytes = body::read_json(&parts.headers, body, state.max_body_bytes).await?;
    let raw_events = parse_batch(&bytes, &state.limits)?;
    let texts: Vec<&[u8]> = raw_events.iter().map(|raw| raw.get().as_bytes()).collect();
    // The nil id (never a client's: the contract refuses it) marks an event sent without one.
    let judged = intake::judge(state, &texts, (state.now)(), &sender, Some(Uuid::nil())).await?;
    let fates = judged.verdicts.into_iter().map(|verdict| match verdict {
        Verdict::Accepted(event) => Fate::Stored {
            event_id: event.event_id,
            duplicate: false,
            warnings: event.flags,
        },
        Verdict::Refused { rejection, .. } => Fate::Invalid(rejection),
    });
    let mut answer = batch_answer(fates.collect());
    // An event sent without an id has none until it is stored.
    for id in &mut answer.event_ids {
        id.take_if(|id| id.is_nil());
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

    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{header, Request, StatusCode};
    use eis_contract::Limits;
    use eis_handoff::{SqsPublisher, Storage};
    use eis_runtime::telemetry::Namespace;
    use eis_store::{Db, DbConfig};
    use http_body_util::BodyExt;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;
    use crate::quarantine::{Quarantine, QuarantineBounds};
    use crate::registry::RegistryCache;

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
            tombstones: Arc::new(crate::cache::Cache::new(
                Arc::clone(&db),
                Duration::from_secs(60),
            )),
            plan: Arc::new(crate::cache::Cache::new(
                Arc::clone(&db),
                Duration::from_secs(60),
            )),
            storage: Arc::new(Storage::new(
                db,
                SqsPublisher::new(sqs, "http://127.0.0.1:1/queue".into(), 256 * 1024),
            )),
            limits: Limits::default(),
            max_body_bytes: 1024 * 1024,
            metrics_namespace: Namespace::default(),
            now: Utc::now,
            binding: None,
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
    async fn without_a_copy_of_the_tombstones_no_valid_event_is_taken() {
        // The tombstones' first load fails here: an event may be an erased unit's retry, so
        // neither a storing route nor the dry run takes it (nor says it would).
        let event = serde_json::json!({
            "event_type": "custom", "unit_type": "user", "unit_id": "u-1",
            "timestamp": Utc::now().to_rfc3339(),
        });
        let batch = serde_json::json!({ "events": [event.clone()] });
        for (path, body) in [("/events", event), ("/events/validate", batch)] {
            let (status, answer, retry_after) =
                send("POST", path, "application/json", &body.to_string()).await;
            assert_eq!(
                (status.as_u16(), answer["error"].as_str(), retry_after),
                (503, Some("storage_unavailable"), true),
                "{path}: {answer}"
            );
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
