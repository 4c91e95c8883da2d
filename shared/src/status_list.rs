//! Token status lists (IETF draft-ietf-oauth-status-list; SPEC §16): every passport has a fixed
//! place in a list of 2-bit statuses, the origin signs each list as a `statuslist+jwt` token, the
//! edge serves it at `GET /status/{list_id}`, and every access token names its subject's place
//! (`status: { status_list: { idx, uri } }`), so a verifier holding the JWKS and the list can
//! refuse a suspended agent's token without asking the registry.
//!
//! **Encoding.** A list of `bits`-bit entries is a byte array in which entry `i` sits in byte
//! `i * bits / 8`, starting at bit `(i * bits) % 8` counted from the least significant bit. The
//! array is compressed with DEFLATE in the zlib format (RFC 1950/1951) and written as unpadded
//! base64url: `{ "bits": 2, "lst": "eNo…" }`.
//!
//! **Values** (2 bits): `0` active (the draft's VALID), `1` revoked (INVALID), `2` suspended
//! (SUSPENDED), `3` draft — not active yet (the first application-specific value, which this
//! registry gives that meaning).
//!
//! **Places.** A passport's place is one number `n`, given at registration and never changed:
//! list `n / LIST_SIZE`, entry `n % LIST_SIZE`. Lists always hold [`LIST_SIZE`] entries (places
//! not given yet read `0`; no token names them), so a list's size says nothing about how many
//! agents it holds.

use std::io::{Read, Write};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use p256::ecdsa::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::jws::{self, Header, TokenError};
use crate::passport::Status;

/// The `typ` of a status list token.
pub const TYP: &str = "statuslist+jwt";
/// The media type the edge serves a status list token as.
pub const MEDIA_TYPE: &str = "application/statuslist+jwt";
/// Bits per entry in the registry's lists.
pub const BITS: u8 = 2;
/// Entries per list: 65,536 (16 KiB before compression; a few dozen bytes while mostly zero).
pub const LIST_SIZE: u64 = 1 << 16;
/// The longest `ttl` the origin writes: the deployed propagation bound (SPEC §10, §16).
pub const MAX_TTL_SECONDS: u64 = 15;
/// The longest status list token [`verify`] reads (a full list of random 2-bit values is
/// ~22 KiB of base64url; the registry's lists are far smaller).
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

/// What a list says of one passport (2 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ListStatus {
    /// `0`: the passport is active (the draft's VALID).
    Active = 0,
    /// `1`: revoked, for good (the draft's INVALID).
    Revoked = 1,
    /// `2`: suspended, possibly for a while (the draft's SUSPENDED).
    Suspended = 2,
    /// `3`: a draft, not active yet (application-specific).
    NotActiveYet = 3,
}

impl ListStatus {
    /// The value written in the list.
    pub const fn value(self) -> u8 {
        self as u8
    }

    /// The status a 2-bit value means (`None` above 3).
    pub const fn from_value(value: u8) -> Option<ListStatus> {
        match value {
            0 => Some(ListStatus::Active),
            1 => Some(ListStatus::Revoked),
            2 => Some(ListStatus::Suspended),
            3 => Some(ListStatus::NotActiveYet),
            _ => None,
        }
    }
}

impl From<Status> for ListStatus {
    fn from(status: Status) -> ListStatus {
        match status {
            Status::Active => ListStatus::Active,
            Status::Revoked => ListStatus::Revoked,
            Status::Suspended => ListStatus::Suspended,
            Status::Draft => ListStatus::NotActiveYet,
        }
    }
}

/// Why a list could not be read or written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StatusListError {
    #[error("a status list has 1, 2, 4 or 8 bits per entry, not {0}")]
    BadBits(u8),
    #[error("entry {index} is outside a list of {len}")]
    OutOfRange { index: u64, len: u64 },
    #[error("{value} does not fit in {bits} bits")]
    ValueTooLarge { value: u8, bits: u8 },
    #[error("`lst` is not unpadded base64url")]
    BadBase64,
    #[error("`lst` is not a zlib stream")]
    BadCompression,
    #[error("`lst` holds more than {max} bytes")]
    TooLarge { max: usize },
}

/// A list of statuses, `bits` bits each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusList {
    bits: u8,
    bytes: Vec<u8>,
}

impl StatusList {
    /// A list of `len` entries of `bits` bits, all `0`.
    pub fn new(bits: u8, len: u64) -> Result<StatusList, StatusListError> {
        check_bits(bits)?;
        let total_bits = len.saturating_mul(u64::from(bits));
        let bytes =
            usize::try_from(total_bits.div_ceil(8)).map_err(|_| StatusListError::TooLarge {
                max: usize::MAX / 8,
            })?;
        Ok(StatusList {
            bits,
            bytes: vec![0; bytes],
        })
    }

