//! Two nodes in two network namespaces joined by a veth pair, with no
//! bootstrap peers: they find each other by mDNS and connect. Needs root
//! (CI runs as root); elsewhere it says why it was skipped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use amoskys_node::identity::{Identity, KEY_FILE};

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip runs");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Namespaces and node processes, removed when dropped.
struct Lan {
    names: [String; 2],
    children: Vec<Child>,
}

impl Drop for Lan {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for n in &self.names {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

#[test]
fn nodes_on_one_lan_find_each_other_by_mdns() {
    if !is_root() {
        eprintln!(
            "SKIPPED nodes_on_one_lan_find_each_other_by_mdns: needs root for network namespaces (CI runs as root)"
        );
        return;
    }
    let id = std::process::id();
    let mut lan = Lan {
        names: [format!("amk-m1-{id}"), format!("amk-m2-{id}")],
        children: Vec::new(),
    };
    let addrs = ["10.254.78.1", "10.254.78.2"];
    let devs = [format!("amkm1{id}"), format!("amkm2{id}")];
    for n in &lan.names {
        ip(&["netns", "add", n]);
    }
    ip(&[
        "link", "add", &devs[0], "type", "veth", "peer", "name", &devs[1],
    ]);
    for i in 0..2 {
        let (ns, dev) = (&lan.names[i], &devs[i]);
        ip(&["link", "set", dev, "netns", ns]);
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{}/30", addrs[i]),
            "dev",
            dev,
        ]);
        ip(&["-n", ns, "link", "set", dev, "up"]);
        ip(&["-n", ns, "link", "set", "lo", "up"]);
    }
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().expect("dir")).collect();
    let keys: Vec<String> = dirs
        .iter()
        .map(|d| {
            let k = Identity::generate();
            k.write(&d.path().join(KEY_FILE), false).expect("key");
            k.public_key_hex()
        })
        .collect();
    let admitted = format!("mesh.admitted=[\"{}\",\"{}\"]", keys[0], keys[1]);
    for i in 0..2 {
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &lan.names[i],
                env!("CARGO_BIN_EXE_amoskys"),
                "run",
            ])
            .args(["--log-format", "json", "--api-listen", "127.0.0.1:7300"])
            .arg("--data-dir")
            .arg(dirs[i].path())
            .args(["--set", &format!("mesh.listen=[\"{}:7301\"]", addrs[i])])
            .args(["--set", "mesh.mdns=true", "--set", &admitted])
            .args(["--set", "sensors.procfs.enabled=false"])
            .args(["--set", "sensors.flows.enabled=false"])
            .args(["--set", "sensors.ebpf.enabled=false"])
            .stderr(Stdio::piped())
            .spawn()
            .expect("node starts");
        let stderr = child.stderr.take().expect("stderr");
        lan.children.push(child);
        let mut lines = BufReader::new(stderr).lines();
        let started = lines
            .by_ref()
            .map_while(Result::ok)
            .take(300)
            .any(|l| l.contains("\"node started\""));
        assert!(started, "node {i} did not start");
        // Keep reading the log: a full pipe would block the node.
        std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
    }
    let end = Instant::now() + Duration::from_secs(45);
    loop {
        // The CLI signs as the node's local admin (same host, same account).
        let out = Command::new("ip")
            .args(["netns", "exec", &lan.names[0]])
            .arg(env!("CARGO_BIN_EXE_amoskys"))
            .args(["status", "--api", "127.0.0.1:7300", "--json"])
            .output()
            .expect("the CLI runs");
        let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let found = body["peers"].as_array().is_some_and(|p| {
            p.iter()
                .any(|x| x["address"].as_str().is_some_and(|a| a.contains(addrs[1])))
        });
        if found {
            break;
        }
        assert!(Instant::now() < end, "no peer found by mDNS: {body}");
        std::thread::sleep(Duration::from_millis(250));
    }
}
