//! Retention against concurrent work, made to happen on demand: a long reader of exp.events
//! held open in a second connection, and an insert held uncommitted while retention runs.

use super::*;
use std::sync::Arc;

use eis_store::DbConfig;

/// The retention day of these tests: 91 days before `at`, past a retention of 90.
fn old_day(at: DateTime<Utc>) -> chrono::NaiveDate {
    at.date_naive()
        .checked_sub_days(Days::new(91))
        .expect("date")
}

fn partition(day: chrono::NaiveDate) -> String {
    format!("events_p{}", day.format("%Y%m%d"))
}

fn policy(lock_timeout: Duration) -> MaintenancePolicy {
    MaintenancePolicy {
        retention_days: 90,
        days_ahead: 0,
        lock_timeout,
    }
}

/// A database handle whose statements may wait longer than the lock timeouts below, so that
/// only PostgreSQL's lock timeout (or its absence) decides how long retention waits.
fn patient(db: &TestDb) -> Arc<Db> {
    let config = DbConfig {
        query_timeout: Duration::from_secs(30),
        ..db.config()
    };
    Arc::new(Db::new(&config).expect("db"))
}

async fn partition_exists(client: &tokio_postgres::Client, name: &str) -> bool {
    client
        .query_one("SELECT to_regclass('exp.' || $1) IS NOT NULL", &[&name])
        .await
        .expect("regclass")
        .get(0)
}

/// Returns once a request for ACCESS EXCLUSIVE (retention's, on exp.events or its day) is
/// waiting behind the test's open transaction. Polls the lock table: a condition, not a delay.
async fn until_retention_waits(
    client: &tokio_postgres::Client,
    retention: &tokio::task::JoinHandle<impl Sized>,
) {
    loop {
        let waiting: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_locks
                 WHERE database = (SELECT oid FROM pg_database WHERE datname = current_database())
                   AND mode = 'AccessExclusiveLock' AND NOT granted)",
                &[],
            )
            .await
            .expect("pg_locks")
            .get(0);
        if waiting {
            return;
        }
        assert!(
            !retention.is_finished(),
            "retention ended before it waited for its lock"
        );
        tokio::task::yield_now().await;
    }
}

/// An expired day with one archived event (its pending row settled), partitions in place.
async fn expired_day_with_an_archived_event(db: &TestDb, at: DateTime<Utc>) {
    let store = PgEventStore::new(db.db());
    let pending = PendingHandoffs::new(db.db());
    let client = db.client().await;
    client
        .query_one("SELECT exp.ensure_day_partition($1)", &[&old_day(at)])
        .await
        .expect("partition");
    let old = events(1, at - chrono::Duration::days(91));
    let stored = store.insert(&old).await.expect("insert");
    // Still pending: this first upkeep creates the near partitions and keeps the old day.
    let report = maintenance::upkeep(&db.db(), at, policy(Duration::from_secs(1)))
        .await
        .expect("maintenance");
    assert_eq!(report.partitions_pending, vec![partition(old_day(at))]);
    pending.forget(&stored.pending).await.expect("forget");
}

#[tokio::test]
async fn retention_behind_a_long_reader_gives_up_its_lock_and_lets_inserts_through() {
    let db = TestDb::create().await;
    let at = now();
    expired_day_with_an_archived_event(&db, at).await;
    let day = partition(old_day(at));

    // A long reader (a dashboard query, a health window): its transaction stays open.
    let reader = db.client().await;
    reader
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM exp.events")
        .await
        .expect("reader");
    let watcher = db.client().await;

    let retention_db = patient(&db);
    let retention = tokio::spawn(async move {
        maintenance::upkeep(&retention_db, at, policy(Duration::from_secs(3))).await
    });
    until_retention_waits(&watcher, &retention).await;
    // An insert issued now queues behind retention's lock request; it completes once
    // retention withdraws that request, while the reader is still open.
    let store = PgEventStore::new(patient(&db));
    let stored = store.insert(&events(1, at)).await;
    assert!(
        stored.is_ok(),
        "an insert behind retention completes while the reader is open: {:?}",
        stored.err()
    );
    let report = retention.await.expect("task").expect("maintenance");
    assert!(report.partitions_dropped.is_empty(), "{report:?}");
    assert_eq!(
        report.partitions_locked,
        vec![day.clone()],
        "reported as kept"
    );
    assert!(partition_exists(&watcher, &day).await);
    // The reader was open all along.
    let open: i64 = reader
        .query_one("SELECT count(*) FROM exp.events", &[])
        .await
        .expect("reader still in its transaction")
        .get(0);
    assert_eq!(open, 1, "the reader's snapshot predates the insert");
    reader.batch_execute("COMMIT").await.expect("commit");

    // The next run, with no reader left, drops the day.
    let report = maintenance::upkeep(&patient(&db), at, policy(Duration::from_secs(3)))
        .await
        .expect("maintenance");
    assert_eq!(report.partitions_dropped, vec![day.clone()]);
    assert!(report.partitions_locked.is_empty());
    assert!(!partition_exists(&watcher, &day).await);
}

#[tokio::test]
async fn an_event_committed_while_retention_waits_keeps_its_day() {
    let db = TestDb::create().await;
    let at = now();
    expired_day_with_an_archived_event(&db, at).await;
    let day = partition(old_day(at));

    // A late event of the expired day, stored as the ingest stores one (the event and its
    // pending hand-off in one transaction), held uncommitted.
    let late = events(1, at - chrono::Duration::days(91)).remove(0);
    let writer = db.client().await;
    writer.batch_execute("BEGIN").await.expect("begin");
    writer
        .execute(
            "INSERT INTO exp.events (event_id, event_type, unit_type, unit_id, \"timestamp\")
             VALUES ($1, 'late', 'user', 'u', $2)",
            &[&late.event_id, &late.timestamp],
        )
        .await
        .expect("insert event");
    writer
        .execute(
            "INSERT INTO exp.pending_handoffs (event_ids, timestamps) VALUES (ARRAY[$1::uuid], ARRAY[$2::timestamptz])",
            &[&late.event_id, &late.timestamp],
        )
        .await
        .expect("insert pending row");

    // Retention looks at the day while the insert is in flight, then the insert commits.
    let watcher = db.client().await;
    let retention_db = patient(&db);
    let retention = tokio::spawn(async move {
        maintenance::upkeep(&retention_db, at, policy(Duration::from_secs(20))).await
    });
    until_retention_waits(&watcher, &retention).await;
    writer.batch_execute("COMMIT").await.expect("commit");
    let report = retention.await.expect("task").expect("maintenance");

    assert!(report.partitions_dropped.is_empty(), "{report:?}");
    assert_eq!(report.partitions_pending, vec![day.clone()]);
    assert!(partition_exists(&watcher, &day).await);
    let kept: i64 = watcher
        .query_one(
            "SELECT count(*) FROM exp.events WHERE event_id = $1",
            &[&late.event_id],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(
        kept, 1,
        "the event whose hand-off is pending is still stored"
    );
}
