//! `roombox fleet ...`: the operator's side of the MQTT API. Send a command to a box or a group
//! and print the replies, list the fleet from the retained status and state, follow events, and
//! make a signing key pair.

use super::link::Endpoint;
use super::session::PROP_ID;
use super::signing;
use super::topic::{device_command, group_command};
use crate::api::ReplyLine;
use crate::config::BrokerUrl;
use crate::model::now_ms;
use anyhow::Context;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, Publish, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event as MqttEvent};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;

/// `roombox fleet`: connection options and a sub-command.
#[derive(Debug, Clone, clap::Args)]
pub struct FleetArgs {
    /// How to reach the broker.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: FleetCommand,
}

/// How the operator reaches the broker.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConnArgs {
    /// Broker URL: `mqtt://host[:port]` or `mqtts://host[:port]`.
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    pub broker: String,
    /// Topic prefix of the fleet.
    #[arg(long, default_value = "roombox")]
    pub prefix: String,
    /// CA file (PEM) for mqtts://.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    #[arg(long, requires = "key")]
    pub cert: Option<PathBuf>,
    /// Client certificate's key (PEM).
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// Username.
    #[arg(long)]
    pub username: Option<String>,
    /// File whose first line is the password.
    #[arg(long, requires = "username")]
    pub password_file: Option<PathBuf>,
    /// A fixed client id: the broker then keeps this operator's session (subscriptions and QoS 1
    /// messages) for a day while it is away, so `events` misses nothing across reconnects.
    #[arg(long)]
    pub client_id: Option<String>,
    /// File holding the fleet's Ed25519 private key (base64); commands are signed with it.
    #[arg(long)]
    pub signing_key: Option<PathBuf>,
}

impl ConnArgs {
    /// Where and as whom the operator connects.
    pub fn endpoint(&self) -> anyhow::Result<Endpoint> {
        let url = BrokerUrl::parse(&self.broker).map_err(|e| anyhow::anyhow!("--broker: {e}"))?;
        if url.tls && self.ca.is_none() {
            anyhow::bail!("mqtts:// needs --ca");
        }
        Ok(Endpoint {
            broker: self.broker.clone(),
            url,
            ca: self.ca.clone(),
            client_auth: self.cert.clone().zip(self.key.clone()),
            username: self.username.clone(),
            password_file: self.password_file.clone(),
        })
    }
}

/// The operator's sub-commands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum FleetCommand {
    /// Send a command to a box (or a group) and print each reply as `<device> <json>`.
    Send {
        /// A box's device id, or `group/<name>` for every box of a group.
        target: String,
        /// The command (`ping`, `enable-mic`, `set-config`, ...).
        command: String,
        /// Its arguments as a JSON object (`{"seconds":5}`).
        args: Option<String>,
        /// How long to wait for replies (a group's replies are collected until then).
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// Command id (a new one when absent); re-sending with the same id never acts twice.
        #[arg(long)]
        id: Option<String>,
    },
    /// List the fleet from the retained status and state topics.
    List {
        /// How long to collect retained messages.
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        wait: Duration,
    },
    /// Follow events live, one `<device> <json>` line each.
    Events {
        /// Only this box (all when absent).
        device: Option<String>,
        /// Exit after this many events.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Sign an update: print the `update` command's payload (`{"manifest":{...}}`) for a
    /// package served at `url`, signed with `--signing-key`. Send it with `send ... update`.
    SignUpdate {
        /// The package file (`roombox_0.2.0-1_arm64.deb`).
        package: PathBuf,
        /// Where the boxes will fetch it (http:// or https://).
        #[arg(long)]
        url: String,
        /// Its version; read from the package with dpkg-deb when absent.
        #[arg(long)]
        version: Option<String>,
    },
    /// Staged rollout of a signed update to a percentage of a group, with a live table of
    /// each box's progress; stops when more than `--max-rollbacks` boxes roll back
    /// (docs/mqtt-api.md, "Staged rollouts").
    Update(super::rollout::cli::UpdateArgs),
    /// Make an Ed25519 key pair: the private key goes to `out`, the public key is printed for
    /// `[fleet.signing] public_key`.
    Keygen {
        /// Where to write the private key (mode 0600).
        out: PathBuf,
    },
}

