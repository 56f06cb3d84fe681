//! Staged rollouts of a signed update to a percentage of a group (docs/mqtt-api.md, "Staged
//! rollouts").
//!
//! The operator (`roombox fleet update`, [`cli`]) publishes one retained **rollout record** per
//! group on `<prefix>/group/<group>/rollout`: the signed manifest, the rollout id, the percent,
//! `ACTIVE` or `STOPPED`, and when it was issued, signed by the fleet key. Each box of the group
//! reads it ([`follow`]) and decides alone whether it is in: [`selected`] hashes its device id
//! with the rollout id into a bucket of 0 to 9,999 and is in when the bucket is below
//! `percent × 100`. Widening the same rollout id only raises that bound, so every box already in
//! stays in. A selected box starts after a delay spread over `spreadMs` by its bucket
//! ([`start_delay_ms`]), so a wide stage does not start all at once and a stop still holds the
//! boxes whose turn has not come.
//!
//! This file is pure (record, checks, signature, hash); [`follow`] is the box's side and
//! [`cli`] the operator's. Layer 10 (`fleet`): it imports `command`, `config`, `event`, `model`
//! and `update`.

pub mod cli;
pub mod follow;
mod worker;

use crate::command::UpdateManifest;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::Digest;

/// Buckets a box can fall in: a percent is 100 of them.
pub const BUCKETS: u32 = 10_000;
/// Longest rollout id.
pub const MAX_ID: usize = 64;
/// Longest spread of a stage's starts.
pub const MAX_SPREAD_MS: u64 = 7 * 24 * 3600 * 1000;

/// Whether a rollout goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Phase {
    /// Selected boxes start.
    Active,
    /// No box that has not started starts.
    Stopped,
}

impl Phase {
    fn word(self) -> &'static str {
        match self {
            Phase::Active => "ACTIVE",
            Phase::Stopped => "STOPPED",
        }
    }
}

/// The retained record of a rollout, as the operator signed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Record {
    /// Names the rollout; the same id across stages keeps the boxes already in.
    pub rollout_id: String,
    /// The group it is for (the record is only taken on that group's topic).
    pub group: String,
    /// 0 to 100: the share of the group that is in.
    pub percent: u32,
    /// `ACTIVE` or `STOPPED`.
    pub state: Phase,
    /// When the operator issued this record, ms since the epoch: a box takes no record older
    /// than one it has taken for the same rollout.
    pub issued_ms: u64,
    /// Starts are spread over this long by bucket (0: all at once).
    #[serde(default)]
    pub spread_ms: u64,
    /// Install even while the room is busy (the `update` command's `force`).
    #[serde(default)]
    pub force: bool,
    /// What to install, signed on its own (`roombox fleet sign-update`).
    pub manifest: UpdateManifest,
    /// Base64 Ed25519 signature over [`Record::signed_bytes`] by the fleet key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl Record {
    /// The bytes the signature covers: a domain tag, every field on its own line, then the
    /// manifest's own signed bytes.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut b = format!(
            "roombox-rollout-v1\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n",
            self.rollout_id,
            self.group,
            self.percent,
            self.state.word(),
            self.issued_ms,
            self.spread_ms,
            self.force
        )
        .into_bytes();
        b.extend(self.manifest.signed_bytes());
        b
    }

    /// Checks every field's range and shape (not the signatures).
    pub fn check(&self) -> Result<(), String> {
        check_id(&self.rollout_id)?;
        if !crate::config::is_topic_level(&self.group) {
            return Err("group: expected a group name (a topic level without / + #)".into());
        }
        if self.percent > 100 {
            return Err(format!("percent: {} is outside 0..=100", self.percent));
        }
        if self.spread_ms > MAX_SPREAD_MS {
            return Err(format!(
                "spreadMs: {} is above a week ({MAX_SPREAD_MS})",
                self.spread_ms
            ));
        }
        self.manifest
            .check_shape()
            .map_err(|e| format!("manifest.{e}"))
    }

    /// Signs the record with the fleet's private key.
    pub fn sign(&mut self, key: &SigningKey) {
        let sig = key.sign(&self.signed_bytes());
        self.signature = Some(base64::engine::general_purpose::STANDARD.encode(sig.to_bytes()));
    }

    /// Checks the signature by `key` (the box's fleet key). Without a key, a box takes unsigned
    /// records, as it takes unsigned commands; the manifest inside is checked by the `update`
    /// command all the same.
    pub fn verify(&self, key: Option<&VerifyingKey>) -> Result<(), String> {
        let Some(key) = key else {
            return Ok(());
        };
        let sig = self
            .signature
            .as_deref()
            .ok_or("not signed, and this box takes only records signed by the fleet key")?;
        let sig = base64::engine::general_purpose::STANDARD
            .decode(sig)
            .ok()
            .and_then(|b| Signature::from_slice(&b).ok())
            .ok_or("signature: not a base64 Ed25519 signature")?;
        key.verify(&self.signed_bytes(), &sig)
            .map_err(|_| "signature: does not verify with the fleet key".to_string())
    }
}

/// A rollout id: 1 to 64 letters, digits, `.`, `_` or `-`.
pub fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty()
        || id.len() > MAX_ID
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err(format!(
            "rolloutId: expected 1 to {MAX_ID} letters, digits, . _ or -"
        ));
    }
    Ok(())
}

/// Parses and checks a record; the error names the field.
pub fn parse(payload: &[u8]) -> Result<Record, String> {
    let de = &mut serde_json::Deserializer::from_slice(payload);
    let r: Record = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.inner().to_string()
        } else {
            format!("{path}: {}", e.inner())
        }
    })?;
    r.check()?;
    Ok(r)
}

/// The record topic of a group.
pub fn topic(prefix: &str, group: &str) -> String {
    format!("{prefix}/group/{group}/rollout")
}

/// The group of a record topic under `prefix`; none for any other topic.
pub fn group_of<'t>(prefix: &str, topic: &'t str) -> Option<&'t str> {
    let g = topic
        .strip_prefix(prefix)?
        .strip_prefix("/group/")?
        .strip_suffix("/rollout")?;
    (!g.contains('/')).then_some(g)
}

/// The box's bucket in a rollout, 0 to 9,999: the first eight bytes of
/// SHA-256(`roombox-rollout-v1\n<rollout id>\n<device id>`), modulo 10,000.
pub fn bucket(device: &str, rollout_id: &str) -> u32 {
    let h = sha2::Sha256::digest(format!("roombox-rollout-v1\n{rollout_id}\n{device}"));
    let mut first = [0u8; 8];
    first.copy_from_slice(&h[..8]);
    (u64::from_be_bytes(first) % u64::from(BUCKETS)) as u32
}

/// Whether `device` is in rollout `rollout_id` at `percent`: its bucket is below `percent`
/// hundredths of the buckets. A higher percent keeps every box a lower one took.
pub fn selected(device: &str, rollout_id: &str, percent: u32) -> bool {
    bucket(device, rollout_id) < percent.min(100) * (BUCKETS / 100)
}

/// How long a selected box waits before it starts: its bucket's place among the selected
/// buckets, times the spread.
pub fn start_delay_ms(bucket: u32, percent: u32, spread_ms: u64) -> u64 {
    let bound = u64::from(percent.min(100) * (BUCKETS / 100));
    if bound == 0 {
        return 0;
    }
    spread_ms.saturating_mul(u64::from(bucket).min(bound)) / bound
}

#[cfg(test)]
mod tests;
