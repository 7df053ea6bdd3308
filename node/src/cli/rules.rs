//! `amoskys rules list|add|remove|test`: Sigma rules (docs/RULES.md).
//!
//! The rules live in the replicated policy (`[rules] sigma`): `add` and
//! `remove` read the policy, change that one list and commit the whole
//! document through `PUT /api/v1/policy` (the governed path `policy set`
//! takes, proposals included). `test` runs on this host only: rules from a
//! file against events from a JSON-lines file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use amoskys_learning::Finding;
use amoskys_learning::rules::sigma::{RuleInfo, SigmaRules, parse_passwd};
use amoskys_node::policy::Policy;
use amoskys_sensors::Event;
use clap::Subcommand;

use super::client::{self, Body, ClientError};
use super::cluster::ApiArgs;
use super::show::print_table;

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// The Sigma rules of the policy.
    List {
        #[command(flatten)]
        api: ApiArgs,
        #[arg(long)]
        json: bool,
    },
    /// Check a Sigma rule file and commit it into the policy.
    Add {
        file: PathBuf,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Take a rule out of the policy, by id (with the other rules of its
    /// file, if it came in one file with others).
    Remove {
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Run a Sigma rule file over events (JSON lines, as `GET
    /// /api/v1/events` gives them) on this host; prints every match.
    Test {
        file: PathBuf,
        #[arg(long, value_name = "FILE")]
        events: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: RulesCommand) -> ExitCode {
    client::run(async {
        match cmd {
            RulesCommand::List { api, json } => list(&api, json).await,
            RulesCommand::Add { file, api } => add(&file, &api).await,
            RulesCommand::Remove { id, api } => remove(&id, &api).await,
            RulesCommand::Test { file, events, json } => test(&file, &events, json),
        }
    })
}

fn read(path: &Path) -> Result<String, ClientError> {
    std::fs::read_to_string(path)
        .map_err(|e| ClientError::Local(format!("cannot read {}: {e}", path.display())))
}

/// A rule file's rules, or every reason it is refused (one per line).
fn load(path: &Path, text: &str) -> Result<SigmaRules, ClientError> {
    SigmaRules::load(&[text.to_owned()]).map_err(|problems| {
        let lines: Vec<String> = problems
            .iter()
            .map(|p| {
                let line = p.refusal.line.map(|l| format!(":{l}")).unwrap_or_default();
                let field = p
                    .refusal
                    .field
                    .as_deref()
                    .map(|f| format!(" {f}:"))
                    .unwrap_or_default();
                format!(
                    "{}{line}: rule {}:{field} {}",
                    path.display(),
                    p.rule,
                    p.refusal.reason
                )
            })
            .collect();
        ClientError::Failed(format!("refused:\n{}", lines.join("\n")))
    })
}

/// The policy the cluster has committed, else the one the node runs.
async fn current(api: &ApiArgs) -> Result<Policy, ClientError> {
    let v = api.client().get("/api/v1/policy", &[]).await?;
    let doc = v["committed"]["document"]
        .as_str()
        .or_else(|| v["in_force"]["document"].as_str())
        .ok_or_else(|| ClientError::Failed("the node's answer has no policy document".into()))?;
    Policy::parse(doc).map_err(|e| ClientError::Failed(format!("the current policy: {e}")))
}

async fn commit(api: &ApiArgs, policy: &Policy, what: &str) -> Result<(), ClientError> {
    let v = api
        .client()
        .put("/api/v1/policy", Body::Text(policy.to_toml()))
        .await?;
    if !super::proposals::print_if_proposed(&v) {
        println!("{what}; policy version {} committed", v["version"]);
    }
    Ok(())
}

fn sorted(rules: &SigmaRules) -> Vec<&RuleInfo> {
    let mut all: Vec<&RuleInfo> = rules.rules().collect();
    all.sort_by(|a, b| (a.text, &a.id).cmp(&(b.text, &b.id)));
    all
}

async fn list(api: &ApiArgs, json: bool) -> Result<(), ClientError> {
    let policy = current(api).await?;
    let (rules, problems) = SigmaRules::load_lenient(&policy.rules.sigma);
    let all = sorted(&rules);
    if json {
        let rows: Vec<serde_json::Value> = all
            .iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.id, "title": r.title, "level": r.level, "tags": r.tags,
                    "logsource": r.logsource.name(), "technique": r.technique,
                })
            })
            .collect();
        println!("{}", serde_json::json!({ "rules": rows }));
    } else {
        let rows = all
            .iter()
            .map(|r| {
                vec![
                    r.id.clone(),
                    r.level.clone(),
                    r.logsource.name().to_owned(),
                    r.technique.clone(),
                    r.title.clone(),
                ]
            })
            .collect();
        print_table(
            &["ID", "LEVEL", "LOGSOURCE", "TECHNIQUE", "TITLE"],
            rows,
            "no Sigma rules in the policy",
        );
    }
    for p in problems {
        eprintln!("warning: rules.{p}");
    }
    Ok(())
}