/// Runs one `roombox fleet` sub-command; returns the process exit code.
pub async fn run(args: FleetArgs) -> anyhow::Result<i32> {
    match args.command {
        FleetCommand::Keygen { out } => {
            let (private, public) = signing::generate();
            write_private(&out, &private)?;
            println!("{public}");
            Ok(0)
        }
        FleetCommand::Update(u) => super::rollout::cli::run(&args.conn, &u).await,
        FleetCommand::SignUpdate {
            package,
            url,
            version,
        } => {
            let key_file = args.conn.signing_key.as_ref().context(
                "sign-update needs --signing-key (the fleet's private key, from fleet keygen)",
            )?;
            let text = std::fs::read_to_string(key_file)
                .with_context(|| format!("cannot read {}", key_file.display()))?;
            let key = signing::parse_signing_key(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", key_file.display()))?;
            let mut manifest = crate::update::manifest::for_package(&package, &url, version)
                .map_err(|e| anyhow::anyhow!(e))?;
            crate::update::manifest::sign(&mut manifest, &key);
            println!("{}", serde_json::json!({ "manifest": manifest }));
            Ok(0)
        }
        FleetCommand::Send {
            target,
            command,
            args: payload,
            timeout,
            id,
        } => {
            let mut op = Operator::connect(&args.conn).await?;
            let target = To::parse(&target)?;
            let payload = payload.unwrap_or_default();
            let replies = op
                .request(&target, &command, payload.as_bytes(), id, timeout)
                .await?;
            let mut code = if replies.is_empty() { 2 } else { 0 };
            for (device, line) in &replies {
                println!("{device} {}", serde_json::to_string(line)?);
                if !line.ok {
                    code = 1;
                }
            }
            if replies.is_empty() {
                eprintln!("no reply within {}", humantime::format_duration(timeout));
            }
            Ok(code)
        }
        FleetCommand::List { wait } => {
            let mut op = Operator::connect(&args.conn).await?;
            let p = &args.conn.prefix;
            op.subscribe(&[format!("{p}/+/status"), format!("{p}/+/state")])
                .await?;
            let mut boxes: BTreeMap<
                String,
                (Option<serde_json::Value>, Option<serde_json::Value>),
            > = BTreeMap::new();
            let deadline = tokio::time::Instant::now() + wait;
            while let Some(m) = op.next_until(deadline).await {
                let Some((device, leaf)) = split_device(p, &m.topic) else {
                    continue;
                };
                let Ok(v) = serde_json::from_slice::<serde_json::Value>(&m.payload) else {
                    continue;
                };
                let e = boxes.entry(device).or_default();
                match leaf.as_str() {
                    "status" => e.0 = Some(v),
                    "state" => e.1 = Some(v),
                    _ => {}
                }
            }
            print!("{}", list_table(&boxes));
            Ok(0)
        }
        FleetCommand::Events { device, count } => {
            let mut op = Operator::connect(&args.conn).await?;
            let p = &args.conn.prefix;
            let d = device.as_deref().unwrap_or("+");
            op.subscribe(&[format!("{p}/{d}/events")]).await?;
            let mut seen = 0u64;
            while let Some(m) = op.next().await {
                let device = split_device(p, &m.topic).map(|x| x.0).unwrap_or_default();
                println!("{device} {}", String::from_utf8_lossy(&m.payload));
                seen += 1;
                if count.is_some_and(|c| seen >= c) {
                    break;
                }
            }
            Ok(0)
        }
    }
}

fn write_private(path: &std::path::Path, key: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    writeln!(f, "{key}")?;
    Ok(())
}

fn split_device(prefix: &str, topic: &str) -> Option<(String, String)> {
    let rest = topic.strip_prefix(prefix)?.strip_prefix('/')?;
    let (device, leaf) = rest.split_once('/')?;
    Some((device.to_string(), leaf.to_string()))
}

/// The `list` table: one line per box.
pub fn list_table(
    boxes: &BTreeMap<String, (Option<serde_json::Value>, Option<serde_json::Value>)>,
) -> String {
    let mut out = format!(
        "{:<24} {:<8} {:<20} {:<6} {:<10} {}\n",
        "DEVICE", "STATUS", "ROOM", "MIC", "RECORDING", "HEALTH"
    );
    for (device, (status, state)) in boxes {
        let s = |v: &Option<serde_json::Value>, path: &str| -> Option<serde_json::Value> {
            v.as_ref()?.pointer(path).cloned()
        };
        let online = s(status, "/status")
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "?".into());
        let room = s(state, "/room/roomId")
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "-".into());
        let mic = match s(state, "/localParticipant/micOn") {
            Some(serde_json::Value::Bool(true)) => "on",
            Some(serde_json::Value::Bool(false)) => "muted",
            _ => "?",
        };
        let rec = s(state, "/recording/state")
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "?".into());
        let health = match s(state, "/health/ok") {
            Some(serde_json::Value::Bool(true)) => "ok".to_string(),
            Some(serde_json::Value::Bool(false)) => {
                let problems = s(state, "/health/problems")
                    .and_then(|v| serde_json::from_value::<Vec<String>>(v).ok())
                    .unwrap_or_default();
                format!("PROBLEM: {}", problems.join("; "))
            }
            _ => "?".into(),
        };
        out.push_str(&format!(
            "{device:<24} {online:<8} {room:<20} {mic:<6} {rec:<10} {health}\n"
        ));
    }
    out
}

