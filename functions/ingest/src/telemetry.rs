//! One structured log line and one CloudWatch Embedded Metric Format (EMF) line per request,
//! written by one middleware for every route. Neither ever carries payloads or unit ids.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use eis_runtime::telemetry::Emf;
use serde_json::Value;
use uuid::Uuid;

use crate::error::ApiError;
use crate::storage::SaveReport;

/// Times every request and writes its log line and metrics from the [`RequestLog`] that the
/// handler attached to the response (a response without one is logged as `unmatched`).
pub async fn log_requests(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = request_id(&request);
    let mut response = next.run(request).await;
    let mut log = response
        .extensions_mut()
        .remove::<RequestLog>()
        .unwrap_or_else(|| RequestLog::new("unmatched"));
    log.request_id = request_id;
    log.status = response.status().as_u16();
    log.finish(started.elapsed());
    response
}

/// API Gateway's request id when running in Lambda; a fresh id locally.
fn request_id(request: &Request) -> String {
    use lambda_http::RequestExt;
    request
        .lambda_context_ref()
        .map(|ctx| ctx.request_id.clone())
        .unwrap_or_else(|| Uuid::now_v7().to_string())
}

/// What one request did; logged and turned into metrics once, when the response is ready.
#[derive(Debug, Default, Clone)]
pub struct RequestLog {
    pub request_id: String,
    pub route: &'static str,
    pub status: u16,
    pub accepted: usize,
    /// Accepted events whose event_id was already stored with the same content.
    pub duplicates: usize,
    pub rejected: BTreeMap<&'static str, usize>,
    pub flagged: BTreeMap<&'static str, usize>,
    pub error: Option<&'static str>,
    pub pg_latency: Option<Duration>,
    pub sqs_latency: Option<Duration>,
    pub publish_failures: usize,
}

impl RequestLog {
    pub fn new(route: &'static str) -> Self {
        RequestLog {
            route,
            ..Default::default()
        }
    }

    /// A request that failed with `err`; an invalid single event also counts as rejected.
    pub fn failed(&mut self, err: &ApiError) {
        self.error = Some(err.code());
        if let ApiError::Invalid(r) = err {
            self.reject(r.code.as_str());
        }
    }

    /// A batch refused as a whole: its events were never judged one by one.
    pub fn failed_whole(&mut self, err: &ApiError) {
        self.error = Some(err.code());
    }

    pub fn record(&mut self, report: &SaveReport) {
        self.pg_latency = Some(report.pg_latency);
        self.sqs_latency = Some(report.sqs_latency);
        self.publish_failures = report.publish_failures;
    }

    pub fn reject(&mut self, code: &'static str) {
        *self.rejected.entry(code).or_default() += 1;
    }

    pub fn flag(&mut self, flag: &'static str) {
        *self.flagged.entry(flag).or_default() += 1;
    }

    fn finish(&self, latency: Duration) {
        let rejected: usize = self.rejected.values().sum();
        tracing::info!(
            request_id = %self.request_id,
            route = self.route,
            status = self.status,
            accepted = self.accepted,
            duplicates = self.duplicates,
            rejected,
            codes = ?self.rejected,
            flags = ?self.flagged,
            error = self.error,
            latency_ms = ms(latency),
            pg_ms = self.pg_latency.map(ms),
            sqs_ms = self.sqs_latency.map(ms),
            publish_failures = self.publish_failures,
            "request"
        );
        println!("{}", self.emf(latency, rejected));
    }

    /// The EMF document: CloudWatch extracts the listed metrics from this log line.
    fn emf(&self, latency: Duration, rejected: usize) -> Value {
        let mut emf = Emf::default();
        emf.metric("Accepted", self.accepted, "Count");
        emf.metric("Duplicates", self.duplicates, "Count");
        emf.metric("Rejected", rejected, "Count");
        for (code, n) in &self.rejected {
            emf.metric(format!("Rejected_{code}"), *n, "Count");
        }
        for (flag, n) in &self.flagged {
            emf.metric(format!("Flagged_{flag}"), *n, "Count");
        }
        emf.metric("PublishFailures", self.publish_failures, "Count");
        emf.metric("Latency", ms(latency), "Milliseconds");
        if let Some(d) = self.pg_latency {
            emf.metric("PostgresLatency", ms(d), "Milliseconds");
        }
        if let Some(d) = self.sqs_latency {
            emf.metric("SqsLatency", ms(d), "Milliseconds");
        }
        emf.property("Function", "ingest");
        emf.property("Route", self.route);
        emf.document(&["Function", "Route"])
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_lists_every_metric_it_carries() {
        let mut log = RequestLog {
            route: "POST /events/batch",
            accepted: 98,
            pg_latency: Some(Duration::from_millis(3)),
            ..Default::default()
        };
        log.reject("missing_timestamp");
        log.reject("invalid_experiment_id");
        log.flag("old_timestamp");
        let doc = log.emf(Duration::from_millis(5), 2);
        let defs = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(!defs.is_empty());
        for def in defs {
            let name = def["Name"].as_str().unwrap_or_default();
            assert!(doc.get(name).is_some(), "metric {name} has no value");
        }
        assert_eq!(doc["Accepted"], 98);
        assert_eq!(doc["Rejected"], 2);
        assert_eq!(doc["Rejected_missing_timestamp"], 1);
        assert_eq!(doc["Flagged_old_timestamp"], 1);
        assert_eq!(doc["Route"], "POST /events/batch");
    }
}
