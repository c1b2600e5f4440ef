//! Exactly once in the archive, end to end through the ingest API and scheduled archiver runs
//! on the real local stack: an SQS call that timed out although its message arrived (a proxy
//! in front of moto holds SQS's answers past the SDK's timeout: the one fake here, for a
//! fault moto cannot produce on demand), a partial publish (the scripted publisher refuses
//! chosen entries, which SQS cannot be made to do), a function killed between its commit and
//! its publish (a publisher that never answers, then the server aborted), and a property test
//! over any mix of retries, in-batch repeats and conflicting resends.

use std::collections::BTreeMap;
use std::time::Duration;

use archiver::compaction::CompactionPolicy;
use chrono::Utc;
use eis_handoff::{message, SqsPublisher};
use eis_tests::api::answer;
use eis_tests::archive::{hour_ago, policy, Stack};
use eis_tests::events::{EXPERIMENT, VARIANT};
use eis_tests::*;
use ingest::routes::router;
use proptest::prelude::*;
use serde_json::{json, Value};
use tokio::time::Instant;

/// The ingest API on the stack's database, publishing through `sqs`.
async fn api(stack: &Stack, sqs: aws_sdk_sqs::Client) -> (String, tokio::task::JoinHandle<()>) {
    api_with(stack, sqs_publisher(stack, sqs)).await
}

fn sqs_publisher(stack: &Stack, sqs: aws_sdk_sqs::Client) -> SqsPublisher {
    SqsPublisher::new(
        sqs,
        stack.queue().url.clone(),
        message::SQS_MAX_MESSAGE_BYTES,
    )
}

/// The ingest API on the stack's database, publishing through `publisher`.
async fn api_with(
    stack: &Stack,
    publisher: impl eis_handoff::Publish + 'static,
) -> (String, tokio::task::JoinHandle<()>) {
    let state = api_state(&stack.db().config(), publisher);
    serve(router(state)).await
}

/// One scheduled archiver run now; the sweep takes rows at once (no grace).
async fn archive(stack: &Stack, compaction: CompactionPolicy) -> archiver::drain::summary::Summary {
    let mut config = stack.config(compaction);
    config.sweep_grace = Duration::ZERO;
    let archiver = archiver::app::Archiver::from_config(config)
        .await
        .expect("archiver");
    let outcome = archiver
        .run(Utc::now(), Instant::now() + Duration::from_secs(60))
        .await;
    outcome.into_result().expect("archive run")
}

fn no_compaction() -> CompactionPolicy {
    CompactionPolicy {
        max_hours: 0,
        ..policy()
    }
}

/// An event of a settled hour (3 h ago), `variant` telling contents apart by unit_id.
fn event(id: &str, variant: usize, minute: i64) -> Value {
    json!({
        "event_id": id,
        "event_type": "pantry_updated", "unit_type": "user", "unit_id": format!("user-{variant}"),
        "experiments": [{"experiment_id": EXPERIMENT, "variant_id": VARIANT}],
        "timestamp": hour_ago(3, minute).to_rfc3339(),
    })
}

