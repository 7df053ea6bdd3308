//! `amoskys audit tail|list|export|verify`: the cluster's audit trail. The
//! first three read a node's API; `verify` checks an export offline, like
//! `alerts verify`, against a trust set of nodes.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use amoskys_consensus::audit::verify_export;
use amoskys_node::trust::TrustSet;
use clap::{Args, Subcommand};
use reqwest::Method;

use super::client::{self, ClientError};
use super::cluster::ApiArgs;
use super::show::{self, print_table};

/// Entries one request asks for.
const PAGE: usize = 1_000;
/// Pause between polls of `tail --follow`.
const FOLLOW_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// The newest entries; --follow keeps printing new ones.
    Tail {
        /// How many entries.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
        #[arg(long, short = 'f')]
        follow: bool,
        #[command(flatten)]
        api: ApiArgs,
        #[arg(long)]
        json: bool,
    },
    /// Entries recorded since a time (RFC 3339, a duration ago such as 1h,
    /// or Unix nanoseconds), the newest --limit of them.
    List {
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        api: ApiArgs,
        #[arg(long)]
        json: bool,
    },
    /// Every entry kept (from the first since --since), JSON lines, then
    /// the head signed by the node: the input of `audit verify`.
    Export {
        #[arg(long)]
        since: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Check an export offline: the hash chain, each entry's signature, and
    /// the signed head; names the first bad entry.
    Verify(AuditVerifyArgs),
}

#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    /// JSON-lines file of `amoskys audit export`, or - for stdin.
    file: PathBuf,
    /// Trust the members of this membership export.
    #[arg(long, value_name = "FILE")]
    members: Option<PathBuf>,
    /// Accept the membership export only if this node signed it.
    #[arg(long, value_name = "PEER_ID", requires = "members")]
    signer: Option<String>,
    /// Trust the keys in FILE (one peer id or 64-hex key a line).
    #[arg(long = "keys", value_name = "FILE")]
    keys: Vec<PathBuf>,
    /// Check signatures only, whichever node made them.
    #[arg(long, conflicts_with_all = ["members", "keys"])]
    any_key: bool,
}

pub fn audit(cmd: AuditCommand) -> ExitCode {
    match cmd {
        AuditCommand::Tail {
            lines,
            follow,
            api,
            json,
        } => client::run(tail(api, lines, follow, json)),
        AuditCommand::List {
            since,
            limit,
            api,
            json,
        } => client::run(async move {
            let mut query = vec![("limit", limit.to_string())];
            if let Some(s) = since {
                query.push(("since", s));
            }
            let v = api.client().get("/api/v1/audit", &query).await?;
            print_entries(&v, json, true);
            Ok(())
        }),
        AuditCommand::Export { since, api } => client::run(async move {
            let query: Vec<(&str, String)> = since.map(|s| ("since", s)).into_iter().collect();
            let text = api
                .client()
                .text(
                    Method::GET,
                    "/api/v1/audit/export",
                    &query,
                    None,
                    Duration::from_secs(120),
                )
                .await?;
            print!("{text}");
            Ok(())
        }),
        AuditCommand::Verify(args) => verify(&args),
    }
}

async fn tail(api: ApiArgs, lines: usize, follow: bool, json: bool) -> Result<(), ClientError> {
    let client = api.client();
    let limit = lines.clamp(1, 10_000);
    let v = client
        .get("/api/v1/audit", &[("limit", limit.to_string())])
        .await?;
    print_entries(&v, json, !follow);
    if !follow {
        return Ok(());
    }
    let mut after = last_seq(&v).unwrap_or(0);
    loop {
        tokio::time::sleep(FOLLOW_EVERY).await;
        let query = [("after", after.to_string()), ("limit", PAGE.to_string())];
        let v = client.get("/api/v1/audit", &query).await?;
        print_entries(&v, json, false);
        after = last_seq(&v).unwrap_or(after);
    }
}

fn last_seq(v: &serde_json::Value) -> Option<u64> {
    v["entries"].as_array()?.last()?["seq"].as_u64()
}

fn print_entries(v: &serde_json::Value, json: bool, say_empty: bool) {
    let entries = v["entries"].as_array().cloned().unwrap_or_default();
    if json {
        for e in &entries {
            println!("{e}");
        }
        return;
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let r = &e["record"];
            vec![
                e["seq"].to_string(),
                r["time_ns"].as_u64().map_or("-".into(), show::when_ns),
                format!(
                    "{} ({})",
                    show::text(&r["operator"]),
                    show::text(&r["role"])
                ),
                show::text(&r["action"]),
                show::text(&r["target"]),
                show::text(&e["outcome"]),
                show::text(&r["summary"]),
            ]
        })
        .collect();
    if rows.is_empty() && !say_empty {
        return;
    }
    print_table(
        &[
            "SEQ", "TIME", "OPERATOR", "ACTION", "TARGET", "OUTCOME", "SUMMARY",
        ],
        rows,
        "no audit entries",
    );
}

fn verify(args: &AuditVerifyArgs) -> ExitCode {
    let trust = if args.any_key {
        println!("signature only, recording nodes not checked");
        None
    } else {
        match trust_set(args) {
            Ok((trust, sources)) => {
                for s in sources {
                    println!("trusting {s}");
                }
                Some(trust)
            }
            Err(e) => {
                eprintln!("amoskys: {e}");
                return ExitCode::from(client::exit::USAGE);
            }
        }
    };
    let input: Box<dyn BufRead> = if args.file.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        match std::fs::File::open(&args.file) {
            Ok(f) => Box::new(std::io::BufReader::new(f)),
            Err(e) => {
                eprintln!("amoskys: cannot read {}: {e}", args.file.display());
                return ExitCode::from(client::exit::USAGE);
            }
        }
    };
    let trusted = |node: &amoskys_consensus::NodeId| -> Result<(), String> {
        let Some(trust) = &trust else { return Ok(()) };
        let key = ed25519_dalek::VerifyingKey::from_bytes(&node.0)
            .map_err(|_| format!("{} is not an ed25519 key", node.to_hex()))?;
        trust.admits_node(&key).map(|_| ())
    };
    match verify_export(input, trusted) {
        Ok(v) => {
            println!(
                "ok: {} entries ({} to {}) verified; head signed by {}",
                v.count, v.first_seq, v.last_seq, v.exporter
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("FAILED {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--members` and `--keys`, as `alerts verify` reads them.
fn trust_set(args: &AuditVerifyArgs) -> Result<(TrustSet, Vec<String>), String> {
    if args.members.is_none() && args.keys.is_empty() {
        return Err(
            "a trust set is needed to say which nodes may record entries: --members FILE (from \
             `amoskys members export > members.json`) or --keys FILE; --any-key checks \
             signatures only"
                .into(),
        );
    }
    let mut trust = TrustSet::default();
    let mut sources = Vec::new();
    if let Some(path) = &args.members {
        let members = super::verify::members(path, args.signer.as_deref())?;
        sources.push(format!("{} member(s) of {}", members.len(), path.display()));
        trust.extend(members);
    }
    for path in &args.keys {
        let keys = super::verify::keys(path)?;
        sources.push(format!("{} key(s) of {}", keys.len(), path.display()));
        trust.extend(keys);
    }
    Ok((trust, sources))
}
