use super::*;

const SEC: u64 = 1_000_000_000;

fn node(n: u64) -> NodeId {
    NodeId::from(n)
}

/// An approval from node `n` by operator `op<n>` with its own key, at `t`
/// seconds.
fn by(n: u64, t: u64) -> Approval {
    Approval {
        node: node(n),
        operator: format!("op{n}"),
        key: format!("{n:064x}"),
        time_ns: t * SEC,
    }
}

fn set_policy(doc: &str) -> Command {
    Command::SetPolicy {
        document: doc.into(),
        author: node(1),
        time_ns: 0,
    }
}

/// Proposes `cmd` from node 1 at 10 s, needing `needed`, for an hour.
fn propose(s: &mut ClusterState, cmd: Command, needed: u32) -> u64 {
    let out = s.apply(&Command::Propose(Box::new(NewProposal {
        command: cmd,
        needed,
        expires_ns: 3610 * SEC,
        by: by(1, 10),
    })));
    match out {
        Outcome::Proposal {
            id,
            approvals: 1,
            needed: n,
        } if n == needed => id,
        other => panic!("not proposed: {other:?}"),
    }
}

fn approve(s: &mut ClusterState, id: u64, a: Approval) -> Outcome {
    s.apply(&Command::Approve { id, approval: a })
}

fn rejected(out: Outcome, needle: &str) {
    match out {
        Outcome::Rejected(r) => assert!(r.contains(needle), "{needle} not in: {r}"),
        other => panic!("accepted: {other:?}"),
    }
}

#[test]
fn a_change_applies_only_with_admins_of_k_distinct_nodes() {
    let mut s = ClusterState::default();
    let id = propose(&mut s, set_policy("[rules]\n"), 3);
    assert!(s.policy().is_none(), "a proposal is not in force");
    assert_eq!(
        approve(&mut s, id, by(2, 20)),
        Outcome::Proposal {
            id,
            approvals: 2,
            needed: 3
        }
    );
    assert!(
        s.policy().is_none(),
        "two of three approvals are not enough"
    );
    assert_eq!(
        approve(&mut s, id, by(3, 30)),
        Outcome::Passed {
            id,
            outcome: Box::new(Outcome::Policy { version: 1 })
        }
    );
    assert_eq!(s.policy().map(|p| p.document.as_str()), Some("[rules]\n"));
    let p = &s.governance.proposals[&id];
    assert_eq!(p.status, ProposalStatus::Applied);
    assert_eq!(p.closed_ns, Some(30 * SEC));
    assert_eq!(p.proposer().map(|a| a.node), Some(node(1)));
    rejected(approve(&mut s, id, by(4, 40)), "already closed (applied)");
}

#[test]
fn the_same_node_or_operator_approving_twice_counts_once() {
    let mut s = ClusterState::default();
    let id = propose(&mut s, set_policy("x"), 2);
    let before = s.clone();
    // The proposer again, and another operator on the proposer's node.
    rejected(approve(&mut s, id, by(1, 11)), "already approved");
    let mut same_node = by(5, 12);
    same_node.node = node(1);
    rejected(
        approve(&mut s, id, same_node),
        "from an admin on another node",
    );
    // The proposer's operator key from another node.
    let mut same_key = by(1, 13);
    same_key.node = node(2);
    rejected(
        approve(&mut s, id, same_key),
        "another operator must approve",
    );
    assert_eq!(s, before, "refused approvals change nothing");
    assert!(matches!(
        approve(&mut s, id, by(2, 14)),
        Outcome::Passed { .. }
    ));
}

#[test]
fn an_expired_proposal_never_applies() {
    let mut s = ClusterState::default();
    let id = propose(&mut s, set_policy("x"), 2);
    // An approval at the expiry itself is in time; one after it is not.
    let expires = s.governance.proposals[&id].expires_ns;
    let mut late = by(2, 0);
    late.time_ns = expires + 1;
    rejected(approve(&mut s, id, late), "expired");
    assert_eq!(s.governance.proposals[&id].status, ProposalStatus::Expired);
    assert!(s.policy().is_none());
    rejected(approve(&mut s, id, by(3, 20)), "expired");
    assert!(
        s.policy().is_none(),
        "not even by an approval dated earlier"
    );

    let id = propose(&mut s, set_policy("y"), 2);
    let mut on_time = by(2, 0);
    on_time.time_ns = s.governance.proposals[&id].expires_ns;
    assert!(matches!(
        approve(&mut s, id, on_time),
        Outcome::Passed { .. }
    ));
}

#[test]
fn proposals_are_checked_and_bounded() {
    let mut s = ClusterState::default();
    let new = |cmd: Command, needed: u32, expires_s: u64| {
        Command::Propose(Box::new(NewProposal {
            command: cmd,
            needed,
            expires_ns: expires_s * SEC,
            by: by(1, 10),
        }))
    };
    let op = Command::RemoveOperator {
        name: "a".into(),
        by: "b".into(),
        time_ns: 0,
    };
    rejected(s.apply(&new(op, 2, 100)), "can be proposed");
    rejected(s.apply(&new(set_policy("x"), 1, 100)), "committed directly");
    rejected(
        s.apply(&new(set_policy("x"), MAX_APPROVALS + 1, 100)),
        "approvals",
    );
    rejected(s.apply(&new(set_policy("x"), 2, 10)), "expires");
    rejected(
        s.apply(&new(set_policy("x"), 2, 10 + TTL_SECS_MAX + 1)),
        "expires",
    );
    let nested = new(set_policy("x"), 2, 100);
    rejected(s.apply(&new(nested, 2, 100)), "can be proposed");
    assert_eq!(s, ClusterState::default());
    for _ in 0..MAX_OPEN {
        propose(&mut s, set_policy("x"), 2);
    }
    rejected(s.apply(&new(set_policy("x"), 2, 100)), "proposals are open");
    // Once they expire, room is made and closed ones are kept only so far.
    for i in 0..(CLOSED_HISTORY as u64 + 5) {
        let t = 4000 + i;
        let out = s.apply(&Command::Propose(Box::new(NewProposal {
            command: set_policy("x"),
            needed: 2,
            expires_ns: (t + 1) * SEC,
            by: by(1, t),
        })));
        assert!(matches!(out, Outcome::Proposal { .. }), "{out:?}");
    }
    let closed = s.governance.proposals.len() - s.governance.open().count();
    assert_eq!(closed, CLOSED_HISTORY);
    assert!(s.governance.open().count() <= 2);
    assert_eq!(
        s.governance.last_id,
        MAX_OPEN as u64 + CLOSED_HISTORY as u64 + 5
    );
}

