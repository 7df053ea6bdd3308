//! TLS of the client commands: which scheme an `--api` address means and
//! which server certificate is trusted.
//!
//! - `--api https://IP:PORT`: TLS, trusting the system's roots (a node
//!   serving `api.tls.cert_file` from a public or company CA);
//! - `--cacert FILE` (`AMOSKYS_CACERT`): TLS trusting only the certificates
//!   in FILE, e.g. a node's self-signed `<data_dir>/api-cert.pem`;
//! - `--pin SHA256` (`AMOSKYS_PIN`): TLS accepting only the certificate with
//!   that SHA-256 fingerprint (`amoskys status` prints it), whatever its
//!   issuer and names: for an address the certificate does not name.
//!
//! With `--cacert` or `--pin` a bare `IP:PORT` means `https://`; an explicit
//! `http://` is refused with them, so a pin is never silently ignored.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use amoskys_node::tls::{fingerprint, parse_fingerprint, provider};

/// The TLS options of every client command.
#[derive(Debug, Clone, Default, Args)]
pub struct TlsArgs {
    /// Trust only the certificates in this PEM file for the node's API
    /// (e.g. its <data_dir>/api-cert.pem); implies https://.
    #[arg(long = "cacert", value_name = "FILE", env = "AMOSKYS_CACERT")]
    pub cacert: Option<PathBuf>,
    /// Accept only the API certificate with this SHA-256 fingerprint
    /// (`amoskys status` prints it); implies https://.
    #[arg(long = "pin", value_name = "SHA256", env = "AMOSKYS_PIN")]
    pub pin: Option<String>,
}

impl TlsArgs {
    /// The options from the environment alone (commands without flags).
    pub(super) fn from_env() -> Self {
        Self {
            cacert: std::env::var_os("AMOSKYS_CACERT")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            pin: std::env::var("AMOSKYS_PIN").ok().filter(|v| !v.is_empty()),
        }
    }
}

/// The base URL (`scheme://IP:PORT`) of `addr` and an HTTP client that
/// trusts what `tls` says. The error names the option that was wrong.
pub(super) fn client(addr: &str, tls: &TlsArgs) -> Result<(String, reqwest::Client), String> {
    let (scheme, host) = if let Some(h) = addr.strip_prefix("https://") {
        ("https", h)
    } else if let Some(h) = addr.strip_prefix("http://") {
        if tls.cacert.is_some() || tls.pin.is_some() {
            return Err(format!(
                "--api {addr} is plain http, but --cacert or --pin (or AMOSKYS_CACERT, \
                 AMOSKYS_PIN) asks for TLS; use https://{h}"
            ));
        }
        ("http", h)
    } else if tls.cacert.is_some() || tls.pin.is_some() {
        ("https", addr)
    } else {
        ("http", addr)
    };
    let host = host.trim_end_matches('/');
    let base = format!("{scheme}://{host}");
    let builder = reqwest::Client::builder();
    let builder = if scheme == "http" {
        // No TLS will be used: trust nothing, so a host without system CA
        // certificates (a minimal container) still builds the client.
        builder.tls_backend_preconfigured(plain()?)
    } else if let Some(pin) = &tls.pin {
        let fingerprint = parse_fingerprint(pin).ok_or_else(|| {
            format!(
                "--pin {pin:?} is not a SHA-256 fingerprint (64 hex characters, colons allowed)"
            )
        })?;
        builder.tls_backend_preconfigured(pinned(fingerprint)?)
    } else if let Some(path) = &tls.cacert {
        builder.tls_backend_preconfigured(trusting(path)?)
    } else {
        builder
    };
    let http = builder
        .build()
        .map_err(|e| format!("cannot set up the HTTP client for {base}: {e}"))?;
    Ok((base, http))
}

