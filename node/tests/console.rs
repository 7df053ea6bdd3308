//! The web console against a real node over real HTTP, driven by a hostile
//! stand-in for a browser (`console_client`: reqwest, the cookie kept by
//! hand, forms forged at will): sign-in links work once; no session means
//! `/login` or 401; every page carries the security headers; a viewer is
//! offered no edit form and refused one it forges; a post without the
//! session's token or from another origin is refused; a refused policy
//! shows its problem at its key and changes nothing; a new alert reaches
//! the alerts page and its live stream; a demoted or removed operator
//! loses access at once.

mod common;
#[path = "console_client/mod.rs"]
mod console_client;

use std::net::Ipv4Addr;
use std::time::Duration;

use amoskys_node::Node;
use common::flow_to;
use console_client::{Browser, Page};
use ed25519_dalek::SigningKey;
use reqwest::Method;

const PAGES: &[&str] = &[
    "/", "/alerts", "/mesh", "/cluster", "/models", "/intel", "/audit",
];

fn assert_secure(p: &Page, what: &str) {
    let csp = p.header("content-security-policy");
    for part in [
        "default-src 'self'",
        "frame-ancestors 'none'",
        "script-src 'self'",
    ] {
        assert!(csp.contains(part), "{what}: CSP {csp:?} lacks {part}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{what}: {csp}"
    );
    assert_eq!(p.header("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(p.header("referrer-policy"), "same-origin", "{what}");
}

fn assert_page(p: &Page, what: &str) {
    assert_eq!(p.status, 200, "{what}: {}", p.body);
    assert_secure(p, what);
    assert_eq!(p.header("cache-control"), "no-store", "{what}");
    assert!(
        p.body.starts_with("<!DOCTYPE html><html lang=\"en\">"),
        "{what}"
    );
    assert!(
        !p.body.contains("<script>") && !p.body.contains(" style="),
        "{what}: inline script or style"
    );
    // Every input but hidden ones sits in a label.
    let inputs = p.body.matches("<input id=").count()
        + p.body.matches("<select id=").count()
        + p.body.matches("<textarea id=").count();
    assert_eq!(
        inputs,
        p.body.matches("<label for=").count(),
        "{what}: unlabelled inputs"
    );
}

async fn add_operator(addr: std::net::SocketAddr, name: &str, key: &SigningKey, role: &str) {
    let body = serde_json::json!({
        "name": name,
        "key": hex::encode(key.verifying_key().to_bytes()),
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

async fn policy_version(addr: std::net::SocketAddr) -> Option<u64> {
    let (_, v) = common::get_json(addr, "/api/v1/policy").await;
    v["committed"]["version"].as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_pages_roles_and_forgeries() {
    let dir = tempfile::tempdir().expect("dir");
    let node = Node::start(common::quiet_config(dir.path(), &[]))
        .await
        .expect("node starts");
    let addr = node.api_addr();
    common::first_admin(addr).await;
    let id = node.identity().peer_id().to_string();
    let (admin, analyst, viewer) = (
        SigningKey::from_bytes(&rand::random()),
        SigningKey::from_bytes(&rand::random()),
        SigningKey::from_bytes(&rand::random()),
    );
    add_operator(addr, "ada", &admin, "admin").await;
    add_operator(addr, "ana", &analyst, "analyst").await;
    add_operator(addr, "vera", &viewer, "viewer").await;
    let alert = common::test_alert(1, "port_scan");
    node.store()
        .put_alerts(std::slice::from_ref(&alert))
        .expect("stored");

    // A link works once.
    let path = console_client::link(addr, &id, &admin).await;
    assert!(
        path.starts_with("/login?token=") && path.len() == "/login?token=".len() + 64,
        "{path}"
    );
    let mut b = Browser::new(addr);
    let first = b.get(&path).await;
    assert_eq!(first.status, 303, "{}", first.body);
    let cookie = first.header("set-cookie").to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let again = Browser::new(addr).get(&path).await;
    assert_eq!(again.status, 401, "a used link: {}", again.body);
    assert_secure(&again, "used link");

    // No session: pages go to /login, writes get 401; so does a made-up one.
    let mut stranger = Browser::new(addr);
    for p in PAGES {
        let got = stranger.get(p).await;
        assert_eq!(
            (got.status, got.header("location")),
            (303, "/login"),
            "GET {p}"
        );
    }
    assert_eq!(
        stranger
            .post("/intel", &[("indicator", "198.51.100.1")], Some("x"))
            .await
            .status,
        401
    );
    stranger.cookie = Some(format!("amoskys_session={}", "ab".repeat(32)));
    assert_eq!(stranger.get("/alerts").await.status, 303);
    let login = stranger.get("/login").await;
    assert_eq!(login.status, 200);
    assert_secure(&login, "/login");

    // Every page, with its headers; the stylesheet and script are ours.
    for p in PAGES {
        assert_page(&b.get(p).await, p);
    }
    let detail = b.get(&format!("/alerts/{}", alert.id)).await;
    assert_page(&detail, "alert page");
    assert!(
        detail
            .body
            .contains("https://attack.mitre.org/techniques/T1046/"),
        "{}",
        detail.body
    );
    assert!(
        detail.body.contains("class=\"sig-valid\""),
        "signature checked"
    );
    let overview = b.get("/").await;
    for asset in ["css", "js"] {
        let at = overview
            .body
            .find(&format!(".{asset}\""))
            .expect("asset link");
        let start = overview.body[..at].rfind("\"/assets/").expect("asset path") + 1;
        let got = b.get(&overview.body[start..at + asset.len() + 1]).await;
        assert_eq!(got.status, 200, "{asset}");
        assert!(got.header("cache-control").contains("immutable"), "{asset}");
    }
    assert!(overview.body.contains("<svg class=\"spark\""), "sparkline");

    // The alert stored is on the alerts page, with its technique and signature.
    let alerts = b.get("/alerts").await;
    assert!(
        alerts.body.contains(&format!("/alerts/{}", alert.id)),
        "{}",
        alerts.body
    );
    assert!(alerts.body.contains("sig-valid"));
    // The review list: no anomaly alert of this node to judge yet.
    assert!(
        alerts.body.contains("<section id=\"review\">")
            && alerts.body.contains("Nothing to review"),
        "{}",
        alerts.body
    );
    let filtered = b.get("/alerts?severity=low").await;
    assert!(
        !filtered.body.contains(&format!("/alerts/{}", alert.id)),
        "filtered out"
    );
    assert!(
        filtered.body.contains("<option value=\"low\" selected>"),
        "the filter stays"
    );
    // The test alert is from 2027; a range ending in 2026 leaves it out.
    let until = b.get("/alerts?until=2026-01-01T00:00:00Z").await;
    assert!(
        !until.body.contains(&format!("/alerts/{}", alert.id)),
        "until"
    );
    let bad = b.get("/alerts?until=yesterday").await;
    assert!(
        bad.body
            .contains("until: &quot;yesterday&quot; is not a time"),
        "{}",
        bad.body
    );

    // A viewer is offered no edit form, and a forged one is refused.
    let mut vera = Browser::signed_in(addr, &id, &viewer).await;
    let v_csrf = vera.csrf().await;
    let cluster = vera.get("/cluster").await;
    assert!(
        !cluster.body.contains("action=\"/cluster/policy\""),
        "policy form offered to a viewer"
    );
    assert!(!cluster.body.contains(">Remove<") && !cluster.body.contains(">Admit as learner<"));
    let page = vera.get(&format!("/alerts/{}", alert.id)).await;
    assert!(
        !page.body.contains("/ack\""),
        "case forms offered to a viewer"
    );
    assert!(!vera.get("/intel").await.body.contains("action=\"/intel\""));
    let before = policy_version(addr).await;
    let forged = vera
        .post(
            "/cluster/policy",
            &[("document", "[rules]\n")],
            Some(&v_csrf),
        )
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let ack = format!("/alerts/{}/ack", alert.id);
    assert_eq!(vera.post(&ack, &[], Some(&v_csrf)).await.status, 403);
    assert_eq!(
        vera.post("/intel", &[("indicator", "198.51.100.1")], Some(&v_csrf))
            .await
            .status,
        403
    );
    assert_eq!(policy_version(addr).await, before);

    // An admin's post without the token, with another's, or from another
    // origin is refused.
    let csrf = b.csrf().await;
    let doc = [("document", "[rules]\n")];
    assert_eq!(b.post("/cluster/policy", &doc, None).await.status, 403);
    assert_eq!(
        b.post("/cluster/policy", &doc, Some(&v_csrf)).await.status,
        403
    );
    let body = format!("document=x&csrf={csrf}");
    assert_eq!(
        b.post_raw("/cluster/policy", body, Some("http://evil.example"))
            .await
            .status,
        403
    );
    assert_eq!(policy_version(addr).await, before);

    // A policy with an unknown key: the problem at the key, nothing changed.
    let bad = "[rules]\nbogus_key = 1\n";
    let refused = b
        .post("/cluster/policy", &[("document", bad)], Some(&csrf))
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body.contains(
            "<code>bogus_key = 1</code> <strong class=\"error\" data-key=\"rules.bogus_key\">"
        ),
        "{}",
        refused.body
    );
    assert!(refused.body.contains("unknown field"), "{}", refused.body);
    assert_eq!(policy_version(addr).await, before);

    // An analyst works the case through the forms; the API shows it.
    let mut ana = Browser::signed_in(addr, &id, &analyst).await;
    let a_csrf = ana.csrf().await;
    let done = ana.post(&ack, &[("assignee", "ana")], Some(&a_csrf)).await;
    assert_eq!(
        (done.status, done.header("location")),
        (303, format!("/alerts/{}", alert.id).as_str())
    );
    let note = format!("/alerts/{}/notes", alert.id);
    assert_eq!(
        ana.post(&note, &[("text", "<b>looked</b>")], Some(&a_csrf))
            .await
            .status,
        303
    );
    let (_, case) = common::get_json(addr, &format!("/api/v1/cases/{}", alert.id)).await;
    assert_eq!(case["case"]["status"], "acknowledged", "{case}");
    let page = ana.get(&format!("/alerts/{}", alert.id)).await;
    assert!(
        page.body.contains("&lt;b&gt;looked&lt;/b&gt;"),
        "the note, escaped"
    );

    // Demoted: refused at once; removed: signed out at once.
    let (code, v) = common::send(
        addr,
        Method::PUT,
        "/api/v1/operators/ana",
        Some(r#"{"role":"viewer"}"#.into()),
    )
    .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        ana.post(&note, &[("text", "again")], Some(&a_csrf))
            .await
            .status,
        403
    );
    let (code, v) = common::send(addr, Method::DELETE, "/api/v1/operators/vera", None).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(vera.get("/").await.status, 303);

    // Signing out ends the session.
    let out = b.post("/logout", &[], Some(&csrf)).await;
    assert_eq!(out.status, 303);
    assert_eq!(b.get("/").await.status, 303);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intel_added_in_the_console_raises_an_alert_the_page_streams() {
    let dir = tempfile::tempdir().expect("dir");
    let node = Node::start(common::quiet_config(dir.path(), &[]))
        .await
        .expect("node starts");
    let addr = node.api_addr();
    common::first_admin(addr).await;
    let id = node.identity().peer_id().to_string();
    let analyst = SigningKey::from_bytes(&rand::random());
    add_operator(addr, "ana", &analyst, "analyst").await;
    let mut b = Browser::signed_in(addr, &id, &analyst).await;
    let csrf = b.csrf().await;
    let added = b
        .post(
            "/intel",
            &[
                ("indicator", "203.0.113.0/24"),
                ("reason", "scanner"),
                ("expires_secs", "86400"),
            ],
            Some(&csrf),
        )
        .await;
    assert_eq!(added.status, 303, "{}", added.body);
    let intel = b.get("/intel").await;
    assert!(
        intel.body.contains("<code>203.0.113.0/24</code>"),
        "{}",
        intel.body
    );

    // The live stream, as the page's script opens it.
    let page = b.get("/alerts").await;
    assert!(
        page.body.contains("data-stream=\"/alerts/stream?\""),
        "{}",
        page.body
    );
    let mut stream = reqwest::Client::new()
        .get(format!("http://{addr}/alerts/stream"))
        .header("cookie", b.cookie.clone().expect("cookie"))
        .send()
        .await
        .expect("stream");
    assert_eq!(stream.status(), 200);
    assert!(
        stream
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/event-stream"))
    );
    node.inject(vec![flow_to(Ipv4Addr::new(203, 0, 113, 9))]);
    let row = tokio::time::timeout(Duration::from_secs(15), async {
        let mut seen = String::new();
        while let Ok(Some(chunk)) = stream.chunk().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains("event: row") && seen.contains("ioc_address") {
                return seen;
            }
        }
        seen
    })
    .await
    .expect("a row within 15 s");
    assert!(row.contains("destination_ip:203.0.113.9"), "{row}");
    assert!(row.contains("sig-valid"), "{row}");

    // Reloaded, the page has it; the intel page shows where it matched.
    let alerts = b.get("/alerts?rule=ioc_address").await;
    assert!(
        alerts.body.contains("destination_ip:203.0.113.9"),
        "{}",
        alerts.body
    );
    let intel = b.get("/intel").await;
    assert!(
        intel.body.contains("destination_ip:203.0.113.9"),
        "{}",
        intel.body
    );

    // Removed through the console.
    let csrf = b.csrf().await;
    let removed = b
        .post(
            "/intel/remove",
            &[("indicator", "203.0.113.0/24")],
            Some(&csrf),
        )
        .await;
    assert_eq!(removed.status, 303, "{}", removed.body);
    assert!(
        !b.get("/intel")
            .await
            .body
            .contains("<code>203.0.113.0/24</code>")
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_the_session_cookie_is_secure() {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let dir = tempfile::tempdir().expect("dir");
    let config = common::quiet_config(dir.path(), &["api.tls.enabled=true"]);
    let node = Node::start(config).await.expect("node starts with TLS");
    let pem = dir.path().join(amoskys_node::tls::SELF_SIGNED_CERT_FILE);
    let der = CertificateDer::from_pem_file(&pem).expect("the node wrote its certificate");
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_der(&der).expect("DER")])
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let key =
        amoskys_node::auth::load_signing_key(&dir.path().join(amoskys_node::auth::ADMIN_KEY_FILE))
            .expect("admin key");
    let id = node.identity().peer_id().to_string();
    let base = format!("https://localhost:{}", node.api_addr().port());
    let path = "/api/v1/console/login";
    let link: serde_json::Value = http
        .post(format!("{base}{path}"))
        .header(
            "authorization",
            console_client::signed(&key, &id, "POST", path, b""),
        )
        .send()
        .await
        .expect("answers over TLS")
        .json()
        .await
        .expect("JSON");
    let resp = http
        .get(format!("{base}{}", link["path"].as_str().expect("a path")))
        .send()
        .await
        .expect("answers over TLS");
    assert_eq!(resp.status(), 303);
    let cookie = resp.headers()["set-cookie"].to_str().expect("text");
    assert!(
        cookie.contains("; Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_link_expires_after_a_minute() {
    let dir = tempfile::tempdir().expect("dir");
    let node = Node::start(common::quiet_config(dir.path(), &[]))
        .await
        .expect("node starts");
    let (id, admin_key) = common::health(node.api_addr()).await;
    let key = amoskys_node::auth::load_signing_key(&admin_key).expect("admin key");
    let path = console_client::link(node.api_addr(), &id, &key).await;
    tokio::time::sleep(Duration::from_secs(61)).await;
    let late = Browser::new(node.api_addr()).get(&path).await;
    assert_eq!(late.status, 401, "an expired link: {}", late.body);
    assert!(late.header("set-cookie").is_empty(), "no session");
    node.shutdown().await;
}
