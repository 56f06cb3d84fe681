//! Fleet control over MQTT v5 (docs/mqtt-api.md): every agent operation remote, every state
//! visible, nothing lost.
//!
//! [`spawn`] connects to the broker from `[fleet]` and runs two tasks: a thin one that drives
//! rumqttc's event loop (reconnecting with jittered backoff) and one that owns the pure
//! [`session::Session`], the on-disk [`queue::Outbox`] and the agent's event and state streams.

pub mod cli;
pub mod queue;
pub mod session;
pub mod setconfig;
pub mod signing;
pub mod sim;
pub mod telemetry;
pub mod topic;

use crate::agent::AgentHandle;
use crate::backoff::Backoff;
use crate::command::{Command, CommandError};
use crate::config::{BrokerUrl, FleetConfig};
use crate::model::now_ms;
use anyhow::Context;
use queue::Outbox;
use rumqttc::v5::mqttbytes::v5::{Filter, LastWill, Packet, PublishProperties, RetainForwardRule};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event as MqttEvent, MqttOptions};
use rumqttc::{TlsConfiguration, Transport};
use session::{Decision, Message, Request, Session, Throttle, Work};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

/// Largest packet the broker may send this box; larger ones are dropped by the broker (MQTT v5
/// Maximum Packet Size), payloads between this and the command limit get `payload-too-large`.
pub const MAX_PACKET_BYTES: u32 = 256 * 1024;
/// Requests rumqttc may hold before publishing falls back to the outbox.
const CLIENT_CAPACITY: usize = 1024;

/// The running fleet client. Dropping it stops it at once (as a crash would: the broker then
/// publishes the last will); [`FleetHandle::shutdown`] stops it cleanly.
pub struct FleetHandle {
    stop: Option<oneshot::Sender<()>>,
    main: JoinHandle<()>,
    net: JoinHandle<()>,
}

impl FleetHandle {
    /// Publishes `offline`, disconnects and waits (at most a few seconds) for both tasks.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.main).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.net).await;
    }
}

impl Drop for FleetHandle {
    fn drop(&mut self) {
        self.main.abort();
        self.net.abort();
    }
}

/// What the network task reports.
enum Net {
    Up { session_present: bool },
    Publish(Box<rumqttc::v5::mqttbytes::v5::Publish>),
    Down(String),
}

/// Connects to the broker and serves the fleet API until the handle is dropped or shut down.
/// `config_path` is the main config file (`set-config` writes its `config.d/90-fleet.toml`);
/// none when the agent runs on the embedded default.
pub async fn spawn(
    config: &FleetConfig,
    device_id: String,
    agent: AgentHandle,
    state_dir: &Path,
    config_path: Option<PathBuf>,
) -> anyhow::Result<FleetHandle> {
    anyhow::ensure!(config.enabled(), "no fleet broker is configured");
    let topics = topic::Topics::new(&config.prefix, &device_id, &config.groups);
    let verifier = if config.signing.public_key.is_empty() {
        None
    } else {
        let key = signing::parse_public_key(&config.signing.public_key)
            .map_err(|e| anyhow::anyhow!("fleet.signing.public_key: {e}"))?;
        Some(signing::Verifier::new(
            key,
            config.signing.window.as_millis() as u64,
        ))
    };
    let session = Session::new(topics, verifier, config.dedupe_window);
    let options = mqtt_options(config, &device_id, session.will_payload())?;
    let fleet_dir = state_dir.join("fleet");
    let outbox = Outbox::open(&fleet_dir.join("outbox"), config.outbox_max_messages)
        .with_context(|| format!("cannot open the outbox in {}", fleet_dir.display()))?;

    let (client, mut eventloop) = AsyncClient::new(options, CLIENT_CAPACITY);
    let (net_tx, net_rx) = mpsc::channel(1024);
    let mut backoff = Backoff::from_config(&config.reconnect);
    let net = tokio::spawn(async move {
        loop {
            let report = match eventloop.poll().await {
                Ok(MqttEvent::Incoming(Packet::ConnAck(ack))) => {
                    backoff.reset();
                    Some(Net::Up {
                        session_present: ack.session_present,
                    })
                }
                Ok(MqttEvent::Incoming(Packet::Publish(p))) => Some(Net::Publish(Box::new(p))),
                Ok(MqttEvent::Incoming(Packet::Disconnect(d))) => Some(Net::Down(format!(
                    "the broker disconnected: {:?}",
                    d.reason_code
                ))),
                Ok(_) => None,
                Err(e) => {
                    if net_tx.send(Net::Down(e.to_string())).await.is_err() {
                        return;
                    }
                    let delay = backoff.next_delay();
                    tokio::time::sleep(delay).await;
                    None
                }
            };
            if let Some(r) = report {
                if net_tx.send(r).await.is_err() {
                    return;
                }
            }
        }
    });

    let (stop_tx, stop_rx) = oneshot::channel();
    let worker = Worker {
        session,
        client,
        outbox,
        online: false,
        agent,
        state_dir: state_dir.to_path_buf(),
        config_path,
        throttle: Throttle::new(config.state_min_interval),
        telemetry_interval: config.telemetry_interval,
        set_config_timeout: config.set_config_timeout,
        set_config_lock: Arc::new(tokio::sync::Mutex::new(())),
    };
    let main = tokio::spawn(worker.run(net_rx, stop_rx));
    Ok(FleetHandle {
        stop: Some(stop_tx),
        main,
        net,
    })
}

