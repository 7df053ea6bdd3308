//! Entry points for fuzzing the node's decoders: each takes bytes as they
//! arrive (a configuration file, a replicated policy, an API request body,
//! a workspace sync envelope or change from a peer) and runs them through
//! the code the node uses. The targets of `node/fuzz/` call one function
//! each, and `tests/fuzz_corpus.rs` replays the seed corpora and the
//! regressions through the same functions in plain `cargo test`.

use crate::config::{Config, Source};
use crate::policy::Policy;

/// A configuration file: merged over the embedded defaults and checked
/// against their schema, then validated.
pub fn config_toml(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let sources = [
        Source::Embedded,
        Source::Text {
            origin: "fuzz.toml".into(),
            text,
        },
    ];
    if let Ok(config) = Config::load(&sources) {
        let _ = config.validate();
        let _ = config.to_toml();
    }
}

/// A policy document, as a member's write or a committed entry carries it.
pub fn policy_toml(bytes: &[u8]) {
    if let Ok(text) = std::str::from_utf8(bytes)
        && let Ok(policy) = Policy::parse(text)
    {
        let _ = policy.privacy();
    }
}

/// The body of a write route of the API: the first byte picks the route
/// ([`crate::api::bodies::WRITE_ROUTES`]), the rest is the body.
pub fn api_body(bytes: &[u8]) {
    if let Some((route, body)) = bytes.split_first() {
        let _ = crate::api::bodies::decode_write_body(*route, body);
    }
}

/// For the workspace targets: the workspace catches the panics Automerge's
/// decoding raises on a hostile change (`workspace::doc::check_ops`), and
/// libFuzzer's panic hook would abort on those caught panics too. This
/// puts the default hook back: a caught panic is printed and the input
/// refused, as on a node; an uncaught one still ends the run as a crash.
pub fn keep_caught_panics() {
    let _ = std::panic::take_hook();
}

/// A workspace sync envelope from a peer.
pub fn workspace_envelope(bytes: &[u8]) {
    crate::workspace::fuzzing::envelope(bytes);
}

/// An Automerge change signed by an admitted member.
pub fn workspace_change(bytes: &[u8]) {
    crate::workspace::fuzzing::signed_change(bytes);
}
