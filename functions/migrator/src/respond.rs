//! The one HTTP call of the migrator: the PUT of a custom-resource answer to CloudFormation's
//! pre-signed response URL (regional S3, reached through the VPC's S3 gateway endpoint in AWS).
//! hyper-util's client with hyper-rustls (the system's roots), the stack the AWS SDK's HTTPS
//! client already links.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::error::{Cause, MigratorError};

/// Most of a refusal's body kept in the error (S3 answers an XML document).
const MAX_REFUSAL_BYTES: usize = 500;

fn failed(message: &str, cause: impl Into<Cause>) -> MigratorError {
    MigratorError::Response(message.into(), Some(cause.into()))
}

/// PUTs `body` to `url` with an empty Content-Type (the URL is signed for none), within
/// `timeout`. Any answer but 2xx is an error that names the status.
pub async fn put(url: &str, body: Vec<u8>, timeout: Duration) -> Result<(), MigratorError> {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| failed("no TLS root certificates", e))?
        .https_or_http()
        .enable_http1()
        .build();
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    let length = body.len();
    let request = http::Request::put(url)
        .header(CONTENT_TYPE, "")
        .header(CONTENT_LENGTH, length)
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| failed("not a URL", e))?;
    let exchange = async {
        let answer = client
            .request(request)
            .await
            .map_err(|e| failed("the PUT failed", e))?;
        let status = answer.status();
        if status.is_success() {
            return Ok(());
        }
        let text = match answer.into_body().collect().await {
            Ok(body) => String::from_utf8_lossy(&body.to_bytes()).into_owned(),
            Err(_) => String::new(),
        };
        let text: String = text.chars().take(MAX_REFUSAL_BYTES).collect();
        Err(MigratorError::Response(
            format!("the PUT was answered {status}: {text}"),
            None,
        ))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| MigratorError::Response(format!("no answer within {timeout:?}"), None))?
}