/// The MQTT options for a box: persistent session, last will, credentials and TLS.
fn mqtt_options(
    config: &FleetConfig,
    device_id: &str,
    will_payload: String,
) -> anyhow::Result<MqttOptions> {
    let url = BrokerUrl::parse(&config.broker).map_err(|e| anyhow::anyhow!("fleet.broker: {e}"))?;
    let mut o = MqttOptions::new(format!("roombox-{device_id}"), url.host.clone(), url.port);
    o.set_keep_alive(config.keep_alive);
    let expiry = config.session_expiry.as_secs().min(u64::from(u32::MAX - 1)) as u32;
    o.set_clean_start(expiry == 0);
    o.set_session_expiry_interval((expiry > 0).then_some(expiry));
    o.set_max_packet_size(Some(MAX_PACKET_BYTES));
    o.set_connection_timeout(10);
    tune(&mut o, 128);
    let status = topic::Topics::new(&config.prefix, device_id, &[]).status();
    o.set_last_will(LastWill::new(
        status,
        will_payload,
        QoS::AtLeastOnce,
        true,
        None,
    ));
    if !config.auth.username.is_empty() {
        let password = if config.auth.password_file.as_os_str().is_empty() {
            String::new()
        } else {
            let text = std::fs::read_to_string(&config.auth.password_file).with_context(|| {
                format!(
                    "fleet.auth.password_file: cannot read {}",
                    config.auth.password_file.display()
                )
            })?;
            text.lines().next().unwrap_or_default().to_string()
        };
        o.set_credentials(config.auth.username.clone(), password);
    }
    if url.tls {
        o.set_transport(Transport::tls_with_config(tls_config(config)?));
    }
    Ok(o)
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
    let _ = rumqttc::tokio_rustls::rustls::crypto::aws_lc_rs::default_provider().install_default();
}

fn read_file(field: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("{field}: cannot read {}", path.display()))
}

fn tls_config(config: &FleetConfig) -> anyhow::Result<TlsConfiguration> {
    ensure_crypto_provider();
    let t = &config.tls;
    let ca = read_file("fleet.tls.ca", &t.ca)?;
    let client_auth = if t.cert.as_os_str().is_empty() {
        None
    } else {
        Some((
            read_file("fleet.tls.cert", &t.cert)?,
            read_file("fleet.tls.key", &t.key)?,
        ))
    };
    Ok(TlsConfiguration::Simple {
        ca,
        alpn: None,
        client_auth,
    })
}

