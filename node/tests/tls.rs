//! TLS for the node API, tried as a user would: `config check` refuses a
//! non-loopback listen without TLS; a node with `api.tls.enabled` (here on
//! loopback) answers `curl --cacert <data_dir>/api-cert.pem` (the real curl
//! binary) and refuses plain HTTP and a wrong CA; `amoskys status` works
//! with `--cacert` and `--pin` and prints the fingerprint `openssl x509
//! -fingerprint -sha256` gives; a chain from `cert_file`/`key_file` signed
//! by a CA is trusted through that CA, and a missing file is named; a client
//! that connects and never completes a handshake is dropped after the header
//! timeout, and each refusal is counted in `/metrics`.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use amoskys_node::Node;
use amoskys_node::auth::{ADMIN_KEY_FILE, load_signing_key};
use amoskys_node::tls::{SELF_SIGNED_CERT_FILE, fingerprint};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HEADER_TIMEOUT: Duration = Duration::from_secs(1);

/// Runs a program with the client's TLS and key variables cleared; exit
/// code, stdout and stderr.
fn run(program: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(program)
        .args(args)
        .env_remove("AMOSKYS_CACERT")
        .env_remove("AMOSKYS_PIN")
        .env_remove("AMOSKYS_OPERATOR_KEY")
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn run_async(program: &'static str, args: Vec<String>) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        run(program, &refs)
    })
    .await
    .expect("joins")
}

fn amoskys() -> &'static str {
    env!("CARGO_BIN_EXE_amoskys")
}

/// Whether `program --version` runs; prints why a check is skipped if not.
fn have(program: &str, skips: &str) -> bool {
    let ok = Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIPPED: {program} is not installed, so {skips} is not checked");
    }
    ok
}

fn config_file(text: &str) -> tempfile::NamedTempFile {
    let f = tempfile::Builder::new()
        .suffix(".toml")
        .tempfile()
        .expect("temp file");
    std::fs::write(f.path(), text).expect("write");
    f
}

#[test]
fn config_check_refuses_a_non_loopback_listen_without_tls() {
    let open = config_file("[api]\nlisten = \"0.0.0.0:7300\"\n");
    let path = open.path().display().to_string();
    let (code, out, err) = run(amoskys(), &["config", "check", &path]);
    assert_eq!(code, 2, "{out}{err}");
    let line = out
        .lines()
        .find(|l| l.contains("api.listen"))
        .unwrap_or_else(|| panic!("a problem names api.listen: {out}"));
    assert!(line.contains("0.0.0.0:7300"), "{line}");
    assert!(line.contains("api.tls"), "{line}");

    let with_tls = config_file("[api]\nlisten = \"0.0.0.0:7300\"\n\n[api.tls]\nenabled = true\n");
    let path = with_tls.path().display().to_string();
    let (code, out, err) = run(amoskys(), &["config", "check", &path]);
    assert_eq!(code, 0, "TLS makes it valid: {out}{err}");

    let half = config_file("[api.tls]\nenabled = true\ncert_file = \"/etc/amoskys/api.pem\"\n");
    let path = half.path().display().to_string();
    let (code, out, _) = run(amoskys(), &["config", "check", &path]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("api.tls.key_file: is empty"), "{out}");

    let names = config_file(
        "[api.tls]\nenabled = true\nnames = [\"edge-1.lan\", \"10.0.0.7\", \"not a name\"]\n",
    );
    let path = names.path().display().to_string();
    let (code, out, _) = run(amoskys(), &["config", "check", &path]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("api.tls.names[2]"), "{out}");
    assert!(!out.contains("api.tls.names[0]"), "{out}");
}

#[tokio::test]
async fn a_node_refuses_to_start_on_a_non_loopback_address_without_tls() {
    let dir = tempfile::tempdir().expect("dir");
    let config = common::quiet_config(dir.path(), &["api.listen=0.0.0.0:0"]);
    let text = match Node::start(config).await {
        Ok(_) => panic!("a node on 0.0.0.0 without TLS started"),
        Err(e) => e.to_string(),
    };
    assert!(
        text.contains("api.listen") && text.contains("api.tls"),
        "{text}"
    );
}