    /// One of the registry's lists: [`LIST_SIZE`] entries of [`BITS`] bits, all active.
    pub fn registry() -> StatusList {
        StatusList {
            bits: BITS,
            bytes: vec![0; (LIST_SIZE * u64::from(BITS) / 8) as usize],
        }
    }

    /// A list over an uncompressed byte array.
    pub fn from_bytes(bits: u8, bytes: Vec<u8>) -> Result<StatusList, StatusListError> {
        check_bits(bits)?;
        Ok(StatusList { bits, bytes })
    }

    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// How many entries the list holds (every bit of its bytes counts).
    pub fn len(&self) -> u64 {
        (self.bytes.len() as u64) * 8 / u64::from(self.bits)
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The uncompressed byte array.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Where entry `index` sits: its byte and the shift of its lowest bit.
    fn place(&self, index: u64) -> Result<(usize, u32), StatusListError> {
        let len = self.len();
        if index >= len {
            return Err(StatusListError::OutOfRange { index, len });
        }
        let bit = index * u64::from(self.bits);
        // `index < len` keeps the byte inside the array, which is addressable.
        Ok(((bit / 8) as usize, (bit % 8) as u32))
    }

    fn mask(&self) -> u8 {
        // 1 → 0b1, 2 → 0b11, 4 → 0b1111, 8 → 0xff.
        (((1u16) << self.bits) - 1) as u8
    }

    /// The value of entry `index`.
    pub fn get(&self, index: u64) -> Result<u8, StatusListError> {
        let (byte, shift) = self.place(index)?;
        let value = self.bytes.get(byte).copied().unwrap_or_default();
        Ok((value >> shift) & self.mask())
    }

    /// Sets entry `index` to `value`, leaving every other entry as it was.
    pub fn set(&mut self, index: u64, value: u8) -> Result<(), StatusListError> {
        if value > self.mask() {
            return Err(StatusListError::ValueTooLarge {
                value,
                bits: self.bits,
            });
        }
        let (byte, shift) = self.place(index)?;
        let mask = self.mask() << shift;
        if let Some(slot) = self.bytes.get_mut(byte) {
            *slot = (*slot & !mask) | (value << shift);
        }
        Ok(())
    }

    /// The status of entry `index` of a 2-bit list.
    pub fn status(&self, index: u64) -> Result<ListStatus, StatusListError> {
        let value = self.get(index)?;
        ListStatus::from_value(value).ok_or(StatusListError::ValueTooLarge { value, bits: BITS })
    }

    /// The `status_list` claim: zlib at the best compression, unpadded base64url.
    pub fn encode(&self) -> EncodedList {
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        // Writing into a Vec cannot fail.
        let compressed = encoder
            .write_all(&self.bytes)
            .and_then(|()| encoder.finish())
            .unwrap_or_default();
        EncodedList {
            bits: self.bits,
            lst: URL_SAFE_NO_PAD.encode(compressed),
        }
    }

    /// Reads a `status_list` claim, refusing one that inflates past `max_bytes` (a small
    /// compressed list could otherwise claim gigabytes).
    pub fn decode(encoded: &EncodedList, max_bytes: usize) -> Result<StatusList, StatusListError> {
        check_bits(encoded.bits)?;
        let compressed = URL_SAFE_NO_PAD
            .decode(&encoded.lst)
            .map_err(|_| StatusListError::BadBase64)?;
        let mut bytes = Vec::new();
        flate2::read::ZlibDecoder::new(compressed.as_slice())
            .take(max_bytes as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|_| StatusListError::BadCompression)?;
        if bytes.len() > max_bytes {
            return Err(StatusListError::TooLarge { max: max_bytes });
        }
        Ok(StatusList {
            bits: encoded.bits,
            bytes,
        })
    }
}

fn check_bits(bits: u8) -> Result<(), StatusListError> {
    match bits {
        1 | 2 | 4 | 8 => Ok(()),
        other => Err(StatusListError::BadBits(other)),
    }
}

/// The `status_list` claim of a status list token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncodedList {
    pub bits: u8,
    /// base64url(zlib(bytes)), unpadded.
    pub lst: String,
}

/// The claims of a status list token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListClaims {
    /// The list's own URI: what referenced tokens name in `status.status_list.uri`.
    pub sub: String,
    /// The registry (`VOUCH_ISSUER`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// How long a verifier may keep this copy before it fetches the list again, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u64>,
    pub status_list: EncodedList,
}

