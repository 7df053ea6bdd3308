//! The console of one node shows the whole mesh: on three real nodes on
//! loopback, an alert raised on c appears on a's alerts page; an analyst
//! acknowledges it with a note in a's console, and b's console shows the
//! case. a's mesh page and topology show the connection between b and c
//! (from their peer views) and every node's name; an outsider gets no
//! view, and a slow member does not stall the page. The browser is the
//! hostile stand-in of `console_client` (no JavaScript: each check reloads
//! the page).

mod common;
#[path = "console_client/mod.rs"]
mod console_client;
#[path = "outsider/mod.rs"]
mod outsider;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use amoskys_mesh::Reject;
use amoskys_mesh::net::{VIEW_FRESH, VIEW_WAIT};
use amoskys_node::Node;
use common::{eventually, keyed_dirs, mesh_port, send, voter_config, voters, wait_voters};
use console_client::Browser;
use ed25519_dalek::SigningKey;
use reqwest::Method;
use serde_json::Value;

/// Three voters as `common::three_voters` starts them, named alpha, bravo
/// and charlie; b and c each know only a's address at start.
async fn named_voters(dirs: &[tempfile::TempDir], admitted: &str) -> [Node; 3] {
    let start = |i: usize, bootstrap: Option<u16>| {
        let mut config = voter_config(dirs[i].path(), admitted, bootstrap);
        config.node.name = ["alpha", "bravo", "charlie"][i].into();
        async move { Node::start(config).await.expect("node starts") }
    };
    let a = start(0, None).await;
    eventually(Duration::from_secs(10), || async {
        (voters(a.api_addr()).await == 1).then_some(())
    })
    .await
    .expect("the first node is a cluster of one");
    let port = mesh_port(&a).await;
    let b = start(1, Some(port)).await;
    let c = start(2, Some(port)).await;
    for n in [&a, &b, &c] {
        wait_voters(n.api_addr(), 3).await;
    }
    [a, b, c]
}

/// A browser signed in to `n` as `key`'s operator, once `n` knows it.
async fn sign_in(n: &Node, key: &SigningKey) -> Browser {
    let id = n.identity().peer_id().to_string();
    let addr = n.api_addr();
    let path = "/api/v1/console/login";
    eventually(Duration::from_secs(15), || async {
        let auth = console_client::signed(key, &id, "POST", path, b"");
        let resp = reqwest::Client::new()
            .post(format!("http://{addr}{path}"))
            .header("authorization", auth)
            .send()
            .await
            .ok()?;
        (resp.status() == 200).then_some(())
    })
    .await
    .expect("the operator is known on every node");
    Browser::signed_in(addr, &id, key).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_console_shows_the_mesh_and_its_cases() {
    let (dirs, admitted) = keyed_dirs(3);
    let [a, b, c] = named_voters(&dirs, &admitted).await;
    let analyst = SigningKey::from_bytes(&rand::random());
    let add = serde_json::json!({
        "name": "ana",
        "key": hex::encode(analyst.verifying_key().to_bytes()),
        "role": "analyst",
    });
    let (code, v) = send(
        a.api_addr(),
        Method::POST,
        "/api/v1/operators",
        Some(add.to_string()),
    )
    .await;
    assert_eq!(code, 201, "{v}");
    let mut on_a = sign_in(&a, &analyst).await;
    let mut on_b = sign_in(&b, &analyst).await;

    // Raised on c, listed on a.
    let alert = common::raise(&c, Ipv4Addr::new(192, 0, 2, 77)).await;
    let link = format!("/alerts/{}", alert.id);
    let listed = eventually(Duration::from_secs(15), || {
        let mut page = on_a.clone();
        let link = link.clone();
        async move { page.get("/alerts").await.body.contains(&link).then_some(()) }
    })
    .await;
    assert!(listed.is_some(), "c's alert {} not on a's page", alert.id);
    let page = on_a.get(&link).await;
    assert!(page.body.contains("class=\"sig-valid\""), "{}", page.body);
    assert!(page.body.contains(&alert.origin), "origin shown");

    // Worked on a, seen on b.
    let csrf = on_a.csrf().await;
    let ack = on_a
        .post(&format!("{link}/ack"), &[("assignee", "ana")], Some(&csrf))
        .await;
    assert_eq!(ack.status, 303, "{}", ack.body);
    let note = on_a
        .post(
            &format!("{link}/notes"),
            &[("text", "seen from a's console")],
            Some(&csrf),
        )
        .await;
    assert_eq!(note.status, 303, "{}", note.body);
    let synced = eventually(Duration::from_secs(20), || {
        let mut page = on_b.clone();
        let link = link.clone();
        async move {
            let p = page.get(&link).await;
            (p.body.contains("<strong>acknowledged</strong>")
                && p.body.contains("seen from a&#39;s console"))
            .then_some(())
        }
    })
    .await;
    assert!(
        synced.is_some(),
        "b shows the case: {}",
        on_b.get(&link).await.body
    );

    // The mesh page of a names its peers.
    let mesh = on_a.get("/mesh").await;
    for n in [&b, &c] {
        assert!(
            mesh.body.contains(&n.identity().peer_id().to_string()),
            "{}",
            mesh.body
        );
    }
    who_is_connected_to_whom(&a, &b, &c, &mut on_a).await;
    views_are_for_members_only(&a, &b, &c).await;
    a_slow_member_does_not_stall_the_page(&c, &mut on_a).await;
    for n in [a, b, c] {
        n.shutdown().await;
    }
}

/// The edge between `x` and `y` in a topology, if there is one.
fn edge<'a>(t: &'a Value, x: &str, y: &str) -> Option<&'a Value> {
    let (lo, hi) = if x < y { (x, y) } else { (y, x) };
    t["edges"]
        .as_array()?
        .iter()
        .find(|e| e["a"] == lo && e["b"] == hi)
}

