//! The node's identity: one ed25519 key that signs alerts and, as a libp2p
//! key, gives the node its PeerId.
//!
//! The key is a PKCS#8 PEM file (`openssl pkey -in node.key -noout -text`
//! reads it) with mode 0600. A key file that others can read is refused, as
//! ssh does, because anyone who reads it can sign alerts as this node.

use std::fmt;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
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

/// The key-file errors, as the node key's (the same files and checks as
/// operator keys: [`crate::auth::load_signing_key`]).
impl From<crate::auth::KeyError> for IdentityError {
    fn from(e: crate::auth::KeyError) -> Self {
        use crate::auth::KeyError as K;
        match e {
            K::Read { path, source } => IdentityError::Read { path, source },
            K::Write { path, source } => IdentityError::Write { path, source },
            K::Exists { path } => IdentityError::Exists { path },
            K::Malformed { path, reason } => IdentityError::Malformed { path, reason },
            K::Permissions { path, mode } => IdentityError::Permissions { path, mode },
        }
    }
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
        Ok(Self::from_signing_key(crate::auth::load_signing_key(path)?))
    }

    /// Writes the key atomically with mode 0600. Without `force` an existing
    /// file is never replaced.
    pub fn write(&self, path: &Path, force: bool) -> Result<(), IdentityError> {
        Ok(crate::auth::write_private_key(path, &self.key, force)?)
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
