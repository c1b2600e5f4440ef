//! Entry point. Under Lambda (AWS_LAMBDA_RUNTIME_API set) it serves invocations; otherwise it
//! runs ONE input now, from the JSON file given as argument (default: a scheduled run), with
//! a deadline of EIS_LOCAL_DEADLINE_SECS, and prints the answer as JSON on stdout.

use anyhow::Context;
use archiver::app::Archiver;
use archiver::config::Config;
use archiver::handler::{self, Input};
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use tokio::time::Instant;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let in_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    init_logging(in_lambda);
    let config = Config::from_env()?;
    let local_deadline = config.local_deadline;
    let archiver = Archiver::from_config(config).await?;

    if in_lambda {
        let archiver = &archiver;
        return lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
            let input = Input::parse(&event.payload)?;
            let deadline = handler::deadline(event.context.deadline());
            handler::handle(archiver, input, deadline, true).await
        }))
        .await
        .map_err(|e| anyhow::anyhow!("lambda runtime: {e}"));
    }

    let input = match std::env::args_os().nth(1) {
        Some(path) => {
            let text = std::fs::read(&path)
                .with_context(|| format!("reading {}", path.to_string_lossy()))?;
            Input::parse(&serde_json::from_slice(&text).context("the input is not JSON")?)?
        }
        None => Input::Scheduled,
    };
    let output = handler::handle(&archiver, input, Instant::now() + local_deadline, false).await?;
    println!("{}", serde_json::to_string(&output)?);
    Ok(())
}

/// JSON logs. In Lambda on stdout without timestamps (CloudWatch adds its own); locally on
/// stderr, so that stdout carries only the answer.
fn init_logging(in_lambda: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_target(false);
    if in_lambda {
        builder.without_time().init();
    } else {
        builder.with_writer(std::io::stderr).init();
    }
}
