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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionInput {
    action: Action,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Action {
    Migrate,
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
        match ActionInput::deserialize(value) {
            Ok(ActionInput {
                action: Action::Migrate,
            }) => Ok(Input::Migrate),
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

    fn fixture(name: &str) -> Value {
        let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).expect(&path);
        serde_json::from_str(&text).expect("fixture is JSON")
    }

    #[test]
    fn the_fixtures_are_recognised() {
        assert_eq!(
            Input::parse(&fixture("migrator-migrate.json")).ok(),
            Some(Input::Migrate)
        );
        let Ok(Input::Registry(experiments)) = Input::parse(&fixture("migrator-registry.json"))
        else {
            panic!("migrator-registry.json is a registry load");
        };
        assert_eq!(experiments.len(), 3);
        let Ok(Input::CustomResource(request)) =
            Input::parse(&fixture("migrator-custom-resource.json"))
        else {
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
