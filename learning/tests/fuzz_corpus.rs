//! The fuzz corpus of `learning/fuzz/` in plain `cargo test`: every seed of
//! `fuzz/corpus/sigma_rule/` and every saved crash of
//! `fuzz/regressions/sigma_rule/` goes through
//! [`amoskys_learning::fuzzing::sigma_rule`], the entry its fuzz target
//! calls. `write_seeds` below writes the seeds (run it with `--ignored`):
//! the Sigma rules of docs/RULES.md and rules of each log source.

use std::fs;
use std::path::{Path, PathBuf};

use amoskys_learning::fuzzing::sigma_rule;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

#[test]
fn corpus_and_regressions_replay_without_a_panic() {
    let seeds = files(&fuzz_dir().join("corpus/sigma_rule"));
    assert!(!seeds.is_empty(), "no seed corpus for sigma_rule");
    for path in seeds
        .iter()
        .chain(&files(&fuzz_dir().join("regressions/sigma_rule")))
    {
        sigma_rule(&fs::read(path).expect("read a corpus file"));
    }
}

const NETWORK: &str = r#"title: Reverse shell port
id: 6a1f7e4c-0c55-4d0f-9f3a-6b1d2e000010
logsource:
    product: linux
    category: network_connection
detection:
    selection:
        DestinationPort:
            - 4444
            - 1337
        Initiated: 'true'
    condition: selection
level: high
tags:
    - attack.command_and_control
    - attack.t1571
"#;

const FILE: &str = r#"title: Shadow file read
id: 6a1f7e4c-0c55-4d0f-9f3a-6b1d2e000011
logsource:
    product: linux
    category: file_event
detection:
    selection:
        TargetFilename|startswith: '/etc/shadow'
    filter:
        Image|endswith: '/passwd'
    condition: selection and not filter
level: critical
"#;

const REGEX: &str = r#"title: Base64 in a command line
logsource:
    product: linux
    category: process_creation
detection:
    sel:
        CommandLine|re: '(?i)base64\s+-d'
        ParentImage|endswith|windash: '/bash'
    condition: all of sel*
"#;

const UNKNOWN_FIELD: &str = r#"title: Unknown field
logsource:
    product: linux
    category: process_creation
detection:
    sel:
        Hashes|contains: 'abc'
    condition: sel
"#;

/// Writes the seed corpus.
#[test]
#[ignore = "writes fuzz/corpus; run by hand after the docs' rules change"]
fn write_seeds() {
    let dir = fuzz_dir().join("corpus/sigma_rule");
    fs::create_dir_all(&dir).expect("corpus dir");
    let docs = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/RULES.md"))
        .expect("docs/RULES.md");
    let mut n = 0;
    for block in docs.split("```yaml\n").skip(1) {
        let rule = block.split("```").next().unwrap_or_default();
        fs::write(dir.join(format!("docs-{n}.yml")), rule).expect("write a seed");
        n += 1;
    }
    assert!(n > 0, "docs/RULES.md has no yaml block");
    let two = format!("{NETWORK}---\n{FILE}");
    for (name, text) in [
        ("network", NETWORK),
        ("file", FILE),
        ("regex", REGEX),
        ("unknown-field", UNKNOWN_FIELD),
        ("two-documents", two.as_str()),
    ] {
        fs::write(dir.join(format!("{name}.yml")), text).expect("write a seed");
    }
}