/// Publishes one message through rumqttc without waiting; false when its queue is full or
/// closed (the caller keeps the message).
fn publish(client: &AsyncClient, m: &Message) -> bool {
    let props = PublishProperties {
        correlation_data: m.correlation.clone().map(Into::into),
        user_properties: m.user.clone(),
        content_type: Some("application/json".into()),
        ..Default::default()
    };
    let qos = if m.qos1 {
        QoS::AtLeastOnce
    } else {
        QoS::AtMostOnce
    };
    client
        .try_publish_with_properties(
            m.topic.clone(),
            qos,
            m.retain,
            m.payload.clone().into_bytes(),
            props,
        )
        .is_ok()
}

fn to_request(p: rumqttc::v5::mqttbytes::v5::Publish) -> Request {
    let props = p.properties.unwrap_or_default();
    Request {
        topic: String::from_utf8_lossy(&p.topic).into_owned(),
        payload: p.payload.to_vec(),
        response_topic: props.response_topic,
        correlation: props.correlation_data.map(|b| b.to_vec()),
        user: props.user_properties,
        dup: p.dup,
    }
}

struct Worker {
    session: Session,
    client: AsyncClient,
    outbox: Outbox,
    online: bool,
    agent: AgentHandle,
    state_dir: PathBuf,
    config_path: Option<PathBuf>,
    throttle: Throttle,
    telemetry_interval: Duration,
    set_config_timeout: Duration,
    set_config_lock: Arc<tokio::sync::Mutex<()>>,
}

type Done = (u64, Result<serde_json::Value, CommandError>);

