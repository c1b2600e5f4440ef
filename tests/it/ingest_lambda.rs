//! The ingest function through the Lambda path: API Gateway v2 request events kept as files
//! under `events/` (the same files serve `cargo lambda invoke` and `sam local invoke`),
//! turned into requests by lambda_http exactly as the runtime does, answered by the router,
//! with the real PostgreSQL and SQS behind it.
//!
//! One test per fixture, each against its golden answer `events/expected/<fixture>` (status
//! and the whole body; `"<uuid>"` stands for an id the server generates). After a deliberate
//! change of the answers, `EIS_BLESS=1 cargo test --test it ingest_lambda` rewrites the goldens;
//! review their diff before committing it (an id inside a gzip body is not seen in the request
//! text, so it is masked too: restore it by hand, as in ingest-post-event-base64-gzip.json).

use chrono::{DateTime, TimeZone, Utc};
use eis_tests::*;
use http_body_util::BodyExt;
use ingest::sender::CallerBinding;
use serde_json::{json, Value};
use tower::ServiceExt;

/// The fixtures' events happen at 2026-11-28T10:00Z; the clock reads five minutes later.
fn fixture_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 10, 5, 0)
        .single()
        .expect("valid date")
}

fn events_dir() -> String {
    format!("{}/../events", env!("CARGO_MANIFEST_DIR"))
}

/// The router on a database and queue of its own, its clock at the fixtures' time.
struct Fixtures {
    app: axum::Router,
    db: TestDb,
    queue: TestQueue,
}

/// What `ingest-post-batch-jwt.json` is deployed with: users may write only their own events.
fn users_bound_to_sub() -> CallerBinding {
    CallerBinding {
        unit: eis_contract::UnitBinding {
            unit_type: "user".into(),
        },
        claim: "sub".into(),
    }
}

impl Fixtures {
    async fn start() -> Fixtures {
        Self::start_with(None).await
    }

    async fn start_with(binding: Option<CallerBinding>) -> Fixtures {
        let db = TestDb::create().await;
        let queue = TestQueue::create(5, 30).await;
        let mut config = ingest_config(&db, &queue.url);
        config.binding = binding;
        let mut state = ingest::app::state(&config).await.expect("state");
        state.now = fixture_now;
        let app = ingest::routes::router(state);
        Fixtures { app, db, queue }
    }

    /// The answer to a fixture, as `{"status": …, "body": …}`.
    async fn invoke(&self, fixture: &str) -> Value {
        let path = format!("{}/{fixture}", events_dir());
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        self.invoke_text(&text).await
    }

    /// The answer to an API Gateway v2 event given as text.
    async fn invoke_text(&self, text: &str) -> Value {
        let request = lambda_http::request::from_str(text).expect("API Gateway v2 event");
        let response = self
            .app
            .clone()
            .oneshot(request)
            .await
            .expect("infallible router");
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        json!({ "status": status, "body": body })
    }
}

/// Where `actual` differs from `golden` (a JSON path and both values); `"<uuid>"` in the
/// golden matches any UUID.
fn differences(golden: &Value, actual: &Value, path: &str, found: &mut Vec<String>) {
    match (golden, actual) {
        (Value::String(g), Value::String(a)) if g == "<uuid>" => {
            if uuid::Uuid::parse_str(a).is_err() {
                found.push(format!("{path}: {a:?} is not a UUID"));
            }
        }
        (Value::Object(g), Value::Object(a)) => {
            for key in g.keys().chain(a.keys().filter(|k| !g.contains_key(*k))) {
                let (gv, av) = (&g.get(key), &a.get(key));
                match (gv, av) {
                    (Some(gv), Some(av)) => differences(gv, av, &format!("{path}.{key}"), found),
                    _ => found.push(format!("{path}.{key}: expected {gv:?}, got {av:?}")),
                }
            }
        }
        (Value::Array(g), Value::Array(a)) if g.len() == a.len() => {
            for (i, (gv, av)) in g.iter().zip(a).enumerate() {
                differences(gv, av, &format!("{path}[{i}]"), found);
            }
        }
        _ if golden == actual => {}
        _ => found.push(format!("{path}: expected {golden}, got {actual}")),
    }
}

