//! AWS SDK configuration shared by both functions and the tests, and the one rule for which
//! SDK failures are worth retrying. The endpoint comes from the standard `AWS_ENDPOINT_URL`,
//! so the local stack (moto) takes the same code path as AWS.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

/// Every SDK client's error and raw response types (all re-export the same smithy types).
pub use aws_sdk_sqs::config::http::HttpResponse;
pub use aws_sdk_sqs::error::SdkError;

/// Whether a failure (after the SDK's own retries) may go away by itself: no answer at all
/// (connect, timeout, a broken response), throttling and server-side errors may; any other
/// answer is about the request itself (permissions, a missing queue, bucket or secret).
pub fn is_transient<E>(err: &SdkError<E, HttpResponse>) -> bool {
    match err {
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            status >= 500 || status == 429 || status == 408
        }
        SdkError::ConstructionFailure(_) => false,
        _ => true,
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_answer_is_transient_and_a_bad_request_is_not() {
        let timeout: SdkError<std::io::Error, HttpResponse> = SdkError::timeout_error("slow");
        assert!(is_transient(&timeout));
        let unbuilt: SdkError<std::io::Error, HttpResponse> =
            SdkError::construction_failure("no queue url");
        assert!(!is_transient(&unbuilt));
    }
}
