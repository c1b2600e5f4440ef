//! The hand-off of accepted events to the archive: commit them to PostgreSQL with a pending
//! hand-off row, then publish them to SQS and settle that row ([`Storage`]); the SQS message
//! format the archiver reads ([`message`]); and the publisher ([`SqsPublisher`]). What is
//! PostgreSQL alone is `eis_store`; configuration, logs and AWS clients are `eis_runtime`.

pub mod message;
pub mod publish;
pub mod store_then_publish;

pub use message::{Message, SQS_MAX_MESSAGE_BYTES};
pub use publish::{Publish, PublishError, PublishOutcome, SqsPublisher};
pub use store_then_publish::{SaveReport, Storage};
