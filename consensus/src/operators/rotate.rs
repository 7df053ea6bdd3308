//! Key rotation of an operator: the old key signs a statement naming the
//! new one, and the new key signs the same statement (it is held, not just
//! named). Apply checks both signatures, so every node accepts the same
//! rotations, and keeps the old keys (at most [`MAX_PREVIOUS_KEYS`]) so that
//! what an old key signed can still be attributed.

use super::{Operators, check_key};
use crate::state::Outcome;

/// Old keys kept per operator, newest last.
pub const MAX_PREVIOUS_KEYS: usize = 16;

/// The bytes both keys sign: `AMOSKYS-OPERATOR-ROTATE-1`, the operator's
/// name, the old key and the new key (hex), separated by line feeds.
pub fn rotation_statement(name: &str, old_key: &str, new_key: &str) -> Vec<u8> {
    format!("AMOSKYS-OPERATOR-ROTATE-1\n{name}\n{old_key}\n{new_key}").into_bytes()
}

/// Whether `sig_hex` is `key_hex`'s signature of `msg`.
fn signed_by(key_hex: &str, msg: &[u8], sig_hex: &str) -> bool {
    let (Ok(key), Ok(sig)) = (hex::decode(key_hex), hex::decode(sig_hex)) else {
        return false;
    };
    libp2p_identity::ed25519::PublicKey::try_from_bytes(&key)
        .is_ok_and(|k| sig.len() == 64 && k.verify(msg, &sig))
}

/// Applies `RotateOperator`: `name`'s key becomes `new_key` when both
/// signatures of the statement verify.
pub(crate) fn rotate(
    ops: &mut Operators,
    name: &str,
    new_key: &str,
    old_sig: &str,
    new_sig: &str,
) -> Outcome {
    if let Err(reason) = check_key(new_key) {
        return Outcome::Rejected(reason);
    }
    let Some(record) = ops.get(name) else {
        return Outcome::Rejected(format!(
            "no operator named `{}`",
            name.chars().take(80).collect::<String>()
        ));
    };
    if let Some((other, _)) = ops.iter().find(|(_, o)| o.key == new_key) {
        return Outcome::Rejected(format!(
            "key {new_key} already belongs to operator {other}; one key is one operator"
        ));
    }
    let statement = rotation_statement(name, &record.key, new_key);
    if !signed_by(&record.key, &statement, old_sig) {
        return Outcome::Rejected(format!(
            "the rotation of {name} is not signed by its current key"
        ));
    }
    if !signed_by(new_key, &statement, new_sig) {
        return Outcome::Rejected(format!(
            "the rotation of {name} is not signed by the new key"
        ));
    }
    if let Some(record) = ops.get_mut(name) {
        let old = std::mem::replace(&mut record.key, new_key.to_owned());
        record.previous_keys.push(old);
        if record.previous_keys.len() > MAX_PREVIOUS_KEYS {
            record.previous_keys.remove(0);
        }
    }
    Outcome::OperatorSet {
        name: name.to_owned(),
    }
}
