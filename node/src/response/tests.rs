//! Unit tests of the pure response logic: subjects, the guard, the plan,
//! the `[response]` section, the engine, and the decisions document.

use std::net::IpAddr;

use amoskys_mesh::{Alert, AlertBody};
use ed25519_dalek::SigningKey;

use super::decisions::{Decision, Guard, Refusal, Subject, plan, seconds_left};
use super::engine::{Engine, SETTLE_NS};
use super::policy::{ResponsePolicy, ResponseRule};
use super::{Action, ip_in, parse_own};
use crate::workspace::decisions::Decisions;

fn s(text: &str) -> Subject {
    text.parse().expect("a subject")
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("an address")
}

fn decision(subject: &str, created_ms: u64, expires_ms: u64) -> Decision {
    Decision {
        subject: s(subject),
        action: Action::BlockSource,
        reason: "test".into(),
        alerts: vec![],
        origin: "operator:alice@node".into(),
        created_ms,
        expires_ms,
    }
}

#[test]
fn subjects_parse_normalise_and_nest() {
    assert_eq!(s("10.1.2.3").to_string(), "10.1.2.3");
    assert_eq!(s("10.1.2.3/24").to_string(), "10.1.2.0/24");
    assert_eq!(s("10.1.2.3/32").to_string(), "10.1.2.3");
    assert_eq!(s("2001:db8::1/48").to_string(), "2001:db8::/48");
    assert_eq!(s("::ffff:10.0.0.1").to_string(), "10.0.0.1");
    assert_eq!(s("0.0.0.0/0").to_string(), "0.0.0.0/0");
    for bad in [
        "",
        "10.0.0",
        "10.0.0.1/33",
        "::1/129",
        "10.0.0.0/",
        "10.0.0.0/-1",
        "x/8",
        "10.0.0.0/08x",
    ] {
        let err = bad.parse::<Subject>().expect_err(bad).to_string();
        assert!(!err.is_empty(), "{bad}");
    }
    assert!(s("10.0.0.0/8").covers(&s("10.2.0.0/16")));
    assert!(!s("10.2.0.0/16").covers(&s("10.0.0.0/8")));
    assert!(s("10.2.0.0/16").overlaps(&s("10.0.0.0/8")));
    assert!(!s("10.0.0.0/8").overlaps(&s("11.0.0.0/8")));
    assert!(!s("0.0.0.0/0").contains(ip("::1")));
    assert!(s("10.0.0.0/8").contains(ip("::ffff:10.9.9.9")));
    let json = serde_json::to_string(&decision("10.0.0.0/8", 1, 2)).expect("json");
    let back: Decision = serde_json::from_str(&json).expect("parses");
    assert_eq!(back.subject, s("10.0.0.0/8"));
    assert!(serde_json::from_str::<Decision>(&json.replace("10.0.0.0/8", "nope")).is_err());
}

#[test]
fn the_guard_never_blocks_loopback_own_member_or_listed_addresses() {
    let g = Guard::new(
        vec![ip("10.9.0.10"), ip("fd00::2")],
        vec![ip("10.9.0.11")],
        vec![s("192.0.2.0/24")],
    );
    let refused = |t: &str| g.check(&s(t)).expect_err(t);
    assert!(matches!(refused("127.0.0.1"), Refusal::Loopback(_)));
    assert!(matches!(refused("127.5.0.0/16"), Refusal::Loopback(_)));
    assert!(matches!(refused("::1"), Refusal::Loopback(_)));
    assert!(matches!(refused("0.0.0.0/0"), Refusal::Loopback(_)));
    assert!(matches!(refused("10.9.0.10"), Refusal::Own(_)));
    assert!(matches!(refused("fd00::/64"), Refusal::Own(_)));
    assert!(matches!(refused("10.9.0.11"), Refusal::Member(_)));
    assert!(matches!(refused("10.9.0.0/24"), Refusal::Own(_)));
    assert!(matches!(refused("192.0.2.7"), Refusal::NeverBlock(_)));
    assert!(matches!(refused("192.0.0.0/16"), Refusal::NeverBlock(_)));
    assert_eq!(refused("10.9.0.11").label(), "member");
    assert_eq!(g.check(&s("10.9.0.2")), Ok(()));
    assert_eq!(g.check(&s("198.51.100.0/24")), Ok(()));
}

