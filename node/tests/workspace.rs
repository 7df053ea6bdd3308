//! The shared workspace between real nodes: edits made on both sides of a
//! partition converge once it heals, documents survive a restart, five
//! nodes converge, a listed address raises an alert, and hostile sync
//! messages are refused with their reason while the documents stay as
//! they were.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use amoskys_mesh::{MeshConfig, Received, Service, net};
use amoskys_node::Node;
use amoskys_node::identity::{Identity, KEY_FILE};
use amoskys_node::workspace::{PeerSync, Status, ThreatIntel, Workspace};
use common::{eventually, get_json, keyed_dirs, mesh_port, quiet_config};

const SYNC: &str = "workspace.sync_every_ms=200";

fn same(a: &Workspace, b: &Workspace) -> bool {
    a.intel_list() == b.intel_list() && a.case_list() == b.case_list()
}

async fn start(dir: &std::path::Path, extra: &[&str]) -> Node {
    let mut sets = vec!["sensors.procfs.enabled=false", SYNC];
    sets.extend_from_slice(extra);
    Node::start(quiet_config(dir, &sets))
        .await
        .expect("node starts")
}

async fn connected(n: &Node) -> u64 {
    n.mesh()
        .map(|m| {
            m.stats()
                .connected_peers
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_on_both_sides_of_a_partition_converge_and_survive_a_restart() {
    let (dirs, admitted) = keyed_dirs(2);
    let a = start(dirs[0].path(), &[&admitted]).await;
    let boot = format!("mesh.bootstrap=[\"127.0.0.1:{}\"]", mesh_port(&a).await);
    let b = start(dirs[1].path(), &[&admitted, &boot]).await;
    let (wa, wb) = (a.workspace().clone(), b.workspace().clone());

    wa.intel_add("198.51.100.7", "seen scanning", None)
        .expect("added");
    assert!(
        eventually(Duration::from_secs(30), || async {
            (wb.intel_list().len() == 1).then_some(())
        })
        .await
        .is_some(),
        "b gets a's first IOC"
    );

    // Cut the two apart; both go on editing the same documents.
    let (pa, pb) = (
        a.mesh().expect("mesh").peer_id(),
        b.mesh().expect("mesh").peer_id(),
    );
    a.mesh()
        .expect("mesh")
        .block(vec![pb], true)
        .await
        .expect("block");
    b.mesh()
        .expect("mesh")
        .block(vec![pa], true)
        .await
        .expect("block");
    assert!(
        eventually(Duration::from_secs(10), || async {
            (connected(&a).await == 0 && connected(&b).await == 0).then_some(())
        })
        .await
        .is_some(),
        "partitioned"
    );
    wa.intel_add("203.0.113.0/24", "scan source", None)
        .expect("added");
    wa.intel_remove("198.51.100.7").expect("removed");
    wa.case_ack("alert-1", Some("ana")).expect("acknowledged");
    wa.case_note("alert-1", "seen on a").expect("noted");
    // b edits later: last-writer-wins goes by the authors' clocks (ms).
    tokio::time::sleep(Duration::from_millis(20)).await;
    wb.intel_add("evil.example", "phishing", None)
        .expect("added");
    wb.case_note("alert-1", "seen on b").expect("noted");
    wb.case_status("alert-1", Status::Resolved)
        .expect("resolved");
    wb.case_note("alert-2", "only on b").expect("noted");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!same(&wa, &wb), "the partition held");

    // Heal: both end with the same documents, holding every edit.
    a.mesh()
        .expect("mesh")
        .block(vec![pb], false)
        .await
        .expect("heal");
    b.mesh()
        .expect("mesh")
        .block(vec![pa], false)
        .await
        .expect("heal");
    assert!(
        eventually(Duration::from_secs(40), || async {
            same(&wa, &wb).then_some(())
        })
        .await
        .is_some(),
        "converged: a {:?} / b {:?}",
        wa.intel_list(),
        wb.intel_list()
    );
    let values: Vec<String> = wa.intel_list().into_iter().map(|i| i.value).collect();
    assert_eq!(values.len(), 2, "{values:?}");
    assert!(values.contains(&"203.0.113.0/24".to_owned()));
    assert!(values.contains(&"evil.example".to_owned()));
    let case = wa.case_show("alert-1");
    let notes: Vec<&str> = case.notes.iter().map(|n| n.text.as_str()).collect();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes.contains(&"seen on a") && notes.contains(&"seen on b"));
    assert_eq!(case.assignee.as_deref(), Some("ana"));
    assert_eq!(case.status, Status::Resolved, "the later status wins");
    assert_eq!(wa.case_show("alert-2").notes.len(), 1);

    // A restarted node keeps its documents.
    let before = (wb.intel_list(), wb.case_list());
    drop(wb);
    b.shutdown().await;
    let b = start(dirs[1].path(), &[&admitted, &boot]).await;
    assert_eq!(
        (b.workspace().intel_list(), b.workspace().case_list()),
        before
    );
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_converge() {
    let (dirs, admitted) = keyed_dirs(5);
    let first = start(dirs[0].path(), &[&admitted]).await;
    let boot = format!("mesh.bootstrap=[\"127.0.0.1:{}\"]", mesh_port(&first).await);
    let mut nodes = vec![first];
    for d in &dirs[1..] {
        nodes.push(start(d.path(), &[&admitted, &boot]).await);
    }
    for (i, n) in nodes.iter().enumerate() {
        for k in 0..10u8 {
            n.workspace()
                .intel_add(
                    &Ipv4Addr::new(192, 0, 2, i as u8 * 10 + k).to_string(),
                    "",
                    None,
                )
                .expect("added");
        }
        n.workspace()
            .case_note("shared", &format!("note from node {i}"))
            .expect("noted");
    }
    let ws: Vec<_> = nodes.iter().map(|n| n.workspace().clone()).collect();
    let done = eventually(Duration::from_secs(60), || async {
        ws.iter()
            .all(|w| w.intel_list().len() == 50 && same(w, &ws[0]))
            .then_some(())
    })
    .await;
    assert!(
        done.is_some(),
        "converged: {:?}",
        ws.iter().map(|w| w.intel_list().len()).collect::<Vec<_>>()
    );
    assert_eq!(ws[0].case_show("shared").notes.len(), 5);
    // In step, the nodes stay quiet.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sent = |ws: &[std::sync::Arc<Workspace>]| -> u64 {
        ws.iter().map(|w| w.sync_stats().sent_messages).sum()
    };
    let before = sent(&ws);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sent(&ws), before, "sync messages while in step");
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_to_a_listed_address_raises_an_alert() {
    let dir = tempfile::tempdir().expect("dir");
    let n = start(dir.path(), &[]).await;
    let (status, _) = common::send(
        n.api_addr(),
        reqwest::Method::POST,
        "/api/v1/intel",
        Some(r#"{"indicator":"203.0.113.0/24","reason":"c2 range","expires_secs":3600}"#.into()),
    )
    .await;
    assert_eq!(status, 201);
    let (status, body) = common::send(
        n.api_addr(),
        reqwest::Method::POST,
        "/api/v1/intel",
        Some(r#"{"indicator":"10.0.0.0/33"}"#.into()),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("33")),
        "{body}"
    );

    let mut alerts = n.subscribe_alerts();
    n.inject(vec![common::flow_to(Ipv4Addr::new(198, 51, 100, 1))]);
    n.inject(vec![common::flow_to(Ipv4Addr::new(203, 0, 113, 9))]);
    let alert = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(a) = alerts.recv().await
                && a.body.rule == "ioc_address"
            {
                return a;
            }
        }
    })
    .await
    .expect("an IOC alert");
    assert_eq!(alert.body.subject, "destination_ip:203.0.113.9");
    assert!(
        alert
            .body
            .evidence
            .iter()
            .any(|(k, v)| k == "ioc" && v == "203.0.113.0/24")
    );
    n.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_sync_messages_are_refused_and_change_nothing() {
    let (dirs, admitted) = keyed_dirs(2);
    let n = start(dirs[0].path(), &[&admitted]).await;
    n.workspace()
        .intel_add("198.51.100.7", "kept", None)
        .expect("added");
    let before = n.workspace().snapshot();

    // A peer the node admits, speaking the sync protocol by hand.
    let id = Identity::load(&dirs[1].path().join(KEY_FILE)).expect("key");
    let keypair =
        libp2p::identity::Keypair::ed25519_from_bytes(id.signing_key().to_bytes()).expect("key");
    let (tx, _rx) = tokio::sync::mpsc::channel::<Received>(4);
    let (mesh, task) = net::start(
        MeshConfig {
            bootstrap: vec![
                format!("/ip4/127.0.0.1/tcp/{}", mesh_port(&n).await)
                    .parse()
                    .expect("addr"),
            ],
            quic: false,
            ..MeshConfig::loopback(keypair)
        },
        tx,
    )
    .await
    .expect("mesh");
    let node = n.mesh().expect("mesh").peer_id();
    assert!(
        eventually(Duration::from_secs(10), || async {
            (connected(&n).await > 0).then_some(())
        })
        .await
        .is_some()
    );
    let ask = |body: Vec<u8>| {
        let mesh = mesh.clone();
        async move {
            mesh.request(node, Service::Workspace, body)
                .await
                .map_err(|e| e.to_string())
        }
    };

    let garbage = ask(b"not an envelope at all".to_vec()).await;
    assert!(garbage.is_err_and(|e| e.contains("malformed")));
    let mut big = b"AMWS\x01\x01".to_vec();
    big.resize(4 * 1024 * 1024 + 10, 0);
    let oversized = ask(big).await;
    assert!(oversized.is_err_and(|e| e.contains("oversized") || e.contains("large")));

    // A change signed by a key the cluster never admitted, relayed by an
    // admitted peer: refused before anything is applied.
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let mut forged = ThreatIntel::new();
    forged
        .add("192.0.2.66", "planted", None, 1, &stranger)
        .expect("added");
    let mut state = PeerSync::new();
    let mut refused = None;
    for _ in 0..8 {
        let Some(out) = forged.document_mut().sync_out(&mut state) else {
            break;
        };
        match ask(out).await {
            Ok(reply) if reply.is_empty() => {}
            Ok(reply) => {
                forged
                    .document_mut()
                    .sync_in(&mut state, &reply, &|_| true, &stranger)
                    .expect("the node's reply applies");
            }
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let refused = refused.expect("the forged change is refused");
    assert!(refused.contains("admitted"), "{refused}");

    let (_, v) = get_json(n.api_addr(), "/api/v1/workspace").await;
    let rejected = &v["workspace"]["sync"]["rejected"];
    for reason in ["malformed", "oversized", "not_admitted"] {
        assert!(rejected[reason].as_u64() >= Some(1), "{reason}: {v}");
    }
    let (_, metrics) = common::get(n.api_addr(), "/metrics").await;
    assert!(
        metrics.contains("amoskys_workspace_sync_rejected_total{reason=\"not_admitted\"}"),
        "{metrics}"
    );
    assert_eq!(n.workspace().snapshot(), before, "documents untouched");
    let listed: Vec<String> = n
        .workspace()
        .intel_list()
        .into_iter()
        .map(|i| i.value)
        .collect();
    assert_eq!(listed, vec!["198.51.100.7".to_owned()]);
    task.abort();
    n.shutdown().await;
}

/// Runs `amoskys ARGS --api ADDR`; returns success and stdout + stderr.
fn cli(api: std::net::SocketAddr, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_amoskys"))
        .args(args)
        .args(["--api", &api.to_string()])
        .output()
        .expect("amoskys runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_intel_and_case_commands_edit_and_show_the_workspace() {
    let dir = tempfile::tempdir().expect("dir");
    let n = start(dir.path(), &[]).await;
    let api = n.api_addr();
    let run = move |args: Vec<&'static str>| tokio::task::spawn_blocking(move || cli(api, &args));

    let (ok, out) = run(vec![
        "intel",
        "add",
        "Evil.Example.",
        "--reason",
        "phishing kit",
        "--expires",
        "7d",
    ])
    .await
    .expect("runs");
    assert!(ok && out.contains("evil.example"), "{out}");
    let (ok, out) = run(vec!["intel", "add", "10.0.0.0/33"])
        .await
        .expect("runs");
    assert!(
        !ok && out.contains("33"),
        "a bad CIDR is refused with the reason: {out}"
    );
    let (ok, out) = run(vec!["intel", "list"]).await.expect("runs");
    assert!(
        ok && out.contains("evil.example") && out.contains("phishing kit"),
        "{out}"
    );
    let (ok, _) = run(vec!["intel", "remove", "evil.example"])
        .await
        .expect("runs");
    assert!(ok);
    let (ok, out) = run(vec!["intel", "remove", "evil.example"])
        .await
        .expect("runs");
    assert!(!ok && out.contains("not in the threat intel"), "{out}");

    // A case names a stored alert; an unknown id is refused, nothing written.
    let (ok, out) = run(vec!["case", "ack", "deadbeef"]).await.expect("runs");
    assert!(
        !ok && out.contains("404") && out.contains("deadbeef"),
        "{out}"
    );
    assert!(n.workspace().case_list().is_empty(), "nothing was written");
    let alert = common::test_alert(0, "port_scan");
    n.store()
        .put_alerts(std::slice::from_ref(&alert))
        .expect("stored");
    let id: &'static str = Box::leak(alert.id.clone().into_boxed_str());

    let (ok, out) = run(vec!["case", "ack", id, "--assignee", "ana"])
        .await
        .expect("runs");
    assert!(
        ok && out.contains("acknowledged") && out.contains("ana"),
        "{out}"
    );
    let (ok, out) = run(vec!["case", "note", id, "host isolated"])
        .await
        .expect("runs");
    assert!(ok && out.contains("host isolated"), "{out}");
    let (ok, out) = run(vec!["case", "show", id, "--json"]).await.expect("runs");
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
    assert_eq!(v["case"]["status"], "acknowledged");
    assert_eq!(v["case"]["notes"][0]["text"], "host isolated");
    let (ok, out) = run(vec!["case", "status", id, "closed"])
        .await
        .expect("runs");
    assert!(!ok && out.contains("status"), "{out}");
    n.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_that_compact_while_editing_lose_no_edit() {
    let (dirs, admitted) = keyed_dirs(3);
    let small = "workspace.compact_above_kib=16";
    let first = start(dirs[0].path(), &[&admitted, small]).await;
    let boot = format!("mesh.bootstrap=[\"127.0.0.1:{}\"]", mesh_port(&first).await);
    let mut nodes = vec![first];
    for d in &dirs[1..] {
        nodes.push(start(d.path(), &[&admitted, &boot, small]).await);
    }
    for (i, n) in nodes.iter().enumerate() {
        let w = n.workspace();
        for k in 0..40u8 {
            let ip = Ipv4Addr::new(198, 18, i as u8, k).to_string();
            w.intel_add(&ip, "bulk", None).expect("added");
            if k % 4 == 0 {
                w.intel_remove(&ip).expect("removed");
            }
        }
        w.case_note("shared", &format!("from {i}")).expect("noted");
    }
    let ws: Vec<_> = nodes.iter().map(|n| n.workspace().clone()).collect();
    // Converged, with every node on a new epoch (its own compaction or one
    // it adopted).
    let done = eventually(Duration::from_secs(90), || async {
        ws.iter()
            .all(|w| w.intel_list().len() == 90 && same(w, &ws[0]) && w.status().intel.epoch >= 1)
            .then_some(())
    })
    .await;
    assert!(
        done.is_some(),
        "converged on a new epoch: {:?}",
        ws.iter()
            .map(|w| (w.intel_list().len(), w.status().intel.epoch))
            .collect::<Vec<_>>()
    );
    assert_eq!(ws[0].case_show("shared").notes.len(), 3);
    drop(ws);
    for n in nodes {
        n.shutdown().await;
    }
}
