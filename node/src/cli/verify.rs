//! `amoskys alerts verify`: offline checks of exported alerts. An alert
//! carries its origin's key, so its signature alone proves nothing about
//! who sent it: each origin must also be in a trust set, the members of a
//! signed membership export (`--members`) or keys from files (`--keys`).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use amoskys_consensus::NodeId;
use amoskys_mesh::Alert;
use amoskys_node::trust::{MembersExport, TrustSet};
use clap::Args;

use super::alerts::summary;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// JSON-lines file of alerts (`amoskys alerts export`), or - for stdin.
    file: PathBuf,
    /// Trust the members of this membership export (`amoskys members export
    /// > members.json`).
    #[arg(long, value_name = "FILE")]
    members: Option<PathBuf>,
    /// Accept the membership export only if this node signed it (peer id or
    /// 64-hex public key).
    #[arg(long, value_name = "PEER_ID", requires = "members")]
    signer: Option<String>,
    /// Trust the keys in FILE: one peer id or 64-hex public key a line, `#`
    /// starts a comment (repeatable).
    #[arg(long = "keys", value_name = "FILE")]
    keys: Vec<PathBuf>,
    /// Check signatures only, whoever signed them: prints "signature only,
    /// origin not checked".
    #[arg(long, conflicts_with_all = ["members", "keys"])]
    any_key: bool,
}

/// Exit code when no check could run (unreadable input, no or a refused
/// trust set).
const USAGE: u8 = 2;

pub(super) fn alerts(args: &VerifyArgs) -> ExitCode {
    // A closed pipe (`| head`) ends the check quietly instead of a panic in
    // `println!`.
    run(args, &mut std::io::stdout().lock()).unwrap_or(ExitCode::FAILURE)
}

fn run(args: &VerifyArgs, out: &mut impl Write) -> std::io::Result<ExitCode> {
    let trust = if args.any_key {
        writeln!(out, "signature only, origin not checked")?;
        None
    } else {
        match trust_set(args) {
            Ok((trust, sources)) => {
                for source in sources {
                    writeln!(out, "trusting {source}")?;
                }
                Some(trust)
            }
            Err(e) => {
                eprintln!("amoskys: {e}");
                return Ok(ExitCode::from(USAGE));
            }
        }
    };
    let reader: Box<dyn BufRead> = if args.file.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        match std::fs::File::open(&args.file) {
            Ok(f) => Box::new(std::io::BufReader::new(f)),
            Err(e) => {
                eprintln!("amoskys: cannot read {}: {e}", args.file.display());
                return Ok(ExitCode::from(USAGE));
            }
        }
    };
    let (mut good, mut bad) = (0usize, 0usize);
    for (i, line) in reader.lines().enumerate() {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                writeln!(out, "line {}: FAILED  cannot read: {e}", i + 1)?;
                bad += 1;
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        match check(line.trim(), trust.as_ref()) {
            Ok(a) => {
                good += 1;
                writeln!(out, "line {}: ok  {}", i + 1, summary(&a))?;
            }
            Err(e) => {
                bad += 1;
                writeln!(out, "line {}: FAILED  {e}", i + 1)?;
            }
        }
    }
    if trust.is_some() {
        writeln!(out, "{good} verified, {bad} failed")?;
    } else {
        writeln!(
            out,
            "{good} signatures valid (origin not checked), {bad} failed"
        )?;
    }
    Ok(if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The signature, then the origin against the trust set (when there is one).
fn check(line: &str, trust: Option<&TrustSet>) -> Result<Alert, String> {
    let alert = Alert::parse(line.as_bytes()).map_err(|e| e.to_string())?;
    let key = alert.verify().map_err(|e| e.to_string())?;
    if let Some(trust) = trust {
        trust.admits(&key, alert.body.seq)?;
    }
    Ok(alert)
}

/// The union of `--members` and every `--keys` file, and a line about
/// each; refuses to go on without one.
fn trust_set(args: &VerifyArgs) -> Result<(TrustSet, Vec<String>), String> {
    if args.members.is_none() && args.keys.is_empty() {
        return Err(
            "a trust set is needed to say who signed these alerts: --members FILE (from \
             `amoskys members export > members.json`) or --keys FILE (peer ids or hex keys, one \
             a line); --any-key checks signatures only"
                .into(),
        );
    }
    let mut trust = TrustSet::default();
    let mut sources = Vec::new();
    if let Some(path) = &args.members {
        let members = members(path, args.signer.as_deref())?;
        sources.push(format!("{} member(s) of {}", members.len(), path.display()));
        trust.extend(members);
    }
    for path in &args.keys {
        let keys = keys(path)?;
        sources.push(format!("{} key(s) of {}", keys.len(), path.display()));
        trust.extend(keys);
    }
    Ok((trust, sources))
}

/// The members of a membership export, if it verifies.
pub(super) fn members(path: &Path, signer: Option<&str>) -> Result<TrustSet, String> {
    let signer = match signer {
        Some(s) => Some(NodeId::parse(s).map_err(|e| format!("--signer: {e}"))?),
        None => None,
    };
    let bytes = read(path)?;
    MembersExport::decode(&bytes, signer.as_ref())
        .map_err(|e| format!("{}: refused: {e}", path.display()))
}

/// The keys of a `--keys` file.
pub(super) fn keys(path: &Path) -> Result<TrustSet, String> {
    let text = String::from_utf8(read(path)?)
        .map_err(|_| format!("{}: not UTF-8 text", path.display()))?;
    TrustSet::from_keys(&text, &path.display().to_string())
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}
