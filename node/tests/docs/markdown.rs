//! Fenced blocks of a Markdown file, with the `<!-- docs: … -->` directive
//! written right above each, and the commands of `sh` and `console` blocks
//! (docs/README.md describes the convention).

/// What the harness does with a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `sh`: commands run in order; each must succeed.
    Commands(Vec<Command>),
    /// `console`: `$ command` lines, each followed by the output it shows.
    Transcript(Vec<Command>),
    /// Any other labelled fence (`text`, `toml`, `json`, …): shown only,
    /// unless a `file` directive writes it.
    Shown,
    /// A fence with no language: an error, since nothing says whether it
    /// runs.
    Unlabelled,
}

/// A `<!-- docs: … -->` line right above a fence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Directive {
    /// `skip REASON`: not run; the reason is printed.
    Skip(String),
    /// `file NAME`: the block's text is written to NAME in the working
    /// directory before the next command runs.
    File(String),
    /// `needs root` (or `needs docker`): run only where that is available,
    /// otherwise skipped with the reason printed.
    Needs(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// 1-based line of the opening fence.
    pub line: usize,
    pub lang: String,
    pub text: String,
    pub kind: Kind,
    pub directive: Option<Directive>,
}

/// One command a reader would type, and what a transcript shows after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// 1-based line where the command starts.
    pub line: usize,
    pub text: String,
    /// `console` only: the output shown after the command.
    pub expected: Vec<String>,
    /// `console` only: the exit code, from a trailing `# exit N` (default 0).
    pub exit: i32,
}

/// Every fenced block of `markdown`, in order.
pub fn blocks(markdown: &str) -> Result<Vec<Block>, String> {
    let mut out = Vec::new();
    let mut lines = markdown.lines().enumerate();
    let mut last_text: Option<&str> = None;
    while let Some((i, line)) = lines.next() {
        let trimmed = line.trim_start();
        let Some(info) = trimmed.strip_prefix("```") else {
            if !line.trim().is_empty() {
                last_text = Some(line.trim());
            }
            continue;
        };
        let indent = line.len() - trimmed.len();
        let lang = info.trim().to_owned();
        let mut body = Vec::new();
        let mut closed = false;
        for (j, inner) in lines.by_ref() {
            if inner.trim_start().starts_with("```") {
                closed = true;
                break;
            }
            // Blocks inside list items are indented like their fence.
            let inner = inner.get(indent..).unwrap_or(inner.trim_start());
            body.push((j + 1, inner.to_owned()));
        }
        if !closed {
            return Err(format!("line {}: the fence is never closed", i + 1));
        }
        let directive = last_text
            .and_then(|t| t.strip_prefix("<!-- docs:"))
            .and_then(|t| t.strip_suffix("-->"))
            .map(|t| parse_directive(t.trim()))
            .transpose()
            .map_err(|e| format!("line {}: {e}", i + 1))?;
        last_text = None;
        let kind = match lang.as_str() {
            "sh" | "bash" | "shell" => Kind::Commands(commands(&body)?),
            "console" => Kind::Transcript(transcript(&body)?),
            "" => Kind::Unlabelled,
            _ => Kind::Shown,
        };
        let text = body.iter().map(|(_, l)| format!("{l}\n")).collect();
        out.push(Block {
            line: i + 1,
            lang,
            text,
            kind,
            directive,
        });
    }
    Ok(out)
}

fn parse_directive(text: &str) -> Result<Directive, String> {
    let (word, rest) = text.split_once(' ').unwrap_or((text, ""));
    let rest = rest.trim().to_owned();
    match word {
        "skip" if !rest.is_empty() => Ok(Directive::Skip(rest)),
        "file" if !rest.is_empty() => Ok(Directive::File(rest)),
        "needs" if rest == "root" || rest == "docker" => Ok(Directive::Needs(rest)),
        _ => Err(format!(
            "unknown directive `docs: {text}` (expected `skip REASON`, `file NAME`, `needs root` or `needs docker`)"
        )),
    }
}

/// The commands of an `sh` block: comment lines and blank lines are left
/// out, a trailing `\` continues a command, a here-document runs to its
/// terminator.
fn commands(body: &[(usize, String)]) -> Result<Vec<Command>, String> {
    let mut out = Vec::new();
    let mut rows = body.iter();
    while let Some((line, text)) = rows.next() {
        let t = text.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        out.push(Command {
            line: *line,
            text: continued(t, &mut rows, *line)?,
            expected: Vec::new(),
            exit: 0,
        });
    }
    Ok(out)
}

