//! The health job's bounds (docs/health.md, "Cost" and "Bounds"): a window rewrites only the
//! rollup rows it changes, an ancient timestamp changes no day before retention, experiments
//! with no exposure in retention age out, only registered experiments get a metric dimension,
//! and extreme registry weights do not make a sample-ratio alarm.

use chrono::{DateTime, Utc};
use eis_store::HealthStore;
use eis_tests::pairs;
use serde_json::json;

use super::{event, exposures, in_variant, run_until_caught_up, without_context};
use archiver::health;

/// (variant, event_type, xmin) of exp_inc's rollup rows of `day`.
async fn rollup_rows(
    db: &tokio_postgres::Client,
    table: &str,
    day: DateTime<Utc>,
) -> Vec<(String, String, String)> {
    db.query(
        &format!(
            "SELECT variant_id, event_type, xmin::text FROM {table}
             WHERE experiment_id = 'exp_inc' AND day = ($1 AT TIME ZONE 'UTC')::date
             ORDER BY 1, 2"
        ),
        &[&day],
    )
    .await
    .expect("rollup rows")
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

/// Before: every window recomputed (deleted and re-inserted) the rollups of each (experiment,
/// day) it touched, so a day's rows were rewritten whatever the window held. Now a window
/// writes only the rows its events change: variant a's rows, untouched by a window of variant
/// b's events, keep their row version (xmin); b's change, with the right counts.
#[tokio::test]
async fn a_window_rewrites_only_the_rollup_rows_it_changes() {
    let db = super::TestDb::create().await;
    let client = db.client().await;
    let store = HealthStore::new(db.db());
    let now = Utc::now() - chrono::Duration::minutes(5);
    // Many values of one key, to check the percentiles against percentile_cont below.
    client
        .execute(
            r#"INSERT INTO exp.events (event_id, event_type, unit_type, unit_id, experiments, metrics, "timestamp")
               SELECT gen_random_uuid(), 'plan_generated', 'user', 'u' || i,
                      jsonb_build_array(jsonb_build_object('experiment_id', 'exp_inc',
                          'variant_id', CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END)),
                      jsonb_build_object('latency_ms', 5 + (i * 7919) % 3000 + (i % 13) / 7.0), $1
               FROM generate_series(0, 1999) i"#,
            &[&now],
        )
        .await
        .expect("exposures");
    run_until_caught_up(&store).await;
    let a_before: Vec<_> = rollup_rows(&client, "exp.variant_daily", now)
        .await
        .into_iter()
        .filter(|r| r.0 == "a")
        .collect();
    let metrics_before = rollup_rows(&client, "exp.variant_daily_metrics", now).await;
    assert_eq!(a_before.len(), 1);

    // A window of variant b's units only: one more plan each for 10 of them, and an event
    // without context (counts for b).
    for i in (1..20).step_by(2) {
        event(
            &client,
            &format!("u{i}"),
            "plan_generated",
            in_variant("exp_inc", "b"),
            json!({ "latency_ms": 1.0 }),
            now,
        )
        .await;
    }
    without_context(&client, "u1", now).await;
    let (summary, _) = run_until_caught_up(&store).await;
    assert_eq!(summary.events, 11);
    let after = rollup_rows(&client, "exp.variant_daily", now).await;
    let a_after: Vec<_> = after.iter().filter(|r| r.0 == "a").cloned().collect();
    assert_eq!(a_after, a_before, "variant a's rollup was rewritten");
    let metrics_after = rollup_rows(&client, "exp.variant_daily_metrics", now).await;
    assert_eq!(
        metrics_after.iter().find(|r| r.0 == "a"),
        metrics_before.iter().find(|r| r.0 == "a"),
        "variant a's metrics were rewritten"
    );
    let counts: Vec<(String, String, i64, i64)> = client
        .query(
            "SELECT variant_id, event_type, events, units FROM exp.variant_daily
             WHERE experiment_id = 'exp_inc' ORDER BY 1, 2",
            &[],
        )
        .await
        .expect("counts")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        counts,
        vec![
            ("a".into(), "plan_generated".into(), 1000, 1000),
            ("b".into(), "meal_swapped".into(), 1, 1),
            ("b".into(), "plan_generated".into(), 1010, 1000),
        ]
    );

    // p50/p95 against percentile_cont over the same values: within the documented 0.5%.
    for variant in ["a", "b"] {
        let row = client
            .query_one(
                r#"SELECT m.count, m.mean::float8, m.p50, m.p95, r.count, r.mean::float8, r.p50, r.p95
                   FROM exp.variant_daily_metrics m,
                   LATERAL (SELECT count(*), avg((metrics->>'latency_ms')::numeric) AS mean,
                                   percentile_cont(0.5) WITHIN GROUP (ORDER BY (metrics->>'latency_ms')::float8) AS p50,
                                   percentile_cont(0.95) WITHIN GROUP (ORDER BY (metrics->>'latency_ms')::float8) AS p95
                            FROM exp.events
                            WHERE experiments @> jsonb_build_array(jsonb_build_object(
                                'experiment_id', 'exp_inc', 'variant_id', m.variant_id))) r
                   WHERE m.experiment_id = 'exp_inc' AND m.variant_id = $1 AND m.metric = 'latency_ms'"#,
                &[&variant],
            )
            .await
            .expect("metrics against the reference");
        assert_eq!(row.get::<_, i64>(0), row.get::<_, i64>(4));
        let mean: (f64, f64) = (row.get(1), row.get(5));
        assert!((mean.0 - mean.1).abs() <= 1e-12 * mean.1, "{mean:?}");
        for (got, want) in [
            (row.get::<_, f64>(2), row.get::<_, f64>(6)),
            (row.get(3), row.get(7)),
        ] {
            assert!(
                (got - want).abs() <= 0.005 * want,
                "{variant}: {got} vs {want}"
            );
        }
    }
}

