//! The storage layer against the real local stack: PostgreSQL (exp.events, migrations,
//! partitions, retention, the pending hand-offs, TLS, faults) and moto (SQS packing, S3).

use std::time::Duration;

use chrono::{DateTime, Days, SubsecRound, TimeZone, Utc};
use eis_contract::Event;
use eis_handoff::{message, SqsPublisher};
use eis_store::maintenance::{self, MaintenancePolicy};
use eis_store::{migrate, Db, InsertOutcome, PendingHandoffs, PgEventStore, StoreError};
use eis_tests::events::event;
use eis_tests::*;

mod exact_numbers;
mod idle_connection;
mod login;
mod pending;
mod retention;

fn now() -> DateTime<Utc> {
    Utc::now()
}

fn events(n: usize, timestamp: DateTime<Utc>) -> Vec<Event> {
    (0..n)
        .map(|i| event(now(), timestamp, &format!("user-{i}")))
        .collect()
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    db.client()
        .await
        .query_one(sql, &[])
        .await
        .expect(sql)
        .get(0)
}

#[tokio::test]
async fn migrations_run_concurrently_apply_once() {
    let db = TestDb::create().await; // already migrated once
    let (a, b) = (db.db(), db.db());
    let (ra, rb) = tokio::join!(migrate::apply(&a), migrate::apply(&b));
    assert!(ra.expect("first run").is_empty(), "nothing left to apply");
    assert!(rb.expect("second run").is_empty());
    let applied = count(&db, "SELECT count(*) FROM eis_schema_history").await;
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations"))
        .expect("migrations dir")
        .count() as i64;
    assert_eq!(applied, files);
}

#[tokio::test]
async fn concurrent_first_migrations_on_an_empty_database() {
    let admin = connect(&stack_var("DATABASE_URL")).await;
    let name = format!(
        "eis_t_{}_m{}",
        Utc::now().timestamp(),
        &uuid::Uuid::now_v7().simple().to_string()[26..]
    );
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create");
    let url = with_database(&stack_var("DATABASE_URL"), &name);
    let (a, b) = (
        Db::new(&db_config(url.clone())).expect("a"),
        Db::new(&db_config(url.clone())).expect("b"),
    );
    let (ra, rb) = tokio::join!(migrate::apply(&a), migrate::apply(&b));
    let (ra, rb) = (ra.expect("run a"), rb.expect("run b"));
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations"))
        .expect("migrations dir")
        .count();
    assert_eq!(
        ra.len() + rb.len(),
        files,
        "each migration applied exactly once: {ra:?} {rb:?}"
    );
    admin
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .expect("drop");
}

#[tokio::test]
async fn a_retried_event_is_stored_once() {
    let db = TestDb::create().await;
    let store = PgEventStore::new(db.db());
    let batch = events(3, now());
    let first = store.insert(&batch).await.expect("insert");
    assert_eq!(first.outcomes, vec![InsertOutcome::Inserted; 3]);
    assert_eq!(
        first.pending.len(),
        1,
        "one pending hand-off row per insert"
    );
    let again = store.insert(&batch).await.expect("insert again");
    assert_eq!(again.outcomes, vec![InsertOutcome::Duplicate; 3]);
    assert!(again.pending.is_empty(), "nothing new to hand off");
    assert_eq!(count(&db, "SELECT count(*) FROM exp.events").await, 3);
}

