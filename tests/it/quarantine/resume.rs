//! Restore in bounded chunks (docs/quarantine.md, "Restore"): an hour larger than one
//! invocation completes over several, each going on where the last stopped, with exactly the
//! hour's events; a file that compaction removes while the hour is read is never skipped.

use std::collections::BTreeSet;

use archiver::archive::event_parquet::{self, EventColumns};
use archiver::archive::partition::{hours_between, HourPartition};
use archiver::recovery::hour_stream::{HourStream, Next};
use archiver::recovery::restore::{self, RESTORE_CHUNK};
use chrono::{DateTime, Utc};
use eis_contract::Event;
use eis_tests::archive::{distinct_events, hour_ago, policy, write_raw, Stack};
use tokio::time::Instant;
use uuid::Uuid;

/// The events of exp.events whose timestamp is in `hour`.
async fn stored_in(stack: &Stack, hour: HourPartition) -> Vec<Uuid> {
    let end = hour.start() + chrono::Duration::hours(1);
    stack
        .db
        .client()
        .await
        .query(
            "SELECT event_id FROM exp.events WHERE \"timestamp\" >= $1 AND \"timestamp\" < $2",
            &[&hour.start(), &end],
        )
        .await
        .expect("ids")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn with_partition(stack: &Stack, at: DateTime<Utc>) {
    stack
        .db
        .client()
        .await
        .execute("SELECT exp.ensure_day_partition($1)", &[&at.date_naive()])
        .await
        .expect("partition");
}

#[tokio::test]
async fn an_hour_larger_than_an_invocation_is_restored_over_several() {
    let stack = Stack::create().await;
    let archiver = stack.archiver(policy()).await;
    let at = hour_ago(3, 10);
    with_partition(&stack, at).await;
    let hour = HourPartition::of(at);
    // Two files of 1.2 chunks each: at least four invocations of one chunk.
    let per_file = RESTORE_CHUNK + RESTORE_CHUNK / 5;
    let events: Vec<Event> = distinct_events(2 * per_file, at);
    for (i, part) in events.chunks(per_file).enumerate() {
        write_raw(&archiver, part, at, &format!("user-{i}")).await;
    }
    let hours =
        hours_between(hour.start(), hour.start() + chrono::Duration::hours(1)).expect("hours");

    // The deadline has passed before each invocation starts: each restores one chunk.
    let (mut resume, mut invocations, mut restored, mut read) = (None, 0, 0, 0);
    loop {
        invocations += 1;
        assert!(invocations <= 10, "no progress");
        let out = restore::restore(
            &archiver.restore_job(),
            &hours,
            resume,
            Utc::now(),
            Instant::now(),
        )
        .await
        .expect("restore");
        assert_eq!(out.restored.conflicts, 0);
        restored += out.restored.restored;
        read += out.events;
        assert!(
            out.events <= RESTORE_CHUNK as u64,
            "one chunk per invocation"
        );
        if out.progress.unfinished_from.is_none() {
            assert_eq!(out.progress.hours, 1);
            break;
        }
        assert_eq!(out.progress.unfinished_from, Some(hour.start()));
        assert_eq!(out.progress.hours, 0);
        resume = out.progress.resume;
        assert!(resume.is_some(), "a position inside the hour");
    }
    assert!(invocations >= 4, "{invocations} invocations");
    assert_eq!(restored, events.len() as u64);
    assert_eq!(read, events.len() as u64, "no row read twice");
    let stored = stored_in(&stack, hour).await;
    assert_eq!(stored.len(), events.len(), "nothing doubled");
    let expected: BTreeSet<Uuid> = events.iter().map(|e| e.event_id).collect();
    assert_eq!(stored.into_iter().collect::<BTreeSet<_>>(), expected);
}

/// The events as one file under `key`, as compaction writes its output.
async fn put_file(stack: &Stack, key: &str, events: &[Event]) {
    let mut columns = EventColumns::new();
    for e in events {
        columns.push(e).expect("push");
    }
    stack
        .archive()
        .put(
            key,
            event_parquet::encode(columns).expect("encode"),
            Uuid::now_v7(),
            events.len(),
        )
        .await
        .expect("put");
}

#[tokio::test]
async fn a_file_compacted_away_while_the_hour_is_read_is_not_skipped() {
    let stack = Stack::create().await;
    let archiver = stack.archiver(policy()).await;
    let at = hour_ago(3, 20);
    let hour = HourPartition::of(at);
    let events = distinct_events(30, at);
    let first = write_raw(&archiver, &events[..10], at, "user").await;
    let second = write_raw(&archiver, &events[10..], at, "user").await;
    let folder = archiver.bucket.folder(hour);
    let is_input = |name: &str| archiver::archive::bucket::kind_of(name).is_some();

    // Listed, then compaction replaces both files before either is read.
    let mut stream = HourStream::open(&archiver.bucket, folder.clone(), is_input, 7, None)
        .await
        .expect("list");
    let compacted = archiver::archive::bucket::compacted_key(&folder, "0123abcd", 0, 1);
    put_file(&stack, &compacted, &events).await;
    archiver
        .bucket
        .delete(&[first, second])
        .await
        .expect("delete");
    let mut ids = BTreeSet::new();
    loop {
        match stream.next().await.expect("read") {
            Next::Rows(batch) => {
                for e in archiver::archive::event_parquet_reader::events(&batch).expect("rows") {
                    ids.insert(e.event_id);
                }
                assert_eq!(stream.key(), compacted, "read from the new listing");
            }
            Next::End => break,
            Next::Vanished => panic!("one vanished file lists the hour again"),
        }
    }
    let expected: BTreeSet<Uuid> = events.iter().map(|e| e.event_id).collect();
    assert_eq!(ids, expected, "every event of the hour, none skipped");

    // The position of a stopped restore names a raw file that is gone the next time: the
    // next invocation starts the hour again from its (new) first file.
    with_partition(&stack, at).await;
    let hours =
        hours_between(hour.start(), hour.start() + chrono::Duration::hours(1)).expect("hours");
    let gone = archiver::recovery::hour_stream::Resume {
        key: archiver.bucket.raw_key(hour, Uuid::now_v7()),
        row: 5,
    };
    let out = restore::restore(
        &archiver.restore_job(),
        &hours,
        Some(gone),
        Utc::now(),
        Instant::now(),
    )
    .await
    .expect("restore");
    assert_eq!(
        (out.restored.restored, out.progress.unfinished_from),
        (30, None)
    );
    assert_eq!(stored_in(&stack, hour).await.len(), 30);
}
