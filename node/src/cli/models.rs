//! `amoskys models list|train|activate`: the node's anomaly models and the
//! replicated model registry, through its API.

use std::process::ExitCode;

use clap::Subcommand;

use super::client::{self, ClientError};
use super::cluster::ApiArgs;
use super::show::{self, print_table};

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Show the models in use and the trainer's last run.
    List {
        #[command(flatten)]
        api: ApiArgs,
        /// Print the API's JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// Ask the node to retrain its models now (returns once queued).
    Train {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Make a registered version the one every node uses (pin or roll
    /// back).
    Activate {
        version: u64,
        #[command(flatten)]
        api: ApiArgs,
    },
}

pub fn run(cmd: ModelsCommand) -> ExitCode {
    client::run(async {
        match cmd {
            ModelsCommand::List { api, json } => list(&api, json).await,
            ModelsCommand::Train { api } => {
                api.client().post("/api/v1/models/train", None).await?;
                println!(
                    "training queued; see `amoskys models list --api {}`",
                    api.addr
                );
                Ok(())
            }
            ModelsCommand::Activate { version, api } => {
                let path = format!("/api/v1/models/{version}/activate");
                let v = api.client().post(&path, None).await?;
                if !super::proposals::print_if_proposed(&v) {
                    println!("model version {version} is active on every node");
                }
                Ok(())
            }
        }
    })
}

async fn list(api: &ApiArgs, json: bool) -> Result<(), ClientError> {
    let body = api.client().get("/api/v1/models", &[]).await?;
    if json {
        println!("{body}");
        return Ok(());
    }
    if body["learning"] != true {
        println!("learning is disabled on this node");
    }
    let rows = body["models"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            vec![
                show::text(&m["entity"]),
                match m["detector"].as_str() {
                    Some(d) if !d.is_empty() && m["model"] == "auto" => format!("auto: {d}"),
                    _ => show::text(&m["model"]),
                },
                show::text(&m["train_rows"]),
                m["threshold"]
                    .as_f64()
                    .map_or("-".into(), |t| format!("{t:.2}")),
                show::text(&m["sha256"]),
            ]
        })
        .collect();
    print_table(
        &["ENTITY", "MODEL", "ROWS", "THRESHOLD", "SHA-256"],
        rows,
        "no model yet",
    );
    drift(&body["drift"]);
    let registry = &body["registry"];
    let active = registry["active"].as_u64();
    let rows: Vec<Vec<String>> = registry["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            let version = v["version"].as_u64().unwrap_or(0);
            vec![
                format!(
                    "{version}{}",
                    if Some(version) == active { " *" } else { "" }
                ),
                show::text(&v["schema"]),
                show::text(&v["parent"]),
                show::text(&v["round"]),
                show::text(&v["sha256"]),
                metrics(&v["metrics"]),
            ]
        })
        .collect();
    if !rows.is_empty() {
        println!();
        print_table(
            &["VERSION", "SCHEMA", "PARENT", "ROUND", "SHA-256", "METRICS"],
            rows,
            "",
        );
        println!("(* the active version, in use on every node)");
    }
    let t = &body["trainer"];
    if t.is_object() {
        println!(
            "\ntrainer: {} run(s){}{}",
            t["runs"],
            if t["running"] == true {
                ", running"
            } else {
                ""
            },
            if t["queued"] == true {
                ", one queued"
            } else {
                ""
            },
        );
        for k in t["last"]["kinds"].as_array().into_iter().flatten() {
            if let Some(why) = k["skipped"].as_str() {
                println!("  {}: no model ({why})", show::text(&k["entity"]));
            }
        }
    }
    Ok(())
}

/// Each kind's live scores against its training scores, and its episodes.
fn drift(d: &serde_json::Value) {
    let rows: Vec<Vec<String>> = d
        .as_array()
        .into_iter()
        .flatten()
        .map(|k| {
            let last = &k["last_episode"];
            let episode = if k["drifting"] == true {
                format!("drifting since {}", time(&k["since_ns"]))
            } else if last.is_object() {
                format!(
                    "last {} (psi {:.3}), ended {}",
                    time(&last["since_ns"]),
                    last["statistic"].as_f64().unwrap_or(0.0),
                    show::text(&last["ended_by"])
                )
            } else {
                "-".into()
            };
            vec![
                show::text(&k["entity"]),
                k["statistic"]
                    .as_f64()
                    .map_or("-".into(), |p| format!("{p:.3}")),
                format!(
                    "{}/{}",
                    show::text(&k["windows"]),
                    show::text(&k["min_windows"])
                ),
                show::text(&k["threshold"]),
                show::text(&k["episodes"]),
                episode,
            ]
        })
        .collect();
    if !rows.is_empty() {
        println!("\ndrift (live scores against training scores):");
        print_table(
            &["ENTITY", "PSI", "WINDOWS", "THRESHOLD", "EPISODES", "DRIFT"],
            rows,
            "",
        );
    }
}

/// A time in ns since the epoch, RFC 3339 to the second.
fn time(ns: &serde_json::Value) -> String {
    ns.as_u64().map_or("-".into(), |ns| {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns);
        humantime::format_rfc3339_seconds(t).to_string()
    })
}

/// `name=value` pairs, three decimals.
fn metrics(m: &serde_json::Value) -> String {
    let pairs: Vec<String> = m
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| match v.as_f64() {
            Some(x) => format!("{k}={x:.3}"),
            None => format!("{k}={v}"),
        })
        .collect();
    if pairs.is_empty() {
        "-".into()
    } else {
        pairs.join(" ")
    }
}
