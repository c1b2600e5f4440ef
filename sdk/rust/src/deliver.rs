//! One batch's life: sent, judged, and sent again until every event has a final result or the
//! deadline passes. The same ids and bytes go every time; after a partial answer only the
//! events without a final result go again; a 413 sends the two halves instead. Results are
//! settled as they come, so that a close in the middle of a retry loses none.

use std::future::Future;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::answer::{judge, Answer, Verdict};
use crate::batch;
use crate::queue::Item;
use crate::report::Outcome;
use crate::retry::{backoff, retry_after};
use crate::transport::Failure;

/// What happens after an attempt.
enum Next {
    Done,
    Again {
        after: Option<String>,
        reason: String,
    },
}

/// Sends `items` with `post` (one attempt: a body in, an answer or a failure out) until each
/// has a final result or `deadline` passes (then `GivenUp`). No wait is longer than
/// `max_wait`. `settle` receives results as they are reached; `retried` is called once per
/// request sent again.
pub(crate) async fn deliver<P, F>(
    items: Vec<Item>,
    post: P,
    max_wait: Duration,
    deadline: Instant,
    mut settle: impl FnMut(Vec<(Item, Outcome)>),
    retried: impl Fn(),
) where
    P: Fn(Vec<u8>) -> F,
    F: Future<Output = Result<Answer, Failure>>,
{
    let mut groups = std::collections::VecDeque::from([items]);
    let mut first = true;
    while let Some(mut group) = groups.pop_front() {
        let mut attempt = 0u32;
        while !group.is_empty() {
            if !std::mem::take(&mut first) {
                retried();
            }
            let body = batch::body(group.iter().map(|i| &i.json[..]));
            let verdict = match post(body).await {
                Ok(answer) => judge(&answer, group.len()),
                Err(failure) => Verdict::Retry {
                    after: None,
                    reason: failure.to_string(),
                },
            };
            let next = match verdict {
                Verdict::Events(results) => {
                    let (mut settled, mut again) = (Vec::new(), Vec::new());
                    for (item, result) in std::mem::take(&mut group).into_iter().zip(results) {
                        match result {
                            Some(outcome) => settled.push((item, outcome)),
                            None => again.push(item),
                        }
                    }
                    settle(settled);
                    group = again;
                    Next::Again {
                        after: None,
                        reason: format!("no final answer for {} events", group.len()),
                    }
                }
                Verdict::Split { .. } => {
                    let (a, b) = batch::halves(std::mem::take(&mut group));
                    groups.push_front(b);
                    groups.push_front(a);
                    Next::Done
                }
                Verdict::Refused {
                    code,
                    message,
                    field,
                } => {
                    let outcome = Outcome::Rejected {
                        code,
                        message,
                        field,
                    };
                    settle(every(std::mem::take(&mut group), &outcome));
                    Next::Done
                }
                Verdict::GiveUp { reason } => {
                    settle(every(
                        std::mem::take(&mut group),
                        &Outcome::GivenUp { reason },
                    ));
                    Next::Done
                }
                Verdict::Retry { after, reason } => Next::Again { after, reason },
            };
            let Next::Again { after, reason } = next else {
                continue;
            };
            if group.is_empty() {
                continue;
            }
            let wait = after
                .and_then(|v| retry_after(&v, SystemTime::now(), max_wait))
                .unwrap_or_else(|| backoff(attempt, max_wait));
            if Instant::now() + wait >= deadline {
                let reason = format!("{reason}; no final answer within the retry budget");
                settle(every(
                    std::mem::take(&mut group),
                    &Outcome::GivenUp { reason },
                ));
                continue;
            }
            tokio::time::sleep(wait).await;
            attempt = attempt.saturating_add(1);
        }
    }
}

