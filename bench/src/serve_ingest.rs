//! The ingest function's local server, as `functions/ingest/src/main.rs` runs it, inside this
//! binary: release code with symbols, so that callgrind can profile whole requests (HTTP,
//! validation, PostgreSQL and SQS clients, logging). The `ingest` binary itself is stripped.

use anyhow::Context;
use ingest::{app, config::Config, routes};

pub async fn serve() -> anyhow::Result<()> {
    eis_store::telemetry::init_logging(false);
    let config = Config::from_env()?;
    let router = routes::router(app::state(&config).await?);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port))
        .await
        .with_context(|| format!("binding 127.0.0.1:{}", config.port))?;
    // SIGTERM ends the server cleanly, so that callgrind writes its profile.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("SIGTERM handler")?;
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            term.recv().await;
        })
        .await
        .context("serving")
}
