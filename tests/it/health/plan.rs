//! The tracking plan's health (docs/health.md, "Plan health"): the job counts the events the
//! plan checked into exp.plan_daily and their failing paths into exp.plan_daily_paths, at most
//! 20 paths per (day, type, version) plus '(other)', across windows; unplanned and unchecked
//! events are not counted; the violation share is reported for planned types only.

use std::time::Duration;

use eis_store::health::{MAX_PATHS, OTHER_PATH};
use eis_store::HealthStore;
use serde_json::json;

use super::{run_until_caught_up, TestDb};
use archiver::health;

/// Inserts one event of `event_type` per entry of `paths` (its schema_violation), received now,
/// with `version` and `flags`.
async fn checked(
    db: &tokio_postgres::Client,
    event_type: &str,
    version: Option<&str>,
    flags: &[&str],
    paths: &[Option<String>],
) {
    db.execute(
        r#"INSERT INTO exp.events (event_id, event_type, unit_type, unit_id, "timestamp", flags,
                                   schema_version, schema_violation)
           SELECT gen_random_uuid(), $1, 'user', 'u' || n, now(), $2, $3, p
           FROM unnest($4::text[]) WITH ORDINALITY AS x(p, n)"#,
        &[&event_type, &flags, &version, &paths],
    )
    .await
    .expect("insert events");
}

fn path(name: &str) -> Option<String> {
    Some(format!("/payload/{name}"))
}

const VIOLATION: &[&str] = &["schema_violation"];

/// (type, version, events, violations) of every exp.plan_daily row, summed over days.
async fn daily(db: &tokio_postgres::Client) -> Vec<(String, String, i64, i64)> {
    db.query(
        "SELECT event_type, schema_version, sum(events)::bigint, sum(violations)::bigint
         FROM exp.plan_daily GROUP BY 1, 2 ORDER BY 1, 2",
        &[],
    )
    .await
    .expect("plan_daily")
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    .collect()
}

/// (path, events) of one key's exp.plan_daily_paths rows (one day: see the test's start).
async fn paths(db: &tokio_postgres::Client, event_type: &str, version: &str) -> Vec<(String, i64)> {
    db.query(
        "SELECT path, events FROM exp.plan_daily_paths
         WHERE event_type = $1 AND schema_version = $2 ORDER BY 1",
        &[&event_type, &version],
    )
    .await
    .expect("plan_daily_paths")
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

#[tokio::test]
async fn the_job_counts_checked_events_and_bounds_their_paths() {
    // Both rounds must fall on one UTC day of received_at.
    let to_midnight = 86_400 - chrono::Utc::now().timestamp().rem_euclid(86_400);
    if to_midnight < 60 {
        tokio::time::sleep(Duration::from_secs(to_midnight.unsigned_abs() + 1)).await;
    }
    let db = TestDb::create().await;
    let client = db.client().await;
    let plan = serde_json::from_value(json!({"types": [
        {"event_type": "pantry_updated", "mode": "flag", "versions": [
            {"version": "1-0-0", "payload": true}, {"version": "1-1-0", "payload": true}]},
        {"event_type": "plan_generated", "mode": "quarantine", "versions": [
            {"version": "1-0-0", "payload": true}]}]}))
    .expect("a plan document");
    eis_store::plan::store(&db.db(), &plan)
        .await
        .expect("the plan");

    // Matched and stamped.
    checked(
        &client,
        "pantry_updated",
        Some("1-1-0"),
        &[],
        &vec![None; 30],
    )
    .await;
    checked(
        &client,
        "pantry_updated",
        Some("1-0-0"),
        &[],
        &vec![None; 2],
    )
    .await;
    // Flagged against 1-1-0 at 25 paths: p00..p04 three times each, p05..p24 once.
    let mut failing: Vec<Option<String>> = Vec::new();
    for i in 0..25 {
        let times = if i < 5 { 3 } else { 1 };
        failing.extend(std::iter::repeat_n(path(&format!("p{i:02}")), times));
    }
    checked(
        &client,
        "pantry_updated",
        Some("1-1-0"),
        VIOLATION,
        &failing,
    )
    .await;
    // A version the plan lacks (no version checked), and a path longer than any kept.
    checked(
        &client,
        "pantry_updated",
        None,
        VIOLATION,
        &[Some("/schema".into())],
    )
    .await;
    let long = path(&"x".repeat(300));
    checked(&client, "pantry_updated", Some("1-0-0"), VIOLATION, &[long]).await;
    // Not checked by the plan: unplanned (flagged or not), and no flag at all.
    checked(&client, "rogue", None, &["unplanned_event_type"], &[None]).await;
    checked(&client, "meal_swapped", None, &[], &[None, None]).await;
    // Written around the plan: counted, but never a metric dimension (not a planned type).
    checked(&client, "rogue", Some("9-9-9"), VIOLATION, &[path("x")]).await;

    let store = HealthStore::new(db.db());
    let (summary, _) = run_until_caught_up(&store).await;
    let row = |t: &str, v: &str, e, x| (t.to_string(), v.to_string(), e, x);
    assert_eq!(
        daily(&client).await,
        vec![
            row("pantry_updated", "", 1, 1),
            row("pantry_updated", "1-0-0", 3, 1),
            row("pantry_updated", "1-1-0", 65, 35),
            row("rogue", "9-9-9", 1, 1),
        ]
    );
    let mut want: Vec<(String, i64)> = (0..20)
        .map(|i| (format!("/payload/p{i:02}"), if i < 5 { 3 } else { 1 }))
        .collect();
    want.push((OTHER_PATH.into(), 5));
    want.sort();
    assert_eq!(paths(&client, "pantry_updated", "1-1-0").await, want);
    assert_eq!(want.len(), usize::try_from(MAX_PATHS).expect("small") + 1);
    assert_eq!(
        paths(&client, "pantry_updated", "").await,
        vec![("/schema".to_string(), 1)]
    );
    let cut = paths(&client, "pantry_updated", "1-0-0").await;
    assert_eq!(cut.len(), 1);
    assert_eq!(cut[0].0.chars().count(), 256);

    // The share of planned types only: pantry_updated's 37 of 69; plan_generated has no
    // checked events, `rogue` is not planned.
    assert_eq!(summary.plan.len(), 1, "{:?}", summary.plan);
    let share = &summary.plan[0];
    assert_eq!(
        (share.event_type.as_str(), share.events, share.violations),
        ("pantry_updated", 69, 37)
    );
    assert!((share.share_percent - 100.0 * 37.0 / 69.0).abs() < 1e-9);
    let docs = health::plan::emf_documents(&summary.plan, &Default::default());
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["EventType"], "pantry_updated");

    // A later window: a path held adds to its row; new paths go to '(other)', the key
    // holding 20 already.
    checked(
        &client,
        "pantry_updated",
        Some("1-1-0"),
        VIOLATION,
        &[path("p00"), path("p24"), path("p99")],
    )
    .await;
    run_until_caught_up(&store).await;
    let now = paths(&client, "pantry_updated", "1-1-0").await;
    assert_eq!(now.len(), 21);
    assert!(now.contains(&("/payload/p00".into(), 4)), "{now:?}");
    assert!(now.contains(&(OTHER_PATH.into(), 7)), "{now:?}");
    assert!(!now.iter().any(|(p, _)| p == "/payload/p99"), "{now:?}");
}
