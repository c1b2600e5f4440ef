//! What both functions need around their domain: typed configuration from the environment,
//! JSON logs and CloudWatch EMF metrics, AWS SDK clients with one rule for which of their
//! failures are worth retrying, and the SQS hand-off of accepted events to the archiver (its
//! message format, written by the ingest function's publisher and read by the archiver).

pub mod aws;
pub mod config;
pub mod handoff;
pub mod invocation;
pub mod publish;
pub mod telemetry;

pub use config::EnvError;
pub use publish::{Publish, PublishError, PublishOutcome, SqsPublisher};
