use super::*;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};

const LOCAL: &str = "spiffe://cluster.local/ns/default/sa/server";

/// A self-signed certificate with `sans` (URI or DNS) and a subject of `(type, value)`s.
fn cert(subject: &[(DnType, &str)], uris: &[&str], dns: &[&str]) -> CertificateDer<'static> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    for (t, v) in subject {
        params.distinguished_name.push(t.clone(), *v);
    }
    for u in uris {
        params
            .subject_alt_names
            .push(SanType::URI((*u).try_into().unwrap()));
    }
    for d in dns {
        params
            .subject_alt_names
            .push(SanType::DnsName((*d).try_into().unwrap()));
    }
    let key = KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().der().clone()
}

fn apply(
    forward: ForwardClientCert,
    details: CurrentClientCertDetails,
    peer: Option<&PeerCertificate>,
    incoming: Option<&str>,
) -> Option<String> {
    let mut headers = HeaderMap::new();
    if let Some(v) = incoming {
        headers.insert(XFCC.clone(), HeaderValue::from_str(v).unwrap());
    }
    let config = ClientCertConfig { forward, details };
    mutate_request(&mut headers, config, peer, Some(LOCAL));
    headers.get(&XFCC).map(|v| v.to_str().unwrap().to_string())
}

const ISTIO_INBOUND: CurrentClientCertDetails = CurrentClientCertDetails {
    subject: true,
    cert: false,
    chain: false,
    dns: true,
    uri: true,
};

#[test]
fn append_forward_adds_the_peer_after_what_came() {
    let der = cert(&[], &["spiffe://cluster.local/ns/default/sa/client"], &[]);
    let hash = hex(ring::digest::digest(&ring::digest::SHA256, &der).as_ref());
    let peer = PeerCertificate::new(vec![der]);
    let own = format!(
        "By={LOCAL};Hash={hash};Subject=\"\";URI=spiffe://cluster.local/ns/default/sa/client"
    );
    assert_eq!(
        apply(
            ForwardClientCert::AppendForward,
            ISTIO_INBOUND,
            Some(&peer),
            None
        ),
        Some(own.clone())
    );
    assert_eq!(
        apply(
            ForwardClientCert::AppendForward,
            ISTIO_INBOUND,
            Some(&peer),
            Some("By=spiffe://a;Hash=00")
        ),
        Some(format!("By=spiffe://a;Hash=00,{own}"))
    );
    // SANITIZE_SET drops what the client claimed.
    assert_eq!(
        apply(
            ForwardClientCert::SanitizeSet,
            ISTIO_INBOUND,
            Some(&peer),
            Some("By=spiffe://a;Hash=00")
        ),
        Some(own)
    );
}

#[test]
fn without_mutual_tls_only_always_forward_only_keeps_the_header() {
    let claimed = Some("By=spiffe://forged;Hash=00");
    for forward in [
        ForwardClientCert::Sanitize,
        ForwardClientCert::ForwardOnly,
        ForwardClientCert::AppendForward,
        ForwardClientCert::SanitizeSet,
    ] {
        assert_eq!(
            apply(forward, ISTIO_INBOUND, None, claimed),
            None,
            "{forward:?}"
        );
    }
    assert_eq!(
        apply(
            ForwardClientCert::AlwaysForwardOnly,
            ISTIO_INBOUND,
            None,
            claimed
        ),
        claimed.map(str::to_string)
    );
}

#[test]
fn with_mutual_tls_forward_only_keeps_and_sanitize_removes() {
    let peer = PeerCertificate::new(vec![cert(&[], &[], &[])]);
    let claimed = Some("By=spiffe://a;Hash=00");
    assert_eq!(
        apply(
            ForwardClientCert::ForwardOnly,
            ISTIO_INBOUND,
            Some(&peer),
            claimed
        ),
        claimed.map(str::to_string)
    );
    assert_eq!(
        apply(
            ForwardClientCert::Sanitize,
            ISTIO_INBOUND,
            Some(&peer),
            claimed
        ),
        None
    );
}

#[test]
fn every_detail_in_envoys_order_and_encoding() {
    let der = cert(
        &[
            (DnType::CountryName, "US"),
            (DnType::OrganizationName, "Acme, Inc."),
            (DnType::CommonName, "client"),
        ],
        &["spiffe://td/ns/a/sa/b", "https://example.com/x"],
        &["client.example.com", "alt.example.com"],
    );
    let peer = PeerCertificate::new(vec![der.clone(), der.clone()]);
    let all = CurrentClientCertDetails {
        subject: true,
        cert: true,
        chain: true,
        dns: true,
        uri: true,
    };
    let got = apply(ForwardClientCert::SanitizeSet, all, Some(&peer), None).unwrap();
    let keys: Vec<&str> = got
        .split(';')
        .map(|kv| kv.split('=').next().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["By", "Hash", "Cert", "Chain", "Subject", "URI", "URI", "DNS", "DNS"]
    );
    // RFC 2253: the last RDN first, specials escaped.
    assert!(
        got.contains(";Subject=\"CN=client,O=Acme\\, Inc.,C=US\";"),
        "{got}"
    );
    assert!(got.contains(";URI=spiffe://td/ns/a/sa/b;URI=https://example.com/x;"));
    assert!(got.ends_with(";DNS=client.example.com;DNS=alt.example.com"));
    let pem_one = certificate_pem(&der);
    let encoded = url_encode(&pem_one);
    assert!(
        encoded.starts_with("-----BEGIN%20CERTIFICATE-----%0A"),
        "{encoded}"
    );
    assert!(!encoded.contains(['/', '+', '=', '\n', ' ']));
    assert!(got.contains(&format!(";Cert=\"{encoded}\";")));
    assert!(got.contains(&format!(";Chain=\"{encoded}{encoded}\";")));
}

#[test]
fn a_certificate_without_uri_sans_still_names_the_key() {
    let peer = PeerCertificate::new(vec![cert(&[], &[], &["only.dns"])]);
    let got = apply(
        ForwardClientCert::SanitizeSet,
        ISTIO_INBOUND,
        Some(&peer),
        None,
    )
    .unwrap();
    assert!(got.ends_with(";Subject=\"\";URI=;DNS=only.dns"), "{got}");
}
