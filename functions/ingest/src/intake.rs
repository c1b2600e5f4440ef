//! The one intake path of the storing routes: judge a request's events (the contract, the
//! erasure tombstones, the tracking plan, the registry, the caller binding), keep what fails in the quarantine,
//! store what passes, and say what became of each. `POST /events` takes a body as a batch of
//! one; the routes differ only in their answers (routes.rs). `POST /events/validate` judges
//! and stops there.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use eis_contract::plan::PlanVerdict;
use eis_contract::{validate_replayed_event, Arrival, Event, Flag, Registry, Rejection};
use eis_handoff::SaveReport;
use eis_store::InsertOutcome;
use uuid::Uuid;

use crate::app::AppState;
use crate::error::ApiError;
use crate::quarantine::{QuarantineReport, Rejects};
use crate::refusal::Refusal;
use crate::sender::Sender;
use crate::series::VariantCounts;

/// One event judged.
pub enum Verdict {
    /// Valid; stamped with its plan version; flagged by the plan or the registry where it
    /// misfits (flag modes).
    Accepted(Event),
    /// Refused. `kept`: its text goes to the quarantine, to be counted and replayed. An event
    /// refused for its caller is not kept: a replay has no caller to check it against; nor
    /// is one refused for its unit's erasure (`unit_erased`, `unit_suppressed`), nor by the
    /// plan's reject mode or its `reject` policy for unplanned types.
    Refused { rejection: Rejection, kept: bool },
}

/// A request's events judged, in request order, and the registry copy they were judged by.
pub struct Judged {
    pub verdicts: Vec<Verdict>,
    pub registry: Option<Arc<Registry>>,
}

/// Judges `events` received at `now` from `sender`. An event without an `event_id` gets one
/// made from `now` (UUIDv7), or `missing_id` when given (the dry run's nil: no id is made for
/// an event that is not stored). Fails only when a copy it needs is missing: the registry's
/// in reject mode, or the erasure tombstones', or the tracking plan's.
pub async fn judge(
    state: &AppState,
    events: &[&[u8]],
    now: DateTime<Utc>,
    sender: &Sender,
    missing_id: Option<Uuid>,
) -> Result<Judged, ApiError> {
    let validated: Vec<Result<Event, Rejection>> = events
        .iter()
        .map(|raw| match missing_id {
            Some(id) => validate_replayed_event(raw, now, &state.limits, id),
            None => eis_contract::validate_event(raw, now, &state.limits),
        })
        .collect();
    // The copies only when the contract accepts something: garbage never triggers a reload.
    let any_valid = validated.iter().any(Result::is_ok);
    let registry = match any_valid {
        true => state.registry.get().await,
        false => state.registry.held(),
    };
    // Without a copy of the tombstones or of the plan (the function's first load failed) no
    // event can be checked, and none is taken unchecked: an erased unit's retry must not slip
    // into PostgreSQL, nor an event the plan refuses. The request fails whole with the
    // retryable 503 of unavailable storage, before anything is stored or kept, so that its
    // retry is judged in full.
    // Both copies, or neither when no event is valid (then none is checked).
    let copies = match any_valid {
        true => {
            let (tombstones, plan) = tokio::join!(state.tombstones.get(), state.plan.get());
            Some((
                tombstones.ok_or(ApiError::StorageUnavailable)?,
                plan.ok_or(ApiError::StorageUnavailable)?,
            ))
        }
        false => None,
    };
    let caller = sender.unit_id.as_deref();
    let bound = |event: &Event| {
        state
            .binding
            .as_ref()
            .map_or(Ok(()), |b| b.unit.check(event, caller))
    };
    let mut verdicts = Vec::with_capacity(validated.len());
    for verdict in validated {
        let admitted = match verdict {
            Ok(event) => {
                // An erased unit's event is refused before the registry's checks, so that no
                // refusal of theirs keeps it in the quarantine; a caller the binding refuses
                // is told only that (another unit's erasure is not its to learn).
                let erased = copies
                    .as_ref()
                    .and_then(|(tombstones, _)| tombstones.check(&event).err());
                if let Some(rejection) = erased {
                    verdicts.push(Verdict::Refused {
                        rejection: bound(&event).err().unwrap_or(rejection),
                        kept: false,
                    });
                    continue;
                }
                // The plan before the registry: an event the plan refuses is refused for its
                // shape, whatever its experiments.
                let verdict = match &copies {
                    Some((_, plan)) => plan.check(event),
                    None => PlanVerdict::Accepted(event),
                };
                let event = match verdict {
                    PlanVerdict::Accepted(event) => event,
                    PlanVerdict::Quarantined(rejection) => {
                        verdicts.push(Verdict::Refused {
                            rejection,
                            kept: true,
                        });
                        continue;
                    }
                    PlanVerdict::Refused(rejection) => {
                        verdicts.push(Verdict::Refused {
                            rejection,
                            kept: false,
                        });
                        continue;
                    }
                };
                state.registry.admit(registry.as_deref(), event)?
            }
            Err(rejection) => Err(rejection),
        };
        verdicts.push(match admitted {
            Ok(mut event) => match bound(&event) {
                Ok(()) => {
                    event.sent_at = sender.sent_at;
                    Verdict::Accepted(event)
                }
                Err(rejection) => Verdict::Refused {
                    rejection,
                    kept: false,
                },
            },
            Err(rejection) => Verdict::Refused {
                rejection,
                kept: true,
            },
        });
    }
    Ok(Judged { verdicts, registry })
}