/// Replaces every UUID the request did not carry (the server generated it) by `"<uuid>"`.
fn mask_generated_ids(answer: &mut Value, request: &str) {
    match answer {
        Value::String(text)
            if uuid::Uuid::parse_str(text).is_ok() && !request.contains(text.as_str()) =>
        {
            *text = "<uuid>".into();
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|v| mask_generated_ids(v, request)),
        Value::Object(fields) => fields
            .values_mut()
            .for_each(|v| mask_generated_ids(v, request)),
        _ => {}
    }
}

/// Checks (or, with EIS_BLESS=1, writes) the golden answer of one fixture.
async fn answers_as_golden(fixture: &str) {
    answers_as_golden_with(fixture, None).await;
}

async fn answers_as_golden_with(fixture: &str, binding: Option<CallerBinding>) {
    let fixtures = Fixtures::start_with(binding).await;
    let answer = fixtures.invoke(fixture).await;
    let golden_path = format!("{}/expected/{fixture}", events_dir());
    if std::env::var_os("EIS_BLESS").is_some() {
        let request =
            std::fs::read_to_string(format!("{}/{fixture}", events_dir())).expect("fixture");
        let mut golden = answer;
        mask_generated_ids(&mut golden, &request);
        let text = serde_json::to_string_pretty(&golden).expect("json") + "\n";
        std::fs::write(&golden_path, text).expect("write golden");
        return;
    }
    let text = std::fs::read_to_string(&golden_path)
        .unwrap_or_else(|e| panic!("{golden_path}: {e} (EIS_BLESS=1 writes it)"));
    let golden: Value = serde_json::from_str(&text).expect("golden is JSON");
    let mut found = Vec::new();
    differences(&golden, &answer, "$", &mut found);
    assert!(found.is_empty(), "{fixture}:\n  {}", found.join("\n  "));
}

macro_rules! golden_tests {
    ($($test:ident => $fixture:literal,)*) => {
        $(
            #[tokio::test]
            async fn $test() {
                answers_as_golden($fixture).await;
            }
        )*
    };
}

golden_tests! {
    post_event => "ingest-post-event.json",
    post_event_base64_gzip => "ingest-post-event-base64-gzip.json",
    post_event_missing_timestamp => "ingest-post-event-missing-timestamp.json",
    post_event_invalid_json => "ingest-post-event-invalid-json.json",
    post_event_text_plain => "ingest-post-event-text-plain.json",
    post_batch => "ingest-post-batch.json",
    post_batch_partial => "ingest-post-batch-partial.json",
    post_batch_empty => "ingest-post-batch-empty.json",
    get_health => "ingest-get-health.json",
    get_unknown_route => "ingest-get-unknown-route.json",
    delete_events => "ingest-delete-events.json",
    post_validate => "ingest-post-validate.json",
}

#[tokio::test]
async fn post_batch_jwt() {
    answers_as_golden_with("ingest-post-batch-jwt.json", Some(users_bound_to_sub())).await;
}

