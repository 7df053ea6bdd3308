//! Operators: the people who use the API, each a name, an ed25519 key and a
//! role, replicated with the rest of [`ClusterState`](crate::ClusterState).
//!
//! The rules are checked on apply, so every node refuses the same commands:
//! a name is 1 to 64 characters of `[a-z0-9._-]` starting with a letter or
//! digit; a key is 64 lowercase hex digits encoding an ed25519 point; one key
//! belongs to at most one operator; the first operator is an admin, and the
//! last admin can be neither removed nor demoted. So once there is an
//! operator, there is an admin.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::state::Outcome;

/// Longest operator name.
pub const MAX_NAME: usize = 64;
/// Most operators the state holds.
pub const MAX_OPERATORS: usize = 1024;
/// Longest `by` (who made the change).
const MAX_BY: usize = 256;

/// What an operator may do; each role includes the ones below it
/// (`Admin > Analyst > Viewer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads alerts, cases, intel, status, peers, cluster, models, rounds.
    Viewer,
    /// Viewer, and acks cases, sets their status, adds notes and intel.
    Analyst,
    /// Analyst, and changes policy, members, models, rounds and operators.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "analyst" => Ok(Role::Analyst),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "role `{other}` is not one of viewer, analyst, admin"
            )),
        }
    }
}

/// One operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorRecord {
    /// The ed25519 public key, 64 lowercase hex digits.
    pub key: String,
    pub role: Role,
    /// Who added the operator (an operator name, or the node for the first
    /// admin); kept when the role or key changes later.
    pub added_by: String,
    pub added_ns: u64,
    /// Keys it held before, oldest first (`RotateOperator`); absent from
    /// records written before rotation existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_keys: Vec<String>,
}

/// Operators by name.
pub type Operators = BTreeMap<String, OperatorRecord>;

/// Checks an operator name: 1 to 64 characters of `[a-z0-9._-]`, the first
/// a letter or digit (so it is never an option or a hidden file).
pub fn check_name(name: &str) -> Result<(), String> {
    let ok_char = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b);
    let first_ok = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if name.len() > MAX_NAME || !first_ok || !name.bytes().all(ok_char) {
        return Err(format!(
            "operator name `{}` must be 1 to {MAX_NAME} characters of a-z, 0-9, `.`, `_`, `-`, starting with a letter or digit",
            name.chars().take(MAX_NAME + 8).collect::<String>()
        ));
    }
    Ok(())
}

/// Checks an operator key: 64 lowercase hex digits that decode to an
/// ed25519 point.
pub fn check_key(key: &str) -> Result<(), String> {
    let shown = || key.chars().take(80).collect::<String>();
    if key.len() != 64
        || !key
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(format!(
            "operator key `{}` is not 64 lowercase hex digits",
            shown()
        ));
    }
    let bytes = hex::decode(key).map_err(|e| format!("operator key: {e}"))?;
    libp2p_identity::ed25519::PublicKey::try_from_bytes(&bytes)
        .map_err(|_| format!("operator key `{}` is not an ed25519 public key", shown()))?;
    Ok(())
}

fn admins(ops: &Operators) -> usize {
    ops.values().filter(|o| o.role == Role::Admin).count()
}

/// Applies `SetOperator`: adds an operator, or changes its key or role.
pub(crate) fn set(
    ops: &mut Operators,
    name: &str,
    key: &str,
    role: Role,
    by: &str,
    time_ns: u64,
) -> Outcome {
    if let Err(reason) = check_name(name).and_then(|()| check_key(key)) {
        return Outcome::Rejected(reason);
    }
    if by.is_empty() || by.len() > MAX_BY {
        return Outcome::Rejected(format!("`by` must be 1 to {MAX_BY} bytes"));
    }
    if let Some((other, _)) = ops.iter().find(|(n, o)| o.key == key && n.as_str() != name) {
        return Outcome::Rejected(format!(
            "key {key} already belongs to operator {other}; one key is one operator"
        ));
    }
    if let Some(current) = ops.get(name).map(|o| o.role) {
        if current == Role::Admin && role < Role::Admin && admins(ops) == 1 {
            return Outcome::Rejected(format!(
                "{name} is the last admin; the last admin cannot be demoted (add another admin first)"
            ));
        }
        if let Some(existing) = ops.get_mut(name) {
            existing.key = key.to_owned();
            existing.role = role;
        }
    } else {
        if ops.is_empty() && role != Role::Admin {
            return Outcome::Rejected("the first operator must be an admin".into());
        }
        if ops.len() >= MAX_OPERATORS {
            return Outcome::Rejected(format!(
                "there are already {MAX_OPERATORS} operators, the most the cluster holds"
            ));
        }
        ops.insert(
            name.to_owned(),
            OperatorRecord {
                key: key.to_owned(),
                role,
                added_by: by.to_owned(),
                added_ns: time_ns,
                previous_keys: Vec::new(),
            },
        );
    }
    Outcome::OperatorSet {
        name: name.to_owned(),
    }
}

/// Applies `RemoveOperator`.
pub(crate) fn remove(ops: &mut Operators, name: &str) -> Outcome {
    let Some(record) = ops.get(name) else {
        return Outcome::Rejected(format!(
            "no operator named `{}`",
            name.chars().take(MAX_NAME + 8).collect::<String>()
        ));
    };
    if record.role == Role::Admin && admins(ops) == 1 {
        return Outcome::Rejected(format!(
            "{name} is the last admin; the last admin cannot be removed (add another admin first)"
        ));
    }
    ops.remove(name);
    Outcome::OperatorRemoved {
        name: name.to_owned(),
    }
}

mod rotate;
pub(crate) use rotate::rotate;
pub use rotate::{MAX_PREVIOUS_KEYS, rotation_statement};

#[cfg(test)]
mod tests;
