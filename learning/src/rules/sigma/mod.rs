//! Sigma rules (the SigmaHQ format) over the node's events.
//!
//! Rule texts come from the policy (`[rules] sigma = [...]`). Each is parsed
//! by `rsigma-parser`, checked against the log sources the node maps
//! ([`fields`]: `process_creation`, `network_connection`, `file_event` of
//! `product: linux`), and compiled by `rsigma-eval` into one engine per
//! category. A rule naming a field, modifier or log source the node cannot
//! evaluate is refused whole, with its id, the field and the line.
//! [`SigmaRules::observe`] maps one event to its category's fields and
//! returns a finding per matching rule: no I/O, no state between events.

mod check;
mod event;
pub mod fields;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;

use amoskys_sensors::Event;
use rsigma_eval::Engine;
use rsigma_parser::{Level, SigmaRule, parse_sigma_yaml};

use crate::{Category, Finding, Severity, Subject};
pub use check::Refusal;
use event::SigmaEvent;
pub use fields::Category as LogSource;

/// Longest evidence value taken from an event (the alert's limit is 1024).
const EVIDENCE_MAX: usize = 512;

/// Why a rule text (one entry of `sigma`) was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigmaProblem {
    /// Index of the text in the list.
    pub text: usize,
    /// The rule's id, else its title, else `document N`.
    pub rule: String,
    pub refusal: Refusal,
}

impl fmt::Display for SigmaProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sigma[{}]: rule {}", self.text, self.rule)?;
        if let Some(line) = self.refusal.line {
            write!(f, ": line {line}")?;
        }
        if let Some(field) = &self.refusal.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.refusal.reason)
    }
}

/// What the node knows of one loaded rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleInfo {
    pub id: String,
    pub title: String,
    /// Sigma level, `medium` when the rule gives none.
    pub level: String,
    pub tags: Vec<String>,
    pub logsource: LogSource,
    pub severity: Severity,
    /// ATT&CK tactic of the first `attack.<tactic>` tag, else the log
    /// source's default.
    pub category: Category,
    /// First `attack.tNNNN[.NNN]` tag in capitals, `-` when none.
    pub technique: String,
    /// Which text of the list it came from.
    pub text: usize,
}

/// Loaded rules, one compiled engine per log source.
#[derive(Default)]
pub struct SigmaRules {
    engines: HashMap<LogSource, Engine>,
    rules: HashMap<String, RuleInfo>,
    users: HashMap<u32, String>,
}

impl fmt::Debug for SigmaRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigmaRules")
            .field("rules", &self.rules.len())
            .field("users", &self.users.len())
            .finish()
    }
}

impl SigmaRules {
    /// Every rule of every text, or every problem.
    pub fn load(texts: &[String]) -> Result<SigmaRules, Vec<SigmaProblem>> {
        let (rules, problems) = Self::load_lenient(texts);
        if problems.is_empty() {
            Ok(rules)
        } else {
            Err(problems)
        }
    }

    /// The rules that load, and the problems of those that do not.
    pub fn load_lenient(texts: &[String]) -> (SigmaRules, Vec<SigmaProblem>) {
        let mut out = SigmaRules::default();
        let mut problems = Vec::new();
        let mut checked: HashMap<LogSource, Vec<SigmaRule>> = HashMap::new();
        for (i, text) in texts.iter().enumerate() {
            out.add_text(i, text, &mut checked, &mut problems);
        }
        // One batch per engine: its candidate index is built once, over all
        // its rules (rules added one by one wait in a list that every event
        // tries).
        for (logsource, rules) in checked {
            let mut engine = Engine::new();
            // Each compiled once already in `add_text`.
            let failed = engine.add_rules(&rules);
            debug_assert!(failed.is_empty(), "checked rules compile: {failed:?}");
            out.engines.insert(logsource, engine);
        }
        (out, problems)
    }

