use super::*;
use crate::state::{ClusterState, Command};

fn key(seed: u8) -> String {
    let sk = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    hex::encode(sk.verifying_key().to_bytes())
}

fn set(name: &str, seed: u8, role: Role) -> Command {
    Command::SetOperator {
        name: name.into(),
        key: key(seed),
        role,
        by: "root".into(),
        time_ns: u64::from(seed),
    }
}

fn remove(name: &str) -> Command {
    Command::RemoveOperator {
        name: name.into(),
        by: "root".into(),
        time_ns: 9,
    }
}

/// Applies `cmd` and expects a refusal that leaves the state unchanged and
/// whose reason contains `needle`.
fn refused(s: &mut ClusterState, cmd: &Command, needle: &str) {
    let before = s.clone();
    match s.apply(cmd) {
        Outcome::Rejected(reason) => assert!(reason.contains(needle), "{reason}"),
        other => panic!("{cmd:?} was accepted: {other:?}"),
    }
    assert_eq!(*s, before, "a refused command changes nothing");
}

fn with_admin() -> ClusterState {
    let mut s = ClusterState::default();
    assert_eq!(
        s.apply(&set("alice", 1, Role::Admin)),
        Outcome::OperatorSet {
            name: "alice".into()
        }
    );
    s
}

#[test]
fn roles_are_ordered_and_named_in_snake_case() {
    assert!(Role::Admin > Role::Analyst && Role::Analyst > Role::Viewer);
    assert_eq!(
        serde_json::to_string(&Role::Analyst).unwrap(),
        "\"analyst\""
    );
    for role in [Role::Viewer, Role::Analyst, Role::Admin] {
        assert_eq!(role.as_str().parse::<Role>(), Ok(role));
    }
    assert!("Admin".parse::<Role>().is_err());
}

#[test]
fn operators_are_added_changed_and_removed() {
    let mut s = with_admin();
    assert_eq!(
        s.apply(&set("bob.smith-2_x", 2, Role::Viewer)),
        Outcome::OperatorSet {
            name: "bob.smith-2_x".into()
        }
    );
    // A role and key change keeps who added the operator and when.
    s.apply(&Command::SetOperator {
        name: "bob.smith-2_x".into(),
        key: key(3),
        role: Role::Analyst,
        by: "alice".into(),
        time_ns: 77,
    });
    let bob = &s.operators["bob.smith-2_x"];
    assert_eq!(
        (bob.role, bob.key.as_str()),
        (Role::Analyst, key(3).as_str())
    );
    assert_eq!((bob.added_by.as_str(), bob.added_ns), ("root", 2));
    assert_eq!(
        s.apply(&remove("bob.smith-2_x")),
        Outcome::OperatorRemoved {
            name: "bob.smith-2_x".into()
        }
    );
    assert_eq!(s.operators.keys().collect::<Vec<_>>(), ["alice"]);
}

#[test]
fn names_are_short_lowercase_and_plain() {
    let mut s = with_admin();
    let long = "a".repeat(MAX_NAME + 1);
    for bad in [
        "",
        "Alice",
        "a b",
        "-rf",
        ".hidden",
        "é",
        "a/b",
        long.as_str(),
    ] {
        refused(&mut s, &set(bad, 2, Role::Viewer), "operator name");
    }
    let longest = "a".repeat(MAX_NAME);
    assert!(matches!(
        s.apply(&set(&longest, 2, Role::Viewer)),
        Outcome::OperatorSet { .. }
    ));
}

