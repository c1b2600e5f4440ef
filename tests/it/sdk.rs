//! The Rust SDK (sdk/rust, crate eis-client) against the real ingest API, PostgreSQL and SQS:
//! faults on the way (PostgreSQL gone, the server restarted, no server at all), a batch with
//! invalid events, and a spool taken over by a new client. "Exactly once" is counted in
//! exp.events by event_id.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eis_client::{CaptureError, Client, Config, EventResult, Outcome, Uuid};
use eis_tests::api::*;
use eis_tests::events::*;
use eis_tests::*;
use ingest::routes::router;
use serde_json::json;

/// Long enough for any retry here to end: the server's Retry-After is 5 s.
const SETTLE: Duration = Duration::from_secs(90);

/// Every stored event_id, and the row count (equal when each is stored once).
async fn stored(db: &TestDb) -> (usize, HashSet<Uuid>) {
    let rows = db
        .client()
        .await
        .query("SELECT event_id FROM exp.events", &[])
        .await
        .expect("select event ids");
    let ids: HashSet<Uuid> = rows.iter().map(|r| r.get(0)).collect();
    (rows.len(), ids)
}

/// Captures `n` events from `first` on, pausing `pause` every `every` events (so that the
/// capture spans the fault), and gives their ids and the longest single capture.
async fn capture_spread(
    client: &Client,
    first: usize,
    n: usize,
    every: usize,
    pause: Duration,
) -> (Vec<Uuid>, Duration) {
    let mut ids = Vec::with_capacity(n);
    let mut longest = Duration::ZERO;
    for i in first..first + n {
        let started = Instant::now();
        let id = client.capture(swap_event(i)).expect("captured");
        longest = longest.max(started.elapsed());
        ids.push(id);
        if (i + 1) % every == 0 {
            tokio::time::sleep(pause).await;
        }
    }
    (ids, longest)
}

