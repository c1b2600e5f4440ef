//! Why storage did not take an event the contract accepted, as the API answers it.

use eis_store::InsertOutcome;
use uuid::Uuid;

/// Why storage did not take an event the contract accepted (its stable codes are in
/// docs/api.md).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The database refused the data itself (the detail is logged, not answered; the code
    /// stays `storage_rejected`, as clients read it).
    #[error("storage refused the event: {0}")]
    Database(String),
    /// The event_id is already stored with other content; the stored event is kept.
    #[error("event_id {0} is already stored with other content; the stored event is kept")]
    Conflict(Uuid),
}

impl Refusal {
    /// The refusal an insert outcome stands for, if any.
    pub fn of(outcome: &InsertOutcome, event_id: Uuid) -> Option<Refusal> {
        match outcome {
            InsertOutcome::Refused(reason) => Some(Refusal::Database(reason.clone())),
            InsertOutcome::Conflict => Some(Refusal::Conflict(event_id)),
            InsertOutcome::Inserted | InsertOutcome::Duplicate => None,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Database(_) => "storage_rejected",
            Refusal::Conflict(_) => "event_id_conflict",
        }
    }

    /// The JSON pointer answered beside the code: the id that conflicts, or the whole event.
    pub fn field(&self) -> &'static str {
        match self {
            Refusal::Database(_) => "",
            Refusal::Conflict(_) => "/event_id",
        }
    }

    /// The sentence for the client: the database's own words stay in the log.
    pub fn message(&self) -> String {
        match self {
            Refusal::Database(_) => "storage refused the event".into(),
            Refusal::Conflict(_) => self.to_string(),
        }
    }
}
