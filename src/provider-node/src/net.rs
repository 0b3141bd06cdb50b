//! Which network addresses the node's outgoing connections may reach.
//!
//! Both a job's module download ([`crate::daemon::fetch::egress`]) and a
//! service's outgoing HTTP requests ([`crate::service::egress`]) are chosen
//! by a buyer. Sent naively, they would make the provider's machine a proxy
//! into its own network (loopback services, the private network, the cloud
//! metadata service at 169.254.169.254), so both go only to addresses that
//! [`is_public`] accepts.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether `ip` is a public unicast address: not loopback, private
/// (RFC 1918, RFC 4193), link-local (where cloud metadata services live),
/// shared (CGNAT), unspecified, multicast, broadcast, reserved or for
/// documentation; an IPv6 form of an IPv4 address is judged as that
/// address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0 // "this network", 0.0.0.0 included
        || a == 10 // private
        || (a == 100 && (64..128).contains(&b)) // shared, CGNAT
        || a == 127 // loopback
        || (a == 169 && b == 254) // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b)) // private
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // documentation
        || (a == 192 && b == 168) // private
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // documentation
        || (a == 203 && b == 0 && c == 113) // documentation
        || a >= 224) // multicast, reserved, broadcast
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    // An IPv4 address written as IPv6, mapped (::ffff:a.b.c.d), NAT64
    // (64:ff9b::a.b.c.d) or 6to4 (2002:aabb:ccdd::), is judged as that
    // address; the deprecated compatible form (::a.b.c.d) is refused.
    let embedded =
        |hi: u16, lo: u16| is_public_v4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => embedded(hi, lo),
        [0, 0, 0, 0, 0, 0, _, _] => false, // ::, ::1, deprecated compatible
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => embedded(hi, lo),
        [0x2002, hi, lo, ..] => embedded(hi, lo),
        [0x2001, 0x0db8, ..] => false, // documentation
        [0x2001, 0, ..] => false,      // Teredo: the IPv4 end is hidden
        // Global unicast is 2000::/3; everything else (unique local
        // fc00::/7, link-local fe80::/10, multicast ff00::/8, ...) is not.
        [first, ..] => first & 0xe000 == 0x2000,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One or more addresses of each range no request of a job or a service may reach.
    pub(crate) const NOT_PUBLIC: &[&str] = &[
        // "This network" and unspecified.
        "0.0.0.0",
        "0.1.2.3",
        "::",
        // Loopback.
        "127.0.0.1",
        "127.255.0.1",
        "::1",
        // Private: RFC 1918 and unique local (RFC 4193).
        "10.0.0.1",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "fc00::1",
        "fd00:ec2::254",
        // Link-local, where cloud metadata services answer.
        "169.254.169.254",
        "169.254.0.1",
        "fe80::1",
        "febf::1",
        // Shared address space (CGNAT).
        "100.64.0.1",
        "100.127.255.255",
        // Documentation.
        "192.0.2.1",
        "198.51.100.1",
        "203.0.113.1",
        "2001:db8::1",
        // Multicast, reserved and broadcast.
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "ff02::1",
        "ff0e::1",
        // Protocol assignments and benchmarking.
        "192.0.0.1",
        "198.18.0.1",
        // Deprecated site-local, discard-only, Teredo.
        "fec0::1",
        "100::1",
        "2001::1",
        // IPv4 addresses above in IPv6 forms: mapped, compatible, NAT64,
        // 6to4.
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:10.0.0.1",
        "::ffff:0.0.0.0",
        "::127.0.0.1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b::7f00:1",
        "2002:7f00:1::1",
        "2002:c0a8:101::1",
    ];

    /// Public addresses, some at the edge of a range above.
    const PUBLIC: &[&str] = &[
        "1.1.1.1",
        "8.8.8.8",
        "100.63.255.255",
        "100.128.0.1",
        "169.253.255.255",
        "172.15.255.255",
        "172.32.0.1",
        "192.0.1.1",
        "192.169.0.1",
        "198.20.0.1",
        "223.255.255.254",
        "2606:4700:4700::1111",
        "2001:4860:4860::8888",
        "3fff:ffff::1",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
    ];

    #[test]
    fn only_public_unicast_addresses_are_public() {
        for a in NOT_PUBLIC {
            assert!(!is_public(a.parse().unwrap()), "{a}");
        }
        for a in PUBLIC {
            assert!(is_public(a.parse().unwrap()), "{a}");
        }
    }
}
