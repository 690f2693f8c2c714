//! Holding a request while its group has no usable endpoint: wake on every change of membership,
//! health or ejections and try again, until the hold timeout; then a 503 that says why. While
//! requests wait, DNS is asked again every [`REFRESH_WHILE_HOLDING`], so a replacement pod is
//! found within that instead of the resolve interval.

use std::time::Instant;

use pingora_core::{Error, ErrorType, Result};

use super::RequestCtx;

/// How often a holding request asks for a fresh DNS lookup.
const REFRESH_WHILE_HOLDING: std::time::Duration = std::time::Duration::from_millis(250);
use crate::upstream::{Group, Pick};

pub async fn wait_for_endpoint(
    group: &Group,
    ctx: &mut RequestCtx,
    hold_timeout: std::time::Duration,
) -> Result<Pick> {
    let metrics = &group.events.metrics;
    let started = Instant::now();
    // The hold budget is per request, however many times it waits.
    let deadline = tokio::time::Instant::from_std(started) + hold_timeout.saturating_sub(ctx.held);
    if ctx.held.is_zero() {
        metrics.held.inc();
    }
    metrics.holding.inc();
    let tried = &ctx.tried;
    let picked = group
        .members()
        .wait_for(
            deadline,
            REFRESH_WHILE_HOLDING,
            || {
                if let Some(discovery) = group.discovery() {
                    discovery.refresh();
                }
            },
            |_| std::future::ready(group.pick(tried)),
        )
        .await;
    metrics.holding.dec();
    ctx.held += started.elapsed();
    if let Some(pick) = picked {
        return Ok(pick);
    }
    metrics.hold_timeouts.inc();
    let endpoints = group.endpoints();
    let reason = if endpoints.is_empty() {
        format!(
            "no endpoint of {} is in DNS (waited {} ms)",
            group.target(),
            ctx.held.as_millis()
        )
    } else {
        format!(
            "none of the {} endpoints of {} is healthy (waited {} ms)",
            endpoints.len(),
            group.target(),
            ctx.held.as_millis()
        )
    };
    let error = Error::explain(ErrorType::HTTPStatus(503), reason.clone());
    ctx.unavailable = Some(reason);
    Err(error)
}
