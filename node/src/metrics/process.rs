//! `amoskys_process_*`: memory, CPU time and file descriptors of the node
//! process, read from `/proc/self` at scrape time.

use amoskys_sensors::procfs::usage::own_usage;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Nothing is written when `/proc/self` cannot be read (the reason is
/// logged at debug level).
pub(super) fn encode(encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let u = match own_usage() {
        Ok(u) => u,
        Err(error) => {
            tracing::debug!(%error, "no process metrics");
            return Ok(());
        }
    };
    let gauges = [
        (
            "amoskys_process_resident_memory_bytes",
            "Resident memory of the node process",
            Some(u.resident_bytes),
        ),
        (
            "amoskys_process_open_fds",
            "Open file descriptors of the node process",
            Some(u.open_fds),
        ),
        (
            "amoskys_process_max_fds",
            "Soft limit on open file descriptors (absent when unlimited)",
            u.max_fds,
        ),
    ];
    for (name, help, value) in gauges {
        if let Some(v) = value {
            let g = ConstGauge::new(v);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
    }
    let cpu = ConstCounter::new(u.cpu_seconds);
    cpu.encode(encoder.encode_descriptor(
        "amoskys_process_cpu_seconds",
        "User and system CPU time of the node process",
        None,
        cpu.metric_type(),
    )?)?;
    Ok(())
}
