//! Listener filters that look at a connection's first bytes without consuming them: the
//! TLS inspector (ClientHello: SNI and ALPN) and the HTTP inspector (HTTP/1.1 or h2c).

use std::time::Duration;
use tokio::net::TcpStream;

/// How long to wait for the bytes the inspectors need; a client that says nothing gets
/// its chain chosen on what is known by then (Envoy's `continue_on_listener_filters_timeout`).
const INSPECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A ClientHello larger than this is not waited for.
const MAX_PEEK: usize = 16 * 1024 + 5;
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the inspectors found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Inspected {
    pub tls: bool,
    pub server_name: Option<String>,
    pub alpn: Vec<String>,
    /// `http/1.1` or `h2c` on plaintext HTTP.
    pub http: Option<&'static str>,
}

/// Peeks at `stream` until the ClientHello (or enough plaintext) is there.
pub async fn inspect(stream: &TcpStream, tls: bool, http: bool) -> Inspected {
    let mut buf = vec![0u8; MAX_PEEK];
    let deadline = tokio::time::Instant::now() + INSPECT_TIMEOUT;
    let mut seen = 0;
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(Ok(n)) => n,
            _ => return Inspected::default(),
        };
        let data = &buf[..n];
        match parse(data, tls, http) {
            Some(found) => return found,
            None if n == 0 || n == MAX_PEEK || tokio::time::Instant::now() >= deadline => {
                return Inspected::default()
            }
            // More bytes are on their way: peek returns at once with what is there, so
            // pause a moment instead of spinning.
            None => {
                if n == seen {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                seen = n;
            }
        }
    }
}

/// Classifies the first bytes of a connection (TLS ClientHello, HTTP/1.1, h2c prior
/// knowledge); `None` means more bytes are needed. Public so that it can be fuzzed.
pub fn parse(data: &[u8], tls: bool, http: bool) -> Option<Inspected> {
    if data.is_empty() {
        return None;
    }
    if tls && data[0] == 0x16 {
        return client_hello(data);
    }
    if http {
        let n = data.len().min(H2_PREFACE.len());
        if data[..n] == H2_PREFACE[..n] {
            if n < H2_PREFACE.len() {
                return None;
            }
            return Some(Inspected {
                http: Some("h2c"),
                ..Default::default()
            });
        }
        // Any request line that is not the HTTP/2 preface: HTTP/1.x.
        if !data.contains(&b'\n') && data.len() < 8 * 1024 {
            return None;
        }
        let line = data.split(|b| *b == b'\n').next().unwrap_or_default();
        let is_http1 = line.windows(7).any(|w| w == b"HTTP/1.");
        return Some(Inspected {
            http: is_http1.then_some("http/1.1"),
            ..Default::default()
        });
    }
    Some(Inspected::default())
}

/// Parses a TLS record holding a ClientHello; `Some(tls: true, ..)` even when it is
/// malformed past the record header, so the connection still counts as TLS.
fn client_hello(data: &[u8]) -> Option<Inspected> {
    if data.len() < 5 {
        return None;
    }
    let record_len = usize::from(u16::from_be_bytes([data[3], data[4]]));
    if data.len() < 5 + record_len {
        return None;
    }
    let mut found = Inspected {
        tls: true,
        ..Default::default()
    };
    if let Some((sni, alpn)) = hello_extensions(&data[5..5 + record_len]) {
        found.server_name = sni;
        found.alpn = alpn;
    }
    Some(found)
}

/// SNI and ALPN of a handshake message (ClientHello); None when malformed.
fn hello_extensions(msg: &[u8]) -> Option<(Option<String>, Vec<String>)> {
    let mut r = Reader(msg);
    if r.u8()? != 1 {
        return None;
    }
    r.take(3)?; // handshake length
    r.take(2 + 32)?; // version, random
    let session = usize::from(r.u8()?);
    r.take(session)?;
    let suites = r.u16()?;
    r.take(suites)?;
    let compression = usize::from(r.u8()?);
    r.take(compression)?;
    let ext_len = r.u16()?;
    let mut exts = Reader(r.take(ext_len)?);
    let (mut sni, mut alpn) = (None, Vec::new());
    while !exts.0.is_empty() {
        let kind = exts.u16()?;
        let len = exts.u16()?;
        let mut body = Reader(exts.take(len)?);
        match kind {
            0 => {
                let n = body.u16()?;
                let mut list = Reader(body.take(n)?);
                while !list.0.is_empty() {
                    let name_type = list.u8()?;
                    let n = list.u16()?;
                    let name = list.take(n)?;
                    if name_type == 0 {
                        sni = Some(String::from_utf8_lossy(name).to_lowercase());
                    }
                }
            }
            16 => {
                let n = body.u16()?;
                let mut list = Reader(body.take(n)?);
                while !list.0.is_empty() {
                    let len = usize::from(list.u8()?);
                    alpn.push(String::from_utf8_lossy(list.take(len)?).into_owned());
                }
            }
            _ => {}
        }
    }
    Some((sni, alpn))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ClientHello record with SNI `name` and ALPN `h2`, `http/1.1`.
    fn hello(name: &str) -> Vec<u8> {
        let mut sni = vec![0u8];
        sni.extend((name.len() as u16).to_be_bytes());
        sni.extend(name.as_bytes());
        let mut sni_ext = (sni.len() as u16).to_be_bytes().to_vec();
        sni_ext.extend(sni);
        let alpn_list = b"\x02h2\x08http/1.1";
        let mut alpn_ext = (alpn_list.len() as u16).to_be_bytes().to_vec();
        alpn_ext.extend(alpn_list);
        let mut exts = Vec::new();
        for (kind, body) in [(0u16, sni_ext), (16u16, alpn_ext)] {
            exts.extend(kind.to_be_bytes());
            exts.extend((body.len() as u16).to_be_bytes());
            exts.extend(body);
        }
        let mut body = vec![3, 3];
        body.extend([0u8; 32]);
        body.push(0); // session id
        body.extend([0, 2, 0x13, 0x01]); // one cipher suite
        body.extend([1, 0]); // null compression
        body.extend((exts.len() as u16).to_be_bytes());
        body.extend(exts);
        let mut msg = vec![1];
        msg.extend(&(body.len() as u32).to_be_bytes()[1..]);
        msg.extend(body);
        let mut record = vec![0x16, 3, 1];
        record.extend((msg.len() as u16).to_be_bytes());
        record.extend(msg);
        record
    }

    #[test]
    fn client_hello_gives_sni_and_alpn_once_complete() {
        let record = hello("A.Example.com");
        assert_eq!(parse(&record[..20], true, false), None);
        let found = parse(&record, true, false).unwrap();
        assert!(found.tls);
        assert_eq!(found.server_name.as_deref(), Some("a.example.com"));
        assert_eq!(found.alpn, vec!["h2", "http/1.1"]);
    }

    #[test]
    fn plaintext_http_versions() {
        assert_eq!(parse(b"PRI * HTTP/2.0\r\n", false, true), None);
        assert_eq!(parse(H2_PREFACE, false, true).unwrap().http, Some("h2c"));
        let h1 = parse(b"GET / HTTP/1.1\r\nhost: x\r\n", true, true).unwrap();
        assert_eq!((h1.tls, h1.http), (false, Some("http/1.1")));
        assert_eq!(parse(b"hello\n", false, true).unwrap().http, None);
    }
}
