//! `amoskys alerts tail|export|verify`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use amoskys_mesh::Alert;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Print recent alerts, then follow new ones as they are raised.
    Tail {
        /// API address of the node.
        #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:7300")]
        api: String,
        /// How many recent alerts to print first.
        #[arg(long, short = 'n', default_value_t = 10)]
        lines: usize,
        /// Print each alert as its JSON line.
        #[arg(long)]
        json: bool,
    },
    /// Write alerts as JSON lines (the native, signed form) or OCSF.
    Export {
        #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:7300")]
        api: String,
        /// jsonl or ocsf.
        #[arg(long, default_value = "jsonl")]
        format: String,
        /// Only alerts at or after this time (RFC 3339, 15m, or Unix ns).
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 10_000)]
        limit: usize,
    },
    /// Check the signature of every alert in a JSON-lines file (- for stdin),
    /// offline.
    Verify { file: PathBuf },
}

pub fn run(cmd: AlertsCommand) -> ExitCode {
    match cmd {
        AlertsCommand::Verify { file } => super::verify::alerts(&file),
        AlertsCommand::Tail { api, lines, json } => runtime(tail(api, lines, json)),
        AlertsCommand::Export {
            api,
            format,
            since,
            limit,
        } => runtime(export(api, format, since, limit)),
    }
}

fn runtime(fut: impl std::future::Future<Output = Result<(), String>>) -> ExitCode {
    match super::block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("amoskys: {e}");
            ExitCode::FAILURE
        }
    }
}

pub(super) fn summary(a: &Alert) -> String {
    let time = std::time::UNIX_EPOCH + Duration::from_nanos(a.body.time_ns);
    format!(
        "{} {:<8} {:<10} {:<24} {} (origin {}, seq {})",
        humantime::format_rfc3339_millis(time),
        a.body.severity,
        a.body.technique,
        a.body.rule,
        a.body.subject,
        a.origin,
        a.body.seq
    )
}

async fn tail(api: String, lines: usize, json: bool) -> Result<(), String> {
    let show = |a: &Alert| {
        if json {
            println!("{}", String::from_utf8_lossy(&a.encode()));
        } else {
            println!("{}", summary(a));
        }
    };
    let client = reqwest::Client::new();
    let unreachable = |e: reqwest::Error| format!("cannot reach the node API at {api}: {e}");
    if lines > 0 {
        let url = format!("http://{api}/api/v1/alerts?limit={lines}");
        let body: serde_json::Value = client
            .get(&url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(unreachable)?
            .json()
            .await
            .map_err(|e| format!("unexpected answer from {url}: {e}"))?;
        let recent: Vec<Alert> = serde_json::from_value(body["alerts"].clone()).unwrap_or_default();
        recent.iter().for_each(show);
    }
    let mut resp = client
        .get(format!("http://{api}/api/v1/alerts/stream"))
        .send()
        .await
        .map_err(unreachable)?;
    let mut pending = String::new();
    let mut event = String::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("stream ended: {e}"))?
    {
        pending.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = pending.find('\n') {
            let line: String = pending.drain(..=end).collect();
            let line = line.trim_end();
            if let Some(name) = line.strip_prefix("event:") {
                event = name.trim().to_owned();
            } else if let Some(data) = line.strip_prefix("data:") {
                match event.as_str() {
                    "alert" => match Alert::decode(data.trim().as_bytes()) {
                        Ok(a) => show(&a),
                        Err(e) => eprintln!("amoskys: skipped an alert that does not verify: {e}"),
                    },
                    "lagged" => eprintln!("amoskys: fell behind; {} alerts not shown", data.trim()),
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

async fn export(
    api: String,
    format: String,
    since: Option<String>,
    limit: usize,
) -> Result<(), String> {
    let mut url = format!("http://{api}/api/v1/alerts/export?format={format}&limit={limit}");
    if let Some(s) = since {
        url.push_str(&format!("&since={s}"));
    }
    let resp = reqwest::Client::new()
        .get(&url)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| format!("cannot reach the node API at {api}: {e}"))?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("HTTP {status}: {text}"));
    }
    print!("{text}");
    Ok(())
}
