//! Two nodes in two network namespaces joined by a veth pair, with no
//! bootstrap peers: they find each other by mDNS and connect. Needs root
//! (CI runs as root); elsewhere it says why it was skipped.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use amoskys_node::identity::{Identity, KEY_FILE};

/// Node processes, stopped before their namespaces are removed.
struct Lan {
    children: Vec<Child>,
    net: common::VethPair,
}

impl Drop for Lan {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn nodes_on_one_lan_find_each_other_by_mdns() {
    if !common::is_root() {
        eprintln!(
            "SKIPPED nodes_on_one_lan_find_each_other_by_mdns: needs root for network namespaces (CI runs as root)"
        );
        return;
    }
    let addrs = ["10.254.78.1", "10.254.78.2"];
    let mut lan = Lan {
        children: Vec::new(),
        net: common::VethPair::new("m", addrs),
    };
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
                &lan.net.names[i],
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
            .args(["netns", "exec", &lan.net.names[0]])
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
