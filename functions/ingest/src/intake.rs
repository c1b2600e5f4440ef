//! The one intake path of both routes: judge a request's events (the contract, then the
//! registry), keep what fails in the quarantine, store what passes, and say what became of
//! each. `POST /events` takes a body as a batch of one; the routes differ only in their
//! answers (routes.rs).

use eis_contract::{validate_event, Arrival, Event, Flag, Rejection};
use eis_handoff::SaveReport;
use eis_store::InsertOutcome;
use uuid::Uuid;

use crate::app::AppState;
use crate::error::ApiError;
use crate::quarantine::{QuarantineReport, Rejects};
use crate::refusal::Refusal;
use crate::series::VariantCounts;

/// What became of one event of a request.
pub enum Fate {
    /// Stored now, or already stored with the same content (`duplicate`).
    Stored {
        event_id: Uuid,
        duplicate: bool,
        warnings: Vec<Flag>,
    },
    /// Refused by the contract or the registry; kept in the quarantine.
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
/// valid events. Fails before anything is stored or kept only when the registry copy is
/// missing in reject mode (503: a retry is judged in full).
pub async fn take(
    state: &AppState,
    arrival: Arrival<'_>,
    events: &[&[u8]],
    in_batch: bool,
) -> Result<Taken, ApiError> {
    let now = arrival.received_at;
    let judged: Vec<Result<Event, Rejection>> = events
        .iter()
        .map(|raw| validate_event(raw, now, &state.limits))
        .collect();
    // The registry copy only when the contract accepts something: garbage never triggers
    // its reload.
    let registry = match judged.iter().any(Result::is_ok) {
        true => state.registry.get().await,
        false => state.registry.held(),
    };
    let held = registry.as_deref();
    let mut admitted = Vec::with_capacity(judged.len());
    for verdict in judged {
        admitted.push(match verdict {
            Ok(event) => state.registry.admit(held, event)?,
            Err(rejection) => Err(rejection),
        });
    }

    let mut variants = VariantCounts::default();
    let mut rejects = Rejects::new(state.quarantine_bounds, state.limits.max_experiments);
    let mut valid = Vec::new();
    let mut fates = Vec::with_capacity(admitted.len());
    for (index, (verdict, raw)) in admitted.into_iter().zip(events).enumerate() {
        match verdict {
            Ok(event) => {
                variants.accepted(&event, held);
                valid.push(event);
                fates.push(None);
            }
            Err(rejection) => {
                let named = rejects.event(arrival, in_batch.then_some(index), raw, &rejection);
                variants.rejected(&named, held);
                fates.push(Some(Fate::Invalid(rejection)));
            }
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
