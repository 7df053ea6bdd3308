//! Mesh-agreed response on three real nodes, each in its own network
//! namespace (so each has its own nftables table): an attacker scans node
//! A; within 2 s of the decision the attacker's new connections to A, B
//! and C are dropped while the nodes still reach each other; after the
//! decision expires the attacker connects again; a decision against a
//! member's address is refused; in `observe` mode a scan of B is decided
//! but nothing is dropped; a node stopped with SIGTERM removes its table.
//! Needs root, iproute2, iptables, nftables and nmap; cleans up on failure
//! too (`Drop`).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use amoskys_testnet::{Options, Testnet};

/// The port every host listens on for the attacker's probes.
const PORT: u16 = 8480;

fn policy(net: &Testnet, mode: &str, version_after: Option<u64>) -> u64 {
    let file = net.dir.join(format!("policy-{mode}.toml"));
    std::fs::write(
        &file,
        format!(
            "[response]\nmode = \"{mode}\"\nrules = [{{ rule = \"port_scan\", min_severity = \"medium\", min_nodes = 1, action = \"block_source\", duration = \"6s\" }}]\n"
        ),
    )
    .expect("policy file");
    let bin = net.amoskys.to_string_lossy().into_owned();
    let api = format!("127.0.0.1:{}", amoskys_testnet::API_PORT);
    net.exec(
        &net.hosts[0].ns,
        &[
            &bin,
            "policy",
            "set",
            &file.to_string_lossy(),
            "--api",
            &api,
        ],
    )
    .expect("policy set");
    let mut version = 0;
    net.until("the policy on every node", Duration::from_secs(30), |n| {
        let vs: Vec<Option<u64>> = (0..3)
            .map(|i| {
                n.api(i, &["policy", "show", "--json"])
                    .ok()
                    .and_then(|v| v["in_force"]["version"].as_u64())
            })
            .collect();
        version = vs[0].unwrap_or(0);
        vs.iter()
            .all(|v| *v == vs[0] && v.is_some() && *v > version_after)
    })
    .expect("policy in force");
    version
}