/// The address and TLS options to reach the node a configuration
/// describes: `https://` when `api.tls.enabled`, trusting its self-signed
/// `<data_dir>/api-cert.pem` unless `given` names what to trust; an
/// unspecified listen address (`0.0.0.0`) is reached on loopback.
pub(super) fn for_config(config: &amoskys_node::Config, given: TlsArgs) -> (String, TlsArgs) {
    let addr = match config.api_listen() {
        Ok(a) if a.ip().is_unspecified() => {
            let lo = if a.is_ipv4() {
                std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
            } else {
                std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
            };
            std::net::SocketAddr::new(lo, a.port()).to_string()
        }
        Ok(a) => a.to_string(),
        Err(_) => config.api.listen.clone(),
    };
    let tls = &config.api.tls;
    if !tls.enabled {
        return (addr, given);
    }
    let mut args = given;
    if args.cacert.is_none() && args.pin.is_none() && tls.cert_file.is_empty() {
        args.cacert = Some(
            config
                .data_dir()
                .join(amoskys_node::tls::SELF_SIGNED_CERT_FILE),
        );
    }
    (format!("https://{addr}"), args)
}

/// A request error's cause, with what to do when it is the node's
/// certificate that was not trusted.
pub(super) fn explain(cause: String) -> String {
    if cause.contains("invalid peer certificate") || cause.contains("not the pinned") {
        format!(
            "{cause}\n  the node's TLS certificate is not trusted: pass --cacert FILE (a \
             self-signed node's <data_dir>/api-cert.pem) or --pin SHA256 (amoskys status on \
             the node's host prints it)"
        )
    } else {
        cause
    }
}

/// A rustls client config over HTTP/1.1.
fn finish(mut config: rustls::ClientConfig) -> rustls::ClientConfig {
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// A config that trusts no certificate, for a client that speaks plain
/// HTTP only.
pub(super) fn plain() -> Result<rustls::ClientConfig, String> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up the HTTP client: {e}"))?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    Ok(finish(config))
}

/// Trusts only the certificates of a PEM file.
fn trusting(path: &std::path::Path) -> Result<rustls::ClientConfig, String> {
    amoskys_node::tls::client_trusting(path)
        .map(finish)
        .map_err(|why| format!("--cacert {}: {why}", path.display()))
}

/// Accepts only the certificate with `fingerprint`.
fn pinned(fingerprint: String) -> Result<rustls::ClientConfig, String> {
    let provider = provider();
    let verifier = Pinned {
        fingerprint,
        algorithms: provider.signature_verification_algorithms,
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("--pin: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(finish(config))
}

/// A verifier that trusts one certificate by its SHA-256 fingerprint; the
/// handshake signatures are still checked against that certificate's key.
#[derive(Debug)]
struct Pinned {
    fingerprint: String,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = fingerprint(end_entity);
        if got == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the node's certificate has fingerprint {got}, not the pinned {}",
                self.fingerprint
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_follows_the_address_and_the_options() {
        let none = TlsArgs::default();
        let pin = TlsArgs {
            pin: Some("ab".repeat(32)),
            ..TlsArgs::default()
        };
        let base = |addr: &str, tls: &TlsArgs| client(addr, tls).map(|(b, _)| b);
        assert_eq!(
            base("127.0.0.1:7300", &none).as_deref(),
            Ok("http://127.0.0.1:7300")
        );
        assert_eq!(
            base("https://127.0.0.1:7300/", &none).as_deref(),
            Ok("https://127.0.0.1:7300")
        );
        assert_eq!(
            base("127.0.0.1:7300", &pin).as_deref(),
            Ok("https://127.0.0.1:7300")
        );
        assert!(base("http://127.0.0.1:7300", &pin).is_err());
        let bad_pin = TlsArgs {
            pin: Some("abc".into()),
            ..TlsArgs::default()
        };
        let err = base("127.0.0.1:7300", &bad_pin).expect_err("a bad pin is refused");
        assert!(err.contains("--pin"), "{err}");
        let missing = TlsArgs {
            cacert: Some("/nonexistent/api-cert.pem".into()),
            ..TlsArgs::default()
        };
        let err = base("127.0.0.1:7300", &missing).expect_err("a missing file is refused");
        assert!(err.contains("--cacert /nonexistent/api-cert.pem"), "{err}");
    }
}
