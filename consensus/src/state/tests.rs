use super::*;

fn model(parent: Option<u64>) -> NewModel {
    NewModel {
        sha256: "ab".repeat(32),
        schema: "source@1".into(),
        parent,
        round: None,
        participants: vec![NodeId::from(1)],
        metrics: BTreeMap::from([("roc_auc".into(), 0.99)]),
        author: NodeId::from(1),
        time_ns: 5,
        activate: false,
    }
}

#[test]
fn policy_versions_count_up_and_history_is_bounded() {
    let mut s = ClusterState::default();
    for i in 0..(POLICY_HISTORY as u64 + 5) {
        let out = s.apply(&Command::SetPolicy {
            document: format!("v = {i}"),
            author: NodeId::from(1),
            time_ns: i,
        });
        assert_eq!(out, Outcome::Policy { version: i + 1 });
    }
    assert_eq!(s.policies.len(), POLICY_HISTORY);
    assert_eq!(
        s.policy().map(|p| p.version),
        Some(POLICY_HISTORY as u64 + 5)
    );
    let big = "x".repeat(MAX_POLICY_BYTES + 1);
    let before = s.clone();
    let out = s.apply(&Command::SetPolicy {
        document: big,
        author: NodeId::from(1),
        time_ns: 0,
    });
    assert!(matches!(out, Outcome::Rejected(_)));
    assert_eq!(s, before, "a rejected command changes nothing");
}

#[test]
fn models_register_activate_and_roll_back() {
    let mut s = ClusterState::default();
    assert_eq!(
        s.apply(&Command::RegisterModel(model(None))),
        Outcome::Model { version: 1 }
    );
    let mut m2 = model(Some(1));
    m2.activate = true;
    assert_eq!(
        s.apply(&Command::RegisterModel(m2)),
        Outcome::Model { version: 2 }
    );
    assert_eq!(s.active_model, Some(2));
    let back = Command::ActivateModel {
        version: 1,
        by: NodeId::from(2),
        time_ns: 9,
    };
    assert_eq!(s.apply(&back), Outcome::Activated { version: 1 });
    assert_eq!(s.active_model().map(|m| m.version), Some(1));
    let missing = Command::ActivateModel {
        version: 7,
        by: NodeId::from(2),
        time_ns: 9,
    };
    assert!(matches!(s.apply(&missing), Outcome::Rejected(_)));
    assert!(matches!(
        s.apply(&Command::RegisterModel(model(Some(42)))),
        Outcome::Rejected(_)
    ));
    let mut bad = model(None);
    bad.sha256 = "zz".into();
    assert!(matches!(
        s.apply(&Command::RegisterModel(bad)),
        Outcome::Rejected(_)
    ));
}

#[test]
fn rounds_open_and_end_with_a_model_or_abandoned() {
    let mut s = ClusterState::default();
    let round = NewRound {
        kind: "source".into(),
        base: None,
        participants: vec![NodeId::from(1), NodeId::from(2)],
        aggregator: NodeId::from(1),
        deadline_ns: 10,
        spec: "{}".into(),
        started_by: NodeId::from(1),
        time_ns: 1,
    };
    assert_eq!(
        s.apply(&Command::StartRound(round.clone())),
        Outcome::Round { id: 1 }
    );
    assert_eq!(
        s.apply(&Command::StartRound(round.clone())),
        Outcome::Round { id: 2 }
    );
    let mut m = model(None);
    m.round = Some(1);
    assert_eq!(
        s.apply(&Command::RegisterModel(m)),
        Outcome::Model { version: 1 }
    );
    assert_eq!(s.rounds[&1].status, RoundStatus::Done { version: 1 });
    let abandon = |id| Command::AbandonRound {
        id,
        reason: "1 of 2 updates".into(),
        time_ns: 11,
    };
    assert_eq!(s.apply(&abandon(2)), Outcome::Abandoned { id: 2 });
    assert!(matches!(s.apply(&abandon(1)), Outcome::Rejected(_)));
    let mut bad = round;
    bad.base = Some(9);
    assert!(matches!(
        s.apply(&Command::StartRound(bad)),
        Outcome::Rejected(_)
    ));
}

#[test]
fn removal_is_remembered_until_admitted_again() {
    let mut s = ClusterState::default();
    let n = NodeId::from(3);
    let admit = Command::Admit {
        node: n,
        addr: "/ip4/127.0.0.1/tcp/1".into(),
        by: NodeId::from(1),
        time_ns: 1,
    };
    s.apply(&admit);
    s.apply(&Command::Remove {
        node: n,
        by: NodeId::from(1),
        time_ns: 2,
    });
    assert!(s.removed.contains_key(&n) && !s.members.contains_key(&n));
    s.apply(&admit);
    assert!(!s.removed.contains_key(&n) && s.members.contains_key(&n));
}
