//! The ingest function's local server, as `functions/ingest/src/main.rs` runs it, inside this
//! binary: release code with symbols, so that callgrind can profile whole requests (HTTP,
//! validation, PostgreSQL and SQS clients, logging). The `ingest` binary itself is stripped.

use anyhow::Context;
use ingest::{app, config::Config, local, routes};

pub async fn serve() -> anyhow::Result<()> {
    eis_runtime::telemetry::init_logging(false);
    let config = Config::from_env()?;
    let router = routes::router(app::state(&config).await?);
    // SIGTERM ends it cleanly, so that callgrind writes its profile.
    local::serve(router, config.port)
        .await
        .with_context(|| format!("serving on 127.0.0.1:{}", config.port))
}
