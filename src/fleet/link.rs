//! How a box or an operator reaches the broker: one place builds the MQTT options (address,
//! credentials, TLS, socket tuning) for both, and one place puts a failed connection into words.
//!
//! rumqttc reports a refused handshake as `TLS: ... Other(OtherError(UnsupportedCertVersion))`
//! or `I/O: received fatal alert: UnknownCA`, and retries forever. [`describe`] turns that into
//! what is wrong and how to fix it, looking at the certificate files ([`super::certs`]) where the
//! error alone does not say which side is at fault.

use super::certs;
use crate::config::{BrokerUrl, FleetConfig};
use anyhow::Context;
use rumqttc::tokio_rustls::rustls;
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet};
use rumqttc::v5::{AsyncClient, ConnectionError, Event as MqttEvent, MqttOptions};
use rumqttc::{TlsConfiguration, Transport};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the broker is and how to prove who we are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The broker URL as written.
    pub broker: String,
    /// The URL taken apart.
    pub url: BrokerUrl,
    /// PEM file of the CA that signed the broker's certificate (mqtts:// only).
    pub ca: Option<PathBuf>,
    /// Client certificate and key (PEM) for mutual TLS.
    pub client_auth: Option<(PathBuf, PathBuf)>,
    /// Username, when logging in with one.
    pub username: Option<String>,
    /// File whose first line is the password.
    pub password_file: Option<PathBuf>,
}

fn non_empty(p: &Path) -> Option<PathBuf> {
    (!p.as_os_str().is_empty()).then(|| p.to_path_buf())
}

impl Endpoint {
    /// The box's endpoint, from `[fleet]`.
    pub fn of_fleet(c: &FleetConfig) -> anyhow::Result<Endpoint> {
        Endpoint::of_fleet_at(c, 0)
    }

    /// The box's `i`th broker (`fleet.broker`, then `fleet.failover`, round), with `[fleet]`'s
    /// TLS and credentials.
    pub fn of_fleet_at(c: &FleetConfig, i: usize) -> anyhow::Result<Endpoint> {
        let brokers = c.brokers();
        let broker = brokers[i % brokers.len()];
        let url = BrokerUrl::parse(broker).map_err(|e| anyhow::anyhow!("fleet.broker: {e}"))?;
        let client_auth = match (non_empty(&c.tls.cert), non_empty(&c.tls.key)) {
            (Some(cert), Some(key)) => Some((cert, key)),
            _ => None,
        };
        Ok(Endpoint {
            broker: broker.to_string(),
            url,
            ca: non_empty(&c.tls.ca),
            client_auth,
            username: (!c.auth.username.is_empty()).then(|| c.auth.username.clone()),
            password_file: non_empty(&c.auth.password_file),
        })
    }

    /// `host:port`, for messages.
    pub fn address(&self) -> String {
        format!("{}:{}", self.url.host, self.url.port)
    }

    /// MQTT options for `client_id` with this endpoint's address, credentials and TLS, tuned
    /// by [`tune`] with an in-flight window of `inflight`. Session, keep-alive and will are the
    /// caller's.
    pub fn options(&self, client_id: String, inflight: u16) -> anyhow::Result<MqttOptions> {
        let mut o = MqttOptions::new(client_id, self.url.host.clone(), self.url.port);
        o.set_connection_timeout(10);
        tune(&mut o, inflight);
        if let Some(user) = &self.username {
            let password = match &self.password_file {
                Some(p) => std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read the password file {}", p.display()))?
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                None => String::new(),
            };
            o.set_credentials(user.clone(), password);
        }
        if self.url.tls {
            o.set_transport(Transport::tls_with_config(self.tls()?));
        }
        Ok(o)
    }

    fn tls(&self) -> anyhow::Result<TlsConfiguration> {
        ensure_crypto_provider();
        let ca = self
            .ca
            .as_ref()
            .context("mqtts:// needs the CA file that signed the broker's certificate")?;
        let read = |what: &str, p: &Path| {
            std::fs::read(p).with_context(|| format!("cannot read the {what} {}", p.display()))
        };
        let client_auth = match &self.client_auth {
            Some((cert, key)) => Some((read("certificate", cert)?, read("key", key)?)),
            None => None,
        };
        Ok(TlsConfiguration::Simple {
            ca: read("CA file", ca)?,
            alpn: None,
            client_auth,
        })
    }
}

