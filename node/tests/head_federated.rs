//! A federated round of the supervised head between three real nodes:
//! each trains the head on its own verdicts and sends only the head's
//! parameters and its two verdict counts; a node without verdicts of both
//! classes sends nothing. The combined head is registered with its lineage
//! and, under `learning.head = "federated"`, in force on every node, also
//! on the one that taught it nothing. Every message the nodes send is
//! recorded: none carries a window or an alert id the verdicts are on.

mod common;

use std::time::Duration;

use amoskys_learning::features::EntityKind;
use amoskys_learning::federated::SiteUpdate;
use amoskys_learning::head::{Head, HeadUpdate};
use amoskys_mesh::{Alert, Service, Tapped};
use amoskys_node::storage::windows::Window;
use amoskys_node::workspace::envelope_kind;
use amoskys_node::{Hooks, Node};
use common::{eventually, get_json, send};
use reqwest::Method;
use tokio::sync::mpsc;

const MIN: u64 = 5;

/// `attacks` true-positive and `normals` false-positive verdicts on
/// source windows kept in `node`'s store; the windows, to look for on the
/// wire.
fn judge(node: &Node, site: u64, attacks: u64, normals: u64) -> Vec<(String, Window)> {
    let width = EntityKind::Source.features().len();
    let mut out = Vec::new();
    for i in 0..attacks + normals {
        let attack = i < attacks;
        // Distinct values, so a copy on the wire would show.
        let features: Vec<f32> = (0..width)
            .map(|j| {
                let base = if attack { 0.71 } else { 0.13 };
                base + (site * 97 + i * 13 + j as u64) as f32 * 1e-4
            })
            .collect();
        let w = Window {
            kind: "source".into(),
            time_ns: 1_900_000_000_000_000_000 + site * 1_000 + i,
            score: if attack { 2.5 } else { 1.2 } + i as f32 * 0.01,
            features,
        };
        let id = format!("{:064x}", 0xfeed_0000 + site * 1_000 + i);
        node.store()
            .put_windows(&[(id.clone(), w.clone())])
            .expect("window");
        assert!(
            node.store()
                .put_verdict(&id, attack, 1_000 + i)
                .expect("verdict")
        );
        out.push((id, w));
    }
    out
}

async fn head_state(addr: std::net::SocketAddr) -> serde_json::Value {
    let (_, v) = get_json(addr, "/api/v1/alerts/review").await;
    v["heads"]
        .as_array()
        .and_then(|h| h.iter().find(|k| k["entity"] == "source").cloned())
        .unwrap_or_default()
}

