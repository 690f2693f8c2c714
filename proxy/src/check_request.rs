//! The request an HTTP health check sends. Its own module, so the config's validation and the
//! checker build it the same way and neither depends on the other.

/// The request of an HTTP check, `GET path` with `Host: host`: the config's validation builds it
/// too, so a path that passes `--check-config` is one the checker can send.
pub fn build(path: &str, host: &str) -> Result<pingora_http::RequestHeader, String> {
    if !path.starts_with('/') {
        return Err(format!("`{path}` must start with `/`"));
    }
    // Pingora takes any bytes here; the URI parser is what rejects spaces and the like.
    path.parse::<http::uri::PathAndQuery>()
        .map_err(|e| format!("`{path}` is not a valid request path: {e}"))?;
    let mut req = pingora_http::RequestHeader::build("GET", path.as_bytes(), None)
        .map_err(|e| format!("`{path}` is not a valid request path: {e}"))?;
    req.insert_header("Host", host)
        .map_err(|e| format!("`{host}` is not a valid Host header: {e}"))?;
    req.insert_header("User-Agent", "proxy-health-check")
        .map_err(|e| e.to_string())?;
    Ok(req)
}
