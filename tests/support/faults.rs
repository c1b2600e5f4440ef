//! The fakes, each for a fault that a real service cannot produce on demand: a publisher whose
//! queue nothing answers, a publisher that refuses chosen entries (a partial
//! SendMessageBatch failure), and a TCP proxy that cuts connections or delays answers.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use eis_runtime::aws as clients;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A publisher whose queue nothing answers for (connection refused on 127.0.0.1:1).
pub fn unreachable_publisher() -> eis_handoff::SqsPublisher {
    let unreachable = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url("http://127.0.0.1:1")
        .credentials_provider(aws_sdk_sqs::config::SharedCredentialsProvider::new(
            aws_sdk_sqs::config::Credentials::for_tests(),
        ))
        .build();
    eis_handoff::SqsPublisher::new(
        clients::sqs_client(&unreachable),
        "http://127.0.0.1:1/123456789012/nowhere".into(),
        eis_handoff::message::SQS_MAX_MESSAGE_BYTES,
    )
}

/// The one fake publisher (SQS cannot be made to refuse chosen entries of one request on
/// demand): it hands the events that `refuse` spares to the real publisher it wraps and
/// reports the others as refused entries, as a partial SendMessageBatch failure does.
pub struct ScriptedPublisher {
    pub inner: eis_handoff::SqsPublisher,
    /// By index in the call's events.
    pub refuse: fn(usize) -> bool,
}

impl eis_handoff::Publish for ScriptedPublisher {
    fn publish<'a>(
        &'a self,
        events: &'a [&'a eis_contract::Encoded],
    ) -> std::pin::Pin<Box<dyn Future<Output = eis_handoff::PublishOutcome> + Send + 'a>> {
        Box::pin(async move {
            let (refused, kept): (Vec<usize>, Vec<usize>) =
                (0..events.len()).partition(|&i| (self.refuse)(i));
            let forwarded: Vec<&eis_contract::Encoded> = kept.iter().map(|&i| events[i]).collect();
            let mut outcome = self.inner.publish(&forwarded).await;
            outcome.published = outcome.published.iter().map(|&j| kept[j]).collect();
            outcome
                .errors
                .extend(refused.iter().map(|i| eis_handoff::PublishError::Refused {
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

    /// A proxy in front of the PostgreSQL of `database_url`, and that URL through the proxy.
    pub async fn before_database(database_url: &str) -> (FaultyProxy, String) {
        let target = crate::pg_addr(database_url);
        let proxy = FaultyProxy::start(target).await;
        let url = database_url.replace(&target.to_string(), &proxy.addr.to_string());
        (proxy, url)
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