/// Starts a TCP server on host `i` that accepts and closes connections
/// (killed with the testnet's namespaces at the latest).
fn listen(net: &Testnet, i: usize) -> std::process::Child {
    let addr = &net.hosts[i].addr;
    let script = format!(
        "import socket\ns = socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('{addr}', {PORT}))\ns.listen(1024)\n\
         while True:\n    c, _ = s.accept()\n    c.close()\n"
    );
    Command::new("ip")
        .args(["netns", "exec", &net.hosts[i].ns, "timeout", "300"])
        .args(["/usr/bin/python3", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("listener starts")
}

/// Whether a new TCP connection from namespace `ns` to each address
/// succeeds within 400 ms (tried at once).
fn connects(ns: &str, addrs: &[String]) -> Vec<bool> {
    let children: Vec<_> = addrs
        .iter()
        .map(|a| {
            Command::new("ip")
                .args(["netns", "exec", ns, "timeout", "0.4", "bash", "-c"])
                .arg(format!("exec 3<>/dev/tcp/{a}/{PORT}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("probe starts")
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().is_ok_and(|o| o.status.success()))
        .collect()
}

fn decisions(net: &Testnet, i: usize) -> Vec<serde_json::Value> {
    net.api(i, &["decisions", "list", "--json"])
        .ok()
        .and_then(|v| v["decisions"].as_array().cloned())
        .unwrap_or_default()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Runs a scan of host `i` to its end.
fn scan(net: &Testnet, i: usize) {
    let cmd = amoskys_testnet::scan_command(&net.hosts[i].addr);
    let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
    net.exec(&net.attacker_ns, &args).expect("nmap runs");
}

fn unavailable() -> Option<String> {
    if let Some(why) = amoskys_testnet::unavailable() {
        return Some(why);
    }
    for tool in ["/usr/bin/nmap", "/usr/sbin/nft", "/usr/bin/python3"] {
        if !std::path::Path::new(tool).exists() {
            return Some(format!(
                "{tool} missing (apt-get install nmap nftables python3)"
            ));
        }
    }
    None
}

#[test]
fn a_scan_of_one_node_is_dropped_by_every_node_until_the_decision_expires() {
    if let Some(why) = unavailable() {
        println!("SKIPPED response: {why}");
        return;
    }
    let bin = amoskys_testnet::built_amoskys();
    assert!(bin.exists(), "{} not built", bin.display());
    let dir = std::env::temp_dir().join(format!("amoskys-response-{}", std::process::id()));
    let net = Testnet::up(&Options {
        nodes: 3,
        amoskys: bin,
        dir,
        sets: vec![
            "sensors.procfs.enabled=false".into(),
            "learning.enabled=false".into(),
            "cluster.heartbeat_ms=100".into(),
            "cluster.election_min_ms=400".into(),
            "cluster.election_max_ms=800".into(),
            "workspace.sync_every_ms=500".into(),
        ],
    })
    .expect("testnet up");
    net.until("a cluster of three", Duration::from_secs(60), |n| {
        (0..3).all(|i| {
            n.api(i, &["cluster", "status", "--json"])
                .is_ok_and(|v| v["cluster"]["voters"].as_array().map_or(0, Vec::len) == 3)
        })
    })
    .expect("cluster formed");
    let v1 = policy(&net, "enforce", None);
    let addrs: Vec<String> = net.hosts.iter().map(|h| h.addr.clone()).collect();
    let mut servers: Vec<_> = (0..3).map(|i| listen(&net, i)).collect();
    net.until(
        "the attacker reaches every node",
        Duration::from_secs(10),
        |n| connects(&n.attacker_ns, &addrs).iter().all(|c| *c),
    )
    .expect("open before the scan");
    net.until("every bouncer healthy", Duration::from_secs(10), |n| {
        (0..3).all(|i| {
            n.api(i, &["status", "--json"]).is_ok_and(|v| {
                v["response"]["healthy"] == true && v["response"]["mode"] == "enforce"
            })
        })
    })
    .expect("bouncers up");

    // The scan of A becomes a decision against the attacker, written by A;
    // the attacker's probes run all along, so the first round that every
    // node drops is timed against the decision's creation.
    let cmd = amoskys_testnet::scan_command(&net.hosts[0].addr);
    let mut nmap = Command::new("ip")
        .args(["netns", "exec", &net.attacker_ns])
        .args(&cmd)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nmap starts");
    let mut dropped_at = None;
    let end = Instant::now() + Duration::from_secs(40);
    while Instant::now() < end {
        if connects(&net.attacker_ns, &addrs).iter().all(|c| !c) {
            dropped_at = Some(now_ms());
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = nmap.wait();
    let dropped_at = dropped_at.expect("the attacker is dropped by every node");
    let attacker = net.attacker_addr();
    let decision = decisions(&net, 0)
        .into_iter()
        .find(|d| d["subject"] == attacker.as_str())
        .expect("a decision against the attacker");
    let created = decision["created_ms"].as_u64().expect("created_ms");
    let expires = decision["expires_ms"].as_u64().expect("expires_ms");
    assert!(
        decision["origin"]
            .as_str()
            .is_some_and(|o| o.starts_with("rule:port_scan@")),
        "{decision}"
    );
    assert!(dropped_at + 100 >= created, "dropped before the decision");
    let took = dropped_at.saturating_sub(created);
    println!("attacker dropped by A, B and C {took} ms after the decision");
    assert!(took <= 2_000, "dropped {took} ms after the decision");
    // The nodes still reach each other, and the attacker stays dropped.
    for (from, to) in [(1, 0), (2, 1), (0, 2)] {
        let ok = connects(&net.hosts[from].ns, std::slice::from_ref(&addrs[to]));
        assert!(ok[0], "node {from} cannot reach node {to} during the block");
    }
    for i in 0..3 {
        let out = net
            .exec(
                &net.hosts[i].ns,
                &["nft", "list", "set", "inet", "amoskys", "block4"],
            )
            .expect("the set exists");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&attacker),
            "node {i} holds the attacker"
        );
    }

    // After expiry the attacker connects again, and the sets are empty.
    let wait = expires.saturating_sub(now_ms()) + 3_000;
    net.until(
        "the attacker connects after expiry",
        Duration::from_millis(wait),
        |n| connects(&n.attacker_ns, &addrs).iter().all(|c| *c),
    )
    .expect("open after expiry");
    let late = now_ms().saturating_sub(expires);
    println!("attacker connects again {late} ms after expiry");
    for i in 0..3 {
        let out = net
            .exec(
                &net.hosts[i].ns,
                &["nft", "list", "set", "inet", "amoskys", "block4"],
            )
            .expect("the set exists");
        assert!(!String::from_utf8_lossy(&out.stdout).contains(&attacker));
    }

    // A decision against a member's address is refused and counted.
    let api = format!("127.0.0.1:{}", amoskys_testnet::API_PORT);
    let out = Command::new("ip")
        .args(["netns", "exec", &net.hosts[0].ns])
        .arg(&net.amoskys)
        .args([
            "decisions",
            "add",
            &addrs[1],
            "--duration",
            "1m",
            "--api",
            &api,
        ])
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("admitted member"),
        "{err}"
    );
    let status = net.api(0, &["status", "--json"]).expect("status");
    assert!(
        status["response"]["refused"]["member"].as_u64() >= Some(1),
        "{status}"
    );

    // In observe mode a scan of B is decided, and nothing is dropped.
    let v2 = policy(&net, "observe", Some(v1));
    net.until(
        "the table gone in observe mode",
        Duration::from_secs(10),
        |n| {
            (0..3).all(|i| {
                n.exec(&n.hosts[i].ns, &["nft", "list", "table", "inet", "amoskys"])
                    .is_err()
            })
        },
    )
    .expect("no table");
    scan(&net, 1);
    net.until(
        "a decision recorded in observe mode",
        Duration::from_secs(30),
        |n| {
            decisions(n, 2)
                .iter()
                .any(|d| d["subject"] == attacker.as_str())
        },
    )
    .expect("recorded");
    for _ in 0..10 {
        assert!(
            connects(&net.attacker_ns, &addrs).iter().all(|c| *c),
            "observe mode dropped the attacker"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // A node stopped with SIGTERM removes its table.
    policy(&net, "enforce", Some(v2));
    let table = |n: &Testnet| {
        n.exec(&n.hosts[2].ns, &["nft", "list", "table", "inet", "amoskys"])
            .is_ok()
    };
    net.until(
        "the table back in enforce mode",
        Duration::from_secs(10),
        table,
    )
    .expect("table installed");
    let pid = net.hosts[2].pid.expect("node 2 runs").to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    net.until("node 2 stopped", Duration::from_secs(25), |_| {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z "))
    })
    .expect("node 2 stops");
    assert!(!table(&net), "the stopped node's table is gone");
    for s in &mut servers {
        let _ = s.kill();
        let _ = s.wait();
    }
}
