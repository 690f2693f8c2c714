//! The HTML stats page: one row per backend with its state, role, lag, last check, sessions and
//! bytes. Plain HTML with a refresh tag, no scripts.

use std::fmt::Write;

use ops::admin::escape_html as esc;

use crate::status::{BackendStatus, Status};

pub fn render(s: &Status) -> String {
    let mut html = String::with_capacity(4096);
    ops::admin::page_start(&mut html, &format!("pgbalancer {}", s.upstream));
    let _ = write!(
        html,
        r#"<h1>pgbalancer {version}</h1>
<p>upstream <b>{upstream}</b> &middot; listen {listen} &middot; role filter {role:?} &middot;
on down: {on_down:?} &middot; client TLS {tls:?} (handshakes ok {tls_ok}, failed {tls_failed})
&middot; started {started}<br>
checks: user <b>{user}</b>, database <b>{db}</b>, every {interval} ms, timeout {timeout} ms,
fall {fall}, rise {rise} &middot; DNS lookups ok {ok}, empty {empty}, failed {failed}<br>
healthy {healthy} of {total} &middot; clients waiting for a backend: {waiting} &middot;
clients that found no backend: {no_backend}</p>
<table>
<tr><th>backend</th><th>state</th><th>since</th><th>role</th><th>lag s</th><th>lag bytes</th>
<th>last check</th><th>result</th><th>check ms</th><th>active</th><th>sessions</th>
<th>connect errors</th><th>bytes in</th><th>bytes out</th></tr>
"#,
        upstream = esc(&s.upstream),
        version = s.version,
        listen = s.listen,
        role = s.role,
        on_down = s.on_down,
        tls = s.tls.mode,
        tls_ok = s.tls.handshakes_ok,
        tls_failed = s.tls.handshakes_failed,
        started = s.started,
        user = esc(&s.check.user),
        db = esc(&s.check.database),
        interval = s.check.interval_ms,
        timeout = s.check.timeout_ms,
        fall = s.check.fall,
        rise = s.check.rise,
        ok = s.dns.lookups_ok,
        empty = s.dns.lookups_empty,
        failed = s.dns.lookups_failed,
        healthy = s.healthy,
        total = s.backends.len(),
        no_backend = s.no_backend_total,
        waiting = s.waiting_clients,
    );
    for b in &s.backends {
        row(&mut html, b);
    }
    html.push_str("</table>\n");
    ops::admin::page_end(&mut html);
    html
}

fn row(html: &mut String, b: &BackendStatus) {
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let (at, result, ms) = match &b.last_check {
        Some(c) => (
            c.at.clone(),
            c.error.clone().unwrap_or_else(|| "pass".into()),
            format!("{:.1}", c.duration_ms),
        ),
        None => ("-".into(), "not checked yet".into(), "-".into()),
    };
    let _ = writeln!(
        html,
        "<tr class=\"{class}\"><td class=\"l\">{addr}</td><td>{state}</td><td>{since}</td>\
<td>{role}</td><td>{lag}</td><td>{lag_bytes}</td><td>{at}</td><td class=\"l\">{result}</td>\
<td>{ms}</td><td>{active}</td><td>{total}</td><td>{errors}</td><td>{bin}</td><td>{bout}</td></tr>",
        class = if b.ejected.is_some() {
            "ejected"
        } else {
            b.state
        },
        state = match &b.ejected {
            Some(why) => format!("{} (set aside: {})", b.state, esc(why)),
            None => b.state.to_owned(),
        },
        addr = b.addr,
        since = opt(b.since.clone()),
        role = b.role,
        lag = opt(b.lag_seconds.map(|l| format!("{l:.3}"))),
        lag_bytes = opt(b.lag_bytes.map(|l| l.to_string())),
        result = esc(&result),
        active = b.active_sessions,
        total = b.total_sessions,
        errors = b.connect_errors,
        bin = b.bytes_to_backend,
        bout = b.bytes_to_client,
    );
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn escapes_markup_from_error_messages() {
        assert_eq!(
            esc("<a href=\"x\">&</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
    }
}
