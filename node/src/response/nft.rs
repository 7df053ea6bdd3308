//! The nftables driver: the node's own table (`inet amoskys`) with two
//! sets of blocked sources (`block4`, `block6`: intervals with a timeout
//! per element) and an input chain that drops what they hold.
//!
//! Every change is one `nft -j -f -` transaction: the sets are flushed and
//! refilled with the plan (atomic: the kernel applies all of it or none).
//! The kernel drops an element when its timeout passes, so a decision
//! ends on time even if the node stops.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use super::decisions::Subject;

/// The table every node uses, in family `inet`.
pub const TABLE: &str = "amoskys";
const SET4: &str = "block4";
const SET6: &str = "block6";
const CHAIN: &str = "input";

/// Why nftables cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NftError {
    #[error("cannot run {program} ({reason}); install nftables (apt-get install nftables)")]
    Missing { program: String, reason: String },
    #[error("nft refused the change: {0}")]
    Refused(String),
}

/// Runs `nft` with the node's table.
#[derive(Debug, Clone)]
pub struct Nft {
    program: String,
    table: String,
}

impl Default for Nft {
    fn default() -> Self {
        Nft::new("nft", TABLE)
    }
}

fn family_table(table: &str) -> Value {
    json!({ "family": "inet", "name": table })
}

fn elem(subject: &Subject, secs: u64) -> Value {
    let val = if subject.is_host() {
        json!(subject.addr().to_string())
    } else {
        json!({ "prefix": { "addr": subject.addr().to_string(), "len": subject.prefix_len() } })
    };
    json!({ "elem": { "val": val, "timeout": secs } })
}

impl Nft {
    pub fn new(program: &str, table: &str) -> Nft {
        Nft {
            program: program.to_owned(),
            table: table.to_owned(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn run(&self, args: &[&str], input: Option<&str>) -> Result<String, NftError> {
        let mut child = Command::new(&self.program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| NftError::Missing {
                program: self.program.clone(),
                reason: e.to_string(),
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(input.unwrap_or_default().as_bytes());
        }
        let out = child.wait_with_output().map_err(|e| NftError::Missing {
            program: self.program.clone(),
            reason: e.to_string(),
        })?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            Err(NftError::Refused(
                err.lines()
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" ")
                    .trim()
                    .to_owned(),
            ))
        }
    }

    fn apply(&self, commands: Vec<Value>) -> Result<(), NftError> {
        let doc = json!({ "nftables": commands }).to_string();
        self.run(&["-j", "-f", "-"], Some(&doc)).map(drop)
    }

    /// Creates the table, the sets and the chain (anew: a table left by an
    /// earlier run is replaced). Fails without nft or CAP_NET_ADMIN.
    pub fn install(&self) -> Result<(), NftError> {
        let t = &self.table;
        let mut cmds = vec![
            json!({ "add": { "table": family_table(t) } }),
            json!({ "delete": { "table": family_table(t) } }),
            json!({ "add": { "table": family_table(t) } }),
        ];
        for (set, ty) in [(SET4, "ipv4_addr"), (SET6, "ipv6_addr")] {
            cmds.push(json!({ "add": { "set": {
                "family": "inet", "table": t, "name": set, "type": ty,
                "flags": ["interval", "timeout"],
            } } }));
        }
        cmds.push(json!({ "add": { "chain": {
            "family": "inet", "table": t, "name": CHAIN,
            "type": "filter", "hook": "input", "prio": -10, "policy": "accept",
        } } }));
        for (proto, set) in [("ip", SET4), ("ip6", SET6)] {
            cmds.push(json!({ "add": { "rule": {
                "family": "inet", "table": t, "chain": CHAIN,
                "expr": [
                    { "match": { "op": "==",
                        "left": { "payload": { "protocol": proto, "field": "saddr" } },
                        "right": format!("@{set}") } },
                    { "counter": null },
                    { "drop": null },
                ],
            } } }));
        }
        self.apply(cmds)
    }

    /// Makes the sets hold exactly `plan` (subject, seconds left), in one
    /// transaction.
    pub fn replace(&self, plan: &[(Subject, u64)]) -> Result<(), NftError> {
        let t = &self.table;
        let mut cmds = Vec::new();
        for (set, v4) in [(SET4, true), (SET6, false)] {
            cmds.push(json!({ "flush": { "set": { "family": "inet", "table": t, "name": set } } }));
            let elems: Vec<Value> = plan
                .iter()
                .filter(|(s, _)| s.is_ipv4() == v4)
                .map(|(s, secs)| elem(s, *secs))
                .collect();
            if !elems.is_empty() {
                cmds.push(json!({ "add": { "element": {
                    "family": "inet", "table": t, "name": set, "elem": elems,
                } } }));
            }
        }
        self.apply(cmds)
    }

    /// Whether nft runs and may read the kernel's tables (CAP_NET_ADMIN).
    pub fn probe(&self) -> Result<(), NftError> {
        self.run(&["-j", "list", "tables"], None).map(drop)
    }

    /// Deletes the table (nothing when it is absent).
    pub fn remove(&self) -> Result<(), NftError> {
        let t = &self.table;
        self.apply(vec![
            json!({ "add": { "table": family_table(t) } }),
            json!({ "delete": { "table": family_table(t) } }),
        ])
    }

    /// The number of elements the kernel holds in both sets.
    pub fn count(&self) -> Result<usize, NftError> {
        let mut n = 0;
        for set in [SET4, SET6] {
            let out = self.run(&["-j", "list", "set", "inet", &self.table, set], None)?;
            let v: Value = serde_json::from_str(&out).unwrap_or_default();
            n += v["nftables"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| o["set"]["elem"].as_array())
                .map(Vec::len)
                .sum::<usize>();
        }
        Ok(n)
    }
}
