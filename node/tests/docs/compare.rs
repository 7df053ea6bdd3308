//! Output a transcript shows against the output a command gave: values that
//! differ on every run (peer ids, keys and alert ids in hex, times) are
//! redacted on both sides; `[..]` in a shown line matches any text and a
//! line `...` any number of lines.

/// `None` when `actual` matches `expected`, else a diff-like explanation.
pub fn mismatch(expected: &[String], actual: &str) -> Option<String> {
    let exp: Vec<String> = expected.iter().map(|l| normalize(l)).collect();
    let mut act: Vec<String> = actual.lines().map(normalize).collect();
    while act.last().is_some_and(|l| l.is_empty()) {
        act.pop();
    }
    if lines_match(&exp, &act) {
        return None;
    }
    let mut out = String::from("shown:\n");
    for l in expected {
        out.push_str(&format!("    {l}\n"));
    }
    out.push_str("actual:\n");
    for l in actual.lines() {
        out.push_str(&format!("    {l}\n"));
    }
    Some(out)
}

fn lines_match(exp: &[String], act: &[String]) -> bool {
    match exp.split_first() {
        None => act.is_empty(),
        Some((first, rest)) if first.trim() == "..." => {
            (0..=act.len()).any(|skip| lines_match(rest, &act[skip..]))
        }
        Some((first, rest)) => act
            .split_first()
            .is_some_and(|(a, act_rest)| line_matches(first, a) && lines_match(rest, act_rest)),
    }
}

/// One line, where `[..]` matches any text.
pub fn line_matches(pattern: &str, line: &str) -> bool {
    let parts: Vec<&str> = pattern.split("[..]").collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return pattern == line;
    }
    let Some(mut rest) = line.strip_prefix(first) else {
        return false;
    };
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(at) => rest = &rest[at + mid.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Trailing blanks removed and varying values replaced by placeholders.
pub fn normalize(line: &str) -> String {
    redact(line.trim_end())
}

/// Peer ids → `[PEER]`, runs of 16 or more hex digits → `[HEX]`,
/// RFC 3339 times → `[TIME]`.
pub fn redact(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        let boundary = out
            .chars()
            .last()
            .is_none_or(|p| !p.is_ascii_alphanumeric());
        if boundary && let Some(n) = peer_id_len(rest) {
            out.push_str("[PEER]");
            rest = &rest[n..];
        } else if boundary && let Some(n) = time_len(rest) {
            out.push_str("[TIME]");
            rest = &rest[n..];
        } else if boundary && let Some(n) = hex_len(rest) {
            out.push_str("[HEX]");
            rest = &rest[n..];
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

fn peer_id_len(s: &str) -> Option<usize> {
    if !s.starts_with("12D3KooW") {
        return None;
    }
    let n = s
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() && !b"0OIl".contains(b))
        .count();
    (n >= 40).then_some(n)
}

fn hex_len(s: &str) -> Option<usize> {
    let n = s.bytes().take_while(u8::is_ascii_hexdigit).count();
    let ends = s
        .as_bytes()
        .get(n)
        .is_none_or(|b| !b.is_ascii_alphanumeric());
    (n >= 16 && ends).then_some(n)
}

/// `2026-12-06T09:27:49Z`, with optional fraction and offset.
fn time_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let shape = digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10)
        && matches!(b.get(10), Some(b'T' | b' '))
        && digits(11..13)
        && b.get(13) == Some(&b':')
        && digits(14..16);
    if !shape {
        return None;
    }
    let tail = b[16..]
        .iter()
        .take_while(|c| c.is_ascii_digit() || b":.+-Z".contains(c))
        .count();
    Some(16 + tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varying_values_are_redacted() {
        assert_eq!(
            redact(
                "node 12D3KooWRawPbxPtP1eZaJpumGnyWX2DcUyd3RQnydr3eAto4Az7 key ea4a6c63e29c520abef5507b132ec5f9 at 2026-12-06T09:27:49.123+00:00 ok"
            ),
            "node [PEER] key [HEX] at [TIME] ok"
        );
        assert_eq!(
            redact("deadbeef v2 127.0.0.1:7300"),
            "deadbeef v2 127.0.0.1:7300"
        );
    }

    #[test]
    fn wildcards_match_text_and_lines() {
        assert!(line_matches("up [..] (events [..])", "up 3s (events 12)"));
        assert!(!line_matches("up [..] (events", "down 3s (events"));
        let exp = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(mismatch(&exp(&["a", "...", "z"]), "a\nb\nc\nz\n").is_none());
        assert!(mismatch(&exp(&["a", "..."]), "a\n").is_none());
        assert!(mismatch(&exp(&["a", "b"]), "a\nc\n").is_some());
        assert!(mismatch(&exp(&["a"]), "a\nextra\n").is_some());
    }
}
