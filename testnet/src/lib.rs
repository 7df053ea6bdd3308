//! Testnets of real AMOSKYS processes in network namespaces.
//!
//! `Testnet::up(n)` makes, under a name prefix of its own: a bridge in a
//! namespace of its own (the host's addresses and routes are never
//! touched), `n` host namespaces each with one `amoskys` node, a device
//! namespace with a real `snmpd` that every node polls, and an attacker
//! namespace for nmap, hping3 and hydra. All sit on 10.N.0.0/24 behind the
//! bridge. Fault verbs: `partition` (iptables drops between groups), `heal`,
//! `kill` / `restart` a node, and `loss` (iptables `statistic` drops, since
//! netem may be absent). `down` (and `Drop`) kill every process and delete
//! every namespace and link; the state lives in a directory, so the
//! `amoskys-testnet` command can drive one testnet across invocations.
//!
//! Needs root, iproute2, iptables; snmpd for the device; nmap, hping3 and
//! hydra for attacks.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The node API port inside every host namespace (on its loopback).
pub const API_PORT: u16 = 7300;
/// The mesh port on every host's address.
pub const MESH_PORT: u16 = 7301;

#[derive(Debug, thiserror::Error)]
pub enum TestnetError {
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    State(String),
    #[error("timed out: {0}")]
    Timeout(String),
}

