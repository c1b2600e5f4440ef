//! Logging and metrics shared by both functions: JSON log lines (tracing) and CloudWatch
//! Embedded Metric Format (EMF) documents, which CloudWatch turns into metrics from the log.

use std::sync::Arc;
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

/// The CloudWatch namespace of every EMF document a stack prints (`EIS_METRICS_NAMESPACE`,
/// `EIS`): one per stack, so that two stages in one account do not mix their metrics and
/// alarms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace(Arc<str>);

impl Namespace {
    /// CloudWatch's rule: 1 to 255 ASCII letters, digits and `.-_/#: `, not only spaces, not
    /// starting with `AWS/` (AWS's own).
    pub fn parse(text: &str) -> Result<Self, String> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || ".-_/#: ".contains(c);
        if text.is_empty() || text.len() > 255 || !text.chars().all(allowed) {
            return Err(format!(
                "{text:?} is not 1 to 255 ASCII letters, digits or any of .-_/#: and space"
            ));
        }
        if text.trim().is_empty() || text.starts_with("AWS/") {
            return Err(format!("{text:?} is blank or starts with AWS/"));
        }
        Ok(Self(text.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Namespace {
    fn default() -> Self {
        Self("EIS".into())
    }
}

/// One EMF document in a [`Namespace`]: metrics with their units, and the properties
/// (dimensions among them) that say where they came from.
#[derive(Debug)]
pub struct Emf {
    namespace: Namespace,
    values: Map<String, Value>,
    metrics: Vec<Value>,
}

impl Emf {
    pub fn new(namespace: &Namespace) -> Self {
        Self {
            namespace: namespace.clone(),
            values: Map::new(),
            metrics: Vec::new(),
        }
    }

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
            namespace,
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
                    "Namespace": namespace.as_str(),
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
        let mut emf = Emf::new(&Namespace::default());
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

    #[test]
    fn the_document_carries_the_stack_s_namespace() {
        let namespace = Namespace::parse("EIS/prod").expect("valid");
        let doc = Emf::new(&namespace).document(&[]);
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Namespace"], "EIS/prod");
    }

    #[test]
    fn a_namespace_follows_cloudwatch_s_rule() {
        for good in ["EIS", "EIS-staging", "team/eis.prod_2", "a b#c:d"] {
            assert_eq!(
                Namespace::parse(good).map(|n| n.as_str().to_string()),
                Ok(good.into())
            );
        }
        let long = "x".repeat(256);
        for bad in [
            "",
            "   ",
            "AWS/Lambda",
            "EIS\nx",
            "é",
            "EIS;prod",
            long.as_str(),
        ] {
            assert!(Namespace::parse(bad).is_err(), "{bad:?}");
        }
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
