//! Shared by the integration tests: each test gets its own database (migrated), its own
//! queue and bucket on moto, all on the local stack that `make test` starts (`.local/env`).
//! The one fake here, `FaultyProxy`, injects network faults a real server cannot produce on
//! demand; everything else is the real service over a real connection.

pub mod api;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub mod archive;
pub mod events;

use eis_runtime::aws;
use eis_store::{migrate, Db, DbConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A variable of the local stack, with a hint when the stack is not there.
pub fn stack_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: integration tests run against the local stack; use `make test` or `make up && . .local/env`")
    })
}

/// DbConfig for `url` with the timeouts tests want: short enough to see faults quickly, long
/// enough for a connect on a loaded 2-core CI machine (2 s was seen to time out there).
pub fn db_config(url: String) -> DbConfig {
    DbConfig {
        url,
        ca_file: None,
        secret_arn: None,
        connect_timeout: Duration::from_secs(5),
        query_timeout: Duration::from_secs(5),
        idle_probe_after: Duration::from_secs(60),
    }
}

/// Replaces the database name of a postgres URL.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let prefix = match base.rfind('/') {
        Some(i) if i > "postgres://".len() => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{prefix}/{name}?{q}"),
        None => format!("{prefix}/{name}"),
    }
}

fn unique(prefix: &str) -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    format!(
        "{prefix}{secs}_{}",
        &uuid::Uuid::now_v7().simple().to_string()[24..]
    )
}

/// Runs a test resource's cleanup from its `Drop`, also while the test panics: on a runtime of
/// its own in another thread (Drop cannot await, and the test's runtime may be unwinding).
fn clean_up(work: impl std::future::Future<Output = ()> + Send + 'static) {
    let worker = std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            rt.block_on(work);
        }
    });
    let _ = worker.join();
}

/// A fresh, migrated database of its own, dropped with this value (also when the test
/// panics); databases left by killed runs are removed by later runs after an hour.
pub struct TestDb {
    pub name: String,
    pub url: String,
    admin_url: String,
}

impl TestDb {
    pub async fn create() -> TestDb {
        let admin_url = stack_var("DATABASE_URL");
        let name = unique("eis_t_");
        let admin = connect(&admin_url).await;
        remove_stale_databases(&admin).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        let url = with_database(&admin_url, &name);
        let db = Db::new(&db_config(url.clone())).expect("db config");
        migrate::apply(&db).await.expect("migrations apply");
        TestDb {
            name,
            url,
            admin_url,
        }
    }

    pub fn config(&self) -> DbConfig {
        db_config(self.url.clone())
    }

    pub fn db(&self) -> Arc<Db> {
        Arc::new(Db::new(&self.config()).expect("db config"))
    }

    /// A plain client for the test's own queries.
    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.url).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        clean_up(async move {
            if let Ok((admin, connection)) =
                tokio_postgres::connect(&admin_url, tokio_postgres::NoTls).await
            {
                tokio::spawn(connection);
                let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                if let Err(e) = admin.batch_execute(&drop).await {
                    eprintln!("could not drop test database {name}: {e}");
                }
            }
        });
    }
}

/// The rows of `sql` (no parameters) as pairs of its first two columns.
pub async fn pairs<A, B>(client: &tokio_postgres::Client, sql: &str) -> Vec<(A, B)>
where
    A: for<'a> tokio_postgres::types::FromSql<'a>,
    B: for<'a> tokio_postgres::types::FromSql<'a>,
{
    client
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    tokio::spawn(connection);
    client
}

async fn remove_stale_databases(admin: &tokio_postgres::Client) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let rows = admin
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE 'eis\\_t\\_%'",
            &[],
        )
        .await
        .expect("list databases");
    for row in rows {
        let name: String = row.get(0);
        let created: u64 = name
            .trim_start_matches("eis_t_")
            .split('_')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(now);
        if now.saturating_sub(created) > 3600 {
            let _ = admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        }
    }
}

