//! Erasure's PostgreSQL step, exp.erase_unit (migration V11), against real PostgreSQL: the
//! unit's covered events leave exp.events, exp.event_ids and exp.pending_handoffs, and the
//! health job's rollups end as a recount without them gives. The recount is the real job
//! (eis_store's HealthStore) over the same events minus the covered ones, in a database of its
//! own; every table is compared row by row, p50/p95 and the buckets' lo/hi included.
//!
//! The events are built so that the paths that need more than the unit's own rows run: a bucket
//! that keeps values but loses its smallest or its largest (lo/hi re-read from its key), a key
//! whose sum's scale was the unit's (its mean would differ in the 17th digit), exposures whose
//! loss moves a first exposure later (a remaining event stops counting) or removes the
//! assignment, events before the retention floor, events the job has not counted yet, and a
//! unit of another type with the same id (untouched).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use eis_store::{Advance, HealthStore, WatermarkPolicy};
use eis_tests::TestDb;
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

const POLICY: WatermarkPolicy = eis_tests::archive::HEALTH_POLICY.watermark;

const ERASE: &str = "SELECT exp.erase_unit($1, $2, $3, $4, $5)";

/// The unit erased: ("user", "u-1").
const UNIT_TYPE: &str = "user";
const UNIT_ID: &str = "u-1";

/// When the event reached the database.
#[derive(Debug, Clone, Copy)]
enum Received {
    /// Before the first count: the job counts it.
    At(DateTime<Utc>),
    /// After the first count, by the database's clock (after `erased_at`): not counted yet
    /// when the unit is erased.
    Late,
}

#[derive(Debug, Clone)]
struct Event {
    id: Uuid,
    unit_type: &'static str,
    unit_id: &'static str,
    event_type: &'static str,
    /// JSON text (kept as text: the metrics' decimals matter).
    experiments: &'static str,
    metrics: &'static str,
    ts: DateTime<Utc>,
    received: Received,
}

impl Event {
    /// docs/privacy.md's rule: the unit's events received or timestamped before `erased_at`,
    /// or all of them when suppressed.
    fn covered(&self, suppress: bool, erased_at: DateTime<Utc>) -> bool {
        let received_before = match self.received {
            Received::At(at) => at < erased_at,
            Received::Late => false,
        };
        (self.unit_type, self.unit_id) == (UNIT_TYPE, UNIT_ID)
            && (suppress || received_before || self.ts < erased_at)
    }
}

/// The data of every case: its events, the pending hand-off rows (indexes into the events)
/// and the erasure time.
struct Scenario {
    events: Vec<Event>,
    pending: Vec<Vec<usize>>,
    erased_at: DateTime<Utc>,
    /// UTC days that get a partition of their own (the rest go to the default partition).
    days: Vec<chrono::NaiveDate>,
}

