//! The experiment registry's check of an accepted event (docs/health.md, "Flags at ingest"):
//! each experiment the event names is compared with its registered entry. What does not fit
//! is flagged, or, in [`RegistryMode::Reject`], rejected with the same string as its code.
//! Pure: the registry is loaded and cached by the caller.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::code::{Code, Flag};
use crate::event::{Event, ExperimentRef};
use crate::rejection::Rejection;

/// One registered experiment, as the check needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisteredExperiment {
    pub unit_type: String,
    pub stopped: bool,
    pub starts_at: DateTime<Utc>,
    /// None: open-ended.
    pub ends_at: Option<DateTime<Utc>>,
    pub variants: Vec<Uuid>,
}

/// What a deployment does with an event that does not fit the registry
/// (`EIS_REGISTRY_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RegistryMode {
    /// Store it, flagged.
    #[default]
    Flag,
    /// Reject it with the flag's string as the code.
    Reject,
}

/// The registered experiments by id. Empty: no checks at all (the registry is optional).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Registry {
    experiments: HashMap<Uuid, RegisteredExperiment>,
}

/// One misfit: its flag, its code in reject mode (the same string), what it says, and which
/// experiment (and variant) of the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Misfit {
    pub flag: Flag,
    pub code: Code,
    what: &'static str,
    pub experiment_id: Uuid,
    pub variant_id: Uuid,
}

