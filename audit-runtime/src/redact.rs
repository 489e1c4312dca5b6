//! Redaction that still shows a change: a redacted value is written as a keyed fingerprint
//! (HMAC-SHA256 under a deployment key), never the value and never a plain hash of it, so
//! "the card number changed" is visible in a record while the card number is not, and a
//! low-entropy value (a PIN, a date of birth) cannot be found by hashing guesses.

use std::sync::{Once, RwLock};

use hmac::{KeyInit, Mac};
use serde::Serialize;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The environment variable read for the fingerprint key when none is set in code.
pub const FINGERPRINT_KEY_ENV: &str = "AUDIT_FINGERPRINT_KEY";

static KEY: RwLock<Option<Vec<u8>>> = RwLock::new(None);

/// Sets the deployment key of redaction fingerprints (at least 16 bytes: keep it secret, and
/// the same across the deployment's processes so their fingerprints compare). Without one,
/// the key comes from `AUDIT_FINGERPRINT_KEY`, or else is random for this process only.
pub fn set_fingerprint_key(key: &[u8]) -> Result<(), String> {
    if key.len() < 16 {
        return Err(format!(
            "a fingerprint key of {} bytes is too short: use at least 16 random bytes",
            key.len()
        ));
    }
    *KEY.write().unwrap_or_else(|e| e.into_inner()) = Some(key.to_vec());
    Ok(())
}

fn key() -> Vec<u8> {
    if let Some(key) = KEY.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
        return key.clone();
    }
    let mut slot = KEY.write().unwrap_or_else(|e| e.into_inner());
    slot.get_or_insert_with(|| match std::env::var(FINGERPRINT_KEY_ENV) {
        Ok(key) if key.len() >= 16 => key.into_bytes(),
        _ => {
            static WARN: Once = Once::new();
            WARN.call_once(|| {
                eprintln!(
                    "audit: no fingerprint key is set ({FINGERPRINT_KEY_ENV} or audit::set_fingerprint_key): redacted \
                     values are fingerprinted with a random key of this process, so fingerprints compare within a \
                     record but not across processes"
                )
            });
            let mut key = vec![0u8; 32];
            getrandom::fill(&mut key).expect("the operating system's random source");
            key
        }
    })
    .clone()
}

/// The keyed fingerprint of a redacted value, as written in `changes`:
/// `"[redacted:hmac-sha256:<32 hex digits>]"`, over the value's JSON text.
pub fn fingerprint<T: Serialize + ?Sized>(value: &T) -> serde_json::Value {
    let Ok(bytes) = serde_json::to_vec(value) else {
        return serde_json::Value::String(crate::REDACTED.to_owned());
    };
    let mut mac = HmacSha256::new_from_slice(&key()).expect("HMAC takes keys of any length");
    mac.update(&bytes);
    let digest = mac.finalize().into_bytes();
    serde_json::Value::String(format!("[redacted:hmac-sha256:{}]", hex::encode(&digest[..16])))
}

/// The HMAC-SHA256 key of [`fingerprint`] padded as HMAC does (`K xor ipad`, `K xor opad`,
/// 64 bytes each), for a database that computes the same fingerprint with plain SHA-256:
/// `sha256(opad || sha256(ipad || message))`.
pub fn hmac_pads() -> ([u8; 64], [u8; 64]) {
    let key = key();
    let mut block = [0u8; 64];
    if key.len() > 64 {
        let digest = <sha2::Sha256 as sha2::Digest>::digest(&key);
        block[..32].copy_from_slice(&digest);
    } else {
        block[..key.len()].copy_from_slice(&key);
    }
    let (mut ipad, mut opad) = ([0u8; 64], [0u8; 64]);
    for i in 0..64 {
        ipad[i] = block[i] ^ 0x36;
        opad[i] = block[i] ^ 0x5c;
    }
    (ipad, opad)
}

/// True for a value [`fingerprint`] (or the plain [`REDACTED`](crate::REDACTED) marker) wrote.
pub fn is_redacted(value: &serde_json::Value) -> bool {
    value
        .as_str()
        .is_some_and(|s| s == crate::REDACTED || s.starts_with("[redacted:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_show_a_change_without_the_value() {
        set_fingerprint_key(b"0123456789abcdef0123456789abcdef").unwrap();
        let a = fingerprint("4111 1111 1111 1111");
        let b = fingerprint("4111 1111 1111 1112");
        assert_ne!(a, b);
        assert_eq!(a, fingerprint("4111 1111 1111 1111"));
        assert!(is_redacted(&a));
        assert!(!a.as_str().unwrap().contains("4111"));
        // Keyed: not a plain SHA-256 of the value a guesser could recompute.
        let plain = hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(b"\"4111 1111 1111 1111\"")[..16]);
        assert!(!a.as_str().unwrap().contains(&plain));
        assert!(set_fingerprint_key(b"short").is_err());
        // The pads give the same MAC with plain SHA-256 (what a database can compute).
        use sha2::Digest;
        let (ipad, opad) = hmac_pads();
        let inner = sha2::Sha256::new()
            .chain_update(ipad)
            .chain_update(b"\"4111 1111 1111 1111\"")
            .finalize();
        let outer = sha2::Sha256::new().chain_update(opad).chain_update(inner).finalize();
        assert_eq!(
            a.as_str().unwrap(),
            format!("[redacted:hmac-sha256:{}]", hex::encode(&outer[..16]))
        );
    }
}