fn scenario() -> Scenario {
    // Microseconds, as PostgreSQL keeps them.
    let now = DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).expect("now");
    let minutes = chrono::Duration::minutes;
    let midnight = |days_ago: i64| {
        (now - chrono::Duration::days(days_ago))
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
    };
    let (d2, d1) = (midnight(2), midnight(1));
    let at = |day: DateTime<Utc>, h: i64, m: i64| day + chrono::Duration::hours(h) + minutes(m);
    let early = |m: i64| Received::At(now - minutes(m));
    let erased_at = now - minutes(10);
    let (a_a, a_b) = (
        r#"[{"experiment_id":"exp_a","variant_id":"a"}]"#,
        r#"[{"experiment_id":"exp_a","variant_id":"b"}]"#,
    );
    let (b_x, b_y) = (
        r#"[{"experiment_id":"exp_b","variant_id":"x"}]"#,
        r#"[{"experiment_id":"exp_b","variant_id":"y"}]"#,
    );
    let a_a_b_x = r#"[{"experiment_id":"exp_a","variant_id":"a"},{"experiment_id":"exp_b","variant_id":"x"}]"#;
    let none = "[]";
    let ev = |unit_id, event_type, experiments, metrics, ts, received| Event {
        id: Uuid::now_v7(),
        unit_type: UNIT_TYPE,
        unit_id,
        event_type,
        experiments,
        metrics,
        ts,
        received,
    };
    let events = vec![
        // 0..=11: u-1. Its largest value of a shared bucket (100.0), one alone in its bucket
        // (7.25), its smallest of another (248) with the key's most decimals, a crossover in
        // exp_b, and an exposure 100 days ago (before the retention floor: counted in the
        // assignment and the hourly context, not in the rollups).
        ev(
            "u-1",
            "plan_generated",
            a_a,
            r#"{"latency_ms":100.0}"#,
            at(d2, 9, 0),
            early(55),
        ),
        ev(
            "u-1",
            "meal_swapped",
            none,
            r#"{"latency_ms":7.25}"#,
            at(d2, 11, 0),
            early(54),
        ),
        ev(
            "u-1",
            "plan_generated",
            a_a_b_x,
            r#"{"latency_ms":248,"tokens":0.12345678901234567891}"#,
            at(d1, 10, 0),
            early(53),
        ),
        ev(
            "u-1",
            "user_edit",
            b_y,
            r#"{"edit_count":3}"#,
            at(d1, 12, 0),
            early(52),
        ),
        ev(
            "u-1",
            "meal_swapped",
            none,
            r#"{"latency_ms":42}"#,
            at(d1, 13, 0),
            early(51),
        ),
        ev(
            "u-1",
            "plan_generated",
            a_a,
            "{}",
            now - chrono::Duration::days(100),
            early(50),
        ),
        // Timestamped before erased_at, received after it.
        ev(
            "u-1",
            "meal_swapped",
            none,
            r#"{"latency_ms":9}"#,
            now - minutes(15),
            Received::At(now - minutes(3)),
        ),
        // Received before erased_at, timestamped after it.
        ev(
            "u-1",
            "plan_generated",
            b_x,
            r#"{"latency_ms":5}"#,
            now - minutes(1),
            early(30),
        ),
        // After erased_at: covered only when suppressed. A new first exposure to exp_a/a.
        ev(
            "u-1",
            "plan_generated",
            a_a,
            r#"{"latency_ms":300}"#,
            now - minutes(5),
            Received::At(now - minutes(4)),
        ),
        ev(
            "u-1",
            "meal_swapped",
            none,
            r#"{"latency_ms":12}"#,
            now - minutes(4),
            Received::At(now - minutes(3)),
        ),
        // Not counted yet when erased: one covered (timestamped before), one not.
        ev(
            "u-1",
            "meal_swapped",
            none,
            "{}",
            at(d1, 15, 0),
            Received::Late,
        ),
        ev(
            "u-1",
            "plan_generated",
            a_a,
            r#"{"latency_ms":301}"#,
            now,
            Received::Late,
        ),
        // 12..: the others. Same buckets as u-1's 100.0 (its largest) and 248 (its smallest).
        ev(
            "u-2",
            "plan_generated",
            a_a,
            r#"{"latency_ms":99.5}"#,
            at(d2, 8, 0),
            early(58),
        ),
        ev(
            "u-2",
            "meal_swapped",
            none,
            r#"{"latency_ms":7.0}"#,
            at(d2, 12, 0),
            early(57),
        ),
        ev(
            "u-2",
            "plan_generated",
            a_a,
            r#"{"latency_ms":249.5}"#,
            at(d1, 10, 30),
            early(56),
        ),
        ev(
            "u-3",
            "plan_generated",
            a_a,
            r#"{"latency_ms":99.8}"#,
            at(d2, 10, 0),
            early(58),
        ),
        ev(
            "u-3",
            "plan_generated",
            a_a_b_x,
            r#"{"latency_ms":250,"tokens":10}"#,
            at(d1, 11, 0),
            early(57),
        ),
        ev(
            "u-4",
            "plan_generated",
            a_b,
            r#"{"latency_ms":120}"#,
            at(d2, 9, 30),
            early(56),
        ),
        ev(
            "u-4",
            "meal_swapped",
            none,
            r#"{"latency_ms":42}"#,
            at(d1, 13, 0),
            early(55),
        ),
        // exp_b/x's tokens: 10, 20, 20 stay (mean 50/3), u-1's 20-decimal value goes.
        ev(
            "u-5",
            "plan_generated",
            b_x,
            r#"{"latency_ms":5,"tokens":20}"#,
            at(d1, 10, 0),
            early(54),
        ),
        ev(
            "u-5",
            "plan_generated",
            b_x,
            r#"{"tokens":20}"#,
            at(d1, 14, 0),
            early(53),
        ),
        ev(
            "u-6",
            "user_edit",
            b_y,
            r#"{"edit_count":3}"#,
            at(d1, 12, 30),
            early(52),
        ),
        ev(
            "u-6",
            "plan_generated",
            a_b,
            r#"{"latency_ms":300}"#,
            now - minutes(20),
            early(19),
        ),
        ev(
            "u-7",
            "meal_swapped",
            none,
            "{}",
            now - minutes(30),
            early(29),
        ),
        ev(
            "u-7",
            "plan_generated",
            a_a,
            "{}",
            now - minutes(6),
            Received::Late,
        ),
        // Another unit type, the same id.
        Event {
            unit_type: "team",
            ..ev(
                "u-1",
                "plan_generated",
                a_b,
                r#"{"latency_ms":111}"#,
                at(d1, 10, 0),
                early(50),
            )
        },
    ];
    let team = events.len() - 1;
    Scenario {
        events,
        // Mixed; u-1's only (emptied); others' only; another type's key with u-1's late one.
        pending: vec![vec![0, 12, 8, 15], vec![2, 3], vec![17, 19], vec![team, 11]],
        erased_at,
        days: vec![d2.date_naive(), d1.date_naive(), now.date_naive()],
    }
}

