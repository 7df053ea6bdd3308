//! `amoskys cluster|members|policy`: the Raft-replicated state, through a
//! node's API. Writes may be sent to any member; followers forward them to
//! the leader.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use reqwest::Method;

use super::client::{self, Api, Body, ClientError, DEFAULT_API};
use super::show::{self, print_table};

/// The node to ask (every client command has it).
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// API address of the node (IP:PORT, or https://IP:PORT).
    #[arg(long = "api", value_name = "IP:PORT", default_value = DEFAULT_API)]
    pub addr: String,
    /// Operator key to sign requests with (PKCS#8 PEM); default: the
    /// node's local admin credential, when the node is on this host.
    #[arg(long = "key", value_name = "FILE", env = "AMOSKYS_OPERATOR_KEY")]
    pub key: Option<PathBuf>,
    #[command(flatten)]
    pub tls: super::tls::TlsArgs,
}

impl ApiArgs {
    pub(super) fn client(&self) -> Api {
        Api::new(&self.addr, self.key.clone()).with_tls(&self.tls)
    }
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Form a new cluster from this node (and the named peers, all voters).
    Init {
        /// Peer ids of other first members.
        #[arg(long = "peer", value_name = "PEER_ID")]
        peers: Vec<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Leader, term, quorum, voters, learners and join requests.
    Status {
        #[command(flatten)]
        api: ApiArgs,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum MembersCommand {
    /// Members with their roles, pending join requests and removed nodes.
    List {
        #[command(flatten)]
        api: ApiArgs,
        #[arg(long)]
        json: bool,
    },
    /// Admit a node (it joins as a learner; the cluster promotes learners
    /// to voters as its policy says).
    Admit {
        peer_id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Remove a node; it is not admitted again automatically.
    Remove {
        peer_id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Print the committed membership as JSON, signed by the node (a
    /// voter), for `amoskys alerts verify --members FILE`.
    Export {
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// The committed policy document and what this node runs.
    Show {
        /// Read through the leader (linearizable).
        #[arg(long)]
        consistent: bool,
        #[command(flatten)]
        api: ApiArgs,
        #[arg(long)]
        json: bool,
    },
    /// Validate a TOML policy file and commit it; every node applies it.
    Set {
        file: PathBuf,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Approve a proposal (a policy change, member removal or model
    /// activation waiting for admins of several nodes; `amoskys proposals
    /// list`).
    Approve {
        id: u64,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Committed versions, newest first.
    History {
        #[command(flatten)]
        api: ApiArgs,
        #[arg(long)]
        json: bool,
    },
}

/// One API call with a JSON answer, for commands outside this module.
pub(super) async fn call(
    api: &ApiArgs,
    method: Method,
    path: &str,
    body: Option<Body>,
) -> Result<serde_json::Value, ClientError> {
    api.client().call(method, path, &[], body).await
}

fn print_json(v: &serde_json::Value) {
    println!("{v}");
}

pub fn cluster(cmd: ClusterCommand) -> ExitCode {
    client::run(async {
        match cmd {
            ClusterCommand::Init { peers, api } => {
                let body = serde_json::json!({ "peers": peers });
                let v = api
                    .client()
                    .post("/api/v1/cluster/init", Some(Body::Json(body)))
                    .await?;
                println!(
                    "cluster formed; voters: {}",
                    v["cluster"]["voters"].as_array().map_or(0, Vec::len)
                );
            }
            ClusterCommand::Status { api, json } => {
                let v = api.client().get("/api/v1/cluster", &[]).await?;
                if json {
                    print_json(&v);
                } else {
                    print_cluster(&v);
                }
            }
        }
        Ok(())
    })
}

/// One line on quorum, as `cluster status` and `status` print it.
pub(super) fn quorum_line(q: &serde_json::Value) -> Option<String> {
    let ok = q["ok"].as_bool()?;
    let counts = format!(
        "{} of {} voters reachable, {} needed",
        show::text(&q["reachable"]),
        show::text(&q["voters"]),
        show::text(&q["needed"])
    );
    Some(if ok {
        format!("ok ({counts})")
    } else {
        format!("LOST ({counts}): writes fail with 503 until voters return")
    })
}

fn print_cluster(v: &serde_json::Value) {
    let c = &v["cluster"];
    println!("node      {}", show::text(&c["id"]));
    if c["initialized"] != true {
        println!(
            "not in a cluster yet (amoskys cluster init, or start with a bootstrap peer and be admitted)"
        );
    }
    println!("state     {} (term {})", show::text(&c["state"]), c["term"]);
    println!("leader    {}", show::text(&c["leader"]));
    if let Some(q) = quorum_line(&c["quorum"]) {
        println!("quorum    {q}");
    }
    println!(
        "log       last {} applied {}",
        show::text(&c["last_log_index"]),
        show::text(&c["last_applied"])
    );
    match v["policy_version"].as_u64() {
        Some(version) => println!("policy    version {version}"),
        None => println!("policy    none committed (this node's configuration applies)"),
    }
    if let Some(e) = v["policy_error"].as_str() {
        println!("policy    NOT APPLIED: {e}");
    }
    println!();
    let mut rows = Vec::new();
    for (role, key) in [("voter", "voters"), ("learner", "learners")] {
        for m in c[key].as_array().into_iter().flatten() {
            rows.push(vec![role.to_owned(), show::peer(m), String::new()]);
        }
    }
    rows.extend(pending_rows(&c["pending"]));
    print_table(&["ROLE", "PEER ID", "NOTE"], rows, "no members");
}

/// Join requests: who asked, from where, when.
fn pending_rows(pending: &serde_json::Value) -> Vec<Vec<String>> {
    pending
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let name = p["name"].as_str().filter(|n| !n.is_empty());
            let asked = p["requested_at"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| p["asked_ns"].as_u64().map(show::when_ns))
                .unwrap_or_else(|| "-".into());
            let mut note = format!("asked {asked} from {}", show::text(&p["addr"]));
            if let Some(n) = name {
                note = format!("{n}, {note}");
            }
            vec!["pending".to_owned(), show::peer(&p["id"]), note]
        })
        .collect()
}

pub fn members(cmd: MembersCommand) -> ExitCode {
    client::run(async {
        match cmd {
            MembersCommand::List { api, json } => {
                let v = api.client().get("/api/v1/members", &[]).await?;
                if json {
                    print_json(&v);
                    return Ok(());
                }
                let mut rows: Vec<Vec<String>> = v["members"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|m| {
                        let since = m["admitted_ns"].as_u64().map_or_else(
                            || "-".to_owned(),
                            |ns| format!("admitted {}", show::when_ns(ns)),
                        );
                        vec![show::text(&m["role"]), show::peer(&m["id"]), since]
                    })
                    .collect();
                rows.extend(pending_rows(&v["pending"]));
                for r in v["removed"].as_array().into_iter().flatten() {
                    let when = r["removed_ns"].as_u64().map_or_else(
                        || "-".to_owned(),
                        |ns| format!("removed {}", show::when_ns(ns)),
                    );
                    rows.push(vec!["removed".into(), show::peer(&r["id"]), when]);
                }
                print_table(&["ROLE", "PEER ID", "NOTE"], rows, "no members");
            }
            MembersCommand::Admit { peer_id, api } => {
                let body = serde_json::json!({ "id": peer_id });
                api.client()
                    .post("/api/v1/members", Some(Body::Json(body)))
                    .await?;
                println!("admitted {peer_id} as a learner");
            }
            MembersCommand::Remove { peer_id, api } => {
                let v = api
                    .client()
                    .delete(
                        &format!("/api/v1/members/{}", client::segment(&peer_id)),
                        &[],
                    )
                    .await?;
                if !super::proposals::print_if_proposed(&v) {
                    println!("removed {peer_id}");
                }
            }
            MembersCommand::Export { api } => {
                let v = call(&api, Method::GET, "/api/v1/members/export", None).await?;
                println!(
                    "{}",
                    serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string())
                );
            }
        }
        Ok(())
    })
}

pub fn policy(cmd: PolicyCommand) -> ExitCode {
    client::run(async {
        match cmd {
            PolicyCommand::Show {
                consistent,
                api,
                json,
            } => {
                let query = [("consistent", consistent.to_string())];
                let v = api.client().get("/api/v1/policy", &query).await?;
                if json {
                    print_json(&v);
                    return Ok(());
                }
                let c = &v["committed"];
                if c.is_object() {
                    println!(
                        "# version {} sha256 {} by {}",
                        c["version"],
                        show::text(&c["sha256"]),
                        show::peer(&c["author"])
                    );
                    print!("{}", c["document"].as_str().unwrap_or(""));
                } else {
                    println!("# no policy committed; this node runs its configuration's:");
                    print!("{}", v["in_force"]["document"].as_str().unwrap_or(""));
                }
                if let Some(e) = v["in_force"]["error"].as_str() {
                    eprintln!("warning: this node could not apply {e}");
                }
            }
            PolicyCommand::Set { file, api } => {
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
                let v = api.client().put("/api/v1/policy", Body::Text(text)).await?;
                if !super::proposals::print_if_proposed(&v) {
                    println!("policy version {} committed", v["version"]);
                }
            }
            PolicyCommand::Approve { id, api } => {
                super::proposals::approve(id, &api).await?;
            }
            PolicyCommand::History { api, json } => {
                let v = api.client().get("/api/v1/policy/history", &[]).await?;
                if json {
                    print_json(&v);
                    return Ok(());
                }
                let rows = v["versions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| {
                        vec![
                            show::text(&p["version"]),
                            show::text(&p["sha256"]),
                            show::text(&p["bytes"]),
                            show::peer(&p["author"]),
                        ]
                    })
                    .collect();
                print_table(
                    &["VERSION", "SHA-256", "BYTES", "AUTHOR"],
                    rows,
                    "no policy committed",
                );
            }
        }
        Ok(())
    })
}
