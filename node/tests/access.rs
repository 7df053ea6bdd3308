//! Who may call what, against a real node over real HTTP: every route of
//! the access table × {no credential, an unknown key, an expired signature,
//! a replayed request, viewer, analyst, admin}. Requests are signed here by
//! independent code written from the format in docs/SECURITY.md (not the
//! node's own signer), so the document is what is tested.
//!
//! The table is the node's own (`auth::ROUTES`), and a unit test fails when
//! the router has a route the table lacks; so a new route is covered here
//! the day it is added. Web console routes take a session, not a
//! signature: without one a page redirects to `/login` and a write gets
//! 401; with one, a role below the route's gets 403.

mod common;
#[path = "console_client/mod.rs"]
mod console_client;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use amoskys_consensus::Role;
use amoskys_node::Node;
use amoskys_node::auth::{Access, ROUTES};
use common::eventually;
use ed25519_dalek::{Signer, SigningKey};
use reqwest::Method;
use sha2::{Digest, Sha256};

/// The `Authorization` header, from docs/SECURITY.md "Signed requests".
fn header(
    key: &SigningKey,
    node: &str,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    ts_ms: u64,
) -> String {
    let nonce: [u8; 16] = rand::random();
    let text = format!(
        "AMOSKYS-API-1\n{node}\n{method}\n{path_and_query}\n{}\n{ts_ms}\n{}",
        hex::encode(Sha256::digest(body)),
        hex::encode(nonce)
    );
    let sig = key.sign(text.as_bytes());
    format!(
        "Amoskys-Ed25519 key={},ts={ts_ms},nonce={},sig={}",
        hex::encode(key.verifying_key().to_bytes()),
        hex::encode(nonce),
        hex::encode(sig.to_bytes())
    )
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cred {
    Nothing,
    UnknownKey,
    Expired,
    Replayed,
    As(Role),
}

const CREDS: [Cred; 7] = [
    Cred::Nothing,
    Cred::UnknownKey,
    Cred::Expired,
    Cred::Replayed,
    Cred::As(Role::Viewer),
    Cred::As(Role::Analyst),
    Cred::As(Role::Admin),
];

struct Keys {
    node: String,
    viewer: SigningKey,
    analyst: SigningKey,
    admin: SigningKey,
    stranger: SigningKey,
}

impl Keys {
    fn of(&self, role: Role) -> &SigningKey {
        match role {
            Role::Viewer => &self.viewer,
            Role::Analyst => &self.analyst,
            Role::Admin => &self.admin,
        }
    }
}

/// One request from `source`; returns its status without reading a
/// streamed body.
async fn status(
    addr: SocketAddr,
    source: IpAddr,
    method: &Method,
    path: &str,
    auth: Option<&str>,
) -> u16 {
    let client = reqwest::Client::builder()
        .local_address(source)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let mut req = client
        .request(method.clone(), format!("http://{addr}{path}"))
        .timeout(Duration::from_secs(20));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    req.send().await.expect("the API answers").status().as_u16()
}

/// The status a request must get; `None` when any status but 401, 403 and
/// 5xx is right (the operator may call the route; what it answers is the
/// route's business).
fn expected(access: Access, cred: Cred, get: bool) -> Option<u16> {
    let needed = match access {
        Access::Public | Access::Local => return Some(200),
        Access::Role(r) | Access::LocalRole(r) => r,
        // A signature is no console session, whoever signed.
        Access::Session(_) => return Some(if get { 303 } else { 401 }),
    };
    match cred {
        Cred::As(role) if role >= needed => None,
        Cred::As(_) => Some(403),
        _ => Some(401),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_each_credential_as_the_table_says() {
    let dir = tempfile::tempdir().expect("dir");
    let node = Node::start(common::quiet_config(dir.path(), &[]))
        .await
        .expect("node starts");
    let addr = node.api_addr();
    // The one-node cluster records its first admin (the local admin key).
    let first = eventually(Duration::from_secs(20), || async {
        let (_, v) = common::get_json(addr, "/api/v1/operators").await;
        v["operators"]
            .as_array()
            .filter(|ops| !ops.is_empty())
            .cloned()
    })
    .await
    .expect("the first admin is recorded");
    assert_eq!(first[0]["name"], "admin", "{first:?}");
    assert_eq!(first[0]["role"], "admin", "{first:?}");

    let keys = Keys {
        node: node.identity().peer_id().to_string(),
        viewer: SigningKey::from_bytes(&rand::random()),
        analyst: SigningKey::from_bytes(&rand::random()),
        admin: SigningKey::from_bytes(&rand::random()),
        stranger: SigningKey::from_bytes(&rand::random()),
    };
    for (name, role) in [
        ("vera", Role::Viewer),
        ("ana", Role::Analyst),
        ("ada", Role::Admin),
    ] {
        let body = serde_json::json!({
            "name": name,
            "key": hex::encode(keys.of(role).verifying_key().to_bytes()),
            "role": role,
        });
        let (code, v) = common::send(
            addr,
            Method::POST,
            "/api/v1/operators",
            Some(body.to_string()),
        )
        .await;
        assert_eq!(code, 201, "{v}");
    }
    let alert = common::test_alert(0, "port_scan");
    node.store()
        .put_alerts(std::slice::from_ref(&alert))
        .expect("stored");

    // Failed authentications are limited per source (20 at once): the bad
    // credentials of each route come from a loopback address of their own,
    // the good ones from 127.0.0.1.
    let good = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let asset = asset_path(addr).await;
    let mut checked = 0;
    for (i, (method, route, access)) in ROUTES.iter().enumerate() {
        let bad = IpAddr::V4(Ipv4Addr::new(
            127,
            0,
            1,
            u8::try_from(i + 1).expect("under 255 routes"),
        ));
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let path = route
            .replace("{version}", "1")
            .replace("{id}", &"ab".repeat(32))
            .replace("{alert}", &alert.id)
            .replace("{name}", "nobody")
            .replace("/assets/{file}", &asset);
        for cred in CREDS {
            let now = now_ms();
            let sign =
                |key: &SigningKey, ts| header(key, &keys.node, method.as_str(), &path, b"", ts);
            let got = match cred {
                Cred::Nothing => status(addr, bad, &method, &path, None).await,
                Cred::UnknownKey => {
                    let h = sign(&keys.stranger, now);
                    status(addr, bad, &method, &path, Some(&h)).await
                }
                Cred::Expired => {
                    let h = sign(&keys.admin, now - 61_000);
                    status(addr, bad, &method, &path, Some(&h)).await
                }
                Cred::Replayed => {
                    // A viewer's request, sent, then replayed from elsewhere:
                    // refused whatever the first got.
                    let h = sign(&keys.viewer, now);
                    status(addr, good, &method, &path, Some(&h)).await;
                    status(addr, bad, &method, &path, Some(&h)).await
                }
                Cred::As(role) => {
                    let h = sign(keys.of(role), now);
                    status(addr, good, &method, &path, Some(&h)).await
                }
            };
            match expected(*access, cred, method == Method::GET) {
                Some(want) => assert_eq!(got, want, "{method} {path} with {cred:?}"),
                None => assert!(
                    got != 401 && got != 403 && got < 500,
                    "{method} {path} with {cred:?}: {got}"
                ),
            }
            checked += 1;
        }
    }
    eprintln!("{checked} route × credential cases checked");
    assert_eq!(checked, ROUTES.len() * CREDS.len());

    // Refusals are counted by reason.
    let (_, metrics) = common::get(addr, "/metrics").await;
    for reason in ["missing", "unknown_key", "expired", "replayed", "forbidden"] {
        assert!(
            metrics.contains(&format!(
                "amoskys_api_auth_failures_total{{reason=\"{reason}\"}}"
            )),
            "no {reason} count in\n{metrics}"
        );
    }
    node.shutdown().await;
}

/// The stylesheet's path, as the sign-in page links it.
async fn asset_path(addr: SocketAddr) -> String {
    let page = console_client::Browser::new(addr).get("/login").await;
    let end = page.body.find(".css\"").expect("a stylesheet") + ".css".len();
    let start = page.body[..end].rfind('"').expect("a quote") + 1;
    page.body[start..end].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_routes_answer_each_session_as_the_table_says() {
    let dir = tempfile::tempdir().expect("dir");
    let node = Node::start(common::quiet_config(dir.path(), &[]))
        .await
        .expect("node starts");
    let addr = node.api_addr();
    common::first_admin(addr).await;
    let id = node.identity().peer_id().to_string();
    let keys = [Role::Viewer, Role::Analyst, Role::Admin].map(|role| {
        let key = SigningKey::from_bytes(&rand::random());
        (role, key)
    });
    for (role, key) in &keys {
        let body = serde_json::json!({
            "name": format!("{role}-op"),
            "key": hex::encode(key.verifying_key().to_bytes()),
            "role": role,
        });
        let path = "/api/v1/operators";
        let (code, v) = common::send(addr, Method::POST, path, Some(body.to_string())).await;
        assert_eq!(code, 201, "{v}");
    }
    let alert = common::test_alert(0, "port_scan");
    node.store()
        .put_alerts(std::slice::from_ref(&alert))
        .expect("stored");
    let mut checked = 0;
    for (method, route, access) in ROUTES {
        let Access::Session(needed) = access else {
            continue;
        };
        let path = route
            .replace("/alerts/{id}", &format!("/alerts/{}", alert.id))
            .replace("{id}", &"ab".repeat(32))
            .replace("{version}", "1");
        for (role, key) in &keys {
            // A fresh session each time: one case may end it (/logout).
            let mut b = console_client::Browser::signed_in(addr, &id, key).await;
            let got = if *method == "GET" {
                b.open(&path).await
            } else {
                let csrf = b.csrf().await;
                b.post(&path, &[], Some(&csrf)).await.status
            };
            if role >= needed {
                assert!(
                    got != 401 && got != 403 && got < 500,
                    "{method} {path} as {role}: {got}"
                );
            } else {
                assert_eq!(got, 403, "{method} {path} as {role}");
            }
            checked += 1;
        }
    }
    eprintln!("{checked} console route × session cases checked");
    assert!(checked >= 60, "{checked}");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_are_managed_and_the_last_admin_stays() {
    let dir = tempfile::tempdir().expect("dir");
    let node = Node::start(common::quiet_config(dir.path(), &[]))
        .await
        .expect("node starts");
    let addr = node.api_addr();
    eventually(Duration::from_secs(20), || async {
        let (_, v) = common::get_json(addr, "/api/v1/operators").await;
        (v["operators"].as_array().map_or(0, Vec::len) == 1).then_some(())
    })
    .await
    .expect("the first admin is recorded");

    let key = hex::encode(SigningKey::from_bytes(&[5; 32]).verifying_key().to_bytes());
    let add = |name: &str, role: &str| {
        serde_json::json!({ "name": name, "key": key, "role": role }).to_string()
    };
    let (code, v) = common::send(
        addr,
        Method::POST,
        "/api/v1/operators",
        Some(add("bob", "viewer")),
    )
    .await;
    assert_eq!(code, 201, "{v}");
    // The same name again, a bad role, a bad name: refused, naming why.
    let (code, v) = common::send(
        addr,
        Method::POST,
        "/api/v1/operators",
        Some(add("bob", "viewer")),
    )
    .await;
    assert_eq!(code, 409, "{v}");
    let (code, v) = common::send(
        addr,
        Method::POST,
        "/api/v1/operators",
        Some(add("carl", "root")),
    )
    .await;
    assert_eq!(code, 400, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("role: "),
        "{v}"
    );
    let (code, v) = common::send(
        addr,
        Method::POST,
        "/api/v1/operators",
        Some(add("-x", "viewer")),
    )
    .await;
    assert_eq!(code, 400, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("name: "),
        "{v}"
    );

    let (code, v) = common::send(
        addr,
        Method::PUT,
        "/api/v1/operators/bob",
        Some(r#"{"role":"analyst"}"#.into()),
    )
    .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["role"], "analyst");
    // The only admin can be neither demoted nor removed.
    let (code, v) = common::send(
        addr,
        Method::PUT,
        "/api/v1/operators/admin",
        Some(r#"{"role":"viewer"}"#.into()),
    )
    .await;
    assert_eq!(code, 409, "{v}");
    let (code, v) = common::send(addr, Method::DELETE, "/api/v1/operators/admin", None).await;
    assert_eq!(code, 409, "{v}");
    let (code, _) = common::send(addr, Method::DELETE, "/api/v1/operators/bob", None).await;
    assert_eq!(code, 200);
    let (code, _) = common::send(addr, Method::DELETE, "/api/v1/operators/bob", None).await;
    assert_eq!(code, 404);
    // Rotation: the operator's old key and its new key both sign the
    // hand-over; then the old key is refused and the new one works.
    let olga = SigningKey::from_bytes(&[6; 32]);
    let olga_hex = hex::encode(olga.verifying_key().to_bytes());
    let body = serde_json::json!({ "name": "olga", "key": olga_hex, "role": "viewer" });
    let (code, _) = common::send(
        addr,
        Method::POST,
        "/api/v1/operators",
        Some(body.to_string()),
    )
    .await;
    assert_eq!(code, 201);
    let (node_id, _) = common::health(addr).await;
    let fresh = SigningKey::from_bytes(&[7; 32]);
    let fresh_hex = hex::encode(fresh.verifying_key().to_bytes());
    let statement = format!("AMOSKYS-OPERATOR-ROTATE-1\nolga\n{olga_hex}\n{fresh_hex}");
    let call = |key: &SigningKey, method: Method, path: &str, body: String| {
        let auth = header(
            key,
            &node_id,
            method.as_str(),
            path,
            body.as_bytes(),
            now_ms(),
        );
        let req = reqwest::Client::new()
            .request(method, format!("http://{addr}{path}"))
            .header("authorization", auth)
            .header("content-type", "application/json")
            .body(body);
        async move { req.send().await.expect("answers").status().as_u16() }
    };
    let rotate = "/api/v1/operators/olga/rotate";
    // Signed by the new key only: refused, nothing changes.
    let forged = serde_json::json!({
        "key": fresh_hex,
        "old_sig": hex::encode(fresh.sign(statement.as_bytes()).to_bytes()),
        "new_sig": hex::encode(fresh.sign(statement.as_bytes()).to_bytes()),
    });
    assert_eq!(
        call(&olga, Method::POST, rotate, forged.to_string()).await,
        409
    );
    // Another operator cannot rotate olga's key.
    let good = serde_json::json!({
        "key": fresh_hex,
        "old_sig": hex::encode(olga.sign(statement.as_bytes()).to_bytes()),
        "new_sig": hex::encode(fresh.sign(statement.as_bytes()).to_bytes()),
    });
    let (code, _) = common::send(addr, Method::POST, rotate, Some(good.to_string())).await;
    assert_eq!(code, 403);
    assert_eq!(
        call(&olga, Method::POST, rotate, good.to_string()).await,
        200
    );
    assert_eq!(
        call(&olga, Method::GET, "/api/v1/whoami", String::new()).await,
        401
    );
    assert_eq!(
        call(&fresh, Method::GET, "/api/v1/whoami", String::new()).await,
        200
    );
    let (_, ops) = common::get_json(addr, "/api/v1/operators").await;
    let rec = ops["operators"]
        .as_array()
        .and_then(|o| o.iter().find(|x| x["name"] == "olga").cloned())
        .expect("olga listed");
    assert_eq!(rec["key"], fresh_hex.as_str(), "{rec}");

    // The local admin credential keeps working, named as the first admin.
    let (_, me) = common::get_json(addr, "/api/v1/whoami").await;
    assert_eq!(me["name"], "admin", "{me}");
    assert_eq!(me["role"], "admin", "{me}");
    node.shutdown().await;
}
