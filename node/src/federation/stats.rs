//! Counters of the node's federated rounds, and their Prometheus metrics
//! (`amoskys_federation_*`, read at scrape time).

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;

/// The kinds of round: an anomaly model, or a supervised head.
pub const KINDS: [&str; 2] = ["model", "head"];

/// How a round this node aggregated ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoundEnd {
    /// Its model was committed to the registry.
    Committed,
    /// Its abandonment was committed (too few updates, or they could not
    /// be combined).
    Abandoned,
    /// The cluster refused its end (the round was already closed).
    Rejected,
    /// Its end could not be committed (no quorum, no leader, time out).
    Failed,
}

impl RoundEnd {
    pub const ALL: [RoundEnd; 4] = [
        RoundEnd::Committed,
        RoundEnd::Abandoned,
        RoundEnd::Rejected,
        RoundEnd::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RoundEnd::Committed => "committed",
            RoundEnd::Abandoned => "abandoned",
            RoundEnd::Rejected => "rejected",
            RoundEnd::Failed => "failed",
        }
    }
}

/// Rounds by kind and end, and update bytes each way.
#[derive(Debug, Default)]
pub struct FederationStats {
    rounds: [[AtomicU64; RoundEnd::ALL.len()]; KINDS.len()],
    sent_bytes: AtomicU64,
    received_bytes: AtomicU64,
}

impl FederationStats {
    /// Counts a round of `kind` (`model` or `head`; anything else counts
    /// as `model`) that ended as `end`.
    pub fn round_ended(&self, kind: &str, end: RoundEnd) {
        let k = usize::from(kind == KINDS[1]);
        self.rounds[k][end as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Rounds of `kind` that ended as `end`.
    pub fn rounds(&self, kind: &str, end: RoundEnd) -> u64 {
        let k = usize::from(kind == KINDS[1]);
        self.rounds[k][end as usize].load(Ordering::Relaxed)
    }

    /// Counts the bytes of an update sent to an aggregator.
    pub fn sent(&self, bytes: usize) {
        self.sent_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts the bytes of an update a peer sent this node (accepted or not).
    pub fn received(&self, bytes: usize) {
        self.received_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// `amoskys_federation_rounds_total{kind,outcome}` and
    /// `amoskys_federation_update_bytes_total{direction}`.
    pub fn encode_metrics(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut rounds = encoder.encode_descriptor(
            "amoskys_federation_rounds",
            "Federated rounds this node aggregated, by kind and how they ended",
            None,
            ConstCounter::new(0u64).metric_type(),
        )?;
        for kind in KINDS {
            for end in RoundEnd::ALL {
                ConstCounter::new(self.rounds(kind, end))
                    .encode(rounds.encode_family(&[("kind", kind), ("outcome", end.as_str())])?)?;
            }
        }
        let mut bytes = encoder.encode_descriptor(
            "amoskys_federation_update_bytes",
            "Bytes of signed federated updates sent to aggregators and received from sites",
            None,
            ConstCounter::new(0u64).metric_type(),
        )?;
        for (direction, counter) in [
            ("sent", &self.sent_bytes),
            ("received", &self.received_bytes),
        ] {
            ConstCounter::new(counter.load(Ordering::Relaxed))
                .encode(bytes.encode_family(&[("direction", direction)])?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_are_counted_by_kind_and_end() {
        let s = FederationStats::default();
        s.round_ended("model", RoundEnd::Committed);
        s.round_ended("head", RoundEnd::Abandoned);
        s.round_ended("head", RoundEnd::Abandoned);
        assert_eq!(s.rounds("model", RoundEnd::Committed), 1);
        assert_eq!(s.rounds("head", RoundEnd::Abandoned), 2);
        assert_eq!(s.rounds("head", RoundEnd::Committed), 0);
        s.sent(10);
        s.received(7);
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(Probe(s)));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).expect("encodes");
        for line in [
            "amoskys_federation_rounds_total{kind=\"model\",outcome=\"committed\"} 1",
            "amoskys_federation_rounds_total{kind=\"head\",outcome=\"abandoned\"} 2",
            "amoskys_federation_rounds_total{kind=\"model\",outcome=\"failed\"} 0",
            "amoskys_federation_update_bytes_total{direction=\"sent\"} 10",
            "amoskys_federation_update_bytes_total{direction=\"received\"} 7",
        ] {
            assert!(out.contains(line), "{line} missing from\n{out}");
        }
    }

    #[derive(Debug)]
    struct Probe(FederationStats);

    impl prometheus_client::collector::Collector for Probe {
        fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            self.0.encode_metrics(&mut encoder)
        }
    }
}