type Kind = (Flag, Code, &'static str);
const UNREGISTERED: Kind = (
    Flag::UnregisteredExperiment,
    Code::UnregisteredExperiment,
    "is not registered",
);
const UNKNOWN_VARIANT: Kind = (
    Flag::UnknownVariant,
    Code::UnknownVariant,
    "has no such variant_id",
);
const UNIT_TYPE: Kind = (
    Flag::UnitTypeMismatch,
    Code::UnitTypeMismatch,
    "is registered for another unit_type",
);
const STOPPED: Kind = (
    Flag::ExperimentStopped,
    Code::ExperimentStopped,
    "is stopped",
);
const OUTSIDE: Kind = (
    Flag::OutsideExperimentWindow,
    Code::OutsideExperimentWindow,
    "does not run at the event's timestamp",
);

impl Registry {
    pub fn new(experiments: HashMap<Uuid, RegisteredExperiment>) -> Self {
        Self { experiments }
    }

    pub fn len(&self) -> usize {
        self.experiments.len()
    }

    pub fn is_empty(&self) -> bool {
        self.experiments.is_empty()
    }

    /// The registered experiment `id`, if any.
    pub fn experiment(&self, id: &Uuid) -> Option<&RegisteredExperiment> {
        self.experiments.get(id)
    }

    /// Every misfit of the event, experiment by experiment in the event's order.
    pub fn misfits(&self, event: &Event) -> Vec<Misfit> {
        if self.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::new();
        for r in &event.experiments {
            let misfit = |(flag, code, what): Kind| Misfit {
                flag,
                code,
                what,
                experiment_id: r.experiment_id,
                variant_id: r.variant_id,
            };
            let Some(x) = self.experiments.get(&r.experiment_id) else {
                out.push(misfit(UNREGISTERED));
                continue;
            };
            out.extend(checks(x, r, event).into_iter().map(misfit));
        }
        out
    }

    /// The event as the deployment takes it: flagged (flags stay unique, in `Flag::ALL`
    /// order), or its first misfit as a rejection.
    pub fn admit(&self, mut event: Event, mode: RegistryMode) -> Result<Event, Rejection> {
        let misfits = self.misfits(&event);
        match (mode, misfits.first()) {
            (_, None) => Ok(event),
            (RegistryMode::Reject, Some(m)) => {
                let index = event
                    .experiments
                    .iter()
                    .position(|r| r.experiment_id == m.experiment_id)
                    .unwrap_or_default();
                Err(Rejection::new(
                    m.code,
                    format!(
                        "experiment {} (variant {}) {}",
                        m.experiment_id, m.variant_id, m.what
                    ),
                )
                .at(&format!("/experiments/{index}")))
            }
            (RegistryMode::Flag, Some(_)) => {
                event.flags.extend(misfits.iter().map(|m| m.flag));
                event.flags.sort();
                event.flags.dedup();
                Ok(event)
            }
        }
    }
}

/// The misfits of one registered experiment named by the event, in `Flag::ALL` order.
fn checks(x: &RegisteredExperiment, r: &ExperimentRef, event: &Event) -> Vec<Kind> {
    let outside = event.timestamp < x.starts_at || x.ends_at.is_some_and(|e| event.timestamp >= e);
    [
        (!x.variants.contains(&r.variant_id), UNKNOWN_VARIANT),
        (x.unit_type != event.unit_type, UNIT_TYPE),
        (x.stopped, STOPPED),
        (outside, OUTSIDE),
    ]
    .into_iter()
    .filter_map(|(misfit, kind)| misfit.then_some(kind))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json_object::JsonObject;

    const EXP: Uuid = Uuid::from_u128(0xe1);
    const OTHER: Uuid = Uuid::from_u128(0xe2);
    const A: Uuid = Uuid::from_u128(0xa);
    const B: Uuid = Uuid::from_u128(0xb);

    fn at(hour: u32) -> DateTime<Utc> {
        chrono::NaiveDate::from_ymd_opt(2026, 12, 1)
            .and_then(|d| d.and_hms_opt(hour, 0, 0))
            .expect("a time")
            .and_utc()
    }

    fn registry(stopped: bool) -> Registry {
        Registry::new(HashMap::from([(
            EXP,
            RegisteredExperiment {
                unit_type: "user".into(),
                stopped,
                starts_at: at(10),
                ends_at: Some(at(20)),
                variants: vec![A, B],
            },
        )]))
    }

    fn event(unit_type: &str, refs: &[(Uuid, Uuid)], timestamp: DateTime<Utc>) -> Event {
        Event {
            event_id: Uuid::from_u128(1),
            event_type: "plan_generated".into(),
            unit_type: unit_type.into(),
            unit_id: "u1".into(),
            experiments: refs
                .iter()
                .map(|&(experiment_id, variant_id)| ExperimentRef {
                    experiment_id,
                    variant_id,
                })
                .collect(),
            context: JsonObject::default(),
            metrics: Default::default(),
            payload: JsonObject::default(),
            timestamp,
            received_at: timestamp,
            sent_at: None,
            schema_version: None,
            schema_violation: None,
            flags: vec![Flag::OldTimestamp],
        }
    }

    #[test]
    fn each_misfit_has_its_flag() {
        use Flag::*;
        /// Name, stopped, the event's (experiment, variant) list, its timestamp, the flags.
        type Case<'a> = (&'a str, bool, &'a [(Uuid, Uuid)], DateTime<Utc>, &'a [Flag]);
        let cases: &[Case] = &[
            ("fits", false, &[(EXP, A)], at(12), &[]),
            (
                "unknown variant",
                false,
                &[(EXP, Uuid::from_u128(0xc))],
                at(12),
                &[UnknownVariant],
            ),
            ("stopped", true, &[(EXP, B)], at(12), &[ExperimentStopped]),
            (
                "before the start",
                false,
                &[(EXP, A)],
                at(9),
                &[OutsideExperimentWindow],
            ),
            ("at the start", false, &[(EXP, A)], at(10), &[]),
            (
                "at the end",
                false,
                &[(EXP, A)],
                at(20),
                &[OutsideExperimentWindow],
            ),
            (
                "unregistered",
                false,
                &[(OTHER, A)],
                at(12),
                &[UnregisteredExperiment],
            ),
            (
                "two experiments",
                true,
                &[(OTHER, A), (EXP, A)],
                at(21),
                &[
                    UnregisteredExperiment,
                    ExperimentStopped,
                    OutsideExperimentWindow,
                ],
            ),
        ];
        for (name, stopped, refs, ts, want) in cases {
            let got: Vec<Flag> = registry(*stopped)
                .misfits(&event("user", refs, *ts))
                .iter()
                .map(|m| m.flag)
                .collect();
            assert_eq!(&got, want, "{name}");
        }
        let got = registry(false).misfits(&event("household", &[(EXP, A)], at(12)));
        assert_eq!(
            got.iter().map(|m| m.flag).collect::<Vec<_>>(),
            [UnitTypeMismatch]
        );
    }

    #[test]
    fn an_empty_registry_checks_nothing() {
        let e = event("user", &[(OTHER, A)], at(12));
        assert_eq!(
            Registry::default().admit(e.clone(), RegistryMode::Reject),
            Ok(e)
        );
    }

    #[test]
    fn flags_join_the_events_own_once_and_in_order() {
        let e = event("user", &[(OTHER, A), (Uuid::from_u128(0xe3), B)], at(12));
        let admitted = registry(false)
            .admit(e, RegistryMode::Flag)
            .expect("flagged");
        assert_eq!(
            admitted.flags,
            [Flag::OldTimestamp, Flag::UnregisteredExperiment]
        );
    }

    #[test]
    fn reject_mode_names_the_experiment_and_variant() {
        let e = event("user", &[(EXP, Uuid::from_u128(0xc))], at(12));
        let r = registry(false)
            .admit(e, RegistryMode::Reject)
            .expect_err("rejected");
        assert_eq!(r.code, Code::UnknownVariant);
        assert!(r.message.contains(&EXP.to_string()), "{}", r.message);
        assert!(
            r.message.contains(&Uuid::from_u128(0xc).to_string()),
            "{}",
            r.message
        );
    }
}
