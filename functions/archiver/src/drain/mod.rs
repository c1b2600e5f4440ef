//! A scheduled run (or a drain worker's): sweep PostgreSQL, receive from SQS, group by hour,
//! store the files, acknowledge; then the compaction of settled hours and partition upkeep.

pub mod batcher;
pub mod fanout;
pub mod ledger;
pub mod queue;
pub mod run;
pub mod summary;
