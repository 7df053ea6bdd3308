//! `amoskys intel|case`: the shared workspace, through a node's API. Edits
//! work on any node, also while it is cut off from the others; they reach
//! every member when the mesh heals.

use std::process::ExitCode;

use clap::Subcommand;
use reqwest::Method;

use super::cluster::{Body, call, finish};

const API_HELP: &str = "API address of the node";

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
        #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:7300", help = API_HELP)]
        api: String,
    },
    /// Remove an indicator.
    Remove {
        indicator: String,
        #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:7300", help = API_HELP)]
        api: String,
    },
    /// Live indicators.
    List {
        #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:7300", help = API_HELP)]
        api: String,
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
        #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:7300", help = API_HELP)]
        api: String,
    },
    /// Add a note to an alert's case.
    Note {
        alert: String,
        text: String,
        #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:7300", help = API_HELP)]
        api: String,
    },
    /// Set a case's status: new, acknowledged, false_positive or resolved.
    Status {
        alert: String,
        status: String,
        #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:7300", help = API_HELP)]
        api: String,
    },
    /// An alert's case: status, assignee and notes.
    Show {
        alert: String,
        #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:7300", help = API_HELP)]
        api: String,
        #[arg(long)]
        json: bool,
    },
    /// Every case.
    List {
        #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:7300", help = API_HELP)]
        api: String,
        #[arg(long)]
        json: bool,
    },
}

fn short(key: &serde_json::Value) -> String {
    key.as_str().unwrap_or("-").chars().take(12).collect()
}

fn when(ms: &serde_json::Value) -> String {
    ms.as_u64().map_or("-".into(), |ms| {
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
        )
        .to_string()
    })
}

fn print_ioc(i: &serde_json::Value) {
    println!(
        "{:<8} {:<40} by {}  expires {}  {}",
        i["kind"].as_str().unwrap_or("-"),
        i["value"].as_str().unwrap_or("-"),
        short(&i["added_by"]),
        when(&i["expires_ms"]),
        i["reason"].as_str().unwrap_or("")
    );
}

fn print_case(c: &serde_json::Value) {
    println!(
        "alert {}\n  status   {} (by {} at {})\n  assignee {}",
        c["alert"].as_str().unwrap_or("-"),
        c["status"].as_str().unwrap_or("-"),
        short(&c["status_set"]["by"]),
        when(&c["status_set"]["at_ms"]),
        c["assignee"].as_str().unwrap_or("-"),
    );
    for n in c["notes"].as_array().into_iter().flatten() {
        println!(
            "  note {} {}: {}",
            when(&n["at_ms"]),
            short(&n["author"]),
            n["text"].as_str().unwrap_or("")
        );
    }
}

pub fn intel(cmd: IntelCommand) -> ExitCode {
    finish(super::block_on(async {
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
                let v = call(&api, Method::POST, "/api/v1/intel", Some(Body::Json(body))).await?;
                print_ioc(&v["ioc"]);
            }
            IntelCommand::Remove { indicator, api } => {
                let path = format!("/api/v1/intel?indicator={}", url_escape(&indicator));
                let v = call(&api, Method::DELETE, &path, None).await?;
                println!("removed {}", v["removed"]["value"].as_str().unwrap_or("-"));
            }
            IntelCommand::List { api, json } => {
                let v = call(&api, Method::GET, "/api/v1/intel", None).await?;
                if json {
                    println!("{v}");
                } else {
                    for i in v["iocs"].as_array().into_iter().flatten() {
                        print_ioc(i);
                    }
                }
            }
        }
        Ok(())
    }))
}

pub fn case(cmd: CaseCommand) -> ExitCode {
    finish(super::block_on(async {
        let v = match cmd {
            CaseCommand::Ack {
                alert,
                assignee,
                api,
            } => {
                let body = serde_json::json!({ "assignee": assignee });
                let path = format!("/api/v1/cases/{}/ack", url_escape(&alert));
                call(&api, Method::POST, &path, Some(Body::Json(body))).await?
            }
            CaseCommand::Note { alert, text, api } => {
                let path = format!("/api/v1/cases/{}/notes", url_escape(&alert));
                let body = serde_json::json!({ "text": text });
                call(&api, Method::POST, &path, Some(Body::Json(body))).await?;
                let path = format!("/api/v1/cases/{}", url_escape(&alert));
                call(&api, Method::GET, &path, None).await?
            }
            CaseCommand::Status { alert, status, api } => {
                let path = format!("/api/v1/cases/{}/status", url_escape(&alert));
                let body = serde_json::json!({ "status": status });
                call(&api, Method::POST, &path, Some(Body::Json(body))).await?
            }
            CaseCommand::Show { alert, api, json } => {
                let path = format!("/api/v1/cases/{}", url_escape(&alert));
                let v = call(&api, Method::GET, &path, None).await?;
                if json {
                    println!("{v}");
                    return Ok(());
                }
                v
            }
            CaseCommand::List { api, json } => {
                let v = call(&api, Method::GET, "/api/v1/cases", None).await?;
                if json {
                    println!("{v}");
                } else {
                    for c in v["cases"].as_array().into_iter().flatten() {
                        print_case(c);
                    }
                }
                return Ok(());
            }
        };
        print_case(&v["case"]);
        Ok(())
    }))
}

/// Percent-escapes what a path segment or query value cannot hold.
fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
