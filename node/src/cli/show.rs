//! How the CLI prints: tables with a header row, times in RFC 3339, and one
//! form for every identity — the node's libp2p peer id (`12D3KooW…`), also
//! where the API gives a hex ed25519 key (workspace authors).

use std::time::{Duration, UNIX_EPOCH};

use comfy_table::{Table, presets};

/// A table with a header row and no borders, aligned by column.
pub(super) fn table<I, R>(header: &[&str], rows: I) -> String
where
    I: IntoIterator<Item = R>,
    R: IntoIterator<Item = String>,
{
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    t.set_header(header.iter().copied());
    for row in rows {
        t.add_row(row.into_iter().collect::<Vec<String>>());
    }
    // comfy-table pads every line to the widest cell; trailing blanks are noise.
    t.to_string()
        .lines()
        .map(|l| l.strip_prefix(' ').unwrap_or(l).trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Prints a table, or `empty` when it has no rows.
pub(super) fn print_table(header: &[&str], rows: Vec<Vec<String>>, empty: &str) {
    if rows.is_empty() {
        println!("{empty}");
    } else {
        println!("{}", table(header, rows));
    }
}

/// The peer id of an identity given as a peer id or as a hex ed25519 key.
pub(super) fn peer(value: &serde_json::Value) -> String {
    let Some(s) = value.as_str().filter(|s| !s.is_empty()) else {
        return "-".into();
    };
    peer_of(s)
}

/// [`peer`] for text.
pub(super) fn peer_of(s: &str) -> String {
    let key = hex::decode(s)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .and_then(|b| ed25519_dalek::VerifyingKey::from_bytes(&b).ok());
    match key {
        Some(k) => amoskys_mesh::alert::peer_id_of(&k),
        None => s.to_owned(),
    }
}

/// Text of a JSON string, `-` when absent.
pub(super) fn text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) if !s.is_empty() => s.clone(),
        serde_json::Value::Null => "-".into(),
        serde_json::Value::String(_) => "-".into(),
        other => other.to_string(),
    }
}

/// Milliseconds since the epoch as RFC 3339 (seconds).
pub(super) fn when_ms(value: &serde_json::Value) -> String {
    value.as_u64().map_or("-".into(), |ms| {
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
    })
}

/// Nanoseconds since the epoch as RFC 3339 (milliseconds).
pub(super) fn when_ns(ns: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_nanos(ns)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_keys_are_shown_as_peer_ids() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
        let id = amoskys_mesh::alert::peer_id_of(&key);
        assert!(id.starts_with("12D3KooW"), "{id}");
        assert_eq!(peer_of(&hex::encode(key.as_bytes())), id);
        assert_eq!(peer_of(&id), id);
        assert_eq!(peer(&serde_json::Value::Null), "-");
    }

    #[test]
    fn tables_have_a_header_and_aligned_columns() {
        let out = table(
            &["ROLE", "ID"],
            vec![
                vec!["voter".to_owned(), "a".to_owned()],
                vec!["learner".to_owned(), "b".to_owned()],
            ],
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(lines[0].starts_with("ROLE"), "{out}");
        let col = lines[0].find("ID").expect("header");
        assert_eq!(lines[1].find('a'), Some(col), "{out}");
        assert!(lines.iter().all(|l| !l.ends_with(' ')), "{out}");
    }
}
