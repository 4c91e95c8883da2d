//! The master key (`VOUCH_MASTER_KEY`, 32 bytes in base64) that encrypts signing keys at rest,
//! with XChaCha20-Poly1305: a random 192-bit nonce per seal, the key id as associated data (a
//! sealed key cannot be moved to another row), and a version prefix so the scheme can change.

use std::path::Path;

use anyhow::{anyhow, bail, Context};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::RngCore;

const SEALED_PREFIX: &str = "v1.";
const NONCE_LEN: usize = 24;
/// The file a development master key is generated into, inside the data directory.
pub const DEV_KEY_FILE: &str = "vouch-master.key";

pub struct MasterKey(Key);

impl MasterKey {
    /// From base64 of exactly 32 bytes.
    pub fn from_base64(encoded: &str) -> anyhow::Result<Self> {
        let bytes = STANDARD
            .decode(encoded.trim())
            .context("VOUCH_MASTER_KEY is not base64")?;
        if bytes.len() != 32 {
            bail!(
                "VOUCH_MASTER_KEY must be 32 bytes (base64 of 32 random bytes), not {}",
                bytes.len()
            );
        }
        Ok(MasterKey(*Key::from_slice(&bytes)))
    }

    /// The configured key; else the development key file in `data_dir`, generated (with a
    /// warning) the first time. Returns the key and whether it is a development key.
    pub fn load_or_generate(
        configured: Option<&str>,
        data_dir: &Path,
    ) -> anyhow::Result<(Self, bool)> {
        if let Some(encoded) = configured {
            return Ok((MasterKey::from_base64(encoded)?, false));
        }
        let path = data_dir.join(DEV_KEY_FILE);
        if let Ok(encoded) = std::fs::read_to_string(&path) {
            return Ok((MasterKey::from_base64(&encoded)?, true));
        }
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        write_private(&path, STANDARD.encode(bytes).as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok((MasterKey(*Key::from_slice(&bytes)), true))
    }

    /// Encrypts `plaintext`, bound to `context` (e.g. the key id).
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> anyhow::Result<String> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let cipher = XChaCha20Poly1305::new(&self.0);
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            .map_err(|_| anyhow!("encryption failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{SEALED_PREFIX}{}", STANDARD.encode(out)))
    }

    /// Decrypts what [`MasterKey::seal`] produced with the same `context`.
    pub fn open(&self, sealed: &str, context: &[u8]) -> anyhow::Result<Vec<u8>> {
        let encoded = sealed
            .strip_prefix(SEALED_PREFIX)
            .ok_or_else(|| anyhow!("unknown sealing scheme"))?;
        let bytes = STANDARD
            .decode(encoded)
            .context("sealed value is not base64")?;
        if bytes.len() <= NONCE_LEN {
            bail!("sealed value is too short");
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        XChaCha20Poly1305::new(&self.0)
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context,
                },
            )
            .map_err(|_| anyhow!("cannot decrypt: wrong master key, or the value was altered"))
    }
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open() {
        let key = MasterKey::from_base64(&STANDARD.encode([7u8; 32])).unwrap();
        let sealed = key.seal(b"secret scalar", b"kid-1").unwrap();
        assert!(sealed.starts_with("v1."));
        assert_eq!(key.open(&sealed, b"kid-1").unwrap(), b"secret scalar");
        assert!(key.open(&sealed, b"kid-2").is_err(), "bound to its context");
        let other = MasterKey::from_base64(&STANDARD.encode([8u8; 32])).unwrap();
        assert!(other.open(&sealed, b"kid-1").is_err(), "wrong master key");
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(key.open(&tampered, b"kid-1").is_err());
        assert_ne!(
            key.seal(b"x", b"k").unwrap(),
            key.seal(b"x", b"k").unwrap(),
            "fresh nonces"
        );
    }

    #[test]
    fn key_shapes_and_dev_generation() {
        assert!(MasterKey::from_base64("not base64!").is_err());
        assert!(MasterKey::from_base64(&STANDARD.encode([1u8; 16])).is_err());
        let dir = tempfile::tempdir().unwrap();
        let (first, dev) = MasterKey::load_or_generate(None, dir.path()).unwrap();
        assert!(dev);
        let (again, _) = MasterKey::load_or_generate(None, dir.path()).unwrap();
        let sealed = first.seal(b"x", b"k").unwrap();
        assert_eq!(
            again.open(&sealed, b"k").unwrap(),
            b"x",
            "the generated key is kept"
        );
        let configured = STANDARD.encode([9u8; 32]);
        let (_, dev) = MasterKey::load_or_generate(Some(&configured), dir.path()).unwrap();
        assert!(!dev);
    }
}