#[test]
fn the_plan_keeps_live_allowed_decisions_within_the_limit_without_nesting() {
    let g = Guard::new(vec![ip("10.0.0.1")], vec![], vec![]);
    let now = 10_000;
    let ds = vec![
        decision("203.0.113.7", 1, 20_000),
        decision("203.0.113.0/24", 2, 15_000),
        decision("198.51.100.1", 3, 9_000),
        decision("10.0.0.1", 4, 20_000),
        decision("192.0.2.1", 5, 30_000),
        decision("192.0.2.2", 6, 30_000),
    ];
    let p = plan(&ds, &g, 3, now);
    // The expired one is gone, the own address refused, the /24 covers
    // the address inside it, the sixth is over the limit of 3.
    assert_eq!(
        p.enforce,
        vec![(s("203.0.113.0/24"), 15_000), (s("192.0.2.1"), 30_000)]
    );
    assert_eq!(p.refused.len(), 1);
    assert_eq!(p.refused[0].0, s("10.0.0.1"));
    assert_eq!(p.over_limit, vec![s("192.0.2.2")]);
    assert_eq!(seconds_left(15_000, now), 5);
    assert_eq!(seconds_left(10_001, now), 1);
    assert_eq!(seconds_left(5, now), 1);
    assert!(plan(&ds, &g, 10, 40_000).enforce.is_empty());
}

#[test]
fn the_response_section_parses_and_names_every_problem() {
    let text = "[response]\nmode = \"enforce\"\nnever_block = [\"192.0.2.0/24\"]\nrules = [{ rule = \"port_scan\", min_severity = \"medium\", min_nodes = 2, action = \"block_source\", duration = \"1h\" }]\n";
    let p = crate::policy::Policy::parse(text).expect("a response section");
    assert!(p.response.enforce());
    assert_eq!(p.response.rules[0].min_nodes, 2);
    assert_eq!(p.response.rules[0].duration().as_secs(), 3600);
    assert_eq!(p.response.never_block(), vec![s("192.0.2.0/24")]);
    let back = crate::policy::Policy::parse(&p.to_toml()).expect("round trip");
    assert_eq!(back.response, p.response);
    let short = crate::policy::Policy::parse(
        "[response]\nrules = [{ rule = \"brute_force\", duration = \"5s\" }]\n",
    )
    .expect("defaults");
    assert_eq!(short.response.rules[0].min_severity, "medium");
    assert_eq!(short.response.rules[0].min_nodes, 1);
    assert!(!short.response.enforce());
    let bad = "[response]\nmode = \"block\"\nmax_decisions = 0\nnever_block = [\"nope\"]\nrules = [{ rule = \"\", min_severity = \"dire\", min_nodes = 0, action = \"nuke\", duration = \"0s\" }, { rule = \"x\", duration = \"soon\" }]\n";
    let err = crate::policy::Policy::parse(bad).expect_err("bad section");
    for key in [
        "response.mode: ",
        "response.max_decisions: ",
        "response.never_block[0]: ",
        "response.rules[0].rule: ",
        "response.rules[0].min_severity: ",
        "response.rules[0].min_nodes: ",
        "response.rules[0].action: ",
        "response.rules[0].duration: ",
        "response.rules[1].duration: ",
    ] {
        assert!(err.contains(key), "{key} in {err}");
    }
    let unknown = crate::policy::Policy::parse(
        "[response]\nrules = [{ rule = \"x\", duration = \"1h\", extra = 1 }]\n",
    )
    .expect_err("unknown key");
    assert!(unknown.contains("extra"), "{unknown}");
}

