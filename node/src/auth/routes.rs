//! The access every route needs, in one table. A test reads the router's
//! source and fails when a route has no entry here (or an entry names a
//! route that is gone), so a new route cannot be added without deciding
//! who may call it.

use amoskys_consensus::Role;
use axum::http::Method;

/// What a request to a route must bring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, no credential (`/healthz`).
    Public,
    /// Anyone on the node's own host (loopback), no credential: a local
    /// scraper (`/metrics`).
    Local,
    /// An operator with at least this role.
    Role(Role),
    /// An operator with at least this role, on the node's own host only
    /// (loopback or a Unix socket), whatever the role.
    LocalRole(Role),
    /// A web console page: an operator signed in to the console (a session
    /// cookie, not a signature) with at least this role; a write also needs
    /// the session's CSRF token (`console::gate`).
    Session(Role),
}

use Access::{Local, LocalRole, Public, Role as R, Session as S};
use Role::{Admin, Analyst, Viewer};

/// Every route of the API: method, route pattern (as the router writes it)
/// and the access it needs. Choices worth naming:
/// - `/metrics` is loopback-only and needs no credential (a local
///   Prometheus or agent scrapes it; counts only, no telemetry);
/// - `/api/v1/events` is loopback-only: raw telemetry never leaves the host;
/// - `/api/v1/node/key/rotate` is loopback-only: the node key lives on the host;
/// - `/api/v1/members/export` is a read (the signed membership a viewer
///   needs to verify alerts offline);
/// - `/api/v1/cluster/init` needs an admin: before init only the node's
///   local admin exists.
pub const ROUTES: &[(&str, &str, Access)] = &[
    ("GET", "/healthz", Public),
    ("GET", "/metrics", Local),
    ("GET", "/api/v1/node", R(Viewer)),
    ("POST", "/api/v1/node/key/rotate", LocalRole(Admin)),
    ("GET", "/api/v1/events", LocalRole(Viewer)),
    ("GET", "/api/v1/alerts", R(Viewer)),
    ("GET", "/api/v1/alerts/stream", R(Viewer)),
    ("GET", "/api/v1/alerts/export", R(Viewer)),
    ("GET", "/api/v1/alerts/review", R(Viewer)),
    ("GET", "/api/v1/models", R(Viewer)),
    ("POST", "/api/v1/models/train", R(Admin)),
    ("POST", "/api/v1/models/{version}/activate", R(Admin)),
    ("GET", "/api/v1/peers", R(Viewer)),
    ("GET", "/api/v1/mesh/topology", R(Viewer)),
    ("GET", "/api/v1/cluster", R(Viewer)),
    ("POST", "/api/v1/cluster/init", R(Admin)),
    ("GET", "/api/v1/members", R(Viewer)),
    ("POST", "/api/v1/members", R(Admin)),
    ("GET", "/api/v1/members/export", R(Viewer)),
    ("DELETE", "/api/v1/members/{id}", R(Admin)),
    ("GET", "/api/v1/policy", R(Viewer)),
    ("PUT", "/api/v1/policy", R(Admin)),
    ("GET", "/api/v1/policy/history", R(Viewer)),
    ("GET", "/api/v1/proposals", R(Viewer)),
    ("POST", "/api/v1/proposals/{id}/approve", R(Admin)),
    ("GET", "/api/v1/learn/rounds", R(Viewer)),
    ("POST", "/api/v1/learn/rounds", R(Admin)),
    ("GET", "/api/v1/intel", R(Viewer)),
    ("POST", "/api/v1/intel", R(Analyst)),
    ("DELETE", "/api/v1/intel", R(Analyst)),
    ("GET", "/api/v1/decisions", R(Viewer)),
    ("POST", "/api/v1/decisions", R(Analyst)),
    ("DELETE", "/api/v1/decisions", R(Analyst)),
    ("GET", "/api/v1/cases", R(Viewer)),
    ("GET", "/api/v1/cases/{alert}", R(Viewer)),
    ("POST", "/api/v1/cases/{alert}/ack", R(Analyst)),
    ("POST", "/api/v1/cases/{alert}/status", R(Analyst)),
    ("POST", "/api/v1/cases/{alert}/notes", R(Analyst)),
    ("GET", "/api/v1/workspace", R(Viewer)),
    ("GET", "/api/v1/audit", R(Viewer)),
    ("GET", "/api/v1/audit/export", R(Viewer)),
    ("GET", "/api/v1/whoami", R(Viewer)),
    ("GET", "/api/v1/operators", R(Viewer)),
    ("POST", "/api/v1/operators", R(Admin)),
    ("PUT", "/api/v1/operators/{name}", R(Admin)),
    ("DELETE", "/api/v1/operators/{name}", R(Admin)),
    // Any operator, for its own key only (the handler checks the name).
    ("POST", "/api/v1/operators/{name}/rotate", R(Viewer)),
    // The web console (node/src/console/mod.rs). Any operator may ask for
    // a one-time sign-in link for itself; the link, the sign-in page and
    // the hashed assets hold no data.
    ("POST", "/api/v1/console/login", R(Viewer)),
    ("GET", "/login", Public),
    ("GET", "/assets/{file}", Public),
    ("POST", "/logout", S(Viewer)),
    ("GET", "/", S(Viewer)),
    ("GET", "/alerts", S(Viewer)),
    ("GET", "/alerts/stream", S(Viewer)),
    ("GET", "/alerts/{id}", S(Viewer)),
    ("POST", "/alerts/{id}/ack", S(Analyst)),
    ("POST", "/alerts/{id}/status", S(Analyst)),
    ("POST", "/alerts/{id}/notes", S(Analyst)),
    ("GET", "/mesh", S(Viewer)),
    ("GET", "/cluster", S(Viewer)),
    ("POST", "/cluster/policy", S(Admin)),
    ("POST", "/cluster/members", S(Admin)),
    ("POST", "/cluster/members/{id}/remove", S(Admin)),
    ("POST", "/cluster/proposals/{id}/approve", S(Admin)),
    ("GET", "/models", S(Viewer)),
    ("POST", "/models/{version}/activate", S(Admin)),
    ("POST", "/models/rounds", S(Admin)),
    ("GET", "/intel", S(Viewer)),
    ("POST", "/intel", S(Analyst)),
    ("POST", "/intel/remove", S(Analyst)),
    ("GET", "/audit", S(Viewer)),
];