impl Worker {
    async fn run(mut self, mut net: mpsc::Receiver<Net>, mut stop: oneshot::Receiver<()>) {
        let mut events = self.agent.subscribe();
        let mut state = self.agent.state();
        let mut agent_gone = false;
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
        // Agent commands run one at a time, in the order they arrived.
        let (run_tx, mut run_rx) = mpsc::unbounded_channel::<(u64, Command)>();
        let runner = {
            let agent = self.agent.clone();
            let done_tx = done_tx.clone();
            tokio::spawn(async move {
                while let Some((ticket, cmd)) = run_rx.recv().await {
                    let r = agent.send(cmd).await;
                    if done_tx.send((ticket, r)).is_err() {
                        return;
                    }
                }
            })
        };
        let _runner = AbortOnDrop(runner);
        let mut sampler = telemetry::Sampler::new();
        let mut telemetry = tokio::time::interval(self.telemetry_interval);
        telemetry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut drain = tokio::time::interval(Duration::from_secs(1));
        drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.throttle.mark();

        loop {
            let state_due = if self.online {
                self.throttle.due(now_ms())
            } else {
                None
            };
            tokio::select! {
                _ = &mut stop => {
                    let m = self.session.status("offline", now_ms());
                    if self.online && publish(&self.client, &m) {
                        let _ = self.client.try_disconnect();
                        // Let the event loop flush the status and the DISCONNECT.
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    return;
                }
                Some(n) = net.recv() => match n {
                    Net::Up { session_present } => self.connected(session_present),
                    Net::Publish(p) => {
                        match self.session.request(to_request(*p), now_ms()) {
                            Decision::Reply(m) => self.send_reliable(m),
                            Decision::Run { ticket, work: Work::Agent(cmd) } => {
                                let _ = run_tx.send((ticket, cmd));
                            }
                            Decision::Run { ticket, work: Work::SetConfig(text) } => {
                                self.set_config(ticket, text, done_tx.clone());
                            }
                            Decision::Wait | Decision::Ignore => {}
                        }
                    }
                    Net::Down(e) => {
                        if self.online {
                            tracing::warn!("fleet: lost the broker: {e}");
                        } else {
                            tracing::debug!("fleet: cannot reach the broker: {e}");
                        }
                        self.online = false;
                    }
                },
                Some((ticket, r)) = done_rx.recv() => {
                    for m in self.session.done(ticket, r, now_ms()) {
                        self.send_reliable(m);
                    }
                }
                ev = events.recv(), if !agent_gone => match ev {
                    Ok(e) => {
                        let json = serde_json::to_string(&e).unwrap_or_default();
                        let m = self.session.event(json);
                        self.send_reliable(m);
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        let m = self.session.event(fleet_error(format!("{n} events were skipped: the fleet link fell behind")));
                        self.send_reliable(m);
                    }
                    Err(broadcast::error::RecvError::Closed) => agent_gone = true,
                },
                r = state.changed(), if !agent_gone => match r {
                    Ok(()) => self.throttle.mark(),
                    Err(_) => agent_gone = true,
                },
                _ = sleep_until_ms(state_due) => {
                    let json = serde_json::to_string(&*state.borrow_and_update()).unwrap_or_default();
                    let m = self.session.state(json);
                    if publish(&self.client, &m) {
                        self.throttle.fired(now_ms());
                    } else {
                        // The client is full: try again after the interval.
                        self.throttle.fired(now_ms());
                        self.throttle.mark();
                    }
                }
                _ = telemetry.tick() => {
                    if self.online {
                        let sample = sampler.sample(&state.borrow(), &self.state_dir, now_ms());
                        let m = self.session.telemetry(serde_json::to_string(&sample).unwrap_or_default());
                        let _ = publish(&self.client, &m);
                    }
                }
                _ = drain.tick() => self.drain(),
            }
        }
    }

    /// Every ConnAck: re-subscribe, birth, the current state, then what waited in the outbox.
    fn connected(&mut self, session_present: bool) {
        tracing::info!(session_present, "fleet: connected to the broker");
        self.online = true;
        let filters: Vec<Filter> = self
            .session
            .topics()
            .filters()
            .into_iter()
            .map(|f| {
                let mut f = Filter::new(f, QoS::AtLeastOnce);
                // A retained command would run again on every reconnect: never take them.
                f.retain_forward_rule = RetainForwardRule::Never;
                f
            })
            .collect();
        if let Err(e) = self.client.try_subscribe_many(filters) {
            tracing::warn!("fleet: subscribe failed: {e}");
        }
        let birth = self.session.birth(now_ms());
        let _ = publish(&self.client, &birth);
        self.throttle.mark();
        self.drain();
    }

    /// Publishes what must not be lost, or keeps it on disk while offline (and behind anything
    /// already waiting there, so order holds).
    fn send_reliable(&mut self, m: Message) {
        if self.online && self.outbox.is_empty() && publish(&self.client, &m) {
            return;
        }
        if let Err(e) = self.outbox.push(&m) {
            tracing::error!("fleet: cannot queue a message on disk, it is lost: {e}");
        }
    }

    fn drain(&mut self) {
        while self.online {
            let Some((seq, m)) = self.outbox.peek() else {
                break;
            };
            if !publish(&self.client, &m) {
                break;
            }
            self.outbox.remove(seq);
        }
        let dropped = self.outbox.take_dropped();
        if dropped > 0 {
            let m = self.session.event(fleet_error(format!(
                "{dropped} queued replies or events were dropped: the outbox was full"
            )));
            self.send_reliable(m);
        }
    }

    fn set_config(&self, ticket: u64, text: String, done: mpsc::UnboundedSender<Done>) {
        let agent = self.agent.clone();
        let path = self.config_path.clone();
        let timeout = self.set_config_timeout;
        let lock = self.set_config_lock.clone();
        tokio::spawn(async move {
            let _one_at_a_time = lock.lock().await;
            let r = setconfig::apply(&agent, path.as_deref(), &text, timeout).await;
            let _ = done.send((ticket, r));
        });
    }
}

fn fleet_error(message: String) -> String {
    serde_json::to_string(&crate::event::Event::Error {
        code: "fleet".into(),
        message,
    })
    .unwrap_or_default()
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn sleep_until_ms(at_ms: Option<u64>) {
    match at_ms {
        Some(at) => {
            let wait = at.saturating_sub(now_ms());
            tokio::time::sleep(Duration::from_millis(wait)).await
        }
        None => std::future::pending().await,
    }
}
