//! One structured log line and one CloudWatch Embedded Metric Format (EMF) line per request,
//! written by one middleware for every route, plus one EMF line per experiment variant the
//! request's events named (`VariantRejected`). None ever carries payloads or unit ids.
//!
//! No dimension value is a string a client chose: `Function` and `Route` are fixed, and
//! `Experiment`/`Variant` are bounded by the registry copy (series.rs).
//! (Over 400 lines with its unit tests, which check the metrics' documents; the code is ~260.)

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use eis_runtime::telemetry::{Emf, Namespace};
use serde_json::Value;
use uuid::Uuid;

use crate::answer::{BatchAnswer, EventAccepted};
use crate::error::ApiError;
use crate::intake::Taken;
use crate::quarantine::QuarantineReport;
pub use crate::series::{Series, VariantCounts, OTHER};

/// EMF takes at most 100 values per metric in one document.
const EMF_MAX_VALUES: usize = 100;

/// The request's id (API Gateway's in Lambda), put in the request's extensions for the
/// handlers: quarantine records carry it.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Times every request and writes its log line and metrics from the [`RequestLog`] that the
/// handler attached to the response (a response without one is logged as `unmatched`); its
/// metrics go to the stack's `namespace`.
pub async fn log_requests(
    State(namespace): State<Namespace>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let request_id = request_id(&request);
    request
        .extensions_mut()
        .insert(RequestId(request_id.clone()));
    let mut response = next.run(request).await;
    let mut log = response
        .extensions_mut()
        .remove::<RequestLog>()
        .unwrap_or_else(|| RequestLog::new("unmatched"));
    log.request_id = request_id;
    log.status = response.status().as_u16();
    log.finish(&namespace, started.elapsed());
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
    /// A body over the limit: counted, never stored.
    pub oversize: bool,
    pub quarantine: QuarantineReport,
    /// Per series of the variants named: (accepted events, rejected events).
    pub variants: VariantCounts,
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
        self.refused(err);
        if let ApiError::Invalid(r) = err {
            self.reject(r.code.as_str());
        }
    }

    /// A request refused as a whole, whatever it held.
    fn refused(&mut self, err: &ApiError) {
        self.error = Some(err.code());
        self.oversize = matches!(err, ApiError::PayloadTooLarge { .. });
    }

    /// `POST /events`: what its intake did (None: it never got that far) and its answer.
    /// An invalid event counts as rejected, with its variants.
    pub fn event_answered(
        &mut self,
        taken: Option<Taken>,
        answer: &Result<EventAccepted, ApiError>,
    ) {
        if let Some(taken) = taken {
            self.variants = self.took(taken);
        }
        match answer {
            Ok(accepted) => {
                self.accepted = 1;
                self.duplicates = usize::from(accepted.duplicate);
                for flag in &accepted.warnings {
                    self.flag(flag.as_str());
                }
            }
            Err(err) => self.failed(err),
        }
    }

    /// `POST /events/batch`. A batch refused as a whole had its events never judged one by
    /// one: nor are they counted per variant, even those judged before the refusal.
    pub fn batch_answered(&mut self, taken: Option<Taken>, answer: &Result<BatchAnswer, ApiError>) {
        let variants = taken.map(|taken| self.took(taken));
        let answer = match answer {
            Ok(answer) => answer,
            Err(err) => return self.refused(err),
        };
        self.variants = variants.unwrap_or_default();
        self.accepted = answer.accepted;
        self.duplicates = answer.duplicates.len();
        for e in &answer.errors {
            self.reject(e.error);
        }
        for w in &answer.warnings {
            for flag in &w.warnings {
                self.flag(flag.as_str());
            }
        }
    }

    /// The quarantine's and the storage's part; returns the per-variant counts, which only
    /// an answered request keeps.
    fn took(&mut self, taken: Taken) -> VariantCounts {
        self.quarantine = taken.quarantine;
        if let Some(report) = &taken.saved {
            self.pg_latency = Some(report.pg_latency);
            self.sqs_latency = Some(report.sqs_latency);
            self.publish_failures = report.publish_failures;
        }
        taken.variants
    }

    pub fn reject(&mut self, code: &'static str) {
        *self.rejected.entry(code).or_default() += 1;
    }

    pub fn flag(&mut self, flag: &'static str) {
        *self.flagged.entry(flag).or_default() += 1;
    }

    fn finish(&self, namespace: &Namespace, latency: Duration) {
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
            quarantined = self.quarantine.kept,
            quarantine_failures = self.quarantine.failed,
            oversize = self.oversize,
            "request"
        );
        println!("{}", self.emf(namespace, latency, rejected));
        for doc in self.variant_emf(namespace) {
            println!("{doc}");
        }
    }

    /// Per variant, one observation per event: 1 rejected, 0 accepted. Their average over a
    /// period is the variant's rejected share (the alarm), their sum its rejected count.
    fn variant_emf(&self, namespace: &Namespace) -> Vec<Value> {
        let mut docs = Vec::new();
        for (variant, &(accepted, rejected)) in &self.variants.0 {
            let observations: Vec<u8> = std::iter::repeat_n(1, rejected)
                .chain(std::iter::repeat_n(0, accepted))
                .collect();
            for values in observations.chunks(EMF_MAX_VALUES) {
                let mut emf = Emf::new(namespace);
                emf.metric("VariantRejected", values.to_vec(), "Count");
                emf.property("Experiment", Series::dimension(variant.experiment));
                emf.property("Variant", Series::dimension(variant.variant));
                docs.push(emf.document(&["Experiment", "Variant"]));
            }
        }
        docs
    }

    /// The EMF document: CloudWatch extracts the listed metrics from this log line.
    fn emf(&self, namespace: &Namespace, latency: Duration, rejected: usize) -> Value {
        let mut emf = Emf::new(namespace);
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
        emf.metric("Quarantined", self.quarantine.kept, "Count");
        emf.metric("QuarantineFailures", self.quarantine.failed, "Count");
        emf.metric("QuarantinedBytes", self.quarantine.raw_bytes, "Bytes");
        emf.metric("OversizeRequests", usize::from(self.oversize), "Count");
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
    use eis_contract::{Event, NamedVariant, Registry};

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
        let namespace = Namespace::parse("EIS-test").expect("valid");
        let doc = log.emf(&namespace, Duration::from_millis(5), 2);
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Namespace"], "EIS-test");
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

    const EXP: Uuid = Uuid::from_u128(0xe1);
    const A: Uuid = Uuid::from_u128(0xa);
    const B: Uuid = Uuid::from_u128(0xb);

    /// EXP, registered with variants A and B.
    fn registry() -> Registry {
        let x = eis_contract::RegisteredExperiment {
            unit_type: "user".into(),
            stopped: false,
            starts_at: chrono::DateTime::UNIX_EPOCH,
            ends_at: None,
            variants: vec![A, B],
        };
        Registry::new([(EXP, x)].into())
    }

    fn named(experiment_id: impl ToString, variant_id: impl ToString) -> NamedVariant {
        NamedVariant {
            experiment_id: experiment_id.to_string(),
            variant_id: variant_id.to_string(),
        }
    }

    /// A valid event naming `refs`.
    fn accepted(refs: &[(Uuid, Uuid)]) -> Event {
        let now = chrono::Utc::now();
        let refs: Vec<Value> = refs
            .iter()
            .map(|(e, v)| serde_json::json!({"experiment_id": e, "variant_id": v}))
            .collect();
        let text = serde_json::json!({
            "event_type": "pantry_updated", "unit_type": "user", "unit_id": "u",
            "timestamp": now.to_rfc3339(), "experiments": refs,
        });
        let bytes = serde_json::to_vec(&text).unwrap_or_default();
        eis_contract::validate_event(&bytes, now, &Default::default()).expect("valid")
    }

    /// The (Experiment, Variant) of each document, in order.
    fn dimensions(docs: &[Value]) -> Vec<(String, String)> {
        docs.iter()
            .map(|d| {
                let text = |k: &str| d[k].as_str().unwrap_or_default().to_string();
                (text("Experiment"), text("Variant"))
            })
            .collect()
    }

    #[test]
    fn variant_observations_average_to_the_rejected_share() {
        let mut log = RequestLog::new("POST /events/batch");
        log.variants
            .0
            .insert(Series::of(Some(&registry()), EXP, A), (230, 20));
        log.variants
            .0
            .insert(Series::of(Some(&registry()), EXP, B), (5, 0));
        let docs = log.variant_emf(&Namespace::default());
        // 250 observations of a in documents of at most 100, then b's 5.
        let counts: Vec<usize> = docs
            .iter()
            .map(|d| d["VariantRejected"].as_array().map_or(0, Vec::len))
            .collect();
        assert_eq!(counts, [100, 100, 50, 5]);
        let sum_a: u64 = docs[..3]
            .iter()
            .flat_map(|d| d["VariantRejected"].as_array().cloned().unwrap_or_default())
            .filter_map(|v| v.as_u64())
            .sum();
        assert_eq!(sum_a, 20);
        assert_eq!(dimensions(&docs[3..]), [(EXP.to_string(), B.to_string())]);
        assert_eq!(
            docs[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([["Experiment", "Variant"]])
        );
    }

    #[test]
    fn unregistered_experiments_and_variants_are_summed_under_other() {
        let registry = registry();
        let mut log = RequestLog::new("POST /events/batch");
        // 10 000 rejected events, each naming an experiment id of its own (UUIDs and not),
        // and as many with a registered experiment and a variant of their own.
        for i in 0..10_000u128 {
            let fresh = Uuid::from_u128(0x1000 + i);
            log.variants.rejected(&[named(fresh, A)], Some(&registry));
            log.variants
                .rejected(&[named(format!("exp-{i}"), "x")], Some(&registry));
            log.variants
                .rejected(&[named(EXP, format!("variant-{i}"))], Some(&registry));
        }
        // Registered ids in other spellings are the same series, written canonically.
        let upper = EXP.hyphenated().to_string().to_uppercase();
        log.variants
            .rejected(&[named(&upper, A.braced())], Some(&registry));
        let event = accepted(&[(EXP, A), (Uuid::from_u128(7), B)]);
        log.variants.accepted(&event, Some(&registry));
        let docs = log.variant_emf(&Namespace::default());
        let mut series = dimensions(&docs);
        series.dedup();
        let other = || OTHER.to_string();
        assert_eq!(
            series,
            [
                (other(), other()),
                (EXP.to_string(), other()),
                (EXP.to_string(), A.to_string()),
            ]
        );
        let observations = |e: Option<Uuid>, v: Option<Uuid>| {
            log.variants.0[&Series {
                experiment: e,
                variant: v,
            }]
        };
        // Each event counts once per series: 20 000 rejected other/other, 1 accepted.
        assert_eq!(observations(None, None), (1, 20_000));
        assert_eq!(observations(Some(EXP), None), (0, 10_000));
        assert_eq!(observations(Some(EXP), Some(A)), (1, 1));
        // Without a registry copy, everything is other.
        let mut log = RequestLog::new("POST /events");
        log.variants.rejected(&[named(EXP, A)], None);
        log.variants.accepted(&event, None);
        assert_eq!(
            dimensions(&log.variant_emf(&Namespace::default())),
            [(other(), other())]
        );
        assert_eq!(log.variants.0.len(), 1);
    }
}