async fn insert(client: &tokio_postgres::Client, events: &[&Event]) {
    for e in events {
        let received = match e.received {
            Received::At(at) => Some(at),
            Received::Late => None,
        };
        client
            .execute(
                r#"WITH e AS (
                       INSERT INTO exp.events (event_id, event_type, unit_type, unit_id, experiments,
                                               metrics, "timestamp", received_at)
                       VALUES ($1, $2, $3, $4, $5::text::jsonb, $6::text::jsonb, $7, coalesce($8, now()))
                       RETURNING event_id, "timestamp")
                   INSERT INTO exp.event_ids (event_id, "timestamp", digest)
                   SELECT event_id, "timestamp", '\x'::bytea FROM e"#,
                &[
                    &e.id,
                    &e.event_type,
                    &e.unit_type,
                    &e.unit_id,
                    &e.experiments,
                    &e.metrics,
                    &e.ts,
                    &received,
                ],
            )
            .await
            .expect("insert event");
    }
}

/// Runs the health job's counting until it has counted everything committed before the call.
async fn count_all(db: &TestDb) {
    let store = HealthStore::new(db.db());
    let target = Utc::now();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let advance = store.advance(POLICY).await.expect("health window");
        if matches!(advance, Advance::Counted { more: true, .. }) {
            continue;
        }
        let at = store.processed_to().await.expect("watermark");
        if at.is_some_and(|t| t >= target) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the health job did not catch up within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// exp.erase_unit as the application's role, with the job's retention.
async fn erase(db: &TestDb, erased_at: DateTime<Utc>, suppress: bool) -> Value {
    let client = db.client().await;
    client
        .batch_execute("SET ROLE eis_app")
        .await
        .expect("become eis_app");
    let keep_days = i32::try_from(POLICY.retention_days).expect("retention days");
    client
        .query_one(
            ERASE,
            &[&UNIT_TYPE, &UNIT_ID, &erased_at, &suppress, &keep_days],
        )
        .await
        .expect("exp.erase_unit")
        .get(0)
}

/// Every table erasure touches, one text line per row ('|'-separated, the rollups' first two
/// fields their experiment and day). Numerics by value (trim_scale), doubles exactly (their
/// shortest exact text).
const TABLES: [(&str, &str); 9] = [
    (
        "events",
        r#"SELECT concat_ws('|', event_id, "timestamp", unit_type, unit_id, event_type) FROM exp.events"#,
    ),
    (
        "event_ids",
        r#"SELECT concat_ws('|', event_id, "timestamp") FROM exp.event_ids"#,
    ),
    (
        "pending_handoffs",
        "SELECT concat_ws('|', event_ids, timestamps) FROM exp.pending_handoffs",
    ),
    (
        "assignments",
        "SELECT concat_ws('|', experiment_id, unit_type, unit_id, variant_id, first_exposure_at,
                          last_exposure_at, events) FROM exp.assignments",
    ),
    (
        "variant_daily_units",
        "SELECT concat_ws('|', experiment_id, day, variant_id, event_type, unit_type, unit_id)
         FROM exp.variant_daily_units",
    ),
    (
        "variant_daily",
        "SELECT concat_ws('|', experiment_id, day, variant_id, event_type, events, units)
         FROM exp.variant_daily",
    ),
    (
        "variant_daily_metrics",
        "SELECT concat_ws('|', experiment_id, day, variant_id, event_type, metric, count,
                          trim_scale(sum), trim_scale(mean), p50, p95) FROM exp.variant_daily_metrics",
    ),
    (
        "variant_daily_metric_buckets",
        "SELECT concat_ws('|', experiment_id, day, variant_id, event_type, metric, bucket, count, lo, hi)
         FROM exp.variant_daily_metric_buckets",
    ),
    (
        "context_hourly",
        "SELECT concat_ws('|', hour, events, without_context) FROM exp.context_hourly",
    ),
];

