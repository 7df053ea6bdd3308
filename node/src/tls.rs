//! TLS for the node API (`[api.tls]`).
//!
//! With `cert_file` and `key_file` the node serves that chain. Without them
//! it serves a self-signed certificate made from its own ed25519 key, with
//! the listen address, `127.0.0.1`, `::1`, `localhost`, the node name and
//! `api.tls.names` as subject alternative names. That certificate is
//! deterministic (fixed validity, serial from the key), so its SHA-256
//! fingerprint stays the same across restarts while the key and names do;
//! it is written to [`SELF_SIGNED_CERT_FILE`] in the data directory for
//! clients to trust (`curl --cacert`), and the fingerprint is shown in
//! `GET /api/v1/node` and `amoskys status` for pinning.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ed25519_dalek::pkcs8::EncodePrivateKey;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

use crate::config::TlsSection;
use crate::identity::Identity;

/// File name of the self-signed API certificate inside the data directory.
pub const SELF_SIGNED_CERT_FILE: &str = "api-cert.pem";

/// Why the API's TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {key} {path}: {source}")]
    Read {
        key: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{key} {path}: {reason}")]
    Pem {
        key: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("cannot make the self-signed API certificate: {0}")]
    Generate(String),
    #[error("cannot write the API certificate {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the API certificate and key do not make a TLS configuration (api.tls): {0}")]
    Config(String),
}

/// The API's TLS, ready to serve.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the served (leaf) certificate's DER, lowercase hex.
    pub fingerprint: String,
    /// Where the self-signed certificate was written; `None` with files.
    pub cert_file: Option<PathBuf>,
}

/// SHA-256 of a certificate's DER as 64 lowercase hex characters.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// A fingerprint as people write it (`AB:CD:..`, `sha256:abcd..`, any case)
/// in the form of [`fingerprint`]; `None` when it is not 32 bytes of hex.
pub fn parse_fingerprint(text: &str) -> Option<String> {
    let t = text.trim();
    let t = t
        .strip_prefix("sha256:")
        .or_else(|| t.strip_prefix("SHA256:"))
        .unwrap_or(t);
    let hex_only: String = t.chars().filter(|c| *c != ':').collect();
    let bytes = hex::decode(hex_only).ok()?;
    (bytes.len() == 32).then(|| hex::encode(bytes))
}

/// The crypto the node's TLS uses (one provider, named, whatever else the
/// dependency tree enables).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A TLS client trusting only the CA certificates of the PEM file `path`;
/// the error says what is wrong with the file.
pub fn client_trusting(path: &Path) -> Result<rustls::ClientConfig, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("not a PEM certificate file: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("a certificate cannot be trusted: {e}"))?;
    }
    if roots.is_empty() {
        return Err("holds no CERTIFICATE block".into());
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The API's TLS for `tls`, or `None` when it is off.
pub fn server(
    tls: &TlsSection,
    identity: &Identity,
    data_dir: &Path,
    listen: SocketAddr,
    node_name: &str,
) -> Result<Option<ServerTls>, TlsError> {
    if !tls.enabled {
        return Ok(None);
    }
    let (chain, key, cert_file) = if tls.cert_file.is_empty() {
        if listen.ip().is_unspecified() && tls.names.is_empty() {
            tracing::warn!(
                listen = %listen,
                "the self-signed api certificate names only loopback and the node name: \
                 list the addresses clients use in api.tls.names, or have them pin the fingerprint"
            );
        }
        let (der, pem) = self_signed(identity, &names(listen, node_name, &tls.names))?;
        let path = data_dir.join(SELF_SIGNED_CERT_FILE);
        write_public(&path, pem.as_bytes())?;
        let key = pkcs8(identity)?;
        (vec![der], key, Some(path))
    } else {
        let (chain, key) = load_files(&tls.cert_file, &tls.key_file)?;
        (chain, key, None)
    };
    let fingerprint = fingerprint(chain.first().map_or(&[][..], |c| c.as_ref()));
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    // The API speaks HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(ServerTls {
        config: Arc::new(config),
        fingerprint,
        cert_file,
    }))
}

/// The names of a self-signed certificate: the listen address (unless it
/// is unspecified), loopback, `localhost`, the node name if it is a DNS
/// name, and the configured extras; no duplicates.
pub fn names(listen: SocketAddr, node_name: &str, extra: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |n: String| {
        if !out.contains(&n) {
            out.push(n);
        }
    };
    if !listen.ip().is_unspecified() {
        add(listen.ip().to_string());
    }
    add(IpAddr::V4(Ipv4Addr::LOCALHOST).to_string());
    add(IpAddr::V6(Ipv6Addr::LOCALHOST).to_string());
    add("localhost".to_owned());
    if crate::config::is_dns_name(node_name) {
        add(node_name.to_ascii_lowercase());
    }
    for n in extra {
        add(n.clone());
    }
    out
}

