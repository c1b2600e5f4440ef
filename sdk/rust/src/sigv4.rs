//! AWS IAM authorisation: SigV4 for service `execute-api` with the AWS SDK's own signer and
//! the standard credentials chain (aws-config), loaded once on the first request (loading is
//! async and may reach IMDS, so it stays out of `Client::new`).

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use aws_config::BehaviorVersion;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use tokio::sync::OnceCell;

use crate::auth::AuthError;

/// API Gateway's signing name.
const SERVICE: &str = "execute-api";

/// SigV4 signing state: the credentials provider and region, loaded on first use.
#[derive(Clone)]
pub struct Iam {
    region: Option<String>,
    loaded: Arc<OnceCell<(SharedCredentialsProvider, String)>>,
}

impl Iam {
    pub(crate) fn new(region: Option<String>) -> Iam {
        Iam {
            region,
            loaded: Arc::new(OnceCell::new()),
        }
    }

    /// Fixed credentials instead of the chain (tests, or credentials the caller manages).
    pub fn with_credentials(credentials: Credentials, region: impl Into<String>) -> Iam {
        Iam {
            region: None,
            loaded: Arc::new(OnceCell::new_with(Some((
                SharedCredentialsProvider::new(credentials),
                region.into(),
            )))),
        }
    }

    async fn load(&self) -> Result<&(SharedCredentialsProvider, String), AuthError> {
        self.loaded
            .get_or_try_init(|| async {
                let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
                let provider = config.credentials_provider().ok_or_else(|| {
                    AuthError("the AWS configuration has no credentials provider".into())
                })?;
                let region = match &self.region {
                    Some(r) => r.clone(),
                    None => config.region().map(|r| r.to_string()).ok_or_else(|| {
                        AuthError("no AWS region: set AWS_REGION or Auth::iam(Some(..))".into())
                    })?,
                };
                Ok((provider, region))
            })
            .await
    }

    /// Signs `request` (its method, URI, headers and the exact body bytes) in place.
    pub(crate) async fn sign(
        &self,
        request: &mut http::Request<bytes::Bytes>,
    ) -> Result<(), AuthError> {
        let (provider, region) = self.load().await?;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|e| AuthError(format!("AWS credentials: {e}")))?;
        sign_with(request, credentials.into(), region, SystemTime::now())
    }
}

fn sign_with(
    request: &mut http::Request<bytes::Bytes>,
    identity: Identity,
    region: &str,
    time: SystemTime,
) -> Result<(), AuthError> {
    let failed = |e: &dyn fmt::Display| AuthError(format!("SigV4: {e}"));
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| failed(&e))?
        .into();
    let uri = request.uri().to_string();
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let instructions = {
        let signable = SignableRequest::new(
            request.method().as_str(),
            uri,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(request.body()),
        )
        .map_err(|e| failed(&e))?;
        sign(signable, &params)
            .map_err(|e| failed(&e))?
            .into_parts()
            .0
    };
    instructions.apply_to_request_http1x(request);
    Ok(())
}

impl fmt::Debug for Iam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iam").field("region", &self.region).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn requests_are_signed_for_execute_api() {
        let iam = Iam::with_credentials(
            Credentials::new("AKIDEXAMPLE", "secret", Some("token".into()), None, "test"),
            "eu-west-1",
        );
        let mut request =
            http::Request::post("https://abc.execute-api.eu-west-1.amazonaws.com/events/batch")
                .header("content-type", "application/json")
                .header("eis-sent-at", "2026-03-01T12:00:00Z")
                .body(bytes::Bytes::from_static(b"{\"events\":[]}"))
                .expect("request");
        iam.sign(&mut request).await.expect("signed");
        let auth = request.headers()["authorization"].to_str().expect("ascii");
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
            "{auth}"
        );
        assert!(
            auth.contains("/eu-west-1/execute-api/aws4_request"),
            "{auth}"
        );
        assert!(
            auth.contains("eis-sent-at"),
            "the sent-at header is signed: {auth}"
        );
        assert!(request.headers().contains_key("x-amz-date"));
        assert_eq!(request.headers()["x-amz-security-token"], "token");
    }

    #[test]
    fn the_body_is_part_of_the_signature() {
        let identity: Identity =
            Credentials::new("AKIDEXAMPLE", "secret", None, None, "test").into();
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_772_000_000);
        let signature = |body: &'static [u8]| {
            let mut request = http::Request::post("https://h.example/events")
                .body(bytes::Bytes::from_static(body))
                .expect("request");
            sign_with(&mut request, identity.clone(), "us-east-1", time).expect("signed");
            request.headers()["authorization"].clone()
        };
        assert_eq!(signature(b"a"), signature(b"a"), "deterministic");
        assert_ne!(signature(b"a"), signature(b"b"));
    }
}
