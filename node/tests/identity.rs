//! Node identity: created once with mode 0600, reused, refused when exposed.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use amoskys_node::Identity;
use amoskys_node::identity::{IdentityError, KEY_FILE};

#[test]
fn created_once_with_0600_and_reused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (first, created) = Identity::load_or_create(dir.path()).expect("create");
    assert!(created);
    let path = dir.path().join(KEY_FILE);
    let mode = std::fs::metadata(&path)
        .expect("key file")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let pem = std::fs::read_to_string(&path).expect("read");
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8 PEM");

    let (again, created) = Identity::load_or_create(dir.path()).expect("load");
    assert!(!created);
    assert_eq!(again.peer_id(), first.peer_id());
    assert_eq!(again.public_key_hex(), first.public_key_hex());
}

#[test]
fn peer_id_is_derived_from_the_signing_key() {
    let id = Identity::generate();
    let public = id.signing_key().verifying_key().to_bytes();
    let libp2p_public =
        libp2p_identity::ed25519::PublicKey::try_from_bytes(&public).expect("ed25519 key");
    let expected = libp2p_identity::PublicKey::from(libp2p_public).to_peer_id();
    assert_eq!(id.peer_id(), expected);
    assert_eq!(id.libp2p_keypair().public().to_peer_id(), expected);
}

#[test]
fn exposed_or_malformed_keys_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, _) = Identity::load_or_create(dir.path()).expect("create");
    let path = dir.path().join(KEY_FILE);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let err = Identity::load(&path).expect_err("0644 refused");
    assert!(
        matches!(err, IdentityError::Permissions { mode: 0o644, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("chmod 600"), "{err}");

    std::fs::write(&path, "not a key").expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let err = Identity::load(&path).expect_err("garbage refused");
    assert!(matches!(err, IdentityError::Malformed { .. }), "{err}");
}

#[test]
fn keygen_command_writes_and_never_overwrites_silently() {
    let bin = env!("CARGO_BIN_EXE_amoskys");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("site-a.key");
    let out = Command::new(bin)
        .arg("keygen")
        .arg("--out")
        .arg(&path)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let written = Identity::load(&path).expect("valid key");
    assert!(stdout.contains(&written.peer_id().to_string()), "{stdout}");

    let out = Command::new(bin)
        .arg("keygen")
        .arg("--out")
        .arg(&path)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists; pass --force"));
    assert_eq!(
        Identity::load(&path).expect("kept").peer_id(),
        written.peer_id()
    );

    let out = Command::new(bin)
        .args(["keygen", "--force", "--out"])
        .arg(&path)
        .output()
        .expect("runs");
    assert!(out.status.success());
    assert_ne!(
        Identity::load(&path).expect("new").peer_id(),
        written.peer_id()
    );
}
