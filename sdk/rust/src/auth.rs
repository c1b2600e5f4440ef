//! How requests are authorised: not at all (the local server), AWS IAM (SigV4 for API
//! Gateway's `execute-api`, credentials from the standard AWS chain), or a bearer token from a
//! provider the caller supplies. Applied to every attempt, so that a retry carries fresh
//! credentials and a fresh signature.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::header::{HeaderValue, AUTHORIZATION};

/// The future a [`TokenProvider`] returns.
pub type TokenFuture<'a> = Pin<Box<dyn Future<Output = Result<String, AuthError>> + Send + 'a>>;

/// Gives the JWT for the next request (cache and refresh it as your identity provider needs;
/// it is called once per attempt).
pub trait TokenProvider: Send + Sync + 'static {
    fn token(&self) -> TokenFuture<'_>;
}

/// A fixed token, for tests and short-lived processes.
pub struct StaticToken(pub String);

impl TokenProvider for StaticToken {
    fn token(&self) -> TokenFuture<'_> {
        let token = self.0.clone();
        Box::pin(async move { Ok(token) })
    }
}

/// Credentials or a token could not be had, or a request could not be signed. Treated as
/// transient: the attempt is retried within the retry budget (an IMDS or identity provider
/// that hiccups recovers; a wrong setup ends as `GivenUp` with this message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("authorisation failed: {0}")]
pub struct AuthError(pub String);

/// The authorisation of every request.
#[derive(Clone, Default)]
pub enum Auth {
    /// No authorisation header (`make dev`'s local server).
    #[default]
    None,
    /// `Authorization: Bearer <token>`, the token from the provider.
    Jwt(Arc<dyn TokenProvider>),
    /// AWS SigV4 for `execute-api`.
    #[cfg(feature = "iam")]
    Iam(crate::sigv4::Iam),
}

impl Auth {
    /// Bearer tokens from `provider`.
    pub fn jwt(provider: impl TokenProvider) -> Auth {
        Auth::Jwt(Arc::new(provider))
    }

    /// SigV4 with the default AWS credentials chain (environment, profile, web identity,
    /// ECS, IMDS) and `region`, or the chain's region when `None`.
    #[cfg(feature = "iam")]
    pub fn iam(region: Option<String>) -> Auth {
        Auth::Iam(crate::sigv4::Iam::new(region))
    }

    /// Adds what this mode needs to `request`, whose body is `body` (the exact bytes sent).
    pub(crate) async fn authorise(
        &self,
        request: &mut http::Request<bytes::Bytes>,
    ) -> Result<(), AuthError> {
        match self {
            Auth::None => Ok(()),
            Auth::Jwt(provider) => {
                let token = provider.token().await?;
                let value = HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| AuthError("the token is not a valid header value".into()))?;
                request.headers_mut().insert(AUTHORIZATION, value);
                Ok(())
            }
            #[cfg(feature = "iam")]
            Auth::Iam(iam) => iam.sign(request).await,
        }
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("Auth::None"),
            Auth::Jwt(_) => f.write_str("Auth::Jwt(..)"),
            #[cfg(feature = "iam")]
            Auth::Iam(iam) => write!(f, "Auth::Iam({iam:?})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_jwt_is_a_bearer_header() {
        let auth = Auth::jwt(StaticToken("abc.def.ghi".into()));
        let mut request = http::Request::new(bytes::Bytes::new());
        auth.authorise(&mut request).await.expect("authorised");
        assert_eq!(request.headers()[AUTHORIZATION], "Bearer abc.def.ghi");

        let bad = Auth::jwt(StaticToken("line\nbreak".into()));
        assert!(bad.authorise(&mut request).await.is_err());
    }
}
