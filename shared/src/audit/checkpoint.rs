//! Signed tree heads: C2SP checkpoints (`c2sp.org/tlog-checkpoint`) in C2SP signed notes
//! (`c2sp.org/signed-note`), signed with the origin's Ed25519 log key.
//!
//! ```text
//! origin.example/audit/org_0192…          <- the log: the key's name, then the chain id
//! 42                                      <- tree size
//! nND/nri//U0xuHUrYSy0HtMeal2vzD9V4k/BO79C+QeI=   <- root hash, base64
//!
//! — origin.example/audit Az3grlYN…        <- key name, base64(key id || signature)
//! ```
//!
//! One key signs every chain's checkpoints; its *verifier key*
//! (`<name>+<key id hex>+<base64(0x01 || public key)>`, as Go's `sumdb/note` writes it) is what
//! a verifier pins. The note format is small and written here (with `ed25519-dalek`): the
//! signed-note crate of the same project needs `std` randomness, which the wasm32 build refuses.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use tlog_tiles::Checkpoint;

use super::tree::Hash;

/// A tree head: how many leaves, and their root.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TreeHead {
    pub size: u64,
    pub root: Hash,
}

/// Why a checkpoint cannot be made or trusted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("the log key is not valid: {0}")]
    BadKey(&'static str),
    #[error("the checkpoint is malformed")]
    Malformed,
    #[error("the checkpoint carries no valid signature by the log key")]
    BadSignature,
    #[error("the checkpoint is for another log ({0})")]
    OtherLog(String),
}

/// `0x01`: the signed-note signature type of Ed25519.
const ALG_ED25519: u8 = 1;
/// What starts a signature line: an em dash and a space.
const SIGNATURE_PREFIX: &str = "\u{2014} ";
/// The largest note this code reads (a checkpoint is a few hundred bytes).
const MAX_NOTE: usize = 64 * 1024;

