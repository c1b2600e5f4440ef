//! Several archiver runs at once, against the real local stack (PostgreSQL, moto as S3 and
//! SQS): what the fan-out starts when the queue is deep. Four runs drain one deep queue
//! together; nothing is lost, and once the settled hours are compacted nothing is archived
//! twice. The fan-out itself reads the real queue's depth; its invocations go to a recording
//! stand-in, as the local stack cannot run Lambda.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use archiver::compaction::CompactionPolicy;
use archiver::drain::fanout::{FanoutError, FanoutSummary, StartWorker, DRAIN_INPUT};
use chrono::Utc;
use eis_tests::archive::{distinct_events, hour_ago, publish_all, Stack, SMALL_MESSAGES};
use eis_tests::depth;
use tokio::time::Instant;

#[tokio::test]
async fn four_runs_at_once_lose_nothing_and_compaction_leaves_each_event_once() {
    let stack = Stack::create().await;
    // Three settled hours (compacted by the runs) and the current one (left raw).
    let mut sent = Vec::new();
    // Minute 0 of the current hour: never ahead of the clock (minute 7 was, in an hour's
    // first minutes, beyond the contract's 300 s for future timestamps).
    for (hours_ago, minute, n) in [(5, 7, 900), (4, 7, 900), (3, 7, 900), (0, 0, 300)] {
        sent.extend(distinct_events(n, hour_ago(hours_ago, minute)));
    }
    publish_all(stack.queue(), &sent, SMALL_MESSAGES).await;
    let (queued, _) = depth(stack.queue(), &stack.queue().url).await;
    assert!(queued > 100, "{queued} messages: a deep queue");

    // The production write window (a record is not cleared while a run may still upload
    // into its hour): the runs compact while the others are still writing raw files.
    let policy = CompactionPolicy::default();
    let mut archivers = Vec::new();
    for _ in 0..4 {
        let mut archiver = stack.archiver(policy).await;
        // One receive at a time each: the runs interleave instead of the first one
        // taking the whole queue.
        archiver.config.receive_concurrency = 1;
        archivers.push(archiver);
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    // Four invocations at once, each with its own clients and database connection.
    let [a, b, c, d] = &archivers[..] else {
        unreachable!("four archivers")
    };
    let (a, b, c, d) = tokio::join!(
        a.run(Utc::now(), deadline),
        b.run(Utc::now(), deadline),
        c.run(Utc::now(), deadline),
        d.run(Utc::now(), deadline),
    );
    let outcomes = [a, b, c, d];

    let mut messages = 0;
    for outcome in &outcomes {
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        assert_eq!(outcome.summary.failed_files, 0);
        // Every message a run took, SQS confirmed deleting.
        assert_eq!(outcome.summary.failed_deletes, 0);
        assert_eq!(outcome.summary.deleted, outcome.summary.messages);
        messages += outcome.summary.messages;
    }
    let working = outcomes.iter().filter(|o| o.summary.messages > 0).count();
    assert!(working > 1, "the runs shared the queue: {working} received");
    assert!(messages as u64 >= queued, "{messages} of {queued} messages");
    // Nothing is left to receive. (Not "nothing in flight": moto 5's DeleteMessageBatch is not
    // atomic, and two at once can put a message the other deleted back in flight; seen here
    // with 40 concurrent deletes of 400 received messages, 10 came back. SQS has no such race.)
    assert_eq!(depth(stack.queue(), &stack.queue().url).await.0, 0);

    // Nothing lost: every event is in the archive at least once.
    let archived = stack.archived_ids().await;
    let expected: BTreeSet<String> = sent.iter().map(|e| e.event_id.to_string()).collect();
    let found: BTreeSet<String> = archived.keys().cloned().collect();
    assert_eq!(found, expected, "every event archived");

    // One more run, alone, compacts what the concurrent ones left (raw files written into
    // an hour after another run had compacted it); the current hour is not settled yet.
    let last = stack.archiver(policy).await.run(Utc::now(), deadline).await;
    assert!(last.errors.is_empty(), "{:?}", last.errors);
    let settled: Vec<_> = sent
        .iter()
        .filter(|e| e.timestamp < hour_ago(2, 0))
        .cloned()
        .collect();
    let archived = stack.archived_ids().await;
    let repeated: Vec<&String> = settled
        .iter()
        .map(|e| e.event_id.to_string())
        .filter_map(|id| archived.get_key_value(&id).filter(|(_, (n, _))| *n != 1))
        .map(|(id, _)| id)
        .collect();
    assert!(
        repeated.is_empty(),
        "settled events archived more than once: {} of {}",
        repeated.len(),
        settled.len()
    );
    assert_eq!(settled.len(), 2700);
}

/// Records the drain workers a run starts, or refuses them (stands in for Lambda).
#[derive(Clone, Default)]
struct Workers {
    started: Arc<Mutex<Vec<&'static str>>>,
    refuse: bool,
}

impl StartWorker for Workers {
    fn start<'a>(
        &'a self,
        input: &'static str,
    ) -> Pin<Box<dyn Future<Output = Result<(), FanoutError>> + Send + 'a>> {
        Box::pin(async move {
            if self.refuse {
                return Err(FanoutError::Invoke {
                    function: "archiver:live".into(),
                    cause: "TooManyRequestsException".into(),
                });
            }
            self.started.lock().expect("lock").push(input);
            Ok(())
        })
    }
}

