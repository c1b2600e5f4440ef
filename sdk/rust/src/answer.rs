//! The server's answer to one batch request, judged: a final result per event, or what to do
//! with the whole request (split it, retry it, or give its events a final refusal). The one
//! place that knows the API's statuses and codes (docs/api.md).

use bytes::Bytes;
use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::report::Outcome;

/// One HTTP answer, as the transport read it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: Bytes,
}

/// What an answer means for the request's events.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    /// By index: the event's final result, or `None` when the answer gave it none (it is
    /// sent again; only these are).
    Events(Vec<Option<Outcome>>),
    /// 413 for two events or more: the request is too large; its halves are sent instead.
    Split { code: String, message: String },
    /// The whole request refused for good (a 4xx naming the body, 415): every event gets
    /// this as its result.
    Refused {
        code: String,
        message: String,
        field: Option<String>,
    },
    /// Transient: send the same events again after `Retry-After` or a backoff.
    Retry {
        after: Option<String>,
        reason: String,
    },
    /// No retry can change this answer (e.g. 404: a wrong URL); the events are not refused
    /// by the contract either, so they end as `GivenUp`.
    GiveUp { reason: String },
}

/// The batch answer (200, 207, 400) and the plain error object (4xx, 5xx) in one shape: every
/// field is optional so that either parses.
#[derive(Debug, Default, Deserialize)]
struct Body {
    #[serde(default)]
    errors: Vec<EventError>,
    /// Only null or not matters (the ids are the ones sent): nothing is allocated per id.
    #[serde(default)]
    event_ids: Vec<Option<IgnoredAny>>,
    #[serde(default)]
    duplicates: Vec<usize>,
    #[serde(default)]
    warnings: Vec<EventWarnings>,
    error: Option<String>,
    message: Option<String>,
    field: Option<String>,
}

#[derive(Debug, Deserialize)]
struct EventError {
    index: usize,
    error: String,
    #[serde(default)]
    message: String,
    field: Option<String>,
}

#[derive(Debug, Deserialize)]
struct EventWarnings {
    index: usize,
    #[serde(default)]
    warnings: Vec<String>,
}

/// The per-event code of an id stored with other content: final, reported as `Conflict`.
const CONFLICT: &str = "event_id_conflict";
/// A whole-batch 400 that says the body was cut on the way: the request can go again.
const UNREADABLE_BODY: &str = "unreadable_body";

/// Judges `answer` to a request of `events` events.
pub(crate) fn judge(answer: &Answer, events: usize) -> Verdict {
    let body: Option<Body> = serde_json::from_slice(&answer.body).ok();
    let status = answer.status;
    let reason = |body: &Option<Body>| match body {
        Some(Body {
            error: Some(code),
            message,
            ..
        }) => format!(
            "HTTP {status} {code}: {}",
            message.as_deref().unwrap_or_default()
        ),
        _ => format!("HTTP {status}"),
    };
    match status {
        200 | 207 | 400 => match body {
            None if status == 400 => Verdict::GiveUp {
                reason: "HTTP 400 without a batch answer".into(),
            },
            None => Verdict::Retry {
                after: None,
                reason: format!("HTTP {status} with an unreadable answer"),
            },
            Some(Body {
                error: Some(code), ..
            }) if code == UNREADABLE_BODY => Verdict::Retry {
                after: answer.retry_after.clone(),
                reason: format!("HTTP {status} {code}"),
            },
            Some(Body {
                error: Some(code),
                message,
                field,
                ..
            }) if status == 400 => Verdict::Refused {
                code,
                message: message.unwrap_or_default(),
                field,
            },
            Some(body) => Verdict::Events(per_event(body, events)),
        },
        413 => {
            let (code, message) = match body {
                Some(Body {
                    error: Some(code),
                    message,
                    ..
                }) => (code, message.unwrap_or_default()),
                _ => ("payload_too_large".into(), String::new()),
            };
            // One event has no halves: too large on its own is its final answer.
            match events {
                1 => Verdict::Refused {
                    code,
                    message,
                    field: None,
                },
                _ => Verdict::Split { code, message },
            }
        }
        415 => {
            let body = body.unwrap_or_default();
            Verdict::Refused {
                code: body
                    .error
                    .unwrap_or_else(|| "unsupported_media_type".into()),
                message: body.message.unwrap_or_default(),
                field: body.field,
            }
        }
        // 401/403: credentials can be refreshed (an expired token, a rotated key, a clock
        // skew), so they are retried within the budget rather than dropped at once.
        401 | 403 | 408 | 429 | 500..=599 => Verdict::Retry {
            after: answer.retry_after.clone(),
            reason: reason(&body),
        },
        _ => Verdict::GiveUp {
            reason: reason(&body),
        },
    }
}

