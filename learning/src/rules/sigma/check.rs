//! What the node can evaluate: a parsed rule's log source, fields and
//! modifiers checked against [`super::fields`], each refusal with the line
//! of the rule text it concerns.

use rsigma_parser::{
    ConditionExpr, Detection, DetectionItem, Modifier, SelectorPattern, SigmaRule, SigmaValue,
    detection_name_matches,
};

use super::fields::{Category, Kind};

/// One reason a rule cannot be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 1-based line of the rule text, when one can be named.
    pub line: Option<usize>,
    /// The field (or rule key) at fault.
    pub field: Option<String>,
    pub reason: String,
}

/// The category a rule's log source maps to, or why it cannot be evaluated.
pub(super) fn check(rule: &SigmaRule, text: &str) -> Result<Category, Vec<Refusal>> {
    let mut out = Vec::new();
    let ls = &rule.logsource;
    let mut refuse = |key: &str, reason: String| {
        out.push(Refusal {
            line: line_of_key(text, key.rsplit('.').next().unwrap_or(key)),
            field: Some(key.to_owned()),
            reason,
        })
    };
    if rule.id.as_deref().is_none_or(|id| id.trim().is_empty()) {
        refuse(
            "id",
            "missing: the node names a rule by its id (alerts, `rules remove`)".into(),
        );
    }
    if let Some(p) = ls.product.as_deref()
        && p != "linux"
    {
        refuse(
            "logsource.product",
            format!("{p:?} is not a product of this node (expected linux)"),
        );
    }
    if let Some(s) = ls.service.as_deref() {
        refuse(
            "logsource.service",
            format!("{s:?}: the node reads no log service, only its sensors' events"),
        );
    }
    let names: Vec<&str> = Category::ALL.iter().map(|c| c.name()).collect();
    let category = match ls.category.as_deref() {
        Some(c) => match Category::parse(c) {
            Some(c) => Some(c),
            None => {
                refuse(
                    "logsource.category",
                    format!("{c:?} is not mapped (expected one of {})", names.join(", ")),
                );
                None
            }
        },
        None => {
            refuse(
                "logsource.category",
                format!("missing (expected one of {})", names.join(", ")),
            );
            None
        }
    };
    if rule.detection.timeframe.is_some() {
        refuse(
            "timeframe",
            "aggregation over time is not evaluated; write a correlation on the alerts instead"
                .into(),
        );
    }
    let mut unknown = Vec::new();
    for c in &rule.detection.conditions {
        undefined(c, rule, &mut unknown);
    }
    for name in unknown {
        out.push(Refusal {
            line: line_of_key(text, "condition"),
            field: Some("condition".into()),
            reason: format!("{name} names no detection of the rule"),
        });
    }
    if let Some(category) = category {
        let mut names: Vec<&String> = rule.detection.named.keys().collect();
        names.sort();
        for name in names {
            detection(category, &rule.detection.named[name], text, &mut out);
        }
    }
    match category {
        Some(c) if out.is_empty() => Ok(c),
        _ => Err(out),
    }
}

/// Identifiers and selectors of a condition that name no detection.
fn undefined(c: &ConditionExpr, rule: &SigmaRule, out: &mut Vec<String>) {
    let named = &rule.detection.named;
    match c {
        ConditionExpr::And(cs) | ConditionExpr::Or(cs) => {
            cs.iter().for_each(|c| undefined(c, rule, out))
        }
        ConditionExpr::Not(c) => undefined(c, rule, out),
        ConditionExpr::Identifier(id) if !named.contains_key(id) => out.push(format!("{id:?}")),
        ConditionExpr::Selector {
            pattern: SelectorPattern::Pattern(p),
            ..
        } if !named.keys().any(|n| detection_name_matches(p, n)) => out.push(format!("{p:?}")),
        _ => {}
    }
}

fn detection(category: Category, d: &Detection, text: &str, out: &mut Vec<Refusal>) {
    match d {
        Detection::AllOf(items) => items.iter().for_each(|i| item(category, i, text, out)),
        Detection::AnyOf(ds) | Detection::And(ds) => {
            ds.iter().for_each(|d| detection(category, d, text, out))
        }
        Detection::Keywords(_) => {}
        Detection::ArrayMatch { field, .. } => out.push(Refusal {
            line: line_of_field(text, field, None),
            field: Some(field.clone()),
            reason: "array blocks are not part of the node's log sources (no field is an array)"
                .into(),
        }),
        Detection::Conditional { .. } => out.push(Refusal {
            line: None,
            field: None,
            reason: "array block conditions are not part of the node's log sources".into(),
        }),
    }
}