/// Latency and memory settings for every fleet client: no Nagle delay (a reply must not wait for
/// a delayed ACK), and a bounded outgoing in-flight window (rumqttc sizes its in-flight table
/// from the broker's receive maximum, 65535 entries, otherwise: megabytes per client).
pub fn tune(o: &mut MqttOptions, inflight: u16) {
    let mut n = rumqttc::NetworkOptions::new();
    n.set_tcp_nodelay(true);
    o.set_network_options(n);
    o.set_outgoing_inflight_upper_limit(inflight);
}

/// Picks rustls' process-wide crypto provider (aws-lc-rs) once. The dependency tree enables
/// both of rustls' providers, and rustls then refuses to guess; another part of the process may
/// have installed one already, which is fine.
pub fn ensure_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A connection that failed, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What is wrong.
    pub what: String,
    /// How to fix it, when we know.
    pub fix: Option<String>,
}

impl Failure {
    fn new(what: impl Into<String>) -> Failure {
        Failure {
            what: what.into(),
            fix: None,
        }
    }

    fn fix(mut self, fix: impl Into<String>) -> Failure {
        self.fix = Some(fix.into());
        self
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.fix {
            Some(fix) => write!(f, "{}; fix: {fix}", self.what),
            None => f.write_str(&self.what),
        }
    }
}

/// The rustls error inside a connection error, if it is one.
fn rustls_error(e: &ConnectionError) -> Option<&rustls::Error> {
    use rumqttc::v5::{mqttbytes::Error as Bytes, StateError as State};
    let io = match e {
        ConnectionError::Tls(rumqttc::TlsError::TLS(r)) => return Some(r),
        ConnectionError::Tls(rumqttc::TlsError::Io(io))
        | ConnectionError::Io(io)
        // With TLS 1.3 the broker refuses a client certificate after the handshake: the alert
        // arrives while the box reads the CONNACK.
        | ConnectionError::MqttState(State::Io(io) | State::Deserialization(Bytes::Io(io))) => io,
        _ => return None,
    };
    io.get_ref()?.downcast_ref::<rustls::Error>()
}

/// Puts a failed connection to `ep` into words, with a fix where one is known.
pub fn describe(e: &ConnectionError, ep: &Endpoint) -> Failure {
    let at = ep.address();
    if let ConnectionError::ConnectionRefused(code) = e {
        return refused(*code, ep);
    }
    let tls_error = rustls_error(e);
    // During the handshake, an invalid certificate is the broker's; the box's own files are
    // what the other TLS failures are about (rustls refusing to load the box's certificate
    // before connecting, or the broker refusing it).
    let brokers_certificate = matches!(
        (e, tls_error),
        (
            ConnectionError::Io(_) | ConnectionError::Tls(rumqttc::TlsError::Io(_)),
            Some(rustls::Error::InvalidCertificate(_))
        )
    );
    let tls_related = tls_error.is_some()
        || matches!(e, ConnectionError::Tls(_))
        || matches!(e, ConnectionError::Io(io) if matches!(io.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof));
    if tls_related && ep.url.tls && !brokers_certificate {
        // The files say which side is wrong better than the handshake does.
        if let Some(ca) = &ep.ca {
            let client = ep
                .client_auth
                .as_ref()
                .map(|(c, k)| (c.as_path(), k.as_path()));
            let findings = certs::inspect(ca, client);
            if let Some(f) = findings.iter().find(|f| f.level == certs::Level::Failed) {
                return Failure {
                    what: format!("TLS to {at} cannot work: {}", f.detail),
                    fix: f.fix.clone(),
                };
            }
            // The broker refused the box's certificate: an issuer it does not trust is the
            // likely reason, and the files can name it.
            let refused = matches!(tls_error, Some(rustls::Error::AlertReceived(_)))
                || matches!(e, ConnectionError::Io(_) | ConnectionError::MqttState(_));
            if let Some(f) = findings
                .iter()
                .find(|f| refused && f.check == "fleet-cert" && f.level == certs::Level::Warning)
            {
                return Failure {
                    what: format!(
                        "the broker at {at} refused this box's certificate: {}",
                        f.detail
                    ),
                    fix: f.fix.clone(),
                };
            }
        }
    }
    if let Some(r) = tls_error {
        return tls(r, ep);
    }
    match e {
        ConnectionError::Tls(t) => Failure::new(format!("TLS to {at} failed: {t}")),
        ConnectionError::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => Failure::new(format!(
                "nothing accepts connections at {at} (connection refused)"
            ))
            .fix("start the broker, or correct fleet.broker"),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof
                if ep.url.tls =>
            {
                Failure::new(format!(
                    "the broker at {at} closed the connection during or just after the TLS \
                     handshake ({io}); it probably refused this box's certificate"
                ))
                .fix("check that the broker's cafile is the CA that signed fleet.tls.cert, and the broker's log")
            }
            _ => Failure::new(format!("cannot reach {at}: {io}")),
        },
        ConnectionError::Timeout(_) => Failure::new(format!(
            "no answer from {at} within the connection timeout"
        )),
        ConnectionError::MqttState(s) => Failure::new(format!("the link to {at} broke: {s}")),
        other => Failure::new(format!("the connection to {at} failed: {other}")),
    }
}

