//! The docs are the tests: every command block of README.md and docs/*.md
//! runs as a reader would type it, against a real node, and every output a
//! transcript shows is compared (docs/README.md: the convention). A failing
//! document names each failing command with its file and line, all at once.

#[path = "docs/compare.rs"]
mod compare;
#[path = "docs/markdown.rs"]
mod markdown;
#[path = "docs/process.rs"]
mod process;
#[path = "docs/session.rs"]
mod session;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use markdown::{Directive, Kind};
use session::Session;

/// The documents address one node at 127.0.0.1:7300: one at a time (in
/// this process; a lock file does the same between processes).
static SERIAL: Mutex<()> = Mutex::new(());

/// The documents with a test of their own; any other one found on disk
/// runs in `documents_without_a_test_of_their_own`.
const DOCUMENTS: &[&str] = &[
    "README.md",
    "docs/README.md",
    "docs/ALERTS.md",
    "docs/API.md",
    "docs/ARCHITECTURE.md",
    "docs/BENCHMARKS.md",
    "docs/CLUSTER.md",
    "docs/DETECTION.md",
    "docs/FEDERATED.md",
    "docs/MESH.md",
    "docs/RESPONSE.md",
    "docs/RULES.md",
    "docs/SENSORS.md",
    "docs/SIMULATIONS.md",
    "docs/TESTNET.md",
    "docs/WORKSPACE.md",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the node crate is in the workspace")
        .to_path_buf()
}

