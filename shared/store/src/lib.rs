//! EIS storage: the PostgreSQL event store (events, their identity and their pending hand-off
//! to the archive), the archiver's bookkeeping of hours, the experiment registry and the
//! health job's tables, partition maintenance, the migrations and the login roles, and how
//! to reach the database (eis_runtime has what is not PostgreSQL).

pub mod accepted;
pub mod audit;
pub mod config;
pub mod db;
pub mod error;
pub mod events;
pub mod health;
pub mod maintenance;
pub mod migrate;
pub mod pending;
pub mod registry;
pub mod restore;
pub mod roles;

pub use accepted::{SaveReport, Storage};
pub use audit::{ArchiveHours, IdDigest, PendingHour};
pub use config::{DbConfig, RoleSecrets};
pub use db::Db;
pub use error::StoreError;
pub use events::{EventKey, InsertOutcome, PgEventStore, Stored};
pub use health::{
    Advance, ExperimentCounts, ExperimentHealth, HealthStore, SrmFigures, VariantUnits,
    WatermarkPolicy,
};
pub use pending::{PendingHandoffs, PendingId, Swept};
pub use restore::{RestoreStore, Restored};
