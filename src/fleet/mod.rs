//! Fleet control over MQTT v5 (docs/mqtt-api.md): every agent operation remote, every state
//! visible, nothing lost.
//!
//! [`spawn`] connects to the broker from `[fleet]` and runs two tasks: a thin one that drives
//! rumqttc's event loop (reconnecting with jittered backoff) and one that owns the pure
//! [`session::Session`], the on-disk [`queue::Outbox`] and [`dedupe::Journal`], and the agent's
//! event and state streams. The second reports the link (connected or not, and why) to the
//! agent's state, and logs each change of it once.
//!
//! Layer 10 of docs/architecture.md: it holds an `AgentHandle` and uses the control API's
//! command decoder; `check`, `http` and `run` import it.

pub mod certs;
pub mod cli;
pub mod dedupe;
pub mod link;
mod net;
pub mod queue;
pub mod rollout;
pub mod session;
pub mod setconfig;
pub mod signing;
#[cfg(feature = "test-util")]
pub mod sim;
pub mod telemetry;
pub mod topic;

use crate::agent::state::FleetLink;
use crate::agent::AgentHandle;
use crate::backoff::Backoff;
use crate::command::{Command, CommandError};
use crate::config::FleetConfig;
use crate::model::now_ms;
use crate::sync::sleep_until;
use anyhow::Context;
use dedupe::Journal;
use link::{Endpoint, Failure};
use net::{box_options, net_task, publish, to_request, Net};
use queue::Outbox;
use rumqttc::v5::mqttbytes::v5::{Filter, LastWill, Packet, PublishProperties, RetainForwardRule};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event as MqttEvent, MqttOptions};
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
    /// Asks the worker for a clean stop.
    stop: Option<oneshot::Sender<()>>,
    /// Reloaded `[fleet]` sections (with the device id) for the worker.
    reconfigure: mpsc::UnboundedSender<(Box<FleetConfig>, String)>,
    /// The worker; it owns the network task, so aborting it stops both.
    main: JoinHandle<()>,
}

impl FleetHandle {
    /// Publishes `offline`, disconnects and waits (at most a few seconds) for the client.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.main).await;
    }

    /// Applies a reloaded `[fleet]` section (and device id): the session keeps every command
    /// id it remembers and the outbox keeps what waits in it; the connection is made again
    /// when anything it depends on changed, or when it is down (so re-issued certificate files
    /// are read again).
    pub fn reconfigure(&self, config: &FleetConfig, device_id: String) {
        let _ = self.reconfigure.send((Box::new(config.clone()), device_id));
    }
}

impl Drop for FleetHandle {
    fn drop(&mut self) {
        self.main.abort();
    }
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
    let mut session = Session::new(
        topic::Topics::new(&config.prefix, &device_id, &config.groups),
        verifier(config)?,
        config.dedupe_window,
    );
    let fleet_dir = state_dir.join("fleet");
    let outbox = Outbox::open(&fleet_dir.join("outbox"), config.outbox_max_messages)
        .with_context(|| format!("cannot open the outbox in {}", fleet_dir.display()))?;
    let (journal, answered) = Journal::open(
        &fleet_dir,
        config.dedupe_window.as_millis() as u64,
        now_ms(),
    )
    .with_context(|| {
        format!(
            "cannot open the command-id journal in {}",
            fleet_dir.display()
        )
    })?;
    session.remember(answered);
    let rollout =
        rollout::follow::Follower::open(&device_id, Some(fleet_dir.join(rollout::follow::FILE)));

    let (stop_tx, stop_rx) = oneshot::channel();
    let (reconf_tx, reconf_rx) = mpsc::unbounded_channel();
    let (net_tx, net_rx) = mpsc::channel::<(u64, Net)>(1024);
    let mut worker = Worker {
        session,
        client: None,
        net: None,
        generation: 0,
        net_tx,
        outbox,
        journal,
        online: false,
        last_failure: None,
        retry_at: None,
        config: config.clone(),
        device_id,
        agent,
        state_dir: state_dir.to_path_buf(),
        config_path,
        throttle: Throttle::new(config.state_min_interval),
        set_config_lock: Arc::new(tokio::sync::Mutex::new(())),
        rollout,
    };
    worker.connect();
    let main = tokio::spawn(worker.run(net_rx, reconf_rx, stop_rx));
    Ok(FleetHandle {
        stop: Some(stop_tx),
        reconfigure: reconf_tx,
        main,
    })
}