fn rule(name: &str, min_nodes: usize) -> ResponseRule {
    ResponseRule {
        rule: name.into(),
        min_severity: "medium".into(),
        min_nodes,
        action: "block_source".into(),
        duration: "5s".into(),
    }
}

fn alert(key: &SigningKey, seq: u64, rule: &str, severity: &str, subject: &str, t: u64) -> Alert {
    Alert::sign(
        AlertBody {
            seq,
            time_ns: t,
            severity: severity.into(),
            category: "discovery".into(),
            technique: "T1046".into(),
            rule: rule.into(),
            score: 1.0,
            subject: subject.into(),
            evidence: vec![],
        },
        key,
    )
}

#[test]
fn one_node_rules_decide_on_the_origins_own_matching_alerts() {
    let (a, b) = (
        SigningKey::from_bytes(&[1; 32]),
        SigningKey::from_bytes(&[2; 32]),
    );
    let me = alert(&a, 0, "x", "low", "1.2.3.4", 0).origin;
    let policy = ResponsePolicy {
        rules: vec![rule("port_scan", 1)],
        ..ResponsePolicy::default()
    };
    let mut e = Engine::new(me.clone(), &policy, 600_000_000_000);
    let scan = alert(&a, 1, "port_scan_vertical", "high", "source_ip:10.0.0.9", 5);
    let made = e.observe(&scan, 1_000);
    assert_eq!(made.len(), 1);
    assert_eq!(made[0].subject, s("10.0.0.9"));
    assert_eq!(made[0].alerts, vec![scan.id.clone()]);
    assert_eq!(made[0].expires_ms, 6_000);
    assert!(
        made[0].origin.starts_with("rule:port_scan@"),
        "{}",
        made[0].origin
    );
    // Another node's alert, a low one, another rule, a subject that is not
    // an address, a rule that only starts alike: nothing.
    for other in [
        alert(&b, 1, "port_scan_vertical", "high", "10.0.0.9", 5),
        alert(&a, 2, "port_scan_vertical", "low", "10.0.0.9", 5),
        alert(&a, 3, "brute_force", "high", "10.0.0.9", 5),
        alert(&a, 4, "port_scan_vertical", "high", "host", 5),
        alert(
            &a,
            6,
            "port_scan_vertical",
            "high",
            "destination_ip:10.0.0.9",
            5,
        ),
        alert(
            &a,
            7,
            "port_scan_vertical",
            "high",
            "source_ip:h:0011223344556677",
            5,
        ),
        alert(&a, 5, "port_scanner", "high", "10.0.0.9", 5),
    ] {
        assert!(e.observe(&other, 1_000).is_empty(), "{}", other.body.rule);
    }
}

#[test]
fn campaign_rules_decide_once_k_distinct_nodes_reported_by_the_kth_origin() {
    let keys: Vec<SigningKey> = (1..=3u8)
        .map(|i| SigningKey::from_bytes(&[i; 32]))
        .collect();
    let ids: Vec<String> = keys
        .iter()
        .map(|k| alert(k, 0, "x", "low", "1.1.1.1", 0).origin)
        .collect();
    let policy = ResponsePolicy {
        rules: vec![rule("port_scan", 2)],
        ..ResponsePolicy::default()
    };
    let window = 600_000_000_000;
    let reports = [
        alert(
            &keys[0],
            1,
            "port_scan_vertical",
            "medium",
            "source_ip:10.0.0.9",
            1_000,
        ),
        alert(
            &keys[0],
            2,
            "port_scan_vertical",
            "medium",
            "source_ip:10.0.0.9",
            2_000,
        ),
        alert(
            &keys[1],
            1,
            "port_scan_horizontal",
            "high",
            "source_ip:10.0.0.9",
            3_000,
        ),
    ];
    let mut decided = Vec::new();
    for id in &ids {
        let mut e = Engine::new(id.clone(), &policy, window);
        for r in &reports {
            assert!(e.observe(r, 0).is_empty(), "no decision before k nodes");
        }
        assert!(e.ready(3_000 + SETTLE_NS - 1).is_empty(), "not settled");
        let made = e.ready(3_000 + SETTLE_NS);
        assert!(e.ready(3_000 + 2 * SETTLE_NS).is_empty(), "decided once");
        decided.push(made);
    }
    // Only the second node (the origin of the k-th report) decides.
    assert!(decided[0].is_empty() && decided[2].is_empty());
    assert_eq!(decided[1].len(), 1);
    let d = &decided[1][0];
    assert_eq!(d.subject, s("10.0.0.9"));
    assert_eq!(d.alerts, vec![reports[0].id.clone(), reports[2].id.clone()]);
}

