//! Gateway semantic validation, after Istio's webhook and CRD rules.

use super::{Gateway, Server, ServerTlsMode, ServerTlsSettings, TlsProtocol};
use crate::meta::ObjectMeta;
use crate::networking::shared::{
    cel_error, check, is_http_protocol, is_tls_protocol, validate_namespace_slash_host,
    validate_protocol, validate_unix_address,
};
use crate::validate::common::{is_dns1123_label, validate_ip_address, validate_port};
use crate::validate::Report;

/// Checks a Gateway like Istio's validation webhook.
pub fn validate(spec: &Gateway, meta: &ObjectMeta, report: &mut Report) {
    if !meta.name.is_empty() && !is_dns1123_label(&meta.name) {
        report.error(
            "metadata.name",
            format!("invalid gateway name: {:?}", meta.name),
        );
    }
    if spec.servers.is_empty() {
        report.error("spec.servers", "gateway must have at least one server");
    }
    let mut names: Vec<&str> = Vec::new();
    for (i, server) in spec.servers.iter().enumerate() {
        let path = format!("spec.servers[{i}]");
        validate_server(report, &path, server);
        let Some(port) = &server.port else {
            continue;
        };
        if names.contains(&port.name.as_str()) {
            report.error(
                format!("{path}.port.name"),
                format!(
                    "port names in servers must be unique: duplicate name {}",
                    port.name
                ),
            );
        }
        names.push(&port.name);
        if !is_http_protocol(&port.protocol)
            && server.tls.as_ref().is_some_and(|t| t.https_redirect)
        {
            report.warn(
                format!("{path}.tls.httpsRedirect"),
                "tls.httpsRedirect should only be used with http servers",
            );
        }
    }
}

fn validate_server(report: &mut Report, path: &str, server: &Server) {
    if server.hosts.is_empty() {
        report.error(
            format!("{path}.hosts"),
            "server config must contain at least one host",
        );
    }
    for (i, host) in server.hosts.iter().enumerate() {
        for e in validate_namespace_slash_host(host, true) {
            report.error(format!("{path}.hosts[{i}]"), e);
        }
    }
    let Some(port) = &server.port else {
        report.error(format!("{path}.port"), "Required value");
        return;
    };
    let bind = server.bind.as_deref().unwrap_or_default();
    let before = report.errors.len();
    if validate_protocol(&port.protocol).is_err() || port.protocol.is_empty() {
        report.error(
            format!("{path}.port.protocol"),
            format!("invalid protocol {:?}, supported protocols are HTTP, HTTP2, GRPC, GRPC-WEB, MONGO, REDIS, MYSQL, TCP", port.protocol),
        );
    }
    if port.number > 0 || !bind.starts_with("unix://") {
        check(
            report,
            &format!("{path}.port.number"),
            validate_port(port.number),
        );
    }
    if port.target_port.is_some_and(|t| t > 0) {
        report.error(
            format!("{path}.port.targetPort"),
            "targetPort has no impact on Gateways",
        );
    }
    if port.name.is_empty() {
        report.error(format!("{path}.port.name"), "port name must be set");
    }
    let port_ok = report.errors.len() == before;
    if let Some(addr) = bind.strip_prefix("unix://") {
        check(report, &format!("{path}.bind"), validate_unix_address(addr));
        if port.number != 0 {
            report.error(
                format!("{path}.port.number"),
                "port number must be 0 for unix domain socket",
            );
        }
    } else if !bind.is_empty() {
        check(report, &format!("{path}.bind"), validate_ip_address(bind));
    }
    if let Some(tls) = &server.tls {
        validate_server_tls(report, &format!("{path}.tls"), tls);
    }
    if port_ok {
        let tls_protocol = is_tls_protocol(&port.protocol);
        match &server.tls {
            None if tls_protocol => report.error(
                format!("{path}.tls"),
                "server must have TLS settings for HTTPS/TLS protocols",
            ),
            Some(tls) if !tls_protocol => {
                let passthrough = matches!(
                    tls.mode,
                    ServerTlsMode::Passthrough | ServerTlsMode::AutoPassthrough
                );
                let has = |o: &Option<String>| o.as_deref().is_some_and(|s| !s.is_empty());
                if is_http_protocol(&port.protocol) {
                    if !passthrough
                        || has(&tls.ca_certificates)
                        || has(&tls.private_key)
                        || has(&tls.server_certificate)
                    {
                        report.error(
                            format!("{path}.tls"),
                            "server cannot have TLS settings for plain text HTTP ports",
                        );
                    }
                } else {
                    report.error(
                        format!("{path}.tls"),
                        "server cannot have TLS settings for non HTTPS/TLS ports",
                    );
                }
            }
            _ => {}
        }
    }
}

