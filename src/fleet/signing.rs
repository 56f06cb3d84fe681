//! Signed commands: Ed25519 over the topic, a timestamp, a nonce, the command id and the payload.
//!
//! A signed command carries MQTT v5 user properties `ts` (milliseconds since the epoch), `nonce`
//! (8 to 64 printable ASCII characters, never reused) and `sig` (base64 of the 64-byte
//! signature). The signed bytes are [`signed_bytes`]. A box with a fleet public key refuses any
//! command whose signature does not verify, whose timestamp is outside the window, or whose nonce
//! it has already seen within the window, with the error code `unauthorized`.

use crate::command::{CommandError, ErrorCode};
/// The key parsers live in config, which checks `[fleet.signing] public_key` on load.
pub use crate::config::{parse_public_key, parse_signing_key};
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier as _, VerifyingKey};
use std::collections::HashMap;

/// The user property with the timestamp.
pub const PROP_TS: &str = "ts";
/// The user property with the nonce.
pub const PROP_NONCE: &str = "nonce";
/// The user property with the signature.
pub const PROP_SIG: &str = "sig";
/// Most nonces remembered; beyond it, commands are refused until old ones expire.
const MAX_NONCES: usize = 100_000;

/// The bytes a signature covers.
pub fn signed_bytes(topic: &str, ts_ms: u64, nonce: &str, id: &str, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(64 + topic.len() + payload.len());
    m.extend_from_slice(b"roombox-cmd-v1\n");
    m.extend_from_slice(topic.as_bytes());
    m.push(b'\n');
    m.extend_from_slice(ts_ms.to_string().as_bytes());
    m.push(b'\n');
    m.extend_from_slice(nonce.as_bytes());
    m.push(b'\n');
    m.extend_from_slice(id.as_bytes());
    m.push(b'\n');
    m.extend_from_slice(payload);
    m
}

/// A new random key pair: (private base64, public base64).
pub fn generate() -> (String, String) {
    let seed: [u8; 32] = rand::random();
    let key = SigningKey::from_bytes(&seed);
    let b64 = base64::engine::general_purpose::STANDARD;
    (
        b64.encode(key.to_bytes()),
        b64.encode(key.verifying_key().to_bytes()),
    )
}

/// Signs a command: the user properties to add (`ts`, `nonce`, `sig`).
pub fn sign(
    key: &SigningKey,
    topic: &str,
    ts_ms: u64,
    nonce: &str,
    id: &str,
    payload: &[u8],
) -> Vec<(String, String)> {
    let sig = key.sign(&signed_bytes(topic, ts_ms, nonce, id, payload));
    vec![
        (PROP_TS.into(), ts_ms.to_string()),
        (PROP_NONCE.into(), nonce.into()),
        (
            PROP_SIG.into(),
            base64::engine::general_purpose::STANDARD.encode(sig.to_bytes()),
        ),
    ]
}

/// The outcome of a successful check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// First time this nonce is seen.
    Fresh,
    /// A valid signature whose nonce was seen before: a re-delivery or a replay.
    SeenNonce,
}

/// Checks signatures and remembers nonces.
#[derive(Debug)]
pub struct Verifier {
    key: VerifyingKey,
    window_ms: u64,
    /// Nonce -> the timestamp it came with.
    seen: HashMap<String, u64>,
}

fn unauthorized(message: impl Into<String>) -> CommandError {
    CommandError::new(ErrorCode::Unauthorized, message)
}

impl Verifier {
    /// A verifier for one public key and a window in milliseconds.
    pub fn new(key: VerifyingKey, window_ms: u64) -> Verifier {
        Verifier {
            key,
            window_ms,
            seen: HashMap::new(),
        }
    }

