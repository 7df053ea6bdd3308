//! `amoskys learn round|rounds`: federated rounds through a node's API.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use amoskys_learning::federated::Rule;
use clap::{Subcommand, ValueEnum};

use super::client::{self, Body, ClientError};
use super::cluster::ApiArgs;
use super::show::{self, print_table};

/// Aggregation rules, by the names the API reads.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RuleName {
    Fedavg,
    Median,
    TrimmedMean,
    Krum,
    MultiKrum,
}

#[derive(Debug, Subcommand)]
pub enum LearnCommand {
    /// Start a federated round over every member; the aggregator commits
    /// the combined model to the registry and every node puts it in use.
    Round {
        /// Entity kind: source, host, process or device; head:KIND (for
        /// example head:source) for the supervised head the analysts'
        /// verdicts train.
        #[arg(long)]
        kind: String,
        #[arg(long, value_enum, default_value_t = RuleName::Fedavg)]
        rule: RuleName,
        /// Trimmed share (trimmed-mean) or assumed bad sites (krum,
        /// multi-krum).
        #[arg(long, default_value_t = 0.0)]
        param: f64,
        #[arg(long, default_value_t = 2)]
        epochs: usize,
        #[arg(long, default_value_t = 60)]
        deadline_secs: u64,
        /// Fewer updates by the deadline abandon the round.
        #[arg(long = "min", default_value_t = 1)]
        min_participants: usize,
        /// Wait for the round to end, showing its progress; exits non-zero
        /// when it is abandoned.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Rounds, newest first, with their outcome.
    Rounds {
        #[command(flatten)]
        api: ApiArgs,
        #[arg(long)]
        json: bool,
    },
}

/// The rule as the API reads it: built from the learning layer's own type,
/// so the names cannot drift apart.
fn rule(name: RuleName, param: f64) -> Result<Rule, ClientError> {
    let whole = |what: &str| -> Result<usize, ClientError> {
        if param >= 0.0 && param.fract() == 0.0 && param < 1e6 {
            Ok(param as usize)
        } else {
            Err(ClientError::Local(format!(
                "--param {param}: {what} must be a whole number of sites"
            )))
        }
    };
    Ok(match name {
        RuleName::Fedavg => Rule::FedAvg,
        RuleName::Median => Rule::Median,
        RuleName::TrimmedMean => Rule::TrimmedMean { trim: param },
        RuleName::Krum => Rule::Krum {
            byzantine: whole("krum's assumed bad sites")?,
        },
        // The node picks `select` = participants − 2·byzantine.
        RuleName::MultiKrum => Rule::MultiKrum {
            byzantine: whole("multi-krum's assumed bad sites")?,
            select: 0,
        },
    })
}

pub fn learn(cmd: LearnCommand) -> ExitCode {
    client::run(async {
        match cmd {
            LearnCommand::Round {
                kind,
                rule: name,
                param,
                epochs,
                deadline_secs,
                min_participants,
                wait,
                api,
            } => {
                let body = serde_json::json!({
                    "kind": kind,
                    "rule": serde_json::to_value(rule(name, param)?).map_err(|e| e.to_string())?,
                    "epochs": epochs,
                    "deadline_secs": deadline_secs,
                    "min_participants": min_participants,
                });
                let v = api
                    .client()
                    .post("/api/v1/learn/rounds", Some(Body::Json(body)))
                    .await?;
                let id = v["round"].as_u64().unwrap_or(0);
                if !wait {
                    println!("round {id} started; `amoskys learn rounds` shows its outcome");
                    return Ok(());
                }
                println!("round {id} started; waiting for it to end");
                // The aggregator decides at the deadline at the latest.
                let limit = Duration::from_secs(deadline_secs.saturating_add(60));
                wait_for(&api, id, limit).await?;
            }
            LearnCommand::Rounds { api, json } => {
                let v = api.client().get("/api/v1/learn/rounds", &[]).await?;
                if json {
                    println!("{v}");
                    return Ok(());
                }
                let rows = v["rounds"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| {
                        vec![
                            show::text(&r["id"]),
                            show::text(&r["kind"]),
                            r["participants"].as_array().map_or(0, Vec::len).to_string(),
                            outcome(r),
                        ]
                    })
                    .collect();
                print_table(
                    &["ROUND", "KIND", "SITES", "OUTCOME"],
                    rows,
                    "no federated round yet",
                );
            }
        }
        Ok(())
    })
}

fn outcome(r: &serde_json::Value) -> String {
    match r["status"].as_str() {
        Some("done") => format!("done: model version {}", r["version"]),
        Some("abandoned") => format!("abandoned: {}", show::text(&r["reason"])),
        Some(s) => s.to_owned(),
        None => "-".into(),
    }
}

/// Polls the round until it is done or abandoned.
async fn wait_for(api: &ApiArgs, id: u64, limit: Duration) -> Result<(), ClientError> {
    let client = api.client();
    let start = Instant::now();
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.enable_steady_tick(Duration::from_millis(200));
        b
    });
    let mut last = String::new();
    let result = loop {
        let v = client.get("/api/v1/learn/rounds", &[]).await?;
        let round = v["rounds"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["id"].as_u64() == Some(id))
            .cloned()
            .unwrap_or_default();
        let status = round["status"].as_str().unwrap_or("not applied yet");
        match status {
            "done" | "abandoned" => break round,
            _ => {
                let left = round["deadline_ns"]
                    .as_u64()
                    .map(|d| {
                        let now = amoskys_sensors::now_ns();
                        format!(
                            ", {} s to its deadline",
                            d.saturating_sub(now) / 1_000_000_000
                        )
                    })
                    .unwrap_or_default();
                let line = format!(
                    "round {id}: {status}, {} sites{left}",
                    round["participants"].as_array().map_or(0, Vec::len)
                );
                match &bar {
                    Some(b) => b.set_message(line),
                    None if status != last => eprintln!("{line}"),
                    None => {}
                }
                status.clone_into(&mut last);
            }
        }
        if start.elapsed() > limit {
            if let Some(b) = &bar {
                b.finish_and_clear();
            }
            return Err(ClientError::Local(format!(
                "round {id} has not ended after {} s; `amoskys learn rounds` shows it",
                limit.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    println!("round {id} {}", outcome(&result));
    if result["status"] == "abandoned" {
        return Err(ClientError::Failed(format!("round {id} was abandoned")));
    }
    Ok(())
}
