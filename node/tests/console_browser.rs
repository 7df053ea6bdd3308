//! The web console in a real browser: Debian's Chromium, driven over
//! WebDriver by chromedriver, against three real nodes on loopback.
//! Skipped, saying why, when Chromium or chromedriver is missing (`.ci/deps
//! test` installs both).
//!
//! With `AMOSKYS_CONSOLE_SHOTS=DIR` the test also writes a 1280×800
//! screenshot of each page into DIR (docs/console/ holds the committed ones).

mod common;
#[path = "common/webdriver.rs"]
mod webdriver;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use amoskys_node::Node;
use common::{eventually, get_json, keyed_dirs, send, three_voters};
use reqwest::Method;
use serde_json::{Value, json};
use webdriver::{Driver, Session};

/// The read-only pages every role sees.
const PAGES: [&str; 7] = [
    "/", "/alerts", "/mesh", "/cluster", "/models", "/intel", "/audit",
];

/// A one-time sign-in link for the node's local admin, as
/// `amoskys operator login` prints it.
fn login_link(api: SocketAddr) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_amoskys"))
        .args(["operator", "login", "--api", &api.to_string()])
        .output()
        .expect("operator login runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A sign-in link for an operator holding `key` (a signed request of its
/// own, not the node's client).
async fn login_link_as(api: SocketAddr, key: &ed25519_dalek::SigningKey) -> String {
    let (id, _) = common::health(api).await;
    let path = "/api/v1/console/login";
    let auth = common::authorization(key, &id, "POST", path, b"");
    let v: Value = reqwest::Client::new()
        .post(format!("http://{api}{path}"))
        .header("authorization", auth)
        .send()
        .await
        .expect("the node answers")
        .json()
        .await
        .expect("JSON");
    format!("http://{api}{}", v["path"].as_str().expect("a link"))
}

/// Every URL the page and its resources came from.
async fn requested(s: &Session<'_>) -> Vec<String> {
    let v = s
        .execute(
            "return [location.href].concat(performance.getEntriesByType('resource').map(e => e.name));",
            vec![],
        )
        .await;
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// axe-core, fetched like the evaluation data: the PyPI wheel that ships
/// it, pinned by SHA-256, in the user's cache.
fn axe_source() -> String {
    const WHEEL: &str = "axe_playwright_python-0.1.8-py3-none-any.whl";
    const SHA256: &str = "fdd263c998388f1a8e67cad02677e612d946248bd44d163be5e8650ea31f95f8";
    let cache = std::env::var_os("AMOSKYS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/amoskys")
        })
        .join("axe");
    let wheel = cache.join(WHEEL);
    if !wheel.exists() {
        std::fs::create_dir_all(&cache).expect("cache dir");
        let out = Command::new("python3")
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--dest",
                &cache.display().to_string(),
                "axe-playwright-python==0.1.8",
            ])
            .output()
            .expect("pip runs");
        assert!(
            out.status.success(),
            "pip could not fetch axe-core: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let bytes = std::fs::read(&wheel).expect("the wheel");
    use sha2::Digest as _;
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&bytes)),
        SHA256,
        "{} is not the pinned wheel",
        wheel.display()
    );
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile; sys.stdout.write(zipfile.ZipFile(sys.argv[1]).read('axe_playwright_python/axe.min.js').decode())",
            &wheel.display().to_string(),
        ])
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "axe.min.js not in the wheel");
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// The serious and critical accessibility violations axe finds on the page.
async fn violations(s: &Session<'_>, axe: &str) -> Vec<String> {
    s.execute(&format!("{axe}\nreturn true;"), vec![]).await;
    let v = s
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             axe.run(document, {resultTypes: ['violations']}).then(r => done(\
               r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')\
                 .map(v => v.id + ': ' + v.help + ' (' + v.nodes.length + ')')));",
            vec![],
        )
        .await;
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn shot(s: &Session<'_>, name: &str) {
    if let Some(dir) = std::env::var_os("AMOSKYS_CONSOLE_SHOTS") {
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("shots dir");
        std::fs::write(dir.join(format!("{name}.png")), s.screenshot().await).expect("write");
    }
}

/// Waits until `probe` holds, for at most `limit`; answers how long it took.
async fn within<F, Fut>(limit: Duration, mut probe: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if probe().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_console_in_a_real_browser() {
    if let Some(why) = webdriver::unavailable() {
        eprintln!("SKIPPED the_console_in_a_real_browser: {why}");
        return;
    }
    let (dirs, admitted) = keyed_dirs(3);
    let [a, b, c] = three_voters(&dirs, &admitted).await;
    let driver = Driver::start().await;
    let base = |n: &Node| format!("http://{}", n.api_addr());

    // Sign in on a with the link `operator login` prints.
    let admin = driver.session(true).await;
    admin.goto(&login_link(a.api_addr())).await;
    assert_eq!(admin.url().await, format!("{}/", base(&a)), "signed in");

    // An alert raised on c appears on a's open alerts page, without reload.
    admin.goto(&format!("{}/alerts", base(&a))).await;
    let state = admin.find("#live-state").await;
    within(Duration::from_secs(10), || async {
        admin.text(&state).await.starts_with("Live")
    })
    .await
    .expect("the page's stream is open");
    let alert = common::raise(&c, Ipv4Addr::new(10, 7, 0, 1)).await;
    let row = format!("#alerts-live a[href=\"/alerts/{}\"]", alert.id);
    let took = within(Duration::from_secs(2), || async {
        !admin.find_all(&row).await.is_empty()
    })
    .await;
    assert!(
        took.is_some(),
        "c's alert {} not on a's page in 2 s",
        alert.id
    );
    eprintln!("c's alert on a's open page after {took:?}");

    // The overview counts it.
    admin.goto(&format!("{}/", base(&a))).await;
    let hour = admin.find("#alerts-hour").await;
    let counted = admin.text(&hour).await;
    assert!(counted.starts_with("1 alert in the last hour"), "{counted}");

    // Ack it on a with a note; b's page shows both.
    admin
        .goto(&format!("{}/alerts/{}", base(&a), alert.id))
        .await;
    let ack = admin
        .find("form[action$=\"/ack\"] button[type=submit]")
        .await;
    admin.click(&ack).await;
    // The form posts, the node answers with the alert's page again.
    within(Duration::from_secs(5), || async {
        admin.source().await.contains("acknowledged") && !admin.find_all("#note").await.is_empty()
    })
    .await
    .expect("the acknowledged case is shown");
    let note = admin.find("#note").await;
    admin.type_into(&note, "seen from the browser test").await;
    let add = admin
        .find("form[action$=\"/notes\"] button[type=submit]")
        .await;
    admin.click(&add).await;
    let noted = within(Duration::from_secs(5), || async {
        admin.source().await.contains("seen from the browser test")
    })
    .await;
    assert!(noted.is_some(), "{}", admin.source().await);
    let other = driver.session(true).await;
    other.goto(&login_link(b.api_addr())).await;
    let page_b = format!("{}/alerts/{}", base(&b), alert.id);
    let synced = within(Duration::from_secs(15), || async {
        other.goto(&page_b).await;
        let html = other.source().await;
        html.contains("seen from the browser test") && html.contains("acknowledged")
    })
    .await;
    assert!(
        synced.is_some(),
        "b shows the case: {}",
        other.source().await
    );
    other.close().await;

    // A policy edit with an unknown key: the problem at its key, nothing
    // changed.
    let (_, before) = get_json(a.api_addr(), "/api/v1/policy").await;
    admin.goto(&format!("{}/cluster", base(&a))).await;
    let doc = admin.find("#policy-doc").await;
    admin.type_into(&doc, "\nbogus_key = 1\n").await;
    let commit = admin
        .find("form[action=\"/cluster/policy\"] button[type=submit]")
        .await;
    admin.click(&commit).await;
    let problems = admin.wait_for("#policy-problems").await;
    let shown = admin.text(&problems).await;
    assert!(shown.contains("bogus_key"), "problem at its key: {shown}");
    let (_, after) = get_json(a.api_addr(), "/api/v1/policy").await;
    assert_eq!(before["in_force"]["version"], after["in_force"]["version"]);

    // Every page: only this node's origin, no serious accessibility
    // violation, a screenshot when asked.
    let axe = axe_source();
    for page in PAGES {
        admin.goto(&format!("{}{page}", base(&a))).await;
        for url in requested(&admin).await {
            assert!(
                url.starts_with(&base(&a)),
                "{page} requested {url}, not from the node"
            );
        }
        let name = if page == "/" { "overview" } else { &page[1..] };
        shot(&admin, name).await;
        let found = violations(&admin, &axe).await;
        assert!(found.is_empty(), "{page}: {found:?}");
    }
    admin
        .goto(&format!("{}/alerts/{}", base(&a), alert.id))
        .await;
    shot(&admin, "alert").await;
    let found = violations(&admin, &axe).await;
    assert!(found.is_empty(), "alert page: {found:?}");

    // A viewer: no edit controls, and a forged post with its session is
    // refused.
    let viewer_key = ed25519_dalek::SigningKey::from_bytes(&[77; 32]);
    let add = json!({
        "name": "vera",
        "key": hex::encode(viewer_key.verifying_key().to_bytes()),
        "role": "viewer",
    });
    let (status, body) = send(
        a.api_addr(),
        Method::POST,
        "/api/v1/operators",
        Some(add.to_string()),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let viewer = driver.session(true).await;
    let link = eventually(Duration::from_secs(10), || async {
        Some(login_link_as(a.api_addr(), &viewer_key).await)
    })
    .await
    .expect("a link");
    viewer.goto(&link).await;
    for page in ["/cluster", "/intel", "/models"] {
        viewer.goto(&format!("{}{page}", base(&a))).await;
        assert!(
            viewer.find_all("form.edit").await.is_empty(),
            "{page} offers a viewer an edit"
        );
    }
    let alert_page = format!("{}/alerts/{}", base(&a), alert.id);
    viewer.goto(&alert_page).await;
    assert!(viewer.find_all("form.edit").await.is_empty());
    let status = viewer
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             const token = document.querySelector('input[name=csrf]').value;\
             fetch(arguments[0], {method: 'POST', headers: {'content-type': 'application/x-www-form-urlencoded'},\
               body: 'csrf=' + encodeURIComponent(token) + '&status=resolved'})\
               .then(r => done(r.status), e => done(String(e)));",
            vec![json!(format!("/alerts/{}/status", alert.id))],
        )
        .await;
    assert_eq!(status, json!(403), "a viewer's forged post");
    viewer.close().await;

    // Without JavaScript the read-only pages render whole.
    let plain = driver.session(false).await;
    plain.goto(&login_link(a.api_addr())).await;
    for page in PAGES {
        plain.goto(&format!("{}{page}", base(&a))).await;
        let html = plain.source().await;
        assert!(html.contains("<main"), "{page} without JavaScript: {html}");
        assert!(plain.find_all("h1").await.len() == 1, "{page}: one heading");
    }
    plain.goto(&format!("{}/alerts", base(&a))).await;
    assert!(
        !plain
            .find_all(&format!("#alerts-live a[href=\"/alerts/{}\"]", alert.id))
            .await
            .is_empty(),
        "the alert is listed without JavaScript"
    );
    plain.close().await;
    admin.close().await;
    drop(driver);
    for n in [a, b, c] {
        n.shutdown().await;
    }
}
