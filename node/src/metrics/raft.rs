//! `amoskys_raft_*`: this member's Raft state, read at scrape time from
//! [`Cluster::telemetry`].

use amoskys_consensus::Cluster;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Term, leadership, log indexes and their lags; on the leader, each other
/// member's replication lag.
pub(super) fn encode(
    encoder: &mut DescriptorEncoder,
    cluster: &Cluster,
) -> Result<(), std::fmt::Error> {
    let t = cluster.telemetry();
    for (name, help, value) in [
        ("amoskys_raft_term", "Current Raft term", t.term),
        (
            "amoskys_raft_is_leader",
            "1 when this node is the Raft leader, else 0",
            u64::from(t.is_leader),
        ),
        (
            "amoskys_raft_last_log_index",
            "Last index in this node's Raft log",
            t.last_log_index,
        ),
        (
            "amoskys_raft_commit_index",
            "Committed index: on the leader the highest index a majority of voters hold, \
             on a follower the leader's commit index it last received",
            t.commit_index,
        ),
        (
            "amoskys_raft_applied_index",
            "Last index applied to this node's state machine",
            t.applied_index,
        ),
        (
            "amoskys_raft_commit_lag_entries",
            "Entries in this node's log not committed yet",
            t.last_log_index.saturating_sub(t.commit_index),
        ),
        (
            "amoskys_raft_apply_lag_entries",
            "Committed entries not applied yet on this node",
            t.apply_lag(),
        ),
    ] {
        let g = ConstGauge::new(value);
        g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
    }
    let changes = ConstCounter::new(t.leader_changes);
    changes.encode(encoder.encode_descriptor(
        "amoskys_raft_leader_changes",
        "Changes of the Raft leader this node has seen since it started",
        None,
        changes.metric_type(),
    )?)?;
    let mut lag = encoder.encode_descriptor(
        "amoskys_raft_replication_lag_entries",
        "On the leader: entries of its log a member does not hold yet",
        None,
        ConstGauge::new(0u64).metric_type(),
    )?;
    for (member, behind) in &t.replication_lag {
        let member = member.to_string();
        ConstGauge::new(*behind).encode(lag.encode_family(&[("member", member.as_str())])?)?;
    }
    Ok(())
}
