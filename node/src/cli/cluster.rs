//! `amoskys cluster|members|policy`: the Raft-replicated state, through a
//! node's API. Writes may be sent to any member; followers forward them to
//! the leader.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use reqwest::Method;

const API_HELP: &str = "API address of the node";

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Form a new cluster from this node (and the named peers, all voters).
    Init {
        /// Peer ids of other first members.
        #[arg(long = "peer", value_name = "PEER_ID")]
        peers: Vec<String>,
        #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:7300", help = API_HELP)]
        api: String,
    },
    /// Leader, term, voters, learners and join requests.
    Status {
        #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:7300", help = API_HELP)]
        api: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum MembersCommand {
    /// Members with their roles, pending join requests and removed nodes.
    List {
        #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:7300", help = API_HELP)]
        api: String,
        #[arg(long)]
        json: bool,
    },
    /// Admit a node (it joins as a learner; the cluster promotes learners
    /// to voters as its policy says).
    Admit {
        peer_id: String,
        #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:7300", help = API_HELP)]
        api: String,
    },
    /// Remove a node; it is not admitted again automatically.
    Remove {
        peer_id: String,
        #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:7300", help = API_HELP)]
        api: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// The committed policy document and what this node runs.
    Show {
        /// Read through the leader (linearizable).
        #[arg(long)]
        consistent: bool,
        #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:7300", help = API_HELP)]
        api: String,
        #[arg(long)]
        json: bool,
    },
    /// Validate a TOML policy file and commit it; every node applies it.
    Set {
        file: PathBuf,
        #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:7300", help = API_HELP)]
        api: String,
    },
    /// Committed versions, newest first.
    History {
        #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:7300", help = API_HELP)]
        api: String,
        #[arg(long)]
        json: bool,
    },
}

/// One API call; a non-2xx answer becomes its `error` text.
pub(super) async fn call(
    api: &str,
    method: Method,
    path: &str,
    body: Option<Body>,
) -> Result<serde_json::Value, String> {
    let url = format!("http://{api}{path}");
    let mut req = reqwest::Client::new()
        .request(method, &url)
        .timeout(Duration::from_secs(15));
    match body {
        Some(Body::Json(v)) => req = req.json(&v),
        Some(Body::Text(t)) => req = req.body(t),
        None => {}
    }
    let resp = req
        .send()
        .await
        .map_err(|e| format!("cannot reach the node API at {api}: {e}"))?;
    let status = resp.status();
    let value: serde_json::Value = resp.json().await.unwrap_or_default();
    if status.is_success() {
        Ok(value)
    } else {
        Err(value["error"]
            .as_str()
            .map_or_else(|| format!("{url} answered {status}"), str::to_owned))
    }
}

pub(super) enum Body {
    Json(serde_json::Value),
    Text(String),
}

pub(super) fn finish(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("amoskys: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_json(v: &serde_json::Value) {
    println!("{v}");
}

pub fn cluster(cmd: ClusterCommand) -> ExitCode {
    finish(super::block_on(async {
        match cmd {
            ClusterCommand::Init { peers, api } => {
                let body = serde_json::json!({ "peers": peers });
                let v = call(
                    &api,
                    Method::POST,
                    "/api/v1/cluster/init",
                    Some(Body::Json(body)),
                )
                .await?;
                println!(
                    "cluster formed; voters: {}",
                    v["cluster"]["voters"].as_array().map_or(0, |a| a.len())
                );
                Ok(())
            }
            ClusterCommand::Status { api, json } => {
                let v = call(&api, Method::GET, "/api/v1/cluster", None).await?;
                if json {
                    print_json(&v);
                    return Ok(());
                }
                let c = &v["cluster"];
                println!("node      {}", c["id"].as_str().unwrap_or("?"));
                if c["initialized"] != true {
                    println!(
                        "not in a cluster yet (amoskys cluster init, or start with a bootstrap peer and be admitted)"
                    );
                }
                println!(
                    "state     {} (term {})",
                    c["state"].as_str().unwrap_or("?"),
                    c["term"]
                );
                println!("leader    {}", c["leader"].as_str().unwrap_or("none"));
                for (label, key) in [("voter", "voters"), ("learner", "learners")] {
                    for m in c[key].as_array().into_iter().flatten() {
                        println!("{label:<9} {}", m.as_str().unwrap_or("?"));
                    }
                }
                println!(
                    "log       last {} applied {}",
                    c["last_log_index"], c["last_applied"]
                );
                match v["policy_version"].as_u64() {
                    Some(version) => println!("policy    version {version}"),
                    None => {
                        println!("policy    none committed (this node's configuration applies)")
                    }
                }
                if let Some(e) = v["policy_error"].as_str() {
                    println!("policy    NOT APPLIED: {e}");
                }
                for p in c["pending"].as_array().into_iter().flatten() {
                    println!(
                        "pending   {} (amoskys members admit {})",
                        p["id"].as_str().unwrap_or("?"),
                        p["id"].as_str().unwrap_or("?")
                    );
                }
                Ok(())
            }
        }
    }))
}

pub fn members(cmd: MembersCommand) -> ExitCode {
    finish(super::block_on(async {
        match cmd {
            MembersCommand::List { api, json } => {
                let v = call(&api, Method::GET, "/api/v1/members", None).await?;
                if json {
                    print_json(&v);
                    return Ok(());
                }
                for m in v["members"].as_array().into_iter().flatten() {
                    println!(
                        "{:<8} {}",
                        m["role"].as_str().unwrap_or("?"),
                        m["id"].as_str().unwrap_or("?")
                    );
                }
                for p in v["pending"].as_array().into_iter().flatten() {
                    println!("{:<8} {}", "pending", p["id"].as_str().unwrap_or("?"));
                }
                for r in v["removed"].as_array().into_iter().flatten() {
                    println!("{:<8} {}", "removed", r["id"].as_str().unwrap_or("?"));
                }
                Ok(())
            }
            MembersCommand::Admit { peer_id, api } => {
                let body = serde_json::json!({ "id": peer_id });
                call(
                    &api,
                    Method::POST,
                    "/api/v1/members",
                    Some(Body::Json(body)),
                )
                .await?;
                println!("admitted {peer_id} as a learner");
                Ok(())
            }
            MembersCommand::Remove { peer_id, api } => {
                call(
                    &api,
                    Method::DELETE,
                    &format!("/api/v1/members/{peer_id}"),
                    None,
                )
                .await?;
                println!("removed {peer_id}");
                Ok(())
            }
        }
    }))
}

pub fn policy(cmd: PolicyCommand) -> ExitCode {
    finish(super::block_on(async {
        match cmd {
            PolicyCommand::Show {
                consistent,
                api,
                json,
            } => {
                let path = format!("/api/v1/policy?consistent={consistent}");
                let v = call(&api, Method::GET, &path, None).await?;
                if json {
                    print_json(&v);
                    return Ok(());
                }
                let c = &v["committed"];
                if c.is_object() {
                    println!(
                        "# version {} sha256 {} by {}",
                        c["version"],
                        c["sha256"].as_str().unwrap_or("?"),
                        c["author"].as_str().unwrap_or("?")
                    );
                    print!("{}", c["document"].as_str().unwrap_or(""));
                } else {
                    println!("# no policy committed; this node runs its configuration's:");
                    print!("{}", v["in_force"]["document"].as_str().unwrap_or(""));
                }
                if let Some(e) = v["in_force"]["error"].as_str() {
                    eprintln!("warning: this node could not apply {e}");
                }
                Ok(())
            }
            PolicyCommand::Set { file, api } => {
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
                let v = call(&api, Method::PUT, "/api/v1/policy", Some(Body::Text(text))).await?;
                println!("policy version {} committed", v["version"]);
                Ok(())
            }
            PolicyCommand::History { api, json } => {
                let v = call(&api, Method::GET, "/api/v1/policy/history", None).await?;
                if json {
                    print_json(&v);
                    return Ok(());
                }
                for p in v["versions"].as_array().into_iter().flatten() {
                    println!(
                        "{:>5}  {}  {} bytes  by {}",
                        p["version"],
                        p["sha256"].as_str().unwrap_or("?"),
                        p["bytes"],
                        p["author"].as_str().unwrap_or("?")
                    );
                }
                Ok(())
            }
        }
    }))
}

#[derive(Debug, Subcommand)]
pub enum LearnCommand {
    /// Start a federated round over every member; the aggregator commits
    /// the combined model to the registry and every node puts it in use.
    Round {
        /// Entity kind: source, host, process or device.
        #[arg(long)]
        kind: String,
        /// fedavg, median, trimmed_mean, krum or multi_krum.
        #[arg(long, default_value = "fedavg")]
        rule: String,
        /// Trimmed share (trimmed_mean) or assumed bad sites (krum,
        /// multi_krum).
        #[arg(long, default_value_t = 0.0)]
        param: f64,
        #[arg(long, default_value_t = 2)]
        epochs: usize,
        #[arg(long, default_value_t = 60)]
        deadline_secs: u64,
        /// Fewer updates by the deadline abandon the round.
        #[arg(long = "min", default_value_t = 1)]
        min_participants: usize,
        #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:7300", help = API_HELP)]
        api: String,
    },
    /// Rounds, newest first, with their outcome.
    Rounds {
        #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:7300", help = API_HELP)]
        api: String,
        #[arg(long)]
        json: bool,
    },
}

fn rule_json(rule: &str, param: f64) -> Result<serde_json::Value, String> {
    Ok(match rule {
        "fedavg" | "median" => serde_json::json!({ "rule": rule }),
        "trimmed_mean" => serde_json::json!({ "rule": rule, "trim": param }),
        "krum" => serde_json::json!({ "rule": rule, "byzantine": param as usize }),
        "multi_krum" => {
            // The node picks `select` = participants − 2·byzantine.
            serde_json::json!({ "rule": rule, "byzantine": param as usize, "select": 0 })
        }
        other => {
            return Err(format!(
                "unknown rule {other:?}: expected fedavg, median, trimmed_mean, krum or multi_krum"
            ));
        }
    })
}

pub fn learn(cmd: LearnCommand) -> ExitCode {
    finish(super::block_on(async {
        match cmd {
            LearnCommand::Round {
                kind,
                rule,
                param,
                epochs,
                deadline_secs,
                min_participants,
                api,
            } => {
                let body = serde_json::json!({
                    "kind": kind,
                    "rule": rule_json(&rule, param)?,
                    "epochs": epochs,
                    "deadline_secs": deadline_secs,
                    "min_participants": min_participants,
                });
                let v = call(
                    &api,
                    Method::POST,
                    "/api/v1/learn/rounds",
                    Some(Body::Json(body)),
                )
                .await?;
                println!(
                    "round {} started; `amoskys learn rounds` shows its outcome",
                    v["round"]
                );
                Ok(())
            }
            LearnCommand::Rounds { api, json } => {
                let v = call(&api, Method::GET, "/api/v1/learn/rounds", None).await?;
                if json {
                    print_json(&v);
                    return Ok(());
                }
                for r in v["rounds"].as_array().into_iter().flatten() {
                    let outcome = match r["status"].as_str() {
                        Some("done") => format!("done: model version {}", r["version"]),
                        Some("abandoned") => {
                            format!("abandoned: {}", r["reason"].as_str().unwrap_or("?"))
                        }
                        Some(s) => s.to_owned(),
                        None => "?".into(),
                    };
                    println!(
                        "{:>4}  {:<8} {} participants  {}",
                        r["id"],
                        r["kind"].as_str().unwrap_or("?"),
                        r["participants"].as_array().map_or(0, Vec::len),
                        outcome
                    );
                }
                Ok(())
            }
        }
    }))
}
