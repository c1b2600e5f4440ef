//! Numbers in `context` / `payload` keep their exact value through PostgreSQL (jsonb
//! numeric), the sweep's read-back and the SQS hand-off: every copy holds the same bytes.

use std::time::Duration;

use eis_contract::{Event, JsonObject, Limits};
use eis_handoff::{message, SqsPublisher};
use eis_store::{PendingHandoffs, PgEventStore};
use eis_tests::*;

/// (number as sent, its canonical text: PostgreSQL numeric's output)
const CASES: &[(&str, &str)] = &[
    (
        "123456789012345678901234567890",
        "123456789012345678901234567890",
    ),
    ("1.50", "1.50"),
    ("-0.0", "0.0"),
    ("1e-7", "0.0000001"),
    ("100e-2", "1.00"),
    ("-12.5E+1", "-125"),
    ("0.10000000000000001", "0.10000000000000001"),
];

/// `1e400` is kept too; its canonical text is 401 digits.
fn cases() -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = CASES
        .iter()
        .map(|(sent, canonical)| ((*sent).to_owned(), (*canonical).to_owned()))
        .collect();
    all.push(("1e400".into(), format!("1{}", "0".repeat(400))));
    all
}

/// One valid event per case, the number in `payload.order_id`, nested in `payload.list`
/// and in `context.amount`.
fn events() -> Vec<Event> {
    let now = chrono::Utc::now();
    cases()
        .iter()
        .enumerate()
        .map(|(i, (sent, _))| {
            let body = format!(
                r#"{{"event_type": "order_placed", "unit_type": "user", "unit_id": "user-{i}",
                    "timestamp": "{}",
                    "context": {{"amount": {sent}, "platform": "ios"}},
                    "payload": {{"order_id": {sent}, "list": [{sent}, {{"n": {sent}}}]}}}}"#,
                now.to_rfc3339()
            );
            eis_contract::validate_event(body.as_bytes(), now, &Limits::default())
                .unwrap_or_else(|r| panic!("{sent}: {} {}", r.code, r.message))
        })
        .collect()
}

fn expected_payload(canonical: &str) -> String {
    format!(r#"{{"list":[{canonical},{{"n":{canonical}}}],"order_id":{canonical}}}"#)
}

#[tokio::test]
async fn numbers_are_exact_in_postgres_and_in_the_sweep() {
    let db = TestDb::create().await;
    let store = PgEventStore::new(db.db());
    let sent = events();
    store.insert(&sent).await.expect("insert");
    let client = db.client().await;
    for ((given, canonical), e) in cases().iter().zip(&sent) {
        assert_eq!(e.payload.as_str(), expected_payload(canonical), "{given}");
        let row = client
            .query_one(
                "SELECT payload->>'order_id', (payload->'order_id')::numeric::text,
                        context->>'amount', payload::text, context::text
                 FROM exp.events WHERE event_id = $1",
                &[&e.event_id],
            )
            .await
            .expect("row");
        // (a) PostgreSQL holds the number exactly, as numeric.
        assert_eq!(row.get::<_, String>(0), *canonical, "{given}");
        assert_eq!(row.get::<_, String>(1), *canonical, "{given}");
        assert_eq!(row.get::<_, String>(2), *canonical, "{given}");
        // (c) What PostgreSQL prints back canonicalises to the event's own text.
        let printed = JsonObject::parse(row.get(3)).expect("payload::text");
        assert_eq!(printed.as_str(), e.payload.as_str(), "{given}");
        let printed = JsonObject::parse(row.get(4)).expect("context::text");
        assert_eq!(printed.as_str(), e.context.as_str(), "{given}");
    }
    // (b) The sweep reads back the very events written: its copy equals the SQS copy.
    let mut back = PendingHandoffs::new(db.db())
        .sweep(
            chrono::Utc::now() + chrono::Duration::hours(1),
            Duration::ZERO,
            100,
            Duration::from_secs(60),
        )
        .await
        .expect("read back")
        .events;
    back.sort_by_key(|e| e.unit_id.clone());
    let mut written = sent.clone();
    written.sort_by_key(|e| e.unit_id.clone());
    assert_eq!(back, written);
    for (b, w) in back.iter().zip(&written) {
        assert_eq!(
            message::pack(std::slice::from_ref(b), message::SQS_MAX_MESSAGE_BYTES).expect("pack")
                [0]
            .body,
            message::pack(std::slice::from_ref(w), message::SQS_MAX_MESSAGE_BYTES).expect("pack")
                [0]
            .body,
        );
    }
}

#[tokio::test]
async fn the_sqs_body_carries_the_exact_text() {
    let sent = events();
    let packed = message::pack(&sent, message::SQS_MAX_MESSAGE_BYTES).expect("pack");
    let body: String = packed.iter().map(|m| m.body.as_str()).collect();
    for ((given, canonical), e) in cases().iter().zip(&sent) {
        let payload = format!(r#""payload":{}"#, expected_payload(canonical));
        assert!(
            body.contains(&payload),
            "{given}: {payload} not in the body"
        );
        assert!(
            body.contains(&format!(r#""amount":{canonical}"#)),
            "{given}"
        );
        assert_eq!(e.payload.as_str(), expected_payload(canonical));
    }

    // Through moto: what the archiver receives is byte for byte what was sent.
    let queue = TestQueue::create(5, 30).await;
    let publisher = SqsPublisher::new(
        queue.client.clone(),
        queue.url.clone(),
        message::SQS_MAX_MESSAGE_BYTES,
    );
    let outcome = publisher.publish(&sent).await;
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    let mut received = Vec::new();
    let mut bodies = String::new();
    for m in queue.receive_all(&queue.url).await {
        let body = m.body().unwrap_or_default();
        bodies.push_str(body);
        received.extend(message::decode_events(body).expect("decodes"));
    }
    assert!(bodies.contains(&expected_payload(CASES[0].1)));
    received.sort_by_key(|e| e.unit_id.clone());
    let mut sent = sent;
    sent.sort_by_key(|e| e.unit_id.clone());
    assert_eq!(received, sent);
}