    fn add_text(
        &mut self,
        index: usize,
        text: &str,
        checked: &mut HashMap<LogSource, Vec<SigmaRule>>,
        problems: &mut Vec<SigmaProblem>,
    ) {
        let problem = |rule: String, refusal: Refusal| SigmaProblem {
            text: index,
            rule,
            refusal,
        };
        let collection = match parse_sigma_yaml(text) {
            Ok(c) => c,
            Err(e) => {
                problems.push(problem(
                    "document 1".into(),
                    parse_refusal(text, &e.to_string()),
                ));
                return;
            }
        };
        if collection.rules.is_empty() && collection.errors.is_empty() {
            problems.push(problem(
                "document 1".into(),
                Refusal {
                    line: None,
                    field: None,
                    reason: "no rule in the text".into(),
                },
            ));
        }
        for e in &collection.errors {
            let rule = first_id(text).unwrap_or_else(|| "document 1".into());
            problems.push(problem(rule, parse_refusal(text, e)));
        }
        for c in &collection.correlations {
            problems.push(problem(
                c.id.clone().unwrap_or_else(|| c.title.clone()),
                Refusal {
                    line: check::line_of_key(text, "correlation"),
                    field: Some("correlation".into()),
                    reason: "correlation rules are not evaluated by the node".into(),
                },
            ));
        }
        for f in &collection.filters {
            problems.push(problem(
                f.id.clone().unwrap_or_else(|| f.title.clone()),
                Refusal {
                    line: check::line_of_key(text, "filter"),
                    field: Some("filter".into()),
                    reason:
                        "filter documents are not evaluated; put the filter in the rule's condition"
                            .into(),
                },
            ));
        }
        for rule in &collection.rules {
            let name = rule.id.clone().unwrap_or_else(|| rule.title.clone());
            let logsource = match check::check(rule, text) {
                Ok(c) => c,
                Err(refusals) => {
                    problems.extend(refusals.into_iter().map(|r| problem(name.clone(), r)));
                    continue;
                }
            };
            let info = info(rule, logsource, index);
            if let Some(other) = self.rules.get(&info.id) {
                problems.push(problem(
                    name,
                    Refusal {
                        line: check::line_of_key(text, "id"),
                        field: Some("id".into()),
                        reason: format!("the same id as a rule of sigma[{}]", other.text),
                    },
                ));
                continue;
            }
            if let Err(e) = rsigma_eval::compile_rule(rule) {
                problems.push(problem(
                    name,
                    Refusal {
                        line: check::line_of_key(text, "condition"),
                        field: Some("detection".into()),
                        reason: e.to_string(),
                    },
                ));
                continue;
            }
            self.rules.insert(info.id.clone(), info);
            checked.entry(logsource).or_default().push(rule.clone());
        }
    }

    /// The user names `User` fields show, by uid (see [`parse_passwd`]).
    pub fn set_user_names(&mut self, users: HashMap<u32, String>) {
        self.users = users;
    }

    pub fn user_names(&self) -> &HashMap<u32, String> {
        &self.users
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The loaded rules, by id.
    pub fn rules(&self) -> impl Iterator<Item = &RuleInfo> {
        self.rules.values()
    }

    /// A finding for each rule the event matches.
    pub fn observe(&self, event: &Event, out: &mut Vec<Finding>) {
        if self.rules.is_empty() {
            return;
        }
        let Some(sigma) = SigmaEvent::of(event, &self.users) else {
            return;
        };
        let Some(engine) = self.engines.get(&sigma.category) else {
            return;
        };
        for m in engine.evaluate(&sigma) {
            let Some(info) = m.header.rule_id.as_ref().and_then(|id| self.rules.get(id)) else {
                continue;
            };
            out.push(finding(info, event, &sigma));
        }
    }
}

/// uid → user name from the text of /etc/passwd.
pub fn parse_passwd(text: &str) -> HashMap<u32, String> {
    text.lines()
        .filter_map(|l| {
            let mut parts = l.split(':');
            let name = parts.next()?;
            let uid = parts.nth(1)?.parse().ok()?;
            (!name.is_empty() && !name.starts_with('#')).then(|| (uid, name.to_owned()))
        })
        .collect()
}

fn first_id(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("id:"))
        .map(|s| s.trim().trim_matches(|c| c == '\'' || c == '"').to_owned())
}

/// A parser error with the line it names (YAML errors carry one; unknown
/// modifiers and bad levels are found in the text).
fn parse_refusal(text: &str, msg: &str) -> Refusal {
    let mut line = msg
        .split("line ")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok());
    let mut field = None;
    if let Some(m) = msg
        .split("modifier '")
        .nth(1)
        .and_then(|s| s.split('\'').next())
    {
        line = line.or_else(|| check::line_of_modifier(text, m));
        field = Some(format!("|{m}"));
    }
    for key in [
        "level",
        "status",
        "condition",
        "title",
        "detection",
        "logsource",
    ] {
        if line.is_none() && msg.to_lowercase().contains(key) {
            line = check::line_of_key(text, key);
            field = Some(key.to_owned());
        }
    }
    Refusal {
        line,
        field,
        reason: msg.to_owned(),
    }
}