/// AWS SDK configuration from the environment (moto through AWS_ENDPOINT_URL).
pub async fn sdk() -> aws_config::SdkConfig {
    stack_var("AWS_ENDPOINT_URL");
    aws::sdk_config(3, Duration::from_secs(5)).await
}

/// A queue of the test's own with a dead-letter queue after `max_receives` receives; both are
/// deleted with this value.
pub struct TestQueue {
    pub client: aws_sdk_sqs::Client,
    pub url: String,
    pub dlq_url: String,
}

impl TestQueue {
    pub async fn create(max_receives: u32, visibility_secs: u32) -> TestQueue {
        let client = aws::sqs_client(&sdk().await);
        let name = unique("eis-t-").replace('_', "-");
        let dlq_url = client
            .create_queue()
            .queue_name(format!("{name}-dlq"))
            .send()
            .await
            .expect("create dlq")
            .queue_url
            .expect("dlq url");
        let dlq_arn = client
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("dlq attributes")
            .attributes
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                    .cloned()
            })
            .expect("dlq arn");
        let redrive = serde_json::json!({
            "deadLetterTargetArn": dlq_arn,
            "maxReceiveCount": max_receives.to_string(),
        });
        let url = client
            .create_queue()
            .queue_name(&name)
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy,
                redrive.to_string(),
            )
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
                visibility_secs.to_string(),
            )
            .send()
            .await
            .expect("create queue")
            .queue_url
            .expect("queue url");
        TestQueue {
            client,
            url,
            dlq_url,
        }
    }

    /// Receives until the queue answers empty; returns the bodies (and deletes nothing).
    pub async fn receive_all(&self, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
        let mut all = Vec::new();
        loop {
            let out = self
                .client
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await
                .expect("receive");
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                return all;
            }
            all.extend(messages);
        }
    }
}

impl Drop for TestQueue {
    fn drop(&mut self) {
        let (client, urls) = (
            self.client.clone(),
            [self.url.clone(), self.dlq_url.clone()],
        );
        clean_up(async move {
            for url in urls {
                let _ = client.delete_queue().queue_url(url).send().await;
            }
        });
    }
}

/// Empties and deletes a test's bucket when dropped.
pub struct BucketGuard {
    client: aws_sdk_s3::Client,
    name: String,
}

impl Drop for BucketGuard {
    fn drop(&mut self) {
        let (s3, bucket) = (self.client.clone(), self.name.clone());
        clean_up(async move {
            let mut pages = s3.list_objects_v2().bucket(&bucket).into_paginator().send();
            while let Some(Ok(page)) = pages.next().await {
                for key in page.contents().iter().filter_map(|o| o.key()) {
                    let _ = s3.delete_object().bucket(&bucket).key(key).send().await;
                }
            }
            let _ = s3.delete_bucket().bucket(&bucket).send().await;
        });
    }
}

/// A bucket of the test's own: its client, its name, and the guard that removes it.
pub async fn test_bucket() -> (aws_sdk_s3::Client, String, BucketGuard) {
    let client = aws::s3_client(&sdk().await);
    let name = unique("eis-t-").replace('_', "-");
    client
        .create_bucket()
        .bucket(&name)
        .send()
        .await
        .expect("create bucket");
    let guard = BucketGuard {
        client: client.clone(),
        name: name.clone(),
    };
    (client, name, guard)
}

/// A publisher whose queue nothing answers for (connection refused on 127.0.0.1:1).
pub fn unreachable_publisher() -> eis_runtime::SqsPublisher {
    let unreachable = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url("http://127.0.0.1:1")
        .credentials_provider(aws_sdk_sqs::config::SharedCredentialsProvider::new(
            aws_sdk_sqs::config::Credentials::for_tests(),
        ))
        .build();
    eis_runtime::SqsPublisher::new(
        aws::sqs_client(&unreachable),
        "http://127.0.0.1:1/123456789012/nowhere".into(),
        eis_runtime::handoff::SQS_MAX_MESSAGE_BYTES,
    )
}