    /// Checks one command's signature, timestamp and nonce at time `now_ms`.
    pub fn check(
        &mut self,
        topic: &str,
        id: &str,
        payload: &[u8],
        props: &[(String, String)],
        now_ms: u64,
    ) -> Result<Checked, CommandError> {
        let get = |k: &str| props.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let (Some(ts), Some(nonce), Some(sig)) = (get(PROP_TS), get(PROP_NONCE), get(PROP_SIG))
        else {
            return Err(unauthorized(
                "commands must be signed: user properties ts, nonce and sig are required",
            ));
        };
        let ts: u64 = ts
            .parse()
            .map_err(|_| unauthorized("ts must be milliseconds since the epoch"))?;
        if nonce.len() < 8 || nonce.len() > 64 || !nonce.chars().all(|c| c.is_ascii_graphic()) {
            return Err(unauthorized(
                "nonce must be 8 to 64 printable ASCII characters",
            ));
        }
        let sig = base64::engine::general_purpose::STANDARD
            .decode(sig)
            .ok()
            .and_then(|b| Signature::from_slice(&b).ok())
            .ok_or_else(|| unauthorized("sig is not a base64 Ed25519 signature"))?;
        self.key
            .verify(&signed_bytes(topic, ts, nonce, id, payload), &sig)
            .map_err(|_| unauthorized("bad signature"))?;
        if ts.abs_diff(now_ms) > self.window_ms {
            return Err(unauthorized(format!(
                "timestamp is {} ms from this box's clock; the window is {} ms",
                ts.abs_diff(now_ms),
                self.window_ms
            )));
        }
        self.prune(now_ms);
        if self.seen.contains_key(nonce) {
            return Ok(Checked::SeenNonce);
        }
        if self.seen.len() >= MAX_NONCES {
            return Err(unauthorized(
                "too many commands within the window; retry later",
            ));
        }
        self.seen.insert(nonce.to_string(), ts);
        Ok(Checked::Fresh)
    }

    fn prune(&mut self, now_ms: u64) {
        let w = self.window_ms;
        // A nonce can be refused by its timestamp alone once it is older than the window.
        self.seen.retain(|_, ts| ts.saturating_add(w) >= now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (SigningKey, Verifier) {
        let (sk, pk) = generate();
        let sk = parse_signing_key(&sk).unwrap();
        let pk = parse_public_key(&pk).unwrap();
        (sk, Verifier::new(pk, 60_000))
    }

    #[test]
    fn a_good_signature_passes_once_then_its_nonce_is_known() {
        let (sk, mut v) = pair();
        let props = sign(&sk, "r/b/cmd/ping", 1_000_000, "nonce-0001", "id1", b"{}");
        assert_eq!(
            v.check("r/b/cmd/ping", "id1", b"{}", &props, 1_000_500),
            Ok(Checked::Fresh)
        );
        assert_eq!(
            v.check("r/b/cmd/ping", "id1", b"{}", &props, 1_000_600),
            Ok(Checked::SeenNonce)
        );
    }

    #[test]
    fn anything_changed_breaks_the_signature() {
        let (sk, mut v) = pair();
        let props = sign(&sk, "r/b/cmd/ping", 1_000_000, "nonce-0001", "id1", b"{}");
        for (topic, id, payload) in [
            ("r/c/cmd/ping", "id1", &b"{}"[..]),
            ("r/b/cmd/ping", "id2", b"{}"),
            ("r/b/cmd/ping", "id1", b"{ }"),
        ] {
            let e = v.check(topic, id, payload, &props, 1_000_000).unwrap_err();
            assert_eq!(e.code, ErrorCode::Unauthorized);
            assert_eq!(e.message, "bad signature");
        }
        let (other, _) = pair();
        let forged = sign(
            &other,
            "r/b/cmd/ping",
            1_000_000,
            "nonce-0002",
            "id1",
            b"{}",
        );
        assert!(v
            .check("r/b/cmd/ping", "id1", b"{}", &forged, 1_000_000)
            .is_err());
    }

    #[test]
    fn old_and_future_timestamps_are_refused() {
        let (sk, mut v) = pair();
        let props = sign(&sk, "t", 1_000_000, "nonce-0001", "", b"");
        let e = v
            .check("t", "", b"", &props, 1_000_000 + 60_001)
            .unwrap_err();
        assert!(e.message.contains("window"), "{e}");
        let e = v
            .check("t", "", b"", &props, 1_000_000 - 60_001)
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::Unauthorized);
    }

    #[test]
    fn unsigned_and_malformed_are_refused() {
        let (_, mut v) = pair();
        assert!(v.check("t", "", b"", &[], 0).is_err());
        let props = vec![
            ("ts".into(), "x".into()),
            ("nonce".into(), "nonce-0001".into()),
            ("sig".into(), "AAAA".into()),
        ];
        assert!(v.check("t", "", b"", &props, 0).is_err());
        assert!(parse_public_key("AAAA").is_err());
    }
}