fn info(rule: &SigmaRule, logsource: LogSource, text: usize) -> RuleInfo {
    let level = rule.level.unwrap_or(Level::Medium);
    let severity = match level {
        Level::Informational | Level::Low => Severity::Low,
        Level::Medium => Severity::Medium,
        Level::High => Severity::High,
        Level::Critical => Severity::Critical,
    };
    let technique = rule
        .tags
        .iter()
        .filter_map(|t| {
            t.to_ascii_lowercase()
                .strip_prefix("attack.")
                .map(str::to_owned)
        })
        .find(|t| is_technique(t))
        .map_or_else(|| "-".to_owned(), |t| t.to_ascii_uppercase());
    let category = rule
        .tags
        .iter()
        .find_map(|t| tactic(&t.to_ascii_lowercase()))
        .unwrap_or(match logsource {
            LogSource::ProcessCreation => Category::Execution,
            LogSource::NetworkConnection => Category::CommandAndControl,
            LogSource::FileEvent => Category::Persistence,
        });
    RuleInfo {
        id: rule.id.clone().unwrap_or_default(),
        title: rule.title.clone(),
        level: level.as_str().to_owned(),
        tags: rule.tags.clone(),
        logsource,
        severity,
        category,
        technique,
        text,
    }
}

/// `t1059` or `t1059.004`.
fn is_technique(t: &str) -> bool {
    let Some(rest) = t.strip_prefix('t') else {
        return false;
    };
    let (main, sub) = rest.split_once('.').unwrap_or((rest, "000"));
    main.len() == 4 && sub.len() == 3 && main.bytes().chain(sub.bytes()).all(|b| b.is_ascii_digit())
}

fn tactic(tag: &str) -> Option<Category> {
    Some(match tag.strip_prefix("attack.")? {
        "reconnaissance" => Category::Reconnaissance,
        "resource_development" | "resource-development" => Category::ResourceDevelopment,
        "initial_access" | "initial-access" => Category::InitialAccess,
        "execution" => Category::Execution,
        "persistence" => Category::Persistence,
        "privilege_escalation" | "privilege-escalation" => Category::PrivilegeEscalation,
        "defense_evasion" | "defense-evasion" => Category::DefenseEvasion,
        "credential_access" | "credential-access" => Category::CredentialAccess,
        "discovery" => Category::Discovery,
        "lateral_movement" | "lateral-movement" => Category::LateralMovement,
        "collection" => Category::Collection,
        "command_and_control" | "command-and-control" => Category::CommandAndControl,
        "exfiltration" => Category::Exfiltration,
        "impact" => Category::Impact,
        _ => return None,
    })
}

fn clip(s: String) -> String {
    if s.len() <= EVIDENCE_MAX {
        return s;
    }
    let mut end = EVIDENCE_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

fn finding(info: &RuleInfo, event: &Event, sigma: &SigmaEvent<'_>) -> Finding {
    let score = match info.level.as_str() {
        "informational" => 0.1,
        "low" => 0.3,
        "medium" => 0.6,
        "high" => 0.8,
        _ => 0.95,
    };
    let mut evidence = vec![
        ("sigma_id".to_owned(), info.id.clone()),
        ("title".to_owned(), clip(info.title.clone())),
        ("level".to_owned(), info.level.clone()),
        ("tags".to_owned(), clip(info.tags.join(" "))),
        ("logsource".to_owned(), info.logsource.name().to_owned()),
    ];
    let facts: &[&str] = match info.logsource {
        // Never the command line: evidence is a summary, the event stays on
        // the node (docs/DETECTION.md, privacy).
        LogSource::ProcessCreation => &["Image", "ProcessId", "ParentImage", "User"],
        LogSource::NetworkConnection => &[
            "Image",
            "ProcessId",
            "Protocol",
            "SourceIp",
            "SourcePort",
            "DestinationIp",
            "DestinationPort",
        ],
        LogSource::FileEvent => &["TargetFilename", "Image", "ProcessId", "User"],
    };
    for name in facts {
        if let Some(v) = sigma.text(name) {
            evidence.push(((*name).to_owned(), clip(v)));
        }
    }
    let pid_exe = |pid: Option<String>| Subject::Process {
        pid: pid.and_then(|p| p.parse().ok()).unwrap_or(0),
        exe: sigma.text("Image").unwrap_or_default(),
    };
    let subject = match info.logsource {
        LogSource::NetworkConnection => {
            match sigma.text("DestinationIp").and_then(|ip| ip.parse().ok()) {
                Some(ip) => Subject::DestinationIp(ip),
                None => Subject::Host,
            }
        }
        _ => pid_exe(sigma.text("ProcessId")),
    };
    Finding {
        time_ns: event.time_ns,
        rule: format!("sigma:{}", info.id),
        category: info.category,
        technique: info.technique.clone(),
        severity: info.severity,
        score,
        subject,
        evidence,
    }
}
