//! `{"action":"registry","experiments":[…]}`: an operator's load of experiment registry entries
//! (docs/health.md, "The registry"), sent by `aws lambda invoke` to the migrator function and
//! run locally by `make registry`. The whole input is checked here before anything is written;
//! `handler::load_registry` then loads it in one transaction as the migrator, the registry's
//! owner.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use eis_store::{DbConfig, RoleSecrets};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// Most experiments in one input: a larger registry loads in several invocations.
pub const MAX_EXPERIMENTS: usize = 1000;
/// Most variants of one experiment.
pub const MAX_VARIANTS: usize = 100;
/// Longest `name` (of an experiment or a variant), in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// Why a registry input was refused; nothing was written. Each has a stable code.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RegistryInputError {
    /// Not the input's shape: an unknown key, a wrong type, an id that is not a UUID, a
    /// timestamp that is not RFC 3339.
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    Empty(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Duplicate(String),
    /// A value of the right type that the registry cannot hold.
    #[error("{0}")]
    Invalid(String),
}

impl RegistryInputError {
    pub fn code(&self) -> &'static str {
        match self {
            RegistryInputError::Malformed(_) => "registry_malformed",
            RegistryInputError::Empty(_) => "registry_empty",
            RegistryInputError::TooLarge(_) => "registry_too_large",
            RegistryInputError::Duplicate(_) => "registry_duplicate",
            RegistryInputError::Invalid(_) => "registry_invalid",
        }
    }
}

/// One registry entry, in the file format of docs/health.md; it serialises to what
/// `exp.load_experiments` reads.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    pub experiment_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub unit_type: String,
    #[serde(default)]
    pub status: Status,
    pub starts_at: DateTime<Utc>,
    /// None: open-ended.
    #[serde(default)]
    pub ends_at: Option<DateTime<Utc>>,
    pub variants: Vec<Variant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    #[default]
    Running,
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub variant_id: Uuid,
    /// Relative share of units (1/1 and 50/50 are the same split).
    #[serde(default = "one")]
    pub weight: f64,
    /// For the reader of the file only: not stored.
    #[serde(default, skip_serializing)]
    pub name: Option<String>,
}

