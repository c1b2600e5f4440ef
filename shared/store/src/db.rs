//! One PostgreSQL connection per Lambda container: opened lazily on first use, reused across
//! invocations, re-opened when it breaks, and probed before use after a long idle (a proxy may
//! have closed it while the Lambda was frozen). Local mode may keep a few
//! (`Db::with_connections`), taken in turn, so that concurrent requests are not serialised on
//! one backend. TLS through native-tls, honouring libpq's sslmode.

use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use native_tls::{Certificate, TlsConnector};
use postgres_native_tls::MakeTlsConnector;
use tokio::sync::Mutex;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, Config};

use eis_runtime::aws::is_transient;

use crate::config::DbConfig;
use crate::error::StoreError;

/// libpq's sslmode values; tokio-postgres itself only knows disable/prefer/require.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

pub struct Db {
    config: Config,
    tls: MakeTlsConnector,
    query_timeout: Duration,
    /// A shared connection idle this long is probed before it is handed out.
    idle_probe_after: Duration,
    /// The shared connections (one unless `with_connections`), each opened when first needed.
    clients: Vec<Mutex<Option<Shared>>>,
    /// Which connection the next `client()` call gets.
    next: AtomicUsize,
    secret_arn: Option<String>,
    /// Credentials read from the secret, kept until the server refuses them (rotation).
    credentials: Mutex<Option<Credentials>>,
}

/// A shared connection and when it was last handed out.
struct Shared {
    client: Arc<Client>,
    /// The wall clock: whether the monotonic clock advances while a Lambda is frozen is not
    /// documented, and the idle time of a frozen container is what matters.
    at: SystemTime,
}

impl Shared {
    fn handed_out(client: Arc<Client>) -> Self {
        Self {
            client,
            at: SystemTime::now(),
        }
    }

    /// Zero when the wall clock was set back (the connection is then not probed).
    fn idle(&self) -> Duration {
        SystemTime::now()
            .duration_since(self.at)
            .unwrap_or_default()
    }
}

/// A database user's name and password, as a Secrets Manager secret holds them (RDS's own
/// secrets and those of infra/database.yaml share this shape).
#[derive(Clone, serde::Deserialize)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// Reads credentials from a secret. A lasting refusal (not found, access denied) or a secret
/// of another shape is a configuration fault; no answer, throttling or a server error is an
/// outage (`eis_runtime::aws::is_transient`).
pub async fn read_secret(arn: &str) -> Result<Credentials, StoreError> {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let answer = aws_sdk_secretsmanager::Client::new(&sdk)
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| {
            let text = format!(
                "reading secret {arn}: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
            );
            let error = if is_transient(&e) {
                StoreError::unavailable(text)
            } else {
                StoreError::config(text)
            };
            error.caused_by(e)
        })?;
    let text = answer
        .secret_string()
        .ok_or_else(|| StoreError::config(format!("secret {arn} holds no string")))?;
    serde_json::from_str(text).map_err(|e| {
        StoreError::config(format!(
            "secret {arn} is not JSON with username and password"
        ))
        .caused_by(e)
    })
}

impl Db {
    /// Parses the configuration and prepares TLS; does no I/O (cold starts stay cheap).
    pub fn new(cfg: &DbConfig) -> Result<Self, StoreError> {
        let (url, mode, root_cert) = split_tls_params(&cfg.url)?;
        let mut config = Config::from_str(&url)
            .map_err(|e| StoreError::config("DATABASE_URL cannot be parsed").caused_by(e))?;
        config.connect_timeout(cfg.connect_timeout);
        config.ssl_mode(match mode {
            TlsMode::Disable => SslMode::Disable,
            TlsMode::Prefer => SslMode::Prefer,
            _ => SslMode::Require,
        });
        if config.get_application_name().is_none() {
            config.application_name("eis");
        }
        let ca_file = root_cert.or_else(|| cfg.ca_file.clone());
        let tls = tls_connector(mode, ca_file.as_deref())?;
        Ok(Self {
            config,
            tls,
            query_timeout: cfg.query_timeout,
            idle_probe_after: cfg.idle_probe_after,
            clients: vec![Mutex::new(None)],
            next: AtomicUsize::new(0),
            secret_arn: cfg.secret_arn.clone(),
            credentials: Mutex::new(None),
        })
    }

