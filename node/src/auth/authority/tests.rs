use std::net::{IpAddr, Ipv4Addr};

use amoskys_consensus::OperatorRecord;
use ed25519_dalek::SigningKey;

use super::*;
use crate::auth::sign_request;

const NODE: &str = "12D3KooWTestNode";
const NOW: u64 = 1_800_000_000_000;
const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const REMOTE: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9));

struct World {
    authority: Authority,
    admin: SigningKey,
    analyst: SigningKey,
    _applied: watch::Sender<Arc<Applied>>,
}

fn world() -> World {
    let dir = tempfile::tempdir().expect("dir");
    let local = crate::auth::ensure_local_admin(dir.path()).expect("admin key");
    let analyst = SigningKey::from_bytes(&[3; 32]);
    let mut applied = Applied::default();
    applied.state.operators.insert(
        "ana".into(),
        OperatorRecord {
            key: hex::encode(analyst.verifying_key().to_bytes()),
            role: Role::Analyst,
            added_by: "admin".into(),
            added_ns: 1,
            previous_keys: Vec::new(),
        },
    );
    let (tx, rx) = watch::channel(Arc::new(applied));
    World {
        authority: Authority::new(NODE.into(), &local, rx),
        admin: local.key,
        analyst,
        _applied: tx,
    }
}

fn parts<'a>(method: &'a str, path: &'a str) -> RequestParts<'a> {
    RequestParts {
        node_id: NODE,
        method,
        path_and_query: path,
        body: b"",
    }
}

fn signed(key: &SigningKey, method: &str, path: &str, ts: u64, nonce: u8) -> String {
    sign_request(key, &parts(method, path), ts, &[nonce; 16])
}

fn check(w: &World, access: Access, source: IpAddr, header: Option<&str>, path: &str) -> Verdict {
    let method = if path == "/api/v1/policy" {
        "PUT"
    } else {
        "GET"
    };
    w.authority.check(
        access,
        &Incoming {
            source,
            authorization: header,
            parts: parts(method, path),
        },
        NOW,
    )
}

#[test]
fn operators_get_what_their_role_allows() {
    let w = world();
    let admin = signed(&w.admin, "PUT", "/api/v1/policy", NOW, 1);
    match check(
        &w,
        Access::Role(Role::Admin),
        LOCAL,
        Some(&admin),
        "/api/v1/policy",
    ) {
        Verdict::Allowed(c) => {
            assert_eq!(c.name, LOCAL_ADMIN);
            assert_eq!(c.role, Role::Admin);
        }
        other => panic!("{other:?}"),
    }
    let ana = signed(&w.analyst, "PUT", "/api/v1/policy", NOW, 2);
    match check(
        &w,
        Access::Role(Role::Admin),
        LOCAL,
        Some(&ana),
        "/api/v1/policy",
    ) {
        Verdict::Forbidden { caller, reason } => {
            assert_eq!(caller.expect("known").name, "ana");
            assert!(reason.contains("needs an admin"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let ana = signed(&w.analyst, "GET", "/api/v1/alerts", NOW, 3);
    assert!(matches!(
        check(
            &w,
            Access::Role(Role::Viewer),
            REMOTE,
            Some(&ana),
            "/api/v1/alerts"
        ),
        Verdict::Allowed(_)
    ));
}

#[test]
fn missing_stale_replayed_and_unknown_credentials_are_refused() {
    let w = world();
    let path = "/api/v1/alerts";
    let access = Access::Role(Role::Viewer);
    let reason = |v: Verdict| match v {
        Verdict::Unauthenticated(e) => e.reason(),
        other => panic!("{other:?}"),
    };
    assert_eq!(reason(check(&w, access, LOCAL, None, path)), "missing");
    let old = signed(&w.admin, "GET", path, NOW - 61_000, 1);
    assert_eq!(
        reason(check(&w, access, LOCAL, Some(&old), path)),
        "expired"
    );
    let good = signed(&w.admin, "GET", path, NOW, 2);
    assert!(matches!(
        check(&w, access, LOCAL, Some(&good), path),
        Verdict::Allowed(_)
    ));
    assert_eq!(
        reason(check(&w, access, LOCAL, Some(&good), path)),
        "replayed"
    );
    let stranger = signed(&SigningKey::from_bytes(&[8; 32]), "GET", path, NOW, 3);
    assert_eq!(
        reason(check(&w, access, LOCAL, Some(&stranger), path)),
        "unknown_key"
    );
    // Signed for another path: the signature does not cover this one.
    let other = signed(&w.admin, "GET", "/api/v1/cases", NOW, 4);
    assert_eq!(
        reason(check(&w, access, LOCAL, Some(&other), path)),
        "bad_signature"
    );
}

#[test]
fn loopback_routes_refuse_remote_sources_whatever_the_role() {
    let w = world();
    let path = "/api/v1/events";
    let admin = signed(&w.admin, "GET", path, NOW, 1);
    assert!(matches!(
        check(
            &w,
            Access::LocalRole(Role::Viewer),
            REMOTE,
            Some(&admin),
            path
        ),
        Verdict::Forbidden { caller: None, .. }
    ));
    assert!(matches!(
        check(
            &w,
            Access::LocalRole(Role::Viewer),
            LOCAL,
            Some(&admin),
            path
        ),
        Verdict::Allowed(_)
    ));
    assert_eq!(
        check(&w, Access::Local, LOCAL, None, "/metrics"),
        Verdict::Open
    );
    assert!(matches!(
        check(&w, Access::Local, REMOTE, None, "/metrics"),
        Verdict::Forbidden { .. }
    ));
    assert_eq!(
        check(&w, Access::Public, REMOTE, None, "/healthz"),
        Verdict::Open
    );
}

#[test]
fn a_source_over_its_failure_budget_is_refused_before_verification() {
    let w = world();
    let path = "/api/v1/alerts";
    let access = Access::Role(Role::Viewer);
    for _ in 0..limit::BURST {
        assert!(matches!(
            check(&w, access, REMOTE, Some("Amoskys-Ed25519 junk"), path),
            Verdict::Unauthenticated(_)
        ));
    }
    let good = signed(&w.admin, "GET", path, NOW, 1);
    assert_eq!(
        check(&w, access, REMOTE, Some(&good), path),
        Verdict::Limited
    );
    // Another source is not affected.
    assert!(matches!(
        check(&w, access, LOCAL, Some(&good), path),
        Verdict::Allowed(_)
    ));
}