const ROLLUPS: [&str; 4] = [
    "variant_daily_units",
    "variant_daily",
    "variant_daily_metrics",
    "variant_daily_metric_buckets",
];

type Snapshot = BTreeMap<&'static str, BTreeSet<String>>;

async fn snapshot(db: &TestDb) -> Snapshot {
    let client = db.client().await;
    let mut tables = Snapshot::new();
    for (name, sql) in TABLES {
        let rows = client
            .query(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        tables.insert(name, rows.iter().map(|r| r.get(0)).collect());
    }
    tables
}

fn table<'s>(s: &'s Snapshot, name: &str) -> &'s BTreeSet<String> {
    s.get(name)
        .unwrap_or_else(|| panic!("no table {name} in the snapshot"))
}

/// The rows of `name` in one snapshot and not the other, both ways.
fn changed<'s>(before: &'s Snapshot, after: &'s Snapshot, name: &str) -> Vec<&'s String> {
    table(before, name)
        .symmetric_difference(table(after, name))
        .collect()
}

/// The first `n` fields of a row.
fn fields(row: &str, n: usize) -> String {
    row.split('|').take(n).collect::<Vec<_>>().join("|")
}

/// What a call removed, read from the tables before and after it, in exp.erase_unit's terms.
fn removed(before: &Snapshot, after: &Snapshot) -> Value {
    let gone = |name| table(before, name).len() - table(after, name).len();
    let keys = |s: &Snapshot| -> usize {
        table(s, "pending_handoffs")
            .iter()
            .map(|row| fields(row, 1).split(',').count())
            .sum()
    };
    let unit_rows = |s: &Snapshot| -> BTreeSet<String> {
        table(s, "assignments")
            .iter()
            .map(|row| fields(row, 4))
            .filter(|key| key.contains(&format!("|{UNIT_TYPE}|{UNIT_ID}|")))
            .collect()
    };
    let rollup_days: BTreeSet<String> = ROLLUPS
        .iter()
        .flat_map(|name| changed(before, after, name))
        .map(|row| fields(row, 2))
        .collect();
    let hours: BTreeSet<String> = changed(before, after, "context_hourly")
        .into_iter()
        .map(|row| fields(row, 1))
        .collect();
    json!({
        "events": gone("events"),
        "event_ids": gone("event_ids"),
        "pending_keys": keys(before) - keys(after),
        "assignments": unit_rows(before).difference(&unit_rows(after)).count(),
        "rollup_days": rollup_days.len(),
        "context_hours": hours.len(),
    })
}

