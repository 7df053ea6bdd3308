//! Threat intel: parsing with clear errors, add/remove/list, the matcher.

use std::net::IpAddr;
use std::time::Instant;

use super::intel::{Ioc, IocError, IocKind, ThreatIntel, parse_indicator};
use super::key;
use super::matcher::IocMatcher;

fn ioc(kind: IocKind, value: &str) -> Ioc {
    Ioc {
        kind,
        value: value.into(),
        reason: String::new(),
        added_by: String::new(),
        expires_ms: None,
        at_ms: 0,
        operator: None,
        operator_verified: false,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn indicators_are_detected_and_normalized() {
    let cases = [
        ("10.1.2.3", IocKind::Ip, "10.1.2.3"),
        (" 2001:DB8::1 ", IocKind::Ip, "2001:db8::1"),
        ("::ffff:192.0.2.1", IocKind::Ip, "192.0.2.1"),
        ("10.1.2.3/8", IocKind::Cidr, "10.0.0.0/8"),
        ("2001:db8:abcd::1/32", IocKind::Cidr, "2001:db8::/32"),
        ("Evil.Example.", IocKind::Domain, "evil.example"),
        (
            "domain:deadbeef.example",
            IocKind::Domain,
            "deadbeef.example",
        ),
        (
            "D41D8CD98F00B204E9800998ECF8427E",
            IocKind::Hash,
            "d41d8cd98f00b204e9800998ecf8427e",
        ),
        (
            "hash:da39a3ee5e6b4b0d3255bfef95601890afd80709",
            IocKind::Hash,
            "da39a3ee5e6b4b0d3255bfef95601890afd80709",
        ),
    ];
    for (input, kind, value) in cases {
        assert_eq!(
            parse_indicator(input),
            Ok((kind, value.to_string())),
            "{input}"
        );
    }
}

#[test]
fn bad_input_errors_say_what_is_wrong() {
    let cases = [
        ("10.0.0.0/33", "prefix length 33 is out of range (0 to 32"),
        (
            "2001:db8::/129",
            "prefix length 129 is out of range (0 to 128",
        ),
        ("10.0.0.0/x", "prefix length x"),
        (
            "10.0.0/8",
            "\"10.0.0\" before the slash is not an IP address",
        ),
        ("10.0.0.256", "is not an IPv4 or IPv6 address"),
        ("2001:db8::g", "is not an IPv4 or IPv6 address"),
        ("d41d8cd98f00b204e9800998ecf8427e00", "34 hex digits"),
        ("hash:xyz", "is not a hex hash"),
        ("localhost", "at least two labels"),
        ("-bad.example", "starts or ends with '-'"),
        ("bad..example", "empty"),
        ("bad!.example", "only letters, digits"),
        ("bücher.example", "punycode"),
        ("", "empty"),
    ];
    for (input, needle) in cases {
        let err = parse_indicator(input).unwrap_err().to_string();
        assert!(
            err.contains(needle),
            "{input:?}: {err:?} should mention {needle:?}"
        );
    }
}

#[test]
fn add_remove_list_and_expiry() {
    let k = key(1);
    let mut intel = ThreatIntel::new();
    let added = intel
        .add("EVIL.example", "c2", Some(5_000), 1_000, &k)
        .unwrap();
    assert_eq!(
        (added.kind, added.value.as_str()),
        (IocKind::Domain, "evil.example")
    );
    intel
        .add("10.0.0.0/8", "internal scan", None, 1_000, &k)
        .unwrap();
    assert_eq!(intel.list(2_000).len(), 2);
    assert_eq!(intel.list(5_000).len(), 1, "expired at 5000");
    assert!(
        intel.remove("10.9.9.9/8", 3_000, &k).unwrap().is_some(),
        "same network, normalized"
    );
    assert!(
        intel.remove("10.0.0.0/8", 3_001, &k).unwrap().is_none(),
        "already removed"
    );
    assert_eq!(intel.list(2_000).len(), 1);
    assert!(intel.get("10.0.0.0/8").is_none());
    assert!(intel.document().get("cidr:10.0.0.0/8").unwrap().removed);
    let err = intel
        .add("1.2.3.4", &"x".repeat(2_000), None, 1, &k)
        .unwrap_err();
    assert!(matches!(err, IocError::ReasonTooLong(2_000)));
    assert_eq!(
        intel
            .matcher(2_000)
            .match_domain("a.evil.example")
            .unwrap()
            .reason,
        "c2"
    );
}

#[test]
fn matcher_ips_in_cidrs_v4_and_v6() {
    let m = IocMatcher::new(vec![
        ioc(IocKind::Cidr, "10.0.0.0/8"),
        ioc(IocKind::Cidr, "10.1.0.0/16"),
        ioc(IocKind::Ip, "10.1.2.3"),
        ioc(IocKind::Cidr, "2001:db8::/32"),
        ioc(IocKind::Cidr, "0.0.0.0/0"),
    ]);
    assert_eq!(m.match_ip(ip("10.1.2.3")).unwrap().value, "10.1.2.3");
    assert_eq!(
        m.match_ip(ip("10.1.9.9")).unwrap().value,
        "10.1.0.0/16",
        "most specific"
    );
    assert_eq!(m.match_ip(ip("10.200.0.1")).unwrap().value, "10.0.0.0/8");
    assert_eq!(m.match_ip(ip("8.8.8.8")).unwrap().value, "0.0.0.0/0");
    assert_eq!(
        m.match_ip(ip("::ffff:10.1.2.3")).unwrap().value,
        "10.1.2.3",
        "mapped v6"
    );
    assert_eq!(
        m.match_ip(ip("2001:db8:ffff::1")).unwrap().value,
        "2001:db8::/32"
    );
    assert!(m.match_ip(ip("2001:db9::1")).is_none());
}

#[test]
fn matcher_parent_domains_and_hashes() {
    let sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let m = IocMatcher::new(vec![
        ioc(IocKind::Domain, "evil.example"),
        ioc(IocKind::Hash, sha256),
    ]);
    assert!(m.match_domain("evil.example").is_some());
    assert!(m.match_domain("A.B.Evil.Example.").is_some());
    assert!(
        m.match_domain("notevil.example").is_none(),
        "label boundary"
    );
    assert!(m.match_domain("example").is_none());
    assert!(m.match_hash(&sha256.to_uppercase()).is_some());
    assert!(m.match_hash("d41d8cd98f00b204e9800998ecf8427e").is_none());
}

#[test]
fn matcher_scales_to_100k_entries() {
    let mut iocs = Vec::new();
    for i in 0..50_000u32 {
        iocs.push(ioc(
            IocKind::Cidr,
            &format!("{}/{}", std::net::Ipv4Addr::from(i << 12), 20),
        ));
        iocs.push(ioc(IocKind::Domain, &format!("d{i}.example")));
    }
    let start = Instant::now();
    let m = IocMatcher::new(iocs);
    let build = start.elapsed();
    let start = Instant::now();
    let mut hits = 0;
    for i in 0..100_000u32 {
        hits += usize::from(
            m.match_ip(IpAddr::from(std::net::Ipv4Addr::from(
                i.wrapping_mul(2_654_435_761),
            )))
            .is_some(),
        );
        hits += usize::from(m.match_domain(&format!("x.d{i}.example")).is_some());
    }
    let per_lookup = start.elapsed() / 200_000;
    println!("matcher: 100k IOCs built in {build:?}; {per_lookup:?} per lookup, {hits} hits");
    assert_eq!(m.len(), 100_000);
    assert!(hits >= 50_000);
}