/// The access a route needs: `route` is the matched pattern
/// (`/api/v1/cases/{alert}/ack`, axum's `MatchedPath`). `HEAD` needs what
/// `GET` needs. `None` for a method and route the API does not have.
pub fn access(method: &Method, route: &str) -> Option<Access> {
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    ROUTES
        .iter()
        .find(|(m, r, _)| *m == method && *r == route)
        .map(|(_, _, a)| *a)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    const ROUTER: &str = include_str!("../api/mod.rs");
    const CONSOLE: &str = include_str!("../console/mod.rs");

    /// Every (method, route) the router source declares: each `.route("…",`
    /// call and the `get(`, `post(`, `put(`, `delete(`, `patch(` handlers
    /// up to its closing parenthesis.
    fn declared(src: &str) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        let mut rest = src;
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let Some(open) = rest.find('"') else { break };
            let close = rest[open + 1..].find('"').expect("a closing quote") + open + 1;
            let path = rest[open + 1..close].to_owned();
            let mut depth = 1;
            let end = rest
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '(' => 1,
                        ')' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map_or(rest.len(), |(i, _)| i);
            let call = &rest[close..end];
            for m in ["get", "post", "put", "delete", "patch"] {
                let mut from = 0;
                while let Some(i) = call[from..].find(&format!("{m}(")) {
                    let i = from + i;
                    let prev = call[..i].chars().next_back();
                    if !prev.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        out.insert((m.to_uppercase(), path.clone()));
                    }
                    from = i + m.len();
                }
            }
            rest = &rest[end..];
        }
        out
    }

    #[test]
    fn the_parser_reads_multi_line_routes() {
        let src = r#"Router::new()
            .route("/a", get(x::list).post(x::add).delete(x::remove))
            .route(
                "/b/{id}",
                axum::routing::post(y::target_get),
            )"#;
        let found = declared(src);
        let want: BTreeSet<_> = [
            ("GET", "/a"),
            ("POST", "/a"),
            ("DELETE", "/a"),
            ("POST", "/b/{id}"),
        ]
        .into_iter()
        .map(|(m, p)| (m.to_owned(), p.to_owned()))
        .collect();
        assert_eq!(found, want);
    }

    #[test]
    fn every_route_of_the_router_has_exactly_one_access_entry() {
        let mut routes = declared(ROUTER);
        assert!(routes.len() >= 30, "the parser found only {routes:?}");
        let console = declared(CONSOLE);
        assert!(console.len() >= 20, "the parser found only {console:?}");
        routes.extend(console);
        let table: BTreeSet<_> = ROUTES
            .iter()
            .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
            .collect();
        assert_eq!(table.len(), ROUTES.len(), "a route is listed twice");
        let missing: Vec<_> = routes.difference(&table).collect();
        assert!(
            missing.is_empty(),
            "routes with no access decided in node/src/auth/routes.rs ROUTES: {missing:?}"
        );
        let stale: Vec<_> = table.difference(&routes).collect();
        assert!(
            stale.is_empty(),
            "ROUTES names routes the router no longer has: {stale:?}"
        );
    }

    #[test]
    fn access_follows_the_roles_of_the_issue() {
        let get = |r| access(&Method::GET, r);
        assert_eq!(get("/healthz"), Some(Public));
        assert_eq!(get("/api/v1/events"), Some(LocalRole(Viewer)));
        assert_eq!(access(&Method::HEAD, "/api/v1/alerts"), Some(R(Viewer)));
        assert_eq!(access(&Method::PUT, "/api/v1/policy"), Some(R(Admin)));
        assert_eq!(
            access(&Method::POST, "/api/v1/cases/{alert}/ack"),
            Some(R(Analyst))
        );
        assert_eq!(access(&Method::PATCH, "/api/v1/policy"), None);
        assert_eq!(get("/api/v1/nope"), None);
        assert_eq!(get("/alerts"), Some(S(Viewer)));
        assert_eq!(access(&Method::POST, "/cluster/policy"), Some(S(Admin)));
        // Only /healthz and the console's sign-in page and assets are
        // public, only /metrics open on loopback, and every write needs more
        // than a viewer (but signing in and out, and rotating one's own key).
        let public = ["/healthz", "/login", "/assets/{file}"];
        let own = ["/api/v1/console/login", "/logout"];
        for (m, p, a) in ROUTES {
            assert!(*a != Public || public.contains(p), "{m} {p} is public");
            assert!(
                *a != Local || *p == "/metrics",
                "{m} {p} is open on loopback"
            );
            if *m != "GET" && !p.ends_with("/rotate") && !own.contains(p) {
                assert!(
                    matches!(
                        a,
                        R(Analyst | Admin) | LocalRole(Analyst | Admin) | S(Analyst | Admin)
                    ),
                    "{m} {p} is a write open to viewers"
                );
            }
        }
    }
}
