//! The operator's registry load, `{"action":"registry","experiments":[…]}` (docs/health.md,
//! "The registry"), through the migrator's handler on a database of its own: the fixture
//! `make registry` and `aws lambda invoke` send, a reload replacing entries, and a refused or
//! failed load writing nothing.

use migrator::config::Config;
use migrator::handler;
use migrator::input::Input;
use tokio::time::Instant;

use super::*;

fn fixture() -> Value {
    let path = format!(
        "{}/../events/migrator-registry.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).expect("JSON")
}

/// The input's answer as JSON, or its error code.
async fn invoke(db: &TestDb, input: &Value) -> Result<Value, &'static str> {
    let input = Input::parse(input).map_err(|e| e.code())?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let config = Config {
        db: db.config(),
        roles: None,
    };
    handler::handle(&config, input, deadline)
        .await
        .map(|out| serde_json::to_value(out).expect("JSON"))
        .map_err(|e| e.code())
}

/// (experiment id, status, variants) of every registered experiment, in id order.
async fn registered(db: &TestDb) -> Vec<(String, String, i64)> {
    db.client()
        .await
        .query(
            "SELECT x.experiment_id, x.status, count(v.variant_id)
             FROM exp.experiments x LEFT JOIN exp.experiment_variants v USING (experiment_id)
             GROUP BY 1, 2 ORDER BY 1",
            &[],
        )
        .await
        .expect("registry")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

const E1: &str = "0194a1c0-0000-7000-8000-00000000e001";
const E2: &str = "0194a1c0-0000-7000-8000-00000000e002";
const E3: &str = "0194a1c0-0000-7000-8000-00000000e003";

fn running(n: i64) -> impl Fn(&str) -> (String, String, i64) {
    move |id| (id.to_string(), "running".to_string(), n)
}

#[tokio::test]
async fn the_fixture_loads_whole_and_the_ingest_reads_it() {
    let db = TestDb::create().await;
    let answer = invoke(&db, &fixture()).await.expect("loaded");
    assert_eq!(
        answer,
        json!({"action": "registry", "loaded": 3, "variants": 7})
    );
    assert_eq!(
        registered(&db).await,
        [
            running(2)(E1),
            running(3)(E2),
            (E3.to_string(), "stopped".to_string(), 2)
        ]
    );
    // What the ingest function's cache reads.
    let registry = eis_store::registry::load(&db.db()).await.expect("read");
    let id = |text: &str| uuid::Uuid::parse_str(text).expect("uuid");
    let e3 = registry.experiment(&id(E3)).expect("registered");
    assert_eq!(
        (
            registry.len(),
            e3.unit_type.as_str(),
            e3.stopped,
            e3.ends_at.is_some()
        ),
        (3, "household", true, true)
    );
    let weights: Vec<f64> = db
        .client()
        .await
        .query(
            "SELECT weight FROM exp.experiment_variants WHERE experiment_id = $1 ORDER BY variant_id",
            &[&E2],
        )
        .await
        .expect("weights")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(weights, [2.0, 1.0, 1.0]);
}

#[tokio::test]
async fn a_reload_replaces_each_named_experiment_and_leaves_the_others() {
    let db = TestDb::create().await;
    invoke(&db, &fixture()).await.expect("loaded");
    let change = json!({"action": "registry", "experiments": [{
        "experiment_id": E1, "unit_type": "user", "status": "stopped",
        "starts_at": "2026-11-01T00:00:00Z", "ends_at": "2026-12-01T00:00:00Z",
        "variants": [{"variant_id": "0194a1c0-0000-7000-8000-000000001000"}]
    }]});
    let answer = invoke(&db, &change).await.expect("loaded");
    assert_eq!(answer["loaded"], 1);
    let now = registered(&db).await;
    assert_eq!(now[0], (E1.to_string(), "stopped".to_string(), 1));
    assert_eq!(now.len(), 3);
}

#[tokio::test]
async fn a_refused_input_writes_nothing_not_even_its_valid_entries() {
    let db = TestDb::create().await;
    let mut input = fixture();
    // The third experiment's unit type is one no event can carry.
    input["experiments"][2]["unit_type"] = json!("Household");
    assert_eq!(invoke(&db, &input).await, Err("registry_invalid"));
    assert_eq!(registered(&db).await, []);
}

#[tokio::test]
async fn a_load_the_database_fails_midway_leaves_the_registry_as_it_was() {
    let db = TestDb::create().await;
    let client = db.client().await;
    // The variants' table away: each experiment row is written, then its variants fail.
    client
        .batch_execute("ALTER TABLE exp.experiment_variants RENAME TO experiment_variants_away")
        .await
        .expect("rename away");
    assert_eq!(invoke(&db, &fixture()).await, Err("database_error"));
    client
        .batch_execute("ALTER TABLE exp.experiment_variants_away RENAME TO experiment_variants")
        .await
        .expect("rename back");
    assert_eq!(registered(&db).await, []);
}