#[tokio::test]
async fn stored_rows_hold_every_field() {
    let db = TestDb::create().await;
    let store = PgEventStore::new(db.db());
    let mut e = event(now(), now() - chrono::Duration::days(8), "user-fields");
    e.experiments.clear();
    e.flags = vec![
        eis_contract::Flag::OldTimestamp,
        eis_contract::Flag::NoExperimentContext,
    ];
    // Not content, but stored and read back: the plan's stamp and failing pointer.
    e.schema_version = Some("1-1-0".into());
    e.schema_violation = Some("/payload/meal_count".into());
    store
        .insert(std::slice::from_ref(&e))
        .await
        .expect("insert");
    let row = db
        .client()
        .await
        .query_one(
            "SELECT event_type, unit_id, context->>'platform', (metrics->>'latency_ms')::float8,
                    payload->>'plan_id', flags, \"timestamp\",
                    EXISTS (SELECT 1 FROM exp.pending_handoffs WHERE event_id = ANY(event_ids)),
                    schema_version, schema_violation
             FROM exp.events WHERE event_id = $1",
            &[&e.event_id],
        )
        .await
        .expect("row");
    assert_eq!(row.get::<_, String>(0), "plan_generated");
    assert_eq!(row.get::<_, String>(1), "user-fields");
    assert_eq!(row.get::<_, String>(2), "ios");
    assert_eq!(row.get::<_, f64>(3), 1843.5);
    assert_eq!(row.get::<_, String>(4), "pln_01HQZ8K4V7N2");
    assert_eq!(
        row.get::<_, Vec<String>>(5),
        vec!["old_timestamp", "no_experiment_context"]
    );
    assert_eq!(row.get::<_, DateTime<Utc>>(6), e.timestamp);
    assert!(row.get::<_, bool>(7), "not handed off yet");
    assert_eq!(row.get::<_, Option<&str>>(8), Some("1-1-0"));
    assert_eq!(row.get::<_, Option<&str>>(9), Some("/payload/meal_count"));
    // And it reads back as the same event (what the sweep hands to the archive).
    let back = PendingHandoffs::new(db.db())
        .sweep(
            now() + chrono::Duration::hours(1),
            Duration::ZERO,
            10,
            Duration::from_secs(60),
        )
        .await
        .expect("read back");
    assert_eq!(back.events, vec![e]);
}

#[tokio::test]
async fn a_batch_of_1000_is_stored() {
    let db = TestDb::create().await;
    let store = PgEventStore::new(db.db());
    let batch = events(1000, now());
    let outcomes = store.insert(&batch).await.expect("insert").outcomes;
    assert_eq!(outcomes.len(), 1000);
    assert!(outcomes.iter().all(|o| *o == InsertOutcome::Inserted));
    assert_eq!(count(&db, "SELECT count(*) FROM exp.events").await, 1000);
}

#[tokio::test]
async fn an_event_the_database_refuses_does_not_take_its_batch_down() {
    let db = TestDb::create().await;
    let store = PgEventStore::new(db.db());
    let mut batch = events(3, now());
    // The contract rejects U+0000; built by hand here to reach the database's own refusal.
    batch[1].unit_id = "bad\u{0}id".into();
    let stored = store.insert(&batch).await.expect("insert");
    let outcomes = &stored.outcomes;
    assert_eq!(outcomes[0], InsertOutcome::Inserted);
    assert!(
        matches!(outcomes[1], InsertOutcome::Refused(_)),
        "{:?}",
        outcomes[1]
    );
    assert_eq!(outcomes[2], InsertOutcome::Inserted);
    assert_eq!(count(&db, "SELECT count(*) FROM exp.events").await, 2);
    // Event by event, each stored one has its pending row; the refused one has none.
    assert_eq!(stored.pending.len(), 2);
    assert_eq!(
        count(
            &db,
            "SELECT sum(cardinality(event_ids)) FROM exp.pending_handoffs"
        )
        .await,
        2
    );
}

#[tokio::test]
async fn no_insert_fails_for_want_of_a_partition() {
    let db = TestDb::create().await;
    let store = PgEventStore::new(db.db());
    let mut far = events(3, now());
    far[0].timestamp = Utc
        .with_ymd_and_hms(1970, 1, 1, 0, 0, 0)
        .single()
        .expect("date");
    far[1].timestamp = Utc
        .with_ymd_and_hms(2199, 12, 31, 23, 59, 59)
        .single()
        .expect("date");
    far[2].timestamp = (now() - chrono::Duration::days(400)).trunc_subsecs(6);
    let outcomes = store.insert(&far).await.expect("insert").outcomes;
    assert_eq!(outcomes, vec![InsertOutcome::Inserted; 3]);
    assert_eq!(
        count(&db, "SELECT count(*) FROM exp.events_default").await,
        3
    );
}

