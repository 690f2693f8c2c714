//! pgbalancer's config file: any text is a config or an error naming a key, never a panic, and
//! the validated config never holds a zero timeout or limit that would stop it working.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use pgbalancer::config::{FileConfig, Layers};
use pgbalancer::{Cli, Config};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = FileConfig::parse(Path::new("fuzz.yaml"), text) else {
        return;
    };
    let cli = Cli::default();
    let env = |_: &str| Some("pw".to_owned());
    if let Ok(config) = Config::try_from(Layers {
        cli: &cli,
        file,
        env: &env,
    }) {
        assert!(!config.client_timeout.is_zero());
        assert!(!config.connect_timeout.is_zero());
        assert!(config.max_connections > 0);
    }
});
