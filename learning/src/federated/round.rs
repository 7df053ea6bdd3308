//! A federated round as its aggregator sees it: who may send, until when,
//! how many are needed. Pure; the node drives it with the clock and the
//! mesh.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::aggregate::Rule;
use super::dp::DpConfig;

/// A round as committed through Raft.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoundSpec {
    pub id: u64,
    /// Registry version the participants start from (none: untrained).
    pub base: Option<u64>,
    /// Participants' ids (peer ids).
    pub participants: BTreeSet<String>,
    /// Who combines the updates.
    pub aggregator: String,
    /// Updates arriving after this are refused.
    pub deadline_ns: u64,
    /// Fewer updates than this by the deadline abandon the round.
    pub min_participants: usize,
    pub rule: Rule,
    pub epochs: usize,
    pub dp: Option<DpConfig>,
}

/// Why an update was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("update for round {got}, this is round {expected}")]
    WrongRound { got: u64, expected: u64 },
    #[error("{0} is not a participant of this round")]
    NotParticipant(String),
    #[error("the deadline has passed")]
    Late,
    #[error("{0} already sent its update")]
    Duplicate(String),
    #[error("the round is closed")]
    Closed,
}

/// How a round ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Closed<U> {
    /// Enough updates: combine these (in participant order).
    Complete {
        updates: Vec<(String, U)>,
        missing: Vec<String>,
    },
    /// Too few by the deadline.
    Abandoned { reason: String, received: usize },
}

/// Collects updates for one round.
#[derive(Debug)]
pub struct Collector<U> {
    spec: RoundSpec,
    got: BTreeMap<String, U>,
    closed: bool,
}

impl<U> Collector<U> {
    pub fn new(spec: RoundSpec) -> Self {
        Self {
            spec,
            got: BTreeMap::new(),
            closed: false,
        }
    }

    pub fn spec(&self) -> &RoundSpec {
        &self.spec
    }

    /// Takes `update` from `from` for `round` at `now_ns`.
    pub fn offer(&mut self, from: &str, round: u64, update: U, now_ns: u64) -> Result<(), Refused> {
        if self.closed {
            return Err(Refused::Closed);
        }
        if round != self.spec.id {
            return Err(Refused::WrongRound {
                got: round,
                expected: self.spec.id,
            });
        }
        if !self.spec.participants.contains(from) {
            return Err(Refused::NotParticipant(from.to_owned()));
        }
        if now_ns > self.spec.deadline_ns {
            return Err(Refused::Late);
        }
        if self.got.contains_key(from) {
            return Err(Refused::Duplicate(from.to_owned()));
        }
        self.got.insert(from.to_owned(), update);
        Ok(())
    }

    /// Every participant has sent: no need to wait for the deadline.
    pub fn all_in(&self) -> bool {
        self.got.len() == self.spec.participants.len()
    }

    pub fn received(&self) -> usize {
        self.got.len()
    }

    /// Ends the round (at the deadline, or once all are in).
    pub fn close(&mut self) -> Closed<U> {
        self.closed = true;
        let got = std::mem::take(&mut self.got);
        if got.len() < self.spec.min_participants.max(1) {
            return Closed::Abandoned {
                reason: format!(
                    "{} of {} updates by the deadline, {} needed",
                    got.len(),
                    self.spec.participants.len(),
                    self.spec.min_participants
                ),
                received: got.len(),
            };
        }
        let missing = self
            .spec
            .participants
            .iter()
            .filter(|p| !got.contains_key(*p))
            .cloned()
            .collect();
        Closed::Complete {
            updates: got.into_iter().collect(),
            missing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> RoundSpec {
        RoundSpec {
            id: 3,
            base: Some(2),
            participants: ["a", "b", "c"].iter().map(|s| s.to_string()).collect(),
            aggregator: "a".into(),
            deadline_ns: 100,
            min_participants: 2,
            rule: Rule::FedAvg,
            epochs: 1,
            dp: None,
        }
    }

    #[test]
    fn a_round_takes_each_participant_once_before_the_deadline() {
        let mut c = Collector::new(spec());
        assert_eq!(c.offer("a", 3, 1, 10), Ok(()));
        assert_eq!(c.offer("a", 3, 1, 11), Err(Refused::Duplicate("a".into())));
        assert_eq!(
            c.offer("x", 3, 1, 11),
            Err(Refused::NotParticipant("x".into()))
        );
        assert_eq!(
            c.offer("b", 2, 1, 11),
            Err(Refused::WrongRound {
                got: 2,
                expected: 3
            })
        );
        assert_eq!(c.offer("b", 3, 1, 101), Err(Refused::Late));
        assert!(!c.all_in());
        assert!(matches!(c.close(), Closed::Abandoned { received: 1, .. }));
        assert_eq!(c.offer("c", 3, 1, 12), Err(Refused::Closed));
    }

    #[test]
    fn a_late_participant_never_stalls_the_round() {
        let mut c = Collector::new(spec());
        c.offer("a", 3, 1, 10).expect("a");
        c.offer("c", 3, 2, 20).expect("c");
        match c.close() {
            Closed::Complete { updates, missing } => {
                assert_eq!(updates.len(), 2);
                assert_eq!(missing, vec!["b".to_string()]);
            }
            other => panic!("{other:?}"),
        }
    }
}