fn per_event(body: Body, events: usize) -> Vec<Option<Outcome>> {
    let mut warnings: Vec<Vec<String>> = vec![Vec::new(); events];
    for w in body.warnings {
        if let Some(slot) = warnings.get_mut(w.index) {
            *slot = w.warnings;
        }
    }
    let mut duplicate = vec![false; events];
    for i in body.duplicates {
        if let Some(slot) = duplicate.get_mut(i) {
            *slot = true;
        }
    }
    let mut outcomes: Vec<Option<Outcome>> = (0..events)
        .map(|i| match body.event_ids.get(i) {
            Some(Some(_)) => {
                let warnings = std::mem::take(&mut warnings[i]);
                Some(if duplicate[i] {
                    Outcome::Duplicate { warnings }
                } else {
                    Outcome::Stored { warnings }
                })
            }
            _ => None,
        })
        .collect();
    // Every per-event code is final (docs/api.md): the contract's, `storage_rejected`, and
    // `event_id_conflict`, which is reported apart.
    for e in body.errors {
        if let Some(slot) = outcomes.get_mut(e.index) {
            *slot = Some(if e.error == CONFLICT {
                Outcome::Conflict { message: e.message }
            } else {
                Outcome::Rejected {
                    code: e.error,
                    message: e.message,
                    field: e.field,
                }
            });
        }
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(status: u16, body: serde_json::Value) -> Answer {
        Answer {
            status,
            retry_after: None,
            body: Bytes::from(body.to_string()),
        }
    }

    const ID: &str = "0193f1a2-7c3e-7a10-8b2c-3d4e5f6a7b01";

    #[test]
    fn a_207_gives_each_event_its_result() {
        let a = answer(
            207,
            json!({"accepted": 3, "rejected": 2,
                "errors": [
                    {"index": 1, "error": "invalid_variant_id", "message": "bad", "field": "/experiments/0/variant_id"},
                    {"index": 3, "error": "event_id_conflict", "message": "other content"}],
                "event_ids": [ID, null, ID, null, ID],
                "duplicates": [2],
                "warnings": [{"index": 4, "warnings": ["old_timestamp"]}]}),
        );
        let Verdict::Events(results) = judge(&a, 5) else {
            panic!("per event")
        };
        assert_eq!(
            results,
            vec![
                Some(Outcome::Stored { warnings: vec![] }),
                Some(Outcome::Rejected {
                    code: "invalid_variant_id".into(),
                    message: "bad".into(),
                    field: Some("/experiments/0/variant_id".into())
                }),
                Some(Outcome::Duplicate { warnings: vec![] }),
                Some(Outcome::Conflict {
                    message: "other content".into()
                }),
                Some(Outcome::Stored {
                    warnings: vec!["old_timestamp".into()]
                }),
            ]
        );
    }

    #[test]
    fn events_without_a_final_answer_are_left_to_resend() {
        let a = answer(207, json!({"errors": [], "event_ids": [ID, null]}));
        let Verdict::Events(results) = judge(&a, 3) else {
            panic!("per event")
        };
        assert_eq!(
            results,
            vec![Some(Outcome::Stored { warnings: vec![] }), None, None]
        );
    }

    #[test]
    fn a_400_is_per_event_or_a_whole_refusal() {
        let all_bad = answer(
            400,
            json!({"accepted": 0, "rejected": 1, "event_ids": [null],
                   "errors": [{"index": 0, "error": "missing_timestamp", "message": "m"}]}),
        );
        assert!(matches!(judge(&all_bad, 1), Verdict::Events(r) if r[0].is_some()));
        let whole = answer(
            400,
            json!({"accepted": 0, "rejected": 0, "errors": [], "event_ids": [],
                   "error": "invalid_sent_at", "message": "m"}),
        );
        assert!(
            matches!(judge(&whole, 2), Verdict::Refused { code, .. } if code == "invalid_sent_at")
        );
        let cut = answer(400, json!({"error": "unreadable_body", "message": "m"}));
        assert!(matches!(judge(&cut, 2), Verdict::Retry { .. }));
    }

    #[test]
    fn statuses_that_are_not_batch_answers() {
        let too_large = answer(413, json!({"error": "batch_too_large", "message": "m"}));
        assert!(
            matches!(judge(&too_large, 2), Verdict::Split { code, .. } if code == "batch_too_large")
        );
        let mut busy = answer(
            503,
            json!({"error": "storage_unavailable", "message": "down"}),
        );
        busy.retry_after = Some("5".into());
        assert_eq!(
            judge(&busy, 1),
            Verdict::Retry {
                after: Some("5".into()),
                reason: "HTTP 503 storage_unavailable: down".into()
            }
        );
        for status in [401, 403, 408, 429, 500, 502, 504] {
            assert!(matches!(
                judge(&answer(status, json!({})), 1),
                Verdict::Retry { .. }
            ));
        }
        assert!(matches!(
            judge(&answer(415, json!({})), 1),
            Verdict::Refused { .. }
        ));
        assert!(matches!(
            judge(&answer(404, json!({})), 1),
            Verdict::GiveUp { .. }
        ));
        let garbled = Answer {
            status: 200,
            retry_after: None,
            body: Bytes::from_static(b"<html>"),
        };
        assert!(
            matches!(judge(&garbled, 1), Verdict::Retry { .. }),
            "a 200 we cannot read may have stored them: resend the same ids"
        );
    }
}
