//! The saved-document format: a small versioned header, the epoch and its
//! snapshot, the Automerge bytes and the change signatures (layout in
//! NOTES.md). Loading checks the file's consistency and names what is wrong.

use std::collections::HashMap;

use automerge::{ActorId, Automerge, ChangeHash, ReadDoc};

use super::doc::{COMPACTOR, DocKind, Document, WsError};
use super::epoch::{EpochId, Snapshot};
use super::wire::{Reader, WireError, Writer};

const FILE_MAGIC: &[u8; 4] = b"AMWD";
const FILE_VERSION: u8 = 1;

impl Document {
    /// Encodes the document: kind, epoch, snapshot, Automerge bytes and
    /// signatures (format in NOTES.md).
    pub fn save(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.bytes(FILE_MAGIC).u8(FILE_VERSION).u8(self.kind.code());
        w.u64(self.epoch.number).bytes(&self.epoch.hash);
        match &self.snapshot {
            None => {
                w.u8(0);
            }
            Some(s) => s.write(w.u8(1)),
        }
        // Only base changes (no signatures): the base alone is the document,
        // so an empty blob stands for it and the snapshot is not stored twice.
        if self.signatures.is_empty() {
            w.blob(&[]);
        } else {
            w.blob(&self.doc.save());
        }
        let mut sigs: Vec<_> = self.signatures.iter().collect();
        sigs.sort();
        w.u32(u32::try_from(sigs.len()).unwrap_or(u32::MAX));
        for (hash, sig) in sigs {
            w.bytes(hash.as_ref()).bytes(sig);
        }
        w.finish()
    }

    /// Decodes [`Document::save`] output; a corrupt file is an error that
    /// names what is wrong. Signatures are checked for presence, not
    /// re-verified: the file is this node's own storage.
    pub fn load(bytes: &[u8]) -> Result<Document, WsError> {
        let corrupt = |e: WireError| WsError::Corrupt(e.0);
        let mut r = Reader::new(bytes);
        if r.take(4, "magic").map_err(corrupt)? != FILE_MAGIC {
            return Err(WsError::Corrupt(
                "not a workspace document (bad magic)".into(),
            ));
        }
        let version = r.u8("version").map_err(corrupt)?;
        if version != FILE_VERSION {
            return Err(WsError::Corrupt(format!(
                "format version {version} is not supported (expected {FILE_VERSION})"
            )));
        }
        let code = r.u8("kind").map_err(corrupt)?;
        let kind = DocKind::from_code(code)
            .ok_or_else(|| WsError::Corrupt(format!("unknown document kind {code}")))?;
        let epoch = EpochId {
            number: r.u64("epoch number").map_err(corrupt)?,
            hash: r.array("epoch hash").map_err(corrupt)?,
        };
        let snapshot = match r.u8("snapshot flag").map_err(corrupt)? {
            0 => None,
            1 => Some(Snapshot::read(&mut r, epoch).map_err(corrupt)?),
            other => {
                return Err(WsError::Corrupt(format!(
                    "snapshot flag {other} is neither 0 nor 1"
                )));
            }
        };
        let am = r.blob("automerge document").map_err(corrupt)?;
        let n = r.count(96, "signatures").map_err(corrupt)?;
        let mut signatures = HashMap::with_capacity(n);
        for _ in 0..n {
            let hash = ChangeHash(r.array("signature hash").map_err(corrupt)?);
            signatures.insert(hash, r.array("signature").map_err(corrupt)?);
        }
        r.end("document").map_err(corrupt)?;
        let loaded = |bytes: &[u8]| {
            Automerge::load(bytes)
                .map_err(|e| WsError::Corrupt(format!("automerge document does not load: {e}")))
        };
        let doc = match (am.is_empty(), &snapshot) {
            (true, None) => super::epoch::genesis(kind)?,
            (true, Some(s)) => loaded(&s.bytes)?,
            (false, _) => loaded(am)?,
        };
        let document = Document {
            kind,
            doc,
            epoch,
            snapshot,
            signatures,
        };
        document.check_loaded()?;
        Ok(document)
    }

    /// Consistency of a loaded file: epoch and snapshot agree, the base is
    /// present, and every other change has a signature.
    fn check_loaded(&self) -> Result<(), WsError> {
        let base = super::epoch::base_heads(self.kind, self.epoch, self.snapshot.as_ref())?;
        if let Some(missing) = base
            .iter()
            .find(|h| self.doc.get_change_by_hash(h).is_none())
        {
            return Err(WsError::Corrupt(format!(
                "base change {missing} of epoch {} is missing",
                self.epoch
            )));
        }
        let compactor = ActorId::from(COMPACTOR);
        for change in self.doc.get_changes_meta(&[]) {
            if *change.actor != compactor && !self.signatures.contains_key(&change.hash) {
                return Err(WsError::Corrupt(format!(
                    "change {} has no signature",
                    change.hash
                )));
            }
        }
        self.entries_obj().map(|_| ())
    }
}