fn item(category: Category, i: &DetectionItem, text: &str, out: &mut Vec<Refusal>) {
    let Some(name) = i.field.name.as_deref() else {
        return;
    };
    let Some(field) = category.field(name) else {
        let reason = match category.missing(name) {
            Some(why) => format!("not available: {why}"),
            None => {
                let known: Vec<&str> = category.fields().iter().map(|f| f.name).collect();
                format!(
                    "not a field of {} on this node (fields: {})",
                    category.name(),
                    known.join(", ")
                )
            }
        };
        out.push(Refusal {
            line: line_of_field(text, name, None),
            field: Some(name.to_owned()),
            reason,
        });
        return;
    };
    for m in &i.field.modifiers {
        let reason = match modifier(*m, field.kind) {
            Some(r) => r.to_owned(),
            None if *m == Modifier::FieldRef => {
                let bad: Vec<String> = i
                    .values
                    .iter()
                    .filter_map(|v| match v {
                        SigmaValue::String(s) if category.field(&s.original).is_some() => None,
                        other => Some(format!("{other:?}")),
                    })
                    .collect();
                if bad.is_empty() {
                    continue;
                }
                format!(
                    "fieldref names {} which is not a field of {}",
                    bad.join(", "),
                    category.name()
                )
            }
            None => continue,
        };
        let m_name = format!("{m:?}").to_lowercase();
        out.push(Refusal {
            line: line_of_field(text, name, Some(&m_name)),
            field: Some(format!("{name}|{m_name}")),
            reason,
        });
    }
}

/// Why a modifier cannot be evaluated on a field of `kind`, if it cannot.
fn modifier(m: Modifier, kind: Kind) -> Option<&'static str> {
    use Modifier::*;
    match m {
        Expand => Some("no placeholders are defined on the node"),
        Minute | Hour | Day | Week | Month | Year => {
            Some("timestamp parts need a time field; the node's events give rules none")
        }
        Wide | Utf16 | Utf16be => Some(
            "UTF-16 text never occurs in the node's events (Linux paths and command lines are UTF-8)",
        ),
        Cidr if kind != Kind::Ip => Some("cidr applies to address fields only"),
        Gt | Gte | Lt | Lte if kind != Kind::Number => {
            Some("numeric comparisons apply to number fields only")
        }
        Contains | StartsWith | EndsWith | Re | Base64 | Base64Offset | WindAsh | Cased
        | IgnoreCase | Multiline | DotAll
            if matches!(kind, Kind::Number | Kind::Bool) =>
        {
            Some("a text modifier on a field that is not text")
        }
        _ => None,
    }
}

/// The first line whose key is `key` (`key:` after indentation or `- `).
pub(super) fn line_of_key(text: &str, key: &str) -> Option<usize> {
    find_line(text, |k| k == key)
}

/// The first line whose key names `field` (with `modifier` when given,
/// falling back to the field alone).
fn line_of_field(text: &str, field: &str, modifier: Option<&str>) -> Option<usize> {
    let of_field = |k: &str| {
        k == field
            || k.strip_prefix(field)
                .is_some_and(|rest| rest.starts_with('|') || rest.starts_with('['))
    };
    if let Some(m) = modifier
        && let Some(line) = find_line(text, |k| of_field(k) && k.split('|').any(|p| p == m))
    {
        return Some(line);
    }
    find_line(text, of_field)
}

/// The first line containing `|name` in a key (an unknown modifier).
pub(super) fn line_of_modifier(text: &str, name: &str) -> Option<usize> {
    find_line(text, |k| k.split('|').skip(1).any(|p| p == name))
}

fn find_line(text: &str, mut matches: impl FnMut(&str) -> bool) -> Option<usize> {
    text.lines().enumerate().find_map(|(i, line)| {
        let l = line.trim_start();
        let l = l.strip_prefix("- ").unwrap_or(l).trim_start();
        let key = l.split_once(':')?.0.trim();
        let key = key.trim_matches(|c| c == '\'' || c == '"');
        matches(key).then_some(i + 1)
    })
}