async fn round(n: &Node, body: &str) -> serde_json::Value {
    let (status, v) = send(
        n.api_addr(),
        Method::POST,
        "/api/v1/learn/rounds",
        Some(body.into()),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let id = v["round"].as_u64().expect("round id");
    eventually(Duration::from_secs(60), || async {
        let (_, v) = get_json(n.api_addr(), "/api/v1/learn/rounds").await;
        let r = v["rounds"]
            .as_array()?
            .iter()
            .find(|r| r["id"] == id)?
            .clone();
        (r["status"] != "open").then_some(r)
    })
    .await
    .expect("the round ends")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_round_moves_only_parameters_and_puts_the_head_in_force_everywhere() {
    let (dirs, admitted) = common::keyed_dirs(3);
    let base = [
        admitted.as_str(),
        "sensors.procfs.enabled=false",
        "learning.enabled=false",
        "cluster.heartbeat_ms=100",
        "cluster.election_min_ms=400",
        "cluster.election_max_ms=800",
    ];
    let (tap, mut tapped) = mpsc::unbounded_channel();
    let hooks = || Hooks {
        tap: Some(tap.clone()),
        ..Hooks::default()
    };
    let a = Node::start_with(common::quiet_config(dirs[0].path(), &base), hooks())
        .await
        .expect("a starts");
    let bootstrap = format!(
        "mesh.bootstrap=[\"127.0.0.1:{}\"]",
        common::mesh_port(&a).await
    );
    let mut rest = base.to_vec();
    rest.push(&bootstrap);
    let b = Node::start_with(common::quiet_config(dirs[1].path(), &rest), hooks())
        .await
        .expect("b starts");
    let c = Node::start_with(common::quiet_config(dirs[2].path(), &rest), hooks())
        .await
        .expect("c starts");
    let nodes = [&a, &b, &c];
    for n in nodes {
        common::wait_voters(n.api_addr(), 3).await;
    }
    common::first_admin(a.api_addr()).await;
    let (status, v) = send(
        a.api_addr(),
        Method::PUT,
        "/api/v1/policy",
        Some(format!(
            "[learning]\nhead = \"federated\"\nhead_min_per_class = {MIN}\n"
        )),
    )
    .await;
    assert_eq!(status, 200, "{v}");

    // a and b judged both classes, c only false positives; none alone has
    // MIN true positives.
    let mut kept = judge(&a, 0, 3, 4);
    kept.extend(judge(&b, 1, 3, 3));
    kept.extend(judge(&c, 2, 0, 4));
    for n in nodes {
        let h = eventually(Duration::from_secs(10), || async {
            let h = head_state(n.api_addr()).await;
            (h["source"] == "local" || h["source"] == "none").then_some(h)
        })
        .await
        .expect("policy in force");
        assert_eq!(h["in_force"], false, "{h}");
    }

    let done = round(
        &b,
        r#"{"kind":"head:source","deadline_secs":10,"min_participants":2}"#,
    )
    .await;
    assert_eq!(done["status"], "done", "{done}");
    let version = done["version"].as_u64().expect("version");
    let (_, m) = get_json(a.api_addr(), "/api/v1/models").await;
    let entry = m["registry"]["versions"]
        .as_array()
        .and_then(|v| v.iter().find(|x| x["version"] == version).cloned())
        .expect("registered");
    assert_eq!(entry["schema"], "head:source@1", "{entry}");
    assert_eq!(entry["round"], done["id"]);
    assert!(entry["parent"].is_null());
    assert_eq!(
        entry["participants"].as_array().map(Vec::len),
        Some(2),
        "c sent nothing"
    );
    assert_eq!(entry["metrics"]["attacks"], 6.0);
    assert_eq!(entry["metrics"]["normals"], 7.0);
    assert_eq!(entry["activate"], false, "{entry}");

    // A head is put in force by the policy, not activated as a model.
    let path = format!("/api/v1/models/{version}/activate");
    let (status, v) = send(a.api_addr(), Method::POST, &path, None).await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("supervised head")),
        "{v}"
    );

    // In force everywhere: 6 true positives over the sites reach MIN.
    for n in nodes {
        let h = eventually(Duration::from_secs(20), || async {
            let h = head_state(n.api_addr()).await;
            (h["version"] == version).then_some(h)
        })
        .await
        .expect("the registry's head in use");
        assert_eq!(h["source"], "federated");
        assert_eq!(h["in_force"], true, "{h}");
    }

    // The next round starts from it: the lineage.
    let next = round(
        &a,
        r#"{"kind":"head:source","deadline_secs":10,"min_participants":2}"#,
    )
    .await;
    assert_eq!(next["status"], "done", "{next}");
    // The registration reaches C once C has applied it.
    let entry = eventually(Duration::from_secs(10), || async {
        let (_, m) = get_json(c.api_addr(), "/api/v1/models").await;
        m["registry"]["versions"]
            .as_array()
            .and_then(|v| v.iter().find(|x| x["version"] == next["version"]).cloned())
    })
    .await
    .expect("registered");
    assert_eq!(entry["parent"], version, "{entry}");

    // What crossed: only the allowed kinds, no window and no judged id.
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    let mut head_updates = 0;
    while let Ok(m) = tapped.try_recv() {
        let (kind, bytes) = check_message(&m, &mut head_updates);
        *seen.entry(kind.clone()).or_default() += 1;
        for (id, w) in &kept {
            let json = serde_json::to_vec(w).expect("json");
            let features = serde_json::to_vec(&w.features).expect("json");
            let raw: Vec<u8> = w.features.iter().flat_map(|f| f.to_le_bytes()).collect();
            for secret in [id.as_bytes(), &json, &features, &raw[..16]] {
                assert!(
                    !bytes.windows(secret.len()).any(|x| x == secret),
                    "a {kind} message carries a window or a judged id"
                );
            }
        }
    }
    // a and b each send one a round, but not to themselves as aggregator.
    assert!(head_updates >= 2, "head updates crossed: {seen:?}");
    eprintln!("messages sent during the test, by kind: {seen:?}");
    for n in [c, b, a] {
        n.shutdown().await;
    }
}

/// The kind of a recorded message and its bytes, after checking that it
/// decodes as one of the kinds allowed between nodes.
fn check_message(m: &Tapped, head_updates: &mut usize) -> (String, Vec<u8>) {
    match m {
        Tapped::Gossip(b) => {
            Alert::parse(b).expect("gossip carries only alerts");
            ("alert".into(), b.clone())
        }
        Tapped::SyncRequest(h) => ("sync request".into(), format!("{h:?}").into_bytes()),
        Tapped::SyncResponse(alerts) => ("sync response".into(), alerts.concat()),
        Tapped::Request { service, body } => {
            if *service == Service::Model {
                let (sig, update) = body.split_at(64);
                assert_eq!(sig.len(), 64);
                if let Ok(u) = serde_json::from_slice::<HeadUpdate>(update) {
                    assert_eq!(u.vector.len(), EntityKind::Source.features().len() + 2);
                    *head_updates += 1;
                } else {
                    serde_json::from_slice::<SiteUpdate>(update).expect("a model update");
                }
            }
            if *service == Service::Workspace {
                envelope_kind(body).expect("a workspace sync envelope");
            }
            (format!("{} request", service.as_str()), body.clone())
        }
        Tapped::Response { service, result } => {
            let body = match result {
                Ok(b) => b.clone(),
                Err(reason) => reason.clone().into_bytes(),
            };
            if *service == Service::Blob && result.is_ok() {
                let head: Head = serde_json::from_slice(&body).expect("a blob is a head");
                assert!(head.problems().is_empty());
            }
            (format!("{} response", service.as_str()), body)
        }
    }
}
