//! Per-endpoint series, read from the running groups at scrape time: an endpoint that leaves DNS
//! leaves the scrape with it, so no series of a gone pod lingers and label values stay bounded by
//! the endpoints that exist.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use arc_swap::ArcSwap;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts};

use crate::upstream::Group;

/// The running groups, replaced on reload.
pub(super) type Groups = Arc<ArcSwap<Vec<Arc<Group>>>>;

const LABELS: &[&str] = &["group", "endpoint"];

pub(super) struct EndpointSeries {
    groups: Groups,
    usable: IntGaugeVec,
    in_flight: IntGaugeVec,
    ewma: GaugeVec,
    requests: IntCounterVec,
    failed: IntCounterVec,
}

impl EndpointSeries {
    pub(super) fn new(groups: Groups) -> Self {
        let opts = |name: &str, help: &str| Opts::new(name, help);
        Self {
            groups,
            usable: IntGaugeVec::new(
                opts(
                    "proxy_endpoint_usable",
                    "1 while the endpoint takes new requests (up by its checks, not ejected).",
                ),
                LABELS,
            )
            .expect("valid metric"),
            in_flight: IntGaugeVec::new(
                opts(
                    "proxy_endpoint_requests_in_flight",
                    "Requests sent to the endpoint and not yet answered in full.",
                ),
                LABELS,
            )
            .expect("valid metric"),
            ewma: GaugeVec::new(
                opts(
                    "proxy_endpoint_response_time_ewma_seconds",
                    "The endpoint's peak-EWMA time to first byte, as least_loaded prices it.",
                ),
                LABELS,
            )
            .expect("valid metric"),
            requests: IntCounterVec::new(
                opts(
                    "proxy_endpoint_requests_total",
                    "Attempts sent to the endpoint (a retried request counts once per endpoint).",
                ),
                LABELS,
            )
            .expect("valid metric"),
            failed: IntCounterVec::new(
                opts(
                    "proxy_endpoint_failed_attempts_total",
                    "Attempts on the endpoint that failed to connect or got no first byte in time.",
                ),
                LABELS,
            )
            .expect("valid metric"),
        }
    }
}

impl EndpointSeries {
    fn families(&self) -> [&dyn Collector; 5] {
        [
            &self.usable,
            &self.in_flight,
            &self.ewma,
            &self.requests,
            &self.failed,
        ]
    }
}

impl Collector for EndpointSeries {
    fn desc(&self) -> Vec<&Desc> {
        self.families().into_iter().flat_map(|f| f.desc()).collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.usable.reset();
        self.in_flight.reset();
        self.ewma.reset();
        self.requests.reset();
        self.failed.reset();
        for group in self.groups.load().iter() {
            for e in group.endpoints().iter() {
                let addr = e.addr.to_string();
                let labels = [group.name(), addr.as_str()];
                self.usable
                    .with_label_values(&labels)
                    .set(i64::from(e.usable()));
                let load = e.load();
                self.in_flight
                    .with_label_values(&labels)
                    .set(load.in_flight() as i64);
                // Absent until the endpoint answered once: no made-up zero.
                if let Some(estimate) = load.estimate() {
                    self.ewma
                        .with_label_values(&labels)
                        .set(estimate.as_secs_f64());
                }
                self.requests
                    .with_label_values(&labels)
                    .inc_by(e.data.requests.load(Relaxed));
                self.failed
                    .with_label_values(&labels)
                    .inc_by(e.data.failed_attempts.load(Relaxed));
            }
        }
        self.families()
            .into_iter()
            .flat_map(|f| f.collect())
            .collect()
    }
}
