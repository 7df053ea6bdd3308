//! Where a document's commands run: one bash process per document (so a
//! variable or `cd` carries to the next command), in a working directory of
//! its own that shows the repository's files, with `amoskys` on the PATH
//! being the built binary and HOME and the node's data directory private.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use super::process::{NodeProcess, amoskys};

/// How long a command may take before it counts as hung.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a command that runs until stopped (`alerts tail`) is left to
/// print before it is interrupted.
pub const FOREVER_FOR: Duration = Duration::from_secs(4);

#[derive(Debug)]
pub struct Session {
    dir: tempfile::TempDir,
    work: PathBuf,
    env: Vec<(String, String)>,
    shell: Option<Shell>,
    nodes: Vec<NodeProcess>,
}

#[derive(Debug)]
struct Shell {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Drop for Shell {
    fn drop(&mut self) {
        // The shell leads its own process group: a hung command goes too.
        super::process::signal("KILL", &format!("-{}", self.child.id()));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const MARK: &str = "@@docs-harness-rc@@";

impl Session {
    pub fn new(repo: &Path) -> Result<Session, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("cannot make a directory: {e}"))?;
        let (home, work, bin) = (
            dir.path().join("home"),
            dir.path().join("work"),
            dir.path().join("bin"),
        );
        for d in [&home, &work, &bin] {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        std::os::unix::fs::symlink(amoskys(), bin.join("amoskys"))
            .map_err(|e| format!("cannot link the binary: {e}"))?;
        // The reader's working directory is the clone: show its files there.
        let entries = std::fs::read_dir(repo).map_err(|e| format!("{}: {e}", repo.display()))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name != "target" && name != ".git" {
                let _ = std::os::unix::fs::symlink(entry.path(), work.join(&name));
            }
        }
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into())
        );
        let data = home.join(".local/share/amoskys");
        let env = vec![
            ("PATH".into(), path),
            ("HOME".into(), home.display().to_string()),
            (
                "XDG_DATA_HOME".into(),
                home.join(".local/share").display().to_string(),
            ),
            ("AMOSKYS_NODE__DATA_DIR".into(), data.display().to_string()),
            ("LANG".into(), "C.UTF-8".into()),
            ("NO_COLOR".into(), "1".into()),
        ];
        Ok(Session {
            dir,
            work,
            env,
            shell: None,
            nodes: Vec::new(),
        })
    }

    /// Writes a file a document shows into the working directory.
    pub fn write_file(&self, name: &str, text: &str) -> Result<(), String> {
        let path = self.work.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        // Never write through a link into the clone.
        if path.is_symlink() {
            std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Starts `amoskys run …` in the background and waits until it serves.
    pub fn start_node(&mut self, line: &str) -> Result<(), String> {
        let log = self
            .dir
            .path()
            .join(format!("node-{}.log", self.nodes.len()));
        let api = super::process::api_of(line);
        if super::process::in_use(&api) {
            return Err(format!(
                "{api} is already in use by another process; the docs address a node there, so stop it and run the test again"
            ));
        }
        let mut node = NodeProcess::spawn(line, &self.work, &self.env, log)?;
        node.wait_ready(Duration::from_secs(60))?;
        // A node that waits to be admitted knows no leader yet: go on then.
        node.wait_leader(Duration::from_secs(15));
        self.nodes.push(node);
        Ok(())
    }

    /// Runs one command; returns its exit code and what it printed
    /// (stdout and stderr as a terminal shows them).
    pub fn run(&mut self, cmd: &str) -> Result<(i32, String), String> {
        let forever = runs_until_stopped(cmd);
        let script = if forever {
            format!(
                "{{ timeout -s INT {} {cmd}\n}} </dev/null 2>&1; __rc=$?; [ $__rc = 124 ] && __rc=0; echo \"{MARK} $__rc\"\n",
                FOREVER_FOR.as_secs()
            )
        } else {
            format!("{{ {cmd}\n}} </dev/null 2>&1; echo \"{MARK} $?\"\n")
        };
        let shell = self.shell()?;
        shell
            .stdin
            .write_all(script.as_bytes())
            .and_then(|()| shell.stdin.flush())
            .map_err(|e| format!("the shell stopped taking commands: {e}"))?;
        let end = Instant::now() + COMMAND_TIMEOUT;
        let mut out = String::new();
        loop {
            match shell
                .lines
                .recv_timeout(end.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    if let Some((before, code)) = line.split_once(MARK) {
                        out.push_str(before);
                        let code = code.trim().parse().unwrap_or(-1);
                        return Ok((code, out));
                    }
                    out.push_str(&line);
                    out.push('\n');
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.shell = None;
                    return Err(format!(
                        "no end within {COMMAND_TIMEOUT:?}; output so far:\n{out}"
                    ));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.shell = None;
                    return Err(format!("the shell exited; output:\n{out}"));
                }
            }
        }
    }

    /// Stops the nodes this document started, newest first.
    pub fn stop_nodes(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        while let Some(mut node) = self.nodes.pop() {
            if !node.stop(Duration::from_secs(15)) {
                problems.push(format!(
                    "the node at {} did not stop on SIGTERM within 15 s; its log ends:\n{}",
                    node.api,
                    node.log_tail(10)
                ));
            }
        }
        problems
    }

    /// The bash process, started on first use (and again after a hang).
    fn shell(&mut self) -> Result<&mut Shell, String> {
        if self.shell.is_none() {
            let (reader, writer) =
                std::io::pipe().map_err(|e| format!("cannot make a pipe: {e}"))?;
            let writer2 = writer
                .try_clone()
                .map_err(|e| format!("cannot make a pipe: {e}"))?;
            let mut child = Command::new("bash")
                .args(["--noprofile", "--norc"])
                .process_group(0)
                .current_dir(&self.work)
                .env_clear()
                .envs(self.env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::piped())
                .stdout(writer)
                .stderr(writer2)
                .spawn()
                .map_err(|e| format!("cannot start bash: {e}"))?;
            let stdin = child.stdin.take().ok_or("bash has no stdin")?;
            let (tx, lines) = channel();
            std::thread::spawn(move || {
                for line in BufReader::new(reader).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            self.shell = Some(Shell {
                child,
                stdin,
                lines,
            });
        }
        self.shell.as_mut().ok_or_else(|| "no shell".to_owned())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop_nodes();
    }
}

/// `amoskys run …`: a node, started in the background.
pub fn starts_a_node(cmd: &str) -> bool {
    cmd.trim_start().starts_with("amoskys run")
}

/// Commands that run until stopped: interrupted after [`FOREVER_FOR`].
fn runs_until_stopped(cmd: &str) -> bool {
    let cmd = cmd.trim_start();
    cmd.starts_with("amoskys alerts tail") || cmd.contains("/api/v1/alerts/stream")
}

/// What a reader types, as the harness runs it: `./.ci/amoskys` is the
/// built `amoskys`; in an `sh` block (`strict`), whose output is not
/// compared, `curl` fails on an HTTP error (`curl -s` alone exits 0 on a
/// 404).
pub fn as_run(cmd: &str, strict: bool) -> String {
    let cmd = cmd.replace("./.ci/amoskys", "amoskys");
    match cmd.strip_prefix("curl ") {
        Some(rest) if strict => format!("curl --fail-with-body {rest}"),
        _ => cmd,
    }
}
