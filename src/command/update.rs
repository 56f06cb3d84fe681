//! The `update` command's manifest: which package, where to fetch it, its size and SHA-256, and
//! the fleet's Ed25519 signature over all four (checked by `crate::update::manifest`).

use serde::{Deserialize, Serialize};

/// Longest version string.
pub const MAX_VERSION: usize = 64;
/// Longest package URL.
pub const MAX_URL: usize = 2048;

/// What to install, as the fleet operator signed it (`roombox fleet sign-update`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateManifest {
    /// The package's version (`0.2.0`), as `dpkg` will report it once installed.
    pub version: String,
    /// Where to fetch the package: `http://` or `https://`.
    pub url: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, 64 lowercase hex digits.
    pub sha256: String,
    /// Base64 of the Ed25519 signature over [`UpdateManifest::signed_bytes`]; absent for an
    /// unsigned manifest (refused unless `[update] allow_unsigned`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl UpdateManifest {
    /// The bytes the signature covers: a domain tag, then each field on its own line.
    pub fn signed_bytes(&self) -> Vec<u8> {
        format!(
            "roombox-update-v1\n{}\n{}\n{}\n{}\n",
            self.version, self.url, self.size, self.sha256
        )
        .into_bytes()
    }

    /// Checks the fields' shapes (not the signature).
    pub fn check_shape(&self) -> Result<(), String> {
        let v = &self.version;
        if v.is_empty()
            || v.len() > MAX_VERSION
            || !v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".+-~_:".contains(c))
        {
            return Err(format!(
                "version: expected 1 to {MAX_VERSION} letters, digits or . + - ~ _ :"
            ));
        }
        let u = &self.url;
        if !(u.starts_with("http://") || u.starts_with("https://"))
            || u.len() > MAX_URL
            || u.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(format!(
                "url: expected an http:// or https:// URL of at most {MAX_URL} bytes"
            ));
        }
        if self.size == 0 {
            return Err("size: must be above 0".into());
        }
        if self.sha256.len() != 64
            || !self
                .sha256
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        {
            return Err("sha256: expected 64 lowercase hex digits".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> UpdateManifest {
        UpdateManifest {
            version: "0.2.0".into(),
            url: "http://127.0.0.1:8080/roombox_0.2.0_amd64.deb".into(),
            size: 1234,
            sha256: "ab".repeat(32),
            signature: None,
        }
    }

    #[test]
    fn shapes_are_checked_field_by_field() {
        assert_eq!(manifest().check_shape(), Ok(()));
        type Change = fn(&mut UpdateManifest);
        let cases: [(Change, &str); 6] = [
            (|m| m.version = String::new(), "version"),
            (|m| m.version = "1.0 beta".into(), "version"),
            (|m| m.url = "ftp://x/y.deb".into(), "url"),
            (|m| m.size = 0, "size"),
            (|m| m.sha256 = "AB".repeat(32), "sha256"),
            (|m| m.sha256 = "ab".into(), "sha256"),
        ];
        for (change, field) in cases {
            let mut m = manifest();
            change(&mut m);
            let e = m.check_shape().unwrap_err();
            assert!(e.starts_with(field), "{e}");
        }
    }

    #[test]
    fn every_field_is_in_the_signed_bytes() {
        let a = manifest().signed_bytes();
        let mut m = manifest();
        m.size += 1;
        assert_ne!(a, m.signed_bytes());
        let mut m = manifest();
        m.signature = Some("x".into());
        assert_eq!(a, m.signed_bytes(), "the signature is not signed");
    }
}