    /// A database reached with credentials already read from `cfg.secret_arn` (the secret is
    /// read again only if the server refuses them).
    pub fn with_credentials(cfg: &DbConfig, credentials: Credentials) -> Result<Self, StoreError> {
        let db = Self::new(cfg)?;
        Ok(Self {
            credentials: Mutex::new(Some(credentials)),
            ..db
        })
    }

    /// A database with `n` shared connections (at least one), handed out in turn.
    pub fn with_connections(cfg: &DbConfig, n: usize) -> Result<Self, StoreError> {
        let db = Self::new(cfg)?;
        Ok(Self {
            clients: (0..n.max(1)).map(|_| Mutex::new(None)).collect(),
            ..db
        })
    }

    /// A shared connection (the next in turn), opened (or re-opened) when needed.
    pub async fn client(&self) -> Result<Arc<Client>, StoreError> {
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.clients.len();
        let mut slot = self.clients[turn].lock().await;
        let kept = match slot.take() {
            Some(shared) if self.fit(&shared).await => shared.client,
            _ => Arc::new(self.connect().await?),
        };
        *slot = Some(Shared::handed_out(Arc::clone(&kept)));
        Ok(kept)
    }

    /// Whether a shared connection may be handed out: it is open and, after a long idle, it
    /// answers a round trip. A server (or proxy) that closed it meanwhile fails the probe
    /// rather than the caller's statement, which may not be safe to send twice. The probe is
    /// bounded like a connect: a socket that answers nothing is replaced as fast as one.
    async fn fit(&self, shared: &Shared) -> bool {
        if shared.client.is_closed() {
            return false;
        }
        let idle = shared.idle();
        if idle < self.idle_probe_after {
            return true;
        }
        let limit = self
            .config
            .get_connect_timeout()
            .copied()
            .unwrap_or(self.query_timeout);
        let probe = tokio::time::timeout(limit, shared.client.simple_query("SELECT 1")).await;
        let failure = match probe {
            Ok(Ok(_)) => return true,
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {limit:?}"),
        };
        tracing::info!(
            idle_secs = idle.as_secs(),
            failure,
            "replacing a shared connection that failed its probe after an idle"
        );
        false
    }

    /// A new connection of its own, for work that needs a transaction (`&mut Client`).
    pub async fn connect(&self) -> Result<Client, StoreError> {
        let mut config = self.config.clone();
        let mut login = None;
        if let Some(arn) = &self.secret_arn {
            let credentials = self.secret_credentials(arn).await?;
            config
                .user(&credentials.username)
                .password(credentials.password);
            login = Some((credentials.username, arn));
        }
        let connecting = config.connect(self.tls.clone());
        // connect_timeout bounds each socket attempt; this bounds the handshake as a whole.
        let deadline = config.get_connect_timeout().copied();
        let connected = match deadline {
            Some(limit) => tokio::time::timeout(limit, connecting).await.map_err(|_| {
                StoreError::unavailable(format!("connect timed out after {limit:?}"))
            })?,
            None => connecting.await,
        };
        let (client, connection) = match connected {
            Ok(c) => c,
            Err(e) => {
                let err = StoreError::from_pg(e);
                // The secret may have been rotated: read it again on the next connect.
                if matches!(err, StoreError::LoginRefused(..)) {
                    *self.credentials.lock().await = None;
                }
                return Err(match login {
                    Some((user, arn)) => err.login_refused(&user, arn),
                    None => err,
                });
            }
        };
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "postgres connection closed");
            }
        });
        Ok(client)
    }

    /// The secret's credentials, read once (lazily: cold starts do no I/O) and cached.
    async fn secret_credentials(&self, arn: &str) -> Result<Credentials, StoreError> {
        let mut cached = self.credentials.lock().await;
        if let Some(c) = cached.as_ref() {
            return Ok(c.clone());
        }
        let credentials = read_secret(arn).await?;
        *cached = Some(credentials.clone());
        Ok(credentials)
    }

    /// Forgets the shared connections so that the next calls open new ones.
    pub async fn reset(&self) {
        for slot in &self.clients {
            *slot.lock().await = None;
        }
    }

    /// Runs one database operation under the query timeout. On a timeout or a transient
    /// error the shared connections are dropped: they may be stuck or broken (the one that
    /// failed is not known here, and a database that went away broke them all).
    pub async fn within_timeout<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, tokio_postgres::Error>>,
    {
        let result = match tokio::time::timeout(self.query_timeout, op).await {
            Ok(r) => r.map_err(StoreError::from_pg),
            Err(_) => Err(StoreError::unavailable(format!(
                "statement timed out after {:?}",
                self.query_timeout
            ))),
        };
        if matches!(result, Err(ref e) if e.is_retryable()) {
            self.reset().await;
        }
        result
    }

    /// A cheap round trip, for health checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        self.within_timeout(client.simple_query("SELECT 1"))
            .await
            .map(|_| ())
    }
}

