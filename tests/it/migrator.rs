//! The migrator function (functions/migrator) on the real local PostgreSQL: `{"action":
//! "migrate"}` on an empty database, and the deploy's custom-resource path. CloudFormation's
//! response URL (a pre-signed S3 URL in AWS) cannot be had here: a small HTTP server on
//! 127.0.0.1 stands in for it and records what the migrator PUTs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::Router;
use eis_tests::*;
use migrator::config::Config;
use migrator::custom_resource::ANSWER_RESERVE;
use migrator::handler::{self, Output};
use migrator::input::Input;
use serde_json::{json, Value};
use tokio::time::Instant;

/// What the stand-in received: method, path and query, Content-Type, body.
type Received = Arc<Mutex<Vec<(Method, String, Option<String>, Value)>>>;

/// The stand-in for the pre-signed S3 response URL: answers every request with `status` and
/// records it. Stops with the test (its task is aborted on drop).
struct ResponseUrl {
    url: String,
    received: Received,
    task: tokio::task::JoinHandle<()>,
}

impl ResponseUrl {
    async fn answering(status: StatusCode) -> Self {
        let received = Received::default();
        let record = |State((received, status)): State<(Received, StatusCode)>,
                      request: Request| async move {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, 64 * 1024)
                .await
                .unwrap_or_else(|_| Bytes::new());
            let content_type = parts
                .headers
                .get(header::CONTENT_TYPE)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            let path = parts.uri.path_and_query().map(|p| p.to_string());
            received.lock().expect("lock").push((
                parts.method,
                path.unwrap_or_default(),
                content_type,
                serde_json::from_slice(&body).unwrap_or(Value::Null),
            ));
            status
        };
        let router = Router::new()
            .fallback(record)
            .with_state((Arc::clone(&received), status));
        let (base, task) = serve(router).await;
        // Shaped like CloudFormation's: a key with encoded ARN characters and a signed query.
        let url = format!(
            "{base}/arn%3Aaws%3Acloudformation%3Aus-east-1%3A123456789012%3Astack/eis/1%7CMigrations%7Cr1?X-Amz-Signature=00"
        );
        Self {
            url,
            received,
            task,
        }
    }

    fn answers(&self) -> Vec<(Method, String, Option<String>, Value)> {
        self.received.lock().expect("lock").clone()
    }
}

impl Drop for ResponseUrl {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A custom-resource request as CloudFormation sends it, answered at `url`.
fn request(kind: &str, url: &str) -> Input {
    let value = json!({
        "RequestType": kind, "ResponseURL": url, "ServiceToken": "arn:aws:lambda:…:live",
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/eis/1",
        "RequestId": format!("request-{kind}"), "LogicalResourceId": "SchemaMigrations",
        "ResourceType": "Custom::EisMigrations",
        "ResourceProperties": {"MigratorVersion": "7", "RunId": "1"}
    });
    Input::parse(&value).expect("a custom-resource request")
}

/// A database of its own with no migrations applied (TestDb's, emptied), dropped with the
/// value.
struct EmptyDb(TestDb);

impl EmptyDb {
    async fn create() -> Self {
        let db = TestDb::create().await;
        db.client()
            .await
            .batch_execute("DROP SCHEMA exp CASCADE; DROP TABLE public.eis_schema_history")
            .await
            .expect("empty the database");
        Self(db)
    }

