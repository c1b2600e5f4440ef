//! One POST to the API: the body (gzip above a size), `EIS-Sent-At` stamped at the moment of
//! sending (a retry carries a new one), the authorisation, and the answer read within the
//! request timeout. hyper-util's pooled HTTP/1 client with rustls (the system's roots): the
//! stack the AWS SDK's default HTTPS client links, so the SDK adds no second one.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use http::header::{CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::answer::Answer;
use crate::auth::{Auth, AuthError};
use crate::batch;
use crate::error::ConfigError;

/// The header that tells the server when the client sent the request (its clock).
pub const SENT_AT: &str = "eis-sent-at";
/// Answers are small (an id per event); a larger one is not the API's.
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;
const AGENT: &str = concat!("eis-client-rust/", env!("CARGO_PKG_VERSION"));

/// Why an attempt got no answer. All are transient: the same events go again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Failure {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("connection failed: {0}")]
    Connection(String),
    #[error(transparent)]
    Auth(#[from] AuthError),
}

#[derive(Clone)]
pub(crate) struct Transport {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    base: Arc<str>,
    auth: Auth,
    gzip_above: Option<usize>,
    timeout: Duration,
}

impl Transport {
    pub fn new(
        url: &str,
        auth: Auth,
        gzip_above: Option<usize>,
        timeout: Duration,
    ) -> Result<Transport, ConfigError> {
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let tls = match builder.with_provider_and_native_roots(provider) {
            Ok(tls) => tls,
            // A machine without a CA bundle can still reach a plain-HTTP URL (local tests).
            Err(e) if url.starts_with("https:") => return Err(ConfigError::Tls(e.to_string())),
            Err(_) => hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(
                rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::aws_lc_rs::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .map_err(|e| ConfigError::Tls(e.to_string()))?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
            ),
        };
        let connector = tls.https_or_http().enable_http1().build();
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Transport {
            client,
            base: Arc::from(url),
            auth,
            gzip_above,
            timeout,
        })
    }

    /// POSTs the JSON `body` to `path` (`/events/batch`, `/events/validate`).
    pub async fn post(&self, path: &str, body: Vec<u8>) -> Result<Answer, Failure> {
        let (bytes, gzipped) = batch::encode(body, self.gzip_above);
        let exchange = async {
            let mut request = http::Request::post(format!("{}{path}", self.base))
                .header(CONTENT_TYPE, "application/json")
                .header(USER_AGENT, AGENT)
                .header(
                    SENT_AT,
                    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
                )
                .body(bytes)
                .map_err(|e| Failure::Connection(format!("request: {e}")))?;
            if gzipped {
                request
                    .headers_mut()
                    .insert(CONTENT_ENCODING, http::HeaderValue::from_static("gzip"));
            }
            self.auth.authorise(&mut request).await?;
            let response = self
                .client
                .request(request.map(Full::new))
                .await
                .map_err(|e| Failure::Connection(error_chain(&e)))?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| Failure::Connection(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok(Answer {
                status,
                retry_after,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| Failure::Timeout(self.timeout))?
    }
}

/// An error and its causes in one line (hyper's own message alone is often just "client
/// error (Connect)").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-shot HTTP server: answers `reply` and hands back the request it read.
    async fn one_shot(reply: &'static str) -> (String, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let Ok((mut socket, _)) = listener.accept().await else {
                return String::new();
            };
            let mut seen = Vec::new();
            let mut buf = [0u8; 65536];
            // Headers, then as much body as Content-Length says.
            while let Ok(n) = socket.read(&mut buf).await {
                seen.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&seen).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if seen.len() >= end + 4 + length || n == 0 {
                        break;
                    }
                }
            }
            let _ = socket.write_all(reply.as_bytes()).await;
            String::from_utf8_lossy(&seen).to_string()
        });
        (url, task)
    }

    #[tokio::test]
    async fn a_post_carries_sent_at_and_gzips_large_bodies() {
        let (url, server) = one_shot(
            "HTTP/1.1 503 Service Unavailable\r\nretry-after: 5\r\ncontent-length: 2\r\n\r\n{}",
        )
        .await;
        let t = Transport::new(&url, Auth::None, Some(10), Duration::from_secs(5)).expect("t");
        let answer = t
            .post("/events/batch", batch::body([&b"{\"a\":1}"[..]]))
            .await
            .expect("answered");
        assert_eq!(answer.status, 503);
        assert_eq!(answer.retry_after.as_deref(), Some("5"));
        let request = server.await.expect("server");
        assert!(
            request.starts_with("POST /events/batch HTTP/1.1"),
            "{request}"
        );
        assert!(request.contains("content-encoding: gzip"), "{request}");
        let sent_at = request
            .lines()
            .find_map(|l| l.strip_prefix("eis-sent-at: "))
            .expect("EIS-Sent-At");
        assert!(
            chrono::DateTime::parse_from_rfc3339(sent_at.trim()).is_ok(),
            "{sent_at}"
        );
    }

    #[tokio::test]
    async fn no_server_is_a_connection_failure() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let t = Transport::new(
            &format!("http://{addr}"),
            Auth::None,
            None,
            Duration::from_secs(2),
        )
        .expect("t");
        let err = t
            .post("/events/batch", b"{}".to_vec())
            .await
            .expect_err("refused");
        assert!(matches!(err, Failure::Connection(_)), "{err:?}");
    }
}
