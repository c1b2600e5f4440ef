//! The ingest API for the tests: its configuration and state on a test's own database and
//! queue, and the API served on 127.0.0.1 exactly as `make dev` serves it.

use std::sync::Arc;
use std::time::Duration;

use eis_store::{Db, DbConfig};
use ingest::routes::router;
use serde_json::Value;
use tokio::net::TcpListener;

use crate::{unreachable_publisher, TestDb, TestQueue};

pub struct App {
    pub url: String,
    pub http: reqwest::Client,
    pub db: TestDb,
    pub queue: TestQueue,
    server: tokio::task::JoinHandle<()>,
}

impl App {
    pub async fn start() -> App {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut ingest::config::Config)) -> App {
        let db = TestDb::create().await;
        let queue = TestQueue::create(5, 30).await;
        let mut config = ingest_config(&db, &queue.url);
        adjust(&mut config);
        let state = ingest::app::state(&config).await.expect("state");
        let (url, server) = serve(router(state)).await;
        App {
            url,
            http: reqwest::Client::new(),
            db,
            queue,
            server,
        }
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_bytes(path, body.to_string().into_bytes(), &[])
            .await
    }

    pub async fn post_bytes(
        &self,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut request = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        answer(request.send().await.expect("request")).await
    }
}

/// The server stops with the app; its database and queue go with their own values.
impl Drop for App {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// The ingest function's configuration for a test's own database and queue.
pub fn ingest_config(db: &TestDb, queue_url: &str) -> ingest::config::Config {
    ingest::config::Config {
        db: db.config(),
        queue_url: queue_url.to_string(),
        max_body_bytes: 5 * 1024 * 1024,
        limits: eis_contract::Limits::default(),
        sqs_max_message_bytes: eis_handoff::message::SQS_MAX_MESSAGE_BYTES,
        port: 0,
        db_connections: 2,
        registry_mode: eis_contract::RegistryMode::Flag,
        registry_max_age: Duration::from_secs(60),
        quarantine: Default::default(),
        metrics_namespace: Default::default(),
        binding: None,
    }
}

/// The ingest API's state on `db`, publishing through `publisher`, with the real clock and
/// the default limits and registry settings. Its quarantine has no queue (its sends fail
/// at once, which never changes an answer).
pub fn api_state(
    db: &DbConfig,
    publisher: impl eis_handoff::Publish + 'static,
) -> ingest::app::AppState {
    let db = Arc::new(Db::new(db).expect("db"));
    ingest::app::AppState {
        registry: Arc::new(ingest::registry::RegistryCache::new(
            Arc::clone(&db),
            Duration::from_secs(60),
            eis_contract::RegistryMode::Flag,
        )),
        tombstones: Arc::new(ingest::cache::Cache::new(
            Arc::clone(&db),
            Duration::from_secs(60),
        )),
        plan: Arc::new(ingest::cache::Cache::new(
            Arc::clone(&db),
            Duration::from_secs(60),
        )),
        storage: Arc::new(eis_handoff::Storage::new(db, publisher)),
        quarantine: Arc::new(ingest::quarantine::Quarantine::new(
            unreachable_publisher(),
            Duration::from_millis(500),
        )),
        quarantine_bounds: Default::default(),
        limits: eis_contract::Limits::default(),
        max_body_bytes: 5 << 20,
        metrics_namespace: Default::default(),
        now: chrono::Utc::now,
        binding: None,
    }
}

/// Serves a router on 127.0.0.1 (a port of its own) until the returned handle is aborted.
pub async fn serve(router: axum::Router) -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (format!("http://{addr}"), task)
}
