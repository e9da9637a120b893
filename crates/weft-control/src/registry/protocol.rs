//! Istio's protocol selection for a port: the `protocol` field, else the port name's prefix.

use super::Protocol;

impl Protocol {
    /// Reads a port the way Istio does: an explicit `protocol` wins; otherwise the part of
    /// the name before the first `-` (`http-web`, `grpc`, `tcp-db`) names the protocol.
    pub fn of_port(protocol: &str, name: &str) -> Protocol {
        if !protocol.is_empty() {
            return Protocol::parse(protocol);
        }
        let prefix = name.split('-').next().unwrap_or_default();
        Protocol::parse(prefix)
    }

    /// Istio's protocol names, case-insensitively; databases and UDP proxy as plain TCP.
    pub fn parse(text: &str) -> Protocol {
        match text.to_ascii_lowercase().as_str() {
            "http" | "http_proxy" | "grpc-web" => Protocol::Http,
            "http2" => Protocol::Http2,
            "grpc" => Protocol::Grpc,
            "https" => Protocol::Https,
            "tls" => Protocol::Tls,
            "tcp" | "mongo" | "redis" | "mysql" | "udp" => Protocol::Tcp,
            _ => Protocol::Unknown,
        }
    }

    /// Upstream speaks HTTP/2 (Istio upgrades `http2` and `grpc` ports).
    pub fn is_http2(self) -> bool {
        matches!(self, Protocol::Http2 | Protocol::Grpc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_protocol_wins_over_name() {
        assert_eq!(Protocol::of_port("TCP", "http-web"), Protocol::Tcp);
        assert_eq!(Protocol::of_port("GRPC", "whatever"), Protocol::Grpc);
    }

    #[test]
    fn name_prefix_selects_protocol() {
        assert_eq!(Protocol::of_port("", "http-web"), Protocol::Http);
        assert_eq!(Protocol::of_port("", "grpc"), Protocol::Grpc);
        assert_eq!(Protocol::of_port("", "HTTP2-api"), Protocol::Http2);
        assert_eq!(Protocol::of_port("", "mongo-db"), Protocol::Tcp);
        assert_eq!(Protocol::of_port("", "web"), Protocol::Unknown);
        assert_eq!(Protocol::of_port("", "httpx"), Protocol::Unknown);
    }
}