#[test]
fn a_removal_is_approved_then_run_and_a_gone_model_fails() {
    let mut s = ClusterState::default();
    let remove = Command::Remove {
        node: node(7),
        by: node(1),
        time_ns: 10,
    };
    let id = propose(&mut s, remove.clone(), 2);
    assert_eq!(
        approve(&mut s, id, by(2, 20)),
        Outcome::RemovalApproved { id, node: node(7) }
    );
    assert_eq!(approved_removal(&s, &node(7)), Some(id));
    assert!(!s.removed.contains_key(&node(7)), "the leader runs it");
    s.apply(&remove);
    assert_eq!(s.governance.proposals[&id].status, ProposalStatus::Applied);
    assert_eq!(approved_removal(&s, &node(7)), None);

    let activate = Command::ActivateModel {
        version: 3,
        by: node(1),
        time_ns: 10,
    };
    let id = propose(&mut s, activate, 2);
    match approve(&mut s, id, by(2, 20)) {
        Outcome::Passed { outcome, .. } => {
            assert!(matches!(*outcome, Outcome::Rejected(_)), "{outcome:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        s.governance.proposals[&id].status,
        ProposalStatus::Failed { .. }
    ));
}

#[test]
fn apply_is_deterministic_whatever_the_node_or_its_clock() {
    // The same commands, applied on two "nodes" at different wall-clock
    // moments, give the same state: nothing in apply reads the clock.
    let cmds = [
        Command::Propose(Box::new(NewProposal {
            command: set_policy("a"),
            needed: 2,
            expires_ns: 20 * SEC,
            by: by(1, 10),
        })),
        Command::Approve {
            id: 1,
            approval: by(2, 30),
        },
        Command::Propose(Box::new(NewProposal {
            command: set_policy("b"),
            needed: 2,
            expires_ns: 100 * SEC,
            by: by(1, 40),
        })),
        Command::Approve {
            id: 2,
            approval: by(3, 50),
        },
    ];
    let run = || {
        let mut s = ClusterState::default();
        let outs: Vec<Outcome> = cmds.iter().map(|c| s.apply(c)).collect();
        (s, outs)
    };
    let (a, outs_a) = run();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let (b, outs_b) = run();
    assert_eq!(a, b);
    assert_eq!(outs_a, outs_b);
    assert_eq!(a.governance.proposals[&1].status, ProposalStatus::Expired);
    assert_eq!(a.policy().map(|p| p.document.as_str()), Some("b"));
    // And through a snapshot's encoding.
    let json = serde_json::to_string(&a).expect("encodes");
    let back: ClusterState = serde_json::from_str(&json).expect("decodes");
    assert_eq!(back, a);
}

#[test]
fn the_policy_section_has_defaults_and_ranges() {
    let d = GovernancePolicy::default();
    assert_eq!((d.approvals, d.proposal_ttl_secs), (1, DEFAULT_TTL_SECS));
    assert!(d.problems().is_empty());
    let bad = GovernancePolicy {
        approvals: 0,
        proposal_ttl_secs: TTL_SECS_MAX + 1,
    };
    let p = bad.problems().join("; ");
    assert!(p.contains("governance.approvals: 0"), "{p}");
    assert!(p.contains("governance.proposal_ttl_secs"), "{p}");
    assert!(is_governed(&set_policy("x")));
}

#[test]
fn the_leader_refuses_plain_governed_writes_while_approvals_are_needed() {
    let policy = set_policy("x");
    assert_eq!(refuse_direct(1, &policy), None);
    let why = refuse_direct(2, &policy).expect("refused");
    assert!(why.contains("governance.approvals is 2"), "{why}");
    let op = Command::RemoveOperator {
        name: "a".into(),
        by: "b".into(),
        time_ns: 0,
    };
    assert_eq!(refuse_direct(3, &op), None, "not a governed change");
    let approval = Command::Approve {
        id: 1,
        approval: by(2, 1),
    };
    assert_eq!(refuse_direct(3, &approval), None, "approvals go through");

    let mut s = ClusterState::default();
    assert_eq!(refuse_removal(1, &s, &node(7)), None);
    assert!(refuse_removal(2, &s, &node(7)).is_some());
    let remove = Command::Remove {
        node: node(7),
        by: node(1),
        time_ns: 10,
    };
    let id = propose(&mut s, remove, 2);
    assert!(
        refuse_removal(2, &s, &node(7)).is_some(),
        "not yet approved"
    );
    approve(&mut s, id, by(2, 20));
    assert_eq!(refuse_removal(2, &s, &node(7)), None, "approved: it runs");
}
