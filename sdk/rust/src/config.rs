//! The client's settings: one value built with chained setters, each default documented here
//! and checked once by [`Config::validate`] when the client is made.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::Auth;
use crate::error::{CaptureError, ConfigError};
use crate::event::MAX_EVENT_BYTES;
use crate::report::EventResult;

/// The server's bounds on one request (docs/api.md, "Limits").
pub const MAX_BATCH_EVENTS: usize = 1_000;
pub const MAX_BATCH_BYTES: usize = 5 * 1024 * 1024;

pub(crate) type ResultCallback = Arc<dyn Fn(&EventResult) + Send + Sync>;
pub(crate) type RefusalCallback = Arc<dyn Fn(&CaptureError) + Send + Sync>;

/// How a [`Client`](crate::Client) behaves. `Config::new(url)` gives the defaults below;
/// each setter replaces one.
///
/// | setting | default | meaning |
/// |---|---|---|
/// | `url` | (required) | the API's base URL, e.g. `http://127.0.0.1:3000` or the API Gateway stage URL |
/// | `auth` | `Auth::None` | none, `Auth::iam(..)` (SigV4) or `Auth::jwt(..)` |
/// | `flush_at` | 100 | a request is sent as soon as this many events wait |
/// | `flush_interval` | 1 s | ... or when the oldest waiting event has waited this long |
/// | `max_batch_events` | 1 000 | events per request (at most the server's 1 000) |
/// | `max_batch_bytes` | 5 MiB | JSON bytes per request before compression (at most the server's 5 MiB) |
/// | `max_event_bytes` | 64 KiB | one event's JSON; larger ones are refused at capture |
/// | `max_queue_events` | 100 000 | events held (waiting and in flight); capture refuses beyond |
/// | `max_queue_bytes` | 64 MiB | their JSON bytes; capture refuses beyond |
/// | `max_in_flight` | 4 | requests at once |
/// | `gzip_above` | 4 KiB | bodies larger than this are sent gzip-compressed (`None`: never) |
/// | `request_timeout` | 10 s | one attempt, answer included |
/// | `max_retry_after` | 30 s | the longest wait between attempts: a larger `Retry-After` is clamped to it, and exponential backoff never waits longer |
/// | `retry_budget` | 5 min | from a request's first attempt; past it, its events are `GivenUp` |
/// | `spool` | `None` | a directory for the durable spool (see the crate docs) |
/// | `spool_sync_interval` | 200 ms | how often the spool is fsynced |
/// | `on_result` | none | called with every final result (from the sender task: keep it short) |
/// | `on_refusal` | none | called with every refused capture |
#[derive(Clone)]
pub struct Config {
    pub(crate) url: String,
    pub(crate) auth: Auth,
    pub(crate) flush_at: usize,
    pub(crate) flush_interval: Duration,
    pub(crate) max_batch_events: usize,
    pub(crate) max_batch_bytes: usize,
    pub(crate) max_event_bytes: usize,
    pub(crate) max_queue_events: usize,
    pub(crate) max_queue_bytes: usize,
    pub(crate) max_in_flight: usize,
    pub(crate) gzip_above: Option<usize>,
    pub(crate) request_timeout: Duration,
    pub(crate) max_retry_after: Duration,
    pub(crate) retry_budget: Duration,
    pub(crate) spool: Option<PathBuf>,
    pub(crate) spool_sync_interval: Duration,
    pub(crate) on_result: Option<ResultCallback>,
    pub(crate) on_refusal: Option<RefusalCallback>,
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty),* $(,)?) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, value: $ty) -> Config {
                self.$name = value;
                self
            }
        )*
    };
}

impl Config {
    pub fn new(url: impl Into<String>) -> Config {
        Config {
            url: url.into().trim_end_matches('/').to_string(),
            auth: Auth::None,
            flush_at: 100,
            flush_interval: Duration::from_secs(1),
            max_batch_events: MAX_BATCH_EVENTS,
            max_batch_bytes: MAX_BATCH_BYTES,
            max_event_bytes: MAX_EVENT_BYTES,
            max_queue_events: 100_000,
            max_queue_bytes: 64 * 1024 * 1024,
            max_in_flight: 4,
            gzip_above: Some(4096),
            request_timeout: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(30),
            retry_budget: Duration::from_secs(300),
            spool: None,
            spool_sync_interval: Duration::from_millis(200),
            on_result: None,
            on_refusal: None,
        }
    }

