//! Changes that need admins of several nodes, on three real nodes: with
//! `[governance] approvals = 2`, one admin's policy change is a proposal
//! and is in force nowhere; an admin on another node approves and it is in
//! force on every node; the leader refuses the change sent to Raft as a
//! plain write; approving twice from one node counts once; a
//! model activation and a member removal wait for approval too; an expired
//! proposal never applies; a viewer or an analyst cannot approve.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use amoskys_node::Node;
use common::{eventually, get_json, send};
use reqwest::Method;

async fn voters(n: &Node) -> usize {
    common::voters(n.api_addr()).await
}

/// The committed policy version and document as `n` sees it.
async fn committed(n: &Node) -> (Option<u64>, String) {
    let (_, v) = get_json(n.api_addr(), "/api/v1/policy").await;
    (
        v["committed"]["version"].as_u64(),
        v["committed"]["document"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// Waits until every node runs committed policy `version`.
async fn in_force_everywhere(nodes: &[&Node], version: u64) {
    for n in nodes {
        let seen = eventually(Duration::from_secs(15), || async {
            let (_, v) = get_json(n.api_addr(), "/api/v1/policy").await;
            (v["in_force"]["version"] == version).then_some(())
        })
        .await;
        assert!(
            seen.is_some(),
            "policy {version} in force on {}",
            n.api_addr()
        );
    }
}

async fn set_policy(n: &Node, doc: &str) -> (u16, serde_json::Value) {
    send(
        n.api_addr(),
        Method::PUT,
        "/api/v1/policy",
        Some(doc.into()),
    )
    .await
}

async fn approve(n: &Node, id: u64) -> (u16, serde_json::Value) {
    let path = format!("/api/v1/proposals/{id}/approve");
    send(n.api_addr(), Method::POST, &path, None).await
}

/// An approval signed by `key` (an operator that is not the node's local
/// admin).
async fn approve_as(addr: SocketAddr, key: &ed25519_dalek::SigningKey, id: u64) -> u16 {
    let (node_id, _) = common::health(addr).await;
    let path = format!("/api/v1/proposals/{id}/approve");
    let auth = common::authorization(key, &node_id, "POST", &path, b"");
    reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .header("authorization", auth)
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .expect("API answers")
        .status()
        .as_u16()
}

fn proposal_id(body: &serde_json::Value) -> u64 {
    body["proposal"].as_u64().expect("a proposal id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_needs_admins_of_two_nodes_and_an_expired_one_never_applies() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_test_writer()
        .try_init();
    let (dirs, admitted) = common::keyed_dirs(3);
    let [a, b, c] = common::three_voters(&dirs, &admitted).await;
    let all = [&a, &b, &c];
    common::first_admin(a.api_addr()).await;

    // More approvals than voters could never pass: refused, naming the key.
    let (status, body) = set_policy(&a, "[governance]\napprovals = 4\n").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("governance.approvals")),
        "{body}"
    );
    // With the default of one approval, a policy applies at once.
    let (status, body) = set_policy(&a, "[governance]\napprovals = 2\n").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], 1);
    in_force_everywhere(&all, 1).await;

    // Now one admin's change is a proposal, in force nowhere.
    let doc2 = "[governance]\napprovals = 2\n[rules]\nscan_min_ports = 9\n";
    let (status, body) = set_policy(&a, doc2).await;
    assert_eq!(status, 202, "{body}");
    let first = proposal_id(&body);
    assert_eq!(body["needed"], 2, "{body}");
    for n in all {
        let (_, v) = get_json(n.api_addr(), "/api/v1/proposals?consistent=true").await;
        let p = &v["proposals"][0];
        assert_eq!(p["id"], first, "{v}");
        assert_eq!(p["status"], "open", "{v}");
        assert_eq!(p["document"], doc2, "{v}");
        assert_eq!(committed(n).await.0, Some(1), "not in force anywhere");
    }
    // A member sending the change to Raft as a plain write, past the API
    // (as a compromised follower could), is refused by the leader.
    let follower = all
        .iter()
        .find(|n| {
            let c = n.cluster().expect("cluster");
            c.raft().metrics().borrow().current_leader != Some(c.id())
        })
        .expect("a follower");
    let cluster = follower.cluster().expect("cluster");
    let plain = amoskys_consensus::Command::SetPolicy {
        document: "[rules]\nscan_min_ports = 3\n".into(),
        author: cluster.id(),
        time_ns: 1,
    };
    match cluster.propose(plain).await {
        Err(amoskys_consensus::ClusterError::Rejected(why)) => {
            assert!(why.contains("needs the approval"), "{why}");
        }
        other => panic!("a plain governed write was not refused: {other:?}"),
    }
    assert_eq!(committed(&a).await.0, Some(1));

    // The proposer's node approving again counts once.
    let (status, body) = approve(&a, first).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("already approved")),
        "{body}"
    );

    // A viewer or an analyst cannot approve, whatever the node.
    let viewer = ed25519_dalek::SigningKey::from_bytes(&rand::random());
    let analyst = ed25519_dalek::SigningKey::from_bytes(&rand::random());
    for (name, key, role) in [("vic", &viewer, "viewer"), ("ann", &analyst, "analyst")] {
        let body = serde_json::json!({
            "name": name,
            "key": hex::encode(key.verifying_key().to_bytes()),
            "role": role,
        });
        let (status, v) = send(
            a.api_addr(),
            Method::POST,
            "/api/v1/operators",
            Some(body.to_string()),
        )
        .await;
        assert!(status == 200 || status == 201, "{name}: {status} {v}");
    }
    for key in [&viewer, &analyst] {
        let status = eventually(Duration::from_secs(10), || async {
            let s = approve_as(b.api_addr(), key, first).await;
            (s != 401).then_some(s)
        })
        .await;
        assert_eq!(status, Some(403), "only admins approve");
    }
    assert_eq!(committed(&b).await.0, Some(1));

    // An admin on another node approves: in force on every node.
    let (status, body) = approve(&b, first).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "applied", "{body}");
    in_force_everywhere(&all, 2).await;
    for n in all {
        assert_eq!(committed(n).await, (Some(2), doc2.to_owned()));
    }
    let (status, body) = approve(&c, first).await;
    assert_eq!(status, 409, "an applied proposal is closed: {body}");

    // A model activation is governed too; once approved, the state still
    // refuses a version that does not exist.
    let (status, body) = send(
        a.api_addr(),
        Method::POST,
        "/api/v1/models/7/activate",
        None,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = approve(&b, proposal_id(&body)).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("no model version 7")),
        "{body}"
    );

    // So is a member removal: proposed on a, approved on b, run by the
    // leader.
    let c_id = c.identity().peer_id().to_string();
    let path = format!("/api/v1/members/{c_id}");
    let (status, body) = send(a.api_addr(), Method::DELETE, &path, None).await;
    assert_eq!(status, 202, "{body}");
    let removal = proposal_id(&body);
    assert_eq!(voters(&a).await, 3, "not removed before its approvals");
    let (status, body) = approve(&b, removal).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["removed"], c_id.as_str(), "{body}");
    for n in [&a, &b] {
        let two = eventually(Duration::from_secs(15), || async {
            (voters(n).await == 2).then_some(())
        })
        .await;
        assert!(two.is_some(), "c removed as seen from {}", n.api_addr());
    }
    let (_, v) = get_json(a.api_addr(), "/api/v1/proposals?consistent=true").await;
    assert_eq!(v["proposals"][0]["id"], removal, "{v}");
    assert_eq!(v["proposals"][0]["status"], "applied", "{v}");
    c.shutdown().await;
    let all = [&a, &b];

    // A change of the expiry is itself approved; then a proposal left past
    // its expiry never applies, even when approved afterwards.
    let doc3 = "[governance]\napprovals = 2\nproposal_ttl_secs = 1\n";
    let (status, body) = set_policy(&b, doc3).await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = approve(&a, proposal_id(&body)).await;
    assert_eq!(status, 200, "{body}");
    in_force_everywhere(&all, 3).await;
    let doc4 = "[governance]\napprovals = 1\nproposal_ttl_secs = 1\n";
    let (status, body) = set_policy(&a, doc4).await;
    assert_eq!(status, 202, "{body}");
    let late = proposal_id(&body);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, v) = get_json(b.api_addr(), "/api/v1/proposals").await;
    assert_eq!(v["proposals"][0]["status"], "expired", "{v}");
    let (status, body) = approve(&b, late).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("expired")),
        "{body}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    for n in all {
        assert_eq!(
            committed(n).await.0,
            Some(3),
            "the expired change never applied"
        );
        let (_, v) = get_json(n.api_addr(), "/api/v1/proposals?consistent=true").await;
        assert_eq!(v["proposals"][0]["status"], "expired", "{v}");
    }
    let (status, _) = approve(&b, 999).await;
    assert_eq!(status, 404);

    for n in [b, a] {
        n.shutdown().await;
    }
}
