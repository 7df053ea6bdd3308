//! The node's identity: one ed25519 key that signs alerts and, as a libp2p
//! key, gives the node its PeerId.
//!
//! The key is a PKCS#8 PEM file (`openssl pkey -in node.key -noout -text`
//! reads it) with mode 0600. A key file that others can read is refused, as
//! ssh does, because anyone who reads it can sign alerts as this node.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding};
use libp2p_identity::PeerId;

/// File name of the node key inside the data directory.
pub const KEY_FILE: &str = "node.key";

/// Errors about the node key.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read node key {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write node key {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "node key {path} already exists; pass --force to replace it (the node's identity changes)"
    )]
    Exists { path: PathBuf },
    #[error("node key {path} is not an ed25519 PKCS#8 PEM key: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error(
        "node key {path} has mode {mode:04o}; it must not be readable by group or others (chmod 600 {path})"
    )]
    Permissions { path: PathBuf, mode: u32 },
}

/// The node's signing key and the PeerId derived from it.
#[derive(Clone)]
pub struct Identity {
    key: SigningKey,
    keypair: libp2p_identity::Keypair,
    peer_id: PeerId,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("peer_id", &self.peer_id)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// A fresh random identity.
    pub fn generate() -> Self {
        Self::from_signing_key(SigningKey::generate(&mut rand::rng()))
    }

    /// The identity of a known key (tests and simulations use fixed seeds).
    pub fn from_signing_key(key: SigningKey) -> Self {
        let keypair = libp2p_identity::Keypair::ed25519_from_bytes(key.to_bytes())
            .expect("a 32-byte ed25519 secret is always a valid libp2p key");
        let peer_id = keypair.public().to_peer_id();
        Self {
            key,
            keypair,
            peer_id,
        }
    }

    /// Loads `data_dir/node.key`, creating it on first start.
    /// Returns the identity and whether it was created now.
    pub fn load_or_create(data_dir: &Path) -> Result<(Self, bool), IdentityError> {
        let path = data_dir.join(KEY_FILE);
        if path.exists() {
            return Ok((Self::load(&path)?, false));
        }
        let identity = Self::generate();
        match identity.write(&path, false) {
            Ok(()) => Ok((identity, true)),
            // Another process created it between our check and our write.
            Err(IdentityError::Exists { .. }) => Ok((Self::load(&path)?, false)),
            Err(e) => Err(e),
        }
    }

    /// Loads a key file, refusing one that group or others can read.
    pub fn load(path: &Path) -> Result<Self, IdentityError> {
        let read_err = |source| IdentityError::Read {
            path: path.to_owned(),
            source,
        };
        let mode = std::fs::metadata(path)
            .map_err(read_err)?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(IdentityError::Permissions {
                path: path.to_owned(),
                mode,
            });
        }
        let pem = std::fs::read_to_string(path).map_err(read_err)?;
        let key = SigningKey::from_pkcs8_pem(&pem).map_err(|e| IdentityError::Malformed {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Self::from_signing_key(key))
    }

    /// Writes the key atomically with mode 0600. Without `force` an existing
    /// file is never replaced.
    pub fn write(&self, path: &Path, force: bool) -> Result<(), IdentityError> {
        let write_err = |source| IdentityError::Write {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(write_err)?;
        }
        let pem = self
            .key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| write_err(std::io::Error::other(e.to_string())))?;
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        let result = (|| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(pem.as_bytes())?;
            file.sync_all()?;
            if force {
                std::fs::rename(&tmp, path)
            } else {
                // A hard link fails if the target exists: no overwrite race.
                std::fs::hard_link(&tmp, path)
            }
        })();
        let _ = std::fs::remove_file(&tmp);
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(IdentityError::Exists {
                path: path.to_owned(),
            }),
            Err(e) => Err(write_err(e)),
        }
    }

    /// The libp2p PeerId, which is also the node id everywhere in AMOSKYS.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The ed25519 public key as lowercase hex.
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.key.verifying_key().to_bytes())
    }

    /// The key that signs this node's alerts.
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// The same key as a libp2p keypair, for the mesh transport.
    pub fn libp2p_keypair(&self) -> &libp2p_identity::Keypair {
        &self.keypair
    }
}