/// `first` plus the lines that belong to it (continuations, here-documents).
fn continued<'a>(
    first: &str,
    rows: &mut impl Iterator<Item = &'a (usize, String)>,
    line: usize,
) -> Result<String, String> {
    let mut cmd = first.to_owned();
    while cmd.ends_with('\\') {
        let (_, next) = rows
            .next()
            .ok_or(format!("line {line}: the command ends with `\\`"))?;
        cmd.push('\n');
        cmd.push_str(next);
    }
    if let Some(word) = heredoc_word(&cmd) {
        loop {
            let (_, next) = rows.next().ok_or(format!(
                "line {line}: the here-document never ends ({word})"
            ))?;
            cmd.push('\n');
            cmd.push_str(next);
            if next.trim() == word {
                break;
            }
        }
    }
    Ok(cmd)
}

/// The terminator of a here-document the command opens, if any.
fn heredoc_word(cmd: &str) -> Option<String> {
    let rest = cmd.split_once("<<")?.1;
    let rest = rest.strip_prefix('-').unwrap_or(rest).trim_start();
    let word: String = rest
        .chars()
        .filter(|c| *c != '\'' && *c != '"')
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!word.is_empty()).then_some(word)
}

/// The commands of a `console` block: `$ ` lines, each with the output
/// lines that follow it.
fn transcript(body: &[(usize, String)]) -> Result<Vec<Command>, String> {
    let mut out: Vec<Command> = Vec::new();
    let mut rows = body.iter();
    while let Some((line, text)) = rows.next() {
        if let Some(cmd) = text.strip_prefix("$ ") {
            let text = continued(cmd.trim(), &mut rows, *line)?;
            let (text, exit) = expected_exit(&text);
            out.push(Command {
                line: *line,
                text,
                expected: Vec::new(),
                exit,
            });
        } else if let Some(last) = out.last_mut() {
            last.expected.push(text.clone());
        } else {
            return Err(format!(
                "line {line}: output before the first `$ ` command in a console block"
            ));
        }
    }
    for c in &mut out {
        while c.expected.last().is_some_and(|l| l.trim().is_empty()) {
            c.expected.pop();
        }
    }
    Ok(out)
}

/// A trailing `# exit N` says the command is expected to exit with N.
fn expected_exit(cmd: &str) -> (String, i32) {
    if let Some((head, tail)) = cmd.rsplit_once("# exit ")
        && let Ok(code) = tail.trim().parse()
    {
        return (head.trim_end().to_owned(), code);
    }
    (cmd.to_owned(), 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_commands_and_directives() {
        let md = "text\n<!-- docs: file a.toml -->\n```toml\nx = 1\n```\n\n```sh\n# note\namoskys status   # c\ncat > p <<'EOF'\n[a]\nEOF\nls \\\n  -l\n```\n```console\n$ amoskys config check a.toml   # exit 2\na.toml: 1 problem(s)\n  x: bad\n\n```\n```\nbare\n```\n";
        let b = blocks(md).unwrap();
        assert_eq!(b.len(), 4);
        assert_eq!(b[0].directive, Some(Directive::File("a.toml".into())));
        assert_eq!(b[0].text, "x = 1\n");
        let Kind::Commands(c) = &b[1].kind else {
            panic!("{:?}", b[1].kind)
        };
        let texts: Vec<&str> = c.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "amoskys status   # c",
                "cat > p <<'EOF'\n[a]\nEOF",
                "ls \\\n  -l"
            ]
        );
        assert_eq!(c[0].line, 9);
        let Kind::Transcript(t) = &b[2].kind else {
            panic!()
        };
        assert_eq!(t[0].text, "amoskys config check a.toml");
        assert_eq!(t[0].exit, 2);
        assert_eq!(t[0].expected, ["a.toml: 1 problem(s)", "  x: bad"]);
        assert_eq!(b[3].kind, Kind::Unlabelled);
        assert!(blocks("<!-- docs: maybe -->\n```sh\nx\n```\n").is_err());
        assert!(blocks("```sh\nx\n").is_err());
    }
}