/// The node key as the PKCS#8 DER rustls and rcgen read.
fn pkcs8(identity: &Identity) -> Result<PrivateKeyDer<'static>, TlsError> {
    let doc = identity
        .signing_key()
        .to_pkcs8_der()
        .map_err(|e| TlsError::Generate(format!("cannot encode the node key: {e}")))?;
    Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        doc.as_bytes().to_vec(),
    )))
}

/// A self-signed certificate of the node key for `names` (IP addresses or
/// DNS names): its DER and PEM.
pub fn self_signed(
    identity: &Identity,
    names: &[String],
) -> Result<(CertificateDer<'static>, String), TlsError> {
    let generate = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let PrivateKeyDer::Pkcs8(key_der) = pkcs8(identity)? else {
        return Err(TlsError::Generate("the node key is not PKCS#8".into()));
    };
    let key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&key_der, &rcgen::PKCS_ED25519)
        .map_err(generate)?;
    let mut params = rcgen::CertificateParams::default();
    for n in names {
        let san = match n.parse::<IpAddr>() {
            Ok(ip) => rcgen::SanType::IpAddress(ip),
            Err(_) => rcgen::SanType::DnsName(
                rcgen::Ia5String::try_from(n.as_str())
                    .map_err(|e| TlsError::Generate(format!("name {n:?}: {e}")))?,
            ),
        };
        params.subject_alt_names.push(san);
    }
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(
        rcgen::DnType::CommonName,
        format!("amoskys node {}", identity.peer_id()),
    );
    params.distinguished_name = dn;
    // Fixed validity and a serial from the key: the same key and names give
    // the same certificate, so a pinned fingerprint survives restarts.
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(4096, 1, 1);
    let digest = Sha256::digest(identity.signing_key().verifying_key().as_bytes());
    let mut serial = digest[..16].to_vec();
    serial[0] &= 0x7f;
    serial[0] |= 0x01;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.self_signed(&key).map_err(generate)?;
    Ok((cert.der().clone(), cert.pem()))
}

/// A certificate chain and its key from PEM files.
fn load_files(
    cert_file: &str,
    key_file: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let cert_path = PathBuf::from(cert_file);
    let key_path = PathBuf::from(key_file);
    let cert_pem = std::fs::read(&cert_path).map_err(|source| TlsError::Read {
        key: "api.tls.cert_file",
        path: cert_path.clone(),
        source,
    })?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            key: "api.tls.cert_file",
            path: cert_path.clone(),
            reason: format!("not a PEM certificate chain: {e}"),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Pem {
            key: "api.tls.cert_file",
            path: cert_path,
            reason: "holds no CERTIFICATE block".into(),
        });
    }
    if let Ok(meta) = std::fs::metadata(&key_path)
        && meta.permissions().mode() & 0o004 != 0
    {
        tracing::warn!(
            path = %key_path.display(),
            mode = format!("{:04o}", meta.permissions().mode() & 0o777),
            "api.tls.key_file is readable by every local account (chmod o-r)"
        );
    }
    let key_pem = std::fs::read(&key_path).map_err(|source| TlsError::Read {
        key: "api.tls.key_file",
        path: key_path.clone(),
        source,
    })?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Pem {
        key: "api.tls.key_file",
        path: key_path,
        reason: format!("not a PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"),
    })?;
    Ok((chain, key))
}

/// Writes a public file atomically (mode 0644).
fn write_public(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    let err = |source| TlsError::Write {
        path: path.to_owned(),
        source,
    };
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_in_every_common_form() {
        let hex = "ab".repeat(32);
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(parse_fingerprint(&hex).as_deref(), Some(hex.as_str()));
        assert_eq!(parse_fingerprint(&colons).as_deref(), Some(hex.as_str()));
        assert_eq!(
            parse_fingerprint(&format!("sha256:{hex}")).as_deref(),
            Some(hex.as_str())
        );
        assert_eq!(parse_fingerprint("abcd"), None);
        assert_eq!(parse_fingerprint("zz"), None);
    }

    #[test]
    fn the_self_signed_certificate_is_the_same_for_the_same_key_and_names() {
        let id = Identity::generate();
        let names = names("0.0.0.0:7300".parse().expect("addr"), "edge-1", &[]);
        assert_eq!(names, ["127.0.0.1", "::1", "localhost", "edge-1"]);
        let (a, _) = self_signed(&id, &names).expect("cert");
        let (b, _) = self_signed(&id, &names).expect("cert");
        assert_eq!(a, b);
        let other = Identity::generate();
        let (c, _) = self_signed(&other, &names).expect("cert");
        assert_ne!(fingerprint(&a), fingerprint(&c));
    }
}