    fn config(&self) -> Config {
        Config {
            db: self.0.config(),
            roles: None,
        }
    }
}

/// A database nothing listens for (port 1): any connection attempt fails.
fn unreachable() -> Config {
    Config {
        db: db_config("postgres://eis@127.0.0.1:1/eis".into()),
        roles: None,
    }
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(120)
}

fn migrations() -> usize {
    std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations"))
        .expect("migrations dir")
        .count()
}

#[tokio::test]
async fn the_migrate_input_applies_pending_migrations_once() {
    let db = EmptyDb::create().await;
    let first = handler::handle(&db.config(), Input::Migrate, deadline())
        .await
        .expect("migrate");
    let Output::Migrated { applied, .. } = first else {
        panic!("something else answered a migrate input: {first:?}");
    };
    assert_eq!(applied.len(), migrations(), "{applied:?}");
    let again = handler::handle(&db.config(), Input::Migrate, deadline())
        .await
        .expect("migrate again");
    assert_eq!(again.text(), "migrations: database is up to date");
}

#[tokio::test]
async fn create_migrates_and_answers_success() {
    let db = EmptyDb::create().await;
    let cloudformation = ResponseUrl::answering(StatusCode::OK).await;
    let out = handler::handle(
        &db.config(),
        request("Create", &cloudformation.url),
        deadline(),
    )
    .await
    .expect("answered");
    let Output::Answered { status, reason, .. } = &out else {
        panic!("{out:?}");
    };
    assert_eq!(serde_json::to_value(status).expect("json"), "SUCCESS");
    assert!(reason.starts_with("applied V1__"), "{reason}");

    let answers = cloudformation.answers();
    assert_eq!(answers.len(), 1, "one answer: {answers:?}");
    let (method, path, content_type, body) = &answers[0];
    assert_eq!(method, Method::PUT);
    assert!(
        path.ends_with("%7CMigrations%7Cr1?X-Amz-Signature=00"),
        "the URL as given: {path}"
    );
    assert_eq!(
        content_type.as_deref(),
        Some(""),
        "signed for no content type"
    );
    assert_eq!(body["Status"], "SUCCESS");
    assert_eq!(body["RequestId"], "request-Create");
    assert_eq!(body["LogicalResourceId"], "SchemaMigrations");
    assert_eq!(
        body["StackId"],
        "arn:aws:cloudformation:us-east-1:123456789012:stack/eis/1"
    );
    assert_eq!(body["PhysicalResourceId"], "eis-database-migrations");
    let recorded: i64 =
        db.0.client()
            .await
            .query_one("SELECT count(*) FROM public.eis_schema_history", &[])
            .await
            .expect("history")
            .get(0);
    assert_eq!(usize::try_from(recorded).ok(), Some(migrations()));
}

#[tokio::test]
async fn a_refused_login_answers_failed_with_the_reason() {
    let db = EmptyDb::create().await;
    let cloudformation = ResponseUrl::answering(StatusCode::OK).await;
    // A role that does not exist: the server refuses the login (SQLSTATE 28000).
    let nobody = with_user(&db.0.url, "eis_no_such_user");
    let config = Config {
        db: db_config(nobody),
        roles: None,
    };
    let out = handler::handle(&config, request("Update", &cloudformation.url), deadline())
        .await
        .expect("answered, though the migrations failed");
    let answers = cloudformation.answers();
    let body = &answers[0].3;
    assert_eq!(body["Status"], "FAILED", "{out:?}");
    let reason = body["Reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("database_login_refused: database login refused: "),
        "{reason}"
    );
}

#[tokio::test]
async fn delete_answers_success_without_touching_the_database() {
    let cloudformation = ResponseUrl::answering(StatusCode::OK).await;
    handler::handle(
        &unreachable(),
        request("Delete", &cloudformation.url),
        deadline(),
    )
    .await
    .expect("answered");
    let answers = cloudformation.answers();
    assert_eq!(answers[0].3["Status"], "SUCCESS");
    assert_eq!(answers[0].3["RequestId"], "request-Delete");
}

#[tokio::test]
async fn too_little_time_answers_failed_before_the_deadline() {
    let db = EmptyDb::create().await;
    let cloudformation = ResponseUrl::answering(StatusCode::OK).await;
    let deadline = Instant::now() + ANSWER_RESERVE;
    handler::handle(
        &db.config(),
        request("Create", &cloudformation.url),
        deadline,
    )
    .await
    .expect("answered");
    let answers = cloudformation.answers();
    let reason = answers[0].3["Reason"].as_str().unwrap_or_default();
    assert_eq!(answers[0].3["Status"], "FAILED");
    assert!(reason.starts_with("out_of_time: "), "{reason}");
}

#[tokio::test]
async fn a_refused_answer_fails_the_invocation() {
    let cloudformation = ResponseUrl::answering(StatusCode::FORBIDDEN).await;
    let err = handler::handle(
        &unreachable(),
        request("Delete", &cloudformation.url),
        deadline(),
    )
    .await
    .expect_err("S3 refused the answer");
    assert_eq!(err.code(), "response_failed");
    assert!(err.to_string().contains("403"), "{err}");
}

/// `url` with `user` as its user name.
fn with_user(url: &str, user: &str) -> String {
    let rest = url.strip_prefix("postgres://").unwrap_or(url);
    let host = rest.split_once('@').map_or(rest, |(_, host)| host);
    format!("postgres://{user}@{host}")
}