async fn post(http: &reqwest::Client, url: &str, events: &[Value]) -> (u16, Value) {
    let response = http
        .post(format!("{url}/events/batch"))
        .header("content-type", "application/json")
        .body(json!({ "events": events }).to_string())
        .send()
        .await
        .expect("request");
    answer(response).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sqs_call_that_timed_out_but_arrived_is_archived_once() {
    let stack = Stack::create().await;
    let moto: std::net::SocketAddr = stack_var("AWS_ENDPOINT_URL")
        .trim_start_matches("http://")
        .parse()
        .expect("moto address");
    let proxy = FaultyProxy::start(moto).await;
    // The ingest function's SDK settings, with a short attempt timeout, through the proxy.
    let sdk = eis_runtime::aws::sdk_config(2, Duration::from_millis(400)).await;
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&sdk)
            .endpoint_url(format!("http://{}", proxy.addr))
            .build(),
    );
    let (url, server) = api(&stack, sqs).await;
    let http = reqwest::Client::new();
    let events: Vec<Value> = (0..40)
        .map(|i| event(&uuid::Uuid::now_v7().to_string(), i, 10))
        .collect();

    proxy.delay_answers(Duration::from_millis(1500));
    let (status, body) = post(&http, &url, &events).await;
    assert_eq!(status, 200, "{body}");
    // SQS never confirmed: every row is left for the sweep...
    assert_eq!(stored_counts(stack.db()).await, (40, 40));
    proxy.delay_answers(Duration::ZERO);
    // ...yet the messages arrived (each attempt's copy): the queue holds the events too.
    let arrived = eventually(Duration::from_secs(10), || async {
        let depth = stack
            .queue()
            .client
            .get_queue_attributes()
            .queue_url(&stack.queue().url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .ok()?;
        let n: u64 = depth
            .attributes()?
            .get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)?
            .parse()
            .ok()?;
        (n > 0).then_some(n)
    })
    .await;
    assert!(
        arrived.is_some(),
        "the timed-out messages reached the queue"
    );

    // A run without compaction shows the fault: the queue's and the sweep's copies.
    let first = archive(&stack, no_compaction()).await;
    assert!(first.swept == 40 && first.messages > 0, "{first:?}");
    let copies = stack.archived_ids().await;
    assert!(copies.values().any(|(n, _)| *n > 1), "{copies:?}");

    // The scheduled run compacts the settled hour: each acknowledged event once.
    archive(&stack, policy()).await;
    let archived = stack.archived_ids().await;
    let expected: BTreeMap<String, String> = events
        .iter()
        .map(|e| {
            (
                e["event_id"].as_str().unwrap_or_default().to_string(),
                e["unit_id"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let found: BTreeMap<String, String> = archived
        .iter()
        .map(|(id, (n, unit))| {
            assert_eq!(*n, 1, "{id} archived {n} times");
            (id.clone(), unit.clone())
        })
        .collect();
    assert_eq!(found, expected);
    server.abort();
}

/// One request of the property test: a batch of (id index, content variant, minute) picks.
fn sends() -> impl Strategy<Value = Vec<Vec<(usize, usize, i64)>>> {
    let pick = (
        0..4usize,
        0..2usize,
        prop_oneof![Just(10i64), Just(20i64), Just(-50i64)],
    );
    prop::collection::vec(prop::collection::vec(pick, 1..5), 1..6)
}

/// Some entries of a SendMessageBatch refused: the request is still answered as accepted,
/// the refused events stay pending in PostgreSQL and the sweep archives them; every event is
/// archived once.
#[tokio::test]
async fn a_partial_publish_leaves_the_refused_events_to_the_sweep() {
    let stack = Stack::create().await;
    let publisher = ScriptedPublisher {
        inner: sqs_publisher(&stack, stack.queue().client.clone()),
        refuse: |i| i % 3 == 1,
    };
    let (url, server) = api_with(&stack, publisher).await;
    let ids: Vec<String> = (0..6).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let batch: Vec<Value> = ids.iter().map(|id| event(id, 0, 10)).collect();
    let (status, body) = post(&reqwest::Client::new(), &url, &batch).await;
    assert_eq!((status, &body["accepted"]), (200, &json!(6)), "{body}");
    // Refused: indexes 1 and 4. They stay for the sweep; the other four are queued.
    assert_eq!(stored_counts(stack.db()).await, (6, 2));

    let summary = archive(&stack, no_compaction()).await;
    assert_eq!((summary.swept, summary.marked), (2, 2), "{summary:?}");
    assert_eq!(
        summary.events, 6,
        "four from the queue, two swept: {summary:?}"
    );
    assert_eq!(stored_counts(stack.db()).await, (6, 0));
    let archived = stack.archived_ids().await;
    let once: Vec<&String> = archived
        .iter()
        .filter(|(_, (n, _))| *n == 1)
        .map(|(id, _)| id)
        .collect();
    assert_eq!(once.len(), 6, "each archived once: {archived:?}");
    for id in &ids {
        assert!(archived.contains_key(id), "{id} archived");
    }
    server.abort();
}

/// Stands for a function that dies after its commit and before SQS answers: its publish
/// never returns (the one way to stop a request at exactly that point).
struct NeverAnswers;

impl eis_handoff::Publish for NeverAnswers {
    fn publish<'a>(
        &'a self,
        _events: &'a [&'a eis_contract::Encoded],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = eis_handoff::PublishOutcome> + Send + 'a>>
    {
        Box::pin(std::future::pending())
    }
}

/// Killed between commit and publish: the client saw no answer and retries (a duplicate,
/// which is never published again), and the sweep archives each event once.
#[tokio::test]
async fn a_function_killed_between_commit_and_publish_loses_nothing() {
    let stack = Stack::create().await;
    let (dying, server) = api_with(&stack, NeverAnswers).await;
    let ids: Vec<String> = (0..5).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let batch: Vec<Value> = ids.iter().map(|id| event(id, 0, 10)).collect();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    let sent = http
        .post(format!("{dying}/events/batch"))
        .header("content-type", "application/json")
        .body(json!({ "events": batch }).to_string())
        .send()
        .await;
    assert!(
        sent.is_err(),
        "no answer from a function stuck in its publish"
    );
    server.abort();
    assert_eq!(
        stored_counts(stack.db()).await,
        (5, 5),
        "committed, pending"
    );

    let (url, server) = api(&stack, stack.queue().client.clone()).await;
    let (status, body) = post(&reqwest::Client::new(), &url, &batch).await;
    assert_eq!((status, &body["accepted"]), (200, &json!(5)), "{body}");
    assert_eq!(
        body["duplicates"].as_array().map(Vec::len),
        Some(5),
        "{body}"
    );

    let summary = archive(&stack, no_compaction()).await;
    assert_eq!((summary.swept, summary.marked), (5, 5), "{summary:?}");
    assert_eq!(stored_counts(stack.db()).await, (5, 0));
    let archived = stack.archived_ids().await;
    for id in &ids {
        assert_eq!(
            archived.get(id).map(|(n, _)| *n),
            Some(1),
            "{id} archived once"
        );
    }
    server.abort();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// For any mix of retries, in-batch repeats and conflicting resends (other content,
    /// another timestamp, even another hour), the settled archive holds each acknowledged id
    /// exactly once, with the content stored first.
    #[test]
    fn the_settled_archive_holds_each_acknowledged_id_once_with_the_first_content(requests in sends()) {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async move {
            let stack = Stack::create().await;
            let (url, server) = api(&stack, stack.queue().client.clone()).await;
            let http = reqwest::Client::new();
            let ids: Vec<String> = (0..4).map(|_| uuid::Uuid::now_v7().to_string()).collect();
            // id -> the content (variant, minute) stored first.
            let mut first: BTreeMap<String, (usize, i64)> = BTreeMap::new();
            for request in &requests {
                let batch: Vec<Value> = request
                    .iter()
                    .map(|&(i, v, minute)| event(&ids[i], v, minute))
                    .collect();
                let (status, body) = post(&http, &url, &batch).await;
                assert!(matches!(status, 200 | 207 | 400), "{status} {body}");
                let listed = |key: &str| -> Vec<u64> {
                    body[key]
                        .as_array()
                        .map(|d| d.iter().filter_map(|x| x.as_u64().or_else(|| x["index"].as_u64())).collect())
                        .unwrap_or_default()
                };
                let (duplicates, errors) = (listed("duplicates"), listed("errors"));
                for (index, &(i, v, minute)) in request.iter().enumerate() {
                    let accepted = !body["event_ids"][index].is_null();
                    let duplicate = duplicates.contains(&(index as u64));
                    match first.get(&ids[i]) {
                        None => {
                            assert!(accepted && !duplicate, "a new id is stored: {body}");
                            first.insert(ids[i].clone(), (v, minute));
                        }
                        Some(&kept) if kept == (v, minute) => {
                            assert!(accepted && duplicate, "a retry is a duplicate: {body}");
                        }
                        Some(_) => {
                            assert!(!accepted && errors.contains(&(index as u64)), "{body}");
                            let error = body["errors"]
                                .as_array()
                                .and_then(|e| e.iter().find(|e| e["index"] == index))
                                .map(|e| e["error"].clone());
                            assert_eq!(error, Some(json!("event_id_conflict")), "{body}");
                        }
                    }
                }
            }
            let first: BTreeMap<String, String> = first
                .into_iter()
                .map(|(id, (v, _))| (id, format!("user-{v}")))
                .collect();
            archive(&stack, policy()).await;
            let found: BTreeMap<String, String> = stack
                .archived_ids()
                .await
                .into_iter()
                .map(|(id, (n, unit))| {
                    assert_eq!(n, 1, "{id} archived {n} times");
                    (id, unit)
                })
                .collect();
            assert_eq!(found, first);
            server.abort();
        });
    }
}
