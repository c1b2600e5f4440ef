//! AWS SDK configuration shared by both functions and the tests. The endpoint comes from the
//! standard `AWS_ENDPOINT_URL`, so the local stack (moto) takes the same code path as AWS.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

/// Loads region, credentials and endpoint from the environment (no network I/O here).
/// Retries are the SDK's standard mode: exponential backoff with jitter, `max_attempts` tries.
pub async fn sdk_config(max_attempts: u32, attempt_timeout: Duration) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(max_attempts))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(attempt_timeout)
                .build(),
        )
        .load()
        .await
}

pub fn sqs_client(sdk: &SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(sdk)
}

/// Path-style addressing when the endpoint is overridden: emulators and private endpoints
/// do not serve virtual-hosted bucket names.
#[cfg(feature = "s3")]
pub fn s3_client(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(sdk.endpoint_url().is_some())
        .build();
    aws_sdk_s3::Client::from_conf(config)
}
