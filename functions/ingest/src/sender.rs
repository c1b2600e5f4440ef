//! What a request says about who sent it and when, beside its events: the `EIS-Sent-At`
//! header (the client's clock when it sent the request) and, behind a JWT authorizer, the
//! caller's id from its token. Both are read once per request, before any event is judged.

use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use eis_contract::{parse_timestamp, UnitBinding};
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;

use crate::error::ApiError;

/// The request header that carries the send time (RFC 3339 with an offset).
pub const SENT_AT_HEADER: &str = "eis-sent-at";

/// Events of one `unit_type` may name only the caller, whose id is a claim of its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerBinding {
    pub unit: UnitBinding,
    /// The JWT claim that holds the caller's unit id (`sub` by default).
    pub claim: String,
}

/// The sender of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sender {
    /// The client's clock when it sent the request; None when it did not say.
    pub sent_at: Option<DateTime<Utc>>,
    /// The caller's id under the binding's claim; None without a binding, a JWT or the claim.
    pub unit_id: Option<String>,
}

impl Sender {
    /// Reads the header and, when `binding` is set, the claim. A header that is not an RFC
    /// 3339 date-time refuses the request: nothing of it is judged.
    pub fn of(parts: &Parts, binding: Option<&CallerBinding>) -> Result<Sender, ApiError> {
        let sent_at = match parts.headers.get(SENT_AT_HEADER) {
            None => None,
            Some(value) => Some(
                value
                    .to_str()
                    .ok()
                    .and_then(parse_timestamp)
                    .ok_or(ApiError::InvalidSentAt)?,
            ),
        };
        let unit_id = binding.and_then(|b| claim(parts, &b.claim));
        Ok(Sender { sent_at, unit_id })
    }
}

/// The claim of the JWT that API Gateway's authorizer verified (lambda_http keeps the request
/// context in the extensions; a local server has none).
fn claim(parts: &Parts, name: &str) -> Option<String> {
    let context = parts.extensions.request_context_ref()?;
    let RequestContext::ApiGatewayV2(context) = context else {
        return None;
    };
    let jwt = context.authorizer.as_ref()?.jwt.as_ref()?;
    jwt.claims.get(name).cloned()
}

#[cfg(test)]
mod tests {
    use axum::http::Request;

    use super::*;

    fn parts(sent_at: Option<&str>) -> Parts {
        let mut request = Request::builder().uri("/events");
        if let Some(value) = sent_at {
            request = request.header(SENT_AT_HEADER, value);
        }
        request.body(()).expect("a request").into_parts().0
    }

    #[test]
    fn the_send_time_is_an_rfc3339_header_or_nothing() {
        let at = |text: &str| parse_timestamp(text).expect("valid");
        type Expected = Result<Option<DateTime<Utc>>, &'static str>;
        let cases: [(Option<&str>, Expected); 5] = [
            (None, Ok(None)),
            (
                Some("2026-12-03T21:00:00.123Z"),
                Ok(Some(at("2026-12-03T21:00:00.123Z"))),
            ),
            (
                Some("2026-12-03T22:00:00+01:00"),
                Ok(Some(at("2026-12-03T21:00:00Z"))),
            ),
            (Some("2026-12-03 21:00:00"), Err("invalid_sent_at")),
            (Some("yesterday"), Err("invalid_sent_at")),
        ];
        for (header, expected) in cases {
            let got = Sender::of(&parts(header), None)
                .map(|s| s.sent_at)
                .map_err(|e| e.code());
            assert_eq!(got, expected, "{header:?}");
        }
    }

    #[test]
    fn a_local_request_has_no_caller() {
        let binding = CallerBinding {
            unit: UnitBinding {
                unit_type: "user".into(),
            },
            claim: "sub".into(),
        };
        let sender = Sender::of(&parts(None), Some(&binding)).expect("no header");
        assert_eq!(sender.unit_id, None);
    }
}