fn verifier(config: &FleetConfig) -> anyhow::Result<Option<signing::Verifier>> {
    if config.signing.public_key.is_empty() {
        return Ok(None);
    }
    let key = signing::parse_public_key(&config.signing.public_key)
        .map_err(|e| anyhow::anyhow!("fleet.signing.public_key: {e}"))?;
    Ok(Some(signing::Verifier::new(
        key,
        config.signing.window.as_millis() as u64,
    )))
}

/// The settings the connection itself depends on; a change in them means connecting again.
fn connection_changed(a: &FleetConfig, b: &FleetConfig) -> bool {
    a.broker != b.broker
        || a.failover != b.failover
        || a.prefix != b.prefix
        || a.groups != b.groups
        || a.keep_alive != b.keep_alive
        || a.session_expiry != b.session_expiry
        || a.tls != b.tls
        || a.auth != b.auth
        || a.reconnect != b.reconnect
}

/// The task that owns the fleet session and everything around it.
struct Worker {
    /// The pure session: decisions, messages, the command-id cache.
    session: Session,
    /// The current connection's client; none while none could be made.
    client: Option<AsyncClient>,
    /// The current connection's network task, and its generation (reports from an older one,
    /// still in the channel after a reconnection, are ignored).
    net: Option<(u64, AbortOnDrop)>,
    /// The last generation handed out.
    generation: u64,
    /// Where every network task's reports go, tagged with its generation.
    net_tx: mpsc::Sender<(u64, Net)>,
    /// Replies and events waiting for the broker.
    outbox: Outbox,
    /// The answered command ids, on disk.
    journal: Journal,
    /// Connected (a ConnAck came and no failure since).
    online: bool,
    /// The failure last logged and reported, so a retry that fails the same way says nothing.
    last_failure: Option<Failure>,
    /// When to try making the connection again, after its options could not be made (a
    /// certificate or password file that cannot be read yet).
    retry_at: Option<tokio::time::Instant>,
    /// The `[fleet]` section in force.
    config: FleetConfig,
    /// This box's id (a topic level and the client id).
    device_id: String,
    /// The agent commands run on, and the link is reported to.
    agent: AgentHandle,
    /// Where telemetry measures free disk.
    state_dir: PathBuf,
    /// The main config file `set-config` writes beside; none on the embedded default.
    config_path: Option<PathBuf>,
    /// Paces the retained state.
    throttle: Throttle,
    /// One `set-config` at a time: each reloads and watches health.
    set_config_lock: Arc<tokio::sync::Mutex<()>>,
    /// The staged rollouts of this box's groups.
    rollout: rollout::follow::Follower,
}

type Done = (u64, Result<serde_json::Value, CommandError>);

impl Worker {
    /// Makes the connection (again): a new client and network task from the current config.
    fn connect(&mut self) {
        self.generation += 1;
        let generation = self.generation;
        self.retry_at = None;
        self.net = None;
        self.client = None;
        self.online = false;
        if self.last_failure.is_none() {
            // A retry after a failure stays DISCONNECTED until it succeeds.
            self.agent.report_fleet(FleetLink::Connecting {
                broker: self.config.broker.clone(),
                at_ms: now_ms(),
            });
        }
        let options = match box_options(&self.config, &self.device_id, 0) {
            Ok(o) => o,
            Err(e) => {
                // A file that cannot be read (not provisioned yet?): try again later, as a
                // refused connection would be.
                self.down(Failure {
                    what: format!("{e:#}"),
                    fix: None,
                });
                self.retry_at = Some(tokio::time::Instant::now() + self.config.reconnect.max);
                return;
            }
        };
        let (client, eventloop) = AsyncClient::new(options, CLIENT_CAPACITY);
        let (tx, mut rx) = mpsc::channel(64);
        let task = net_task(eventloop, self.config.clone(), self.device_id.clone(), tx);
        // Tag the task's reports with its generation on their way to the worker.
        let net_tx = self.net_tx.clone();
        let forward = tokio::spawn(async move {
            let _task = AbortOnDrop(task);
            while let Some(n) = rx.recv().await {
                if net_tx.send((generation, n)).await.is_err() {
                    return;
                }
            }
        });
        self.client = Some(client);
        self.net = Some((generation, AbortOnDrop(forward)));
    }