/// Server TLS settings by mode; also used by Sidecar ingress listeners.
pub(crate) fn validate_server_tls(report: &mut Report, path: &str, tls: &ServerTlsSettings) {
    let has = |o: &Option<String>| o.as_deref().is_some_and(|s| !s.is_empty());
    // CRD CEL rules.
    if !tls.tls_certificates.is_empty() && !tls.credential_names.is_empty() {
        cel_error(
            report,
            path,
            "object",
            "only one of credentialNames or tlsCertificates can be set",
        );
    }
    if has(&tls.credential_name) && !tls.credential_names.is_empty() {
        cel_error(
            report,
            path,
            "object",
            "only one of credentialName or credentialNames can be set",
        );
    }
    for (field, len) in [
        ("credentialNames", tls.credential_names.len()),
        ("tlsCertificates", tls.tls_certificates.len()),
    ] {
        if len > 2 {
            report.error(
                format!("{path}.{field}"),
                format!("Too many: {len}: must have at most 2 items"),
            );
        }
    }
    if matches!(
        tls.min_protocol_version,
        Some(TlsProtocol::TlsV1_0 | TlsProtocol::TlsV1_1)
    ) && tls.cipher_suites.is_empty()
    {
        report.warn(
            format!("{path}.minProtocolVersion"),
            "TLS version below TLSV1_2 require setting compatible ciphers as by default they no longer include compatible ciphers.",
        );
    }
    if tls.mode == ServerTlsMode::IstioMutual {
        for (set, what) in [
            (has(&tls.server_certificate), "server certificate"),
            (has(&tls.private_key), "private key"),
            (has(&tls.ca_certificates), "CA bundle"),
            (!tls.tls_certificates.is_empty(), "tlsCertificates"),
            (has(&tls.credential_name), "credentialName"),
            (!tls.credential_names.is_empty(), "credentialNames"),
        ] {
            if set {
                report.error(
                    path,
                    format!("ISTIO_MUTUAL TLS cannot have associated {what}"),
                );
            }
        }
        return;
    }
    let mode_name = match tls.mode {
        ServerTlsMode::Passthrough => "PASSTHROUGH",
        ServerTlsMode::AutoPassthrough => "AUTO_PASSTHROUGH",
        _ => "",
    };
    if !mode_name.is_empty()
        && (has(&tls.ca_crl)
            || has(&tls.server_certificate)
            || has(&tls.private_key)
            || has(&tls.ca_certificates)
            || !tls.tls_certificates.is_empty()
            || has(&tls.credential_name)
            || !tls.credential_names.is_empty())
    {
        report.warn(
            path,
            format!("{mode_name} mode does not use certificates, they will be ignored"),
        );
    }
    let sources = [
        has(&tls.server_certificate) && has(&tls.private_key),
        has(&tls.credential_name),
        !tls.credential_names.is_empty(),
        !tls.tls_certificates.is_empty(),
    ];
    if sources.iter().filter(|s| **s).count() > 1 {
        report.error(path, "only one of credential_name, credential_names, server_certificate/private_key, tls_certificates should be specified");
    }
    let terminating = matches!(
        tls.mode,
        ServerTlsMode::Simple | ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual
    );
    if terminating && (has(&tls.credential_name) || !tls.credential_names.is_empty()) {
        return;
    }
    if terminating {
        let prefix = if tls.mode == ServerTlsMode::Simple {
            "SIMPLE TLS"
        } else {
            "MUTUAL TLS"
        };
        if prefix == "MUTUAL TLS" && !has(&tls.ca_certificates) {
            report.error(path, format!("{prefix} requires a client CA bundle"));
        }
        let certs: Vec<(bool, bool)> = if tls.tls_certificates.is_empty() {
            vec![(has(&tls.server_certificate), has(&tls.private_key))]
        } else {
            tls.tls_certificates
                .iter()
                .map(|c| (has(&c.server_certificate), has(&c.private_key)))
                .collect()
        };
        for (cert, key) in certs {
            if !cert {
                report.error(path, format!("{prefix} requires a server certificate"));
            }
            if !key {
                report.error(path, format!("{prefix} requires a private key"));
            }
        }
    }
    if has(&tls.ca_crl) {
        if has(&tls.credential_name) {
            report.error(
                path,
                "CRL is not supported with credentialName. CRL has to be specified in the credential",
            );
        }
        if tls.mode == ServerTlsMode::Simple {
            report.error(path, "CRL is not supported with SIMPLE TLS");
        }
    }
}
