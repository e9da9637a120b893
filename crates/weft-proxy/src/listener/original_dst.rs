//! Original destination of a redirected connection (iptables REDIRECT, as istio-iptables
//! sets up): SO_ORIGINAL_DST, and which listener serves it (`use_original_dst`).

use crate::model::Listener;
use nix::sys::socket::{getsockopt, sockopt};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsFd;

/// The address the client connected to before the kernel redirected the connection; an
/// error when it was not redirected and conntrack knows nothing of it (no iptables).
pub fn original_dst<S: AsFd>(socket: &S, local: SocketAddr) -> io::Result<SocketAddr> {
    let fd = socket.as_fd();
    // The option is per address family: an IPv4-mapped socket still asks the IPv6 table.
    if local.is_ipv4() {
        let sin = getsockopt(&fd, sockopt::OriginalDst).map_err(io::Error::from)?;
        let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
        Ok(SocketAddr::V4(SocketAddrV4::new(
            ip,
            u16::from_be(sin.sin_port),
        )))
    } else {
        let sin6 = getsockopt(&fd, sockopt::Ip6tOriginalDst).map_err(io::Error::from)?;
        let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
        Ok(SocketAddr::V6(SocketAddrV6::new(
            ip,
            u16::from_be(sin6.sin6_port),
            sin6.sin6_flowinfo,
            sin6.sin6_scope_id,
        )))
    }
}

/// Where a `use_original_dst` listener sends a connection to `dst`, as Envoy does: the
/// listener bound (or not bound) on exactly `dst`, else the one on the wildcard address of
/// `dst`'s family with its port. None: the accepting listener's own chains serve it.
pub fn handoff<'a, I>(listeners: I, dst: SocketAddr) -> Option<&'a Listener>
where
    I: IntoIterator<Item = &'a Listener>,
{
    let wildcard = SocketAddr::new(
        match dst.ip() {
            IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        },
        dst.port(),
    );
    let mut fallback = None;
    for l in listeners {
        if l.address == dst {
            return Some(l);
        }
        if l.address == wildcard && fallback.is_none() {
            fallback = Some(l);
        }
    }
    fallback
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FilterChain, FilterChainMatch, NetworkFilter};

    fn listener(name: &str, address: &str, bind_to_port: bool) -> Listener {
        Listener {
            name: name.into(),
            address: address.parse().unwrap(),
            filter_chains: vec![FilterChain {
                name: String::new(),
                matcher: FilterChainMatch::default(),
                filter: NetworkFilter::TcpProxy {
                    stat_prefix: String::new(),
                    clusters: Vec::new(),
                    rbac: Vec::new(),
                },
                tls: None,
            }],
            tls_inspector: false,
            http_inspector: false,
            bind_to_port,
            use_original_dst: false,
            original_dst_filter: false,
        }
    }

    fn target(listeners: &[Listener], dst: &str) -> Option<String> {
        handoff(listeners, dst.parse().unwrap()).map(|l| l.name.clone())
    }

    #[test]
    fn exact_address_then_wildcard_port_else_own_chains() {
        let listeners = vec![
            listener("virtualOutbound", "0.0.0.0:15001", true),
            listener("0.0.0.0_9080", "0.0.0.0:9080", false),
            listener("10.0.0.7_9080", "10.0.0.7:9080", false),
            listener("[::]_8080", "[::]:8080", false),
        ];
        assert_eq!(
            target(&listeners, "10.0.0.7:9080").as_deref(),
            Some("10.0.0.7_9080")
        );
        assert_eq!(
            target(&listeners, "10.0.0.8:9080").as_deref(),
            Some("0.0.0.0_9080")
        );
        // No listener for the port: the accepting listener's chains (passthrough) decide.
        assert_eq!(target(&listeners, "93.184.216.34:443"), None);
        // The wildcard is the destination's family's.
        assert_eq!(target(&listeners, "10.0.0.8:8080"), None);
        assert_eq!(
            target(&listeners, "[fd00::1]:8080").as_deref(),
            Some("[::]_8080")
        );
        // Connecting to the capture port itself lands on the capture listener.
        assert_eq!(
            target(&listeners, "127.0.0.1:15001").as_deref(),
            Some("virtualOutbound")
        );
    }

    #[tokio::test]
    async fn plain_loopback_connection_has_no_redirect() {
        let server = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = server.accept().await.unwrap();
        // Without iptables the kernel either knows nothing (an error, which the listener
        // treats as "not redirected") or, with conntrack loaded, reports the address the
        // client really used: never anything else.
        match original_dst(&accepted, accepted.local_addr().unwrap()) {
            Ok(dst) => assert_eq!(dst, addr),
            Err(e) => assert!(e.raw_os_error().is_some(), "{e}"),
        }
    }
}