#[tokio::test]
async fn a_deep_queue_starts_drain_workers_up_to_the_bound_and_workers_start_none() {
    let stack = Stack::create().await;
    let sent = distinct_events(400, Utc::now());
    publish_all(stack.queue(), &sent, SMALL_MESSAGES).await;
    let (queued, _) = depth(stack.queue(), &stack.queue().url).await;
    assert!(queued > 20, "{queued} messages");

    let recorded = Workers::default();
    let mut archiver = stack.archiver(CompactionPolicy::default()).await;
    // Every message a run's worth: a scheduled run would start the most workers allowed.
    archiver.config.fanout.run_capacity_messages = 1;
    archiver.config.fanout.max_concurrency = 3;
    archiver.workers = Some(Box::new(recorded.clone()));
    let deadline = Instant::now() + Duration::from_secs(60);

    // A drain worker never fans out, whatever the depth.
    let worker = archiver.drain(Utc::now(), deadline).await;
    assert!(worker.errors.is_empty(), "{:?}", worker.errors);
    assert_eq!(worker.summary.fanout, FanoutSummary::default());
    assert!(recorded.started.lock().expect("lock").is_empty());
    assert_eq!(worker.summary.events, sent.len());

    let more = distinct_events(400, Utc::now());
    publish_all(stack.queue(), &more, SMALL_MESSAGES).await;
    let (queued, _) = depth(stack.queue(), &stack.queue().url).await;
    // Ten runs' worth, bounded by max_concurrency.
    archiver.config.fanout.run_capacity_messages = queued / 10;
    let run = archiver.run(Utc::now(), deadline).await;
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    let fanout = &run.summary.fanout;
    assert_eq!(fanout.queue_depth, Some(queued));
    assert_eq!((fanout.workers_started, fanout.workers_failed), (2, 0));
    assert_eq!(
        *recorded.started.lock().expect("lock"),
        vec![DRAIN_INPUT; 2],
        "max_concurrency 3: this run and two workers"
    );
    assert_eq!(run.summary.events, more.len(), "the run drains as well");

    // Refused invocations are counted, and the run goes on without them.
    let again = distinct_events(400, Utc::now());
    publish_all(stack.queue(), &again, SMALL_MESSAGES).await;
    archiver.workers = Some(Box::new(Workers {
        refuse: true,
        ..Workers::default()
    }));
    let run = archiver.run(Utc::now(), deadline).await;
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    assert_eq!(
        (
            run.summary.fanout.workers_started,
            run.summary.fanout.workers_failed
        ),
        (0, 2)
    );
    assert_eq!(run.summary.events, again.len());
    assert_eq!(depth(stack.queue(), &stack.queue().url).await, (0, 0));
}
