//! Pingora's server settings, derived from our [`Config`]: its threads, shutdown bounds, retry
//! fail-safe, upstream pool and runtime scheduling.

use pingora_core::server::configuration::ServerConf;

use crate::config::Config;

pub(crate) fn from_config(config: &Config) -> ServerConf {
    let threads = config.threads.max(1);
    let defaults = ServerConf::default();
    ServerConf {
        threads,
        // The drain thread exits as soon as in-flight requests are done; this is the upper bound.
        grace_period_seconds: Some(config.shutdown_timeout.as_secs().max(1)),
        graceful_shutdown_timeout_seconds: Some(1),
        // Our own attempt bound applies first; this is Pingora's fail-safe.
        max_retries: config.upstream.max_attempts as usize + 1,
        // Pingora's idle upstream pool is one LRU of `size × threads` connections. Every client
        // connection can have one request in flight, so a pool smaller than the connection limit
        // closes and reopens upstream connections under a full house (Pingora's default of 128
        // did at 1000 clients); pooled connections still close after `upstream.idle_timeout`.
        upstream_keepalive_pool_size: defaults
            .upstream_keepalive_pool_size
            .max(config.limits.max_connections.div_ceil(threads)),
        // Past 256 ready connections a worker's own run queue overflows into the shared one,
        // which Tokio's default serves only every few dozen tasks: those connections waited
        // while the rest were served (p99 at 1000 connections 5x nginx's). Serving the shared
        // queue first keeps connections in about the order they became ready
        // (vendor/README.md, change 5).
        runtime_global_queue_interval: Some(1),
        ..defaults
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::file::FileConfig;

    fn config(args: &[&str]) -> Config {
        use clap::Parser;
        let mut argv = vec!["proxy", "--upstream", "127.0.0.1:8000"];
        argv.extend_from_slice(args);
        let cli = crate::Cli::try_parse_from(argv).expect("flags parse");
        let file = FileConfig::parse("").expect("an empty file parses");
        Config::build(&crate::config::Source::from(&cli).overrides, file).expect("valid")
    }

    #[test]
    fn the_upstream_pool_holds_a_connection_for_every_client_connection() {
        let conf = from_config(&config(&["--threads", "3", "--max-connections", "1000"]));
        assert_eq!(conf.threads, 3);
        // Pingora multiplies the per-thread size by the threads: 334 × 3 ≥ 1000.
        assert_eq!(conf.upstream_keepalive_pool_size, 334);

        let small = from_config(&config(&["--max-connections", "10"]));
        assert_eq!(
            small.upstream_keepalive_pool_size, 128,
            "never below Pingora's own default"
        );
    }

    #[test]
    fn runtimes_serve_their_shared_queue_first_and_retries_stay_bounded() {
        let c = config(&[]);
        let conf = from_config(&c);
        assert_eq!(conf.runtime_global_queue_interval, Some(1));
        assert_eq!(conf.runtime_opts().global_queue_interval, Some(1));
        assert!(conf.work_stealing);
        assert_eq!(conf.max_retries, c.upstream.max_attempts as usize + 1);
    }
}
