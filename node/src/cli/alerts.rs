//! `amoskys alerts tail|export` (and `verify`, in verify.rs; `review`, in
//! review.rs).

use std::collections::{HashSet, VecDeque};
use std::process::ExitCode;
use std::time::Duration;

use amoskys_mesh::Alert;
use clap::Subcommand;
use reqwest::Method;

use super::client::{self, ClientError};
use super::cluster::ApiArgs;
use super::show;

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Print recent alerts, then follow new ones as they are raised.
    Tail {
        #[command(flatten)]
        api: ApiArgs,
        /// How many recent alerts to print first.
        #[arg(long, short = 'n', default_value_t = 10)]
        lines: usize,
        /// Print each alert as its JSON line.
        #[arg(long)]
        json: bool,
        /// Keep going when the node stops or restarts: reconnect, then
        /// catch up on what was missed.
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// Write alerts as JSON lines (the native, signed form) or OCSF.
    Export {
        #[command(flatten)]
        api: ApiArgs,
        /// jsonl or ocsf.
        #[arg(long, default_value = "jsonl")]
        format: String,
        /// Only alerts at or after this time (RFC 3339, 15m, or Unix ns).
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 10_000)]
        limit: usize,
    },
    /// The unjudged anomaly alerts whose verdict would teach the supervised
    /// head the most, in the order to judge them (set the verdict with
    /// `amoskys case status ALERT resolved|false_positive`).
    Review {
        #[command(flatten)]
        api: ApiArgs,
        /// How many alerts to list (1 to 100).
        #[arg(long, short = 'n', default_value_t = 10)]
        limit: usize,
        /// Print the API's JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// Check every alert in a JSON-lines file (- for stdin) offline: its
    /// signature, and that its origin is in a trust set (--members or --keys).
    Verify(super::verify::VerifyArgs),
}

pub fn run(cmd: AlertsCommand) -> ExitCode {
    match cmd {
        AlertsCommand::Verify(args) => super::verify::alerts(&args),
        AlertsCommand::Review { api, limit, json } => super::review::run(api, limit, json),
        AlertsCommand::Tail {
            api,
            lines,
            json,
            follow,
        } => client::run(tail(api, lines, json, follow)),
        AlertsCommand::Export {
            api,
            format,
            since,
            limit,
        } => client::run(export(api, format, since, limit)),
    }
}

/// One line per alert: its id first (what `case ack` takes), then time,
/// severity, technique, rule, subject and origin.
pub(super) fn summary(a: &Alert) -> String {
    format!(
        "{} {} {:<8} {:<10} {:<24} {} (origin {})",
        a.id,
        show::when_ns(a.body.time_ns),
        a.body.severity,
        a.body.technique,
        a.body.rule,
        a.body.subject,
        a.origin,
    )
}

/// Ids already printed, so a reconnect or the first batch never shows an
/// alert twice; bounded.
struct Seen {
    order: VecDeque<String>,
    ids: HashSet<String>,
}

impl Seen {
    const CAPACITY: usize = 10_000;

    fn new() -> Self {
        Self {
            order: VecDeque::new(),
            ids: HashSet::new(),
        }
    }

    /// True the first time an id is offered.
    fn first(&mut self, id: &str) -> bool {
        if !self.ids.insert(id.to_owned()) {
            return false;
        }
        self.order.push_back(id.to_owned());
        if self.order.len() > Self::CAPACITY
            && let Some(old) = self.order.pop_front()
        {
            self.ids.remove(&old);
        }
        true
    }
}

struct Printer {
    json: bool,
    seen: Seen,
    /// Time of the newest alert printed, to catch up after a reconnect.
    newest_ns: Option<u64>,
}

impl Printer {
    fn show(&mut self, a: &Alert) {
        if !self.seen.first(&a.id) {
            return;
        }
        self.newest_ns = Some(self.newest_ns.unwrap_or(0).max(a.body.time_ns));
        if self.json {
            println!("{}", String::from_utf8_lossy(&a.encode()));
        } else {
            println!("{}", summary(a));
        }
    }

