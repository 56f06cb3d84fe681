//! The `[fleet]` section: remote control and reporting over MQTT v5.
//!
//! The fleet client is off unless `broker` is set. No credentials ship: a box reaches a broker
//! only with a client certificate or a password file that its installer put there.

use super::{check_duration, fail, BackoffConfig, FieldError};
use base64::Engine;
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Remote control and reporting over MQTT v5.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetConfig {
    /// `mqtt://host[:port]` or `mqtts://host[:port]`; empty disables the fleet client.
    pub broker: String,
    /// More brokers of the same fleet (the nodes of a cluster), tried in turn after `broker`
    /// when the one in use cannot be reached; the same scheme, TLS and credentials as `broker`.
    pub failover: Vec<String>,
    /// First topic level of every fleet topic.
    pub prefix: String,
    /// Groups this box belongs to: it takes commands sent to `<prefix>/group/<name>/cmd/...`.
    pub groups: Vec<String>,
    /// MQTT keep-alive; a dead connection is noticed within about 1.5 times this.
    #[serde(with = "humantime_serde")]
    pub keep_alive: Duration,
    /// How long the broker keeps this box's session (subscriptions and queued QoS 1 commands)
    /// while it is away.
    #[serde(with = "humantime_serde")]
    pub session_expiry: Duration,
    /// Shortest time between two publications of the retained state.
    #[serde(with = "humantime_serde")]
    pub state_min_interval: Duration,
    /// Time between telemetry publications.
    #[serde(with = "humantime_serde")]
    pub telemetry_interval: Duration,
    /// Most replies and events kept on disk while the broker is unreachable; the oldest are
    /// dropped beyond it.
    pub outbox_max_messages: usize,
    /// How long a command id is remembered, so a re-delivered command is answered from the cache
    /// instead of acting twice.
    #[serde(with = "humantime_serde")]
    pub dedupe_window: Duration,
    /// How long `set-config` waits for the agent to report healthy before it rolls back.
    #[serde(with = "humantime_serde")]
    pub set_config_timeout: Duration,
    /// TLS, with a client certificate for mutual TLS.
    pub tls: FleetTlsConfig,
    /// Username and password, instead of or beside a client certificate.
    pub auth: FleetAuthConfig,
    /// Signed commands.
    pub signing: FleetSigningConfig,
    /// Reconnection backoff.
    pub reconnect: BackoffConfig,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            broker: String::new(),
            failover: Vec::new(),
            prefix: "roombox".into(),
            groups: Vec::new(),
            keep_alive: Duration::from_secs(30),
            session_expiry: Duration::from_secs(24 * 3600),
            state_min_interval: Duration::from_secs(1),
            telemetry_interval: Duration::from_secs(30),
            outbox_max_messages: 1000,
            dedupe_window: Duration::from_secs(600),
            set_config_timeout: Duration::from_secs(60),
            tls: FleetTlsConfig::default(),
            auth: FleetAuthConfig::default(),
            signing: FleetSigningConfig::default(),
            reconnect: BackoffConfig {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(60),
            },
        }
    }
}

/// TLS settings (used with `mqtts://`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetTlsConfig {
    /// PEM file of the CA that signed the broker's certificate.
    pub ca: PathBuf,
    /// PEM file of this box's client certificate (mutual TLS); empty for none.
    pub cert: PathBuf,
    /// PEM file of the client certificate's private key.
    pub key: PathBuf,
}

/// Username and password login.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetAuthConfig {
    /// Username; empty for none.
    pub username: String,
    /// File whose first line is the password (kept out of the config so it can be mode 0600).
    pub password_file: PathBuf,
}

/// Ed25519-signed commands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetSigningConfig {
    /// The fleet's Ed25519 public key, base64 (32 bytes). When set, every command must be signed
    /// with the matching private key; unsigned or badly signed ones are refused.
    pub public_key: String,
    /// How far a command's timestamp may be from this box's clock, and how long nonces are
    /// remembered against replays.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

impl Default for FleetSigningConfig {
    fn default() -> Self {
        FleetSigningConfig {
            public_key: String::new(),
            window: Duration::from_secs(60),
        }
    }
}

/// A broker address taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// True for `mqtts://`.
    pub tls: bool,
    /// Host name or address.
    pub host: String,
    /// Port (1883 or 8883 when absent).
    pub port: u16,
}