async fn add(file: &Path, api: &ApiArgs) -> Result<(), ClientError> {
    let text = read(file)?;
    let new = load(file, &text)?;
    let mut policy = current(api).await?;
    let (loaded, _) = SigmaRules::load_lenient(&policy.rules.sigma);
    let mut ids: Vec<&str> = new.rules().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    if let Some(dup) = ids.iter().find(|id| loaded.rules().any(|r| r.id == **id)) {
        return Err(ClientError::Failed(format!(
            "rule {dup} is already in the policy (amoskys rules remove {dup} first)"
        )));
    }
    policy.rules.sigma.push(text);
    commit(api, &policy, &format!("added rule {}", ids.join(", "))).await
}

async fn remove(id: &str, api: &ApiArgs) -> Result<(), ClientError> {
    let mut policy = current(api).await?;
    let (loaded, _) = SigmaRules::load_lenient(&policy.rules.sigma);
    let Some(index) = loaded.rules().find(|r| r.id == id).map(|r| r.text) else {
        return Err(ClientError::Failed(format!(
            "no rule {id} in the policy (amoskys rules list shows them)"
        )));
    };
    let mut gone: Vec<&str> = loaded
        .rules()
        .filter(|r| r.text == index)
        .map(|r| r.id.as_str())
        .collect();
    gone.sort_unstable();
    policy.rules.sigma.remove(index);
    commit(api, &policy, &format!("removed rule {}", gone.join(", "))).await
}

fn test(file: &Path, events: &Path, json: bool) -> Result<(), ClientError> {
    let text = read(file)?;
    let mut rules = load(file, &text)?;
    if let Ok(passwd) = std::fs::read_to_string("/etc/passwd") {
        rules.set_user_names(parse_passwd(&passwd));
    }
    let lines = read(events)?;
    let (mut seen, mut matched) = (0usize, 0usize);
    for (i, line) in lines.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let event: Event = serde_json::from_str(line).map_err(|e| {
            ClientError::Local(format!("{}:{}: not an event: {e}", events.display(), i + 1))
        })?;
        seen += 1;
        let mut findings: Vec<Finding> = Vec::new();
        rules.observe(&event, &mut findings);
        for f in findings {
            matched += 1;
            if json {
                println!("{}", serde_json::json!({ "line": i + 1, "finding": f }));
            } else {
                let facts: Vec<String> = f
                    .evidence
                    .iter()
                    .skip(5)
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                println!(
                    "{}:{}: {} {} {}",
                    events.display(),
                    i + 1,
                    f.rule,
                    format!("{:?}", f.severity).to_lowercase(),
                    facts.join(" ")
                );
            }
        }
    }
    if !json {
        println!("{seen} events, {matched} matches");
    }
    Ok(())
}
