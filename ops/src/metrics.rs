//! The series every binary exports about itself, as Prometheus' client libraries name them:
//! `process_*` (resident and virtual memory, CPU seconds, open and maximum file descriptors,
//! threads, start time; read from `/proc` at scrape time) and `<binary>_build_info{version}`,
//! always 1, so a dashboard can tell which build runs.

use prometheus::{IntGauge, Opts, Registry};

/// Registers the process collector and `<binary>_build_info` on `registry`.
pub fn register_process(
    registry: &Registry,
    binary: &str,
    version: &str,
) -> prometheus::Result<()> {
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    let info = IntGauge::with_opts(
        Opts::new(
            format!("{binary}_build_info"),
            format!("Always 1; the version of the {binary} binary running, as a label."),
        )
        .const_label("version", version),
    )?;
    info.set(1);
    registry.register(Box::new(info))
}

#[cfg(test)]
mod tests {
    #[test]
    fn exports_memory_cpu_fds_and_the_version() {
        let registry = prometheus::Registry::new();
        super::register_process(&registry, "demo", "1.2.3").unwrap();
        let names: Vec<_> = registry
            .gather()
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        for name in [
            "process_resident_memory_bytes",
            "process_cpu_seconds_total",
            "process_open_fds",
            "process_start_time_seconds",
            "demo_build_info",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} not in {names:?}");
        }
        let info = registry
            .gather()
            .into_iter()
            .find(|f| f.name() == "demo_build_info")
            .unwrap();
        let metric = &info.get_metric()[0];
        assert_eq!(metric.get_label()[0].value(), "1.2.3");
        assert_eq!(metric.get_gauge().get_value(), 1.0);
    }
}
