//! Another account on the node's host: without the node's local admin
//! credential it gets 401 from every write route and cannot read the
//! credential; the same commands as the account the node runs as work with
//! no set-up. Needs root (to run commands as another account with
//! `setpriv`); says so and skips otherwise.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use amoskys_node::Node;
use amoskys_node::auth::{ADMIN_KEY_FILE, ROUTES};

const BIN: &str = env!("CARGO_BIN_EXE_amoskys");
const NOBODY: u32 = 65534;

/// `setpriv` as nobody, then `args`.
fn as_nobody(args: &[&str]) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        format!("--reuid={NOBODY}"),
        format!("--regid={NOBODY}"),
        "--clear-groups".into(),
        "--".into(),
    ])
    .args(args)
    .env_remove("AMOSKYS_OPERATOR_KEY")
    .current_dir("/");
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_local_account_gets_401_and_root_needs_no_setup() {
    if !common::is_root() {
        eprintln!(
            "SKIPPED local account test: needs root to run commands as another account (setpriv)"
        );
        return;
    }
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("SKIPPED local account test: curl is not installed (.ci/deps test installs it)");
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    // The data dir is readable by others, as a careless one could be: the
    // credential's own mode must still keep it private.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let node = Node::start(common::quiet_config(dir.path(), &[]))
        .await
        .expect("node starts");
    let addr = node.api_addr();
    common::first_admin(addr).await;
    let key = dir.path().join(ADMIN_KEY_FILE);
    let meta = std::fs::metadata(&key).expect("admin.key");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.uid(), 0, "root-owned when the node runs as root");

    let cat = as_nobody(&["cat", key.to_str().expect("utf-8")])
        .output()
        .expect("cat runs");
    assert!(!cat.status.success(), "nobody read the admin credential");

    let mut writes = 0;
    for (method, route, _) in ROUTES.iter().filter(|(m, _, _)| *m != "GET") {
        let path = route
            .replace("{version}", "1")
            .replace("{id}", &"ab".repeat(32))
            .replace("{alert}", &"cd".repeat(32))
            .replace("{name}", "admin");
        let url = format!("http://{addr}{path}");
        let out = as_nobody(&[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            method,
            "-H",
            "content-type: application/json",
            "-d",
            "{}",
            &url,
        ])
        .output()
        .expect("curl runs");
        let code = String::from_utf8_lossy(&out.stdout);
        assert_eq!(code, "401", "{method} {path} as nobody");
        writes += 1;
        // Failed authentications from one address refill at 5 a second
        // after a burst of 20: keep under it, so every answer is the 401.
        tokio::time::sleep(std::time::Duration::from_millis(220)).await;
    }
    assert!(writes >= 15, "only {writes} write routes");

    // The CLI as nobody finds the credential, cannot read it, and says so.
    let policy = tempfile::NamedTempFile::new().expect("file");
    std::fs::write(policy.path(), "[rules]\nscan_min_ports = 30\n").expect("policy");
    std::fs::set_permissions(policy.path(), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let api = addr.to_string();
    let out = as_nobody(&[
        BIN,
        "policy",
        "set",
        policy.path().to_str().expect("utf-8"),
        "--api",
        &api,
    ])
    .output()
    .expect("the CLI runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("(401)") && err.contains("no credential"),
        "{err}"
    );
    assert!(
        err.contains(ADMIN_KEY_FILE),
        "the message names the credential: {err}"
    );

    // As root, the same command needs no set-up.
    let out = Command::new(BIN)
        .args(["policy", "set"])
        .arg(policy.path())
        .args(["--api", &api])
        .env_remove("AMOSKYS_OPERATOR_KEY")
        .output()
        .expect("the CLI runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    node.shutdown().await;
}
