//! What running a service needs, written once for the proxy, pgbalancer and the backend:
//! [`logging`] (text or JSON to stderr, `RUST_LOG`, colour only at a terminal), [`yaml`] (a config
//! file's text into a serde struct, an error naming the key), [`error_chain`] (an error with all
//! its causes on one line), and the admin listener's pieces in [`admin`] (the `/metrics`
//! response, `/readyz` answers, the time format of `/status`).

pub mod admin;
pub mod logging;
pub mod metrics;
pub mod yaml;

/// `error` and its causes, `outer: inner: innermost`, as a log line or a 503 body shows them.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("connecting to the database")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn every_cause_is_on_the_line() {
        let e = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused",
        ));
        assert_eq!(
            super::error_chain(&e),
            "connecting to the database: refused"
        );
    }
}
