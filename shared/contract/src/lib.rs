//! The EIS event contract: what a valid event is.
//!
//! Pure: no I/O, no async, no clock reads. Both Lambda functions, the
//! benchmarks and the fuzzers link it, so one crate decides every answer.
//! `docs/contract.md` is the client-facing description of the same rules.
//!
//! - [`validate_event`] turns one event's JSON bytes into a normalised
//!   [`Event`] or exactly one [`Rejection`] (a stable [`Code`] + message).
//! - [`parse_batch`] splits a batch body into each event's raw JSON.
//! - [`Event`]'s serde form is the record format stored and archived.
//! - [`Encoded`] writes an accepted event once: its record and its content digest, which
//!   tells a retry of an event_id from a conflicting resend.
//! - [`Quarantined`] is what is kept of a rejected event, for counting and replay.
//! - [`Registry::admit`] checks an accepted event against the experiment registry.
//! - [`UnitBinding::check`] keeps a signed-in caller to events about itself.
//! - [`Tombstones`] keep an erased unit's events from being stored again.
//! - [`plan::Plan::check`] checks an accepted event against the tracking plan's schemas.

mod batch;
mod binding;
mod canonical;
mod code;
mod decode;
mod erasure;
mod event;
mod identity;
mod json;
mod json_object;
mod limits;
mod number;
pub mod plan;
mod quarantine;
mod record;
mod registry;
mod rejection;
mod schema_version;
mod split;
mod standard;
mod timestamp;
mod validate;

pub use batch::parse_batch;
pub use binding::UnitBinding;
pub use code::{Code, Flag};
pub use erasure::{unit_hash, Tombstone, Tombstones, UnitHash};
pub use event::{Event, ExperimentRef};
pub use identity::{in_batch, ContentDigest, InBatch};
pub use json::kind as json_kind;
pub use json_object::{JsonObject, JsonObjectError};
pub use limits::Limits;
pub use quarantine::{
    named_variants, variant_bytes, Arrival, NamedVariant, Quarantined, Scope, MAX_NAMED_ID_BYTES,
};
pub use record::{Encoded, ToRecord};
pub use registry::{Misfit, RegisteredExperiment, Registry, RegistryMode};
pub use rejection::Rejection;
pub use standard::STANDARD_EVENT_TYPES;
pub use timestamp::parse as parse_timestamp;
pub use validate::{is_name, validate_event, validate_replayed_event};