/// Runs one document; panics with every failure it found.
fn check(name: &str) {
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Other test processes on this machine (another checkout, a second
    // `cargo test`) address the same port: one document at a time there too.
    let machine = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(std::env::temp_dir().join("amoskys-docs-test.lock"))
        .expect("the lock file opens");
    machine.lock().expect("the lock is taken");
    let text = std::fs::read_to_string(repo().join(name)).expect("the document is readable");
    let failures = run_document(name, &text, true);
    assert!(
        failures.is_empty(),
        "{} failure(s) in {name}:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// What `needs X` asks for, or why it is missing.
fn available(what: &str) -> Result<(), String> {
    let ok = |cmd: &str, args: &[&str]| {
        std::process::Command::new(cmd)
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    match what {
        "root" if ok("sh", &["-c", "[ \"$(id -u)\" = 0 ]"]) => Ok(()),
        "root" => Err("needs root".into()),
        "docker" if ok("docker", &["info"]) => Ok(()),
        "docker" => Err("needs a docker engine that answers (`docker info`)".into()),
        other => Err(format!("needs {other}")),
    }
}

/// Runs the blocks of `text` in order and returns every failure, each
/// naming `name`, the line and the command. With `with_node`, the commands
/// run against a node started on the documented address first, unless the
/// document's first command starts one itself.
fn run_document(name: &str, text: &str, with_node: bool) -> Vec<String> {
    let blocks = match markdown::blocks(text) {
        Ok(b) => b,
        Err(e) => return vec![format!("{name}: {e}")],
    };
    let mut failures = Vec::new();
    let mut session: Option<Session> = None;
    let mut node_up = !with_node;
    for block in blocks {
        let at = format!("{name}:{}", block.line);
        match &block.directive {
            Some(Directive::Skip(reason)) => {
                eprintln!("SKIPPED {at}: {reason}");
                continue;
            }
            Some(Directive::Needs(what)) => {
                if let Err(why) = available(what) {
                    eprintln!("SKIPPED {at}: {why}");
                    continue;
                }
            }
            Some(Directive::File(_)) | None => {}
        }
        let commands = match &block.kind {
            Kind::Unlabelled => {
                failures.push(format!(
                    "{at}: a fence without a language: label it ```sh (commands), ```console (a transcript) or ```text (illustrative)"
                ));
                continue;
            }
            Kind::Shown if !matches!(block.directive, Some(Directive::File(_))) => continue,
            Kind::Shown => Vec::new(),
            Kind::Commands(c) | Kind::Transcript(c) => c.clone(),
        };
        if session.is_none() {
            match Session::new(&repo()) {
                Ok(s) => session = Some(s),
                Err(e) => return vec![format!("{at}: {e}")],
            }
        }
        let Some(s) = session.as_mut() else {
            continue;
        };
        if let Some(Directive::File(file)) = &block.directive
            && let Err(e) = s.write_file(file, &block.text)
        {
            failures.push(format!("{at}: {e}"));
        }
        let transcript = matches!(block.kind, Kind::Transcript(_));
        for c in commands {
            let at = format!("{name}:{}", c.line);
            let cmd = session::as_run(&c.text, !transcript);
            if !node_up {
                node_up = true;
                if !session::starts_a_node(&cmd)
                    && let Err(e) = s.start_node("amoskys run")
                {
                    failures.push(format!("{at}: the harness's node did not start: {e}"));
                    return failures;
                }
            }
            if session::starts_a_node(&cmd) {
                if let Err(e) = s.start_node(&cmd) {
                    failures.push(format!("{at}: `{}`: {e}", c.text));
                }
                continue;
            }
            let ran = s.run(&cmd);
            if verbose() {
                eprintln!("{at}: $ {cmd}\n{ran:?}");
            }
            match ran {
                Err(e) => failures.push(format!("{at}: `{}`: {e}", c.text)),
                Ok((code, out)) if code != c.exit => failures.push(format!(
                    "{at}: `{}` exited with {code} (expected {}):\n{}",
                    c.text,
                    c.exit,
                    indent(&out)
                )),
                Ok((_, out)) if transcript => {
                    if let Some(diff) = compare::mismatch(&c.expected, &out) {
                        failures.push(format!(
                            "{at}: `{}` printed other output than shown\n{diff}",
                            c.text
                        ));
                    }
                }
                Ok(_) => {}
            }
        }
    }
    if let Some(s) = session.as_mut() {
        failures.extend(s.stop_nodes().into_iter().map(|p| format!("{name}: {p}")));
    }
    failures
}

/// `AMOSKYS_DOCS_VERBOSE=1` prints every command and what it gave.
fn verbose() -> bool {
    std::env::var_os("AMOSKYS_DOCS_VERBOSE").is_some()
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}\n"))
        .collect::<String>()
}

/// README.md and every docs/*.md, as found on disk.
fn documents() -> Vec<String> {
    let mut found = vec!["README.md".to_owned()];
    for entry in std::fs::read_dir(repo().join("docs")).expect("docs/") {
        let name = entry.expect("entry").file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".md") {
            found.push(format!("docs/{name}"));
        }
    }
    found.sort();
    found
}

#[test]
fn every_listed_document_exists() {
    let found = documents();
    for name in DOCUMENTS {
        assert!(
            found.iter().any(|f| f == name),
            "{name} is gone: drop its test"
        );
    }
}

/// A document added without a test of its own is run here, so none is
/// left out.
#[test]
fn documents_without_a_test_of_their_own() {
    for name in documents() {
        if !DOCUMENTS.contains(&name.as_str()) {
            check(&name);
        }
    }
}

/// The testnet and simulator blocks are skipped by `check` (they build with
/// cargo and need root); their commands must still parse: each runs with
/// `--help` appended, which checks the verb and the values before it.
#[test]
fn testnet_and_simulator_commands_parse() {
    let dir = process::amoskys()
        .parent()
        .expect("the target directory")
        .to_path_buf();
    for (name, bin) in [
        ("docs/TESTNET.md", "amoskys-testnet"),
        ("docs/SIMULATIONS.md", "amoskys-sim"),
    ] {
        let exe = dir.join(bin);
        if !exe.exists() {
            eprintln!(
                "SKIPPED {name}: {bin} is not built next to amoskys (cargo test --workspace builds it)"
            );
            continue;
        }
        let text = std::fs::read_to_string(repo().join(name)).expect("the document is readable");
        let mut checked = 0;
        for block in markdown::blocks(&text).expect("the document parses") {
            let Kind::Commands(commands) = &block.kind else {
                continue;
            };
            for c in commands.iter().filter(|c| !c.text.starts_with("cargo ")) {
                let Some((_, rest)) = c.text.split_once(bin) else {
                    continue;
                };
                let rest = rest.trim_start_matches('"');
                let args: Vec<&str> = rest
                    .split('#')
                    .next()
                    .unwrap_or_default()
                    .split_whitespace()
                    .collect();
                let out = std::process::Command::new(&exe)
                    .args(&args)
                    .arg("--help")
                    .output()
                    .expect("the binary runs");
                assert!(
                    out.status.success(),
                    "{name}:{}: `{}` does not parse:\n{}",
                    c.line,
                    c.text,
                    String::from_utf8_lossy(&out.stderr)
                );
                checked += 1;
            }
        }
        assert!(checked > 0, "{name} shows no {bin} command");
    }
}

#[test]
fn every_relative_link_resolves() {
    let mut broken = Vec::new();
    for name in &documents() {
        let path = repo().join(name);
        let text = std::fs::read_to_string(&path).expect("the document is readable");
        let dir = path.parent().expect("a directory");
        for (i, line) in text.lines().enumerate() {
            for target in line.split("](").skip(1).filter_map(|t| t.split(')').next()) {
                let file = target.split('#').next().unwrap_or_default();
                if file.is_empty() || file.contains("://") {
                    continue;
                }
                if !dir.join(file).exists() {
                    broken.push(format!("{name}:{}: {target}", i + 1));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "links to nothing:\n{}",
        broken.join("\n")
    );
}

#[test]
fn a_wrong_document_is_reported_with_file_line_and_command() {
    let doc = "# t\n\n```sh\ntrue\nfalse\nX=hello\n```\n\n```console\n$ echo \"$X\"\nhello\n$ echo 12D3KooWRawPbxPtP1eZaJpumGnyWX2DcUyd3RQnydr3eAto4Az7\n12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo\n$ echo other\nshown\n$ sh -c 'exit 3'   # exit 3\n```\n\n```\nbare\n```\n";
    let failures = run_document("t.md", doc, false);
    assert_eq!(failures.len(), 3, "{failures:#?}");
    assert!(
        failures[0].starts_with("t.md:5: `false` exited with 1"),
        "{}",
        failures[0]
    );
    assert!(
        failures[1].starts_with("t.md:14: `echo other` printed other output"),
        "{}",
        failures[1]
    );
    assert!(failures[1].contains("shown"), "{}", failures[1]);
    assert!(
        failures[2].starts_with("t.md:19: a fence without a language"),
        "{}",
        failures[2]
    );
}

#[test]
fn readme() {
    check("README.md");
}

#[test]
fn docs_readme() {
    check("docs/README.md");
}

#[test]
fn alerts() {
    check("docs/ALERTS.md");
}

#[test]
fn api() {
    check("docs/API.md");
}

#[test]
fn architecture() {
    check("docs/ARCHITECTURE.md");
}

#[test]
fn benchmarks() {
    check("docs/BENCHMARKS.md");
}

#[test]
fn cluster() {
    check("docs/CLUSTER.md");
}

#[test]
fn detection() {
    check("docs/DETECTION.md");
}

#[test]
fn federated() {
    check("docs/FEDERATED.md");
}

#[test]
fn mesh() {
    check("docs/MESH.md");
}

#[test]
fn rules() {
    check("docs/RULES.md");
}

#[test]
fn response() {
    check("docs/RESPONSE.md");
}

#[test]
fn sensors() {
    check("docs/SENSORS.md");
}

#[test]
fn simulations() {
    check("docs/SIMULATIONS.md");
}

#[test]
fn testnet() {
    check("docs/TESTNET.md");
}

#[test]
fn workspace() {
    check("docs/WORKSPACE.md");
}
