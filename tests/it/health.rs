//! The experiment-health job against real PostgreSQL (docs/health.md): generated experiments,
//! a database of their own each. Events are written with SQL (the job reads exp.events, not
//! the API), received now by the database's clock.

use std::time::Duration;

use archiver::health::{self, HealthSummary};
use chrono::{DateTime, Utc};
use eis_store::{ExperimentHealth, HealthStore};
use eis_tests::archive::HEALTH_POLICY as POLICY;
use eis_tests::{eventually, pairs, TestDb};
use serde_json::Value;
use tokio::time::Instant;

mod bounds;
mod plan;

/// Inserts one event per unit `{prefix}{i}` for i in `range`, naming `experiment` with the
/// variant `variant(i)` picks (SQL over `i`), at `timestamp`.
async fn exposures(
    db: &tokio_postgres::Client,
    experiment: &str,
    prefix: &str,
    range: std::ops::Range<i32>,
    variant_sql: &str,
    timestamp: DateTime<Utc>,
) {
    let sql = format!(
        r#"INSERT INTO exp.events (event_id, event_type, unit_type, unit_id, experiments, "timestamp")
           SELECT gen_random_uuid(), 'plan_generated', 'user', $2 || i,
                  jsonb_build_array(jsonb_build_object('experiment_id', $1::text, 'variant_id', {variant_sql})),
                  $5
           FROM generate_series($3::int, $4::int - 1) i"#
    );
    db.execute(
        &sql,
        &[&experiment, &prefix, &range.start, &range.end, &timestamp],
    )
    .await
    .expect("insert exposures");
}

/// Runs the job until it has counted everything committed before the call.
async fn run_until_caught_up(store: &HealthStore) -> (HealthSummary, Vec<ExperimentHealth>) {
    let target = Utc::now();
    eventually(Duration::from_secs(30), || async {
        let deadline = Instant::now() + Duration::from_secs(60);
        let (summary, rows) = health::run(store, &POLICY, Utc::now(), deadline)
            .await
            .expect("health run");
        let caught_up = !summary.busy && summary.processed_to.is_some_and(|t| t >= target);
        caught_up.then_some((summary, rows))
    })
    .await
    .expect("the health job catches up within 30 s")
}

fn row<'r>(rows: &'r [ExperimentHealth], id: &str) -> &'r ExperimentHealth {
    rows.iter()
        .find(|r| r.counts.experiment_id == id)
        .unwrap_or_else(|| panic!("no health row for {id}"))
}

fn metric(doc: &Value, name: &str) -> Option<f64> {
    doc.get(name).and_then(Value::as_f64)
}

#[tokio::test]
async fn a_52_48_split_on_20000_units_alarms_and_a_balanced_one_does_not() {
    let db = TestDb::create().await;
    let client = db.client().await;
    let at = Utc::now() - chrono::Duration::minutes(5);
    // 10 400 / 9 600: chi-squared = 2 * 400² / 10 000 = 32, p = erfc(4).
    exposures(
        &client,
        "exp_srm",
        "s",
        0..20_000,
        "CASE WHEN i < 10400 THEN 'control' ELSE 'treatment' END",
        at,
    )
    .await;
    // Assigned by a hash of the unit: balanced up to chance.
    exposures(
        &client,
        "exp_balanced",
        "b",
        0..20_000,
        "CASE WHEN abs(hashtext('b' || i)) % 2 = 0 THEN 'control' ELSE 'treatment' END",
        at,
    )
    .await;
    let store = HealthStore::new(db.db());
    let (summary, rows) = run_until_caught_up(&store).await;
    assert_eq!(summary.events, 40_000);

    let srm = row(&rows, "exp_srm");
    let figures = srm.srm.expect("two variants");
    assert!((figures.chi_squared - 32.0).abs() < 1e-9, "{figures:?}");
    let erfc_4 = 1.541_725_790_028_002e-8;
    assert!(
        ((figures.p_value - erfc_4) / erfc_4).abs() < 1e-9,
        "{figures:?}"
    );
    assert!(srm.srm_checked);
    let doc = health::emf(srm, &Default::default()).expect("running");
    assert_eq!(doc["Experiment"], "exp_srm");
    assert!(
        metric(&doc, "SrmPValue").is_some_and(|p| p < 0.001),
        "{doc}"
    );

    let balanced = row(&rows, "exp_balanced");
    let doc = health::emf(balanced, &Default::default()).expect("running");
    assert!(
        metric(&doc, "SrmPValue").is_some_and(|p| p >= 0.001),
        "{doc}"
    );
    assert_eq!(balanced.counts.srm_units(), 20_000);

    // The stored rows say the same.
    let stored = client
        .query_one(
            "SELECT p_value, units, srm_checked FROM exp.experiment_health WHERE experiment_id = 'exp_srm'",
            &[],
        )
        .await
        .expect("health row");
    assert_eq!(stored.get::<_, f64>(0), figures.p_value);
    assert_eq!(stored.get::<_, i64>(1), 20_000);
    let variants = client
        .query(
            "SELECT variant_id, units, expected_units FROM exp.variant_health
             WHERE experiment_id = 'exp_srm' ORDER BY variant_id",
            &[],
        )
        .await
        .expect("variant rows");
    let seen: Vec<(String, i64, f64)> = variants
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("control".into(), 10_400, 10_000.0),
            ("treatment".into(), 9_600, 10_000.0)
        ]
    );
}