#[test]
fn keys_are_lowercase_hex_ed25519_points() {
    let mut s = with_admin();
    let upper = key(2).to_uppercase();
    let short = key(2)[..62].to_owned();
    for bad in [upper.as_str(), short.as_str(), "", &"g".repeat(64)] {
        refused(
            &mut s,
            &Command::SetOperator {
                name: "bob".into(),
                key: bad.into(),
                role: Role::Viewer,
                by: "alice".into(),
                time_ns: 1,
            },
            "64 lowercase hex",
        );
    }
    // About half of all y coordinates are not on the curve.
    let off_curve = (0u8..=255)
        .map(|i| {
            let mut b = [0u8; 32];
            b[0] = i;
            b
        })
        .find(|b| ed25519_dalek::VerifyingKey::from_bytes(b).is_err())
        .map(hex::encode)
        .expect("an off-curve y");
    assert!(check_key(&off_curve).is_err_and(|e| e.contains("not an ed25519")));
    let mut cmd = set("bob", 2, Role::Viewer);
    if let Command::SetOperator { key, .. } = &mut cmd {
        *key = off_curve;
    }
    refused(&mut s, &cmd, "not an ed25519 public key");
}

#[test]
fn one_key_belongs_to_one_operator() {
    let mut s = with_admin();
    refused(
        &mut s,
        &set("bob", 1, Role::Viewer),
        "already belongs to operator alice",
    );
    // The same operator keeping its key is not a conflict.
    assert!(matches!(
        s.apply(&set("alice", 1, Role::Admin)),
        Outcome::OperatorSet { .. }
    ));
}

#[test]
fn the_last_admin_stays() {
    let mut s = ClusterState::default();
    refused(
        &mut s,
        &set("bob", 2, Role::Viewer),
        "first operator must be an admin",
    );
    let mut s = with_admin();
    refused(&mut s, &remove("alice"), "the last admin cannot be removed");
    refused(
        &mut s,
        &set("alice", 1, Role::Analyst),
        "the last admin cannot be demoted",
    );
    s.apply(&set("carol", 3, Role::Admin));
    assert!(matches!(
        s.apply(&set("alice", 1, Role::Viewer)),
        Outcome::OperatorSet { .. }
    ));
    refused(&mut s, &remove("carol"), "the last admin cannot be removed");
    assert!(matches!(
        s.apply(&remove("alice")),
        Outcome::OperatorRemoved { .. }
    ));
}

#[test]
fn removing_an_unknown_operator_is_refused() {
    let mut s = with_admin();
    refused(&mut s, &remove("nobody"), "no operator named `nobody`");
}

#[test]
fn the_operator_count_and_by_are_bounded() {
    let mut s = with_admin();
    for i in 1..MAX_OPERATORS {
        let mut seed = [7u8; 32];
        seed[..2].copy_from_slice(&u16::try_from(i).unwrap().to_le_bytes());
        let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
        let out = s.apply(&Command::SetOperator {
            name: format!("op{i}"),
            key: hex::encode(sk.verifying_key().to_bytes()),
            role: Role::Viewer,
            by: "alice".into(),
            time_ns: 1,
        });
        assert!(matches!(out, Outcome::OperatorSet { .. }), "{out:?}");
    }
    refused(
        &mut s,
        &set("onemore", 200, Role::Viewer),
        "already 1024 operators",
    );
    let mut s = with_admin();
    let mut cmd = set("bob", 2, Role::Viewer);
    if let Command::SetOperator { by, .. } = &mut cmd {
        *by = String::new();
    }
    refused(&mut s, &cmd, "`by` must be");
}

#[test]
fn states_written_before_operators_still_load() {
    let mut s = with_admin();
    s.apply(&Command::SetPolicy {
        document: "x = 1".into(),
        author: crate::NodeId::from(1),
        time_ns: 1,
    });
    let mut json = serde_json::to_value(&s).unwrap();
    json.as_object_mut().unwrap().remove("operators");
    let old: ClusterState = serde_json::from_value(json).unwrap();
    assert!(old.operators.is_empty());
    assert_eq!(old.policies, s.policies);
    let again: ClusterState = serde_json::from_slice(&serde_json::to_vec(&s).unwrap()).unwrap();
    assert_eq!(again, s);
}
