//! The pending hand-offs (exp.pending_handoffs): what the insert records, how the ingest and
//! the sweep settle it, concurrent sweeps, and retention's respect for it.

use super::*;
use chrono::DurationRound;
use eis_store::{EventKey, PendingHandoffs, Swept};

const LEASE: Duration = Duration::from_secs(60);

fn keys(events: &[Event]) -> Vec<EventKey> {
    events.iter().map(|e| (e.event_id, e.timestamp)).collect()
}

async fn sweep_at(pending: &PendingHandoffs, at: DateTime<Utc>, limit: i64) -> Swept {
    pending
        .sweep(at, Duration::from_secs(300), limit, LEASE)
        .await
        .expect("sweep")
}

fn ids(swept: &Swept) -> Vec<uuid::Uuid> {
    let mut ids: Vec<_> = swept.events.iter().map(|e| e.event_id).collect();
    ids.sort();
    ids
}

fn sorted_ids(events: &[Event]) -> Vec<uuid::Uuid> {
    let mut ids: Vec<_> = events.iter().map(|e| e.event_id).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn the_sweep_sees_only_what_is_pending_after_the_grace_period() {
    let db = TestDb::create().await;
    let store = PgEventStore::new(db.db());
    let pending = PendingHandoffs::new(db.db());
    let confirmed = events(2, now());
    let stored = store.insert(&confirmed).await.expect("insert");
    pending.forget(&stored.pending).await.expect("forget");
    let partly = events(3, now());
    let stored = store.insert(&partly).await.expect("insert");
    // SQS confirmed the first of the three.
    pending
        .settle(&stored.pending, &keys(&partly[..1]))
        .await
        .expect("settle");

    let within_grace = sweep_at(&pending, now(), 100).await;
    assert!(
        within_grace.rows.is_empty() && within_grace.events.is_empty(),
        "fresh events are left to the ingest's own publish"
    );
    let later = now() + chrono::Duration::minutes(10);
    let swept = sweep_at(&pending, later, 100).await;
    assert_eq!(ids(&swept), sorted_ids(&partly[1..]));
    assert!(swept.gone.is_empty());
    assert_eq!(swept.rows, stored.pending);
    // Claimed: another sweep before the lease ends gets nothing.
    assert!(sweep_at(&pending, later, 100).await.events.is_empty());

    // Archived: the row goes.
    pending
        .settle(&swept.rows, &keys(&partly[1..]))
        .await
        .expect("settle");
    assert_eq!(
        count(&db, "SELECT count(*) FROM exp.pending_handoffs").await,
        0
    );
    // exp.events was never updated: each row is still the version its insert wrote, in the
    // same transaction as its id's claim.
    let rewritten = count(
        &db,
        "SELECT count(*) FROM exp.events e JOIN exp.event_ids i USING (event_id)
         WHERE e.xmin::text <> i.xmin::text",
    )
    .await;
    assert_eq!(rewritten, 0);
}

#[tokio::test]
async fn a_sweep_that_archives_part_releases_the_rest_and_an_expired_claim_is_retaken() {
    let db = TestDb::create().await;
    let store = PgEventStore::new(db.db());
    let pending = PendingHandoffs::new(db.db());
    let batch = events(4, now());
    store.insert(&batch).await.expect("insert");
    let later = now() + chrono::Duration::minutes(10);

    // A run takes the row and dies: after its lease another run takes it again.
    let first = sweep_at(&pending, later, 100).await;
    assert_eq!(first.events.len(), 4);
    let after_lease = later + chrono::Duration::seconds(61);
    let second = sweep_at(&pending, after_lease, 100).await;
    assert_eq!(ids(&second), ids(&first));

    // It archives two: the other two are released at once for the next sweep.
    pending
        .settle(&second.rows, &keys(&batch[..2]))
        .await
        .expect("settle");
    let third = sweep_at(&pending, after_lease, 100).await;
    assert_eq!(ids(&third), sorted_ids(&batch[2..]));
}

#[tokio::test]
async fn concurrent_sweeps_take_disjoint_rows_and_respect_the_limit() {
    let db = TestDb::create().await;
    let store = PgEventStore::new(db.db());
    for _ in 0..20 {
        store.insert(&events(5, now())).await.expect("insert");
    }
    let later = now() + chrono::Duration::minutes(10);
    // Four runs, each on a connection of its own, each taking whole rows while fewer than
    // 30 events are taken: at most 6 rows of 5 each; none twice.
    let sweepers: Vec<PendingHandoffs> = (0..4)
        .map(|_| PendingHandoffs::new(std::sync::Arc::new(Db::new(&db.config()).expect("db"))))
        .collect();
    let (a, b, c, d) = tokio::join!(
        sweep_at(&sweepers[0], later, 30),
        sweep_at(&sweepers[1], later, 30),
        sweep_at(&sweepers[2], later, 30),
        sweep_at(&sweepers[3], later, 30),
    );
    // A sweep can stop early when the rows left are locked by the others at that instant:
    // the next run takes the rest.
    let rest = sweep_at(&sweepers[0], later, 1000).await;
    let sweeps = [a, b, c, d, rest];
    for s in &sweeps[..4] {
        assert!(s.events.len() <= 30, "rows {:?}", s.rows);
    }
    let mut taken: Vec<_> = sweeps.iter().flat_map(|s| s.events.iter()).collect();
    taken.sort_by_key(|e| e.event_id);
    let before = taken.len();
    taken.dedup_by_key(|e| e.event_id);
    assert_eq!(taken.len(), before, "no event taken by two sweeps");
    assert_eq!(taken.len(), 100);
}

#[tokio::test]
async fn a_pending_key_whose_event_is_gone_is_reported_and_settled() {
    let db = TestDb::create().await;
    let store = PgEventStore::new(db.db());
    let pending = PendingHandoffs::new(db.db());
    let batch = events(2, now());
    store.insert(&batch).await.expect("insert");
    db.client()
        .await
        .execute(
            "DELETE FROM exp.events WHERE event_id = $1",
            &[&batch[0].event_id],
        )
        .await
        .expect("delete");
    let swept = sweep_at(&pending, now() + chrono::Duration::minutes(10), 100).await;
    assert_eq!(swept.gone, keys(&batch[..1]));
    assert_eq!(ids(&swept), sorted_ids(&batch[1..]));
    let done: Vec<_> = swept
        .gone
        .iter()
        .copied()
        .chain(keys(&batch[1..]))
        .collect();
    pending.settle(&swept.rows, &done).await.expect("settle");
    assert_eq!(
        count(&db, "SELECT count(*) FROM exp.pending_handoffs").await,
        0
    );
}

#[tokio::test]
async fn retention_drops_old_days_but_never_events_not_yet_archived() {
    let db = TestDb::create().await;
    let store = PgEventStore::new(db.db());
    let pending = PendingHandoffs::new(db.db());
    let client = db.client().await;
    let at = now();
    let day = |n: u64| {
        at.date_naive()
            .checked_sub_days(Days::new(n))
            .expect("date")
    };
    for n in [91u64, 92, 89] {
        let created: bool = client
            .query_one("SELECT exp.ensure_day_partition($1)", &[&day(n)])
            .await
            .expect("partition")
            .get(0);
        assert!(created);
    }
    let old_archived = events(2, at - chrono::Duration::days(92));
    let old_pending = events(1, at - chrono::Duration::days(91));
    let recent = events(1, at - chrono::Duration::days(89));
    let ancient = events(1, at - chrono::Duration::days(400)); // default partition
    let ancient_pending = events(1, at - chrono::Duration::days(401));
    let mut pending_rows = Vec::new();
    for batch in [&old_archived, &recent, &ancient] {
        let stored = store.insert(batch).await.expect("insert");
        pending.forget(&stored.pending).await.expect("forget");
    }
    for batch in [&old_pending, &ancient_pending] {
        pending_rows.extend(store.insert(batch).await.expect("insert").pending);
    }

    let policy = MaintenancePolicy {
        retention_days: 90,
        days_ahead: 0,
        ..MaintenancePolicy::default()
    };
    let report = maintenance::upkeep(&db.db(), at, policy)
        .await
        .expect("maintenance");
    let dropped_92 = format!("events_p{}", day(92).format("%Y%m%d"));
    assert_eq!(
        report.partitions_dropped,
        vec![dropped_92],
        "91 still holds a pending event"
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM exp.events").await,
        3,
        "pending + recent + pending in default"
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM exp.events_default").await,
        1,
        "the archived ancient one is deleted, the pending one kept"
    );

    // Once archived, the pending day and the default row go too.
    let done: Vec<_> = keys(&old_pending)
        .into_iter()
        .chain(keys(&ancient_pending))
        .collect();
    pending.settle(&pending_rows, &done).await.expect("settle");
    let report = maintenance::upkeep(&db.db(), at, policy)
        .await
        .expect("maintenance");
    assert_eq!(report.partitions_dropped.len(), 1);
    assert_eq!(count(&db, "SELECT count(*) FROM exp.events").await, 1);
    let bad = client
        .query_one("SELECT exp.drop_expired_partitions(0)", &[])
        .await;
    assert!(bad.is_err(), "retention of 0 days is refused");
}

/// `n` events of `timestamp` received at `received_at`, stored by SQL (as many as a test
/// needs, fast), and their keys in one pending row; returns that row's id.
async fn bulk_pending_row(
    db: &TestDb,
    n: i32,
    timestamp: DateTime<Utc>,
    received_at: DateTime<Utc>,
) -> i64 {
    let client = db.client().await;
    client
        .execute(
            "INSERT INTO exp.events (event_id, event_type, unit_type, unit_id, \"timestamp\", received_at)
             SELECT gen_random_uuid(), 'bulk', 'user', 'u' || g, $1, $2 FROM generate_series(1, $3) g",
            &[&timestamp, &received_at, &n],
        )
        .await
        .expect("events");
    client
        .query_one(
            "INSERT INTO exp.pending_handoffs (received_at, event_ids, timestamps)
             SELECT $1, array_agg(event_id ORDER BY unit_id), array_agg(\"timestamp\" ORDER BY unit_id)
             FROM exp.events WHERE event_type = 'bulk'
             RETURNING id",
            &[&received_at],
        )
        .await
        .expect("pending row")
        .get(0)
}

#[tokio::test]
async fn a_row_bigger_than_the_limit_drains_at_most_the_limit_per_sweep() {
    // make test's scale; bench/sweep_backlog.py drains a row of 1 000 000 keys.
    const KEYS: i32 = 20_000;
    const LIMIT: i64 = 3_000;
    let db = TestDb::create().await;
    let at = now();
    bulk_pending_row(&db, KEYS, at, at - chrono::Duration::minutes(10)).await;
    // Two runs at a time, each on a connection of its own.
    let sweepers: Vec<PendingHandoffs> = (0..2)
        .map(|_| PendingHandoffs::new(std::sync::Arc::new(Db::new(&db.config()).expect("db"))))
        .collect();
    let mut archived: Vec<uuid::Uuid> = Vec::new();
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds <= 100, "the row never drains");
        let (a, b) = tokio::join!(
            sweep_at(&sweepers[0], at, LIMIT),
            sweep_at(&sweepers[1], at, LIMIT)
        );
        if a.rows.is_empty() && b.rows.is_empty() {
            break;
        }
        for s in [&a, &b] {
            assert!(s.gone.is_empty());
            assert!(
                s.events.len() as i64 <= LIMIT,
                "a sweep took {} keys, over its limit of {LIMIT}",
                s.events.len()
            );
        }
        // Both archive what they took, then settle it.
        for (s, sweeper) in [(&a, &sweepers[0]), (&b, &sweepers[1])] {
            archived.extend(s.events.iter().map(|e| e.event_id));
            sweeper
                .settle(&s.rows, &keys(&s.events))
                .await
                .expect("settle");
        }
    }
    assert!(rounds > 3, "drained over several sweeps, not {rounds}");
    let taken = archived.len();
    archived.sort();
    archived.dedup();
    assert_eq!(archived.len(), taken, "no key taken twice");
    assert_eq!(taken, KEYS as usize, "every key taken once");
    assert_eq!(
        count(&db, "SELECT count(*) FROM exp.pending_handoffs").await,
        0
    );
}