fn every(items: Vec<Item>, outcome: &Outcome) -> Vec<(Item, Outcome)> {
    items.into_iter().map(|i| (i, outcome.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use serde_json::{json, Value};
    use std::sync::Mutex;
    use uuid::Uuid;

    fn items(n: usize) -> Vec<Item> {
        (0..n)
            .map(|i| Item {
                seq: i as u64,
                id: Uuid::now_v7(),
                json: Bytes::from(json!({"i": i}).to_string()),
                segment: None,
                queued_at: std::time::Instant::now(),
            })
            .collect()
    }

    fn reply(status: u16, body: Value, retry_after: Option<&str>) -> Result<Answer, Failure> {
        Ok(Answer {
            status,
            retry_after: retry_after.map(str::to_string),
            body: Bytes::from(body.to_string()),
        })
    }

    /// Runs `deliver` against `script` (the requests' bodies in, answers out); gives the
    /// bodies sent, the results by `seq`, and the retry count.
    async fn run(
        n: usize,
        budget: Duration,
        script: impl Fn(usize, &Value) -> Result<Answer, Failure>,
    ) -> (Vec<Value>, Vec<(u64, Outcome)>, usize) {
        let sent = Mutex::new(Vec::new());
        let mut results = Vec::new();
        let retries = Mutex::new(0);
        let post = |body: Vec<u8>| {
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let mut sent = sent.lock().unwrap_or_else(|p| p.into_inner());
            let answer = script(sent.len(), &body);
            sent.push(body);
            std::future::ready(answer)
        };
        deliver(
            items(n),
            post,
            Duration::from_millis(20),
            Instant::now() + budget,
            |settled| results.extend(settled.into_iter().map(|(i, o)| (i.seq, o))),
            || *retries.lock().unwrap_or_else(|p| p.into_inner()) += 1,
        )
        .await;
        results.sort_by_key(|(seq, _)| *seq);
        let retries = *retries.lock().unwrap_or_else(|p| p.into_inner());
        (sent.into_inner().unwrap_or_default(), results, retries)
    }

    fn indexes(body: &Value) -> Vec<u64> {
        body["events"]
            .as_array()
            .map(|a| a.iter().filter_map(|e| e["i"].as_u64()).collect())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn after_a_207_only_events_without_a_final_answer_go_again() {
        let (sent, results, retries) = run(3, Duration::from_secs(5), |n, body| match n {
            0 => reply(
                207,
                json!({"errors": [{"index": 0, "error": "missing_plan_id", "message": "m"}],
                       "event_ids": [null, "x", null]}),
                None,
            ),
            _ => {
                let ids: Vec<&str> = indexes(body).iter().map(|_| "x").collect();
                reply(
                    200,
                    json!({"errors": [], "event_ids": ids, "duplicates": [0]}),
                    None,
                )
            }
        })
        .await;
        assert_eq!(
            sent.iter().map(indexes).collect::<Vec<_>>(),
            vec![vec![0, 1, 2], vec![2]]
        );
        assert_eq!(results.len(), 3);
        assert!(
            matches!(&results[0].1, Outcome::Rejected { code, .. } if code == "missing_plan_id")
        );
        assert_eq!(results[1].1, Outcome::Stored { warnings: vec![] });
        assert_eq!(results[2].1, Outcome::Duplicate { warnings: vec![] });
        assert_eq!(retries, 1);
    }

    #[tokio::test]
    async fn transient_failures_resend_the_same_bytes_until_answered() {
        let (sent, results, retries) = run(2, Duration::from_secs(5), |n, _| match n {
            0 => Err(Failure::Connection("refused".into())),
            1 => reply(503, json!({"error": "storage_unavailable"}), Some("0")),
            2 => Err(Failure::Timeout(Duration::from_secs(1))),
            _ => reply(200, json!({"event_ids": ["a", "b"]}), None),
        })
        .await;
        assert_eq!(sent.len(), 4);
        assert!(
            sent.windows(2).all(|w| w[0] == w[1]),
            "same events each time"
        );
        assert!(results.iter().all(|(_, o)| o.delivered()));
        assert_eq!(retries, 3);
    }

    #[tokio::test]
    async fn a_413_splits_until_the_parts_fit() {
        let (sent, results, _) = run(5, Duration::from_secs(5), |_, body| {
            let n = indexes(body).len();
            if n > 2 {
                reply(413, json!({"error": "payload_too_large"}), None)
            } else {
                reply(200, json!({"event_ids": vec!["x"; n]}), None)
            }
        })
        .await;
        let shapes: Vec<Vec<u64>> = sent.iter().map(indexes).collect();
        assert_eq!(
            shapes,
            vec![
                vec![0, 1, 2, 3, 4],
                vec![0, 1, 2],
                vec![0, 1],
                vec![2],
                vec![3, 4]
            ]
        );
        assert_eq!(results.iter().filter(|(_, o)| o.delivered()).count(), 5);
    }

    #[tokio::test]
    async fn the_budget_ends_in_given_up_and_final_refusals_are_not_resent() {
        let (sent, results, _) = run(2, Duration::from_millis(10), |_, _| {
            reply(503, json!({}), Some("1"))
        })
        .await;
        assert_eq!(sent.len(), 1, "a wait past the budget is not taken");
        assert!(results
            .iter()
            .all(|(_, o)| matches!(o, Outcome::GivenUp { reason } if reason.contains("503"))));

        let (sent, results, _) = run(2, Duration::from_secs(5), |_, _| {
            reply(415, json!({"error": "unsupported_media_type"}), None)
        })
        .await;
        assert_eq!(sent.len(), 1);
        assert!(results
            .iter()
            .all(|(_, o)| matches!(o, Outcome::Rejected { .. })));
    }
}