fn assert_same(main: &Snapshot, reference: &Snapshot, when: &str) {
    for (name, _) in TABLES {
        let (got, want) = (table(main, name), table(reference, name));
        assert!(
            got == want,
            "{when}: exp.{name} differs from the recount without the covered events\n\
             only after erasure: {:#?}\nonly in the recount: {:#?}",
            got.difference(want).collect::<Vec<_>>(),
            want.difference(got).collect::<Vec<_>>(),
        );
    }
}

struct Case {
    name: &'static str,
    /// The calls, in order: their `suppress`.
    calls: &'static [bool],
}

const CASES: [Case; 3] = [
    Case {
        name: "plain",
        calls: &[false],
    },
    Case {
        name: "suppress",
        calls: &[true],
    },
    Case {
        name: "plain, the same again (nothing left), then suppress (the later events)",
        calls: &[false, false, true],
    },
];

/// Each case against its own recount: the erased database and a reference database that never
/// held the events any of the case's calls covers, both counted by the real job.
#[tokio::test]
async fn erasure_leaves_what_a_recount_without_the_covered_events_gives() {
    for case in CASES {
        let s = scenario();
        let (main, reference) = tokio::join!(TestDb::create(), TestDb::create());
        let (client, ref_client) = (main.client().await, reference.client().await);
        for day in &s.days {
            for c in [&client, &ref_client] {
                c.execute("SELECT exp.ensure_day_partition($1)", &[day])
                    .await
                    .expect("day partition");
            }
        }
        // The buckets the scenario relies on (lo and hi shared with other units' values).
        let shared: bool = client
            .query_one(
                "SELECT exp.metric_bucket(100.0) = exp.metric_bucket(99.5)
                    AND exp.metric_bucket(99.8) = exp.metric_bucket(99.5)
                    AND exp.metric_bucket(248) = exp.metric_bucket(249.5)
                    AND exp.metric_bucket(250) = exp.metric_bucket(249.5)",
                &[],
            )
            .await
            .expect("buckets")
            .get(0);
        assert!(shared, "the scenario's values no longer share buckets");

        let covered_by_any = |e: &Event| {
            case.calls
                .iter()
                .any(|&suppress| e.covered(suppress, s.erased_at))
        };
        let counted = |e: &&Event| matches!(e.received, Received::At(_));
        let all: Vec<&Event> = s.events.iter().collect();
        let kept: Vec<&Event> = s.events.iter().filter(|e| !covered_by_any(e)).collect();
        let (late, late_kept): (Vec<&Event>, Vec<&Event>) = (
            all.iter().copied().filter(|e| !counted(e)).collect(),
            kept.iter().copied().filter(|e| !counted(e)).collect(),
        );
        insert(
            &client,
            &all.into_iter().filter(counted).collect::<Vec<_>>(),
        )
        .await;
        insert(
            &ref_client,
            &kept.iter().copied().filter(counted).collect::<Vec<_>>(),
        )
        .await;
        tokio::join!(count_all(&main), count_all(&reference));
        insert(&client, &late).await;
        insert(&ref_client, &late_kept).await;
        for row in &s.pending {
            let keys = |keep: &dyn Fn(&Event) -> bool| -> (Vec<Uuid>, Vec<DateTime<Utc>>) {
                row.iter()
                    .map(|&i| &s.events[i])
                    .filter(|e| keep(e))
                    .map(|e| (e.id, e.ts))
                    .unzip()
            };
            for (c, (ids, tss)) in [
                (&client, keys(&|_| true)),
                (&ref_client, keys(&|e| !covered_by_any(e))),
            ] {
                if !ids.is_empty() {
                    c.execute(
                        "INSERT INTO exp.pending_handoffs (event_ids, timestamps) VALUES ($1, $2)",
                        &[&ids, &tss],
                    )
                    .await
                    .expect("pending row");
                }
            }
        }

        let mut erased: BTreeSet<Uuid> = BTreeSet::new();
        for (n, &suppress) in case.calls.iter().enumerate() {
            let when = format!("{}: call {} (suppress {suppress})", case.name, n + 1);
            let before = snapshot(&main).await;
            let got = erase(&main, s.erased_at, suppress).await;
            let after = snapshot(&main).await;
            // What the data says this call covers, and what it did remove.
            let now_covered: Vec<&Event> = s
                .events
                .iter()
                .filter(|e| e.covered(suppress, s.erased_at) && !erased.contains(&e.id))
                .collect();
            erased.extend(now_covered.iter().map(|e| e.id));
            let keys = s
                .pending
                .iter()
                .flatten()
                .filter(|&&i| now_covered.iter().any(|e| e.id == s.events[i].id))
                .count();
            assert_eq!(got, removed(&before, &after), "{when}");
            assert_eq!(got["events"], now_covered.len(), "{when}: {got}");
            assert_eq!(got["event_ids"], now_covered.len(), "{when}: {got}");
            assert_eq!(got["pending_keys"], keys, "{when}: {got}");
            if now_covered.is_empty() {
                assert_eq!(before, after, "{when}: changed something");
            } else {
                assert!(got["rollup_days"].as_u64() > Some(0), "{when}: {got}");
            }
        }
        let when = format!("{}: after the calls", case.name);
        assert_same(&snapshot(&main).await, &snapshot(&reference).await, &when);

        // No covered row of the unit is left: its events and their ids and keys.
        let left: i64 = client
            .query_one(
                "SELECT (SELECT count(*) FROM exp.events WHERE event_id = ANY($1))
                      + (SELECT count(*) FROM exp.event_ids WHERE event_id = ANY($1))
                      + (SELECT count(*) FROM exp.pending_handoffs WHERE event_ids && $1)",
                &[&erased.iter().copied().collect::<Vec<_>>()],
            )
            .await
            .expect("left over")
            .get(0);
        assert_eq!(left, 0, "{when}");

        // Once more: nothing is covered any more.
        let last = case.calls.last().copied().unwrap_or_default();
        let again = erase(&main, s.erased_at, last).await;
        assert_eq!(
            again,
            json!({"events": 0, "event_ids": 0, "pending_keys": 0, "assignments": 0,
                   "rollup_days": 0, "context_hours": 0}),
            "{when}"
        );

        // The job counts what came meanwhile against the assignments as erasure left them.
        tokio::join!(count_all(&main), count_all(&reference));
        let when = format!("{}: after the next count", case.name);
        assert_same(&snapshot(&main).await, &snapshot(&reference).await, &when);
    }
}