fn node<'a>(t: &'a Value, id: &str) -> &'a Value {
    t["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["id"] == id))
        .unwrap_or_else(|| panic!("{id} in {t}"))
}

/// b and c connect to each other; a learns it from their views and shows
/// it with their names, in the API and on the page.
async fn who_is_connected_to_whom(a: &Node, b: &Node, c: &Node, on_a: &mut Browser) {
    let [a_id, b_id, c_id] = [a, b, c].map(|n| n.identity().peer_id().to_string());
    let c_addr = format!("/ip4/127.0.0.1/tcp/{}", mesh_port(c).await);
    b.mesh()
        .expect("mesh")
        .dial(c.identity().peer_id(), c_addr.parse().expect("multiaddr"))
        .await
        .expect("dial");
    let seen = eventually(Duration::from_secs(30), || async {
        let (code, t) = send(a.api_addr(), Method::GET, "/api/v1/mesh/topology", None).await;
        let reported = edge(&t, &b_id, &c_id)?["reported_by"].clone();
        (code == 200
            && reported
                .as_array()?
                .iter()
                .any(|r| r == &b_id || r == &c_id))
        .then_some(t)
    })
    .await;
    let t = seen.expect("a's topology shows b-c");
    assert_eq!(t["id"], a_id.as_str());
    for (x, y) in [(&a_id, &b_id), (&a_id, &c_id)] {
        assert!(edge(&t, x, y).is_some(), "{x}-{y} in {t}");
    }
    for (id, name) in [(&a_id, "alpha"), (&b_id, "bravo"), (&c_id, "charlie")] {
        let n = node(&t, id);
        assert_eq!(n["name"], name, "{t}");
        assert_eq!(n["reachable"], true, "{t}");
        assert_eq!(n["member"], true, "{t}");
    }
    assert_eq!(node(&t, &b_id)["view"], "received", "{t}");

    let page = on_a.get("/mesh").await.body;
    let pair = if b_id < c_id {
        "bravo – charlie"
    } else {
        "charlie – bravo"
    };
    assert!(page.contains(pair), "the picture describes b-c: {page}");
    assert!(page.contains("<title>Who is connected to whom</title>"));
    assert!(page.contains("3 nodes reachable from this node, 3 connections; 0 not reachable"));
    assert!(page.matches("<line").count() >= 3, "{page}");
    for name in ["alpha", "bravo", "charlie"] {
        assert!(page.contains(&format!("<strong>{name}</strong>")), "{page}");
    }
}

/// A member gets a's view, at most once per `VIEW_EVERY`; an outsider (a
/// plain libp2p swarm with a fresh key) is refused and counted.
async fn views_are_for_members_only(a: &Node, b: &Node, c: &Node) {
    let a_peer = a.identity().peer_id();
    let on_b = b.mesh().expect("mesh");
    let view = on_b.peer_view(a_peer).await.expect("a member gets a view");
    assert_eq!(view.name, "alpha");
    for n in [b, c] {
        let id = n.identity().peer_id().to_string();
        assert!(view.peers.iter().any(|p| p.id == id), "{view:?}");
    }
    let again = on_b.peer_view(a_peer).await;
    assert!(
        again
            .as_ref()
            .is_err_and(|e| e.to_string().contains("asked again")),
        "{again:?}"
    );

    let mesh = a.mesh().expect("mesh");
    let before = mesh.stats().rejected(Reject::OutsiderRequest);
    let addr = format!("/ip4/127.0.0.1/tcp/{}", mesh_port(a).await);
    let answer = outsider::ask(a_peer, addr.parse().expect("multiaddr"), &[6]).await;
    assert_eq!(
        answer.as_deref(),
        Ok(&b"\x06\x01not an admitted member"[..]),
        "{answer:?}"
    );
    assert!(mesh.stats().rejected(Reject::OutsiderRequest) > before);
}

/// c answers late; once its view is stale, a's page waits for it at most
/// `VIEW_WAIT` and still shows b-c from b's view.
async fn a_slow_member_does_not_stall_the_page(c: &Node, on_a: &mut Browser) {
    let slow = c.mesh().expect("mesh");
    slow.impair(Duration::from_secs(6)).await.expect("impair");
    tokio::time::sleep(VIEW_FRESH).await;
    let started = Instant::now();
    let page = on_a.get("/mesh").await;
    let took = started.elapsed();
    slow.impair(Duration::ZERO).await.expect("impair");
    assert_eq!(page.status, 200);
    assert!(took < VIEW_WAIT + Duration::from_secs(2), "{took:?}");
    assert!(
        page.body.contains("no view: no view within"),
        "{}",
        page.body
    );
    // b-c is still drawn, from b's view.
    assert!(
        page.body
            .contains("3 nodes reachable from this node, 3 connections"),
        "{}",
        page.body
    );
}