/// The `amoskys` binary for a test or tool built by cargo: `AMOSKYS_BIN`,
/// else the one in the same target directory as the running executable
/// (`target/<profile>/deps/test-…` → `target/<profile>/amoskys`).
pub fn built_amoskys() -> PathBuf {
    if let Some(p) = std::env::var_os("AMOSKYS_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    exe.ancestors()
        .skip(1)
        .map(|d| d.join("amoskys"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("amoskys"))
}

/// A short real TCP SYN scan of 200 ports of `addr` (raises a vertical
/// port-scan alert on the node that sees it).
pub fn scan_command(addr: &str) -> Vec<String> {
    [
        "/usr/bin/nmap",
        "-sS",
        "-p",
        "1-200",
        "--max-rate",
        "200",
        "-n",
        "-Pn",
        "--max-retries",
        "1",
        addr,
    ]
    .map(String::from)
    .to_vec()
}

/// Why testnets cannot run here, if they cannot.
pub fn unavailable() -> Option<String> {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    if !root {
        return Some("needs root for network namespaces (CI runs as root)".into());
    }
    for tool in ["/usr/sbin/ip", "/usr/sbin/iptables"] {
        let alt = tool.replace("/usr/sbin", "/sbin");
        if !Path::new(tool).exists() && !Path::new(&alt).exists() {
            return Some(format!(
                "{tool} missing (apt-get install iproute2 iptables)"
            ));
        }
    }
    None
}

fn run(args: &[&str]) -> Result<Output, TestnetError> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|source| TestnetError::Spawn {
            command: args.join(" "),
            source,
        })?;
    if !out.status.success() {
        return Err(TestnetError::Command {
            command: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(out)
}

/// One host of the testnet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Host {
    pub ns: String,
    pub addr: String,
    pub public_key: String,
    pub peer_id: String,
    pub pid: Option<u32>,
}

/// A testnet's state, kept in `state.json` of its directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Testnet {
    pub prefix: String,
    pub dir: PathBuf,
    pub subnet: u8,
    pub bridge_ns: String,
    pub attacker_ns: String,
    pub device_ns: String,
    pub hosts: Vec<Host>,
    pub amoskys: PathBuf,
    pub snmpd_pid: Option<u32>,
    /// Whether `Drop` tears it down (false for the command, which keeps it
    /// up between invocations).
    #[serde(skip)]
    pub owned: bool,
}

/// Settings of a new testnet.
#[derive(Debug, Clone)]
pub struct Options {
    pub nodes: usize,
    /// The `amoskys` binary the hosts run.
    pub amoskys: PathBuf,
    pub dir: PathBuf,
    /// Extra `--set KEY=VALUE` for every node.
    pub sets: Vec<String>,
}

impl Testnet {
    fn addr(subnet: u8, last: u8) -> String {
        format!("10.{subnet}.0.{last}")
    }

    pub fn attacker_addr(&self) -> String {
        Self::addr(self.subnet, 2)
    }

    pub fn device_addr(&self) -> String {
        Self::addr(self.subnet, 3)
    }

    /// Creates the namespaces, the bridge, the device and the nodes.
    pub fn up(opts: &Options) -> Result<Testnet, TestnetError> {
        if let Some(why) = unavailable() {
            return Err(TestnetError::State(why));
        }
        let pid = std::process::id();
        let prefix = format!("atn{}", pid % 100_000);
        let subnet = 100 + (pid % 100) as u8;
        std::fs::create_dir_all(&opts.dir).map_err(|e| TestnetError::State(e.to_string()))?;
        let mut net = Testnet {
            bridge_ns: format!("{prefix}br"),
            attacker_ns: format!("{prefix}atk"),
            device_ns: format!("{prefix}dev"),
            hosts: Vec::new(),
            prefix,
            dir: opts.dir.clone(),
            subnet,
            amoskys: opts.amoskys.clone(),
            snmpd_pid: None,
            owned: true,
        };
        net.save()?;
        run(&["ip", "netns", "add", &net.bridge_ns])?;
        run(&[
            "ip",
            "-n",
            &net.bridge_ns,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
        ])?;
        run(&["ip", "-n", &net.bridge_ns, "link", "set", "br0", "up"])?;
        run(&["ip", "-n", &net.bridge_ns, "link", "set", "lo", "up"])?;
        let attacker = net.attacker_ns.clone();
        let device = net.device_ns.clone();
        net.attach(&attacker, 2, "atk")?;
        net.attach(&device, 3, "dev")?;
        for i in 0..opts.nodes {
            let ns = format!("{}h{i}", net.prefix);
            let last = 10 + i as u8;
            net.attach(&ns, last, &format!("h{i}"))?;
            let data = net.dir.join(format!("h{i}"));
            std::fs::create_dir_all(&data).map_err(|e| TestnetError::State(e.to_string()))?;
            let key = data.join("node.key");
            if !key.exists() {
                run(&[
                    &net.amoskys.to_string_lossy(),
                    "keygen",
                    "--out",
                    &key.to_string_lossy(),
                ])?;
            }
            let id = amoskys_node::identity::Identity::load(&key)
                .map_err(|e| TestnetError::State(e.to_string()))?;
            net.hosts.push(Host {
                ns,
                addr: Self::addr(subnet, last),
                public_key: id.public_key_hex(),
                peer_id: id.peer_id().to_string(),
                pid: None,
            });
        }
        net.save()?;
        net.start_snmpd()?;
        for i in 0..net.hosts.len() {
            net.start_node(i, &opts.sets)?;
        }
        net.save()?;
        Ok(net)
    }

    /// A namespace with a veth to the bridge and an address.
    fn attach(&self, ns: &str, last: u8, tag: &str) -> Result<(), TestnetError> {
        let outer = format!("{}{tag}", self.prefix);
        let inner = format!("{outer}i");
        run(&["ip", "netns", "add", ns])?;
        run(&[
            "ip", "link", "add", &outer, "type", "veth", "peer", "name", &inner,
        ])?;
        run(&["ip", "link", "set", &outer, "netns", &self.bridge_ns])?;
        run(&["ip", "link", "set", &inner, "netns", ns])?;
        run(&[
            "ip",
            "-n",
            &self.bridge_ns,
            "link",
            "set",
            &outer,
            "master",
            "br0",
        ])?;
        run(&["ip", "-n", &self.bridge_ns, "link", "set", &outer, "up"])?;
        run(&["ip", "-n", ns, "link", "set", &inner, "name", "eth0"])?;
        run(&[
            "ip",
            "-n",
            ns,
            "addr",
            "add",
            &format!("{}/24", Self::addr(self.subnet, last)),
            "dev",
            "eth0",
        ])?;
        run(&["ip", "-n", ns, "link", "set", "eth0", "up"])?;
        run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
        Ok(())
    }

    fn start_snmpd(&mut self) -> Result<(), TestnetError> {
        let snmpd = Path::new("/usr/sbin/snmpd");
        if !snmpd.exists() {
            eprintln!("testnet: /usr/sbin/snmpd missing; no SNMP device (apt-get install snmpd)");
            return Ok(());
        }
        let dir = self.dir.join("device");
        std::fs::create_dir_all(&dir).map_err(|e| TestnetError::State(e.to_string()))?;
        let conf = dir.join("snmpd.conf");
        std::fs::write(
            &conf,
            format!("rocommunity amoskys-ro 10.{}.0.0/24\n", self.subnet),
        )
        .map_err(|e| TestnetError::State(e.to_string()))?;
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.device_ns,
                "/usr/sbin/snmpd",
                "-f",
                "-Lo",
                "-C",
                "-c",
            ])
            .arg(&conf)
            .arg("-p")
            .arg(dir.join("snmpd.pid"))
            .arg(format!("udp:{}:161", self.device_addr()))
            .env("SNMP_PERSISTENT_DIR", &dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| TestnetError::Spawn {
                command: "snmpd".into(),
                source,
            })?;
        self.snmpd_pid = Some(child.id());
        Ok(())
    }

    /// Starts (or restarts) node `i`: the first has no bootstrap peer and
    /// forms the cluster; the others bootstrap to it. All keys are admitted.
    pub fn start_node(&mut self, i: usize, sets: &[String]) -> Result<(), TestnetError> {
        let host = self
            .hosts
            .get(i)
            .ok_or(TestnetError::State(format!("no host {i}")))?
            .clone();
        let data = self.dir.join(format!("h{i}"));
        let keys: Vec<String> = self
            .hosts
            .iter()
            .map(|h| format!("\"{}\"", h.public_key))
            .collect();
        let config = data.join("amoskys.toml");
        let mut toml = format!(
            "[node]\nname = \"h{i}\"\ndata_dir = \"{}\"\n\n[api]\nlisten = \"127.0.0.1:{API_PORT}\"\n\n\
             [mesh]\nlisten = [\"{}:{MESH_PORT}\"]\nadmitted = [{}]\nmdns = false\n",
            data.display(),
            host.addr,
            keys.join(", ")
        );
        if i > 0 {
            let first = &self.hosts[0].addr;
            toml.push_str(&format!("bootstrap = [\"{first}:{MESH_PORT}\"]\n"));
        }
        toml.push_str(
            "\n[sensors.flows]\ninterfaces = [\"eth0\"]\n\n[sensors.ebpf]\nenabled = false\n",
        );
        if self.snmpd_pid.is_some() {
            toml.push_str(&format!(
                "\n[sensors.snmp]\ninterval_ms = 5000\n\n[[sensors.snmp.devices]]\nname = \"switch\"\naddress = \"{}:161\"\nversion = \"v2c\"\ncommunity = \"amoskys-ro\"\n",
                self.device_addr()
            ));
        }
        std::fs::write(&config, toml).map_err(|e| TestnetError::State(e.to_string()))?;
        let log = std::fs::File::create(data.join("node.log"))
            .map_err(|e| TestnetError::State(e.to_string()))?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &host.ns])
            .arg(&self.amoskys)
            .args(["run", "--config"])
            .arg(&config)
            .args(["--log-format", "json"]);
        for s in sets {
            cmd.args(["--set", s]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|source| TestnetError::Spawn {
                command: "amoskys run".into(),
                source,
            })?;
        self.hosts[i].pid = Some(child.id());
        self.save()?;
        Ok(())
    }

    /// Stops node `i` at once (SIGKILL).
    pub fn kill(&mut self, i: usize) -> Result<(), TestnetError> {
        let ns = self
            .hosts
            .get(i)
            .ok_or(TestnetError::State(format!("no host {i}")))?
            .ns
            .clone();
        kill_in(&ns);
        self.hosts[i].pid = None;
        self.save()
    }

    /// Runs `args` inside namespace `ns` and returns its output.
    pub fn exec(&self, ns: &str, args: &[&str]) -> Result<Output, TestnetError> {
        let mut all = vec!["ip", "netns", "exec", ns];
        all.extend_from_slice(args);
        run(&all)
    }

    /// `amoskys ARGS --api 127.0.0.1:7300` inside host `i`, as JSON.
    pub fn api(&self, i: usize, args: &[&str]) -> Result<serde_json::Value, TestnetError> {
        let host = self
            .hosts
            .get(i)
            .ok_or(TestnetError::State(format!("no host {i}")))?;
        let api = format!("127.0.0.1:{API_PORT}");
        let bin = self.amoskys.to_string_lossy().into_owned();
        let mut all = vec![bin.as_str()];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--api", &api]);
        let out = self.exec(&host.ns, &all)?;
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.trim())
            .map_err(|e| TestnetError::State(format!("not JSON ({e}): {text}")))
    }

    /// Drops all traffic between the hosts of `a` and those of `b`.
    pub fn partition(&self, a: &[usize], b: &[usize]) -> Result<(), TestnetError> {
        for (from, to) in [(a, b), (b, a)] {
            for &i in from {
                for &j in to {
                    let ns = &self.hosts[i].ns;
                    let peer = &self.hosts[j].addr;
                    for (chain, flag) in [("INPUT", "-s"), ("OUTPUT", "-d")] {
                        self.exec(ns, &["iptables", "-A", chain, flag, peer, "-j", "DROP"])?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Drops `percent` of node `i`'s incoming packets at random.
    pub fn loss(&self, i: usize, percent: u8) -> Result<(), TestnetError> {
        let p = format!("{:.2}", f64::from(percent.min(100)) / 100.0);
        self.exec(
            &self.hosts[i].ns,
            &[
                "iptables",
                "-A",
                "INPUT",
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                &p,
                "-j",
                "DROP",
            ],
        )
        .map(drop)
    }

    /// Removes every partition and loss rule.
    pub fn heal(&self) -> Result<(), TestnetError> {
        for h in &self.hosts {
            self.exec(&h.ns, &["iptables", "-F"])?;
        }
        Ok(())
    }

    /// Waits until `check` holds, at most `within`.
    pub fn until(
        &self,
        what: &str,
        within: Duration,
        mut check: impl FnMut(&Testnet) -> bool,
    ) -> Result<(), TestnetError> {
        let end = Instant::now() + within;
        while !check(self) {
            if Instant::now() > end {
                return Err(TestnetError::Timeout(what.to_owned()));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Ok(())
    }

    fn save(&self) -> Result<(), TestnetError> {
        let json =
            serde_json::to_vec_pretty(self).map_err(|e| TestnetError::State(e.to_string()))?;
        std::fs::write(self.dir.join("state.json"), json)
            .map_err(|e| TestnetError::State(e.to_string()))
    }

    /// Reads the state a command left in `dir`.
    pub fn load(dir: &Path) -> Result<Testnet, TestnetError> {
        let bytes = std::fs::read(dir.join("state.json")).map_err(|e| {
            TestnetError::State(format!(
                "no testnet in {} ({e}); start one with `amoskys-testnet up N --dir {}`",
                dir.display(),
                dir.display()
            ))
        })?;
        serde_json::from_slice(&bytes).map_err(|e| TestnetError::State(e.to_string()))
    }

    /// Kills everything and deletes every namespace (and with them their
    /// veth ends and the bridge).
    pub fn down(&mut self) {
        let mut all: Vec<String> = self.hosts.iter().map(|h| h.ns.clone()).collect();
        all.extend([
            self.attacker_ns.clone(),
            self.device_ns.clone(),
            self.bridge_ns.clone(),
        ]);
        for ns in &all {
            kill_in(ns);
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        self.owned = false;
    }
}

impl Drop for Testnet {
    fn drop(&mut self) {
        if self.owned {
            self.down();
        }
    }
}

/// Kills every process in namespace `ns`.
fn kill_in(ns: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-9", pid]).output();
        }
    }
}