/// The application may erase only through the function: it runs as eis_migrator with a fixed
/// search_path, and eis_app holds no DELETE on the event tables.
#[tokio::test]
async fn only_the_function_lets_the_application_delete_events() {
    let db = TestDb::create().await;
    let client = db.client().await;
    let row = client
        .query_one(
            "SELECT has_function_privilege('eis_app', p.oid, 'EXECUTE'),
                    has_function_privilege('eis_reader', p.oid, 'EXECUTE'),
                    p.prosecdef, pg_get_userbyid(p.proowner), p.proconfig::text,
                    has_table_privilege('eis_app', 'exp.events', 'DELETE'),
                    has_table_privilege('eis_app', 'exp.event_ids', 'DELETE'),
                    has_table_privilege('eis_app', 'exp.pending_handoffs', 'DELETE'),
                    EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0)
             FROM pg_proc p
             WHERE p.oid = 'exp.erase_unit(text, text, timestamptz, boolean, integer)'::regprocedure",
            &[],
        )
        .await
        .expect("the function's rights");
    assert!(row.get::<_, bool>(0), "eis_app cannot execute it");
    assert!(!row.get::<_, bool>(1), "eis_reader can execute it");
    assert!(row.get::<_, bool>(2), "not SECURITY DEFINER");
    assert_eq!(row.get::<_, String>(3), "eis_migrator");
    assert_eq!(
        row.get::<_, String>(4),
        r#"{"search_path=pg_catalog, pg_temp"}"#
    );
    assert!(!row.get::<_, bool>(5), "eis_app may delete from exp.events");
    assert!(
        !row.get::<_, bool>(6),
        "eis_app may delete from exp.event_ids"
    );
    // The ingest deletes its own hand-off row once SQS confirmed it (V5): that DELETE stays.
    assert!(row.get::<_, bool>(7), "V5's grant changed");
    assert!(!row.get::<_, bool>(8), "PUBLIC may execute it");

    client
        .batch_execute("SET ROLE eis_app")
        .await
        .expect("become eis_app");
    for table in ["exp.events", "exp.event_ids"] {
        let refused = client
            .batch_execute(&format!("DELETE FROM {table}"))
            .await
            .expect_err("eis_app deleted rows");
        assert_eq!(
            refused.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{table}: {refused:?}"
        );
    }
}

