//! The lab of the live attack tests: two network namespaces joined by a
//! veth pair, a node started in the target one, its alerts.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use amoskys_mesh::Alert;

pub const ATTACKER: &str = "10.254.77.1";
pub const TARGET: &str = "10.254.77.2";
/// A second address of the attacker, for the slow scan.
pub const SLOW: &str = "10.254.77.3";
pub const SLOW_SOURCE: &str = "10.254.77.3/29";

pub fn skip_reason() -> Option<String> {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    if !root {
        return Some("needs root for network namespaces (CI runs as root)".into());
    }
    for tool in [
        "/usr/bin/nmap",
        "/usr/sbin/hping3",
        "/usr/bin/hydra",
        "/usr/sbin/sshd",
        "/usr/bin/ssh-keygen",
        "/usr/bin/python3",
    ] {
        if !std::path::Path::new(tool).exists() {
            return Some(format!(
                "{tool} missing (apt-get install nmap hping3 hydra openssh-server python3)"
            ));
        }
    }
    None
}

pub fn run(args: &[&str]) -> std::process::Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("command runs");
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Two namespaces joined by a veth pair; everything in them is killed and
/// they are deleted on drop, also when the test fails.
pub struct Lab {
    pub attacker: String,
    pub attacker_if: String,
    pub target: String,
    pub target_if: String,
    pub dir: tempfile::TempDir,
    pub children: Vec<Child>,
    /// The node started last, an index in `children`.
    node: Option<usize>,
}

