//! The process's Prometheus registry and the metrics in it (documented in the crate README).

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};

/// Routes are labelled by these names only, so a scan of random paths cannot grow the label set.
pub const ROUTES: [&str; 4] = ["/users", "/healthz", "/readyz", "/metrics"];

/// Label for any path outside [`ROUTES`].
pub const OTHER_ROUTE: &str = "other";

/// The status codes each route answers by contract (an internal 500 or a framework's 4xx can
/// still add others). Their series exist from the start at 0.
const ANSWERS: [(&str, &[&str]); 4] = [
    ("/users", &["200", "503"]),
    ("/healthz", &["200"]),
    ("/readyz", &["200", "503"]),
    ("/metrics", &["200"]),
];

#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// `backend_http_requests_total{route,status}`
    pub requests: IntCounterVec,
    /// `backend_http_request_duration_seconds{route}`
    pub request_duration: HistogramVec,
    /// `backend_db_errors_total{stage}`
    pub db_errors: IntCounterVec,
    /// `backend_db_query_duration_seconds{outcome}`: connect included.
    pub db_duration: HistogramVec,
    /// `backend_draining`: 1 from SIGTERM until exit.
    pub draining: IntGauge,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "backend_http_requests_total",
                "HTTP requests answered, by route and status code",
            ),
            &["route", "status"],
        )
        .expect("valid metric");
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "backend_http_request_duration_seconds",
                "Time from request received to response headers, by route",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["route"],
        )
        .expect("valid metric");
        let db_errors = IntCounterVec::new(
            Opts::new(
                "backend_db_errors_total",
                "Database operations that failed, by the step that failed",
            ),
            &["stage"],
        )
        .expect("valid metric");
        let db_duration = HistogramVec::new(
            HistogramOpts::new(
                "backend_db_query_duration_seconds",
                "Time to get a connection and run the /users query, by outcome (ok, error)",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["outcome"],
        )
        .expect("valid metric");
        let draining = IntGauge::new(
            "backend_draining",
            "1 from SIGTERM until exit (readiness answers 503), else 0",
        )
        .expect("valid metric");
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(request_duration.clone()),
            Box::new(db_errors.clone()),
            Box::new(db_duration.clone()),
            Box::new(draining.clone()),
        ] {
            registry
                .register(collector)
                .expect("each metric registered once");
        }
        ops::metrics::register_process(&registry, "backend", env!("CARGO_PKG_VERSION"))
            .expect("registered once");
        // Every stage's series exists from the start at 0: a dashboard has a line before the first
        // error, and the scrape shows the metric.
        for stage in crate::db::DbError::STAGES {
            db_errors.with_label_values(&[stage]);
        }
        // So are the answers a route gives by contract: a dashboard's 503 rate is 0 rather than
        // "no data" before the first one.
        for (route, statuses) in ANSWERS {
            for status in statuses {
                requests.with_label_values(&[route, status]);
            }
        }
        Self {
            registry,
            requests,
            request_duration,
            db_errors,
            db_duration,
            draining,
        }
    }

    /// The route label for a request path.
    pub fn route_label(path: &str) -> &'static str {
        ROUTES
            .iter()
            .find(|route| **route == path)
            .copied()
            .unwrap_or(OTHER_ROUTE)
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_contract_answer_is_exported_at_zero_before_any_request() {
        let metrics = Metrics::new();
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&metrics.registry().gather())
            .unwrap();
        for (route, statuses) in ANSWERS {
            for status in statuses {
                let line = format!(
                    "backend_http_requests_total{{route=\"{route}\",status=\"{status}\"}} 0"
                );
                assert!(text.contains(&line), "{line} missing from:\n{text}");
            }
        }
    }
}