#[tokio::test]
async fn units_in_two_variants_are_crossover_and_stay_out_of_the_ratio_test() {
    let db = TestDb::create().await;
    let client = db.client().await;
    let at = Utc::now() - chrono::Duration::minutes(5);
    exposures(
        &client,
        "exp_cross",
        "c",
        0..1000,
        "CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END",
        at,
    )
    .await;
    // Units 0..50 are seen again in the other variant.
    exposures(
        &client,
        "exp_cross",
        "c",
        0..50,
        "CASE WHEN i % 2 = 0 THEN 'b' ELSE 'a' END",
        at,
    )
    .await;
    let store = HealthStore::new(db.db());
    let (_, rows) = run_until_caught_up(&store).await;
    let cross = row(&rows, "exp_cross");
    assert_eq!(cross.counts.units, 1000);
    assert_eq!(cross.counts.crossover_units, 50);
    assert_eq!(cross.counts.srm_units(), 950);
    let doc = health::emf(cross, &Default::default()).expect("running");
    assert_eq!(metric(&doc, "CrossoverUnits"), Some(50.0));
    assert_eq!(metric(&doc, "CrossoverShare"), Some(0.05));
    let assignments: i64 = client
        .query_one(
            "SELECT count(*) FROM exp.assignments WHERE experiment_id = 'exp_cross'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(assignments, 1050);
}

/// One event of `unit`, naming `experiments` (a JSON array), with `metrics` (a JSON object).
async fn event(
    db: &impl tokio_postgres::GenericClient,
    unit: &str,
    event_type: &str,
    experiments: Value,
    metrics: Value,
    timestamp: DateTime<Utc>,
) {
    db.execute(
        r#"INSERT INTO exp.events (event_id, event_type, unit_type, unit_id, experiments, metrics, "timestamp")
           VALUES (gen_random_uuid(), $1, 'user', $2, $3, $4, $5)"#,
        &[&event_type, &unit, &experiments, &metrics, &timestamp],
    )
    .await
    .expect("insert event");
}

/// A `meal_swapped` event of `unit` naming no experiment.
async fn without_context(db: &tokio_postgres::Client, unit: &str, timestamp: DateTime<Utc>) {
    let none = serde_json::json!([]);
    event(
        db,
        unit,
        "meal_swapped",
        none,
        serde_json::json!({}),
        timestamp,
    )
    .await;
}

fn in_variant(experiment: &str, variant: &str) -> Value {
    serde_json::json!([{ "experiment_id": experiment, "variant_id": variant }])
}

/// The documented method (percentile_cont): linear interpolation between the closest ranks.
fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = p * (sorted.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

async fn daily(db: &tokio_postgres::Client, variant: &str, event_type: &str) -> Option<(i64, i64)> {
    db.query_opt(
        "SELECT events, units FROM exp.variant_daily
         WHERE experiment_id = 'exp_roll' AND variant_id = $1 AND event_type = $2
           AND day = (now() AT TIME ZONE 'UTC')::date - 1",
        &[&variant, &event_type],
    )
    .await
    .expect("variant_daily")
    .map(|r| (r.get(0), r.get(1)))
}

#[tokio::test]
async fn rollups_count_events_from_first_exposure_on_and_late_events_still_count() {
    let db = TestDb::create().await;
    let client = db.client().await;
    let yesterday = (Utc::now() - chrono::Duration::days(1))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc();
    let at = |h: i64, m: i64| yesterday + chrono::Duration::hours(h) + chrono::Duration::minutes(m);
    let latencies = [
        120.0, 80.0, 300.0, 95.5, 1000.0, 42.0, 61.25, 7.0, 880.0, 333.0,
    ];
    for (i, latency) in latencies.iter().enumerate() {
        let variant = if i % 2 == 0 { "a" } else { "b" };
        event(
            &client,
            &format!("r{i}"),
            "plan_generated",
            in_variant("exp_roll", variant),
            serde_json::json!({ "latency_ms": latency }),
            at(10, 0),
        )
        .await;
    }
    // r0 without context: before its first exposure (not counted), after it (counted for a).
    without_context(&client, "r0", at(9, 0)).await;
    without_context(&client, "r0", at(11, 0)).await;
    // r2 without context at 09:30: before its first exposure, so far.
    without_context(&client, "r2", at(9, 30)).await;

    let store = HealthStore::new(db.db());
    run_until_caught_up(&store).await;
    assert_eq!(daily(&client, "a", "plan_generated").await, Some((5, 5)));
    assert_eq!(daily(&client, "b", "plan_generated").await, Some((5, 5)));
    assert_eq!(daily(&client, "a", "meal_swapped").await, Some((1, 1)));

    // Late: yesterday's events arrive now, after the watermark passed their day. One more
    // plan of r1 (b), and an earlier exposure of r2 (a) that makes its 09:30 event count.
    event(
        &client,
        "r1",
        "plan_generated",
        in_variant("exp_roll", "b"),
        serde_json::json!({ "latency_ms": 555.5 }),
        at(12, 0),
    )
    .await;
    event(
        &client,
        "r2",
        "plan_generated",
        in_variant("exp_roll", "a"),
        serde_json::json!({ "latency_ms": 10.0 }),
        at(9, 0),
    )
    .await;
    run_until_caught_up(&store).await;
    assert_eq!(daily(&client, "b", "plan_generated").await, Some((6, 5)));
    assert_eq!(daily(&client, "a", "plan_generated").await, Some((6, 5)));
    assert_eq!(daily(&client, "a", "meal_swapped").await, Some((2, 2)));

    let b: Vec<f64> = [80.0, 95.5, 42.0, 7.0, 333.0, 555.5].to_vec();
    let stored = client
        .query_one(
            "SELECT count, mean::float8, p50, p95 FROM exp.variant_daily_metrics
             WHERE experiment_id = 'exp_roll' AND variant_id = 'b' AND event_type = 'plan_generated'
               AND metric = 'latency_ms'",
            &[],
        )
        .await
        .expect("metric row");
    assert_eq!(stored.get::<_, i64>(0), 6);
    let mean = b.iter().sum::<f64>() / 6.0;
    for (got, want) in [
        (stored.get::<_, f64>(1), mean),
        (stored.get::<_, f64>(2), percentile(&b, 0.5)),
        (stored.get::<_, f64>(3), percentile(&b, 0.95)),
    ] {
        assert!((got - want).abs() <= 1e-9 * want.abs(), "{got} != {want}");
    }
    // The job's percentiles are PostgreSQL's percentile_cont over the same rows.
    let reference: f64 = client
        .query_one(
            "SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY (metrics->>'latency_ms')::float8)
             FROM exp.events WHERE experiments @> '[{\"experiment_id\":\"exp_roll\",\"variant_id\":\"b\"}]'",
            &[],
        )
        .await
        .expect("reference")
        .get(0);
    assert_eq!(stored.get::<_, f64>(3), reference);

    // Counting again changes nothing: each event is counted once.
    run_until_caught_up(&store).await;
    let assignment_events: i64 = client
        .query_one(
            "SELECT sum(events)::bigint FROM exp.assignments WHERE experiment_id = 'exp_roll'",
            &[],
        )
        .await
        .expect("sum")
        .get(0);
    assert_eq!(assignment_events, 12);
    assert_eq!(daily(&client, "b", "plan_generated").await, Some((6, 5)));
}

#[tokio::test]
async fn a_stopped_experiment_keeps_its_window_and_reports_no_metrics() {
    let db = TestDb::create().await;
    let client = db.client().await;
    // Microseconds, as PostgreSQL keeps them.
    let now = DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).expect("now");
    let starts = now - chrono::Duration::hours(5);
    let ends = now - chrono::Duration::hours(2);
    // Registry ids are UUIDs (the form events carry).
    let (stopped_id, a, b) = (
        "0194a1c0-0000-7000-8000-0000000000e9",
        "0194a1c0-0000-7000-8000-00000000000a",
        "0194a1c0-0000-7000-8000-00000000000b",
    );
    let registry = serde_json::json!([{
        "experiment_id": stopped_id, "name": "Stopped", "unit_type": "user",
        "status": "stopped", "starts_at": starts, "ends_at": ends,
        "variants": [{"variant_id": a, "weight": 1}, {"variant_id": b, "weight": 1}]
    }]);
    client
        .execute("SELECT exp.load_experiments($1)", &[&registry])
        .await
        .expect("register");
    let split = format!("CASE WHEN i % 2 = 0 THEN '{a}' ELSE '{b}' END");
    let three_hours_ago = now - chrono::Duration::hours(3);
    exposures(&client, stopped_id, "t", 0..400, &split, three_hours_ago).await;
    // After the end, and with a variant the registry does not list.
    let unknown = "'0194a1c0-0000-7000-8000-00000000000f'";
    let after_end = now - chrono::Duration::minutes(30);
    exposures(&client, stopped_id, "t", 400..420, unknown, after_end).await;
    // Events without context: 10 inside the window's hours, 10 after it.
    for minutes in [180, 60] {
        for i in 0..10 {
            let at = now - chrono::Duration::minutes(minutes);
            without_context(&client, &format!("n{i}"), at).await;
        }
    }
    let store = HealthStore::new(db.db());
    let (_, rows) = run_until_caught_up(&store).await;
    let stopped = row(&rows, stopped_id);
    assert!(stopped.counts.registered && stopped.counts.stopped);
    assert_eq!(stopped.counts.window_end, ends);
    assert_eq!(stopped.counts.unknown_variant_events, 20);
    assert_eq!(stopped.counts.srm_units(), 400);
    assert!(health::emf(stopped, &Default::default()).is_none());
    // The window's hours hold the 400 exposures and 10 events without context.
    let hour = |t: DateTime<Utc>| t.timestamp() / 3600;
    assert!(hour(ends) > hour(now - chrono::Duration::hours(3)));
    assert_eq!(stopped.counts.window_events, 410);
    assert_eq!(stopped.counts.no_context_events, 10);
}

/// The watermark never passes a transaction still running: one that began first and commits
/// last is counted, exactly once, like the one that committed before it.
#[tokio::test]
async fn a_transaction_committing_after_a_later_one_is_still_counted() {
    let db = TestDb::create().await;
    let mut first = db.client().await;
    let second = db.client().await;
    let client = db.client().await;
    let store = HealthStore::new(db.db());
    let at = Utc::now() - chrono::Duration::minutes(1);

    let tx = first.transaction().await.expect("begin");
    event(
        &tx,
        "early",
        "plan_generated",
        in_variant("exp_order", "a"),
        serde_json::json!({}),
        at,
    )
    .await;
    let early_received: DateTime<Utc> = tx
        .query_one(
            "SELECT received_at FROM exp.events WHERE unit_id = 'early'",
            &[],
        )
        .await
        .expect("own row")
        .get(0);
    event(
        &second,
        "late",
        "plan_generated",
        in_variant("exp_order", "a"),
        serde_json::json!({}),
        at,
    )
    .await;

    // While the first is open the job may count, but never past its received_at.
    for _ in 0..3 {
        let (summary, _) = health::run(
            &store,
            &POLICY,
            Utc::now(),
            Instant::now() + Duration::from_secs(30),
        )
        .await
        .expect("health run");
        assert!(
            summary.processed_to.is_none_or(|t| t <= early_received),
            "{summary:?}"
        );
    }
    tx.commit().await.expect("commit");
    run_until_caught_up(&store).await;
    let counted: Vec<(String, i64)> = pairs(
        &client,
        "SELECT unit_id, events FROM exp.assignments WHERE experiment_id = 'exp_order' ORDER BY 1",
    )
    .await;
    assert_eq!(counted, vec![("early".into(), 1), ("late".into(), 1)]);
}

#[tokio::test]
async fn overlapping_runs_count_each_event_once() {
    let db = TestDb::create().await;
    let client = db.client().await;
    let store = HealthStore::new(db.db());
    for round in 0..4 {
        exposures(
            &client,
            "exp_overlap",
            &format!("o{round}_"),
            0..500,
            "'a'",
            Utc::now(),
        )
        .await;
        let deadline = Instant::now() + Duration::from_secs(30);
        let (a, b) = tokio::join!(
            health::run(&store, &POLICY, Utc::now(), deadline),
            health::run(&store, &POLICY, Utc::now(), deadline),
        );
        a.expect("first run");
        b.expect("second run");
    }
    run_until_caught_up(&store).await;
    let (units, events): (i64, i64) = client
        .query_one("SELECT count(*), sum(events)::bigint FROM exp.assignments WHERE experiment_id = 'exp_overlap'", &[])
        .await
        .map(|r| (r.get(0), r.get(1)))
        .expect("assignments");
    assert_eq!((units, events), (2000, 2000));
    let hourly: i64 = client
        .query_one("SELECT sum(events)::bigint FROM exp.context_hourly", &[])
        .await
        .expect("hourly")
        .get(0);
    assert_eq!(hourly, 2000);
}