/// What became of one event of a request.
pub enum Fate {
    /// Stored now, or already stored with the same content (`duplicate`).
    Stored {
        event_id: Uuid,
        duplicate: bool,
        warnings: Vec<Flag>,
    },
    /// Refused by the contract or the registry, kept in the quarantine; or, not kept, for its
    /// caller or its unit's erasure.
    Invalid(Rejection),
    /// Valid, but storage did not take it.
    Refused(Refusal),
}

/// A request's events taken in.
pub struct Taken {
    /// Each event's fate, in request order; empty when storage failed.
    pub fates: Vec<Fate>,
    /// Per series of the variants the events named: (accepted, rejected) events.
    pub variants: VariantCounts,
    pub quarantine: QuarantineReport,
    /// The storage call's report (None: nothing to store, or it failed).
    pub saved: Option<SaveReport>,
    /// Why storage failed: then nothing of the request was stored and it fails as a whole.
    pub failed: Option<ApiError>,
}

impl Taken {
    /// A body refused as a whole: nothing judged one by one, nothing stored.
    pub fn nothing(quarantine: QuarantineReport) -> Self {
        Taken {
            fates: Vec::new(),
            variants: VariantCounts::default(),
            quarantine,
            saved: None,
            failed: None,
        }
    }
}

/// Keeps a body refused as a whole (a batch that is not one) in the quarantine.
pub async fn refuse_body(
    state: &AppState,
    arrival: Arrival<'_>,
    body: &[u8],
    rejection: &Rejection,
) -> QuarantineReport {
    let mut rejects = Rejects::new(state.quarantine_bounds, state.limits.max_experiments);
    rejects.request(arrival, body, rejection);
    state.quarantine.keep(rejects.records).await
}

/// Judges `events` (the texts of a batch's elements, or one body when `!in_batch`) and stores
/// those that pass; the quarantine's send runs beside the storage's, so that it never delays
/// valid events. Fails before anything is stored or kept only when a copy `judge` needs is
/// missing (503: a retry is judged in full).
pub async fn take(
    state: &AppState,
    arrival: Arrival<'_>,
    events: &[&[u8]],
    in_batch: bool,
    sender: &Sender,
) -> Result<Taken, ApiError> {
    let judged = judge(state, events, arrival.received_at, sender, None).await?;
    let held = judged.registry.as_deref();

    let mut variants = VariantCounts::default();
    let mut rejects = Rejects::new(state.quarantine_bounds, state.limits.max_experiments);
    let mut valid = Vec::new();
    let mut fates = Vec::with_capacity(judged.verdicts.len());
    for (index, (verdict, raw)) in judged.verdicts.into_iter().zip(events).enumerate() {
        match verdict {
            Verdict::Accepted(event) => {
                variants.accepted(&event, held);
                valid.push(event);
                fates.push(None);
            }
            Verdict::Refused {
                rejection,
                kept: true,
            } => {
                let named = rejects.event(arrival, in_batch.then_some(index), raw, &rejection);
                variants.rejected(&named, held);
                fates.push(Some(Fate::Invalid(rejection)));
            }
            Verdict::Refused {
                rejection,
                kept: false,
            } => fates.push(Some(Fate::Invalid(rejection))),
        }
    }

    let save = async {
        match valid.is_empty() {
            true => Ok(None),
            false => state.storage.save(&valid).await.map(Some),
        }
    };
    let (saved, quarantine) = tokio::join!(save, state.quarantine.keep(rejects.records));
    let (saved, failed) = match saved {
        Ok(report) => (report, None),
        Err(e) => (None, Some(ApiError::from(e))),
    };
    let fates = match failed {
        Some(_) => Vec::new(),
        None => {
            let outcomes = saved.iter().flat_map(|r| r.outcomes.iter());
            let mut stored = valid.into_iter().zip(outcomes).map(|(event, outcome)| {
                match Refusal::of(outcome, event.event_id) {
                    Some(refusal) => Fate::Refused(refusal),
                    None => Fate::Stored {
                        event_id: event.event_id,
                        duplicate: *outcome == InsertOutcome::Duplicate,
                        warnings: event.warnings().to_vec(),
                    },
                }
            });
            // The judged ones keep their places; the stored fill theirs in order.
            fates
                .into_iter()
                .filter_map(|fate| fate.or_else(|| stored.next()))
                .collect()
        }
    };
    Ok(Taken {
        fates,
        variants,
        quarantine,
        saved,
        failed,
    })
}