#[tokio::test]
async fn the_audits_requeue_writes_rows_of_bounded_size() {
    let db = TestDb::create().await;
    let pending = PendingHandoffs::new(db.db());
    let hour = now()
        .duration_trunc(chrono::Duration::hours(1))
        .expect("hour")
        - chrono::Duration::hours(3);
    let keys = 2 * eis_store::pending::REQUEUE_ROW_KEYS as i32 + 500;
    let row = bulk_pending_row(&db, keys, hour, hour).await;
    let client = db.client().await;
    // Archived meanwhile (the row goes); then the audit finds them all missing from the archive.
    client
        .execute("DELETE FROM exp.pending_handoffs WHERE id = $1", &[&row])
        .await
        .expect("forget");
    let ids: Vec<uuid::Uuid> = client
        .query("SELECT event_id FROM exp.events", &[])
        .await
        .expect("ids")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let requeued = pending
        .requeue(&ids, hour, hour + chrono::Duration::hours(1))
        .await
        .expect("requeue");
    assert_eq!(requeued, keys as u64);
    let rows: Vec<(i64, i32)> = pairs(
        &client,
        "SELECT count(*) OVER (), cardinality(event_ids) FROM exp.pending_handoffs",
    )
    .await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows
        .iter()
        .all(|(_, n)| i64::from(*n) <= eis_store::pending::REQUEUE_ROW_KEYS));
    assert_eq!(
        count(
            &db,
            "SELECT count(DISTINCT k) FROM exp.pending_handoffs, unnest(event_ids) k"
        )
        .await,
        i64::from(keys)
    );
}
