//! `amoskys run` as a child process: started by a shell command line,
//! waited for until its API answers, stopped with SIGTERM (SIGKILL if it
//! does not stop), also when dropped.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A node process and where its log goes.
#[derive(Debug)]
pub struct NodeProcess {
    child: Child,
    pub api: String,
    pub log: PathBuf,
}

impl NodeProcess {
    /// Runs `line` (an `amoskys run …` command line) with `bash -c exec`,
    /// in `cwd` with `env`, its output appended to `log`.
    pub fn spawn(
        line: &str,
        cwd: &Path,
        env: &[(String, String)],
        log: PathBuf,
    ) -> Result<NodeProcess, String> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
        let err = file
            .try_clone()
            .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
        let child = Command::new("bash")
            .arg("-c")
            .arg(format!("exec {line}"))
            .current_dir(cwd)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start `{line}`: {e}"))?;
        Ok(NodeProcess {
            child,
            api: api_of(line),
            log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the API answers `/healthz`.
    pub fn wait_ready(&mut self, limit: Duration) -> Result<(), String> {
        let end = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "the node exited ({status}) before its API answered; its log ends:\n{}",
                    self.log_tail(20)
                ));
            }
            if http_get(&self.api, "/healthz").is_some_and(|(code, _)| code == 200) {
                break;
            }
            if Instant::now() > end {
                return Err(format!(
                    "the node's API at {} did not answer within {limit:?}; its log ends:\n{}",
                    self.api,
                    self.log_tail(20)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Waits at most `limit` until the node knows a Raft leader.
    pub fn wait_leader(&self, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            let leader = http_get(&self.api, "/api/v1/cluster")
                .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok())
                .is_some_and(|v| v["cluster"]["leader"].is_string());
            if leader {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// The last `n` lines of the node's log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// SIGTERM, then SIGKILL after `grace`; true when it stopped on SIGTERM.
    pub fn stop(&mut self, grace: Duration) -> bool {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return true;
        }
        signal("TERM", &self.child.id().to_string());
        let end = Instant::now() + grace;
        while Instant::now() < end {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}

/// Sends SIG to `target`, a pid or `-PGID` (a process group). The `--` is
/// needed: procps-ng's kill reads `kill -KILL -123` as `kill(-1, …)`, every
/// process the caller may signal.
pub fn signal(sig: &str, target: &str) {
    let pid: i64 = target.parse().unwrap_or(0);
    if pid.abs() <= 1 {
        return;
    }
    let _ = Command::new("kill")
        .args(["-s", sig, "--", target])
        .status();
}

/// The API address an `amoskys run` command line gives
/// (`--api-listen ADDR`, `--set api.listen=ADDR`), else the default.
pub fn api_of(line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    for (i, w) in words.iter().enumerate() {
        let value = if *w == "--api-listen" {
            words.get(i + 1).copied()
        } else {
            w.strip_prefix("--api-listen=")
                .or_else(|| w.trim_matches(['\'', '"']).strip_prefix("api.listen="))
        };
        if let Some(v) = value {
            return v.trim_matches(['\'', '"']).to_owned();
        }
    }
    "127.0.0.1:7300".to_owned()
}

/// A plain HTTP/1.0 GET on loopback, signed as the node's local admin
/// (`/healthz` says who the node is and where its credential is): status
/// and body, or `None` when the API does not answer within 2 s.
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let auth = if path == "/healthz" {
        String::new()
    } else {
        let (_, health) = raw_get(addr, "/healthz", "")?;
        let v: serde_json::Value = serde_json::from_str(&health).ok()?;
        let key = amoskys_node::auth::load_signing_key(v["admin_key"].as_str()?.as_ref()).ok()?;
        let ts_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_millis() as u64;
        let parts = amoskys_node::auth::RequestParts {
            node_id: v["id"].as_str()?,
            method: "GET",
            path_and_query: path,
            body: b"",
        };
        let header = amoskys_node::auth::sign_request(&key, &parts, ts_ms, &rand::random());
        format!("Authorization: {header}\r\n")
    };
    raw_get(addr, path, &auth)
}

fn raw_get(addr: &str, path: &str, headers: &str) -> Option<(u16, String)> {
    let addr = addr.parse().ok()?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{headers}\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_owned()))
}

/// True when something accepts connections on `addr`.
pub fn in_use(addr: &str) -> bool {
    addr.parse()
        .ok()
        .is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_millis(300)).is_ok())
}

/// A loopback TCP port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The built `amoskys` binary.
pub fn amoskys() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_amoskys"))
}

/// What a finished (or stopped) CLI command gave.
#[derive(Debug)]
pub struct CliRun {
    /// The exit code; `None` when it was stopped at the time limit.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

impl CliRun {
    /// Both streams, for assertions and messages.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs the built `amoskys` with `args`; after `limit` it is interrupted
/// (SIGINT, then SIGKILL) and `code` is `None`.
pub fn cli(args: &[&str], limit: Duration) -> CliRun {
    let start = Instant::now();
    let mut child = Command::new(amoskys())
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("amoskys starts");
    let read = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let out = read(Box::new(child.stdout.take().expect("stdout")));
    let err = read(Box::new(child.stderr.take().expect("stderr")));
    let code = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status.code().unwrap_or(-1));
        }
        if start.elapsed() > limit {
            signal("INT", &child.id().to_string());
            std::thread::sleep(Duration::from_millis(500));
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    CliRun {
        code,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        took: start.elapsed(),
    }
}
