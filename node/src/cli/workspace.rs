//! `amoskys intel|case`: the shared workspace, through a node's API. Edits
//! work on any node, also while it is cut off from the others; they reach
//! every member when the mesh heals.

use std::process::ExitCode;

use clap::Subcommand;

use super::client::{self, Body};
use super::cluster::ApiArgs;
use super::show::{self, print_table};

#[derive(Debug, Subcommand)]
pub enum IntelCommand {
    /// Add an indicator: an IP address, a CIDR, a domain or a file hash
    /// (md5, sha1, sha256), optionally written `kind:value`.
    Add {
        indicator: String,
        /// Why it is listed (shown in alerts it raises).
        #[arg(long, default_value = "")]
        reason: String,
        /// Stop matching after this long, e.g. `7d` or `12h`.
        #[arg(long, value_name = "DURATION")]
        expires: Option<humantime::Duration>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Remove an indicator.
    Remove {
        indicator: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Live indicators.
    List {
        #[command(flatten)]
        api: ApiArgs,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum CaseCommand {
    /// Acknowledge an alert, optionally assigning it.
    Ack {
        alert: String,
        #[arg(long)]
        assignee: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Add a note to an alert's case.
    Note {
        alert: String,
        text: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Set a case's status: new, acknowledged, false_positive or resolved.
    Status {
        alert: String,
        status: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// An alert's case: status, assignee and notes.
    Show {
        alert: String,
        #[command(flatten)]
        api: ApiArgs,
        #[arg(long)]
        json: bool,
    },
    /// Every case.
    List {
        #[command(flatten)]
        api: ApiArgs,
        #[arg(long)]
        json: bool,
    },
}

fn ioc_row(i: &serde_json::Value) -> Vec<String> {
    vec![
        show::text(&i["kind"]),
        show::text(&i["value"]),
        show::peer(&i["added_by"]),
        show::when_ms(&i["expires_ms"]),
        show::text(&i["reason"]),
    ]
}

const IOC_HEADER: [&str; 5] = ["KIND", "INDICATOR", "ADDED BY", "EXPIRES", "REASON"];

/// Who wrote a case value or note: the operator (name, role, whether their
/// signed request verifies) on the node that recorded it, or the node alone
/// for an edit that names no operator.
fn written_by(v: &serde_json::Value, node: &serde_json::Value) -> String {
    let op = &v["operator"];
    match op["name"].as_str() {
        Some(name) => format!(
            "{name} ({}, {}) on {}",
            show::text(&op["role"]),
            if v["operator_verified"] == true {
                "verified"
            } else {
                "NOT VERIFIED"
            },
            show::peer(node)
        ),
        None => match show::peer(node) {
            p if p == "-" => p,
            p => format!("node {p}"),
        },
    }
}

fn print_case(c: &serde_json::Value) {
    let status = &c["status_set"];
    println!(
        "alert {}\n  status   {} (by {} at {})\n  assignee {}",
        show::text(&c["alert"]),
        show::text(&c["status"]),
        written_by(status, &status["by"]),
        show::when_ms(&status["at_ms"]),
        show::text(&c["assignee"]),
    );
    let s = &c["suppression"];
    if s.is_object() {
        println!(
            "  repeats  of {} on {} suppressed until {} ({} so far on this node)",
            show::text(&s["rule"]),
            show::text(&s["subject"]),
            show::when_ms(&s["until_ms"]),
            s["suppressed"].as_u64().unwrap_or(0),
        );
    }
    for n in c["notes"].as_array().into_iter().flatten() {
        println!(
            "  note {} by {}: {}",
            show::when_ms(&n["at_ms"]),
            written_by(n, &n["author"]),
            n["text"].as_str().unwrap_or("")
        );
    }
}

pub fn intel(cmd: IntelCommand) -> ExitCode {
    client::run(async {
        match cmd {
            IntelCommand::Add {
                indicator,
                reason,
                expires,
                api,
            } => {
                let mut body = serde_json::json!({ "indicator": indicator, "reason": reason });
                if let Some(d) = expires {
                    body["expires_secs"] = std::time::Duration::from(d).as_secs().max(1).into();
                }
                let v = api
                    .client()
                    .post("/api/v1/intel", Some(Body::Json(body)))
                    .await?;
                print_table(&IOC_HEADER, vec![ioc_row(&v["ioc"])], "");
            }
            IntelCommand::Remove { indicator, api } => {
                let v = api
                    .client()
                    .delete("/api/v1/intel", &[("indicator", indicator)])
                    .await?;
                println!("removed {}", show::text(&v["removed"]["value"]));
            }
            IntelCommand::List { api, json } => {
                let v = api.client().get("/api/v1/intel", &[]).await?;
                if json {
                    println!("{v}");
                } else {
                    let rows = v["iocs"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(ioc_row)
                        .collect();
                    print_table(&IOC_HEADER, rows, "no indicators");
                }
            }
        }
        Ok(())
    })
}

pub fn case(cmd: CaseCommand) -> ExitCode {
    client::run(async {
        let case_path =
            |alert: &str, what: &str| format!("/api/v1/cases/{}{what}", client::segment(alert));
        let v = match cmd {
            CaseCommand::Ack {
                alert,
                assignee,
                api,
            } => {
                let body = serde_json::json!({ "assignee": assignee });
                api.client()
                    .post(&case_path(&alert, "/ack"), Some(Body::Json(body)))
                    .await?
            }
            CaseCommand::Note { alert, text, api } => {
                let body = serde_json::json!({ "text": text });
                let client = api.client();
                client
                    .post(&case_path(&alert, "/notes"), Some(Body::Json(body)))
                    .await?;
                client.get(&case_path(&alert, ""), &[]).await?
            }
            CaseCommand::Status { alert, status, api } => {
                let body = serde_json::json!({ "status": status });
                api.client()
                    .post(&case_path(&alert, "/status"), Some(Body::Json(body)))
                    .await?
            }
            CaseCommand::Show { alert, api, json } => {
                let v = api.client().get(&case_path(&alert, ""), &[]).await?;
                if json {
                    println!("{v}");
                    return Ok(());
                }
                v
            }
            CaseCommand::List { api, json } => {
                let v = api.client().get("/api/v1/cases", &[]).await?;
                if json {
                    println!("{v}");
                    return Ok(());
                }
                let rows = v["cases"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| {
                        vec![
                            show::text(&c["alert"]),
                            show::text(&c["status"]),
                            show::text(&c["assignee"]),
                            c["notes"].as_array().map_or(0, Vec::len).to_string(),
                            show::when_ms(&c["status_set"]["at_ms"]),
                        ]
                    })
                    .collect();
                print_table(
                    &["ALERT", "STATUS", "ASSIGNEE", "NOTES", "CHANGED"],
                    rows,
                    "no cases",
                );
                return Ok(());
            }
        };
        print_case(&v["case"]);
        Ok(())
    })
}
