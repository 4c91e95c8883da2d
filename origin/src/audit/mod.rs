//! The audit log at the origin: its Ed25519 signing key (sealed at rest with the master key)
//! and the sealer that gives recorded events their place in their chain's Merkle tree after
//! commit ([`sealer`]). The tree logic and the check order live in `vouch_core::audit`.

pub mod sealer;

use std::sync::Arc;

use rand::RngCore;
use vouch_core::audit::checkpoint::LogKey;

use crate::clock::now;
use crate::error::{Error, Result};
use crate::keys::MasterKey;
use crate::store::{AuditKeyRow, SealOutcome, Store};

pub use sealer::Sealer;

/// Pending events sealed per transaction.
pub const SEAL_BATCH: u32 = 1_000;

/// The log key and what signs and seals with it.
pub struct AuditLog {
    store: Arc<dyn Store>,
    key: LogKey,
    verifier_key: String,
}

impl AuditLog {
    /// Opens the log key, or creates it on a log that has signed nothing yet. A database whose
    /// chains are signed but whose key is gone does not start: a new key would sign a history
    /// the old checkpoints cannot vouch for.
    pub async fn start(
        store: Arc<dyn Store>,
        master: &MasterKey,
        issuer: &str,
    ) -> Result<Arc<AuditLog>> {
        if store.audit_key().await?.is_none() {
            let mut seed = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut seed);
            let name = key_name(issuer);
            let key = LogKey::from_seed(&name, &seed).map_err(Error::internal)?;
            let row = AuditKeyRow {
                verifier_key: key.verifier_key(),
                private_key: master
                    .seal(&seed, context(&name).as_bytes())
                    .map_err(Error::internal)?,
                name,
                created_at: now(),
            };
            if store.create_audit_key(&row).await? {
                tracing::info!(verifier_key = %row.verifier_key, "created the audit log key");
            }
        }
        let row = store.audit_key().await?.ok_or_else(|| {
            Error::internal(anyhow::anyhow!(
                "the audit log key is missing but audit chains are already signed: restore the \
                 audit_keys table (a new key cannot vouch for the old checkpoints)"
            ))
        })?;
        let seed = master
            .open(&row.private_key, context(&row.name).as_bytes())
            .map_err(|e| Error::internal(e.context("opening the audit log key")))?;
        let key = LogKey::from_seed(&row.name, &seed).map_err(Error::internal)?;
        if key.verifier_key() != row.verifier_key {
            return Err(Error::internal(anyhow::anyhow!(
                "the stored audit log key does not match its verifier key"
            )));
        }
        Ok(Arc::new(AuditLog {
            store,
            verifier_key: row.verifier_key,
            key,
        }))
    }

    pub fn key(&self) -> &LogKey {
        &self.key
    }

    /// What a verifier pins: `<name>+<key id>+<public key>` (docs/api.md).
    pub fn verifier_key(&self) -> &str {
        &self.verifier_key
    }

    /// Before a read of `chain_id`: seals what is pending ([`AuditLog::seal_now`]). A chain that
    /// cannot be sealed (its stored tree no longer matches its checkpoint) is logged, and the
    /// read shows what is sealed; `GET /v1/audit/verify` reports the break.
    pub async fn seal_for_read(&self, chain_id: &str) {
        if let Err(e) = self.seal_now(chain_id).await {
            tracing::error!(chain = %chain_id, error = ?e, "could not seal audit events before a read");
        }
    }

    /// Seals every event of `chain_id` recorded so far, waiting for a sealer at work on it: a
    /// read of the log right after a change sees that change in place.
    pub async fn seal_now(&self, chain_id: &str) -> Result<()> {
        loop {
            match self
                .store
                .seal_chain(chain_id, &self.key, SEAL_BATCH, true)
                .await?
            {
                SealOutcome::Sealed { .. } => continue,
                SealOutcome::Idle | SealOutcome::Busy => return Ok(()),
            }
        }
    }
}

/// The log key's name: the issuer's host (and port) and `/audit`, e.g. `registry.example/audit`.
/// Fixed when the key is made (it is part of the key id).
fn key_name(issuer: &str) -> String {
    let host = url::Url::parse(issuer).ok().and_then(|url| {
        let host = url.host_str()?.to_owned();
        Some(match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host,
        })
    });
    format!("{}/audit", host.unwrap_or_else(|| "vouch".into()))
}

/// What the sealed seed is bound to.
fn context(name: &str) -> String {
    format!("audit-key:{name}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn key_names() {
        assert_eq!(
            super::key_name("https://registry.example"),
            "registry.example/audit"
        );
        assert_eq!(
            super::key_name("http://127.0.0.1:8080/"),
            "127.0.0.1:8080/audit"
        );
        assert_eq!(super::key_name("not a url"), "vouch/audit");
    }
}
