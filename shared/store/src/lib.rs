//! EIS storage, PostgreSQL only: the event store (events, their identity and their pending
//! hand-off rows), the archiver's bookkeeping of hours, the experiment registry, the tracking
//! plan and the health job's tables, erasure requests and tombstones, partition maintenance, the migrations and the login roles, and how
//! to reach the database. Publishing to SQS after the commit is eis_handoff's; configuration,
//! logs and AWS clients are eis_runtime's.

pub mod audit;
pub mod config;
pub mod db;
pub mod erasure;
pub mod error;
pub mod events;
pub mod health;
pub mod keys;
pub mod maintenance;
pub mod migrate;
pub mod pending;
pub mod plan;
pub mod registry;
pub mod restore;
pub mod roles;

pub use audit::{ArchiveHours, IdDigest, PendingHour};
pub use config::{DbConfig, RoleSecrets};
pub use db::Db;
pub use erasure::ErasureStore;
pub use error::StoreError;
pub use events::{InsertOutcome, PgEventStore, Stored};
pub use health::{
    Advance, ExperimentCounts, ExperimentHealth, HealthStore, PlanViolations, SrmFigures,
    VariantUnits, WatermarkPolicy,
};
pub use keys::{EventKey, PendingId};
pub use pending::{PendingHandoffs, Swept};
pub use restore::{RestoreStore, Restored};