fn refused(code: ConnectReturnCode, ep: &Endpoint) -> Failure {
    let at = ep.address();
    let who = match &ep.username {
        Some(u) => format!("user `{u}`"),
        None => "this box".to_string(),
    };
    let password_fix = match &ep.password_file {
        Some(p) => format!(
            "check fleet.auth.username and the first line of {}",
            p.display()
        ),
        None => "set fleet.auth.password_file".to_string(),
    };
    match code {
        ConnectReturnCode::BadUserNamePassword => Failure::new(format!(
            "the broker at {at} refused the login of {who}: bad username or password"
        ))
        .fix(password_fix),
        // mosquitto answers a wrong password this way over MQTT v5.
        ConnectReturnCode::NotAuthorized if ep.username.is_some() => Failure::new(format!(
            "the broker at {at} refused the login of {who}: not authorized (a wrong password, \
             or a user the broker does not know)"
        ))
        .fix(password_fix),
        ConnectReturnCode::NotAuthorized => {
            Failure::new(format!("the broker at {at} refused {who}: not authorized"))
                .fix("check the broker's ACL and this box's credentials")
        }
        ConnectReturnCode::ClientIdentifierNotValid | ConnectReturnCode::BadClientId => {
            Failure::new(format!(
                "the broker at {at} refused the client id (device.id)"
            ))
        }
        ConnectReturnCode::Banned => Failure::new(format!("the broker at {at} banned {who}")),
        other => Failure::new(format!(
            "the broker at {at} refused the connection: {other:?}"
        )),
    }
}

fn tls(r: &rustls::Error, ep: &Endpoint) -> Failure {
    use rustls::{AlertDescription as A, CertificateError as C, Error as E};
    let at = ep.address();
    let ca = ep
        .ca
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    match r {
        E::InvalidCertificate(C::UnknownIssuer) => Failure::new(format!(
            "the broker's certificate at {at} is not signed by the CA in {ca}"
        ))
        .fix("set fleet.tls.ca to the CA that signed the broker's certificate"),
        E::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
            Failure::new(format!(
                "the broker's certificate is not valid for `{}` ({r})",
                ep.url.host
            ))
            .fix("connect by a name the certificate lists (subjectAltName), or re-issue it")
        }
        E::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            Failure::new(format!("the broker's certificate at {at} has expired"))
        }
        E::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => Failure::new(
            format!("the broker's certificate at {at} is not valid yet (is the clock right?)"),
        ),
        E::InvalidCertificate(C::Other(o)) if format!("{o:?}").contains("UnsupportedCertVersion") => {
            Failure::new(format!(
                "the broker's certificate at {at} is X.509 version 1; rustls refuses anything but version 3"
            ))
            .fix(certs::v3_fix(certs::Holder::Broker(&ep.url.host)))
        }
        E::AlertReceived(
            a @ (A::BadCertificate
            | A::UnknownCA
            | A::CertificateRequired
            | A::UnsupportedCertificate
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::CertificateUnknown
            | A::AccessDenied),
        ) => {
            let what = if ep.client_auth.is_some() {
                format!("the broker at {at} refused this box's certificate (TLS alert {a:?})")
            } else {
                format!("the broker at {at} wants a client certificate (TLS alert {a:?})")
            };
            Failure::new(what).fix(if ep.client_auth.is_some() {
                "the broker does not trust the CA that signed fleet.tls.cert: sign it with the CA in the broker's cafile"
            } else {
                "set fleet.tls.cert and fleet.tls.key"
            })
        }
        other => Failure::new(format!("the TLS handshake with {at} failed: {other}")),
    }
}

