//! Fuzzes weft-proxy's protocol detection: the first bytes of a downstream connection
//! (TLS ClientHello with SNI/ALPN, HTTP/1.1, h2c preface). Any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for (tls, http) in [(true, true), (true, false), (false, true)] {
        let _ = weft_proxy::listener::inspector::parse(data, tls, http);
    }
});