/// GET `path` over TLS trusting `der`, signed as the node's local admin.
async fn https_get(node: &Node, dir: &Path, der: &[u8], path: &str) -> (u16, String) {
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_der(der).expect("DER")])
        .build()
        .expect("client");
    let key = load_signing_key(&dir.join(ADMIN_KEY_FILE)).expect("admin key");
    let id = node.identity().peer_id().to_string();
    let auth = common::authorization(&key, &id, "GET", path, b"");
    let resp = client
        .get(format!("https://{}{path}", node.api_addr()))
        .header("authorization", auth)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("answers over TLS");
    let code = resp.status().as_u16();
    (code, resp.text().await.expect("body"))
}

/// A TLS node on loopback, its certificate file, and the DER in it.
async fn tls_node(dir: &Path) -> (Node, String, CertificateDer<'static>) {
    let config = common::quiet_config(
        dir,
        &[
            "api.tls.enabled=true",
            "node.name=edge-1",
            &format!("api.header_timeout_ms={}", HEADER_TIMEOUT.as_millis()),
        ],
    );
    let node = Node::start(config).await.expect("node starts with TLS");
    let cert = dir.join(SELF_SIGNED_CERT_FILE);
    let der = CertificateDer::from_pem_file(&cert).expect("the node wrote a PEM certificate");
    (node, cert.display().to_string(), der)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_trusts_the_node_with_its_certificate_and_plain_http_fails() {
    if !have("curl", "the curl side of TLS") {
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let (node, cert, _) = tls_node(dir.path()).await;
    let port = node.api_addr().port();
    let https = format!("https://127.0.0.1:{port}/healthz");

    let (code, out, err) = run_async(
        "curl",
        vec![
            "-sS".into(),
            "--fail".into(),
            "--max-time".into(),
            "10".into(),
            "--cacert".into(),
            cert.clone(),
            https.clone(),
        ],
    )
    .await;
    assert_eq!(code, 0, "curl --cacert succeeds: {err}");
    let health: serde_json::Value = serde_json::from_str(&out).expect("JSON health");
    assert_eq!(
        health["id"].as_str(),
        Some(node.identity().peer_id().to_string().as_str())
    );
    // The certificate names localhost too.
    let (code, _, err) = run_async(
        "curl",
        vec![
            "-sS".into(),
            "--fail".into(),
            "--max-time".into(),
            "10".into(),
            "--cacert".into(),
            cert.clone(),
            format!("https://localhost:{port}/healthz"),
        ],
    )
    .await;
    assert_eq!(code, 0, "https://localhost works: {err}");

    // Plain HTTP to the TLS port: a 400 that says to use https://.
    let (code, out, _) = run_async(
        "curl",
        vec![
            "-sS".into(),
            "--max-time".into(),
            "10".into(),
            "-w".into(),
            "\n%{http_code}".into(),
            format!("http://127.0.0.1:{port}/healthz"),
        ],
    )
    .await;
    assert_eq!(code, 0, "curl gets an answer");
    assert!(out.ends_with("\n400"), "{out}");
    assert!(out.contains("use https://"), "{out}");

    // Another node's certificate is the wrong CA.
    let other = tempfile::tempdir().expect("dir");
    let (other_node, other_cert, _) = tls_node(other.path()).await;
    let (code, _, err) = run_async(
        "curl",
        vec![
            "-sS".into(),
            "--max-time".into(),
            "10".into(),
            "--cacert".into(),
            other_cert,
            https.clone(),
        ],
    )
    .await;
    assert_eq!(code, 60, "a wrong CA fails verification: {err}");
    // And the system's roots do not trust a self-signed certificate.
    let (code, _, _) = run_async(
        "curl",
        vec!["-sS".into(), "--max-time".into(), "10".into(), https],
    )
    .await;
    assert_eq!(code, 60, "no CA given fails verification");
    other_node.shutdown().await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_fingerprint_and_the_cli_trusts_cacert_or_pin() {
    let dir = tempfile::tempdir().expect("dir");
    let (node, cert, der) = tls_node(dir.path()).await;
    let addr = node.api_addr();
    let expected = fingerprint(&der);

    // The API, signed as the local admin, over TLS that trusts the file.
    let (code, body) = https_get(&node, dir.path(), &der, "/api/v1/node").await;
    assert_eq!(code, 200, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(status["tls_fingerprint"].as_str(), Some(expected.as_str()));

    if have("openssl", "the fingerprint against openssl") {
        let (code, out, err) = run_async(
            "openssl",
            vec![
                "x509".into(),
                "-in".into(),
                cert.clone(),
                "-noout".into(),
                "-fingerprint".into(),
                "-sha256".into(),
            ],
        )
        .await;
        assert_eq!(code, 0, "{err}");
        let openssl = out.trim().rsplit('=').next().unwrap_or_default();
        assert_eq!(openssl.replace(':', "").to_lowercase(), expected);
    }

    let api = format!("https://{addr}");
    let (code, out, err) = run_async(
        amoskys(),
        vec![
            "status".into(),
            "--api".into(),
            api.clone(),
            "--cacert".into(),
            cert.clone(),
        ],
    )
    .await;
    assert_eq!(code, 0, "status --cacert: {out}{err}");
    assert!(
        out.contains(&format!("tls       sha256 {expected}")),
        "{out}"
    );

    // --pin alone: https:// is implied and no CA is needed.
    let (code, out, err) = run_async(
        amoskys(),
        vec![
            "status".into(),
            "--api".into(),
            addr.to_string(),
            "--pin".into(),
            expected.to_uppercase(),
        ],
    )
    .await;
    assert_eq!(code, 0, "status --pin: {out}{err}");
    let (code, _, err) = run_async(
        amoskys(),
        vec![
            "status".into(),
            "--api".into(),
            addr.to_string(),
            "--pin".into(),
            "00".repeat(32),
        ],
    )
    .await;
    assert_eq!(code, 3, "a wrong pin does not connect: {err}");
    assert!(err.contains("not the pinned"), "{err}");

    // Other commands take the same options (one client for all).
    let (code, out, err) = run_async(
        amoskys(),
        vec![
            "cluster".into(),
            "status".into(),
            "--api".into(),
            api.clone(),
            "--cacert".into(),
            cert,
        ],
    )
    .await;
    assert_eq!(code, 0, "cluster status --cacert: {out}{err}");
    // Without a CA the node's self-signed certificate is not trusted, and
    // the client says what to pass.
    let (code, _, err) = run_async(amoskys(), vec!["status".into(), "--api".into(), api]).await;
    assert_eq!(code, 3, "no CA: {err}");
    assert!(err.contains("--cacert FILE"), "{err}");
    // Plain HTTP: the node's refusal says to use https://.
    let (code, _, err) = run_async(
        amoskys(),
        vec!["status".into(), "--api".into(), addr.to_string()],
    )
    .await;
    assert_eq!(code, 1, "plain http: {err}");
    assert!(
        err.contains("(400): this node serves its API over TLS: use https://"),
        "{err}"
    );
    // From the configuration alone: https:// and <data_dir>/api-cert.pem.
    let (code, out, err) = run_async(
        amoskys(),
        vec![
            "status".into(),
            "--data-dir".into(),
            dir.path().display().to_string(),
            "--api-listen".into(),
            addr.to_string(),
            "--set".into(),
            "api.tls.enabled=true".into(),
        ],
    )
    .await;
    assert_eq!(code, 0, "status from the configuration: {out}{err}");
    assert!(out.contains(&expected), "{out}");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_the_handshake_is_dropped() {
    let dir = tempfile::tempdir().expect("dir");
    let (node, _, der) = tls_node(dir.path()).await;
    let addr = node.api_addr();
    // Connects and sends nothing; then one that sends the first byte of a
    // ClientHello and stalls.
    for first in [None, Some(0x16u8)] {
        let start = Instant::now();
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connects");
        if let Some(b) = first {
            stream.write_all(&[b]).await.expect("writes");
        }
        let mut buf = [0u8; 64];
        let closed = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await;
        let after = start.elapsed();
        assert!(
            matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
            "the node closes a stalled handshake ({first:?}): {closed:?}"
        );
        assert!(
            after >= HEADER_TIMEOUT.mul_f32(0.9) && after < HEADER_TIMEOUT * 4,
            "closed after the header timeout ({first:?}): {after:?}"
        );
    }
    // Plain HTTP, raw: the JSON refusal, then the connection is closed.
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("writes");
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut answer))
        .await
        .expect("closed in time")
        .expect("reads");
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.contains("use https://"), "{answer}");
    // Each refusal is counted by reason.
    let (code, metrics) = https_get(&node, dir.path(), &der, "/metrics").await;
    assert_eq!(code, 200, "{metrics}");
    for line in [
        r#"amoskys_api_tls_refused_total{reason="timeout"} 2"#,
        r#"amoskys_api_tls_refused_total{reason="plain_http"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    // The node still serves.
    let (code, _, err) = run_async(
        amoskys(),
        vec![
            "status".into(),
            "--api".into(),
            addr.to_string(),
            "--cacert".into(),
            dir.path().join(SELF_SIGNED_CERT_FILE).display().to_string(),
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    node.shutdown().await;
}

/// A CA and a leaf for 127.0.0.1 it signed: the chain's PEM (leaf first),
/// the leaf key's PEM, the CA's PEM and the leaf's DER.
fn ca_and_leaf() -> (String, String, String, Vec<u8>) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "amoskys test CA");
    let ca = ca.self_signed(&ca_key).expect("CA certificate");
    let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("leaf params")
        .signed_by(&leaf_key, &ca, &ca_key)
        .expect("leaf certificate");
    (
        format!("{}{}", leaf.pem(), ca.pem()),
        leaf_key.serialize_pem(),
        ca.pem(),
        leaf.der().to_vec(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_serves_a_chain_from_files_and_names_a_missing_one() {
    let files = tempfile::tempdir().expect("dir");
    let (chain, key, ca, leaf) = ca_and_leaf();
    let chain_file = files.path().join("api.pem");
    let key_file = files.path().join("api.key");
    let ca_file = files.path().join("ca.pem");
    std::fs::write(&chain_file, chain).expect("write");
    std::fs::write(&key_file, key).expect("write");
    std::fs::write(&ca_file, ca).expect("write");

    let dir = tempfile::tempdir().expect("dir");
    let missing = common::quiet_config(
        dir.path(),
        &[
            "api.tls.enabled=true",
            &format!("api.tls.cert_file={}", chain_file.display()),
            "api.tls.key_file=/nonexistent/api.key",
        ],
    );
    let text = match Node::start(missing).await {
        Ok(_) => panic!("a node with a missing key file started"),
        Err(e) => e.to_string(),
    };
    assert!(
        text.contains("api.tls.key_file") && text.contains("/nonexistent/api.key"),
        "{text}"
    );

    let dir = tempfile::tempdir().expect("dir");
    let config = common::quiet_config(
        dir.path(),
        &[
            "api.tls.enabled=true",
            &format!("api.tls.cert_file={}", chain_file.display()),
            &format!("api.tls.key_file={}", key_file.display()),
        ],
    );
    let node = Node::start(config)
        .await
        .expect("node starts with the files");
    let addr = node.api_addr();
    assert!(
        !dir.path().join(SELF_SIGNED_CERT_FILE).exists(),
        "no self-signed certificate is written when files are given"
    );
    let ca_path = ca_file.display().to_string();
    if have("curl", "curl against a CA-signed chain") {
        let (code, _, err) = run_async(
            "curl",
            vec![
                "-sS".into(),
                "--fail".into(),
                "--max-time".into(),
                "10".into(),
                "--cacert".into(),
                ca_path.clone(),
                format!("https://127.0.0.1:{}/healthz", addr.port()),
            ],
        )
        .await;
        assert_eq!(code, 0, "curl trusts the chain through its CA: {err}");
    }
    let (code, out, err) = run_async(
        amoskys(),
        vec![
            "status".into(),
            "--api".into(),
            format!("https://{addr}"),
            "--cacert".into(),
            ca_path,
        ],
    )
    .await;
    assert_eq!(code, 0, "status through the CA: {out}{err}");
    assert!(
        out.contains(&format!("tls       sha256 {}", fingerprint(&leaf))),
        "the fingerprint is the leaf's: {out}"
    );
    node.shutdown().await;
}
