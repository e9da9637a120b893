//! The resolver against a real HTTP server: first fetch, cache, fake keys while a URI is
//! down, refresh that notices new keys, OpenID discovery.

use super::*;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A tiny HTTP/1.1 server: `GET /jwks` answers the current keys (or 503 when `None`),
/// `GET /.well-known/openid-configuration` points at `/jwks`.
pub(crate) struct KeyServer {
    pub base: String,
    pub keys: Arc<Mutex<Option<String>>>,
    pub hits: Arc<AtomicUsize>,
}

impl KeyServer {
    pub(crate) fn start(keys: &str) -> KeyServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(Some(keys.to_string())));
        let hits = Arc::new(AtomicUsize::new(0));
        let (s, h, b) = (state.clone(), hits.clone(), base.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut line = String::new();
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                // Drain the request headers.
                let mut header = String::new();
                while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                    header.clear();
                }
                h.fetch_add(1, Ordering::SeqCst);
                let body = if line.contains("/.well-known/openid-configuration") {
                    Some(format!(r#"{{"issuer":"{b}","jwks_uri":"{b}/jwks"}}"#))
                } else {
                    s.lock().unwrap().clone()
                };
                let resp = match body {
                    Some(body) => format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    ),
                    None => "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_string(),
                };
                let _ = conn.write_all(resp.as_bytes());
            }
        });
        KeyServer {
            base,
            keys: state,
            hits,
        }
    }

    pub(crate) fn uri(&self) -> String {
        format!("{}/jwks", self.base)
    }
}

const KEYS_A: &str = r#"{"keys":[{"kty":"oct","kid":"a","k":"c2VjcmV0LWE"}]}"#;
const KEYS_B: &str = r#"{"keys":[{"kty":"oct","kid":"b","k":"c2VjcmV0LWI"}]}"#;

#[test]
fn first_use_fetches_then_the_cache_answers() {
    let server = KeyServer::start(KEYS_A);
    let r = JwksResolver::default();
    let source = Source::Uri(server.uri());
    assert_eq!(r.resolve(&source, DEFAULT_TIMEOUT), KEYS_A);
    assert_eq!(r.resolve(&source, DEFAULT_TIMEOUT), KEYS_A);
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);
}

#[test]
fn an_unreachable_uri_gets_keys_nobody_holds_until_it_answers() {
    let server = KeyServer::start(KEYS_A);
    *server.keys.lock().unwrap() = None;
    let r = JwksResolver::default();
    let source = Source::Uri(server.uri());
    assert_eq!(r.resolve(&source, DEFAULT_TIMEOUT), FAKE_JWKS);
    // Not refetched on every translation: the background retry does that.
    assert_eq!(r.resolve(&source, DEFAULT_TIMEOUT), FAKE_JWKS);
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);
    *server.keys.lock().unwrap() = Some(KEYS_A.into());
    std::thread::sleep(RETRY_AFTER_FAILURE);
    assert!(r.refresh_due(), "the retry brings the keys: a push is due");
    assert_eq!(r.resolve(&source, DEFAULT_TIMEOUT), KEYS_A);
    // The fake set is a JWKS Envoy and weft-proxy accept.
    let v: serde_json::Value = serde_json::from_str(FAKE_JWKS).unwrap();
    assert_eq!(v["keys"][0]["kty"], "RSA");
}

#[test]
fn refresh_reports_changed_keys_only() {
    let server = KeyServer::start(KEYS_A);
    let r = JwksResolver::new(Duration::from_millis(50));
    let source = Source::Uri(server.uri());
    r.resolve(&source, DEFAULT_TIMEOUT);
    std::thread::sleep(Duration::from_millis(60));
    assert!(!r.refresh_due(), "same keys: nothing to push");
    *server.keys.lock().unwrap() = Some(KEYS_B.into());
    std::thread::sleep(Duration::from_millis(60));
    assert!(r.refresh_due());
    assert_eq!(r.resolve(&source, DEFAULT_TIMEOUT), KEYS_B);
    // A failed refresh keeps the keys it had.
    *server.keys.lock().unwrap() = None;
    std::thread::sleep(Duration::from_millis(60));
    assert!(!r.refresh_due());
    assert_eq!(r.resolve(&source, DEFAULT_TIMEOUT), KEYS_B);
}

#[test]
fn an_issuer_without_uri_is_discovered() {
    let server = KeyServer::start(KEYS_A);
    let r = JwksResolver::default();
    assert_eq!(
        r.resolve(&Source::Issuer(server.base.clone()), DEFAULT_TIMEOUT),
        KEYS_A
    );
}

#[test]
fn what_is_not_a_key_set_is_refused() {
    let server = KeyServer::start(r#"{"no":"keys"}"#);
    let err = fetch(&Source::Uri(server.uri()), DEFAULT_TIMEOUT).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: not a JWKS (a JSON object with a \"keys\" array)",
            server.uri()
        )
    );
}