/// The one fake publisher (SQS cannot be made to refuse chosen entries of one request on
/// demand): it hands the events that `refuse` spares to the real publisher it wraps and
/// reports the others as refused entries, as a partial SendMessageBatch failure does.
pub struct ScriptedPublisher {
    pub inner: eis_runtime::SqsPublisher,
    /// By index in the call's events.
    pub refuse: fn(usize) -> bool,
}

impl eis_runtime::Publish for ScriptedPublisher {
    fn publish<'a>(
        &'a self,
        events: &'a [&'a eis_contract::Encoded],
    ) -> std::pin::Pin<Box<dyn Future<Output = eis_runtime::PublishOutcome> + Send + 'a>> {
        Box::pin(async move {
            let (refused, kept): (Vec<usize>, Vec<usize>) =
                (0..events.len()).partition(|&i| (self.refuse)(i));
            let forwarded: Vec<&eis_contract::Encoded> = kept.iter().map(|&i| events[i]).collect();
            let mut outcome = self.inner.publish(&forwarded).await;
            outcome.published = outcome.published.iter().map(|&j| kept[j]).collect();
            outcome
                .errors
                .extend(refused.iter().map(|i| eis_runtime::PublishError::Refused {
                    id: i.to_string(),
                    code: "InternalError".into(),
                    message: "scripted".into(),
                }));
            outcome
        })
    }
}

/// A TCP forwarder in front of a real server, for faults on demand: `cut()` drops every
/// connection and refuses new ones (the server "goes away"), `restore()` lets them in again;
/// `delay_answers(d)` passes requests through at once but holds each answer for `d` (the
/// server did the work, the client timed out waiting: "timed out but arrived").
pub struct FaultyProxy {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    answer_delay_ms: Arc<std::sync::atomic::AtomicU64>,
    cut_tx: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultyProxy {
    pub async fn start(target: SocketAddr) -> FaultyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let up = Arc::new(AtomicBool::new(true));
        let answer_delay_ms = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (cut_tx, cut_rx) = watch::channel(0u64);
        let task = tokio::spawn(accept_loop(
            listener,
            target,
            Arc::clone(&up),
            Arc::clone(&answer_delay_ms),
            cut_rx,
        ));
        FaultyProxy {
            addr,
            up,
            answer_delay_ms,
            cut_tx,
            task,
        }
    }

    /// Holds every chunk the server sends back for `delay` (zero: no delay).
    pub fn delay_answers(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.answer_delay_ms.store(ms, Ordering::SeqCst);
    }

    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut_tx.send_modify(|n| *n += 1);
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    up: Arc<AtomicBool>,
    answer_delay_ms: Arc<std::sync::atomic::AtomicU64>,
    cut_rx: watch::Receiver<u64>,
) {
    while let Ok((inbound, _)) = listener.accept().await {
        if !up.load(Ordering::SeqCst) {
            drop(inbound);
            continue;
        }
        let mut cut = cut_rx.clone();
        cut.mark_unchanged();
        let delay = Arc::clone(&answer_delay_ms);
        tokio::spawn(async move {
            let Ok(outbound) = TcpStream::connect(target).await else {
                return;
            };
            let (mut from_client, mut to_client) = inbound.into_split();
            let (mut from_server, mut to_server) = outbound.into_split();
            let requests = async {
                let _ = tokio::io::copy(&mut from_client, &mut to_server).await;
                let _ = tokio::io::AsyncWriteExt::shutdown(&mut to_server).await;
            };
            let answers = delayed_copy(&mut from_server, &mut to_client, &delay);
            tokio::select! {
                _ = async { tokio::join!(requests, answers) } => {}
                _ = cut.changed() => {}
            }
        });
    }
}