/// Takes `sslmode` and `sslrootcert` out of a URL (tokio-postgres rejects verify-* and
/// sslrootcert) and returns the rest with them.
fn split_tls_params(url: &str) -> Result<(String, TlsMode, Option<String>), StoreError> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), TlsMode::Prefer, None));
    };
    let mut mode = TlsMode::Prefer;
    let mut root_cert = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("sslmode", v)) => {
                mode = match v {
                    "disable" => TlsMode::Disable,
                    "prefer" | "allow" => TlsMode::Prefer,
                    "require" => TlsMode::Require,
                    "verify-ca" => TlsMode::VerifyCa,
                    "verify-full" => TlsMode::VerifyFull,
                    other => return Err(StoreError::config(format!("unknown sslmode {other:?}"))),
                }
            }
            Some(("sslrootcert", v)) => root_cert = Some(v.to_string()),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, mode, root_cert))
}

/// libpq semantics: prefer/require encrypt without verifying; verify-ca checks the chain;
/// verify-full checks the chain and the host name.
fn tls_connector(mode: TlsMode, ca_file: Option<&str>) -> Result<MakeTlsConnector, StoreError> {
    let mut builder = TlsConnector::builder();
    match mode {
        TlsMode::Disable | TlsMode::Prefer | TlsMode::Require => {
            builder
                .danger_accept_invalid_certs(true)
                .danger_accept_invalid_hostnames(true);
        }
        TlsMode::VerifyCa => {
            builder.danger_accept_invalid_hostnames(true);
        }
        TlsMode::VerifyFull => {}
    }
    if let Some(path) = ca_file.filter(|_| matches!(mode, TlsMode::VerifyCa | TlsMode::VerifyFull))
    {
        let pem = std::fs::read(path)
            .map_err(|e| StoreError::config(format!("cannot read CA file {path}")).caused_by(e))?;
        // A bundle (like RDS's) holds many certificates: add each one.
        for cert in pem_certificates(&pem) {
            let cert = Certificate::from_pem(cert).map_err(|e| {
                StoreError::config(format!("bad certificate in {path}")).caused_by(e)
            })?;
            builder.add_root_certificate(cert);
        }
    }
    let connector = builder
        .build()
        .map_err(|e| StoreError::config("TLS setup failed").caused_by(e))?;
    Ok(MakeTlsConnector::new(connector))
}

/// Splits a PEM bundle into its certificates.
fn pem_certificates(pem: &[u8]) -> Vec<&[u8]> {
    const END: &[u8] = b"-----END CERTIFICATE-----";
    let mut certs = Vec::new();
    let mut rest = pem;
    while let Some(end) = rest.windows(END.len()).position(|w| w == END) {
        let (cert, tail) = rest.split_at(end + END.len());
        certs.push(cert);
        rest = tail;
    }
    certs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_params_are_taken_out_of_the_url() {
        let (url, mode, root) = split_tls_params(
            "postgres://u@h:5432/db?sslmode=verify-full&sslrootcert=/ca.pem&application_name=x",
        )
        .expect("valid url");
        assert_eq!(url, "postgres://u@h:5432/db?application_name=x");
        assert_eq!(mode, TlsMode::VerifyFull);
        assert_eq!(root.as_deref(), Some("/ca.pem"));
    }

    #[test]
    fn url_without_query_defaults_to_prefer() {
        let (url, mode, root) = split_tls_params("postgres://u@h/db").expect("valid url");
        assert_eq!(
            (url.as_str(), mode, root),
            ("postgres://u@h/db", TlsMode::Prefer, None)
        );
    }

    #[test]
    fn unknown_sslmode_is_a_config_error() {
        assert!(matches!(
            split_tls_params("postgres://h/db?sslmode=sometimes"),
            Err(StoreError::Config(..))
        ));
    }

    #[test]
    fn pem_bundle_is_split_into_certificates() {
        let one = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let bundle = format!("{one}{one}{one}");
        assert_eq!(pem_certificates(bundle.as_bytes()).len(), 3);
        assert!(pem_certificates(b"no certificates here").is_empty());
    }
}