    setters! {
        auth: Auth,
        flush_at: usize,
        flush_interval: Duration,
        max_batch_events: usize,
        max_batch_bytes: usize,
        max_event_bytes: usize,
        max_queue_events: usize,
        max_queue_bytes: usize,
        max_in_flight: usize,
        gzip_above: Option<usize>,
        request_timeout: Duration,
        max_retry_after: Duration,
        retry_budget: Duration,
        spool_sync_interval: Duration,
    }

    /// Keeps captured events in `dir` until they have a final result (see the crate docs).
    pub fn spool(mut self, dir: impl Into<PathBuf>) -> Config {
        self.spool = Some(dir.into());
        self
    }

    pub fn on_result(mut self, callback: impl Fn(&EventResult) + Send + Sync + 'static) -> Config {
        self.on_result = Some(Arc::new(callback));
        self
    }

    pub fn on_refusal(
        mut self,
        callback: impl Fn(&CaptureError) + Send + Sync + 'static,
    ) -> Config {
        self.on_refusal = Some(Arc::new(callback));
        self
    }

    /// The settings that cannot work, named.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let url: http::Uri = self
            .url
            .parse()
            .map_err(|_| ConfigError::Url(self.url.clone()))?;
        if !matches!(url.scheme_str(), Some("http" | "https")) || url.host().is_none() {
            return Err(ConfigError::Url(self.url.clone()));
        }
        let positive = [
            ("flush_at", self.flush_at),
            ("max_batch_events", self.max_batch_events),
            ("max_queue_events", self.max_queue_events),
            ("max_in_flight", self.max_in_flight),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError::Invalid(format!("{name} must be at least 1")));
        }
        if self.max_batch_events > MAX_BATCH_EVENTS || self.max_batch_bytes > MAX_BATCH_BYTES {
            return Err(ConfigError::Invalid(format!(
                "a request holds at most {MAX_BATCH_EVENTS} events and {MAX_BATCH_BYTES} bytes (the server's limits)"
            )));
        }
        // A batch body is `{"events":[...]}` around the events: one event must fit in it.
        if self.max_event_bytes + 16 > self.max_batch_bytes
            || self.max_event_bytes > self.max_queue_bytes
        {
            return Err(ConfigError::Invalid(
                "max_event_bytes must fit in max_batch_bytes and max_queue_bytes".into(),
            ));
        }
        if self.request_timeout.is_zero() || self.flush_interval.is_zero() {
            return Err(ConfigError::Invalid(
                "request_timeout and flush_interval must be positive".into(),
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("url", &self.url)
            .field("auth", &self.auth)
            .field("flush_at", &self.flush_at)
            .field("flush_interval", &self.flush_interval)
            .field("max_batch_events", &self.max_batch_events)
            .field("max_queue_events", &self.max_queue_events)
            .field("max_queue_bytes", &self.max_queue_bytes)
            .field("max_in_flight", &self.max_in_flight)
            .field("gzip_above", &self.gzip_above)
            .field("request_timeout", &self.request_timeout)
            .field("max_retry_after", &self.max_retry_after)
            .field("retry_budget", &self.retry_budget)
            .field("spool", &self.spool)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_bad_settings_are_named() {
        assert!(Config::new("http://127.0.0.1:3000/").validate().is_ok());
        assert_eq!(Config::new("http://h/").url, "http://h");
        for bad in ["", "ftp://h", "127.0.0.1:3000", "http://"] {
            assert!(Config::new(bad).validate().is_err(), "{bad}");
        }
        let err = Config::new("http://h").flush_at(0).validate();
        assert!(matches!(err, Err(ConfigError::Invalid(m)) if m.contains("flush_at")));
        assert!(Config::new("http://h")
            .max_batch_events(1001)
            .validate()
            .is_err());
        assert!(Config::new("http://h")
            .max_queue_bytes(1000)
            .validate()
            .is_err());
    }
}
