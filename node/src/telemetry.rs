//! Structured logging with `tracing`, as text or JSON lines on stderr.
//!
//! The libraries under the node log their own internals at `info` (openraft
//! alone prints about 18 lines at every start); they stay at `warn` unless
//! the filter names them. Colours only when stderr is a terminal.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

use crate::config::LogFormat;

/// Crates kept at `warn` unless the filter names them; a directive's target
/// is a prefix (`libp2p` covers `libp2p_swarm`).
pub const QUIET_TARGETS: &[&str] = &[
    "openraft",
    "libp2p",
    "multistream_select",
    "yamux",
    "quinn",
    "rustls",
    "hickory_proto",
    "netlink",
    "if_watch",
    "hyper",
    "h2",
    "reqwest",
    "tower",
    "automerge",
    "burn",
    "cubecl",
];

/// Installs the global subscriber. `RUST_LOG`, when set, overrides `level`.
/// Calling it twice keeps the first subscriber.
pub fn init(format: LogFormat, level: &str) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(with_quiet_deps(&v)).ok())
        .or_else(|| EnvFilter::try_new(with_quiet_deps(level)).ok())
        .unwrap_or_else(|| EnvFilter::new(with_quiet_deps("info")));
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// The filter `filter` with `TARGET=warn` appended for each of
/// [`QUIET_TARGETS`] it does not name itself. Only a filter whose default
/// level is more verbose than `warn` gets them: a quieter one keeps its own
/// level for every crate.
pub fn with_quiet_deps(filter: &str) -> String {
    let directives: Vec<&str> = filter
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect();
    let verbose = directives.iter().any(|d| {
        d.parse::<LevelFilter>()
            .is_ok_and(|level| level > LevelFilter::WARN)
    });
    if !verbose {
        return filter.to_owned();
    }
    let named = |target: &str| {
        directives.iter().any(|d| {
            let name = d.split(['=', '[']).next().unwrap_or_default();
            name == target
        })
    };
    let mut out = directives.join(",");
    for target in QUIET_TARGETS.iter().filter(|t| !named(t)) {
        out.push_str(&format!(",{target}=warn"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbose_filters_keep_dependencies_at_warn() {
        let f = with_quiet_deps("info");
        assert!(f.starts_with("info,openraft=warn,libp2p=warn,"), "{f}");
        let f = with_quiet_deps("debug, amoskys_node=trace");
        assert!(
            f.starts_with("debug,amoskys_node=trace,openraft=warn,"),
            "{f}"
        );
        assert!(EnvFilter::try_new(&f).is_ok(), "{f}");
    }

    #[test]
    fn a_named_dependency_keeps_the_users_level() {
        let f = with_quiet_deps("info,openraft=debug");
        assert!(f.contains("openraft=debug"), "{f}");
        assert!(!f.contains("openraft=warn"), "{f}");
        assert!(f.contains("libp2p=warn"), "{f}");
    }

    #[test]
    fn quieter_filters_are_left_alone() {
        for filter in ["warn", "error", "off", "amoskys_node=debug"] {
            assert_eq!(with_quiet_deps(filter), filter);
        }
    }
}
