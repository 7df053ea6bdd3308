//! The bouncer's Prometheus metrics, read at scrape time.

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::Response;

/// `amoskys_response_*`: health, what is enforced, what was refused.
pub fn encode_metrics(
    encoder: &mut DescriptorEncoder,
    response: &Response,
) -> Result<(), std::fmt::Error> {
    let s = response.status();
    for (name, help, value) in [
        (
            "amoskys_response_bouncer_healthy",
            "1 when the bouncer can use nftables, else 0",
            i64::from(s.healthy),
        ),
        (
            "amoskys_response_enforced_subjects",
            "Subjects in the kernel set as last applied",
            i64::try_from(s.enforced).unwrap_or(i64::MAX),
        ),
        (
            "amoskys_response_over_limit_decisions",
            "Live decisions beyond response.max_decisions, not enforced",
            i64::try_from(s.over_limit).unwrap_or(i64::MAX),
        ),
    ] {
        let g = ConstGauge::new(value);
        g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
    }
    for (name, help, value) in [
        (
            "amoskys_response_decisions_made",
            "Decisions this node's response rules wrote",
            s.decided,
        ),
        (
            "amoskys_response_nft_transactions",
            "nft transactions the bouncer applied",
            s.applied,
        ),
    ] {
        let c = ConstCounter::new(value);
        c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
    }
    let mut refused = encoder.encode_descriptor(
        "amoskys_response_decisions_refused",
        "Decisions refused because they would block a protected address, by reason",
        None,
        ConstCounter::new(0u64).metric_type(),
    )?;
    for (reason, n) in &s.refused {
        ConstCounter::new(*n).encode(refused.encode_family(&[("reason", reason.as_str())])?)?;
    }
    Ok(())
}
