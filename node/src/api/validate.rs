//! Checks of request fields that are not plain numbers: member addresses
//! and the size of the first member list.
//! Every problem names its field (docs/API.md lists the ranges).

/// Longest member address, in characters (the join protocol keeps as much).
pub const MAX_ADDR_CHARS: usize = 256;
/// Most addresses in one member address.
pub const MAX_ADDRS: usize = 8;
/// Most other first members `POST /api/v1/cluster/init` takes.
pub const MAX_INIT_PEERS: usize = 8;

/// A member's mesh address: empty, or up to [`MAX_ADDRS`] comma-separated
/// `HOST:PORT` (IP or DNS name) or multiaddrs such as `/ip4/192.0.2.7/tcp/7301`.
pub fn member_addr(field: &str, addr: &str) -> Result<(), String> {
    if addr.is_empty() {
        return Ok(());
    }
    if addr.chars().count() > MAX_ADDR_CHARS {
        return Err(format!(
            "{field}: {} characters is over the limit of {MAX_ADDR_CHARS}",
            addr.chars().count()
        ));
    }
    let parts: Vec<&str> = addr.split(',').map(str::trim).collect();
    if parts.len() > MAX_ADDRS {
        return Err(format!(
            "{field}: {} addresses is over the limit of {MAX_ADDRS}",
            parts.len()
        ));
    }
    for part in parts {
        let ok = if part.starts_with('/') {
            multiaddr(part)
        } else if let Ok(socket) = part.parse::<std::net::SocketAddr>() {
            socket.port() != 0
        } else {
            crate::config::host_port(field, part).is_ok()
        };
        if !ok {
            return Err(format!(
                "{field}: {part:?} is not an address (expected HOST:PORT such as 192.0.2.7:7301 or node-3.site:7301, or a multiaddr such as /ip4/192.0.2.7/tcp/7301; several separated by commas)"
            ));
        }
    }
    Ok(())
}

/// `/ip4|ip6|dns|dns4|dns6/HOST/tcp|udp/PORT`, then optionally `quic-v1`
/// and `p2p/ID`.
fn multiaddr(s: &str) -> bool {
    let mut it = s.split('/').skip(1);
    let (Some(proto), Some(host), Some(transport), Some(port)) =
        (it.next(), it.next(), it.next(), it.next())
    else {
        return false;
    };
    let host_ok = match proto {
        "ip4" => host.parse::<std::net::Ipv4Addr>().is_ok(),
        "ip6" => host.parse::<std::net::Ipv6Addr>().is_ok(),
        "dns" | "dns4" | "dns6" => crate::config::host_port("", &format!("{host}:1")).is_ok(),
        _ => false,
    };
    let port_ok = matches!(transport, "tcp" | "udp") && port.parse::<u16>().is_ok_and(|p| p > 0);
    let rest: Vec<&str> = it.collect();
    let rest_ok = match rest.as_slice() {
        [] | ["quic-v1"] => true,
        ["p2p", id] | ["quic-v1", "p2p", id] => amoskys_consensus::NodeId::parse(id).is_ok(),
        _ => false,
    };
    host_ok && port_ok && rest_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_addresses_are_host_ports_or_multiaddrs() {
        for good in [
            "",
            "192.0.2.7:7301",
            "[::1]:7301",
            "node-3.site:7301",
            "127.0.0.1:7301,10.0.0.2:7301",
            "/ip4/192.0.2.7/tcp/7301",
            "/ip6/::1/udp/7301/quic-v1",
            "/dns/node-3.site/tcp/7301",
        ] {
            assert_eq!(member_addr("addr", good), Ok(()), "{good}");
        }
        for bad in [
            "not an address",
            "192.0.2.7",
            "192.0.2.7:0",
            "host:99999",
            "/ip4/1.2.3/tcp/1",
            "/ip4/192.0.2.7/tcp/7301/extra",
            ",",
        ] {
            let err = member_addr("addr", bad).expect_err(bad);
            assert!(err.starts_with("addr: "), "{err}");
        }
        let many = ["127.0.0.1:1"; MAX_ADDRS + 1].join(",");
        assert!(member_addr("addr", &many).is_err());
        assert!(member_addr("addr", &"a".repeat(MAX_ADDR_CHARS + 1)).is_err());
    }
}
