//! The ingest API served on 127.0.0.1 exactly as `make dev` serves it, on a test's own
//! database and queue, and the request bodies the API tests share.

use chrono::{Duration, SecondsFormat, Utc};
use ingest::routes::router;
use serde_json::{json, Value};

use crate::{ingest_config, serve, TestDb, TestQueue};

pub const EXPERIMENT: &str = "0b7e6a43-2d1e-4f55-9d7c-6f6f6b1f0a01";
pub const VARIANT: &str = "5c0c8f5e-8b4a-4a43-b7c5-0f2f0c0b9a02";

pub fn ts(offset: Duration) -> String {
    (Utc::now() + offset).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The seed's example request, with real UUIDs and a current timestamp.
pub fn seed_event() -> Value {
    json!({
        "event_type": "plan_generated",
        "unit_type": "user",
        "unit_id": "user-123",
        "experiments": [{"experiment_id": EXPERIMENT, "variant_id": VARIANT}],
        "context": {"policy_version_id": "7d9f8e1c-3b2a-4c5d-8e6f-9a0b1c2d3e04", "app_version": "1.2.3", "platform": "ios"},
        "metrics": {"latency_ms": 450, "token_count": 1200},
        "payload": {"plan_id": "2f1e0d9c-8b7a-4655-9443-3a2b1c0d9e05", "meal_count": 7},
        "timestamp": ts(Duration::zero()),
    })
}

pub fn swap_event(i: usize) -> Value {
    json!({
        "event_type": "meal_swapped", "unit_type": "user", "unit_id": format!("user-{i}"),
        "experiments": [{"experiment_id": EXPERIMENT, "variant_id": VARIANT}],
        "payload": {"meal_id": format!("meal-{i}"), "new_meal_id": format!("meal-{}", i + 1)},
        "timestamp": ts(Duration::zero()),
    })
}

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
