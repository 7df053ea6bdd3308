//! Nodes form a cluster on their own: the first one alone is a cluster of
//! one, allow-listed nodes that bootstrap to it are admitted and promoted
//! to voters; a policy set through any node's API is in force on all of
//! them; an unknown node waits until an operator admits it. Without a
//! quorum, writes get `503` within the write budget.

mod common;

use std::time::{Duration, Instant};

use amoskys_node::Node;
use common::{eventually, get_json, send};
use reqwest::Method;

async fn voters(n: &Node) -> usize {
    common::voters(n.api_addr()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_set_on_any_node_is_in_force_on_every_node() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_test_writer()
        .try_init();
    let (dirs, admitted) = common::keyed_dirs(3);
    let (stranger_dir, _) = common::keyed_dirs(1);
    let quiet = ["sensors.procfs.enabled=false", "learning.enabled=false"];
    let fast = [
        "cluster.heartbeat_ms=100",
        "cluster.election_min_ms=400",
        "cluster.election_max_ms=800",
    ];
    let mut first = vec![admitted.as_str()];
    first.extend(quiet);
    first.extend(fast);
    let a = Node::start(common::quiet_config(dirs[0].path(), &first))
        .await
        .expect("a starts");
    // Alone, with no bootstrap peer: a cluster of one.
    assert!(
        eventually(Duration::from_secs(10), || async {
            (voters(&a).await == 1).then_some(())
        })
        .await
        .is_some(),
        "a single node is a one-node cluster"
    );
    let bootstrap = format!(
        "mesh.bootstrap=[\"127.0.0.1:{}\"]",
        common::mesh_port(&a).await
    );
    let mut rest = first.clone();
    rest.push(&bootstrap);
    let b = Node::start(common::quiet_config(dirs[1].path(), &rest))
        .await
        .expect("b starts");
    let c = Node::start(common::quiet_config(dirs[2].path(), &rest))
        .await
        .expect("c starts");
    // Allow-listed nodes are admitted when they ask and become voters.
    for n in [&a, &b, &c] {
        common::wait_voters(n.api_addr(), 3).await;
    }

    // An invalid policy is refused with every problem named; nothing changes.
    let (status, body) = send(
        c.api_addr(),
        Method::PUT,
        "/api/v1/policy",
        Some("[membership]\nvoters = 0\n[rules]\nscan_min_ports = 0\n".into()),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let msg = body["error"].as_str().unwrap_or_default();
    assert!(
        msg.contains("membership.voters") && msg.contains("rules.scan_min_ports"),
        "{msg}"
    );

    // A valid one, sent to a follower, is committed and in force everywhere.
    let doc = "[rules]\nscan_min_ports = 7\ncampaign_min_nodes = 2\n[privacy]\naddresses = \"hash\"\nsalt = \"0123456789abcdef\"\n";
    let (status, body) = send(
        c.api_addr(),
        Method::PUT,
        "/api/v1/policy",
        Some(doc.into()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], 1);
    for n in [&a, &b, &c] {
        let seen = eventually(Duration::from_secs(10), || async {
            let (_, v) = get_json(n.api_addr(), "/api/v1/policy").await;
            (v["in_force"]["version"] == 1).then_some(v)
        })
        .await
        .expect("policy 1 in force");
        let in_force = seen["in_force"]["document"].as_str().unwrap_or_default();
        assert!(in_force.contains("scan_min_ports = 7"), "{in_force}");
        assert!(in_force.contains("addresses = \"hash\""), "{in_force}");
    }
    let (_, v) = get_json(a.api_addr(), "/api/v1/policy?consistent=true").await;
    assert_eq!(v["committed"]["document"], doc);
    let (_, h) = get_json(b.api_addr(), "/api/v1/policy/history").await;
    assert_eq!(h["versions"].as_array().map(Vec::len), Some(1));

    // A node on no allow-list waits; an operator admits it through any node.
    let mut stranger_cfg: Vec<&str> = quiet.to_vec();
    stranger_cfg.extend(fast);
    stranger_cfg.push(&bootstrap);
    stranger_cfg.push("node.name=stranger");
    let d = Node::start(common::quiet_config(stranger_dir[0].path(), &stranger_cfg))
        .await
        .expect("d starts");
    let d_id = d.identity().peer_id().to_string();
    let pending = eventually(Duration::from_secs(20), || async {
        let (_, v) = get_json(a.api_addr(), "/api/v1/members").await;
        v["pending"]
            .as_array()?
            .iter()
            .find(|p| p["id"] == d_id.as_str())
            .cloned()
    })
    .await
    .expect("the stranger's join request is listed");
    // With its name, address and time, here and in the cluster status.
    assert_eq!(pending["name"], "stranger", "{pending}");
    let addr = pending["addr"].as_str().unwrap_or_default();
    assert!(addr.starts_with("127.0.0.1:"), "{pending}");
    let asked = pending["requested_at"].as_str().unwrap_or_default();
    assert!(asked.starts_with("20") && asked.ends_with('Z'), "{pending}");
    assert!(pending["requested_ms"].as_u64() > Some(0), "{pending}");
    let (_, v) = get_json(a.api_addr(), "/api/v1/cluster").await;
    assert_eq!(v["cluster"]["pending"][0]["name"], "stranger", "{v}");
    let (status, body) = send(
        b.api_addr(),
        Method::POST,
        "/api/v1/members",
        Some(serde_json::json!({ "id": d_id }).to_string()),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let joined = eventually(Duration::from_secs(20), || async {
        let (_, v) = get_json(d.api_addr(), "/api/v1/policy").await;
        (v["in_force"]["version"] == 1).then_some(())
    })
    .await;
    assert!(
        joined.is_some(),
        "the admitted node applies the cluster policy"
    );
    // Admitted through b: no member lists it as pending any more.
    for n in [&a, &b, &c] {
        let (_, v) = get_json(n.api_addr(), "/api/v1/members").await;
        assert_eq!(v["pending"], serde_json::json!([]), "{}", n.api_addr());
        let (_, v) = get_json(n.api_addr(), "/api/v1/cluster").await;
        assert_eq!(v["cluster"]["pending"], serde_json::json!([]), "{v}");
    }
    let (_, m) = get_json(a.api_addr(), "/api/v1/members").await;
    let roles: Vec<&str> = m["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x["role"].as_str())
        .collect();
    assert_eq!(roles.iter().filter(|r| **r == "voter").count(), 3);
    assert_eq!(roles.iter().filter(|r| **r == "learner").count(), 1);

    // Bad requests name what was wrong.
    let (status, body) = send(
        a.api_addr(),
        Method::POST,
        "/api/v1/models/99/activate",
        None,
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = send(
        a.api_addr(),
        Method::POST,
        "/api/v1/members",
        Some(r#"{"id":"nope"}"#.into()),
    )
    .await;
    assert_eq!(status, 400);

    for n in [d, c, b, a] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_quorum_writes_get_503_within_the_write_budget() {
    let (dirs, admitted) = common::keyed_dirs(3);
    let mut nodes = Vec::from(common::three_voters(&dirs, &admitted).await);
    // Three election timeouts of 800 ms; HTTP and a busy machine on top.
    let bound = Duration::from_millis(3 * 800 + 1_500);
    let doc = |v: u32| Some(format!("[rules]\nscan_min_ports = {v}\n"));

    // One voter of three stopped: writes still commit (after an election,
    // if it was the leader).
    nodes.pop().expect("c").shutdown().await;
    let a = nodes[0].api_addr();
    let committed = eventually(Duration::from_secs(15), || async {
        let (status, body) = send(a, Method::PUT, "/api/v1/policy", doc(21)).await;
        (status == 200).then_some(body)
    })
    .await;
    assert!(committed.is_some(), "two of three voters commit");

    // Two stopped: the node left answers 503 within the bound.
    nodes.pop().expect("b").shutdown().await;
    let started = Instant::now();
    let (status, body) = send(a, Method::PUT, "/api/v1/policy", doc(22)).await;
    let took = started.elapsed();
    eprintln!("PUT /api/v1/policy without a quorum: {status} after {took:?}");
    assert_eq!(status, 503, "{body}");
    assert!(took < bound, "answered after {took:?}");
    let msg = body["error"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with(
            "quorum lost: 1 of 3 voters reachable (2 needed); the write was not committed"
        ),
        "{msg}"
    );
    assert_eq!(body["quorum"]["reachable"], 1, "{body}");

    // The status shows it; the committed policy is still the last one.
    let (_, v) = get_json(a, "/api/v1/cluster").await;
    let q = &v["cluster"]["quorum"];
    assert_eq!(q["ok"], false, "{v}");
    assert_eq!(
        (&q["voters"], &q["reachable"], &q["needed"]),
        (&3.into(), &1.into(), &2.into()),
        "{v}"
    );
    assert!(q["last_quorum_ack_ms"].as_u64() > Some(800), "{v}");
    let (_, v) = get_json(a, "/api/v1/policy").await;
    assert!(
        v["committed"]["document"]
            .as_str()
            .unwrap_or_default()
            .contains("= 21"),
        "{v}"
    );
    for n in nodes {
        n.shutdown().await;
    }
}