/// Before: a first exposure dated years back made the window recompute every day from then to
/// today, and delete the rollups of days whose events retention had dropped. Now days before
/// retention are never changed: their rows stay, and the window changes only today's rollup.
#[tokio::test]
async fn an_ancient_first_exposure_changes_no_day_before_retention() {
    let db = super::TestDb::create().await;
    let client = db.client().await;
    let store = HealthStore::new(db.db());
    // A rollup day kept from when its events were still in PostgreSQL (200 days ago).
    client
        .batch_execute(
            "INSERT INTO exp.variant_daily VALUES
               ('exp_old', 'a', (now() AT TIME ZONE 'UTC')::date - 200, 'plan_generated', 7, 7)",
        )
        .await
        .expect("history");
    let kept: String = client
        .query_one("SELECT xmin::text FROM exp.variant_daily", &[])
        .await
        .expect("xmin")
        .get(0);
    let now = Utc::now() - chrono::Duration::minutes(5);
    let years_ago = now - chrono::Duration::days(3 * 365);
    event(
        &client,
        "ancient",
        "plan_generated",
        in_variant("exp_old", "a"),
        json!({}),
        years_ago,
    )
    .await;
    without_context(&client, "ancient", now).await;
    // Another unit's exposure today keeps the experiment in the retention window.
    event(
        &client,
        "fresh",
        "plan_generated",
        in_variant("exp_old", "a"),
        json!({}),
        now,
    )
    .await;
    let (summary, _) = run_until_caught_up(&store).await;
    assert_eq!(summary.rollup_days, 1, "{summary:?}");
    let rows: Vec<(i32, String, i64)> = client
        .query(
            "SELECT (now() AT TIME ZONE 'UTC')::date - day, xmin::text, events
             FROM exp.variant_daily WHERE experiment_id = 'exp_old' ORDER BY day, event_type",
            &[],
        )
        .await
        .expect("rollups")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!((rows[0].0, &rows[0].1, rows[0].2), (200, &kept, 7));
    // Today: the ancient unit's meal_swapped, the fresh unit's plan.
    assert_eq!((rows[1].0, rows[1].2), (0, 1));
    assert_eq!((rows[2].0, rows[2].2), (0, 1));
    // The exposure itself is known: the unit is assigned from then.
    let first: DateTime<Utc> = client
        .query_one(
            "SELECT first_exposure_at FROM exp.assignments WHERE unit_id = 'ancient'",
            &[],
        )
        .await
        .expect("assignment")
        .get(0);
    assert!((first - years_ago).num_milliseconds().abs() < 1);
}

