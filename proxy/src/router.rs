//! Which group serves a request: by Host (exact, case-insensitive, port ignored) and the longest
//! matching path prefix. A group with no hosts serves any host; a host match beats a catch-all.

use std::sync::Arc;

use crate::upstream::Group;

pub struct Router {
    groups: Vec<Arc<Group>>,
}

impl Router {
    pub fn new(groups: Vec<Arc<Group>>) -> Self {
        Self { groups }
    }

    pub fn groups(&self) -> &[Arc<Group>] {
        &self.groups
    }

    pub fn route(&self, host: Option<&str>, path: &str) -> Option<&Arc<Group>> {
        let host = host.map(strip_port);
        self.groups
            .iter()
            .filter_map(|g| {
                let c = &g.config;
                let host_match = if c.hosts.is_empty() {
                    false
                } else if host.is_some_and(|h| c.hosts.iter().any(|x| x.eq_ignore_ascii_case(h))) {
                    true
                } else {
                    return None;
                };
                prefix_matches(&c.path_prefix, path)
                    .then_some(((host_match, c.path_prefix.len()), g))
            })
            .max_by_key(|(score, _)| *score)
            .map(|(_, g)| g)
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map_or(host, |(h, _)| &h[1..]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// `/api` matches `/api` and `/api/users`, not `/apiary`.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => {
            prefix.ends_with('/')
                || rest.is_empty()
                || rest.starts_with('/')
                || rest.starts_with('?')
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_on_segment_boundaries() {
        assert!(prefix_matches("/", "/anything"));
        assert!(prefix_matches("/api", "/api"));
        assert!(prefix_matches("/api", "/api/users"));
        assert!(!prefix_matches("/api", "/apiary"));
        assert!(prefix_matches("/api/", "/api/x"));
    }

    #[test]
    fn ports_are_ignored_in_hosts() {
        assert_eq!(strip_port("example.com:8080"), "example.com");
        assert_eq!(strip_port("example.com"), "example.com");
        assert_eq!(strip_port("[::1]:80"), "::1");
    }
}
