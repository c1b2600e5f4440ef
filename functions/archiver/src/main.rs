//! Entry point. Under Lambda (AWS_LAMBDA_RUNTIME_API set) it serves invocations; otherwise it
//! runs ONE input now, from the JSON file given as argument (default: a scheduled run), with
//! a deadline of EIS_LOCAL_DEADLINE_SECS, and prints the answer as JSON on stdout.
use archiver::app::Archiver;
use archiver::config::Config;
use archiver::handler::{self, Input};
use eis_runtime::{invocation, telemetry};
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use tokio::time::Instant;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let in_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    telemetry::init_logging(in_lambda);
    let config = Config::from_env()?;
    let local_deadline = config.local_deadline;
    let archiver = Archiver::from_config(config).await?;

    if in_lambda {
        let archiver = &archiver;
        return lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
            let input = Input::parse(&event.payload)?;
            let deadline = invocation::deadline(event.context.deadline());
            // Boxed: the runs' futures nest deeper than rustc's default layout depth (128)
            // when the Lambda runtime's futures wrap them unboxed.
            Box::pin(handler::handle(archiver, input, deadline, true)).await
        }))
        .await
        .map_err(|e| anyhow::anyhow!("lambda runtime: {e}"));
    }

    let input = match invocation::argument_input()? {
        Some(value) => Input::parse(&value)?,
        None => Input::Scheduled,
    };
    let output = Box::pin(handler::handle(
        &archiver,
        input,
        Instant::now() + local_deadline,
        false,
    ))
    .await?;
    println!("{}", serde_json::to_string(&output)?);
    Ok(())
}
