//! Unit tests of the round schedule.

use super::*;

fn round(id: u64, kind: &str, time_ns: u64, status: RoundStatus) -> (u64, RoundRecord) {
    (
        id,
        RoundRecord {
            id,
            round: NewRound {
                kind: kind.into(),
                base: None,
                participants: vec![NodeId::from(1)],
                aggregator: NodeId::from(1),
                deadline_ns: time_ns + 10,
                spec: "{}".into(),
                started_by: NodeId::from(1),
                time_ns,
            },
            status,
        },
    )
}

#[test]
fn a_scheduled_round_is_due_once_the_last_is_old_and_none_is_open() {
    let mut rounds = BTreeMap::new();
    assert!(due(&rounds, "device", 100, 1_000), "never run: due");
    rounds.extend([round(1, "device", 950, RoundStatus::Done { version: 1 })]);
    assert!(!due(&rounds, "device", 100, 1_000), "ran 50 ago");
    assert!(due(&rounds, "device", 100, 1_050));
    assert!(due(&rounds, "source", 100, 1_000), "other kinds are apart");
    rounds.extend([round(2, "device", 500, RoundStatus::Open)]);
    assert!(!due(&rounds, "device", 100, 5_000), "one is still open");
}