#[tokio::test]
async fn maintenance_creates_partitions_ahead_and_moves_early_rows_out_of_default() {
    let db = TestDb::create().await;
    let store = PgEventStore::new(db.db());
    let at = now();
    // Stored before any partition exists: lands in the default partition.
    let early = events(2, at - chrono::Duration::hours(1));
    store.insert(&early).await.expect("insert");
    assert_eq!(
        count(&db, "SELECT count(*) FROM exp.events_default").await,
        2
    );

    let policy = MaintenancePolicy {
        retention_days: 90,
        days_ahead: 7,
        ..MaintenancePolicy::default()
    };
    let report = maintenance::upkeep(&db.db(), at, policy)
        .await
        .expect("maintenance");
    assert_eq!(
        report.partitions_created.len(),
        9,
        "yesterday, today and 7 ahead: {report:?}"
    );
    let day_of_early = format!("events_p{}", early[0].timestamp.format("%Y%m%d"));
    assert!(report.partitions_created.contains(&day_of_early));
    assert_eq!(
        count(&db, "SELECT count(*) FROM exp.events_default").await,
        0
    );
    let moved = count(&db, &format!("SELECT count(*) FROM exp.{day_of_early}")).await;
    assert_eq!(moved, 2, "rows moved into their day");
    let today = format!("events_p{}", at.format("%Y%m%d"));
    let before = count(&db, &format!("SELECT count(*) FROM exp.{today}")).await;

    let again = maintenance::upkeep(&db.db(), at, policy)
        .await
        .expect("maintenance again");
    assert!(again.partitions_created.is_empty() && again.partitions_dropped.is_empty());
    // New rows of today go straight to today's partition.
    store.insert(&events(1, at)).await.expect("insert");
    let after = count(&db, &format!("SELECT count(*) FROM exp.{today}")).await;
    assert_eq!(after, before + 1);
}

fn tls_url(mode: &str) -> String {
    let url = stack_var("DATABASE_URL");
    let base = url.split('?').next().unwrap_or(&url).to_string();
    format!("{base}?sslmode={mode}")
}

async fn uses_tls(db: &Db) -> bool {
    let client = db.client().await.expect("connect");
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl")
        .get(0)
}

#[tokio::test]
async fn tls_connections_honour_sslmode() {
    let ca = stack_var("EIS_PG_CA_FILE");
    assert!(
        !ca.is_empty(),
        "the project's cluster provides a CA file for this test"
    );

    let require = Db::new(&db_config(tls_url("require"))).expect("config");
    assert!(uses_tls(&require).await, "sslmode=require encrypts");

    let mut full = db_config(tls_url("verify-full"));
    full.ca_file = Some(ca.clone());
    assert!(
        uses_tls(&Db::new(&full).expect("config")).await,
        "verify-full with the CA"
    );

    let unknown_ca = Db::new(&db_config(tls_url("verify-full"))).expect("config");
    let err = unknown_ca
        .client()
        .await
        .expect_err("an unknown CA must fail verification");
    assert!(
        err.is_retryable() || matches!(err, StoreError::Other(..)),
        "{err}"
    );

    let plain = Db::new(&db_config(tls_url("disable"))).expect("config");
    assert!(!uses_tls(&plain).await, "sslmode=disable does not");
}

#[tokio::test]
async fn an_unreachable_database_is_a_retryable_error_not_a_hang() {
    // A server that accepts connections and never answers: only the timeout can end this.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = silent.local_addr().expect("addr");
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let mut config = db_config(format!("postgres://postgres@{addr}/eis?sslmode=disable"));
    config.connect_timeout = Duration::from_millis(500);
    let db = Db::new(&config).expect("config");
    let result = tokio::time::timeout(Duration::from_secs(10), db.ping()).await;
    let err = result
        .expect("ping ends by the connect timeout")
        .expect_err("no server");
    assert!(err.is_retryable(), "{err}");

    // Nothing listening at all: refused at once, also retryable.
    drop(holder);
    let closed = Db::new(&db_config(
        "postgres://postgres@127.0.0.1:1/eis?sslmode=disable".into(),
    ))
    .expect("config");
    let err = closed.ping().await.expect_err("refused");
    assert!(err.is_retryable(), "{err}");
}

#[tokio::test]
async fn the_connection_is_reopened_after_the_database_comes_back() {
    let db = TestDb::create().await;
    let (proxy, url) = FaultyProxy::before_database(&db.url).await;
    let store = PgEventStore::new(std::sync::Arc::new(
        Db::new(&db_config(url)).expect("config"),
    ));
    store
        .insert(&events(1, now()))
        .await
        .expect("insert through the proxy");

    proxy.cut();
    let err = store
        .insert(&events(1, now()))
        .await
        .expect_err("database gone");
    assert!(err.is_retryable(), "{err}");

    proxy.restore();
    let stored = store.insert(&events(1, now())).await.expect("reconnects");
    assert_eq!(stored.outcomes, vec![InsertOutcome::Inserted]);
    assert_eq!(count(&db, "SELECT count(*) FROM exp.events").await, 2);
    drop(proxy);
}