/// Where a command goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum To {
    /// One box.
    Device(String),
    /// Every box of a group.
    Group(String),
}

/// A message the operator received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Topic.
    pub topic: String,
    /// Payload.
    pub payload: Vec<u8>,
    /// Correlation data.
    pub correlation: Option<Vec<u8>>,
    /// User properties.
    pub user: Vec<(String, String)>,
}

impl To {
    /// `group/<name>` or a device id.
    pub fn parse(s: &str) -> anyhow::Result<To> {
        let to = match s.strip_prefix("group/") {
            Some(g) => To::Group(g.to_string()),
            None => To::Device(s.to_string()),
        };
        let name = match &to {
            To::Group(n) | To::Device(n) => n,
        };
        anyhow::ensure!(
            crate::config::is_topic_level(name),
            "`{s}` is not a device id or group/<name>"
        );
        Ok(to)
    }
}

impl Received {
    /// A user property.
    pub fn prop(&self, name: &str) -> Option<&str> {
        self.user
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An operator's MQTT connection (also used by tests and benchmarks).
pub struct Operator {
    client: AsyncClient,
    incoming: mpsc::UnboundedReceiver<Received>,
    acks: mpsc::UnboundedReceiver<()>,
    task: tokio::task::JoinHandle<()>,
    prefix: String,
    session: String,
    signing_key: Option<ed25519_dalek::SigningKey>,
    replies_subscribed: bool,
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Operator {
    /// Connects (clean session, a fresh client id) and waits for the broker's ConnAck.
    pub async fn connect(conn: &ConnArgs) -> anyhow::Result<Operator> {
        let session = uuid::Uuid::new_v4().simple().to_string();
        let client_id = conn
            .client_id
            .clone()
            .unwrap_or_else(|| format!("roombox-op-{session}"));
        let endpoint = conn.endpoint()?;
        let mut o = endpoint.options(client_id, 1024)?;
        o.set_clean_start(conn.client_id.is_none());
        if conn.client_id.is_some() {
            o.set_session_expiry_interval(Some(24 * 3600));
        }
        o.set_keep_alive(Duration::from_secs(30));
        o.set_max_packet_size(Some(super::MAX_PACKET_BYTES * 4));
        let signing_key = match &conn.signing_key {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read {}", p.display()))?;
                Some(
                    signing::parse_signing_key(&text)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
                )
            }
            None => None,
        };
        let (client, mut eventloop) = AsyncClient::new(o, 4096);
        let (in_tx, incoming) = mpsc::unbounded_channel();
        let (ack_tx, acks) = mpsc::unbounded_channel();
        let (up_tx, mut up_rx) = mpsc::unbounded_channel::<Result<(), String>>();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                        let _ = up_tx.send(Ok(()));
                    }
                    Ok(MqttEvent::Incoming(Packet::SubAck(_))) => {
                        let _ = ack_tx.send(());
                    }
                    Ok(MqttEvent::Incoming(Packet::Publish(p))) => {
                        if in_tx.send(received(p)).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let words = super::link::describe(&e, &endpoint).to_string();
                        if up_tx.send(Err(words)).is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        });
        let mut op = Operator {
            client,
            incoming,
            acks,
            task,
            prefix: conn.prefix.clone(),
            session,
            signing_key,
            replies_subscribed: false,
        };
        match tokio::time::timeout(Duration::from_secs(10), up_rx.recv()).await {
            Ok(Some(Ok(()))) => {}
            Ok(Some(Err(e))) => anyhow::bail!("cannot connect to {}: {e}", conn.broker),
            _ => anyhow::bail!("cannot connect to {}: no answer", conn.broker),
        }
        // Keep the channel open for later reconnect reports.
        tokio::spawn(async move { while up_rx.recv().await.is_some() {} });
        op.replies_subscribed = false;
        Ok(op)
    }

    /// Subscribes (QoS 1) and waits for the SubAck.
    pub async fn subscribe(&mut self, filters: &[String]) -> anyhow::Result<()> {
        let f: Vec<Filter> = filters
            .iter()
            .map(|f| Filter::new(f.clone(), QoS::AtLeastOnce))
            .collect();
        self.client.subscribe_many(f).await?;
        tokio::time::timeout(Duration::from_secs(10), self.acks.recv())
            .await
            .context("no SubAck from the broker")?;
        Ok(())
    }