    /// Prints stored alerts oldest first.
    fn show_batch(&mut self, mut alerts: Vec<Alert>) {
        alerts.sort_by(|a, b| (a.body.time_ns, &a.id).cmp(&(b.body.time_ns, &b.id)));
        for a in &alerts {
            self.show(a);
        }
    }
}

async fn stored(api: &client::Api, query: &[(&str, String)]) -> Result<Vec<Alert>, ClientError> {
    let body = api.get("/api/v1/alerts", query).await?;
    serde_json::from_value(body["alerts"].clone())
        .map_err(|e| ClientError::Local(format!("unexpected alert list from {}: {e}", api.addr())))
}

async fn tail(api: ApiArgs, lines: usize, json: bool, follow: bool) -> Result<(), ClientError> {
    let client = api.client();
    let mut out = Printer {
        json,
        seen: Seen::new(),
        newest_ns: None,
    };
    let mut first = true;
    let mut backoff = Duration::from_millis(500);
    loop {
        // Subscribe before reading the store, so nothing raised in between
        // is missed; the seen set drops what both return.
        let stream = client
            .send(Method::GET, "/api/v1/alerts/stream", &[], None, None)
            .await;
        match stream {
            Ok(resp) => {
                let catch_up = match (first, out.newest_ns) {
                    (true, _) if lines > 0 => Some(vec![("limit", lines.to_string())]),
                    (false, Some(ns)) => Some(vec![
                        ("since", ns.to_string()),
                        ("limit", amoskys_node::api::MAX_EVENTS_LIMIT.to_string()),
                    ]),
                    _ => None,
                };
                if let Some(query) = catch_up {
                    out.show_batch(stored(&client, &query).await?);
                }
                if !first {
                    eprintln!("amoskys: reconnected to {}", client.addr());
                }
                first = false;
                backoff = Duration::from_millis(500);
                read_stream(resp, &mut out).await;
                if !follow {
                    return Err(ClientError::Unreachable {
                        api: client.addr().to_owned(),
                        cause: "the alert stream ended: the node stopped or restarted (use --follow to reconnect)".into(),
                    });
                }
                eprintln!("amoskys: the alert stream ended; reconnecting");
            }
            Err(e @ ClientError::Unreachable { .. }) if follow && !first => {
                tracing::debug!(error = %e, "node still unreachable");
            }
            Err(e) => return Err(e),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// Prints alerts from a server-sent event stream until it ends.
async fn read_stream(mut resp: reqwest::Response, out: &mut Printer) {
    let mut pending = String::new();
    let mut event = String::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        pending.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = pending.find('\n') {
            let line: String = pending.drain(..=end).collect();
            let line = line.trim_end();
            if let Some(name) = line.strip_prefix("event:") {
                event = name.trim().to_owned();
            } else if let Some(data) = line.strip_prefix("data:") {
                match event.as_str() {
                    "alert" => match Alert::decode(data.trim().as_bytes()) {
                        Ok(a) => out.show(&a),
                        Err(e) => eprintln!("amoskys: skipped an alert that does not verify: {e}"),
                    },
                    "lagged" => eprintln!("amoskys: fell behind; {} alerts not shown", data.trim()),
                    _ => {}
                }
            }
        }
    }
}

async fn export(
    api: ApiArgs,
    format: String,
    since: Option<String>,
    limit: usize,
) -> Result<(), ClientError> {
    let mut query = vec![("format", format), ("limit", limit.to_string())];
    if let Some(s) = since {
        query.push(("since", s));
    }
    let text = api
        .client()
        .text(
            Method::GET,
            "/api/v1/alerts/export",
            &query,
            None,
            Duration::from_secs(60),
        )
        .await?;
    print!("{text}");
    Ok(())
}
