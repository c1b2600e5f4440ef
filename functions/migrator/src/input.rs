//! What the migrator is asked: `{"action":"migrate"}` (`make migrate`, an operator), a
//! registry load (`{"action":"registry","experiments":[…]}`, docs/health.md), or a
//! CloudFormation custom-resource request (the deploy's `SchemaMigrations` resource).

use serde::Deserialize;
use serde_json::Value;

use crate::custom_resource::Request;
use crate::error::MigratorError;
use crate::registry::{self, Experiment};

#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// `{"action":"migrate"}`: apply the pending migrations and answer which.
    Migrate,
    /// `{"action":"registry","experiments":[…]}`: load experiment registry entries.
    Registry(Vec<Experiment>),
    /// A custom-resource request: migrate (Create, Update) or nothing (Delete), then answer
    /// CloudFormation at the request's response URL.
    CustomResource(Request),
}

/// The inputs that are an action alone: `{"action":"migrate"}`, nothing more.
#[derive(Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
enum Bare {
    // A struct variant: serde refuses unknown keys beside the tag only for those.
    Migrate {},
}

impl Input {
    pub fn parse(value: &Value) -> Result<Self, MigratorError> {
        if value.get("RequestType").is_some() {
            return Request::deserialize(value)
                .map(Input::CustomResource)
                .map_err(|e| {
                    MigratorError::InvalidInput(format!("a custom-resource request: {e}"))
                });
        }
        // Its own parse, so that a refusal says what is wrong with which experiment.
        if value.get("action").and_then(Value::as_str) == Some("registry") {
            return Ok(Input::Registry(registry::parse(value)?));
        }
        match Bare::deserialize(value) {
            Ok(Bare::Migrate {}) => Ok(Input::Migrate),
            // The input itself is not echoed: it is not ours and could be anything.
            Err(_) => Err(MigratorError::InvalidInput(format!(
                "unrecognised {}",
                eis_contract::json_kind(value)
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::custom_resource::RequestType;

    /// The fixtures `cargo lambda invoke` and `sam local invoke` send (events/).
    const MIGRATE: &str = include_str!("../../../events/migrator-migrate.json");
    const REGISTRY: &str = include_str!("../../../events/migrator-registry.json");
    const REQUEST: &str = include_str!("../../../events/migrator-custom-resource.json");

    fn parsed(text: &str) -> Result<Input, MigratorError> {
        Input::parse(&serde_json::from_str(text).expect("fixture is JSON"))
    }

    #[test]
    fn the_fixtures_are_recognised() {
        assert_eq!(parsed(MIGRATE).ok(), Some(Input::Migrate));
        let Ok(Input::Registry(experiments)) = parsed(REGISTRY) else {
            panic!("migrator-registry.json is a registry load");
        };
        assert_eq!(experiments.len(), 3);
        let Ok(Input::CustomResource(request)) = parsed(REQUEST) else {
            panic!("migrator-custom-resource.json is a custom-resource request");
        };
        assert_eq!(request.request_type, RequestType::Create);
    }

    #[test]
    fn anything_else_is_invalid_input() {
        for value in [
            json!({"action": "migrate", "extra": 1}),
            json!({"action": "drain"}),
            json!({"detail-type": "Scheduled Event", "source": "aws.events"}),
            json!({"RequestType": "Create"}),
            json!({"RequestType": "Create", "ResponseURL": 7}),
            json!({}),
            json!("migrate"),
        ] {
            let err = Input::parse(&value).expect_err("invalid");
            assert_eq!(err.code(), "invalid_input", "{value}");
            assert!(!err.is_retryable());
        }
        let err = Input::parse(&json!({"action": "registry"})).expect_err("no experiments");
        assert_eq!(err.code(), "registry_malformed");
    }
}
