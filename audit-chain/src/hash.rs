//! The SHA-256 chain hash and its 64-digit lowercase hex form.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A SHA-256 chain hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ChainHash(pub [u8; 32]);

impl ChainHash {
    /// The `prev_hash` of the first record of every chain: 64 zeros.
    pub const GENESIS: ChainHash = ChainHash([0; 32]);

    /// SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        ChainHash(Sha256::digest(bytes).into())
    }

    /// SHA-256 of several pieces, as if they were one run of bytes.
    pub fn of_parts(parts: &[&[u8]]) -> Self {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update(part);
        }
        ChainHash(hasher.finalize().into())
    }

    /// The 64-character lowercase hex form.
    pub fn to_hex(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        hex::encode_to_slice(self.0, &mut out).expect("64 bytes for 32");
        out
    }

    /// Parses 64 lowercase hex digits (uppercase is rejected: the contract says lowercase).
    pub fn from_hex(text: &[u8]) -> Option<Self> {
        // Verification decodes two hashes per record: a table lookup per digit keeps that
        // well below the cost of the SHA-256 it checks.
        const INVALID: u8 = 0xff;
        const TABLE: [u8; 256] = {
            let mut t = [INVALID; 256];
            let mut i = 0;
            while i < 10 {
                t[b'0' as usize + i] = i as u8;
                i += 1;
            }
            let mut i = 0;
            while i < 6 {
                t[b'a' as usize + i] = 10 + i as u8;
                i += 1;
            }
            t
        };
        let text: &[u8; 64] = text.try_into().ok()?;
        let mut out = [0u8; 32];
        let mut bad = 0u8;
        for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
            let (hi, lo) = (TABLE[pair[0] as usize], TABLE[pair[1] as usize]);
            bad |= (hi | lo) & 0xf0;
            *byte = (hi << 4) | (lo & 0x0f);
        }
        (bad == 0).then_some(ChainHash(out))
    }
}

impl fmt::Display for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::str::from_utf8(&self.to_hex()).expect("hex is ascii"))
    }
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainHash({self})")
    }
}

impl Serialize for ChainHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(std::str::from_utf8(&self.to_hex()).expect("hex is ascii"))
    }
}

impl<'de> Deserialize<'de> for ChainHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        ChainHash::from_hex(text.as_bytes()).ok_or_else(|| serde::de::Error::custom("expected 64 lowercase hex digits"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_lowercase_only() {
        let h = ChainHash::of(b"abc");
        assert_eq!(
            h.to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(ChainHash::from_hex(&h.to_hex()), Some(h));
        let upper = h.to_string().to_uppercase();
        assert_eq!(ChainHash::from_hex(upper.as_bytes()), None);
        assert_eq!(ChainHash::of_parts(&[b"a", b"bc"]), h);
    }
}
