//! `amoskys decisions list|add|remove`: the response decisions every
//! node's bouncer enforces (docs/RESPONSE.md), through a node's API.

use std::process::ExitCode;

use clap::Subcommand;

use super::client::{self, Body};
use super::cluster::ApiArgs;
use super::show::{self, print_table};

#[derive(Debug, Subcommand)]
pub enum DecisionsCommand {
    /// Live decisions, the mode in force and this node's bouncer.
    List {
        #[command(flatten)]
        api: ApiArgs,
        #[arg(long)]
        json: bool,
    },
    /// Block an address or a CIDR block on every node for a while.
    Add {
        /// An address (203.0.113.7) or a CIDR block (203.0.113.0/24).
        subject: String,
        /// How long, e.g. `90s`, `30m`, `1h` (at most 30 days).
        #[arg(long, value_name = "DURATION")]
        duration: humantime::Duration,
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// End a decision before it expires.
    Remove {
        subject: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

const HEADER: [&str; 6] = ["SUBJECT", "ACTION", "EXPIRES", "ORIGIN", "BY", "REASON"];

fn row(d: &serde_json::Value) -> Vec<String> {
    let by = match d["operator"]["name"].as_str() {
        Some(name) => format!(
            "{name} ({})",
            if d["operator_verified"] == true {
                "verified"
            } else {
                "unverified"
            }
        ),
        None => show::peer(&d["author"]),
    };
    vec![
        show::text(&d["subject"]),
        show::text(&d["action"]),
        show::when_ms(&d["expires_ms"]),
        show::text(&d["origin"]),
        by,
        show::text(&d["reason"]),
    ]
}

pub fn run(cmd: DecisionsCommand) -> ExitCode {
    client::run(async {
        match cmd {
            DecisionsCommand::List { api, json } => {
                let v = api.client().get("/api/v1/decisions", &[]).await?;
                if json {
                    println!("{v}");
                    return Ok(());
                }
                let b = &v["bouncer"];
                let health = if b["healthy"] == true {
                    "healthy".to_owned()
                } else {
                    format!("unhealthy: {}", show::text(&b["reason"]))
                };
                println!(
                    "mode {}; bouncer {health}; {} enforced",
                    show::text(&v["mode"]),
                    b["enforced"]
                );
                let rows = v["decisions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(row)
                    .collect();
                print_table(&HEADER, rows, "no decisions");
            }
            DecisionsCommand::Add {
                subject,
                duration,
                reason,
                api,
            } => {
                let secs = std::time::Duration::from(duration).as_secs().max(1);
                let body = serde_json::json!({
                    "subject": subject,
                    "reason": reason,
                    "duration_secs": secs,
                });
                let v = api
                    .client()
                    .post("/api/v1/decisions", Some(Body::Json(body)))
                    .await?;
                print_table(&HEADER, vec![row(&v["decision"])], "");
            }
            DecisionsCommand::Remove { subject, api } => {
                let v = api
                    .client()
                    .delete("/api/v1/decisions", &[("subject", subject)])
                    .await?;
                println!("removed {}", show::text(&v["removed"]["subject"]));
            }
        }
        Ok(())
    })
}