    /// The topic replies to this operator come back on, for a command sent to `to`.
    pub fn response_topic(&self, to: &To) -> String {
        match to {
            To::Device(d) => format!("{}/{d}/reply/{}", self.prefix, self.session),
            To::Group(_) => format!("{}/reply/{}", self.prefix, self.session),
        }
    }

    async fn ensure_reply_subscription(&mut self) -> anyhow::Result<()> {
        if !self.replies_subscribed {
            let p = self.prefix.clone();
            let s = self.session.clone();
            self.subscribe(&[format!("{p}/+/reply/{s}"), format!("{p}/reply/{s}")])
                .await?;
            self.replies_subscribed = true;
        }
        Ok(())
    }

    /// Publishes one command (signed when a key is loaded) with id `id` and correlation data
    /// `correlation`; returns without waiting for a reply.
    pub async fn send(
        &mut self,
        to: &To,
        command: &str,
        payload: &[u8],
        id: &str,
        correlation: &[u8],
    ) -> anyhow::Result<()> {
        self.ensure_reply_subscription().await?;
        let topic = match to {
            To::Device(d) => device_command(&self.prefix, d, command),
            To::Group(g) => group_command(&self.prefix, g, command),
        };
        let mut user = vec![(PROP_ID.to_string(), id.to_string())];
        if let Some(k) = &self.signing_key {
            let nonce = uuid::Uuid::new_v4().simple().to_string();
            user.extend(signing::sign(k, &topic, now_ms(), &nonce, id, payload));
        }
        self.publish_raw(
            &topic,
            payload,
            Some(self.response_topic(to)),
            Some(correlation.to_vec()),
            user,
        )
        .await
    }

    /// Publishes anything (tests use it for malformed and forged commands).
    pub async fn publish_raw(
        &self,
        topic: &str,
        payload: &[u8],
        response_topic: Option<String>,
        correlation: Option<Vec<u8>>,
        user: Vec<(String, String)>,
    ) -> anyhow::Result<()> {
        let props = PublishProperties {
            response_topic,
            correlation_data: correlation.map(Into::into),
            user_properties: user,
            ..Default::default()
        };
        self.client
            .publish_with_properties(topic, QoS::AtLeastOnce, false, payload.to_vec(), props)
            .await?;
        Ok(())
    }

    /// Publishes a retained message (QoS 1): a rollout record.
    pub async fn publish_retained(&self, topic: &str, payload: Vec<u8>) -> anyhow::Result<()> {
        self.client
            .publish(topic, QoS::AtLeastOnce, true, payload)
            .await?;
        Ok(())
    }

    /// Sends a command and collects replies: for a device, until its reply; for a group, until
    /// `timeout`. Returns (device, reply) pairs.
    pub async fn request(
        &mut self,
        to: &To,
        command: &str,
        payload: &[u8],
        id: Option<String>,
        timeout: Duration,
    ) -> anyhow::Result<Vec<(String, ReplyLine)>> {
        let id = id.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        let corr = uuid::Uuid::new_v4().as_bytes().to_vec();
        self.send(to, command, payload, &id, &corr).await?;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut out = Vec::new();
        while let Some(m) = self.next_until(deadline).await {
            if m.correlation.as_deref() != Some(&corr[..]) {
                continue;
            }
            let device = m.prop("device").unwrap_or("?").to_string();
            let line: ReplyLine = serde_json::from_slice(&m.payload)
                .with_context(|| format!("{device} sent a reply that is not a reply line"))?;
            out.push((device, line));
            if matches!(to, To::Device(_)) {
                break;
            }
        }
        Ok(out)
    }

    /// The next message received.
    pub async fn next(&mut self) -> Option<Received> {
        self.incoming.recv().await
    }

    /// The next message received before `deadline`.
    pub async fn next_until(&mut self, deadline: tokio::time::Instant) -> Option<Received> {
        tokio::time::timeout_at(deadline, self.incoming.recv())
            .await
            .ok()
            .flatten()
    }
}

fn received(p: Publish) -> Received {
    let props = p.properties.unwrap_or_default();
    Received {
        topic: String::from_utf8_lossy(&p.topic).into_owned(),
        payload: p.payload.to_vec(),
        correlation: props.correlation_data.map(|b| b.to_vec()),
        user: props.user_properties,
    }
}

#[cfg(test)]
#[path = "cli_tests.rs"]
mod tests;
