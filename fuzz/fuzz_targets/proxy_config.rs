//! The proxy's config file: any text is a config or an error naming a key, never a panic, and a
//! validated config has the limits the proxy relies on and health checks that build.
#![no_main]

use clap::Parser;
use libfuzzer_sys::fuzz_target;
use proxy::config::file::FileConfig;
use proxy::{Cli, Config};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = FileConfig::parse(text) else {
        return;
    };
    let given = proxy::config::Source::from(&Cli::parse_from(["proxy"])).overrides;
    if let Ok(config) = Config::build(&given, file) {
        // What passed validation must build: every group's health checker, as the proxy will.
        for group in &config.groups {
            let host = match group.target.host() {
                discovery::Host::Name(name) => name.clone(),
                discovery::Host::Ip(ip) => ip.to_string(),
            };
            proxy::upstream::health::checker(&group.health, &host, config.health.timeout)
                .expect("a validated health check builds");
        }
        assert!(!config.groups.is_empty());
        assert!(config.limits.max_connections > 0);
        assert!(!config.limits.header_timeout.is_zero());
        assert!(config.upstream.max_attempts > 0);
    }
});