impl Lab {
    /// `tag` (one letter) keeps the names of tests running at once apart.
    pub fn new(tag: &str) -> Lab {
        let id = std::process::id();
        let (attacker, target) = (format!("amk-la{tag}-{id}"), format!("amk-lt{tag}-{id}"));
        let (va, vt) = (format!("amka{tag}{id}"), format!("amkt{tag}{id}"));
        let lab = Lab {
            attacker: attacker.clone(),
            attacker_if: va.clone(),
            target: target.clone(),
            target_if: vt.clone(),
            dir: tempfile::tempdir().expect("tempdir"),
            children: Vec::new(),
            node: None,
        };
        run(&["ip", "netns", "add", &attacker]);
        run(&["ip", "netns", "add", &target]);
        run(&[
            "ip", "link", "add", &va, "type", "veth", "peer", "name", &vt,
        ]);
        run(&["ip", "link", "set", &va, "netns", &attacker]);
        run(&["ip", "link", "set", &vt, "netns", &target]);
        run(&[
            "ip",
            "-n",
            &attacker,
            "addr",
            "add",
            &format!("{ATTACKER}/29"),
            "dev",
            &va,
        ]);
        run(&[
            "ip",
            "-n",
            &target,
            "addr",
            "add",
            &format!("{TARGET}/29"),
            "dev",
            &vt,
        ]);
        for (ns, dev) in [(&attacker, &va), (&target, &vt)] {
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            run(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        lab
    }

    pub fn exec(&self, ns: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).args(args);
        c
    }

    /// Runs a bounded command in the attacker namespace.
    pub fn attack(&self, seconds: u32, args: &[&str]) {
        self.attack_tries(1, seconds, args);
    }

    /// [`Lab::attack`], run again (at most `tries` times in all) while it
    /// fails: on a loaded host a tool's first connection can time out.
    pub fn attack_tries(&self, tries: u32, seconds: u32, args: &[&str]) {
        let limit = seconds.to_string();
        let mut full = vec!["timeout", limit.as_str()];
        full.extend_from_slice(args);
        for attempt in 1..=tries {
            let out = self
                .exec(&self.attacker, &full)
                .output()
                .expect("attack runs");
            // nmap and hydra exit 0; hping3 exits 1 when every reply was a RST.
            if matches!(out.status.code(), Some(0 | 1)) {
                return;
            }
            assert!(
                attempt < tries,
                "{args:?}: {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_secs(2));
        }
    }
}

impl Lab {
    /// Starts `args` in namespace `ns` in the background (output dropped);
    /// killed on drop at the latest.
    pub fn spawn(&mut self, ns: &str, args: &[&str]) -> usize {
        let child = self
            .exec(ns, args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("background command starts");
        self.children.push(child);
        self.children.len() - 1
    }

    /// Waits up to `limit` for background command `i` to exit, then kills it.
    pub fn finish(&mut self, i: usize, limit: Duration) {
        let child = &mut self.children[i];
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// A TCP server on `TARGET:port` in the target namespace that accepts
    /// and closes every connection; returns once it listens.
    pub fn listen(&mut self, port: u16) -> usize {
        let script = format!(
            "import socket\ns = socket.socket()\n\
             s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             s.bind(('{TARGET}', {port}))\ns.listen(4096)\n\
             while True:\n    c, _ = s.accept()\n    c.close()\n"
        );
        let target = self.target.clone();
        let i = self.spawn(
            &target,
            &["timeout", "600", "/usr/bin/python3", "-c", &script],
        );
        let filter = format!("sport = :{port}");
        for _ in 0..100 {
            let out = self
                .exec(&target, &["ss", "-Hltn", &filter])
                .output()
                .expect("ss runs");
            if !out.stdout.is_empty() {
                return i;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the test server on port {port} does not listen");
    }

    /// Stops the node started last (SIGTERM: a clean shutdown).
    pub fn stop_node(&mut self) {
        let Some(i) = self.node.take() else {
            return;
        };
        let pid = self.children[i].id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.finish(i, Duration::from_secs(20));
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in [&self.attacker, &self.target] {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Starts `amoskys run` in the target namespace, capturing on the target's
/// veth (host sensors off so that other activity on this machine cannot
/// add alerts), with `sets` on top; answers its API address.
pub fn start_node(lab: &mut Lab, dir: &std::path::Path, sets: &[&str]) -> String {
    let (ns, iface) = (lab.target.clone(), lab.target_if.clone());
    start_node_in(lab, &ns, &iface, dir, sets)
}

/// [`start_node`] in namespace `ns`, capturing on `iface`.
pub fn start_node_in(
    lab: &mut Lab,
    ns: &str,
    iface: &str,
    dir: &std::path::Path,
    sets: &[&str],
) -> String {
    let data = dir.join("node").to_string_lossy().into_owned();
    let interfaces = format!("sensors.flows.interfaces=[\"{iface}\"]");
    let mut args = vec![
        env!("CARGO_BIN_EXE_amoskys"),
        "run",
        "--log-format",
        "json",
        "--api-listen",
        "127.0.0.1:0",
        "--data-dir",
        &data,
        "--set",
        "mesh.listen=[\"127.0.0.1:0\"]",
        "--set",
        &interfaces,
        "--set",
        "sensors.procfs.enabled=false",
        "--set",
        "sensors.ebpf.enabled=false",
    ];
    for set in sets {
        args.extend(["--set", set]);
    }
    let mut node = lab
        .exec(ns, &args)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start node");
    let stderr = node.stderr.take().expect("stderr");
    lab.node = Some(lab.children.len());
    lab.children.push(node);
    let mut lines = BufReader::new(stderr).lines();
    let mut api = None;
    for line in lines.by_ref().map_while(Result::ok).take(200) {
        let log: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if log["message"] == "node started" {
            api = log["api"].as_str().map(str::to_owned);
            break;
        }
    }
    let api = api.expect("node started in its namespace");
    // Keep reading the log: a full pipe would block the node.
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
    api
}

pub fn alerts(lab: &Lab, api: &str) -> Vec<Alert> {
    alerts_in(lab, &lab.target, api)
}

/// The alerts of the node in namespace `ns` whose API is `api`.
pub fn alerts_in(lab: &Lab, ns: &str, api: &str) -> Vec<Alert> {
    let out = lab
        .exec(
            ns,
            &[
                env!("CARGO_BIN_EXE_amoskys"),
                "alerts",
                "export",
                "--api",
                api,
            ],
        )
        .output()
        .expect("export runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| Alert::decode(l.as_bytes()).expect("every exported alert verifies"))
        .collect()
}

pub fn wait_for_alert(lab: &Lab, api: &str, rule: &str) -> Alert {
    wait_for_alert_within(lab, api, rule, Duration::from_secs(20))
}

pub fn wait_for_alert_within(lab: &Lab, api: &str, rule: &str, limit: Duration) -> Alert {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if let Some(a) = alerts(lab, api).into_iter().find(|a| a.body.rule == rule) {
            return a;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!(
        "no {rule} alert within {limit:?}; alerts: {:?}",
        alerts(lab, api)
    );
}
