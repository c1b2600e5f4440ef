//! Compaction against the real local stack (PostgreSQL, moto as S3 and SQS): a settled hour's
//! files become files holding each event once, the first stored copy winning; twice at once,
//! late files, unsettled hours and sharding keep that true.

use std::collections::BTreeSet;

use archiver::archive::bucket::{self, Kind};
use archiver::archive::digest;
use archiver::archive::partition::HourPartition;
use archiver::compaction::compact::{self, HourOutcome, DIGEST_KEY};
use archiver::drain::summary::Summary;
use eis_tests::archive::*;
use tokio::time::Instant;

fn deadline() -> Instant {
    Instant::now() + std::time::Duration::from_secs(60)
}

/// One compaction of the settled hours now; no error expected.
async fn compact_now(archiver: &archiver::app::Archiver) -> compact::CompactionSummary {
    let (summary, errors) = compact::compact_settled(
        &archiver.compaction_job(),
        &Default::default(),
        chrono::Utc::now(),
        deadline(),
        uuid::Uuid::now_v7(),
    )
    .await;
    assert!(errors.is_empty(), "{errors:?}");
    summary
}

/// The hour's files, and whether they still need compacting.
async fn folder(stack: &Stack, hour: HourPartition) -> (Vec<bucket::ArchiveFile>, bool) {
    let files = stack.archive().list(&hour.folder()).await.expect("list");
    let needs = compact::needs_compaction(&files);
    (files, needs)
}

fn ids(events: &[eis_contract::Event]) -> BTreeSet<String> {
    events.iter().map(|e| e.event_id.to_string()).collect()
}

#[tokio::test]
async fn duplicates_across_raw_files_compact_to_the_first_copy_of_each() {
    let stack = Stack::create().await;
    let archiver = stack.archiver(policy()).await;
    let t = hour_ago(5, 10);
    let hour = HourPartition::of(t);
    let events = distinct_events(150, t);
    let at = |secs| t + chrono::Duration::seconds(secs);
    // a: 0..100 received late; b: 50..150 early; c: all, as early as b but written after it.
    let a = write_raw(&archiver, &events[..100], at(10), "copy-a").await;
    let b = write_raw(&archiver, &events[50..], at(5), "copy-b").await;
    let c = write_raw(&archiver, &events, at(5), "copy-c").await;
    assert!(b < c, "keys are time-ordered");

    let s = compact_now(&archiver).await;
    assert_eq!((s.hours, s.files_in, s.files_out), (1, 3, 1), "{s:?}");
    assert_eq!(
        (s.events_in, s.events_out, s.duplicates_dropped),
        (350, 150, 200)
    );

    let archived = stack.archived_ids().await;
    assert_eq!(
        archived.keys().cloned().collect::<BTreeSet<_>>(),
        ids(&events)
    );
    for (i, e) in events.iter().enumerate() {
        let (count, unit) = &archived[&e.event_id.to_string()];
        assert_eq!(*count, 1);
        // Smallest received_at first, then the smallest key.
        let expected = if i < 50 { "copy-c" } else { "copy-b" };
        assert_eq!(unit, expected, "event {i}");
    }
    let (files, needs) = folder(&stack, hour).await;
    assert!(!needs);
    assert!(files
        .iter()
        .all(|f| matches!(f.kind, Kind::Compacted { .. })));
    let keys: Vec<String> = files.iter().map(|f| f.key.clone()).collect();
    for old in [a, b, c] {
        assert!(!keys.contains(&old), "{old} deleted");
    }
    // The hour's record is cleared; a second run finds nothing to do.
    let pending = archiver
        .hours
        .pending(chrono::Utc::now(), 100, std::time::Duration::ZERO)
        .await
        .expect("pending");
    assert!(pending.is_empty(), "{pending:?}");
    let again = compact::compact_hour(
        &archiver.compaction_job(),
        &Default::default(),
        hour,
        deadline(),
        uuid::Uuid::now_v7(),
        false,
    )
    .await;
    assert_eq!(again.expect("compact"), HourOutcome::AlreadyCompact);
}

#[tokio::test]
async fn two_compactions_at_once_leave_each_event_once() {
    let stack = Stack::create().await;
    let archiver = stack.archiver(policy()).await;
    let t = hour_ago(4, 30);
    let hour = HourPartition::of(t);
    let events = distinct_events(300, t);
    for (n, copy) in ["one", "two", "three"].iter().enumerate() {
        let from = n * 50;
        write_raw(&archiver, &events[from..], t, copy).await;
    }
    let compaction = archiver.compaction_job();
    let none = Default::default();
    let run = |_: u8| {
        compact::compact_hour(
            &compaction,
            &none,
            hour,
            deadline(),
            uuid::Uuid::now_v7(),
            false,
        )
    };
    let (first, second) = tokio::join!(run(1), run(2));
    for outcome in [first, second] {
        match outcome.expect("no error") {
            HourOutcome::Compacted { .. } | HourOutcome::Aborted(_) => {}
            other => panic!("{other:?}"),
        }
    }
    stack.assert_each_once(&events).await;
    assert!(!folder(&stack, hour).await.1, "one complete generation");
}

