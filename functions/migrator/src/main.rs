//! Entry point. Under Lambda (AWS_LAMBDA_RUNTIME_API set) it serves invocations; otherwise it
//! runs ONE input now, from the JSON file given as argument (default `{"action":"migrate"}`:
//! `make migrate`), and prints the answer on stdout.

use std::time::Duration;

use eis_runtime::{invocation, telemetry};
use lambda_runtime::{service_fn, LambdaEvent};
use migrator::config::Config;
use migrator::handler;
use migrator::input::Input;
use serde_json::Value;
use tokio::time::Instant;

/// A local run's deadline: the function's timeout in template.yaml.
const LOCAL_DEADLINE: Duration = Duration::from_secs(300);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let in_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    telemetry::init_logging(in_lambda);
    let config = Config::from_env()?;

    if in_lambda {
        let config = &config;
        return lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
            let input = Input::parse(&event.payload)?;
            handler::handle(
                config,
                input,
                invocation::deadline(event.context.deadline()),
            )
            .await
        }))
        .await
        .map_err(|e| anyhow::anyhow!("lambda runtime: {e}"));
    }

    let input = match invocation::argument_input()? {
        Some(value) => Input::parse(&value)?,
        None => Input::Migrate,
    };
    let output = handler::handle(&config, input, Instant::now() + LOCAL_DEADLINE).await?;
    println!("{}", output.text());
    Ok(())
}
