//! Three `amoskys run` processes on loopback: an alert raised by one is
//! stored by the others; one is killed with SIGKILL, misses an alert, and
//! when started again still holds what it had acknowledged and fetches what
//! it missed, with no alert stored twice.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use amoskys_mesh::Alert;
use common::get_json;

/// A node process; killed when dropped.
struct Proc {
    child: Child,
    api: String,
    mesh_port: u16,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(dir: &Path, sets: &[String]) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_amoskys"));
    cmd.args(["run", "--log-format", "json", "--api-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir)
        .args(["--set", "mesh.listen=[\"127.0.0.1:0\"]"])
        .args(["--set", "sensors.flows.enabled=false"])
        .args(["--set", "sensors.ebpf.enabled=false"])
        .args(["--set", "sensors.procfs.interval_ms=20"]);
    for s in sets {
        cmd.args(["--set", s]);
    }
    let mut child = cmd.stderr(Stdio::piped()).spawn().expect("node starts");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let (mut api, mut mesh_port) = (None, None);
    for line in lines.by_ref().map_while(Result::ok).take(500) {
        let log: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if log["message"] == "node started" {
            api = log["api"].as_str().map(str::to_owned);
        }
        if log["message"] == "mesh listening"
            && let Some(addr) = log["address"].as_str()
            && let Some(port) = addr.split("/tcp/").nth(1)
        {
            mesh_port = port.parse().ok();
        }
        if api.is_some() && mesh_port.is_some() {
            break;
        }
    }
    // Keep reading the log: a full pipe would block the node.
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
    Proc {
        child,
        api: api.expect("the node logs its API address"),
        mesh_port: mesh_port.expect("the node logs its mesh address"),
    }
}

async fn alerts(api: &str) -> Vec<Alert> {
    let (_, body) = get_json(api.parse().expect("api addr"), "/api/v1/alerts?limit=1000").await;
    serde_json::from_value(body["alerts"].clone()).unwrap_or_default()
}

async fn shells(api: &str) -> Vec<Alert> {
    alerts(api)
        .await
        .into_iter()
        .filter(|a| a.body.rule == "service_spawned_shell")
        .collect()
}

/// Polls `probe` every 50 ms until it gives a value, for at most `limit`.
macro_rules! wait_for {
    ($what:expr, $limit:expr, $probe:expr) => {{
        let end = Instant::now() + $limit;
        loop {
            if let Some(v) = $probe {
                break v;
            }
            assert!(Instant::now() < end, "timed out waiting for {}", $what);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }};
}

/// A "web server" spawning a shell; the watching node raises an alert.
fn attack(bin: &Path) {
    let nginx = bin.join("nginx");
    if !nginx.exists() {
        std::fs::copy("/bin/bash", &nginx).expect("copy bash");
    }
    let _ = Command::new(&nginx)
        .args(["-c", "/bin/sh -c 'sleep 1'; true"])
        .status();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_keeps_what_it_stored_and_fetches_what_it_missed() {
    let (dirs, admitted) = common::keyed_dirs(3);
    let a = spawn(dirs[0].path(), std::slice::from_ref(&admitted));
    let peer_sets = vec![
        admitted.clone(),
        format!("mesh.bootstrap=[\"127.0.0.1:{}\"]", a.mesh_port),
        "sensors.procfs.enabled=false".to_owned(),
    ];
    let b = spawn(dirs[1].path(), &peer_sets);
    let c = spawn(dirs[2].path(), &peer_sets);
    let a_api = a.api.parse().expect("api addr");
    wait_for!("a to see both peers", Duration::from_secs(20), {
        let (_, body) = get_json(a_api, "/api/v1/peers").await;
        (body["peers"].as_array().map_or(0, Vec::len) == 2).then_some(())
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let bin = tempfile::tempdir().expect("tempdir");
    attack(bin.path());
    let first = wait_for!(
        "a's alert",
        Duration::from_secs(10),
        shells(&a.api).await.pop()
    );
    for p in [&b, &c] {
        wait_for!("the alert on a peer", Duration::from_secs(10), {
            shells(&p.api)
                .await
                .iter()
                .any(|x| x.id == first.id)
                .then_some(())
        });
    }

    // c crashes; a raises another alert meanwhile.
    drop(c);
    attack(bin.path());
    let second = wait_for!("a's second alert", Duration::from_secs(10), {
        shells(&a.api).await.into_iter().find(|x| x.id != first.id)
    });
    wait_for!("the second alert on b", Duration::from_secs(10), {
        shells(&b.api)
            .await
            .iter()
            .any(|x| x.id == second.id)
            .then_some(())
    });

    // c comes back over the same data directory.
    let c = spawn(dirs[2].path(), &peer_sets);
    let held = shells(&c.api).await;
    assert!(
        held.iter().any(|x| x.id == first.id),
        "acknowledged before the crash, kept"
    );
    let held = wait_for!("c to fetch what it missed", Duration::from_secs(20), {
        let h = alerts(&c.api).await;
        h.iter().any(|x| x.id == second.id).then_some(h)
    });
    let mut ids: Vec<&str> = held.iter().map(|x| x.id.as_str()).collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "no alert stored twice");
    for x in &held {
        x.verify().expect("every stored alert verifies");
    }
}
