//! Key files of people: an operator's key (`keygen_operator`) and the
//! node's local admin credential (`<data_dir>/admin.key`), both ed25519
//! PKCS#8 PEM files with mode 0600 like the node key
//! ([`crate::identity`]), and the `.pub` file that carries an operator's
//! public key as 64 lowercase hex digits.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding};
use ed25519_dalek::{SigningKey, VerifyingKey};

/// File name of the local admin credential inside the data directory.
pub const ADMIN_KEY_FILE: &str = "admin.key";

/// Errors about key files.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write key file {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} already exists; choose another file or remove it first")]
    Exists { path: PathBuf },
    #[error("{path} is not an ed25519 key: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error(
        "key file {path} has mode {mode:04o}; it must not be readable by group or others (chmod 600 {path})"
    )]
    Permissions { path: PathBuf, mode: u32 },
}

/// The node's local admin: the credential the CLI on the same host uses
/// when no operator key is given.
#[derive(Clone)]
pub struct LocalAdmin {
    pub key: SigningKey,
    pub path: PathBuf,
}

impl std::fmt::Debug for LocalAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalAdmin")
            .field("path", &self.path)
            .field("public_key", &self.public_key_hex())
            .finish_non_exhaustive()
    }
}

impl LocalAdmin {
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    pub fn public_key_hex(&self) -> String {
        hex::encode(self.key.verifying_key().to_bytes())
    }
}

/// Reads `<data_dir>/admin.key`, creating it on first start; an existing
/// file is never replaced. It belongs to the user the node runs as (root
/// when run as root), mode 0600.
pub fn ensure_local_admin(data_dir: &Path) -> Result<LocalAdmin, KeyError> {
    let path = data_dir.join(ADMIN_KEY_FILE);
    if !path.exists() {
        let key = SigningKey::generate(&mut rand::rng());
        match write_private(&path, &key) {
            // Another process created it between our check and our write.
            Ok(()) | Err(KeyError::Exists { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(LocalAdmin {
        key: load_signing_key(&path)?,
        path,
    })
}

/// Writes a new operator key to `path` (PKCS#8 PEM, 0600) and its public
/// key to `path` + `.pub` (hex, one line); refuses to replace either.
/// Returns the public key as hex.
pub fn keygen_operator(path: &Path) -> Result<String, KeyError> {
    let pub_path = pub_path(path);
    for p in [path, pub_path.as_path()] {
        if p.exists() {
            return Err(KeyError::Exists { path: p.to_owned() });
        }
    }
    let key = SigningKey::generate(&mut rand::rng());
    let public = hex::encode(key.verifying_key().to_bytes());
    write_private(path, &key)?;
    write_new(&pub_path, format!("{public}\n").as_bytes(), 0o644)?;
    Ok(public)
}

/// `alice.key` → `alice.key.pub`.
fn pub_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

/// Loads a private key file, refusing one that group or others can read.
pub fn load_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    let read_err = |source| KeyError::Read {
        path: path.to_owned(),
        source,
    };
    let mode = std::fs::metadata(path)
        .map_err(read_err)?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Permissions {
            path: path.to_owned(),
            mode,
        });
    }
    let pem = std::fs::read_to_string(path).map_err(read_err)?;
    SigningKey::from_pkcs8_pem(&pem).map_err(|e| KeyError::Malformed {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// Loads a `.pub` file: 64 lowercase hex digits of an ed25519 key (spaces
/// and the final newline are ignored).
pub fn load_public_key(path: &Path) -> Result<VerifyingKey, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.to_owned(),
        source,
    })?;
    let malformed = |reason: &str| KeyError::Malformed {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let hex_key = text.trim();
    if hex_key.len() != 64
        || !hex_key
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(malformed("expected 64 lowercase hex digits"));
    }
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(hex_key, &mut bytes).map_err(|e| malformed(&e.to_string()))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| malformed("not a point of the curve"))
}

/// Writes a private key file (PKCS#8 PEM, mode 0600); an existing file is
/// replaced only with `replace` (the node key's `keygen --force`).
pub(crate) fn write_private_key(
    path: &Path,
    key: &SigningKey,
    replace: bool,
) -> Result<(), KeyError> {
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| KeyError::Write {
            path: path.to_owned(),
            source: std::io::Error::other(e.to_string()),
        })?;
    write_file(path, pem.as_bytes(), 0o600, replace)
}

fn write_private(path: &Path, key: &SigningKey) -> Result<(), KeyError> {
    write_private_key(path, key, false)
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    write_file(path, bytes, mode, false)
}

/// Writes a file atomically with `mode`: a temporary file, synced, then
/// hard-linked into place, which fails if the target exists (no overwrite
/// race), or renamed over it with `replace`.
fn write_file(path: &Path, bytes: &[u8], mode: u32, replace: bool) -> Result<(), KeyError> {
    let write_err = |source| KeyError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(write_err)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have narrowed `mode`; a .pub is meant to be read.
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        if replace {
            std::fs::rename(&tmp, path)
        } else {
            std::fs::hard_link(&tmp, path)
        }
    })();
    let _ = std::fs::remove_file(&tmp);
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(KeyError::Exists {
            path: path.to_owned(),
        }),
        Err(e) => Err(write_err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn the_local_admin_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = ensure_local_admin(dir.path()).expect("created");
        assert_eq!(first.path, dir.path().join(ADMIN_KEY_FILE));
        assert_eq!(mode(&first.path), 0o600);
        let pem = std::fs::read_to_string(&first.path).expect("read");
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
        let again = ensure_local_admin(dir.path()).expect("read back");
        assert_eq!(again.public_key_hex(), first.public_key_hex());
        assert_eq!(std::fs::read_to_string(&first.path).expect("read"), pem);
        // A credential others can read is refused, not replaced.
        std::fs::set_permissions(&first.path, std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
        let err = ensure_local_admin(dir.path()).expect_err("too open");
        assert!(
            matches!(err, KeyError::Permissions { mode: 0o644, .. }),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&first.path).expect("read"), pem);
        // Only the key file is left behind, no temporary one.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, [ADMIN_KEY_FILE]);
    }

    #[test]
    fn an_operator_key_and_its_pub_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys/alice.key");
        let public = keygen_operator(&path).expect("keygen");
        assert_eq!(mode(&path), 0o600);
        let pub_file = dir.path().join("keys/alice.key.pub");
        assert_eq!(mode(&pub_file), 0o644);
        assert_eq!(
            std::fs::read_to_string(&pub_file).expect("pub"),
            format!("{public}\n")
        );
        let key = load_signing_key(&path).expect("private key");
        assert_eq!(hex::encode(key.verifying_key().to_bytes()), public);
        assert_eq!(
            load_public_key(&pub_file).expect("public key"),
            key.verifying_key()
        );
        assert!(amoskys_consensus::operators::check_key(&public).is_ok());
        let err = keygen_operator(&path).expect_err("exists");
        assert!(matches!(err, KeyError::Exists { .. }), "{err}");
        assert_eq!(
            load_signing_key(&path).expect("kept").to_bytes(),
            key.to_bytes()
        );

        std::fs::write(&pub_file, public.to_uppercase()).expect("write");
        assert!(matches!(
            load_public_key(&pub_file),
            Err(KeyError::Malformed { .. })
        ));
    }
}
