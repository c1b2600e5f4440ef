//! The ingest API served on 127.0.0.1 exactly as `make dev` serves it, on a test's own
//! database and queue.

use ingest::routes::router;
use serde_json::Value;

use crate::{ingest_config, serve, TestDb, TestQueue};

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