/// Before: exp.assignments never aged, so every experiment ever seen kept a health row (and
/// its metrics) forever. Now an experiment with no exposure in the retention window loses its
/// assignments and so its health row; a live one keeps them.
#[tokio::test]
async fn an_experiment_with_no_exposure_in_retention_ages_out() {
    let db = super::TestDb::create().await;
    let client = db.client().await;
    let store = HealthStore::new(db.db());
    let now = Utc::now() - chrono::Duration::minutes(5);
    exposures(
        &client,
        "exp_dead",
        "d",
        0..300,
        "'a'",
        now - chrono::Duration::days(100),
    )
    .await;
    exposures(&client, "exp_live", "l", 0..300, "'a'", now).await;
    let (summary, rows) = run_until_caught_up(&store).await;
    assert_eq!(summary.aged_rows, 300, "{summary:?}");
    let ids: Vec<&str> = rows
        .iter()
        .map(|r| r.counts.experiment_id.as_str())
        .collect();
    assert_eq!(ids, vec!["exp_live"]);
    let per_experiment: Vec<(String, i64)> = pairs(
        &client,
        "SELECT experiment_id, count(*) FROM exp.assignments GROUP BY 1 ORDER BY 1",
    )
    .await;
    assert_eq!(per_experiment, vec![("exp_live".into(), 300)]);
    let stored: Vec<String> = client
        .query("SELECT experiment_id FROM exp.experiment_health", &[])
        .await
        .expect("health rows")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(stored, vec!["exp_live".to_string()]);
}

/// Before: every experiment id an event carried got its own `Experiment` dimension. Now only
/// registered experiments do; 40 unregistered ones are one `other` document, their sums.
#[tokio::test]
async fn unregistered_experiments_never_get_a_metric_dimension_of_their_own() {
    let db = super::TestDb::create().await;
    let client = db.client().await;
    let store = HealthStore::new(db.db());
    let (id, a, b) = registered(&client, 1.0).await;
    let now = Utc::now() - chrono::Duration::minutes(5);
    let split = format!("CASE WHEN i % 2 = 0 THEN '{a}' ELSE '{b}' END");
    exposures(&client, &id, "r", 0..200, &split, now).await;
    for n in 0..40 {
        // Each minted id: 5 units, one of them seen in both variants.
        let minted = format!("minted_{n}");
        exposures(&client, &minted, &format!("m{n}_"), 0..5, "'x'", now).await;
        exposures(&client, &minted, &format!("m{n}_"), 0..1, "'y'", now).await;
    }
    let (_, rows) = run_until_caught_up(&store).await;
    assert_eq!(rows.len(), 41);
    let docs = health::emf_documents(&rows, &Default::default());
    let dims: Vec<&str> = docs
        .iter()
        .filter_map(|d| d["Experiment"].as_str())
        .collect();
    assert_eq!(dims, vec![id.as_str(), health::OTHER]);
    let other = &docs[1];
    assert_eq!(other["UnregisteredExperiments"], 40);
    assert_eq!(other["CrossoverUnits"], 40);
    assert_eq!(other["CrossoverShare"], 0.2);
    assert!(other.get("SrmPValue").is_none(), "{other}");
}

/// Registry weights near f64::MAX used to overflow the sum of weights: every expected count
/// was 0 and the p-value 0, an alarm on a perfect split. Now the split is 50/50, p = 1.
#[tokio::test]
async fn extreme_registry_weights_make_no_sample_ratio_alarm() {
    let db = super::TestDb::create().await;
    let client = db.client().await;
    let store = HealthStore::new(db.db());
    let (id, a, b) = registered(&client, 1e308).await;
    let now = Utc::now() - chrono::Duration::minutes(5);
    let split = format!("CASE WHEN i % 2 = 0 THEN '{a}' ELSE '{b}' END");
    exposures(&client, &id, "w", 0..1000, &split, now).await;
    let (_, rows) = run_until_caught_up(&store).await;
    let row = super::row(&rows, &id);
    assert!(row.srm_checked);
    assert_eq!(row.expected_shares, vec![Some(0.5), Some(0.5)]);
    let doc = health::emf(row, &Default::default()).expect("running");
    let p = doc["SrmPValue"].as_f64().expect("SrmPValue");
    assert!((p - 1.0).abs() < 1e-12, "{doc}");
}

/// Registers a running two-variant experiment, both variants of `weight`; its ids.
async fn registered(db: &tokio_postgres::Client, weight: f64) -> (String, String, String) {
    let (id, a, b) = (
        "0194a1c0-0000-7000-8000-0000000000e7",
        "0194a1c0-0000-7000-8000-00000000007a",
        "0194a1c0-0000-7000-8000-00000000007b",
    );
    let registry = json!([{
        "experiment_id": id, "unit_type": "user", "starts_at": "2026-01-01T00:00:00Z",
        "variants": [{"variant_id": a, "weight": weight}, {"variant_id": b, "weight": weight}]
    }]);
    db.execute("SELECT exp.load_experiments($1)", &[&registry])
        .await
        .expect("register");
    (id.into(), a.into(), b.into())
}

