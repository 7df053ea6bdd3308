//! The console of one node shows the whole mesh: on three real nodes on
//! loopback, an alert raised on c appears on a's alerts page; an analyst
//! acknowledges it with a note in a's console, and b's console shows the
//! case. The browser is the hostile stand-in of `console_client` (no
//! JavaScript: each check reloads the page).

mod common;
#[path = "console_client/mod.rs"]
mod console_client;

use std::net::Ipv4Addr;
use std::time::Duration;

use amoskys_node::Node;
use common::{eventually, keyed_dirs, send, three_voters};
use console_client::Browser;
use ed25519_dalek::SigningKey;
use reqwest::Method;

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
    let [a, b, c] = three_voters(&dirs, &admitted).await;
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
    for n in [a, b, c] {
        n.shutdown().await;
    }
}
