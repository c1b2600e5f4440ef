//! Entry point: the same router runs under the Lambda runtime (AWS_LAMBDA_RUNTIME_API set)
//! or as a plain HTTP server on 127.0.0.1:$EIS_PORT for local use.

use anyhow::Context;
use eis_runtime::telemetry;
use ingest::{app, config::Config, local, routes};

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
    local::serve(router, config.port)
        .await
        .with_context(|| format!("serving on 127.0.0.1:{}", config.port))
}