/// The rule's results, recomputed from exp.events as the job did before counting by
/// increments: rollup rows that differ from the stored ones, count/mean that differ, and the
/// largest relative error of p50/p95.
const AGAINST_A_RECOUNT: &str = r#"
WITH c AS (
    SELECT a.experiment_id, a.variant_id, (e."timestamp" AT TIME ZONE 'UTC')::date AS day,
           e.event_type, e.unit_type, e.unit_id, e.metrics
    FROM exp.events e
    JOIN exp.assignments a
      ON a.unit_type = e.unit_type AND a.unit_id = e.unit_id AND a.first_exposure_at <= e."timestamp"
    WHERE NOT e.experiments @> jsonb_build_array(jsonb_build_object('experiment_id', a.experiment_id))
       OR e.experiments @> jsonb_build_array(
              jsonb_build_object('experiment_id', a.experiment_id, 'variant_id', a.variant_id))
), ref AS (
    SELECT experiment_id, variant_id, day, event_type, count(*) AS events,
           count(DISTINCT (unit_type, unit_id)) AS units
    FROM c GROUP BY 1, 2, 3, 4
), refm AS (
    SELECT experiment_id, variant_id, day, event_type, count(*) AS n,
           avg((metrics ->> 'v')::numeric) AS mean,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY (metrics ->> 'v')::float8) AS p50,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY (metrics ->> 'v')::float8) AS p95
    FROM c WHERE metrics ? 'v' GROUP BY 1, 2, 3, 4
)
SELECT (SELECT count(*) FROM ref FULL JOIN exp.variant_daily v USING (experiment_id, variant_id, day, event_type)
        WHERE v.events IS DISTINCT FROM ref.events OR v.units IS DISTINCT FROM ref.units),
       (SELECT count(*) FROM refm FULL JOIN exp.variant_daily_metrics m USING (experiment_id, variant_id, day, event_type)
        WHERE m.count IS DISTINCT FROM refm.n OR abs(m.mean - refm.mean) > 1e-12 * abs(refm.mean)
           OR m.mean IS NULL OR refm.mean IS NULL),
       (SELECT coalesce(max(greatest(abs(m.p50 - refm.p50) / abs(refm.p50), abs(m.p95 - refm.p95) / abs(refm.p95))), 0)
        FROM refm JOIN exp.variant_daily_metrics m USING (experiment_id, variant_id, day, event_type)),
       (SELECT count(*) FROM exp.variant_daily)
"#;

/// Counting by increments gives what recounting from exp.events gives, over windows that
/// bring late events, earlier first exposures (back-fills across days), crossover units and
/// events without context.
#[tokio::test]
async fn increments_over_many_windows_equal_a_recount_from_the_events() {
    let db = super::TestDb::create().await;
    let client = db.client().await;
    let store = HealthStore::new(db.db());
    // Each round: 1 500 events of 150 units over the last three days, a third without
    // context, the rest naming exp_eq (variant by unit, 3% the other variant); metric v.
    for round in 0..4 {
        client
            .execute(
                r#"INSERT INTO exp.events (event_id, event_type, unit_type, unit_id, experiments, metrics, "timestamp")
                   SELECT gen_random_uuid(), (ARRAY['plan_generated', 'meal_swapped', 'user_edit'])[1 + i % 3],
                          'user', 'q' || (i * 7 + $1) % 150,
                          CASE WHEN i % 3 = 0 THEN '[]'::jsonb
                               ELSE jsonb_build_array(jsonb_build_object('experiment_id', 'exp_eq', 'variant_id',
                                   CASE WHEN ((i * 7 + $1) % 150 + (i % 33 = 0)::int) % 2 = 0 THEN 'a' ELSE 'b' END)) END,
                          jsonb_build_object('v', (i * 37 + $1) % 1000 - 100 + (i % 7) / 4.0),
                          now() - interval '5 minutes' - ((i * 101 + $1 * 997) % 4000) * interval '1 minute'
                   FROM generate_series(1, 1500) i"#,
                &[&round],
            )
            .await
            .expect("round of events");
        run_until_caught_up(&store).await;
    }
    let row = client
        .query_one(AGAINST_A_RECOUNT, &[])
        .await
        .expect("against a recount");
    let (rollups, metrics, worst, rows): (i64, i64, f64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert!(rows > 10, "{rows} rollup rows");
    assert_eq!((rollups, metrics), (0, 0));
    assert!(worst <= 0.005, "p50/p95 off by {worst}");
}
