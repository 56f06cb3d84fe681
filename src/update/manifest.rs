//! Checking an update manifest before anything is fetched or touched: its shape, its size
//! against the configured bound, and the fleet's Ed25519 signature over it.

use crate::command::{CommandError, ErrorCode, UpdateManifest};
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

/// How a manifest passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// Signed by the fleet key.
    Signed,
    /// Not signed (or no fleet key to check it with), accepted because `[update]
    /// allow_unsigned` is on.
    Unsigned,
}

/// Signs a manifest with the fleet's private key (the operator's side).
pub fn sign(manifest: &mut UpdateManifest, key: &SigningKey) {
    let sig = key.sign(&manifest.signed_bytes());
    manifest.signature = Some(base64::engine::general_purpose::STANDARD.encode(sig.to_bytes()));
}

/// The manifest of a package file to be served at `url`: its size and SHA-256, and its version
/// as given, else as `dpkg-deb` reads it from the package. Unsigned; see [`sign`].
pub fn for_package(
    package: &std::path::Path,
    url: &str,
    version: Option<String>,
) -> Result<UpdateManifest, String> {
    let size = std::fs::metadata(package)
        .map_err(|e| format!("cannot read {}: {e}", package.display()))?
        .len();
    let version = match version {
        Some(v) => v,
        None => {
            let out = std::process::Command::new("dpkg-deb")
                .arg("-f")
                .arg(package)
                .arg("Version")
                .output()
                .map_err(|e| format!("cannot run dpkg-deb (give --version): {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "{} is not a .deb dpkg-deb reads (give --version): {}",
                    package.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        }
    };
    let m = UpdateManifest {
        version,
        url: url.to_string(),
        size,
        sha256: super::download::sha256_file(package)?,
        signature: None,
    };
    m.check_shape()?;
    Ok(m)
}

/// Checks a manifest: its shape, `size` within `max_bytes`, and the signature by `key` (the
/// fleet's public key, none when `[fleet.signing]` has none). A missing or bad signature is
/// refused unless `allow_unsigned`; a present signature that does not verify is refused
/// whatever, since it says someone tried.
pub fn check(
    manifest: &UpdateManifest,
    key: Option<&VerifyingKey>,
    allow_unsigned: bool,
    max_bytes: u64,
) -> Result<Trust, CommandError> {
    manifest
        .check_shape()
        .map_err(|m| CommandError::new(ErrorCode::InvalidArgument, format!("manifest.{m}")))?;
    if manifest.size > max_bytes {
        return Err(CommandError::new(
            ErrorCode::OutOfRange,
            format!(
                "manifest.size: {} bytes is above update.max_bytes ({max_bytes})",
                manifest.size
            ),
        ));
    }
    let unauthorized = |m: &str| CommandError::new(ErrorCode::Unauthorized, m);
    match (&manifest.signature, key) {
        (Some(sig), Some(key)) => {
            let sig = base64::engine::general_purpose::STANDARD
                .decode(sig)
                .ok()
                .and_then(|b| Signature::from_slice(&b).ok())
                .ok_or_else(|| {
                    unauthorized("manifest.signature is not a base64 Ed25519 signature")
                })?;
            key.verify(&manifest.signed_bytes(), &sig).map_err(|_| {
                unauthorized("manifest.signature does not verify with the fleet key")
            })?;
            Ok(Trust::Signed)
        }
        _ if allow_unsigned => Ok(Trust::Unsigned),
        (None, _) => Err(unauthorized(
            "the manifest is not signed; sign it with the fleet key (roombox fleet sign-update) or set update.allow_unsigned",
        )),
        (Some(_), None) => Err(unauthorized(
            "the manifest is signed but this box has no fleet key to check it ([fleet.signing] public_key)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> (SigningKey, VerifyingKey) {
        let sk = SigningKey::from_bytes(&rand::random());
        let pk = sk.verifying_key();
        (sk, pk)
    }

    fn manifest() -> UpdateManifest {
        UpdateManifest {
            version: "0.2.0".into(),
            url: "http://127.0.0.1:1/roombox.deb".into(),
            size: 1000,
            sha256: "0f".repeat(32),
            signature: None,
        }
    }

    #[test]
    fn a_signed_manifest_passes_and_any_change_breaks_it() {
        let (sk, pk) = keys();
        let mut m = manifest();
        sign(&mut m, &sk);
        assert_eq!(check(&m, Some(&pk), false, 10_000), Ok(Trust::Signed));
        for change in [
            (|m: &mut UpdateManifest| m.version = "0.2.1".into()) as fn(&mut UpdateManifest),
            |m| m.url.push('x'),
            |m| m.size = 999,
            |m| m.sha256 = "1f".repeat(32),
        ] {
            let mut bad = m.clone();
            change(&mut bad);
            let e = check(&bad, Some(&pk), false, 10_000).unwrap_err();
            assert_eq!(e.code, ErrorCode::Unauthorized, "{e}");
            // Even with unsigned allowed, a signature that fails is refused.
            assert!(check(&bad, Some(&pk), true, 10_000).is_err());
        }
        let (other, _) = keys();
        let mut forged = manifest();
        sign(&mut forged, &other);
        assert!(check(&forged, Some(&pk), false, 10_000).is_err());
    }

    #[test]
    fn unsigned_is_refused_unless_allowed_and_size_is_bounded() {
        let (_, pk) = keys();
        let m = manifest();
        let e = check(&m, Some(&pk), false, 10_000).unwrap_err();
        assert!(e.message.contains("not signed"), "{e}");
        assert!(check(&m, None, false, 10_000).is_err());
        assert_eq!(check(&m, Some(&pk), true, 10_000), Ok(Trust::Unsigned));
        assert_eq!(check(&m, None, true, 10_000), Ok(Trust::Unsigned));
        let e = check(&m, None, true, 999).unwrap_err();
        assert_eq!(e.code, ErrorCode::OutOfRange);
        let mut garbled = manifest();
        garbled.signature = Some("!!".into());
        assert!(check(&garbled, Some(&pk), false, 10_000).is_err());
    }
}
