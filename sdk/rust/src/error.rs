//! The errors a caller sees at once: a capture refused (the event stays with the caller) and a
//! client that cannot be made. What happens to an event after capture is an
//! [`Outcome`](crate::Outcome), never an error of a call.

use uuid::Uuid;

/// Why `capture` refused an event. Nothing was queued; the event stays with the caller.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CaptureError {
    /// A required field is absent, `null` or `""`: the server would answer `missing_<field>`.
    #[error("{field} is required")]
    MissingField { field: &'static str },
    /// The event can never be accepted as it is (not an object, a bad `event_id`, a metric
    /// that is not a finite number). `code` is the server's code for the same fault, `field`
    /// a JSON pointer (`""`: the whole event).
    #[error("{code}: {message}")]
    Invalid {
        code: &'static str,
        field: String,
        message: String,
    },
    /// The event's JSON is larger than the server takes for one event (64 KiB).
    #[error("event {event_id} is {bytes} bytes of JSON, over the limit of {limit}")]
    TooLarge {
        event_id: Uuid,
        bytes: usize,
        limit: usize,
    },
    /// The queue holds `max_queue_events` events or `max_queue_bytes` bytes (waiting and in
    /// flight): the event was refused, counted in `Stats::refused` and reported to
    /// `on_refusal`.
    #[error("event {event_id} refused: the queue is full ({bound})")]
    QueueFull { event_id: Uuid, bound: QueueBound },
    /// `capture` after `close`.
    #[error("the client is closed")]
    Closed,
    /// The spool could not record the event, so it was not queued either (a capture that
    /// returns Ok with a spool is on disk).
    #[error("event {event_id} not recorded in the spool: {message}")]
    Spool { event_id: Uuid, message: String },
}

/// Which bound of the queue was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueBound {
    Events(usize),
    Bytes(usize),
}

impl std::fmt::Display for QueueBound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueueBound::Events(n) => write!(f, "max_queue_events = {n}"),
            QueueBound::Bytes(n) => write!(f, "max_queue_bytes = {n}"),
        }
    }
}

impl CaptureError {
    /// A stable snake_case code: the server's code where the server has one for the fault.
    pub fn code(&self) -> &'static str {
        match self {
            CaptureError::MissingField { field } => match *field {
                "event_type" => "missing_event_type",
                "unit_type" => "missing_unit_type",
                _ => "missing_unit_id",
            },
            CaptureError::Invalid { code, .. } => code,
            CaptureError::TooLarge { .. } => "event_too_large",
            CaptureError::QueueFull { .. } => "queue_full",
            CaptureError::Closed => "client_closed",
            CaptureError::Spool { .. } => "spool_failed",
        }
    }

    /// The JSON pointer of the field at fault, when one is.
    pub fn field(&self) -> Option<&str> {
        match self {
            CaptureError::MissingField { field } => Some(match *field {
                "event_type" => "/event_type",
                "unit_type" => "/unit_type",
                _ => "/unit_id",
            }),
            CaptureError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }

    /// The event's id, when it had one before it was refused.
    pub fn event_id(&self) -> Option<Uuid> {
        match self {
            CaptureError::TooLarge { event_id, .. }
            | CaptureError::QueueFull { event_id, .. }
            | CaptureError::Spool { event_id, .. } => Some(*event_id),
            _ => None,
        }
    }
}

/// Why a client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("`url` {0:?} is not an http(s) URL")]
    Url(String),
    #[error("{0}")]
    Invalid(String),
    #[error("Client::new must be called inside a tokio runtime (it spawns the sender task)")]
    NoRuntime,
    #[error("no TLS root certificates for an https URL: {0}")]
    Tls(String),
    #[error("the spool {path}: {message}")]
    Spool { path: String, message: String },
}