impl BrokerUrl {
    /// Parses `mqtt://host[:port]` or `mqtts://host[:port]`.
    pub fn parse(url: &str) -> Result<BrokerUrl, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("mqtt://") {
            (false, r)
        } else {
            return Err(format!(
                "`{url}` is not a broker URL; expected mqtt://host[:port] or mqtts://host[:port]"
            ));
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                let port = p
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("`{p}` is not a port (1 to 65535)"))?;
                (h, port)
            }
            _ => (rest, if tls { 8883 } else { 1883 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty()
            || host.contains('/')
            || host.contains('@')
            || host.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(format!("`{url}` has no valid host"));
        }
        Ok(BrokerUrl {
            tls,
            host: host.to_string(),
            port,
        })
    }
}

/// True for a string usable as one MQTT topic level in fleet topics.
pub fn is_topic_level(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

impl FleetConfig {
    /// True when a broker is configured.
    pub fn enabled(&self) -> bool {
        !self.broker.is_empty()
    }

    /// Every broker, `broker` first, then `failover` in order.
    pub fn brokers(&self) -> Vec<&str> {
        std::iter::once(self.broker.as_str())
            .chain(self.failover.iter().map(String::as_str))
            .collect()
    }

    /// Range and consistency checks of the `[fleet]` section.
    pub fn validate(&self, e: &mut Vec<FieldError>) {
        let url = if self.broker.is_empty() {
            None
        } else {
            match BrokerUrl::parse(&self.broker) {
                Ok(u) => Some(u),
                Err(m) => {
                    fail(e, "fleet.broker", m);
                    None
                }
            }
        };
        if self.failover.len() > 8 {
            fail(e, "fleet.failover", "at most 8 brokers");
        }
        if !self.failover.is_empty() && self.broker.is_empty() {
            fail(e, "fleet.failover", "set fleet.broker first");
        }
        for (i, b) in self.failover.iter().enumerate() {
            match BrokerUrl::parse(b) {
                Err(m) => fail(e, &format!("fleet.failover[{i}]"), m),
                Ok(f) if url.as_ref().is_some_and(|u| u.tls != f.tls) => fail(
                    e,
                    &format!("fleet.failover[{i}]"),
                    "every broker takes the same scheme as fleet.broker (one TLS setting for all)",
                ),
                Ok(_) => {}
            }
        }
        if self.prefix.is_empty()
            || self.prefix.len() > 64
            || !self.prefix.split('/').all(is_topic_level)
        {
            fail(
                e,
                "fleet.prefix",
                "expected topic levels of letters, digits, `-`, `_` or `.`, joined by `/`",
            );
        }
        if self.groups.len() > 32 {
            fail(e, "fleet.groups", "at most 32 groups");
        }
        for g in &self.groups {
            if !is_topic_level(g) {
                fail(
                    e,
                    "fleet.groups",
                    format!("`{g}` is not a topic level (letters, digits, `-`, `_`, `.`)"),
                );
            }
        }
        check_duration(
            e,
            "fleet.keep_alive",
            self.keep_alive,
            Duration::from_secs(5),
            Duration::from_secs(3600),
        );
        check_duration(
            e,
            "fleet.session_expiry",
            self.session_expiry,
            Duration::ZERO,
            Duration::from_secs(u64::from(u32::MAX - 1)),
        );
        check_duration(
            e,
            "fleet.state_min_interval",
            self.state_min_interval,
            Duration::from_millis(50),
            Duration::from_secs(600),
        );
        check_duration(
            e,
            "fleet.telemetry_interval",
            self.telemetry_interval,
            Duration::from_secs(1),
            Duration::from_secs(24 * 3600),
        );
        super::check(
            e,
            "fleet.outbox_max_messages",
            self.outbox_max_messages,
            10,
            1_000_000,
        );
        check_duration(
            e,
            "fleet.dedupe_window",
            self.dedupe_window,
            Duration::from_secs(10),
            Duration::from_secs(7 * 24 * 3600),
        );
        check_duration(
            e,
            "fleet.set_config_timeout",
            self.set_config_timeout,
            Duration::from_secs(1),
            Duration::from_secs(3600),
        );
        self.reconnect.check(e, "fleet.reconnect");
        let t = &self.tls;
        let has_tls = !t.ca.as_os_str().is_empty()
            || !t.cert.as_os_str().is_empty()
            || !t.key.as_os_str().is_empty();
        if t.cert.as_os_str().is_empty() != t.key.as_os_str().is_empty() {
            fail(
                e,
                "fleet.tls.cert",
                "cert and key go together; set both or neither",
            );
        }
        match &url {
            Some(u) if u.tls && t.ca.as_os_str().is_empty() => fail(
                e,
                "fleet.tls.ca",
                "mqtts:// needs the CA file that signed the broker's certificate",
            ),
            Some(u) if !u.tls && has_tls => fail(
                e,
                "fleet.tls",
                "TLS files are set but the broker URL is mqtt://; use mqtts://",
            ),
            _ => {}
        }
        let a = &self.auth;
        if !a.password_file.as_os_str().is_empty() && a.username.is_empty() {
            fail(e, "fleet.auth.username", "a password file needs a username");
        }
        if a.username.len() > 256 || a.username.chars().any(|c| c.is_control()) {
            fail(e, "fleet.auth.username", "at most 256 printable characters");
        }
        if !self.signing.public_key.is_empty() {
            if let Err(m) = parse_public_key(&self.signing.public_key) {
                fail(e, "fleet.signing.public_key", m);
            }
        }
        check_duration(
            e,
            "fleet.signing.window",
            self.signing.window,
            Duration::from_secs(5),
            Duration::from_secs(3600),
        );
        if self.signing.window > self.dedupe_window {
            fail(
                e,
                "fleet.signing.window",
                "is longer than fleet.dedupe_window; a replayed command could act twice",
            );
        }
    }
}

/// Decodes a base64 Ed25519 key of 32 bytes; `what` names it in errors.
fn key_bytes(b64: &str, what: &str) -> Result<[u8; 32], String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| format!("not base64: {e}"))?;
    bytes
        .as_slice()
        .try_into()
        .map_err(|_| format!("is {} bytes; an Ed25519 {what} key is 32", bytes.len()))
}