#[tokio::test]
async fn a_late_raw_file_is_merged_by_the_next_compaction() {
    let stack = Stack::create().await;
    let archiver = stack.archiver(policy()).await;
    let t = hour_ago(6, 0);
    let hour = HourPartition::of(t);
    let events = distinct_events(120, t);
    write_raw(&archiver, &events[..80], t, "early").await;
    write_raw(&archiver, &events[..80], t, "again").await;
    let s = compact_now(&archiver).await;
    assert_eq!(s.hours, 1, "{s:?}");
    let first: Vec<String> = folder(&stack, hour)
        .await
        .0
        .into_iter()
        .map(|f| f.key)
        .collect();

    // Late: 40 new events and 20 copies of compacted ones.
    write_raw(
        &archiver,
        &events[60..],
        t + chrono::Duration::minutes(1),
        "late",
    )
    .await;
    assert!(folder(&stack, hour).await.1, "a raw file needs compacting");
    let s = compact_now(&archiver).await;
    assert_eq!(
        (s.hours, s.events_in, s.events_out, s.duplicates_dropped),
        (1, 140, 120, 20)
    );
    stack.assert_each_once(&events).await;
    let (files, needs) = folder(&stack, hour).await;
    assert!(!needs);
    assert!(
        files.iter().all(|f| !first.contains(&f.key)),
        "a new generation"
    );
}

#[tokio::test]
async fn an_unsettled_hour_is_left_alone() {
    let stack = Stack::create().await;
    let archiver = stack.archiver(policy()).await;
    // Ended 90 minutes ago at most: not settled with 2 h.
    let t = hour_ago(1, 0);
    let hour = HourPartition::of(t);
    let events = distinct_events(20, t);
    write_raw(&archiver, &events, t, "a").await;
    write_raw(&archiver, &events, t, "b").await;
    let before = folder(&stack, hour).await.0;
    let s = compact_now(&archiver).await;
    assert_eq!(s, compact::CompactionSummary::default());
    assert_eq!(folder(&stack, hour).await.0, before);
    let pending = archiver
        .hours
        .pending(
            chrono::Utc::now() + chrono::Duration::hours(1),
            10,
            std::time::Duration::ZERO,
        )
        .await
        .expect("pending");
    assert_eq!(pending.len(), 1, "still recorded");
}

#[tokio::test]
async fn sharded_compaction_keeps_the_same_ids_with_bounded_files() {
    let stack = Stack::create().await;
    let mut small = policy();
    small.shard_events = 40;
    let archiver = stack.archiver(small).await;
    let t = hour_ago(3, 45);
    let hour = HourPartition::of(t);
    let events = distinct_events(200, t);
    write_raw(&archiver, &events, t, "a").await;
    write_raw(&archiver, &events[100..], t, "b").await;
    let outcome = compact::compact_hour(
        &archiver.compaction_job(),
        &Default::default(),
        hour,
        deadline(),
        uuid::Uuid::now_v7(),
        false,
    )
    .await
    .expect("compact");
    // 300 rows in, at most 40 per shard: 8 shards.
    let HourOutcome::Compacted {
        files_out,
        events_out,
        ..
    } = outcome
    else {
        panic!("{outcome:?}");
    };
    assert_eq!((files_out, events_out), (8, 200));
    stack.assert_each_once(&events).await;
    // The shards' digests add up to the digest of all the ids.
    let (files, needs) = folder(&stack, hour).await;
    assert!(!needs && files.len() == 8);
    let mut total = digest::IdDigest::default();
    for f in &files {
        let meta = stack
            .archive()
            .footer(f)
            .await
            .expect("footer")
            .expect("exists");
        let text = bucket::metadata_value(&meta, DIGEST_KEY).expect("digest recorded");
        total = digest::merge(total, digest::from_text(text).expect("digest"));
    }
    let mut expected = digest::IdDigest::default();
    for id in ids(&events) {
        digest::add(&mut expected, &id);
    }
    assert_eq!(total, expected);
}

#[tokio::test]
async fn a_scheduled_run_compacts_the_settled_hours_it_wrote() {
    let stack = Stack::create().await;
    let archiver = stack.archiver(policy()).await;
    let t = hour_ago(5, 20);
    let events = distinct_events(60, t);
    // The same events queued twice (a publish that timed out but arrived, then retried).
    publish_all(stack.queue(), &events, SMALL_MESSAGES).await;
    publish_all(stack.queue(), &events, SMALL_MESSAGES).await;
    let outcome = archiver.run(chrono::Utc::now(), deadline()).await;
    let summary: Summary = outcome.into_result().expect("run");
    assert_eq!(summary.events, 120);
    let c = &summary.compaction;
    assert_eq!(
        (c.hours, c.events_out, c.duplicates_dropped),
        (1, 60, 60),
        "{summary:?}"
    );
    stack.assert_each_once(&events).await;
    assert_eq!(stack.objects().await.len(), 1);
}
