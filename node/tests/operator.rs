//! What an operator sees of the `amoskys` binary: its logs in a pipe, its
//! version, the default configuration file, and the systemd unit of
//! node/packaging with the capabilities it grants.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use amoskys_node::telemetry::QUIET_TARGETS;

const BIN: &str = env!("CARGO_BIN_EXE_amoskys");
const UNIT: &str = include_str!("../packaging/amoskys.service");
const PACKAGING_README: &str = include_str!("../packaging/README.md");

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` (an `amoskys run` command line) with stderr in a pipe, read
/// on a thread of its own into the returned channel.
fn spawn_logged(cmd: &mut Command) -> (KillOnDrop, Receiver<String>) {
    let mut child = KillOnDrop(
        cmd.env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .env("AMOSKYS_CONFIG", "")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn amoskys run"),
    );
    let stderr = child.0.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Lines from `rx` until `stop` matches one (inclusive) or `limit` passes.
fn lines_until(rx: &Receiver<String>, limit: Duration, stop: impl Fn(&str) -> bool) -> Vec<String> {
    let end = Instant::now() + limit;
    let mut lines = Vec::new();
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                let done = stop(&line);
                lines.push(line);
                if done {
                    break;
                }
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
        }
    }
    lines
}

/// `amoskys run` on loopback ports with its own data directory.
fn run_command(data_dir: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["run", "--api-listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(["--set", "mesh.listen=[\"127.0.0.1:0\"]"])
        .args(extra);
    cmd
}

#[test]
fn logs_in_a_pipe_have_no_colour_codes_and_no_library_chatter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_node, rx) = spawn_logged(&mut run_command(
        dir.path(),
        &[
            "--set",
            "sensors.flows.enabled=false",
            "--set",
            "sensors.ebpf.enabled=false",
        ],
    ));
    let mut lines = lines_until(&rx, Duration::from_secs(30), |l| l.contains("node started"));
    assert!(
        lines.last().is_some_and(|l| l.contains("node started")),
        "the node did not start:\n{}",
        lines.join("\n")
    );
    // The single-node cluster elects itself right after the start.
    lines.extend(lines_until(&rx, Duration::from_secs(3), |_| false));
    let all = lines.join("\n");
    assert!(!all.contains('\u{1b}'), "colour codes in a pipe:\n{all}");
    // `TIME LEVEL [spans:] target: message`, the target ending in `:`.
    let chatter: Vec<&String> = lines
        .iter()
        .filter(|l| {
            let mut words = l.split_whitespace().skip(1);
            let level = words.next().unwrap_or_default();
            (level == "INFO" || level == "DEBUG")
                && words.any(|w| w.ends_with(':') && QUIET_TARGETS.iter().any(|t| w.starts_with(t)))
        })
        .collect();
    assert!(chatter.is_empty(), "library lines at info:\n{chatter:#?}");
}

#[test]
fn a_filter_that_names_a_library_shows_its_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_node, rx) = spawn_logged(&mut run_command(
        dir.path(),
        &[
            "--log-level",
            "info,openraft=info",
            "--set",
            "sensors.flows.enabled=false",
            "--set",
            "sensors.ebpf.enabled=false",
        ],
    ));
    let lines = lines_until(&rx, Duration::from_secs(30), |l| {
        l.contains(" INFO openraft") || l.contains("node failed")
    });
    assert!(
        lines.last().is_some_and(|l| l.contains(" INFO openraft")),
        "no openraft line at info although the filter names it:\n{}",
        lines.join("\n")
    );
}

#[test]
fn version_names_the_commit() {
    let out = Command::new(BIN)
        .arg("--version")
        .output()
        .expect("amoskys --version");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let prefix = format!("amoskys {} (commit ", env!("CARGO_PKG_VERSION"));
    let commit = text
        .trim()
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("expected `{prefix}…)`, got {text:?}"));
    let in_git = Command::new("git")
        .args(["rev-parse", "--git-dir"])
        .output()
        .is_ok_and(|o| o.status.success());
    if in_git {
        assert_eq!(commit.len(), 12, "{commit:?}");
        assert!(commit.chars().all(|c| c.is_ascii_hexdigit()), "{commit:?}");
        let known = Command::new("git")
            .args(["cat-file", "-e", &format!("{commit}^{{commit}}")])
            .status()
            .expect("git cat-file");
        assert!(known.success(), "{commit} is not a commit of this checkout");
    } else {
        assert_eq!(commit, "unknown");
    }
}

fn config_show(env: Option<&str>, args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(["config", "show"]).args(args);
    match env {
        Some(v) => cmd.env("AMOSKYS_CONFIG", v),
        None => cmd.env_remove("AMOSKYS_CONFIG"),
    };
    let out = cmd.output().expect("amoskys config show");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_default_config_file_applies_without_config_and_yields_to_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let default = dir.path().join("amoskys.toml");
    std::fs::write(&default, "[api]\nlisten = \"127.0.0.1:7411\"\n").expect("write");
    let other = dir.path().join("other.toml");
    std::fs::write(&other, "[api]\nlisten = \"127.0.0.1:7422\"\n").expect("write");
    let default_path = default.to_string_lossy().into_owned();

    let (ok, out, err) = config_show(Some(&default_path), &[]);
    assert!(ok, "{err}");
    assert!(out.contains("listen = \"127.0.0.1:7411\""), "{out}");

    let (ok, out, err) = config_show(Some(&default_path), &["--config", &other.to_string_lossy()]);
    assert!(ok, "{err}");
    assert!(out.contains("listen = \"127.0.0.1:7422\""), "{out}");

    // Set but empty: no file at all, the embedded defaults.
    let (ok, out, err) = config_show(Some(""), &[]);
    assert!(ok, "{err}");
    assert!(out.contains("listen = \"127.0.0.1:7300\""), "{out}");

    let missing = dir.path().join("missing.toml");
    let (ok, _, err) = config_show(Some(&missing.to_string_lossy()), &[]);
    assert!(!ok);
    assert!(err.contains(&*missing.to_string_lossy()), "{err}");
}

/// The value of every `KEY=` line of the unit, space-separated.
fn unit_values(key: &str) -> Vec<String> {
    UNIT.lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .flat_map(|v| v.split_whitespace().map(str::to_owned))
        .collect()
}

#[test]
fn the_systemd_unit_verifies_and_documents_each_capability() {
    let ambient = unit_values("AmbientCapabilities");
    assert_eq!(ambient, unit_values("CapabilityBoundingSet"));
    for cap in &ambient {
        assert!(
            PACKAGING_README.contains(&format!("| `{cap}` |")),
            "{cap} is granted but not explained in node/packaging/README.md"
        );
    }
    for required in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/amoskys",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "StateDirectory=amoskys",
        "Restart=on-failure",
    ] {
        assert!(UNIT.lines().any(|l| l == required), "{required} missing");
    }

    let Ok(analyze) = which("systemd-analyze") else {
        eprintln!(
            "SKIPPED systemd-analyze verify: systemd-analyze not installed (apt-get install systemd)"
        );
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = dir.path().join("amoskys.service");
    // The unit as installed, with the binary under test at /usr/bin/amoskys.
    std::fs::write(
        &unit,
        UNIT.replace("ExecStart=/usr/bin/amoskys", &format!("ExecStart={BIN}")),
    )
    .expect("write unit");
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze verify");
    let err = String::from_utf8_lossy(&out.stderr);
    // Warnings (unknown keys, bad values) do not change the exit code.
    let ours: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("amoskys.service"))
        .collect();
    assert!(out.status.success() && ours.is_empty(), "{err}");
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or(())
}

/// The node of the unit: an unprivileged user holding exactly the unit's
/// ambient capabilities (what systemd gives `User=amoskys`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_units_capabilities_are_enough_for_every_sensor() {
    if !common::is_root() {
        eprintln!(
            "SKIPPED unit capability test: needs root to start a node as another user with setpriv"
        );
        return;
    }
    // systemd mounts tracefs at boot; the node mounts it only as root.
    if !Path::new("/sys/kernel/tracing/events").exists() {
        let _ = Command::new("mount")
            .args(["-t", "tracefs", "tracefs", "/sys/kernel/tracing"])
            .status();
    }
    let ebpf = Path::new("/sys/kernel/btf/vmlinux").exists()
        && Path::new("/sys/kernel/tracing/events").exists();
    let caps: Vec<String> = unit_values("AmbientCapabilities")
        .iter()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    let caps = format!("-all,{}", caps.join(","));
    let dir = tempfile::tempdir().expect("tempdir");
    let nobody = 65534;
    std::os::unix::fs::chown(dir.path(), Some(nobody), Some(nobody)).expect("chown data dir");
    let mut cmd = Command::new("setpriv");
    cmd.args([
        format!("--reuid={nobody}"),
        format!("--regid={nobody}"),
        "--clear-groups".into(),
        format!("--inh-caps={caps}"),
        format!("--ambient-caps={caps}"),
        format!("--bounding-set={caps}"),
        "--".into(),
        BIN.into(),
    ]);
    cmd.args([
        "run",
        "--log-format",
        "json",
        "--api-listen",
        "127.0.0.1:0",
        "--data-dir",
    ])
    .arg(dir.path())
    .args(["--set", "mesh.listen=[\"127.0.0.1:0\"]"])
    .args(["--set", "sensors.procfs.interval_ms=20"]);
    let (_node, rx) = spawn_logged(&mut cmd);
    let lines = lines_until(&rx, Duration::from_secs(30), |l| {
        l.contains("\"node started\"")
    });
    let api = lines
        .last()
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .and_then(|v| v["api"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("the node did not start:\n{}", lines.join("\n")));
    let addr: std::net::SocketAddr = api.parse().expect("api address");

    let (_, info) = common::get_json(addr, "/api/v1/node").await;
    let mut wanted = vec!["procfs", "flows"];
    if ebpf {
        wanted.push("ebpf");
    } else {
        eprintln!("SKIPPED the eBPF sensor's capabilities: no kernel BTF or tracefs here");
    }
    for name in wanted {
        let sensor = info["sensors"]
            .as_array()
            .and_then(|s| s.iter().find(|x| x["name"] == name))
            .unwrap_or_else(|| panic!("sensor {name} listed: {info}"));
        assert_eq!(sensor["state"], "healthy", "{sensor}");
    }

    // A root process's executable: readable with CAP_SYS_PTRACE only.
    let mut child = KillOnDrop(
        Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep"),
    );
    let pid = child.0.id();
    let launch = common::eventually(Duration::from_secs(10), || async move {
        let (_, body) = common::get_json(
            addr,
            "/api/v1/events?kind=process_activity&since=5m&limit=10000",
        )
        .await;
        body["events"]
            .as_array()?
            .iter()
            .find(|e| {
                e["sensor"] == "procfs" && e["process"]["pid"] == pid && e["activity"] == "launch"
            })
            .cloned()
    })
    .await
    .expect("the launch of a root process is seen");
    assert!(
        launch["process"]["exe"]
            .as_str()
            .is_some_and(|e| e.ends_with("/sleep")),
        "{launch}"
    );
    let _ = child.0.kill();
}
