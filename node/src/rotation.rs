//! Node key rotation on the node (docs/SECURITY.md, "Rotating keys").
//!
//! `amoskys key rotate` stages a successor key in `<data_dir>/node.key.next`
//! and the node restarts. At that start, before anything signs, the node
//! completes the rotation here: both keys sign the hand-over with the last
//! alert sequence number the old key signed, the old key moves to
//! `retired-keys/<peer id>.key`, the successor becomes `node.key`, and the
//! hand-over is kept in `handover.json` until the cluster has committed it
//! (it rides on the node's join requests, the one protocol a key that is
//! not yet admitted may use). Each step is a file written atomically, so a
//! crash at any point resumes at the next start.

use std::path::{Path, PathBuf};

use amoskys_consensus::NodeId;
use amoskys_consensus::rotation::{Handover, NodeRotation};

use crate::identity::{Identity, IdentityError, KEY_FILE};

/// The staged successor key.
pub const NEXT_KEY_FILE: &str = "node.key.next";
/// The hand-over waiting to be committed.
pub const HANDOVER_FILE: &str = "handover.json";
/// Where retired node keys are kept (mode 0600 each).
pub const RETIRED_DIR: &str = "retired-keys";

/// Stages a fresh successor key unless one is staged already; returns it.
pub fn stage(data_dir: &Path) -> Result<Identity, IdentityError> {
    let path = data_dir.join(NEXT_KEY_FILE);
    if path.exists() {
        return Identity::load(&path);
    }
    let next = Identity::generate();
    match next.write(&path, false) {
        Ok(()) => Ok(next),
        Err(IdentityError::Exists { .. }) => Identity::load(&path),
        Err(e) => Err(e),
    }
}

/// Whether a successor key is staged.
pub fn is_staged(data_dir: &Path) -> bool {
    data_dir.join(NEXT_KEY_FILE).exists()
}

/// Completes a staged rotation (`last_seq`: the highest alert sequence
/// number the current key signed) and returns the hand-over still to be
/// committed: this one, or one an earlier start made.
pub fn complete(data_dir: &Path, last_seq: Option<u64>) -> Result<Option<Handover>, IdentityError> {
    let next_path = data_dir.join(NEXT_KEY_FILE);
    let key_path = data_dir.join(KEY_FILE);
    if next_path.exists() && key_path.exists() {
        let old = Identity::load(&key_path)?;
        let new = Identity::load(&next_path)?;
        let time_ns = amoskys_sensors::now_ns();
        let rotation = NodeRotation::sign(old.signing_key(), new.signing_key(), last_seq, time_ns);
        let summary = format!(
            "node key {} handed over to {}; alerts it signed up to sequence number {} stay valid",
            old.peer_id(),
            new.peer_id(),
            last_seq.map_or_else(|| "(none)".to_owned(), |s| s.to_string())
        );
        let record = crate::audit::signed_record(
            old.signing_key(),
            None,
            "node.key.rotate",
            &new.peer_id().to_string(),
            &summary,
            "",
        );
        let handover = Handover { rotation, record };
        write_json(&data_dir.join(HANDOVER_FILE), &handover)?;
        let retired = retired_path(data_dir, &old);
        old.write(&retired, true)?;
        std::fs::rename(&next_path, &key_path).map_err(|source| IdentityError::Write {
            path: key_path.clone(),
            source,
        })?;
        tracing::warn!(
            old = %old.peer_id(),
            new = %new.peer_id(),
            retired = %retired.display(),
            "node key rotated; the cluster commits the hand-over when this node joins as its successor"
        );
        return Ok(Some(handover));
    }
    pending(data_dir)
}

/// The hand-over in `handover.json` when it names the current key as
/// successor.
pub fn pending(data_dir: &Path) -> Result<Option<Handover>, IdentityError> {
    let path = data_dir.join(HANDOVER_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(IdentityError::Read { path, source }),
    };
    let handover: Handover =
        serde_json::from_slice(&bytes).map_err(|e| IdentityError::Malformed {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    let current = Identity::load(&data_dir.join(KEY_FILE))?;
    let me = NodeId(current.signing_key().verifying_key().to_bytes());
    Ok((handover.rotation.new == me).then_some(handover))
}

/// Forgets a committed hand-over.
pub fn committed(data_dir: &Path) {
    let path = data_dir.join(HANDOVER_FILE);
    if let Err(e) = std::fs::remove_file(&path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove the committed hand-over");
    }
}

fn retired_path(data_dir: &Path, old: &Identity) -> PathBuf {
    data_dir
        .join(RETIRED_DIR)
        .join(format!("{}.key", old.peer_id()))
}

fn write_json(path: &Path, value: &Handover) -> Result<(), IdentityError> {
    let err = |source| IdentityError::Write {
        path: path.to_owned(),
        source,
    };
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| err(std::io::Error::other(e)))?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_staged_key_becomes_the_node_key_and_the_old_one_is_retired() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (old, _) = Identity::load_or_create(dir.path()).expect("key");
        assert!(
            complete(dir.path(), None)
                .expect("nothing staged")
                .is_none()
        );
        let next = stage(dir.path()).expect("stage");
        // Staging twice keeps the first successor.
        assert_eq!(stage(dir.path()).expect("again").peer_id(), next.peer_id());
        let h = complete(dir.path(), Some(9))
            .expect("complete")
            .expect("a hand-over");
        assert_eq!(h.rotation.last_seq, Some(9));
        h.check(&h.rotation.new).expect("a valid hand-over");
        let now = Identity::load(&dir.path().join(KEY_FILE)).expect("key");
        assert_eq!(now.peer_id(), next.peer_id());
        let kept = Identity::load(&retired_path(dir.path(), &old)).expect("retired key");
        assert_eq!(kept.peer_id(), old.peer_id());
        assert!(!is_staged(dir.path()));
        // Until committed, every start sends the same hand-over.
        assert_eq!(pending(dir.path()).expect("pending"), Some(h));
        committed(dir.path());
        assert_eq!(pending(dir.path()).expect("pending"), None);
    }
}
