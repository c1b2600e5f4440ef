//! Local mode: the Lambda function's router served as a plain HTTP server on 127.0.0.1, with
//! the same paths as behind API Gateway (`make dev`, tests, benchmarks).

use axum::Router;

/// Serves `router` on 127.0.0.1:`port` until Ctrl-C or SIGTERM, then finishes the requests in
/// flight (a clean exit also lets callgrind write its profile).
pub async fn serve(router: Router, port: u16) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    tracing::info!(address = %listener.local_addr()?, "serving the ingest API");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown())
        .await
}

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
