//! Units bound to callers: with a JWT authorizer, a signed-in user may write events about
//! itself only. The deployment names the bound `unit_type` and the token claim that holds the
//! caller's id; the check itself is pure.

use crate::code::Code;
use crate::event::Event;
use crate::rejection::Rejection;

/// Which unit a caller may write events for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitBinding {
    /// Events of this `unit_type` must name the caller as their `unit_id`; others pass.
    pub unit_type: String,
}

impl UnitBinding {
    /// Passes `event` unless it is of the bound type and not the caller's own. A request
    /// without the claim (`caller` None) may write no event of the bound type.
    pub fn check(&self, event: &Event, caller: Option<&str>) -> Result<(), Rejection> {
        if event.unit_type != self.unit_type || caller == Some(event.unit_id.as_str()) {
            return Ok(());
        }
        Err(Rejection::new(
            Code::UnitNotAuthorized,
            format!(
                "a `{}` event must have the caller's own id as `unit_id`",
                self.unit_type
            ),
        )
        .at("/unit_id"))
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::{validate_event, Limits};

    fn event(unit_type: &str, unit_id: &str) -> Event {
        let raw = format!(
            r#"{{"event_type":"custom","unit_type":"{unit_type}","unit_id":"{unit_id}",
                "timestamp":"{}"}}"#,
            Utc::now().to_rfc3339()
        );
        validate_event(raw.as_bytes(), Utc::now(), &Limits::default()).expect("valid event")
    }

    #[test]
    fn only_the_bound_type_must_name_the_caller() {
        let binding = UnitBinding {
            unit_type: "user".into(),
        };
        let cases = [
            ("user", "u-1", Some("u-1"), true),
            ("user", "u-2", Some("u-1"), false),
            ("user", "u-1", None, false),
            ("session", "s-9", Some("u-1"), true),
            ("session", "s-9", None, true),
        ];
        for (unit_type, unit_id, caller, passes) in cases {
            let verdict = binding.check(&event(unit_type, unit_id), caller);
            assert_eq!(verdict.is_ok(), passes, "{unit_type} {unit_id} {caller:?}");
            if let Err(rejection) = verdict {
                assert_eq!(
                    (rejection.code, rejection.field.as_str()),
                    (Code::UnitNotAuthorized, "/unit_id")
                );
            }
        }
    }
}
