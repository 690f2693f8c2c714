//! The stats page on `/`, as pgbalancer's and HAProxy's: per group its route, DNS counters and one
//! row per endpoint (state, since when, requests, failed attempts, in flight, response time, last
//! check). Plain HTML with a refresh tag, no scripts.

use std::fmt::Write;

use ops::admin::escape_html as esc;

use super::status::{EndpointStatus, GroupStatus, Status};

pub fn render(s: &Status) -> String {
    let mut html = String::with_capacity(4096);
    ops::admin::page_start(&mut html, "proxy");
    let _ = write!(
        html,
        r#"<h1>proxy {version}</h1>
<p>up {uptime} s &middot; requests in flight {inflight}{draining} &middot; configuration generation
{generation}, applied {applied}</p>
"#,
        version = s.version,
        uptime = s.uptime_seconds,
        inflight = s.requests_in_flight,
        draining = if s.draining {
            " &middot; <b>draining (SIGTERM)</b>"
        } else {
            ""
        },
        generation = s.config.generation,
        applied = s.config.applied_at,
    );
    for g in &s.groups {
        group(&mut html, g);
    }
    ops::admin::page_end(&mut html);
    html
}

fn group(html: &mut String, g: &GroupStatus) {
    let hosts = if g.hosts.is_empty() {
        "any host".to_owned()
    } else {
        g.hosts.join(", ")
    };
    let usable = g.endpoints.iter().filter(|e| e.state == "usable").count();
    let dns = g.dns.as_ref().map_or_else(
        || "a fixed address".to_owned(),
        |d| {
            let error = d.last_error.as_ref().map_or_else(String::new, |e| {
                format!(
                    ", last error {} at {}",
                    esc(e),
                    d.last_error_at.as_deref().unwrap_or("-")
                )
            });
            format!(
                "DNS lookups ok {}, empty {}, failed {}, changes {}{error}",
                d.lookups_ok, d.lookups_empty, d.lookups_failed, d.changes
            )
        },
    );
    let _ = write!(
        html,
        r#"<h2>group {name}</h2>
<p>upstream <b>{upstream}</b> &middot; {hosts}, path {path} &middot; usable {usable} of {total} &middot; {dns}</p>
<table>
<tr><th>endpoint</th><th>state</th><th>since</th><th>requests</th><th>failed attempts</th>
<th>in flight</th><th>response ms</th><th>last check</th><th>result</th></tr>
"#,
        name = esc(&g.name),
        upstream = esc(&g.upstream),
        hosts = esc(&hosts),
        path = esc(&g.path_prefix),
        total = g.endpoints.len(),
    );
    for e in &g.endpoints {
        row(html, e);
    }
    html.push_str("</table>\n");
}

fn row(html: &mut String, e: &EndpointStatus) {
    let (at, result) = match &e.last_check {
        Some(c) => (
            c.at.clone(),
            if c.ok {
                "pass".to_owned()
            } else {
                c.detail.clone().unwrap_or_else(|| "failed".into())
            },
        ),
        None => ("-".into(), "not checked yet".into()),
    };
    let state = match &e.ejected {
        Some(why) if e.state == "ejected" => format!("ejected: {why}"),
        _ => e.state.to_owned(),
    };
    let _ = writeln!(
        html,
        "<tr class=\"{class}\"><td class=\"l\">{addr}</td><td class=\"l\">{state}</td><td>{since}</td>\
<td>{requests}</td><td>{failed}</td><td>{in_flight}</td><td>{ms}</td><td>{at}</td><td class=\"why\">{result}</td></tr>",
        class = e.state,
        addr = esc(&e.addr),
        state = esc(&state),
        since = e.since,
        requests = e.requests,
        failed = e.failed_attempts,
        in_flight = e.in_flight,
        ms = e
            .response_time_ms
            .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.1}")),
        at = at,
        result = esc(&result),
    );
}
