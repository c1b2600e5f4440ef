//! The keys that the event store and the pending hand-offs share: a stored event's primary key
//! and the id of a pending hand-off row. Both modules use them; neither imports the other.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The primary key of a stored event.
pub type EventKey = (Uuid, DateTime<Utc>);

/// The id of a row of exp.pending_handoffs.
pub type PendingId = i64;