#[test]
fn addresses_come_from_member_records_and_proc_files() {
    assert_eq!(ip_in("/ip4/10.1.0.10/tcp/7301"), Some(ip("10.1.0.10")));
    assert_eq!(ip_in("/ip6/fd00::1/udp/7301/quic-v1"), Some(ip("fd00::1")));
    assert_eq!(ip_in("10.1.0.10:7301"), Some(ip("10.1.0.10")));
    assert_eq!(ip_in("[fd00::1]:7301"), Some(ip("fd00::1")));
    assert_eq!(ip_in("10.1.0.10"), Some(ip("10.1.0.10")));
    assert_eq!(ip_in("node.example:7301"), None);
    assert_eq!(ip_in("/dns4/node.example/tcp/1"), None);
    let trie = "Main:\n  +-- 0.0.0.0/0 3 0 4\n     |-- 10.9.0.0\n        /24 link UNICAST\n     |-- 10.9.0.10\n        /32 host LOCAL\n     |-- 10.9.0.255\n        /32 link BROADCAST\nLocal:\n     |-- 10.9.0.10\n        /32 host LOCAL\n";
    let v6 = "00000000000000000000000000000001 01 80 10 80       lo\nfd000000000000000000000000000002 04 40 00 82     eth0\n";
    assert_eq!(
        parse_own(trie, v6),
        vec![ip("10.9.0.10"), ip("::1"), ip("fd00::2")]
    );
}

#[test]
fn the_decisions_document_lists_live_decisions_and_removes_with_tombstones() {
    let key = SigningKey::from_bytes(&[7; 32]);
    let mut doc = Decisions::new();
    let d = decision("203.0.113.0/24", 1_000, 60_000);
    let v = doc.put(&d, 1_000, &key).expect("written");
    assert_eq!(v.decision, d);
    assert_eq!(v.author, hex::encode(key.verifying_key().as_bytes()));
    assert_eq!(doc.list(2_000).len(), 1);
    assert_eq!(doc.live(2_000), vec![d.clone()]);
    assert!(doc.live(60_000).is_empty(), "expired");
    assert_eq!(doc.get(&s("203.0.113.0/24"), 2_000), Some(d.clone()));
    let gone = doc
        .remove(&s("203.0.113.0/24"), 3_000, &key)
        .expect("removed");
    assert_eq!(gone.map(|v| v.decision.subject), Some(s("203.0.113.0/24")));
    assert!(doc.list(3_000).is_empty());
    assert!(
        doc.remove(&s("203.0.113.0/24"), 4_000, &key)
            .expect("ok")
            .is_none()
    );
    let mut long = decision("203.0.113.9", 1, 2);
    long.reason = "x".repeat(super::decisions::MAX_REASON_BYTES + 1);
    assert!(doc.put(&long, 5_000, &key).is_err());
}

#[test]
fn without_nft_the_driver_says_what_to_install() {
    let nft = super::nft::Nft::new("/nonexistent/amoskys-test-nft", "amoskys_test");
    for err in [nft.probe(), nft.install(), nft.replace(&[]), nft.remove()] {
        let e = err.expect_err("no such program").to_string();
        assert!(e.contains("apt-get install nftables"), "{e}");
    }
}
