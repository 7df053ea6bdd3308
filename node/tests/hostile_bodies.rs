//! Generated hostile requests against every write route of a real node:
//! valid shapes with extreme values (0, 1, -1, 2^53, 2^63, 2^64-1, huge and
//! odd strings, nested garbage) and plain garbage bytes. The node never
//! answers 5xx, keeps answering `/healthz`, and a refused request leaves
//! the policy, members, intel, cases, rounds, model registry, operators and
//! proposals unchanged.
//! Bounded: every extreme number in every numeric field first, then
//! [`CASES`] generated requests from [`SEED`].

mod common;
mod hostile;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use amoskys_node::Node;
use common::eventually;
use hostile::{Gen, extremes, request};
use reqwest::Method;
use serde_json::{Value, json};

const SEED: u64 = 0x5eed_0019;
const CASES: usize = 300;

/// The state a refused write must leave alone.
async fn state(c: &reqwest::Client, addr: SocketAddr) -> Value {
    let get = |path: &'static str| async move {
        let mut req = c
            .get(format!("http://{addr}{path}"))
            .build()
            .expect("request");
        common::sign_as_admin(addr, &mut req).await;
        let resp = c.execute(req).await.expect("API answers");
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        resp.json::<Value>().await.expect("JSON")
    };
    let policy = get("/api/v1/policy").await;
    let members = get("/api/v1/members").await;
    let workspace = get("/api/v1/workspace").await;
    let rounds = get("/api/v1/learn/rounds").await;
    let models = get("/api/v1/models").await;
    let operators = get("/api/v1/operators").await;
    let proposals = get("/api/v1/proposals").await;
    let round_ids: Vec<Value> = rounds["rounds"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r["id"].clone())
        .collect();
    json!({
        "policy": [policy["committed"]["version"], policy["in_force"]["version"]],
        "members": members["members"],
        "removed": members["removed"],
        "intel": workspace["workspace"]["intel"],
        "cases": workspace["workspace"]["cases"],
        "rounds": round_ids,
        "models": models["registry"],
        "operators": operators["operators"],
        "proposals": proposals["proposals"],
    })
}