async fn assert_each_stored_once(db: &TestDb, captured: &[Uuid]) {
    let (rows, ids) = stored(db).await;
    assert_eq!(rows, captured.len(), "one row per captured event");
    let expected: HashSet<Uuid> = captured.iter().copied().collect();
    assert_eq!(expected.len(), captured.len(), "captured ids are distinct");
    assert_eq!(ids, expected, "exactly the captured events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_gone_for_seconds_loses_nothing_and_never_blocks_capture() {
    let db = TestDb::create().await;
    let queue = TestQueue::create(5, 30).await;
    let (proxy, proxied_url) = FaultyProxy::before_database(&db.url).await;
    let mut config = ingest_config(&db, &queue.url);
    config.db.url = proxied_url;
    let state = ingest::app::state(&config).await.expect("state");
    let (url, server) = serve(router(state)).await;
    let client =
        Client::new(Config::new(&url).flush_interval(Duration::from_millis(100))).expect("client");

    let (mut ids, before) = capture_spread(&client, 0, 1000, 100, Duration::from_millis(20)).await;
    proxy.cut();
    // About 3 s of captures while PostgreSQL is unreachable.
    let (during, longest) =
        capture_spread(&client, 1000, 3000, 30, Duration::from_millis(30)).await;
    proxy.restore();
    let (after, last) = capture_spread(&client, 4000, 1000, 100, Duration::from_millis(20)).await;
    ids.extend(during.iter().chain(&after));

    let report = client.flush(SETTLE).await;
    assert_eq!(report.pending(), 0, "{report:?}");
    assert!(report.results.iter().all(|r| r.outcome.delivered()));
    assert_each_stored_once(&db, &ids).await;
    let stats = client.stats();
    assert_eq!(
        (stats.captured, stats.delivered, stats.refused),
        (5000, 5000, 0)
    );
    assert!(stats.retries > 0, "the outage was seen: {stats:?}");
    let longest = before.max(longest).max(last);
    eprintln!("longest capture: {longest:?}; {stats:?}");
    // Capture never waits on the network: a scheduling hiccup on a busy 2-core machine is
    // the most it can take, far below any request (PostgreSQL's timeout is 5 s).
    assert!(longest < Duration::from_millis(250), "{longest:?}");
    server.abort();
}

/// The ingest API in a runtime of its own, so that stopping it closes every connection (a
/// process that exits), on `addr` (0: any port).
struct OwnServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OwnServer {
    fn start(config: ingest::config::Config, addr: SocketAddr) -> OwnServer {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, bound) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let state = ingest::app::state(&config).await.expect("state");
                let socket = tokio::net::TcpSocket::new_v4().expect("socket");
                // The old server's connections may sit in TIME_WAIT on this port.
                socket.set_reuseaddr(true).expect("reuseaddr");
                socket.bind(addr).expect("bind the same port again");
                let listener = socket.listen(1024).expect("listen");
                let _ = ready.send(listener.local_addr().expect("addr"));
                tokio::select! {
                    _ = axum::serve(listener, router(state)) => {}
                    _ = stopped => {}
                }
            });
            // The runtime goes here, and every connection task with it.
        });
        let addr = bound
            .recv_timeout(Duration::from_secs(30))
            .expect("the server started");
        OwnServer {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_stopped_and_restarted_mid_stream_stores_each_event_once() {
    let db = TestDb::create().await;
    let queue = TestQueue::create(5, 30).await;
    let config = ingest_config(&db, &queue.url);
    let mut server = OwnServer::start(config.clone(), "127.0.0.1:0".parse().expect("addr"));
    let addr = server.addr;
    let client = Client::new(
        Config::new(format!("http://{addr}"))
            .flush_at(50)
            .flush_interval(Duration::from_millis(50)),
    )
    .expect("client");

    let (mut ids, _) = capture_spread(&client, 0, 1000, 50, Duration::from_millis(10)).await;
    server.stop();
    let (down, _) = capture_spread(&client, 1000, 2000, 50, Duration::from_millis(25)).await;
    let mut server = OwnServer::start(config, addr);
    let (up, _) = capture_spread(&client, 3000, 1000, 50, Duration::from_millis(10)).await;
    ids.extend(down.iter().chain(&up));

    let report = client.flush(SETTLE).await;
    assert_eq!(report.pending(), 0, "{report:?}");
    assert_each_stored_once(&db, &ids).await;
    let stats = client.stats();
    assert_eq!(stats.delivered, 4000, "{stats:?}");
    assert!(stats.retries > 0, "the restart was seen: {stats:?}");
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_server_flush_returns_in_time_and_a_full_queue_refuses_at_once() {
    // A server that was there and is gone: its port refuses connections.
    let db = TestDb::create().await;
    let queue = TestQueue::create(5, 30).await;
    let mut server = OwnServer::start(
        ingest_config(&db, &queue.url),
        "127.0.0.1:0".parse().expect("addr"),
    );
    server.stop();
    let url = format!("http://{}", server.addr);
    let client = Client::new(Config::new(&url).max_queue_events(1000)).expect("client");
    let ids: Vec<Uuid> = (0..1000)
        .map(|i| client.capture(swap_event(i)).expect("room"))
        .collect();
    let started = Instant::now();
    let refused = client.capture(swap_event(1000));
    let took = started.elapsed();
    assert!(
        matches!(refused, Err(CaptureError::QueueFull { .. })),
        "{refused:?}"
    );
    assert!(
        took < Duration::from_millis(50),
        "refused at once: {took:?}"
    );
    assert_eq!(client.stats().refused, 1);

    let started = Instant::now();
    let report = client.flush(Duration::from_secs(2)).await;
    let took = started.elapsed();
    assert!(took < Duration::from_millis(2500), "{took:?}");
    assert_eq!(report.pending(), 1000);
    assert_eq!(report.pending_ids, ids);
    let report = client.close(Duration::from_secs(1)).await;
    assert_eq!(report.pending(), 1000, "nothing delivered, nothing claimed");
}

#[tokio::test]
async fn invalid_events_are_reported_with_code_and_field_and_never_resent() {
    let app = App::start().await;
    let results = Arc::new(Mutex::new(Vec::<EventResult>::new()));
    let kept = Arc::clone(&results);
    let client = Client::new(Config::new(&app.url).on_result(move |r| {
        kept.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(r.clone())
    }))
    .expect("client");
    let mut bad_variant = swap_event(1);
    bad_variant["experiments"][0]["variant_id"] = json!("not-a-uuid");
    let mut future = swap_event(2);
    future["timestamp"] = json!(ts(chrono::Duration::hours(1)));
    let mut valid = Vec::new();
    for i in 10..20 {
        valid.push(client.capture(swap_event(i)).expect("captured"));
    }
    let bad_variant = client.capture(bad_variant).expect("captured");
    let future = client.capture(future).expect("captured");

    let report = client.flush(SETTLE).await;
    assert_eq!(report.pending(), 0);
    let by_id = |id: Uuid| {
        report
            .results
            .iter()
            .find(|r| r.event_id == id)
            .map(|r| r.outcome.clone())
    };
    assert!(
        matches!(by_id(bad_variant), Some(Outcome::Rejected { code, field, .. })
            if code == "invalid_variant_id" && field.as_deref() == Some("/experiments/0/variant_id")),
        "{:?}",
        by_id(bad_variant)
    );
    assert!(
        matches!(by_id(future), Some(Outcome::Rejected { code, field, .. })
            if code == "future_timestamp" && field.as_deref() == Some("/timestamp")),
        "{:?}",
        by_id(future)
    );
    assert!(valid
        .iter()
        .all(|id| by_id(*id).as_ref().is_some_and(Outcome::delivered)));
    let stats = client.stats();
    assert_eq!(
        (stats.delivered, stats.rejected, stats.retries),
        (10, 2, 0),
        "rejections are final: nothing resent"
    );
    assert_eq!(
        results.lock().unwrap_or_else(|p| p.into_inner()).len(),
        12,
        "one callback per event"
    );
    assert_each_stored_once(&app.db, &valid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spool_left_by_a_dropped_client_is_delivered_once_by_the_next() {
    let app = App::start().await;
    let dir = std::env::temp_dir().join(format!("eis-sdk-spool-{}", Uuid::now_v7()));
    // Batches of 300 go while capture runs; the last 100 wait for an interval that never
    // comes: the drop finds events sent, in flight and waiting.
    let first = Client::new(
        Config::new(&app.url)
            .flush_at(300)
            .max_batch_events(300)
            .flush_interval(Duration::from_secs(60))
            .spool(&dir),
    )
    .expect("client");
    let ids: Vec<Uuid> = (0..1000)
        .map(|i| first.capture(swap_event(i)).expect("captured"))
        .collect();
    drop(first);

    let second = Client::new(Config::new(&app.url).spool(&dir)).expect("the spool is free");
    let recovered = second.stats().recovered;
    assert!(recovered >= 100, "the waiting ones at least: {recovered}");
    let report = second.close(SETTLE).await;
    assert_eq!(report.pending(), 0, "{report:?}");
    assert_eq!(report.results.len() as u64, recovered);
    assert!(report.results.iter().all(|r| r.outcome.delivered()));
    assert!(
        report.results.iter().all(|r| ids.contains(&r.event_id)),
        "the original ids"
    );
    assert_each_stored_once(&app.db, &ids).await;

    let third = Client::new(Config::new(&app.url).spool(&dir)).expect("client");
    assert_eq!(third.stats().recovered, 0, "nothing left in the spool");
    drop(third);
    let _ = std::fs::remove_dir_all(&dir);
}
