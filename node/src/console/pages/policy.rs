//! The policy on the cluster page: the API's refusal split into problems
//! with their keys, the submitted document shown line by line with each
//! problem next to its key, and the history as line diffs. Pure functions.

use std::fmt::Write as _;

use crate::console::render::esc;

/// One problem of a refused policy: its dotted key when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: Option<String>,
    pub message: String,
}

fn is_key(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']' | '-'))
}

/// Dotted paths in `doc` whose last part is `name`.
fn paths_named(doc: &toml::Table, name: &str, prefix: &str, out: &mut Vec<String>) {
    for (k, v) in doc {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        if k == name {
            out.push(path.clone());
        }
        if let toml::Value::Table(t) = v {
            paths_named(t, name, &path, out);
        }
    }
}

/// The API's refusal of `document` as problems with keys: the policy's
/// checks name their keys (`rules.x: …`); an unknown key is found in the
/// document by its name.
pub fn problems(message: &str, document: &str) -> Vec<Problem> {
    let message = message.strip_prefix("invalid policy: ").unwrap_or(message);
    let parsed: Option<toml::Table> = toml::from_str(document).ok();
    message
        .split("; ")
        .map(|part| {
            if let Some((key, msg)) = part.split_once(": ")
                && is_key(key)
            {
                return Problem {
                    key: Some(key.to_owned()),
                    message: msg.to_owned(),
                };
            }
            let unknown = part
                .strip_prefix("unknown field `")
                .and_then(|rest| rest.split_once('`'))
                .map(|(name, _)| name);
            let key = unknown.and_then(|name| {
                let mut found = Vec::new();
                if let Some(doc) = &parsed {
                    paths_named(doc, name, "", &mut found);
                }
                found.into_iter().next()
            });
            Problem {
                key,
                message: part.to_owned(),
            }
        })
        .collect()
}

/// The line of `document` that sets `key` (`a.b.c` is `c = …` under
/// `[a.b]`, or `b.c = …` under `[a]`), if found.
pub fn line_of(document: &str, key: &str) -> Option<usize> {
    let key = key.split('[').next().unwrap_or(key);
    let mut section = String::new();
    for (i, line) in document.lines().enumerate() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = name.trim_matches(['[', ']']).trim().to_owned();
            continue;
        }
        let Some((lhs, _)) = t.split_once('=') else {
            continue;
        };
        let lhs = lhs.trim();
        let full = if section.is_empty() {
            lhs.to_owned()
        } else {
            format!("{section}.{lhs}")
        };
        if full == key {
            return Some(i);
        }
    }
    None
}

/// The problems as a list, then the document with each problem next to
/// the line of its key.
pub fn annotated(document: &str, problems: &[Problem]) -> String {
    let mut out = String::from(
        "<div id=\"policy-problems\" class=\"problems\" role=\"alert\"><h3>The policy was not changed</h3><dl>",
    );
    for p in problems {
        let _ = write!(
            out,
            "<dt>{}</dt><dd>{}</dd>",
            esc(p.key.as_deref().unwrap_or("(document)")),
            esc(&p.message)
        );
    }
    out.push_str("</dl></div><h3>Where</h3><ol class=\"annotated\">");
    let mut placed = vec![false; problems.len()];
    for (i, line) in document.lines().enumerate() {
        let _ = write!(out, "<li><code>{}</code>", esc(line));
        for (j, p) in problems.iter().enumerate() {
            if let Some(k) = &p.key
                && line_of(document, k) == Some(i)
            {
                placed[j] = true;
                let _ = write!(
                    out,
                    " <strong class=\"error\" data-key=\"{}\">← {}: {}</strong>",
                    esc(k),
                    esc(k),
                    esc(&p.message)
                );
            }
        }
        out.push_str("</li>");
    }
    out.push_str("</ol>");
    out
}

/// A line diff of `old` to `new` (longest common subsequence), as `(tag,
/// line)` with tag ' ', '-' or '+'.
pub fn diff<'a>(old: &'a str, new: &'a str) -> Vec<(char, &'a str)> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    // Documents are at most 64 KiB; a larger pair is shown whole.
    if a.len() * b.len() > 4_000_000 {
        return a
            .iter()
            .map(|l| ('-', *l))
            .chain(b.iter().map(|l| ('+', *l)))
            .collect();
    }
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push(('+', b[j]));
            j += 1;
        } else {
            out.push(('-', a[i]));
            i += 1;
        }
    }
    out
}

/// The changed lines of a diff as HTML (unchanged lines left out).
pub fn diff_html(old: &str, new: &str) -> String {
    let mut out = String::from("<pre class=\"diff\">");
    let mut any = false;
    for (tag, line) in diff(old, new) {
        let class = match tag {
            '+' => "add",
            '-' => "del",
            _ => continue,
        };
        any = true;
        let _ = writeln!(out, "<span class=\"{class}\">{tag} {}</span>", esc(line));
    }
    if !any {
        out.push_str("(no change)");
    }
    out.push_str("</pre>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_keep_their_keys_and_unknown_keys_are_found() {
        let doc = "[rules]\nbogus_key = 1\n";
        let got = problems(
            "invalid policy: unknown field `bogus_key`, expected one of `a`",
            doc,
        );
        assert_eq!(got[0].key.as_deref(), Some("rules.bogus_key"));
        let got = problems(
            "invalid policy: rules.port_scan_ports: 0 is out of range; membership.voters: too many",
            "",
        );
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].key.as_deref(), Some("rules.port_scan_ports"));
        assert_eq!(got[1].message, "too many");
        let got = problems("invalid policy: expected `=`", "x");
        assert_eq!(got[0].key, None);
    }

    #[test]
    fn a_problem_sits_next_to_its_line() {
        let doc = "[rules]\na = 1\nbogus_key = 2\n[membership]\nvoters = 9\n";
        assert_eq!(line_of(doc, "rules.bogus_key"), Some(2));
        assert_eq!(line_of(doc, "membership.voters"), Some(4));
        assert_eq!(line_of(doc, "rules.voters"), None);
        let html = annotated(
            doc,
            &[Problem {
                key: Some("rules.bogus_key".into()),
                message: "unknown <field>".into(),
            }],
        );
        assert!(html.contains(
            "<li><code>bogus_key = 2</code> <strong class=\"error\" data-key=\"rules.bogus_key\">← rules.bogus_key: unknown &lt;field&gt;</strong></li>"
        ), "{html}");
    }

    #[test]
    fn diffs_show_changed_lines() {
        let d = diff("a\nb\nc", "a\nc\nd");
        assert_eq!(d, vec![(' ', "a"), ('-', "b"), (' ', "c"), ('+', "d")]);
        assert!(diff_html("x", "x").contains("(no change)"));
        assert!(diff_html("x", "<y>").contains("<span class=\"add\">+ &lt;y&gt;</span>"));
    }
}