/// The start of a body or path, for a failure message.
fn shown(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    s.chars().take(200).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_hostile_writes_are_refused_cleanly() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().expect("dir");
    let n = Node::start(common::quiet_config(
        dir.path(),
        &["sensors.procfs.enabled=false"],
    ))
    .await
    .expect("node starts");
    let addr = n.api_addr();
    let leader = eventually(Duration::from_secs(20), || async {
        let (_, v) = common::get_json(addr, "/api/v1/cluster").await;
        v["cluster"]["leader"].is_string().then_some(())
    })
    .await;
    assert!(leader.is_some(), "a one-node cluster with a leader");
    // One stored alert, so case routes also reach the workspace.
    let alert = common::test_alert(0, "port_scan");
    n.store()
        .put_alerts(std::slice::from_ref(&alert))
        .expect("stored");

    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    // What the hostile-client run found accepted or crashing: now 400,
    // naming the field.
    let max = u64::MAX;
    let id = "ab".repeat(32);
    let named: Vec<(Method, &str, String, &str)> = vec![
        (
            Method::POST,
            "/api/v1/intel",
            json!({ "indicator": "198.51.100.8", "expires_secs": max }).to_string(),
            "expires_secs: ",
        ),
        (
            Method::POST,
            "/api/v1/decisions",
            json!({ "subject": "198.51.100.8", "duration_secs": max }).to_string(),
            "duration_secs: ",
        ),
        (
            Method::POST,
            "/api/v1/decisions",
            json!({ "subject": "198.51.100.8/99", "duration_secs": 60 }).to_string(),
            "subject: ",
        ),
        (
            Method::PUT,
            "/api/v1/policy",
            format!("[response]\nmax_decisions = {max}\n"),
            "response.max_decisions: ",
        ),
        (
            Method::POST,
            "/api/v1/members",
            json!({ "id": id, "addr": "not an address" }).to_string(),
            "addr: ",
        ),
        (
            Method::PUT,
            "/api/v1/policy",
            format!("[membership]\nvoter_down_secs = {max}\n"),
            "membership.voter_down_secs: ",
        ),
        (
            Method::PUT,
            "/api/v1/policy",
            format!("[learning]\nretrain_hours = {max}\n"),
            "learning.retrain_hours: ",
        ),
        (
            Method::PUT,
            "/api/v1/policy",
            format!("[learning]\nfederated_every_minutes = {max}\n"),
            "learning.federated_every_minutes: ",
        ),
        (
            Method::POST,
            "/api/v1/learn/rounds",
            json!({ "kind": "source", "min_participants": max }).to_string(),
            "min_participants: ",
        ),
        (
            Method::POST,
            "/api/v1/learn/rounds",
            json!({ "kind": "head:toaster" }).to_string(),
            "kind: ",
        ),
        (
            Method::POST,
            "/api/v1/learn/rounds",
            json!({ "kind": "head:source", "dp": { "clip": 1.0, "noise_multiplier": 1.0, "delta": 1e-5 } }).to_string(),
            "dp: ",
        ),
        (
            Method::PUT,
            "/api/v1/policy",
            format!("[learning]\nhead_min_per_class = {max}\nhead = \"on\"\n"),
            "learning.head",
        ),
        (
            Method::POST,
            "/api/v1/cluster/init",
            json!({ "peers": vec![id.clone(); 9] }).to_string(),
            "peers: ",
        ),
    ];
    for (method, path, body, field) in named {
        let before = state(&c, addr).await;
        let mut req = c
            .request(method.clone(), format!("http://{addr}{path}"))
            .header("content-type", "application/json")
            .body(body.clone())
            .build()
            .expect("request");
        common::sign_as_admin(addr, &mut req).await;
        let resp = c.execute(req).await.expect("answered");
        let status = resp.status().as_u16();
        let v: Value = resp.json().await.unwrap_or_default();
        let message = v["error"].as_str().unwrap_or_default();
        assert!(
            status == 400 && message.contains(field),
            "{method} {path} {body}: {status} {v}, expected 400 naming {field:?}"
        );
        assert_eq!(before, state(&c, addr).await, "{method} {path} {body}");
    }

    let mut g = Gen(SEED);
    let mut cases = extremes();
    let fixed = cases.len();
    cases.extend((0..CASES).map(|_| request(&mut g, &alert.id)));
    let started = Instant::now();
    let (mut refused, mut accepted) = (0, 0);
    for (case, (method, path, body)) in cases.into_iter().enumerate() {
        let before = state(&c, addr).await;
        let mut req = c
            .request(method.clone(), format!("http://{addr}{path}"))
            .body(body.clone());
        if g.below(4) != 0 {
            req = req.header("content-type", "application/json");
        }
        // The attacker holds an admin key: the bodies, not the door, are tested.
        let mut req = req.build().expect("request builds");
        common::sign_as_admin(addr, &mut req).await;
        let resp = c.execute(req).await.unwrap_or_else(|e| {
            panic!(
                "case {case}: {method} {} got no answer: {e}",
                shown(path.as_bytes())
            );
        });
        let status = resp.status().as_u16();
        let answer = resp.text().await.unwrap_or_default();
        assert!(
            status < 500,
            "case {case}: {method} {} {:?} -> {status} {answer}",
            shown(path.as_bytes()),
            shown(&body)
        );
        if status >= 400 {
            refused += 1;
            let after = state(&c, addr).await;
            assert_eq!(
                before,
                after,
                "case {case}: {method} {} {:?} was refused ({status} {answer}) but changed the state",
                shown(path.as_bytes()),
                shown(&body)
            );
        } else {
            accepted += 1;
        }
        if case % 25 == 0 {
            let (code, _) = common::get(addr, "/healthz").await;
            assert_eq!(code, 200, "case {case}: the node stopped answering");
        }
    }
    let (code, _) = common::get(addr, "/healthz").await;
    assert_eq!(code, 200, "the node still answers");
    eprintln!(
        "{fixed} fixed and {CASES} generated cases (seed {SEED:#x}) in {:?}: {refused} refused, {accepted} accepted",
        started.elapsed()
    );
    assert!(refused > (fixed + CASES) / 2, "most requests are hostile");
    n.shutdown().await;
}
