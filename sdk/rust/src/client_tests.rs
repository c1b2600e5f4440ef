//! The client as a whole against a scripted HTTP server on 127.0.0.1 (the real server is in
//! tests/it/sdk.rs): batching, flush and close bounds, refusals, the spool taken over.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::report::Outcome;
use uuid::Uuid;

type Script = Arc<dyn Fn(&Value) -> (u16, Value) + Send + Sync>;

/// A keep-alive HTTP/1.1 server that answers each POST with `script(body)` and keeps the
/// bodies it received.
struct FakeApi {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeApi {
    async fn start(script: impl Fn(&Value) -> (u16, Value) + Send + Sync + 'static) -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let script: Script = Arc::new(script);
        let kept = Arc::clone(&bodies);
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, Arc::clone(&script), Arc::clone(&kept)));
            }
        });
        FakeApi { url, bodies, task }
    }

    /// The event ids of every request, in order.
    fn ids(&self) -> Vec<String> {
        let bodies = self.bodies.lock().unwrap_or_else(|p| p.into_inner());
        bodies
            .iter()
            .flat_map(|b| b["events"].as_array().cloned().unwrap_or_default())
            .filter_map(|e| e["event_id"].as_str().map(str::to_string))
            .collect()
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut socket: TcpStream, script: Script, bodies: Arc<Mutex<Vec<Value>>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < end + 4 + length {
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Value =
            serde_json::from_slice(&buf[end + 4..end + 4 + length]).unwrap_or(Value::Null);
        buf.drain(..end + 4 + length);
        let (status, answer) = script(&body);
        bodies.lock().unwrap_or_else(|p| p.into_inner()).push(body);
        let text = answer.to_string();
        let reply = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
            text.len()
        );
        if socket.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Stores everything: 200 with an id per event.
fn accept_all(body: &Value) -> (u16, Value) {
    let ids: Vec<Value> = body["events"]
        .as_array()
        .map(|events| events.iter().map(|e| e["event_id"].clone()).collect())
        .unwrap_or_default();
    (
        200,
        json!({"accepted": ids.len(), "rejected": 0, "errors": [], "event_ids": ids}),
    )
}

fn event(i: usize) -> Value {
    json!({"event_type": "meal_swapped", "unit_type": "user", "unit_id": format!("u{i}"),
           "payload": {"meal_id": "m1", "new_meal_id": "m2"}})
}

/// A base URL where nothing listens (a privileged port: no test server can take it).
fn nowhere() -> String {
    "http://127.0.0.1:1".into()
}

#[tokio::test]
async fn events_go_in_batches_and_every_result_is_reported() {
    let api = FakeApi::start(accept_all).await;
    let seen = Arc::new(Mutex::new(0usize));
    let counted = Arc::clone(&seen);
    let client = Client::new(
        Config::new(&api.url)
            .flush_at(10)
            .max_batch_events(10)
            .gzip_above(None)
            .on_result(move |_| *counted.lock().unwrap_or_else(|p| p.into_inner()) += 1),
    )
    .expect("client");
    let ids: Vec<Uuid> = (0..25)
        .map(|i| client.capture(event(i)).expect("queued"))
        .collect();
    let report = client.flush(Duration::from_secs(5)).await;
    assert_eq!(report.pending(), 0);
    assert_eq!(report.count("stored"), 25);
    assert_eq!(*seen.lock().unwrap_or_else(|p| p.into_inner()), 25);
    let mut sent = api.ids();
    sent.sort();
    let mut expected: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    expected.sort();
    assert_eq!(sent, expected, "each event sent once");
    let sizes: Vec<usize> = api
        .bodies
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|b| b["events"].as_array().map_or(0, Vec::len))
        .collect();
    assert!(sizes.iter().all(|n| *n <= 10), "{sizes:?}");
    let stats = client.stats();
    assert_eq!((stats.captured, stats.delivered), (25, 25));
}