/// Copies the server's answers to the client, each chunk held for the current delay.
async fn delayed_copy(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    delay_ms: &std::sync::atomic::AtomicU64,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let ms = delay_ms.load(Ordering::SeqCst);
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// The host:port of a postgres URL.
pub fn pg_addr(url: &str) -> SocketAddr {
    let config: tokio_postgres::Config = url.parse().expect("postgres url");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let host = if host == "localhost" {
        "127.0.0.1".into()
    } else {
        host
    };
    format!("{host}:{port}").parse().expect("socket address")
}

/// Polls `check` until it returns Some or `limit` passes (for eventually-consistent state,
/// never for timing assertions).
pub async fn eventually<T, F, Fut>(limit: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The ingest function's configuration for a test's own database and queue.
pub fn ingest_config(db: &TestDb, queue_url: &str) -> ingest::config::Config {
    ingest::config::Config {
        db: db.config(),
        queue_url: queue_url.to_string(),
        max_body_bytes: 5 * 1024 * 1024,
        limits: eis_contract::Limits::default(),
        sqs_max_message_bytes: eis_runtime::handoff::SQS_MAX_MESSAGE_BYTES,
        port: 0,
        db_connections: 2,
        registry_mode: eis_contract::RegistryMode::Flag,
        registry_max_age: Duration::from_secs(60),
        quarantine: Default::default(),
        metrics_namespace: Default::default(),
    }
}

/// The ingest API's state on `db`, publishing through `publisher`, with the real clock and
/// the default limits and registry settings. Its quarantine has no queue (its sends fail
/// at once, which never changes an answer).
pub fn api_state(
    db: &DbConfig,
    publisher: impl eis_runtime::Publish + 'static,
) -> ingest::app::AppState {
    let db = Arc::new(Db::new(db).expect("db"));
    ingest::app::AppState {
        registry: Arc::new(ingest::registry::RegistryCache::new(
            Arc::clone(&db),
            Duration::from_secs(60),
            eis_contract::RegistryMode::Flag,
        )),
        storage: Arc::new(eis_store::Storage::new(db, publisher)),
        quarantine: Arc::new(ingest::quarantine::Quarantine::new(
            unreachable_publisher(),
            Duration::from_millis(500),
        )),
        quarantine_bounds: Default::default(),
        limits: eis_contract::Limits::default(),
        max_body_bytes: 5 << 20,
        metrics_namespace: Default::default(),
        now: chrono::Utc::now,
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

/// Rows of exp.events and how many are not handed off yet (keys in exp.pending_handoffs).
pub async fn stored_counts(db: &TestDb) -> (i64, i64) {
    let row = db
        .client()
        .await
        .query_one(
            "SELECT (SELECT count(*) FROM exp.events),
                    (SELECT coalesce(sum(cardinality(event_ids)), 0)::bigint
                     FROM exp.pending_handoffs)",
            &[],
        )
        .await
        .expect("count");
    (row.get(0), row.get(1))
}

/// (visible, in flight) messages of a queue.
pub async fn depth(queue: &TestQueue, url: &str) -> (u64, u64) {
    let attrs = queue
        .client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(
            aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        )
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .unwrap_or_default();
    let get = |name: aws_sdk_sqs::types::QueueAttributeName| {
        attrs
            .get(&name)
            .and_then(|v| v.parse().ok())
            .unwrap_or_default()
    };
    (
        get(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages),
        get(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

/// Every event of every message on `url` (received, not deleted); quarantine messages are
/// left out.
pub async fn queued_events(queue: &TestQueue, url: &str) -> Vec<eis_contract::Event> {
    let mut events = Vec::new();
    for m in queue.receive_all(url).await {
        let body = m.body().unwrap_or_default();
        if let eis_runtime::handoff::Message::Events(e) =
            eis_runtime::handoff::decode(body).expect("decodes")
        {
            events.extend(e);
        }
    }
    events
}
