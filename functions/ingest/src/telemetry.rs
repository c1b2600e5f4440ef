//! One structured log line and one CloudWatch Embedded Metric Format (EMF) line per request.
//! Neither ever carries payloads or unit ids.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

/// JSON logs on stdout. Lambda adds its own timestamps, so none are printed there.
pub fn init_logging(in_lambda: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_target(false);
    if in_lambda {
        builder.without_time().init();
    } else {
        builder.init();
    }
}

/// What one request did; logged and turned into metrics once, when the response is ready.
#[derive(Debug, Default)]
pub struct RequestLog {
    pub request_id: String,
    pub route: &'static str,
    pub status: u16,
    pub accepted: usize,
    pub rejected: BTreeMap<&'static str, usize>,
    pub flagged: BTreeMap<&'static str, usize>,
    pub error: Option<&'static str>,
    pub pg_latency: Option<Duration>,
    pub sqs_latency: Option<Duration>,
    pub publish_failures: usize,
}

impl RequestLog {
    pub fn reject(&mut self, code: &'static str) {
        *self.rejected.entry(code).or_default() += 1;
    }

    pub fn flag(&mut self, flag: &'static str) {
        *self.flagged.entry(flag).or_default() += 1;
    }

    pub fn finish(&self, latency: Duration) {
        let rejected: usize = self.rejected.values().sum();
        tracing::info!(
            request_id = %self.request_id,
            route = self.route,
            status = self.status,
            accepted = self.accepted,
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
        let mut values = Map::new();
        let mut metric = |name: String, value: Value, unit: &str, defs: &mut Vec<Value>| {
            defs.push(json!({ "Name": name, "Unit": unit }));
            values.insert(name, value);
        };
        let mut defs = Vec::new();
        metric("Accepted".into(), json!(self.accepted), "Count", &mut defs);
        metric("Rejected".into(), json!(rejected), "Count", &mut defs);
        for (code, n) in &self.rejected {
            metric(format!("Rejected_{code}"), json!(n), "Count", &mut defs);
        }
        for (flag, n) in &self.flagged {
            metric(format!("Flagged_{flag}"), json!(n), "Count", &mut defs);
        }
        metric(
            "PublishFailures".into(),
            json!(self.publish_failures),
            "Count",
            &mut defs,
        );
        metric(
            "Latency".into(),
            json!(ms(latency)),
            "Milliseconds",
            &mut defs,
        );
        if let Some(d) = self.pg_latency {
            metric(
                "PostgresLatency".into(),
                json!(ms(d)),
                "Milliseconds",
                &mut defs,
            );
        }
        if let Some(d) = self.sqs_latency {
            metric("SqsLatency".into(), json!(ms(d)), "Milliseconds", &mut defs);
        }
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        values.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp,
                "CloudWatchMetrics": [{
                    "Namespace": "EIS",
                    "Dimensions": [["Function", "Route"]],
                    "Metrics": defs,
                }],
            }),
        );
        values.insert("Function".into(), json!("ingest"));
        values.insert("Route".into(), json!(self.route));
        Value::Object(values)
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
