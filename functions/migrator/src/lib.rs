//! The migrator function: the deploy's database migrations, answered to CloudFormation as the
//! `SchemaMigrations` custom resource, and the operator's experiment registry loads. `main.rs` wires
//! it; this library is what tests drive.
//!
//! `input` says what was asked, `handler` does it: `eis_store::migrate::deploy` (the
//! migrations and the login users), `registry` (an operator's load, checked whole), or
//! `custom_resource` (CloudFormation's request, the answer and its time) with `respond` (the
//! PUT to the response URL). `config` reads the environment, `error` names every failure.

pub mod config;
pub mod custom_resource;
pub mod error;
pub mod handler;
pub mod input;
pub mod registry;
pub mod respond;