impl ListClaims {
    /// Signs the claims as a `statuslist+jwt` (ES256, the token key).
    pub fn sign(&self, key: &SigningKey, kid: &str) -> String {
        // Strings and integers: serializing cannot fail.
        let payload = serde_json::to_vec(self).unwrap_or_default();
        jws::sign_typed(&payload, key, kid, TYP)
    }
}

/// Why a status list token is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ListTokenError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("the list is {found:?}, not the one the token names ({expected:?})")]
    WrongList { expected: String, found: String },
    #[error("the status list token has expired")]
    Expired,
    #[error("the status list token was issued in the future")]
    IssuedInFuture,
    #[error(transparent)]
    List(#[from] StatusListError),
}

/// Verifies a status list token for the list at `uri` at `now_seconds` (allowing
/// `skew_seconds` either way): `typ` `statuslist+jwt`, ES256 with a key `keys` knows, `sub`
/// equal to `uri`, `exp` (when present) not passed, `iat` not in the future; returns the header,
/// the claims and the decoded list. How old a copy may be is the caller's rule (its `ttl`).
pub fn verify(
    token: &str,
    keys: &dyn Fn(&str) -> Option<VerifyingKey>,
    uri: &str,
    now_seconds: i64,
    skew_seconds: u32,
) -> Result<(Header, ListClaims, StatusList), ListTokenError> {
    let (header, payload) = jws::verify_typed(token, keys, MAX_TOKEN_LEN, TYP)?;
    let claims: ListClaims =
        serde_json::from_slice(&payload).map_err(|e| TokenError::BadClaims(e.to_string()))?;
    if claims.sub != uri {
        return Err(ListTokenError::WrongList {
            expected: uri.to_owned(),
            found: claims.sub,
        });
    }
    let skew = i64::from(skew_seconds.min(crate::token::MAX_SKEW_SECONDS));
    if claims
        .exp
        .is_some_and(|exp| now_seconds >= exp.saturating_add(skew))
    {
        return Err(ListTokenError::Expired);
    }
    if claims.iat > now_seconds.saturating_add(skew) {
        return Err(ListTokenError::IssuedInFuture);
    }
    // A list of LIST_SIZE 8-bit entries is the most this reads.
    let list = StatusList::decode(&claims.status_list, LIST_SIZE as usize)?;
    Ok((header, claims, list))
}

/// A referenced token's `status` claim: `{ "status_list": { "idx", "uri" } }`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusClaim {
    pub status_list: StatusRef,
}

/// Where a token's subject sits: entry `idx` of the list at `uri`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusRef {
    pub idx: u64,
    pub uri: String,
}

/// The list a place `n` falls in, and its entry there.
pub fn locate(place: u64) -> (u64, u64) {
    (place / LIST_SIZE, place % LIST_SIZE)
}

/// The places list `list_id` covers: `[start, end)`.
pub fn places_of(list_id: u64) -> (u64, u64) {
    let start = list_id.saturating_mul(LIST_SIZE);
    (start, start.saturating_add(LIST_SIZE))
}

/// The URI of list `list_id` under `base` (the edge's URL): `{base}/status/{list_id}`.
pub fn list_uri(base: &str, list_id: u64) -> String {
    format!("{}/status/{list_id}", base.trim_end_matches('/'))
}

/// The `status` claim for place `n` under `base`.
pub fn claim(base: &str, place: u64) -> StatusClaim {
    let (list_id, idx) = locate(place);
    StatusClaim {
        status_list: StatusRef {
            idx,
            uri: list_uri(base, list_id),
        },
    }
}

/// The KV key of list `list_id` (SPEC §9's documents): `status:{list_id}`.
pub fn kv_key(list_id: u64) -> String {
    format!("status:{list_id}")
}

/// The list a KV key names, if it is one (`status:{decimal}`, no sign, no leading zeros).
pub fn list_of_key(key: &str) -> Option<u64> {
    parse_list_id(key.strip_prefix("status:")?)
}

/// A list id as the edge's path carries it: decimal digits, no sign, no leading zeros.
pub fn parse_list_id(raw: &str) -> Option<u64> {
    let canonical = !raw.is_empty()
        && raw.bytes().all(|b| b.is_ascii_digit())
        && (raw == "0" || !raw.starts_with('0'));
    canonical.then(|| raw.parse().ok()).flatten()
}

/// The document the origin publishes under [`kv_key`] (inside the usual versioned document):
/// the signed token, served as is, and its `ttl`, which bounds the edge's `Cache-Control`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListDocument {
    pub token: String,
    pub ttl: u64,
}

#[cfg(test)]
mod tests;