#[tokio::test]
async fn with_the_server_down_flush_and_close_return_in_time_and_name_the_pending() {
    let refusals = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&refusals);
    let client = Client::new(
        Config::new(nowhere())
            .max_queue_events(5)
            .on_refusal(move |e| {
                kept.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(e.code())
            }),
    )
    .expect("client");
    let ids: Vec<Uuid> = (0..5)
        .map(|i| client.capture(event(i)).expect("queued"))
        .collect();
    let refused = client.capture(event(5)).expect_err("full");
    assert!(
        matches!(refused, CaptureError::QueueFull { .. }),
        "{refused:?}"
    );
    let missing = client.capture(json!({"event_type": "x", "unit_type": "user"}));
    assert_eq!(
        missing,
        Err(CaptureError::MissingField { field: "unit_id" })
    );

    let started = std::time::Instant::now();
    let report = client.flush(Duration::from_millis(500)).await;
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(report.pending_ids, ids);
    let report = client.close(Duration::from_millis(300)).await;
    assert_eq!(report.pending(), 5);
    assert_eq!(client.capture(event(6)), Err(CaptureError::Closed));
    let stats = client.stats();
    assert_eq!((stats.captured, stats.refused, stats.invalid), (5, 2, 1));
    assert!(stats.retries > 0);
    assert_eq!(
        *refusals.lock().unwrap_or_else(|p| p.into_inner()),
        vec!["queue_full", "missing_unit_id", "client_closed"]
    );
}

#[tokio::test]
async fn a_dropped_client_leaves_its_events_in_the_spool_for_the_next() {
    let dir = std::env::temp_dir().join(format!("eis-client-test-{}", Uuid::now_v7()));
    let first = Client::new(Config::new(nowhere()).spool(&dir)).expect("client");
    let ids: Vec<Uuid> = (0..20)
        .map(|i| first.capture(event(i)).expect("queued"))
        .collect();
    drop(first);

    let api = FakeApi::start(accept_all).await;
    let second = Client::new(Config::new(&api.url).spool(&dir)).expect("the spool is free");
    assert_eq!(second.stats().recovered, 20);
    let report = second.close(Duration::from_secs(5)).await;
    assert_eq!(report.count("stored"), 20);
    let expected: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    assert_eq!(api.ids(), expected, "the original ids, once each, in order");

    let third = Client::new(Config::new(&api.url).spool(&dir)).expect("client");
    assert_eq!(
        third.stats().recovered,
        0,
        "results were recorded: nothing left"
    );
    drop(third);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn send_confirms_each_event_in_order() {
    let api = FakeApi::start(|body| {
        let n = body["events"].as_array().map_or(0, Vec::len);
        let ids: Vec<Value> = (0..n)
            .map(|i| if i == 1 { Value::Null } else { json!("x") })
            .collect();
        (
            207,
            json!({"errors": [{"index": 1, "error": "invalid_unit_id", "message": "m",
                                 "field": "/unit_id"}], "event_ids": ids, "duplicates": [2]}),
        )
    })
    .await;
    let client = Client::new(Config::new(&api.url)).expect("client");
    let events = vec![event(0), json!({"unit_type": "user"}), event(2), event(3)];
    let results = client.send(events, Duration::from_secs(5)).await;
    assert_eq!(results.len(), 4);
    assert!(matches!(&results[0], Ok(r) if r.outcome == Outcome::Stored { warnings: vec![] }));
    assert_eq!(
        results[1],
        Err(CaptureError::MissingField {
            field: "event_type"
        })
    );
    // The server saw 3 events: the second of those is rejected, the third a duplicate.
    assert!(
        matches!(&results[2], Ok(EventResult { outcome: Outcome::Rejected { field: Some(f), .. }, .. }) if f == "/unit_id")
    );
    assert!(matches!(&results[3], Ok(r) if r.outcome == Outcome::Duplicate { warnings: vec![] }));
    assert_eq!(api.ids().len(), 3, "sent once, nothing resent");

    let down = Client::new(Config::new(nowhere())).expect("client");
    let started = std::time::Instant::now();
    let results = down.send(vec![event(0)], Duration::from_millis(300)).await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(matches!(
        &results[0],
        Ok(EventResult {
            outcome: Outcome::GivenUp { .. },
            ..
        })
    ));
}
