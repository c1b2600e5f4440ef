//! The audit against the real local stack: an archive that misses events (a file deleted) is
//! found out by its digests, the events go back to the sweep, and after the next run and its
//! compaction the archive's ids equal PostgreSQL's; a clean hour lists no ids.

use archiver::compaction::audit;
use archiver::handler::{self, Input, Output};
use eis_contract::Event;
use eis_store::PgEventStore;
use eis_tests::archive::*;
use tokio::time::Instant;

fn deadline() -> Instant {
    Instant::now() + std::time::Duration::from_secs(60)
}

/// Stores the events (as the ingest function does, received a minute after their timestamp)
/// and archives them by one scheduled run (the sweep finds them, since they were never
/// published), which also compacts their hour. The audit looks one day back.
async fn stored_and_archived(stack: &Stack, events: &mut [Event]) -> archiver::app::Archiver {
    let mut config = stack.config(policy());
    config.sweep_grace = std::time::Duration::ZERO;
    config.compaction.audit_days = 1;
    for e in events.iter_mut() {
        e.received_at = e.timestamp + chrono::Duration::minutes(1);
    }
    let archiver = archiver::app::Archiver::from_config(config)
        .await
        .expect("archiver");
    let store = PgEventStore::new(stack.db().db());
    let stored = store.insert(events).await.expect("insert");
    assert_eq!(stored.outcomes.len(), events.len());
    let summary = archiver
        .run(chrono::Utc::now(), deadline())
        .await
        .into_result()
        .expect("run");
    assert_eq!(summary.swept, events.len(), "{summary:?}");
    archiver
}

#[tokio::test]
async fn a_clean_archive_lists_no_ids_and_reports_nothing() {
    let stack = Stack::create().await;
    let t = hour_ago(4, 15);
    let mut events = distinct_events(40, t);
    let archiver = stored_and_archived(&stack, &mut events).await;
    let out = handler::handle(&archiver, Input::Audit, deadline(), false)
        .await
        .expect("audit");
    let Output::Audit(s) = out else {
        panic!("{out:?}")
    };
    assert!((20..=24).contains(&s.hours_checked), "{}", s.hours_checked);
    assert_eq!(s.hours_mismatched, 0, "{s:?}");
    assert_eq!((s.missing, s.extra, s.duplicates), (0, 0, 0));
    assert!(s.findings.is_empty() && !s.incomplete && s.errors.is_empty());
    assert_eq!(s.emf(&Default::default())["AuditFindings"], 0);
    assert_eq!(serde_json::to_value(&s).expect("json")["action"], "audit");
}

#[tokio::test]
async fn missing_events_are_found_by_digest_and_archived_again() {
    let stack = Stack::create().await;
    let t = hour_ago(5, 40);
    let mut events = distinct_events(90, t);
    let archiver = stored_and_archived(&stack, &mut events).await;
    assert_eq!(stack.archived_ids().await.len(), 90);

    // The archive loses its only file, then half of the events come back as a raw file with
    // a copy twice over (as if by hand, or by an old bug).
    for key in keys(&stack.s3, &stack.bucket).await {
        stack
            .s3
            .delete_object()
            .bucket(&stack.bucket)
            .key(key)
            .send()
            .await
            .expect("delete");
    }
    write_raw(&archiver, &events[..45], t, "copy").await;
    write_raw(&archiver, &events[..10], t, "copy").await;

    let s = audit::audit(&archiver.audit_job(), chrono::Utc::now(), deadline())
        .await
        .into_result()
        .expect("audit");
    assert_eq!(s.hours_mismatched, 1, "{s:?}");
    assert_eq!((s.missing, s.requeued, s.extra), (45, 45, 0), "{s:?}");
    assert_eq!((s.duplicate_hours, s.duplicates), (1, 10));
    assert_eq!(s.findings.len(), 1);
    assert_eq!(s.emf(&Default::default())["AuditFindings"], 55);

    // The next scheduled run sweeps the 45 back into the hour and compacts it.
    let run = archiver
        .run(chrono::Utc::now(), deadline())
        .await
        .into_result()
        .expect("run");
    assert_eq!(run.swept, 45, "{run:?}");
    assert_eq!(run.compaction.hours, 1, "{run:?}");
    stack.assert_each_once(&events).await;

    let again = audit::audit(&archiver.audit_job(), chrono::Utc::now(), deadline())
        .await
        .into_result()
        .expect("audit");
    assert_eq!(again.findings_count(), 0, "{again:?}");
    assert_eq!(again.hours_mismatched, 0);
}
