//! `eis-bench fill-queue QUEUE_URL N`: queues N valid events on an archive queue, packed as
//! the ingest function packs them: the load of bench/memory-drain.sh. Events look like the
//! contract's example (about 700 bytes each) and spread over the last two hours, so a drain
//! writes to three hour partitions. Endpoint and credentials come from the usual AWS_*
//! variables.

use std::time::Duration;

use anyhow::bail;
use chrono::Utc;
use eis_handoff::{SqsPublisher, SQS_MAX_MESSAGE_BYTES};
use eis_runtime::aws;
use serde_json::{json, Value};

/// Events validated and published per round: bounds this program's own memory.
const ROUND: usize = 5_000;
const TWO_HOURS_MS: f64 = 7_200_000.0;

/// Publishes `n` events to `queue_url`; reports the events and messages.
pub async fn fill(queue_url: &str, n: usize) -> anyhow::Result<Value> {
    let sdk = aws::sdk_config(3, Duration::from_secs(10)).await;
    let publisher = SqsPublisher::new(
        aws::sqs_client(&sdk),
        queue_url.to_string(),
        SQS_MAX_MESSAGE_BYTES,
    );
    let limits = eis_contract::Limits::default();
    let now = Utc::now();
    let (mut published, mut messages) = (0, 0);
    while published < n {
        let round = ROUND.min(n - published);
        let mut events = Vec::with_capacity(round);
        for i in published..published + round {
            // Spread evenly over the last two hours.
            let offset_ms = (i as f64 / n as f64 * TWO_HOURS_MS) as i64;
            let body = json!({
                "event_type": "plan_generated",
                "unit_type": "user",
                "unit_id": format!("user-{}", i % 50_000),
                "experiments": [{
                    "experiment_id": "0b7e6a43-2d1e-4f55-9d7c-6f6f6b1f0a01",
                    "variant_id": if i % 2 == 0 { "5c0c8f5e-8b4a-4a43-b7c5-0f2f0c0b9a02" } else { "6d1d9a6f-9c5b-4b54-a8d6-1a3a1d1cab04" },
                }],
                "context": {"policy_version_id": "7d9f8e1c-3b2a-4c5d-8e6f-9a0b1c2d3e04", "app_version": "4.12.1", "platform": "ios"},
                "metrics": {"latency_ms": (i % 5000) as f64 + 0.5, "token_count": i % 3000},
                "payload": {"plan_id": format!("pln_{i:08}"), "days": 7, "meals": ["m1", "m2", "m3"]},
                "timestamp": (now - chrono::Duration::milliseconds(offset_ms)).to_rfc3339(),
            });
            let event = eis_contract::validate_event(body.to_string().as_bytes(), now, &limits)
                .map_err(|r| anyhow::anyhow!("event {i}: {}", r.code.as_str()))?;
            events.push(event);
        }
        let out = publisher.publish(&events).await;
        if !out.errors.is_empty() || out.published.len() != events.len() {
            bail!("publish failed: {:?}", out.errors.first());
        }
        published += round;
        messages += out.messages;
    }
    Ok(json!({"events": published, "messages": messages}))
}