/// Parses a base64 Ed25519 public key (32 bytes).
pub fn parse_public_key(b64: &str) -> Result<VerifyingKey, String> {
    VerifyingKey::from_bytes(&key_bytes(b64, "public")?)
        .map_err(|e| format!("not an Ed25519 public key: {e}"))
}

/// Parses a base64 Ed25519 private key (the 32-byte seed).
pub fn parse_signing_key(b64: &str) -> Result<SigningKey, String> {
    Ok(SigningKey::from_bytes(&key_bytes(b64, "private")?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    fn fields(text: &str) -> Vec<String> {
        load_str("t.toml", text)
            .unwrap_err()
            .into_iter()
            .filter_map(|e| e.field)
            .collect()
    }

    #[test]
    fn the_fleet_is_off_by_default() {
        let c = load_str("t.toml", "").unwrap().config;
        assert!(!c.fleet.enabled());
    }

    #[test]
    fn broker_urls_parse_with_default_ports() {
        let u = BrokerUrl::parse("mqtts://broker.example").unwrap();
        assert_eq!(
            (u.tls, u.port, u.host.as_str()),
            (true, 8883, "broker.example")
        );
        let u = BrokerUrl::parse("mqtt://127.0.0.1:18830").unwrap();
        assert_eq!((u.tls, u.port), (false, 18830));
        assert!(BrokerUrl::parse("http://x").is_err());
        assert!(BrokerUrl::parse("mqtt://:1883").is_err());
        assert!(BrokerUrl::parse("mqtt://h:0").is_err());
        assert!(BrokerUrl::parse("mqtt://h:99999").is_err());
    }

    #[test]
    fn failover_brokers_share_the_scheme_and_come_after_a_broker() {
        let f = fields("[fleet]\nbroker = \"mqtt://a\"\nfailover = [\"mqtt://b:1884\", \"mqtts://c\", \"http://d\"]\n");
        assert_eq!(f, ["fleet.failover[1]", "fleet.failover[2]"]);
        assert_eq!(
            fields("[fleet]\nfailover = [\"mqtt://b\"]\n"),
            ["fleet.failover"]
        );
        let c: crate::config::Config =
            toml::from_str("[fleet]\nbroker = \"mqtt://a\"\nfailover = [\"mqtt://b\"]\n").unwrap();
        assert_eq!(c.fleet.brokers(), ["mqtt://a", "mqtt://b"]);
    }

    #[test]
    fn bad_fleet_values_are_each_reported() {
        let f = fields(
            "[fleet]\nbroker = \"mqtts://b\"\nprefix = \"a/+\"\ngroups = [\"ok\", \"no/slash\"]\nkeep_alive = \"1s\"\n[fleet.tls]\ncert = \"c.pem\"\n[fleet.signing]\npublic_key = \"nope\"\n",
        );
        for want in [
            "fleet.prefix",
            "fleet.groups",
            "fleet.keep_alive",
            "fleet.tls.cert",
            "fleet.tls.ca",
            "fleet.signing.public_key",
        ] {
            assert!(f.contains(&want.to_string()), "missing {want} in {f:?}");
        }
    }

    #[test]
    fn tls_files_need_mqtts() {
        let f = fields("[fleet]\nbroker = \"mqtt://b\"\n[fleet.tls]\nca = \"ca.pem\"\n");
        assert_eq!(f, vec!["fleet.tls".to_string()]);
    }
}