#[tokio::test]
async fn sqs_packs_many_events_per_message_and_round_trips() {
    let queue = TestQueue::create(5, 30).await;
    let publisher = SqsPublisher::new(
        queue.client.clone(),
        queue.url.clone(),
        message::SQS_MAX_MESSAGE_BYTES,
    );
    let batch = events(500, now());
    let outcome = publisher.publish(&batch).await;
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert_eq!(outcome.published.len(), 500);
    assert!(
        outcome.requests <= 5,
        "500 events took {} requests",
        outcome.requests
    );

    let mut received = Vec::new();
    for m in queue.receive_all(&queue.url).await {
        received.extend(message::decode_events(m.body().unwrap_or_default()).expect("decodes"));
    }
    received.sort_by_key(|e| e.unit_id.clone());
    let mut sent = batch.clone();
    sent.sort_by_key(|e| e.unit_id.clone());
    assert_eq!(received, sent);
}

#[tokio::test]
async fn sqs_unreachable_reports_every_event_unpublished() {
    let publisher = unreachable_publisher();
    let outcome = publisher.publish(&events(20, now())).await;
    assert!(outcome.published.is_empty());
    assert!(!outcome.errors.is_empty());
}

#[tokio::test]
async fn s3_put_list_get() {
    let (s3, bucket, _bucket_guard) = test_bucket().await;
    let key = "2026/11/28/10/events_test.parquet";
    s3.put_object()
        .bucket(&bucket)
        .key(key)
        .body(aws_sdk_s3::primitives::ByteStream::from_static(
            b"PAR1 bytes",
        ))
        .send()
        .await
        .expect("put");
    let listed = s3
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("2026/11/28/")
        .send()
        .await
        .expect("list");
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, vec![key]);
    let got = s3
        .get_object()
        .bucket(&bucket)
        .key(key)
        .send()
        .await
        .expect("get");
    let bytes = got.body.collect().await.expect("body").into_bytes();
    assert_eq!(&bytes[..], b"PAR1 bytes");
}

#[tokio::test]
async fn credentials_come_from_the_secret_when_one_is_named() {
    let db = TestDb::create().await;
    let role = format!(
        "eis_secret_{}",
        &uuid::Uuid::now_v7().simple().to_string()[24..]
    );
    let admin = db.client().await;
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD 'from-the-secret'"
        ))
        .await
        .expect("create role");
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk().await);
    let secret = secrets
        .create_secret()
        .name(format!("eis-test/{role}"))
        .secret_string(
            serde_json::json!({"username": role, "password": "from-the-secret"}).to_string(),
        )
        .send()
        .await
        .expect("create secret");
    // A URL without any user: only the secret can supply it.
    let url = format!(
        "postgres://{}/{}?sslmode=disable",
        pg_addr(&db.url),
        db.name
    );
    let mut config = db_config(url);
    config.secret_arn = secret.arn().map(str::to_string);
    let with_secret = Db::new(&config).expect("config");
    let user: String = with_secret
        .client()
        .await
        .expect("connect with the secret's credentials")
        .query_one("SELECT current_user::text", &[])
        .await
        .expect("query")
        .get(0);
    assert_eq!(user, role);

    config.secret_arn = Some("arn:aws:secretsmanager:us-east-1:123456789012:secret:missing".into());
    let missing = Db::new(&config)
        .expect("config")
        .ping()
        .await
        .expect_err("no such secret");
    assert!(matches!(missing, StoreError::Config(..)), "{missing}");
    admin
        .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .await
        .ok();
}

#[tokio::test]
async fn a_db_with_several_connections_hands_them_out_in_turn() {
    let db = TestDb::create().await;
    let pooled = Db::with_connections(&db.config(), 3).expect("config");
    let mut pids = Vec::new();
    for _ in 0..6 {
        let client = pooled.client().await.expect("connect");
        let pid: i32 = client
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .expect("pid")
            .get(0);
        pids.push(pid);
    }
    let mut distinct = pids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "three backends: {pids:?}");
    assert_eq!(pids[..3], pids[3..], "taken in turn: {pids:?}");
}
