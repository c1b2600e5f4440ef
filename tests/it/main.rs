//! The integration tests against the local stack: one binary, a module per area, so that the
//! whole stack is linked once. Each test takes its own database, queue and bucket (eis_tests's
//! `database` and `aws` modules), so areas run side by side without sharing state.

mod archiver;
mod archiver_parallel;
mod audit;
mod compaction;
mod erasure;
mod erasure_ingest;
mod erasure_postgres;
mod exactly_once;
mod health;
mod identity;
mod ingest_http;
mod ingest_lambda;
mod migrator;
mod plan;
mod plan_store;
mod quarantine;
mod registry;
mod sdk;
mod srm;
mod storage;
