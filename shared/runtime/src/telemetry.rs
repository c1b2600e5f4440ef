//! Logging and metrics shared by both functions: JSON log lines (tracing) and CloudWatch
//! Embedded Metric Format (EMF) documents, which CloudWatch turns into metrics from the log.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

/// JSON logs. In Lambda on stdout without timestamps (CloudWatch adds its own); locally on
/// stderr, so that stdout carries only what the program answers and its EMF lines.
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
        builder.with_writer(std::io::stderr).init();
    }
}

/// An error with every cause under it, `top: cause: cause`, for the one log line (or Lambda
/// error message) that reports it.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let next = c.to_string();
        // A wrapper that already quotes its cause (an SDK's display context) says it once.
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = c.source();
    }
    text
}

/// One EMF document in the `EIS` namespace: metrics with their units, and the properties
/// (dimensions among them) that say where they came from.
#[derive(Debug, Default)]
pub struct Emf {
    values: Map<String, Value>,
    metrics: Vec<Value>,
}

impl Emf {
    pub fn metric(&mut self, name: impl Into<String>, value: impl Into<Value>, unit: &str) {
        let name = name.into();
        self.metrics.push(json!({ "Name": name, "Unit": unit }));
        self.values.insert(name, value.into());
    }

    pub fn property(&mut self, name: &str, value: impl Into<Value>) {
        self.values.insert(name.into(), value.into());
    }

    /// The finished document; `dimensions` name properties set with [`Emf::property`].
    pub fn document(self, dimensions: &[&str]) -> Value {
        let Emf {
            mut values,
            metrics,
        } = self;
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
                    "Dimensions": [dimensions],
                    "Metrics": metrics,
                }],
            }),
        );
        Value::Object(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_metric_and_dimension_has_a_value() {
        let mut emf = Emf::default();
        emf.metric("Accepted", 3usize, "Count");
        emf.metric("Latency", 1.5, "Milliseconds");
        emf.property("Function", "ingest");
        let doc = emf.document(&["Function"]);
        let spec = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(spec["Namespace"], "EIS");
        assert_eq!(spec["Dimensions"], json!([["Function"]]));
        assert_eq!(
            spec["Metrics"],
            json!([
                {"Name": "Accepted", "Unit": "Count"},
                {"Name": "Latency", "Unit": "Milliseconds"},
            ])
        );
        assert_eq!(
            (doc["Accepted"].clone(), doc["Latency"].clone()),
            (json!(3), json!(1.5))
        );
        assert_eq!(doc["Function"], "ingest");
        assert!(doc["_aws"]["Timestamp"].as_u64().unwrap_or_default() > 0);
    }
}

#[cfg(test)]
mod chain_tests {
    use super::chain;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn the_chain_names_every_cause_once() {
        let err = Outer(std::io::Error::other("disk full"));
        assert_eq!(chain(&err), "outer: disk full");
        assert_eq!(chain(&std::io::Error::other("alone")), "alone");
    }
}
