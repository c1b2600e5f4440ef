//! EIS storage: configuration from the environment, the PostgreSQL event store and its
//! maintenance, the SQS archive hand-off, and AWS client construction and telemetry shared by
//! both functions.

pub mod audit;
pub mod aws;
pub mod config;
pub mod db;
pub mod error;
pub mod events;
pub mod maintenance;
pub mod message;
pub mod migrate;
pub mod publish;
pub mod roles;
pub mod telemetry;

pub use audit::{ArchiveHours, IdDigest, PendingHour};
pub use config::{DbConfig, EnvError, RoleSecrets};
pub use db::Db;
pub use error::StoreError;
pub use events::{EventKey, InsertOutcome, PgEventStore};
pub use publish::{PublishOutcome, SqsPublisher};