    /// A failed attempt or a dropped link: logged and reported when the reason changed.
    fn down(&mut self, failure: Failure) {
        let was_online = std::mem::replace(&mut self.online, false);
        if was_online {
            tracing::warn!(broker = %self.config.broker, "fleet: lost the broker: {failure}");
        } else if self.last_failure.as_ref() != Some(&failure) {
            tracing::warn!(broker = %self.config.broker, "fleet: cannot connect: {failure}");
        } else {
            tracing::debug!("fleet: still cannot connect: {failure}");
            return;
        }
        self.agent.report_fleet(FleetLink::Down {
            error: failure.what.clone(),
            fix: failure.fix.clone(),
            at_ms: now_ms(),
        });
        self.last_failure = Some(failure);
    }

    fn publish(&self, m: &Message) -> bool {
        self.client.as_ref().is_some_and(|c| publish(c, m))
    }

    /// Applies a reloaded `[fleet]` section.
    async fn reconfigure(&mut self, config: FleetConfig, device_id: String) {
        let reconnect = connection_changed(&self.config, &config)
            || device_id != self.device_id
            || !self.online;
        let topics = topic::Topics::new(&config.prefix, &device_id, &config.groups);
        match verifier(&config) {
            Ok(v) => self.session.reconfigure(topics, v, config.dedupe_window),
            Err(e) => tracing::error!("fleet: {e:#}; keeping the previous signature settings"),
        }
        self.throttle = Throttle::new(config.state_min_interval);
        self.throttle.mark();
        self.outbox.set_max(config.outbox_max_messages);
        if reconnect {
            tracing::info!(broker = %config.broker, "fleet: configuration changed; connecting again");
            if self.online {
                let m = self.session.status("offline", now_ms());
                if self.publish(&m) {
                    if let Some(c) = &self.client {
                        let _ = c.try_disconnect();
                    }
                    // Let the old event loop flush the status and the DISCONNECT, so the
                    // broker does not publish the last will over the new birth.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
            self.config = config;
            self.device_id = device_id;
            self.last_failure = None;
            self.connect();
        } else {
            self.config = config;
            self.device_id = device_id;
        }
    }

    async fn run(
        mut self,
        mut net: mpsc::Receiver<(u64, Net)>,
        mut reconf: mpsc::UnboundedReceiver<(Box<FleetConfig>, String)>,
        mut stop: oneshot::Receiver<()>,
    ) {
        let mut events = self.agent.subscribe();
        let mut state = self.agent.state();
        let mut agent_gone = false;
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
        // Agent commands run one at a time, in the order they arrived.
        let (run_tx, mut run_rx) = mpsc::unbounded_channel::<(u64, Command)>();
        // The agent's answers to rollouts' `update` commands, as events.
        let (rollout_tx, mut rollout_rx) = mpsc::unbounded_channel::<String>();
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
        let mut telemetry_every = self.config.telemetry_interval;
        let mut telemetry = tokio::time::interval(telemetry_every);
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
                    if self.online && self.publish(&m) {
                        if let Some(c) = &self.client {
                            let _ = c.try_disconnect();
                        }
                        // Let the event loop flush the status and the DISCONNECT.
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    let _ = self.journal.sync();
                    self.agent.report_fleet(FleetLink::Off);
                    return;
                }
                Some((config, device_id)) = reconf.recv() => {
                    if config.telemetry_interval != telemetry_every {
                        telemetry_every = config.telemetry_interval;
                        telemetry = tokio::time::interval(telemetry_every);
                        telemetry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    }
                    self.reconfigure(*config, device_id).await;
                }
                Some((generation, n)) = net.recv() => {
                    if self.net.as_ref().map(|(g, _)| *g) != Some(generation) {
                        continue;
                    }
                    match n {
                        Net::Up { session_present, broker } => self.connected(session_present, broker),
                        Net::Publish(p) => {
                            let running = state.borrow().version.clone();
                            if self.rollout_record(&p, &running, &rollout_tx) {
                                continue;
                            }
                            let decision = self.session.request(to_request(*p), now_ms());
                            self.journal_answered();
                            match decision {
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
                        Net::Down(failure) => self.down(failure),
                    }
                }
                Some((ticket, r)) = done_rx.recv() => {
                    let replies = self.session.done(ticket, r, now_ms());
                    // On disk before the reply is out: a retry after a restart finds it.
                    self.journal_answered();
                    for m in replies {
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
                    if self.publish(&m) {
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
                        let _ = self.publish(&m);
                    }
                }
                _ = sleep_until(self.retry_at) => self.connect(),
                _ = sleep_until_ms(self.rollout.next_due()) => {
                    let outs = self.rollout.due(now_ms());
                    self.rollout_outs(outs, &rollout_tx);
                }
                Some(json) = rollout_rx.recv() => {
                    let m = self.session.event(json);
                    self.send_reliable(m);
                }
                _ = drain.tick() => {
                    self.drain();
                    match self.journal.to_sync() {
                        Ok(Some(f)) => {
                            tokio::task::spawn_blocking(move || {
                                if let Err(e) = f.sync_data() {
                                    tracing::warn!("fleet: cannot sync the command-id journal: {e}");
                                }
                            });
                        }
                        Ok(None) => {}
                        Err(e) => tracing::warn!("fleet: cannot sync the command-id journal: {e}"),
                    }
                }
            }
        }
    }

    /// Appends the commands the session just answered to the journal, and rewrites it when it
    /// has grown well past what is remembered.
    fn journal_answered(&mut self) {
        for a in self.session.take_answered() {
            if let Err(e) = self.journal.append(&a) {
                tracing::warn!("fleet: cannot record command id {} on disk: {e}", a.id);
            }
        }
        if self.journal.wants_compaction(self.session.remembered()) {
            if let Err(e) = self.journal.compact(&self.session.answered()) {
                tracing::warn!("fleet: cannot rewrite the command-id journal: {e}");
            }
        }
    }

    /// Every ConnAck: re-subscribe, birth, the current state, then what waited in the outbox.
    fn connected(&mut self, session_present: bool, broker: String) {
        tracing::info!(%broker, session_present, "fleet: connected to the broker");
        self.online = true;
        self.last_failure = None;
        self.agent.report_fleet(FleetLink::Connected {
            broker,
            at_ms: now_ms(),
        });
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
            .chain(self.config.groups.iter().map(|g| {
                // The rollout records are retained: each connection reads them again.
                Filter::new(rollout::topic(&self.config.prefix, g), QoS::AtLeastOnce)
            }))
            .collect();
        if let Some(c) = &self.client {
            if let Err(e) = c.try_subscribe_many(filters) {
                tracing::warn!("fleet: subscribe failed: {e}");
            }
        }
        let birth = self.session.birth(now_ms());
        let _ = self.publish(&birth);
        self.throttle.mark();
        self.drain();
    }

    /// Publishes what must not be lost, or keeps it on disk while offline (and behind anything
    /// already waiting there, so order holds).
    fn send_reliable(&mut self, m: Message) {
        if self.online && self.outbox.is_empty() && self.publish(&m) {
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
            if !self.publish(&m) {
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
        let timeout = self.config.set_config_timeout;
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