/// Connects once as `client_id` (a clean session, no will), waits for the broker's answer and
/// disconnects: what `roombox check` does to prove the box can reach its broker.
pub async fn probe(ep: &Endpoint, client_id: String) -> Result<String, Failure> {
    let mut o = ep
        .options(client_id, 16)
        .map_err(|e| Failure::new(format!("{e:#}")))?;
    o.set_clean_start(true);
    o.set_keep_alive(Duration::from_secs(10));
    let (client, mut eventloop) = AsyncClient::new(o, 8);
    let outcome = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match eventloop.poll().await {
                Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(describe(&e, ep)),
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        Err(Failure::new(format!(
            "no answer from {} within 15 s",
            ep.address()
        )))
    });
    if outcome.is_ok() {
        let _ = client.try_disconnect();
        // Let the DISCONNECT go out, so the broker logs a clean goodbye.
        let _ = tokio::time::timeout(Duration::from_millis(500), eventloop.poll()).await;
    }
    outcome.map(|()| {
        let mut how = vec![if ep.url.tls { "TLS" } else { "no TLS" }.to_string()];
        if let Some((cert, _)) = &ep.client_auth {
            how.push(format!("certificate {}", cert.display()));
        }
        if let Some(u) = &ep.username {
            how.push(format!("user `{u}`"));
        }
        format!("connected to {} ({})", ep.broker, how.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(broker: &str, user: Option<&str>) -> Endpoint {
        let mut c = FleetConfig {
            broker: broker.into(),
            ..Default::default()
        };
        if let Some(u) = user {
            c.auth.username = u.into();
            c.auth.password_file = "/etc/roombox/fleet.password".into();
        }
        Endpoint::of_fleet(&c).unwrap()
    }

    #[test]
    fn refusals_and_unreachable_brokers_are_put_into_words_with_a_fix() {
        let ep = endpoint("mqtt://broker.example:1883", Some("box1"));
        for code in [
            ConnectReturnCode::BadUserNamePassword,
            ConnectReturnCode::NotAuthorized,
        ] {
            let f = describe(&ConnectionError::ConnectionRefused(code), &ep);
            assert!(f.what.contains("refused the login of user `box1`"), "{f}");
            assert!(f.fix.unwrap().contains("/etc/roombox/fleet.password"));
        }
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let f = describe(&ConnectionError::Io(io), &ep);
        assert!(
            f.what
                .contains("nothing accepts connections at broker.example:1883"),
            "{f}"
        );
        assert_eq!(
            f.to_string(),
            format!("{}; fix: {}", f.what, f.fix.clone().unwrap())
        );

        let anonymous = endpoint("mqtt://b", None);
        let f = describe(
            &ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized),
            &anonymous,
        );
        assert!(f.what.contains("refused this box: not authorized"), "{f}");
    }

    #[test]
    fn a_broker_alert_read_with_the_connack_is_found_and_worded() {
        use rumqttc::v5::{mqttbytes::Error as Bytes, StateError};
        let mut c = FleetConfig {
            broker: "mqtts://b:8883".into(),
            ..Default::default()
        };
        // No CA file to inspect: the words come from the alert alone.
        c.tls.cert = "/nonexistent/box.pem".into();
        c.tls.key = "/nonexistent/box.key".into();
        let ep = Endpoint::of_fleet(&c).unwrap();
        let alert = rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, alert);
        let e = ConnectionError::MqttState(StateError::Deserialization(Bytes::Io(io)));
        let f = describe(&e, &ep);
        assert!(f.what.contains("refused this box's certificate"), "{f}");
        assert!(f.what.contains("UnknownCA"), "{f}");
    }

    #[test]
    fn mqtts_without_a_ca_file_is_an_error_not_a_panic() {
        let ep = endpoint("mqtts://b", None);
        let e = ep.options("x".into(), 8).unwrap_err();
        assert!(format!("{e:#}").contains("CA file"), "{e:#}");
    }
}
