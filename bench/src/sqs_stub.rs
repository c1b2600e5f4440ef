//! An SQS stand-in that accepts every SendMessageBatch at once and keeps nothing: §3 runs the
//! ingest function against it as well as against moto, to tell the function's own capacity
//! (with PostgreSQL) from the emulator's. Speaks the JSON protocol the SDK uses; the SDK does
//! not check MD5 digests, so none are computed.

use axum::body::Bytes;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
struct Batch {
    #[serde(rename = "Entries")]
    entries: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "Id")]
    id: String,
}

async fn send_message_batch(body: Bytes) -> Response {
    let Ok(batch) = serde_json::from_slice::<Batch>(&body) else {
        return (StatusCode::BAD_REQUEST, "not a SendMessageBatch").into_response();
    };
    let successful: Vec<_> = batch
        .entries
        .into_iter()
        .map(|e| json!({"Id": e.id, "MessageId": uuid::Uuid::now_v7(), "MD5OfMessageBody": ""}))
        .collect();
    (
        [(header::CONTENT_TYPE, "application/x-amz-json-1.0")],
        json!({"Successful": successful, "Failed": []}).to_string(),
    )
        .into_response()
}

/// Serves on 127.0.0.1:`port` until killed.
pub async fn serve(port: u16) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, Router::new().route("/", post(send_message_batch))).await?;
    Ok(())
}
