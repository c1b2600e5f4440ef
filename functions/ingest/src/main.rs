//! Entry point: the same router runs under the Lambda runtime (AWS_LAMBDA_RUNTIME_API set)
//! or as a plain HTTP server on 127.0.0.1:$EIS_PORT for local use.

use anyhow::Context;
use eis_store::telemetry;
use ingest::{app, config::Config, routes};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let in_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    telemetry::init_logging(in_lambda);
    let config = Config::from_env()?;
    let router = routes::router(app::state(&config).await?);
    if in_lambda {
        return lambda_http::run(router)
            .await
            .map_err(|e| anyhow::anyhow!("lambda runtime: {e}"));
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port))
        .await
        .with_context(|| format!("binding 127.0.0.1:{}", config.port))?;
    tracing::info!(address = %listener.local_addr()?, "serving the ingest API");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown())
        .await
        .context("serving")
}

/// Ctrl-C or SIGTERM: stop accepting, finish the requests in flight.
async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