/// A key name as signed notes allow it: not empty, no spaces, no `+`.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// The key id: the first four bytes of SHA-256(name || 0x0A || 0x01 || public key).
fn key_id(name: &str, key: &VerifyingKey) -> u32 {
    let digest = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update(b"\n")
        .chain_update([ALG_ED25519])
        .chain_update(key.as_bytes())
        .finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// The origin's log-signing key (Ed25519) and the name its signatures carry.
pub struct LogKey {
    name: String,
    key: SigningKey,
}

impl LogKey {
    /// The key of `seed` (32 bytes) under `name` (no spaces, no `+`).
    pub fn from_seed(name: &str, seed: &[u8]) -> Result<LogKey, CheckpointError> {
        if !valid_name(name) {
            return Err(CheckpointError::BadKey(
                "its name is empty or has a space or a plus",
            ));
        }
        let seed: [u8; 32] = seed
            .try_into()
            .map_err(|_| CheckpointError::BadKey("an Ed25519 seed has 32 bytes"))?;
        Ok(LogKey {
            name: name.to_owned(),
            key: SigningKey::from_bytes(&seed),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verifier key a verifier pins: `<name>+<key id, 8 hex>+<base64(0x01 || public key)>`.
    pub fn verifier_key(&self) -> String {
        let public = self.key.verifying_key();
        let mut encoded = vec![ALG_ED25519];
        encoded.extend_from_slice(public.as_bytes());
        format!(
            "{}+{:08x}+{}",
            self.name,
            key_id(&self.name, &public),
            BASE64.encode(encoded)
        )
    }

    /// The checkpoint of `head` for chain `chain_id`, as a signed note.
    pub fn sign(&self, chain_id: &str, head: &TreeHead) -> Result<String, CheckpointError> {
        let body = Checkpoint::new(&log_origin(&self.name, chain_id), head.size, head.root, "")
            .map_err(|_| CheckpointError::Malformed)?
            .to_bytes();
        let text = String::from_utf8(body).map_err(|_| CheckpointError::Malformed)?;
        let mut signature = key_id(&self.name, &self.key.verifying_key())
            .to_be_bytes()
            .to_vec();
        signature.extend_from_slice(&self.key.sign(text.as_bytes()).to_bytes());
        Ok(format!(
            "{text}\n{SIGNATURE_PREFIX}{} {}\n",
            self.name,
            BASE64.encode(signature)
        ))
    }
}

impl std::fmt::Debug for LogKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogKey")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A parsed verifier key.
struct Verifier {
    name: String,
    id: u32,
    key: VerifyingKey,
}

impl Verifier {
    fn parse(text: &str) -> Result<Verifier, CheckpointError> {
        let bad = CheckpointError::BadKey("not a verifier key (name+id+key)");
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad);
        };
        let key = BASE64.decode(key).map_err(|_| bad.clone())?;
        let (Some(&ALG_ED25519), Some(public)) = (key.first(), key.get(1..)) else {
            return Err(CheckpointError::BadKey("not an Ed25519 key"));
        };
        let public: [u8; 32] = public.try_into().map_err(|_| bad.clone())?;
        let key = VerifyingKey::from_bytes(&public).map_err(|_| bad.clone())?;
        let id = u32::from_str_radix(id, 16).map_err(|_| bad.clone())?;
        if !valid_name(name) || id != key_id(name, &key) {
            return Err(CheckpointError::BadKey(
                "its id does not match its name and key",
            ));
        }
        Ok(Verifier {
            name: name.to_owned(),
            id,
            key,
        })
    }

    /// Whether one of the note's signature lines is a valid signature of `text` by this key
    /// (lines of other keys, e.g. witnesses', are passed over).
    fn signed(&self, text: &str, signatures: &str) -> bool {
        signatures.lines().any(|line| {
            let Some((name, encoded)) = line
                .strip_prefix(SIGNATURE_PREFIX)
                .and_then(|rest| rest.split_once(' '))
            else {
                return false;
            };
            let Ok(bytes) = BASE64.decode(encoded) else {
                return false;
            };
            let (Some(id), Some(signature)) = (bytes.get(..4), bytes.get(4..)) else {
                return false;
            };
            let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else {
                return false;
            };
            name == self.name
                && id == self.id.to_be_bytes()
                && self.key.verify_strict(text.as_bytes(), &signature).is_ok()
        })
    }
}

/// The checkpoint origin line of chain `chain_id` in the log signed by key `key_name`.
pub fn log_origin(key_name: &str, chain_id: &str) -> String {
    format!("{key_name}/{chain_id}")
}

/// Opens a checkpoint of chain `chain_id`: a signed note (text, a blank line, signature lines)
/// that carries a valid signature by the key `verifier_key` names, for that chain.
pub fn open(note: &str, verifier_key: &str, chain_id: &str) -> Result<TreeHead, CheckpointError> {
    let verifier = Verifier::parse(verifier_key)?;
    if note.len() > MAX_NOTE || !note.ends_with('\n') {
        return Err(CheckpointError::Malformed);
    }
    let split = note.rfind("\n\n").ok_or(CheckpointError::Malformed)?;
    let (text, signatures) = (&note[..=split], &note[split + 2..]);
    if !verifier.signed(text, signatures) {
        return Err(CheckpointError::BadSignature);
    }
    let checkpoint =
        Checkpoint::from_bytes(text.as_bytes()).map_err(|_| CheckpointError::Malformed)?;
    if checkpoint.origin() != log_origin(&verifier.name, chain_id) {
        return Err(CheckpointError::OtherLog(checkpoint.origin().to_owned()));
    }
    Ok(TreeHead {
        size: checkpoint.size(),
        root: *checkpoint.hash(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::tree;

    const CHAIN: &str = "org_0192f2a4c3b87d9e8f1a2b3c4d5e6f71";

    fn key() -> LogKey {
        LogKey::from_seed("origin.test/audit", &[7; 32]).unwrap()
    }

    #[test]
    fn a_signed_checkpoint_opens_with_the_verifier_key() {
        let head = TreeHead {
            size: 3,
            root: tree::leaf_hash(b"x"),
        };
        let note = key().sign(CHAIN, &head).unwrap();
        let mut lines = note.lines();
        assert_eq!(
            lines.next(),
            Some("origin.test/audit/org_0192f2a4c3b87d9e8f1a2b3c4d5e6f71")
        );
        assert_eq!(lines.next(), Some("3"));
        assert_eq!(lines.next(), Some(head.root.to_string().as_str()));
        assert_eq!(lines.next(), Some(""));
        assert!(lines
            .next()
            .unwrap()
            .starts_with("\u{2014} origin.test/audit "));
        assert_eq!(open(&note, &key().verifier_key(), CHAIN), Ok(head));
        // The whole note, signed apart from this code (Python's `cryptography`, per
        // c2sp.org/signed-note and c2sp.org/tlog-checkpoint).
        assert_eq!(
            note,
            "origin.test/audit/org_0192f2a4c3b87d9e8f1a2b3c4d5e6f71\n3\n\
             PH6byTDck/AfppmF7yQtn56GHzxTVaokzl70tLinDMs=\n\n\u{2014} origin.test/audit \
             3quBhz9dODDF76LB4YYODrUTGJyUwtR1+8h/IQyQP+xRiAIXkGYm5e4j6Gg1vmfvmJmtji3OgJVCgekqO52kCdZqYwQ=\n"
        );
        // A golden verifier key, computed apart from this code (Python's `cryptography` and
        // hashlib, per c2sp.org/signed-note): a change in the key id or the encoding fails here.
        assert_eq!(
            key().verifier_key(),
            "origin.test/audit+deab8187+AepKbGPinFIKvvVQexMuxfmVR3auvr57kkIe6mkURtIs"
        );
    }

    #[test]
    fn a_checkpoint_is_refused_when_anything_is_off() {
        let head = TreeHead {
            size: 3,
            root: tree::leaf_hash(b"x"),
        };
        let note = key().sign(CHAIN, &head).unwrap();
        let vkey = key().verifier_key();
        // Another chain's checkpoint does not pass for this one.
        assert!(matches!(
            open(&note, &vkey, "org_0192f2a4c3b87d9e8f1a2b3c4d5e6f7f"),
            Err(CheckpointError::OtherLog(_))
        ));
        // Another key's signature.
        let other = LogKey::from_seed("origin.test/audit", &[8; 32]).unwrap();
        assert_eq!(
            open(&note, &other.verifier_key(), CHAIN),
            Err(CheckpointError::BadSignature)
        );
        // A size or a root changed after signing.
        let bigger = note.replacen("\n3\n", "\n4\n", 1);
        assert_eq!(
            open(&bigger, &vkey, CHAIN),
            Err(CheckpointError::BadSignature)
        );
        let forged = key()
            .sign(
                CHAIN,
                &TreeHead {
                    size: 3,
                    root: tree::leaf_hash(b"y"),
                },
            )
            .unwrap();
        let spliced = format!(
            "{}{}",
            &forged[..forged.find("\n\n").unwrap()],
            &note[note.find("\n\n").unwrap()..]
        );
        assert_eq!(
            open(&spliced, &vkey, CHAIN),
            Err(CheckpointError::BadSignature)
        );
        assert_eq!(
            open("not a note", &vkey, CHAIN),
            Err(CheckpointError::Malformed)
        );
        assert!(matches!(
            open(&note, "garbage", CHAIN),
            Err(CheckpointError::BadKey(_))
        ));
        assert!(LogKey::from_seed("has space", &[1; 32]).is_err());
        assert!(LogKey::from_seed("ok", &[1; 31]).is_err());
    }
}