fn one() -> f64 {
    1.0
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryInput {
    /// Always "registry": the caller dispatched on it.
    #[serde(rename = "action")]
    _action: IgnoredAny,
    experiments: Vec<Value>,
}

/// What a load answers.
#[derive(Debug, Serialize, PartialEq)]
pub struct RegistrySummary {
    pub action: &'static str,
    /// Experiments loaded (each replaced the entry of its id, variants included).
    pub loaded: i32,
    pub variants: usize,
}

impl RegistrySummary {
    pub fn new(loaded: i32, experiments: &[Experiment]) -> Self {
        Self {
            action: "registry",
            loaded,
            variants: experiments.iter().map(|x| x.variants.len()).sum(),
        }
    }
}

/// The input's experiments, checked whole: within the bounds, each id once, every value one
/// the registry can hold.
pub fn parse(input: &Value) -> Result<Vec<Experiment>, RegistryInputError> {
    let RegistryInput { experiments, .. } = RegistryInput::deserialize(input).map_err(|e| {
        RegistryInputError::Malformed(format!(
            "expected {{\"action\":\"registry\",\"experiments\":[…]}}: {e}"
        ))
    })?;
    if experiments.is_empty() {
        return Err(RegistryInputError::Empty("`experiments` is empty".into()));
    }
    if experiments.len() > MAX_EXPERIMENTS {
        return Err(RegistryInputError::TooLarge(format!(
            "{} experiments; one input loads at most {MAX_EXPERIMENTS}",
            experiments.len()
        )));
    }
    let mut ids = HashSet::new();
    let mut parsed = Vec::with_capacity(experiments.len());
    for (index, value) in experiments.iter().enumerate() {
        let experiment = Experiment::deserialize(value)
            .map_err(|e| RegistryInputError::Malformed(format!("experiments[{index}]: {e}")))?;
        check(
            &experiment,
            &format!("experiments[{index}] ({})", experiment.experiment_id),
        )?;
        if !ids.insert(experiment.experiment_id) {
            return Err(RegistryInputError::Duplicate(format!(
                "experiments[{index}]: experiment {} is in the input twice",
                experiment.experiment_id
            )));
        }
        parsed.push(experiment);
    }
    Ok(parsed)
}

/// One experiment's values; messages start with `at`, which experiment it is.
fn check(x: &Experiment, at: &str) -> Result<(), RegistryInputError> {
    let max_name_bytes = eis_contract::Limits::default().max_name_bytes;
    if !eis_contract::is_name(&x.unit_type, max_name_bytes) {
        return Err(RegistryInputError::Invalid(format!(
            "{at}: `unit_type` must be 1 to {max_name_bytes} lowercase ASCII letters, digits or \
             underscores, starting with a letter (as events carry it)"
        )));
    }
    if x.ends_at.is_some_and(|end| end <= x.starts_at) {
        return Err(RegistryInputError::Invalid(format!(
            "{at}: `ends_at` must be after `starts_at`"
        )));
    }
    let mut names = x
        .name
        .iter()
        .chain(x.variants.iter().filter_map(|v| v.name.as_ref()));
    if let Some(bad) = names.find(|n| !is_display_name(n)) {
        return Err(RegistryInputError::Invalid(format!(
            "{at}: name {:?} is not 1 to {MAX_NAME_CHARS} characters without control characters",
            bad.chars().take(MAX_NAME_CHARS).collect::<String>()
        )));
    }
    if x.variants.is_empty() {
        return Err(RegistryInputError::Empty(format!(
            "{at}: `variants` is empty"
        )));
    }
    if x.variants.len() > MAX_VARIANTS {
        return Err(RegistryInputError::TooLarge(format!(
            "{at}: {} variants; an experiment has at most {MAX_VARIANTS}",
            x.variants.len()
        )));
    }
    let mut ids = HashSet::new();
    for v in &x.variants {
        if !ids.insert(v.variant_id) {
            return Err(RegistryInputError::Duplicate(format!(
                "{at}: variant {} is listed twice",
                v.variant_id
            )));
        }
        if !(v.weight.is_finite() && v.weight > 0.0) {
            return Err(RegistryInputError::Invalid(format!(
                "{at}: variant {}: `weight` must be a positive number",
                v.variant_id
            )));
        }
    }
    Ok(())
}

fn is_display_name(name: &str) -> bool {
    let chars = name.chars().count();
    (1..=MAX_NAME_CHARS).contains(&chars) && !name.chars().any(char::is_control)
}

/// The database settings a load connects with, as the migrator: with role secrets (the
/// migrator function in AWS) the migrator's user; without any secret (locally) DATABASE_URL's
/// user. None for a function whose only secret is the application's (`EIS_DB_SECRET_ARN`
/// alone): the application's role may read the registry, never write it.
pub fn migrator_db(db: &DbConfig, roles: Option<&RoleSecrets>) -> Option<DbConfig> {
    match (roles, &db.secret_arn) {
        (Some(roles), _) => Some(DbConfig {
            secret_arn: Some(roles.migrator_arn.clone()),
            ..db.clone()
        }),
        (None, None) => Some(db.clone()),
        (None, Some(_)) => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const X: &str = "0194a1c0-0000-7000-8000-00000000e001";
    const A: &str = "0194a1c0-0000-7000-8000-000000001000";
    const B: &str = "0194a1c0-0000-7000-8000-000000001001";

    fn experiment() -> Value {
        json!({"experiment_id": X, "unit_type": "user", "starts_at": "2026-11-01T00:00:00Z",
               "variants": [{"variant_id": A, "name": "control"}, {"variant_id": B, "weight": 3}]})
    }

    fn input(experiments: Vec<Value>) -> Value {
        json!({"action": "registry", "experiments": experiments})
    }

    fn code_of(edit: impl FnOnce(&mut Value)) -> &'static str {
        let mut x = experiment();
        edit(&mut x);
        parse(&input(vec![x])).expect_err("refused").code()
    }

    #[test]
    fn defaults_fill_what_the_file_may_leave_out() {
        let parsed = parse(&input(vec![experiment()])).expect("valid");
        assert_eq!(parsed.len(), 1);
        let x = &parsed[0];
        assert_eq!(
            (x.status, x.ends_at, x.name.as_deref()),
            (Status::Running, None, None)
        );
        assert_eq!(
            x.variants.iter().map(|v| v.weight).collect::<Vec<_>>(),
            [1.0, 3.0]
        );
        // What exp.load_experiments reads: canonical ids, no variant names.
        let stored = serde_json::to_value(&parsed).expect("json");
        assert_eq!(stored[0]["experiment_id"], X);
        assert_eq!(stored[0]["status"], "running");
        assert_eq!(
            stored[0]["variants"][0],
            json!({"variant_id": A, "weight": 1.0})
        );
    }

    #[test]
    fn each_fault_has_its_code() {
        type Edit = Box<dyn FnOnce(&mut Value)>;
        let cases: Vec<(&str, Edit)> = vec![
            (
                "registry_malformed",
                Box::new(|x| x["colour"] = json!("red")),
            ),
            (
                "registry_malformed",
                Box::new(|x| x["experiment_id"] = json!("e1")),
            ),
            (
                "registry_malformed",
                Box::new(|x| x["starts_at"] = json!("yesterday")),
            ),
            (
                "registry_malformed",
                Box::new(|x| x["status"] = json!("paused")),
            ),
            (
                "registry_malformed",
                Box::new(|x| x["variants"][0]["share"] = json!(1)),
            ),
            ("registry_malformed", Box::new(|x| x["weight"] = json!(1))),
            ("registry_empty", Box::new(|x| x["variants"] = json!([]))),
            (
                "registry_too_large",
                Box::new(|x| {
                    let many: Vec<Value> = (0..=MAX_VARIANTS)
                        .map(|i| json!({"variant_id": Uuid::from_u128(i as u128)}))
                        .collect();
                    x["variants"] = json!(many);
                }),
            ),
            (
                "registry_duplicate",
                Box::new(|x| x["variants"][1]["variant_id"] = json!(A)),
            ),
            (
                "registry_invalid",
                Box::new(|x| x["unit_type"] = json!("User")),
            ),
            ("registry_invalid", Box::new(|x| x["unit_type"] = json!(""))),
            (
                "registry_invalid",
                Box::new(|x| x["ends_at"] = json!("2026-11-01T00:00:00Z")),
            ),
            (
                "registry_invalid",
                Box::new(|x| x["variants"][1]["weight"] = json!(0)),
            ),
            (
                "registry_invalid",
                Box::new(|x| x["variants"][1]["weight"] = json!(-2)),
            ),
            ("registry_invalid", Box::new(|x| x["name"] = json!(""))),
            ("registry_invalid", Box::new(|x| x["name"] = json!("a\nb"))),
            (
                "registry_invalid",
                Box::new(|x| x["variants"][0]["name"] = json!("n".repeat(MAX_NAME_CHARS + 1))),
            ),
        ];
        for (index, (code, edit)) in cases.into_iter().enumerate() {
            assert_eq!(code_of(edit), code, "case {index}");
        }
    }

    #[test]
    fn the_input_as_a_whole_is_bounded_and_each_id_appears_once() {
        let refused = |value: Value| parse(&value).expect_err("refused").code();
        assert_eq!(refused(input(vec![])), "registry_empty");
        assert_eq!(
            refused(input(vec![experiment(); MAX_EXPERIMENTS + 1])),
            "registry_too_large"
        );
        assert_eq!(
            refused(input(vec![experiment(), experiment()])),
            "registry_duplicate"
        );
        assert_eq!(refused(json!({"action": "registry"})), "registry_malformed");
        assert_eq!(
            refused(json!({"action": "registry", "experiments": {}})),
            "registry_malformed"
        );
        assert_eq!(
            refused(json!({"action": "registry", "experiments": [], "dry_run": true})),
            "registry_malformed"
        );
        let err = parse(&input(vec![experiment(), json!({"experiment_id": 7})])).expect_err("bad");
        assert!(err.to_string().starts_with("experiments[1]: "), "{err}");
    }

    #[test]
    fn only_the_migrator_or_a_secretless_local_user_loads() {
        let db = DbConfig {
            url: "postgres://eis@127.0.0.1:1/eis".into(),
            ca_file: None,
            secret_arn: None,
            connect_timeout: std::time::Duration::from_secs(1),
            query_timeout: std::time::Duration::from_secs(1),
            idle_probe_after: std::time::Duration::from_secs(60),
        };
        let secret = |db: Option<DbConfig>| db.map(|d| d.secret_arn);
        assert_eq!(secret(migrator_db(&db, None)), Some(None));
        let app = DbConfig {
            secret_arn: Some("app-secret".into()),
            ..db
        };
        assert_eq!(secret(migrator_db(&app, None)), None);
        let roles = RoleSecrets {
            admin_arn: "admin-secret".into(),
            migrator_arn: "migrator-secret".into(),
            app_arn: "app-secret".into(),
        };
        assert_eq!(
            secret(migrator_db(&app, Some(&roles))),
            Some(Some("migrator-secret".into()))
        );
    }
}