/// Behind the JWT authorizer: the caller's own event and another unit type's are stored, with
/// the request's send time; the event naming another user is refused and not kept anywhere.
#[tokio::test]
async fn a_bound_caller_writes_only_its_own_events_with_their_send_time() {
    let fixtures = Fixtures::start_with(Some(users_bound_to_sub())).await;
    let answer = fixtures.invoke("ingest-post-batch-jwt.json").await;
    assert_eq!(answer["status"], 207, "{answer}");
    let client = fixtures.db.client().await;
    let rows = client
        .query(
            "SELECT unit_id, sent_at, adjusted_timestamp, \"timestamp\", received_at \
             FROM exp.events ORDER BY unit_id",
            &[],
        )
        .await
        .expect("query");
    let units: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(units, ["s-9", "user-1"]);
    let sent_at = Utc.with_ymd_and_hms(2026, 11, 28, 10, 3, 30).single();
    for row in &rows {
        let (sent, adjusted): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) =
            (row.get(1), row.get(2));
        let (timestamp, received): (DateTime<Utc>, DateTime<Utc>) = (row.get(3), row.get(4));
        assert_eq!(sent, sent_at);
        // The client's clock was 90 s behind the server's (10:05:00).
        assert_eq!(
            received - sent.expect("sent_at"),
            chrono::Duration::seconds(90)
        );
        assert_eq!(adjusted, Some(timestamp + chrono::Duration::seconds(90)));
    }
    // Only the stored two went to the archive's queue; the refused one to no quarantine.
    assert_eq!(
        queued_events(&fixtures.queue, &fixtures.queue.url)
            .await
            .len(),
        2
    );
}

/// The dry run answers what the batch route answers for the same events, and stores nothing.
#[tokio::test]
async fn the_dry_run_judges_as_the_batch_route_and_stores_nothing() {
    let fixtures = Fixtures::start().await;
    let dry = fixtures.invoke("ingest-post-validate.json").await;
    assert_eq!(stored_counts(&fixtures.db).await, (0, 0));
    assert_eq!(depth(&fixtures.queue, &fixtures.queue.url).await, (0, 0));

    let path = format!("{}/ingest-post-validate.json", events_dir());
    let text = std::fs::read_to_string(&path).expect("fixture");
    let as_batch = text.replace("/events/validate", "/events/batch");
    let stored = fixtures.invoke_text(&as_batch).await;
    for key in ["accepted", "rejected", "errors"] {
        assert_eq!(dry["body"][key], stored["body"][key], "{key}");
    }
    assert_eq!(dry["status"], stored["status"]);
    // Ids: the client's own in both; none yet in the dry run for the event sent without one.
    assert_eq!(dry["body"]["event_ids"][0], stored["body"]["event_ids"][0]);
    assert_eq!(dry["body"]["event_ids"][1], Value::Null);
    assert!(stored["body"]["event_ids"][1].is_string());
    assert_eq!(stored_counts(&fixtures.db).await.0, 2);
}

#[test]
fn every_ingest_fixture_has_a_golden_answer() {
    let dir = std::path::PathBuf::from(events_dir());
    for entry in std::fs::read_dir(&dir).expect("events dir") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .to_string();
        if name.starts_with("ingest-") {
            assert!(
                dir.join("expected").join(&name).is_file(),
                "{name} has no golden answer in events/expected/"
            );
        }
    }
}

/// The accepted fixtures together: each event stored once and queued once, a retry of the
/// same request answered the same and storing nothing new.
#[tokio::test]
async fn accepted_fixtures_are_stored_and_queued_once() {
    let fixtures = Fixtures::start().await;
    let first = fixtures.invoke("ingest-post-event.json").await;
    let again = fixtures.invoke("ingest-post-event.json").await;
    assert_eq!(again["status"], 202);
    assert_eq!(again["body"]["event_id"], first["body"]["event_id"]);
    assert_eq!(again["body"]["duplicate"], true, "{again}");
    for fixture in [
        "ingest-post-event-base64-gzip.json",
        "ingest-post-batch.json",
        "ingest-post-batch-partial.json",
    ] {
        let answer = fixtures.invoke(fixture).await;
        assert!(
            matches!(answer["status"].as_u64(), Some(200..=299)),
            "{answer}"
        );
    }
    // 1 + 1 (gzip) + 3 + 98 events stored, each once, each handed to SQS once.
    assert_eq!(stored_counts(&fixtures.db).await, (103, 0));
    assert_eq!(
        queued_events(&fixtures.queue, &fixtures.queue.url)
            .await
            .len(),
        103
    );
}
