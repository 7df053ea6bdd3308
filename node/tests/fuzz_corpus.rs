//! The fuzz corpora of `node/fuzz/` in plain `cargo test`: every seed of
//! `fuzz/corpus/<target>/` and every saved crash of
//! `fuzz/regressions/<target>/` goes through the entry point its fuzz
//! target calls ([`amoskys_node::fuzzing`]). `write_seeds` below writes
//! the seeds (run it with `--ignored`): the embedded default configuration
//! and the TOML blocks of docs/, the policy the defaults make, request
//! bodies of every write route, and envelopes and changes of real
//! workspace documents.

use std::fs;
use std::path::{Path, PathBuf};

use amoskys_node::config::{Config, DEFAULT_TOML, Source};
use amoskys_node::fuzzing;
use amoskys_node::policy::Policy;

type Target = (&'static str, fn(&[u8]));

const TARGETS: [Target; 5] = [
    ("config_toml", fuzzing::config_toml),
    ("policy_toml", fuzzing::policy_toml),
    ("api_body", fuzzing::api_body),
    ("workspace_envelope", fuzzing::workspace_envelope),
    ("workspace_change", fuzzing::workspace_change),
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
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
fn corpora_and_regressions_replay_without_a_panic() {
    for (name, entry) in TARGETS {
        let seeds = files(&root().join("fuzz/corpus").join(name));
        assert!(!seeds.is_empty(), "no seed corpus for {name}");
        for path in seeds
            .iter()
            .chain(&files(&root().join("fuzz/regressions").join(name)))
        {
            entry(&fs::read(path).expect("read a corpus file"));
        }
    }
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = root().join("fuzz/corpus").join(target);
    fs::create_dir_all(&dir).expect("corpus dir");
    fs::write(dir.join(name), bytes).expect("write a seed");
}

/// The ```toml blocks of docs/*.md, with where they come from.
fn docs_toml() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for path in files(&root().join("../docs")) {
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        for (i, block) in text.split("```toml\n").skip(1).enumerate() {
            let body = block.split("```").next().unwrap_or_default();
            out.push((format!("{stem}-{i}"), body.to_owned()));
        }
    }
    out
}

fn parses_as_config(text: &str) -> bool {
    let source = Source::Text {
        origin: "docs".into(),
        text: text.into(),
    };
    Config::load(&[Source::Embedded, source]).is_ok()
}

/// Writes the seed corpora.
#[test]
#[ignore = "writes fuzz/corpus; run by hand after a format change"]
fn write_seeds() {
    write("config_toml", "default.toml", DEFAULT_TOML.as_bytes());
    for part in ["output.toml", "mqtt_topic.toml", "snmp_device.toml"] {
        let text = fs::read(root().join("src/config").join(part)).expect("config part");
        write("config_toml", part, &text);
    }
    let config = Config::load(&[Source::Embedded]).expect("defaults load");
    let policy = Policy::from_config(&config).expect("the defaults make a policy");
    write(
        "policy_toml",
        "from-defaults.toml",
        policy.to_toml().as_bytes(),
    );
    let (mut configs, mut policies) = (0, 0);
    for (name, text) in docs_toml() {
        if Policy::parse(&text).is_ok() {
            write("policy_toml", &format!("{name}.toml"), text.as_bytes());
            policies += 1;
        } else if parses_as_config(&text) && configs < 24 {
            write("config_toml", &format!("{name}.toml"), text.as_bytes());
            configs += 1;
        }
    }
    println!("docs/ gave {configs} configurations and {policies} policies");

    let bodies: [(u8, &str, &str); 14] = [
        (
            0,
            "init",
            r#"{"peers":["12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq"]}"#,
        ),
        (
            1,
            "admit",
            r#"{"id":"12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq","addr":"/ip4/192.0.2.7/tcp/7301"}"#,
        ),
        (
            2,
            "round",
            r#"{"kind":"source","epochs":2,"deadline_secs":60,"min_participants":2}"#,
        ),
        (
            2,
            "round-dp",
            r#"{"kind":"head:host","rule":"trimmed_mean","dp":{"clip":1.0,"noise_multiplier":0.8}}"#,
        ),
        (
            3,
            "intel",
            r#"{"indicator":"ip:192.0.2.9","reason":"scanner","expires_secs":3600}"#,
        ),
        (
            4,
            "decision",
            r#"{"subject":"source_ip:192.0.2.9","reason":"scan","duration_secs":600}"#,
        ),
        (5, "ack", r#"{"assignee":"alice"}"#),
        (6, "status", r#"{"status":"false_positive"}"#),
        (7, "note", r#"{"text":"checked with the owner"}"#),
        (
            8,
            "operator",
            r#"{"name":"bob","key":"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a","role":"analyst"}"#,
        ),
        (9, "role", r#"{"role":"admin"}"#),
        (
            10,
            "rotate",
            r#"{"key":"3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c","old_sig":"00","new_sig":"00"}"#,
        ),
        (11, "policy", ""),
        (11, "policy-bad", "[rules]\nport_scan_threshold = -1\n"),
    ];
    for (route, name, body) in bodies {
        let body = if name == "policy" {
            policy.to_toml()
        } else {
            body.to_owned()
        };
        let mut bytes = vec![route];
        bytes.extend_from_slice(body.as_bytes());
        write("api_body", &format!("{name}.bin"), &bytes);
    }

    for (target, name, bytes) in amoskys_node::workspace::fuzzing::seeds() {
        let target = if target == "envelope" {
            "workspace_envelope"
        } else {
            "workspace_change"
        };
        write(target, &format!("{name}.bin"), &bytes);
    }
}
