//! What both functions need around their domain: typed configuration from the environment,
//! JSON logs and CloudWatch EMF metrics, AWS SDK clients with one rule for which of their
//! failures are worth retrying. (The SQS hand-off of accepted events is eis_handoff's.)

pub mod aws;
pub mod config;
pub mod invocation;
pub mod telemetry;

pub use config::EnvError;