/// The cost follows the unit, not the tables: among 24 000 events of 6 007 other units, the
/// erasure's statements scan none of the large relations sequentially (PostgreSQL's own
/// per-transaction counters).
#[tokio::test]
async fn erasure_reads_the_units_rows_not_the_tables() {
    let db = TestDb::create().await;
    let mut client = db.client().await;
    let now = DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).expect("now");
    let at = now - chrono::Duration::minutes(30);
    client
        .execute("SELECT exp.ensure_day_partition($1)", &[&at.date_naive()])
        .await
        .expect("day partition");
    client
        .execute(
            r#"WITH e AS (
                   INSERT INTO exp.events (event_id, event_type, unit_type, unit_id, experiments, metrics,
                                           "timestamp", received_at)
                   SELECT gen_random_uuid(),
                          (ARRAY['plan_generated', 'meal_swapped', 'user_edit'])[1 + i % 3],
                          'user', CASE WHEN i < 8 THEN 'u-1' ELSE 'o' || i % 6007 END,
                          CASE WHEN i % 4 < 2 THEN jsonb_build_array(jsonb_build_object(
                                   'experiment_id', 'exp_big', 'variant_id', (ARRAY['a', 'b'])[1 + i % 6007 % 2]))
                               ELSE '[]' END,
                          CASE WHEN i < 8 THEN '{"latency_ms": 100000.5}'
                               ELSE jsonb_build_object('latency_ms', 100 + i % 97) END,
                          $1::timestamptz + i * interval '1 ms', $1
                   FROM generate_series(0, 24007) i
                   RETURNING event_id, "timestamp")
               INSERT INTO exp.event_ids (event_id, "timestamp", digest)
               SELECT event_id, "timestamp", '\x'::bytea FROM e"#,
            &[&at],
        )
        .await
        .expect("events");
    count_all(&db).await;
    client.batch_execute("ANALYZE").await.expect("statistics");
    let large: Vec<String> = client
        .query(
            "SELECT c.relname::text FROM pg_class c
             WHERE c.relnamespace = 'exp'::regnamespace AND c.relkind = 'r' AND c.reltuples >= 5000
             ORDER BY 1",
            &[],
        )
        .await
        .expect("large relations")
        .iter()
        .map(|r| r.get(0))
        .collect();
    for expected in ["event_ids", "assignments", "variant_daily_units"] {
        assert!(large.iter().any(|r| r == expected), "{large:?}");
    }
    assert!(large.iter().any(|r| r.starts_with("events_p")), "{large:?}");

    let tx = client.transaction().await.expect("begin");
    tx.batch_execute("SET LOCAL ROLE eis_app")
        .await
        .expect("become eis_app");
    let keep_days = i32::try_from(POLICY.retention_days).expect("retention days");
    let got: Value = tx
        .query_one(ERASE, &[&UNIT_TYPE, &UNIT_ID, &now, &false, &keep_days])
        .await
        .expect("exp.erase_unit")
        .get(0);
    assert_eq!(got["events"], 8, "{got}");
    let scanned: Vec<(String, i64)> = tx
        .query(
            "SELECT relname::text, seq_scan FROM pg_stat_xact_all_tables
             WHERE schemaname = 'exp' AND relname = ANY($1) AND seq_scan > 0",
            &[&large],
        )
        .await
        .expect("scan counters")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(scanned, vec![], "sequential scans of large relations");
    tx.commit().await.expect("commit");
}
