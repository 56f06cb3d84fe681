//! The agent: one task owns the state and turns commands into actions; every change becomes an
//! event broadcast to the outputs.
//!
//! [`Agent::new`] returns an [`AgentHandle`] (cheap to clone: buttons, MQTT and the control socket
//! each hold one) and the [`Agent`] task itself, which [`Agent::run`] drives until a clean stop.
//!
//! Here: this loop (one `select!` over its inputs, carrying out the machine's effects), `state/`
//! (the pure state machine, a file per concern), `io.rs` (the I/O the machine asks for) and
//! `calendar.rs` (the calendar task and the agent's clock).
//!
//! Layer 8 of docs/architecture.md: below its inputs and outputs. It drives media, rooms, the
//! calendar and the transcriber through effects; `api`, `fleet`, `controls`, `check`, `http`
//! and `run` hold an [`AgentHandle`] or read [`state::AgentState`], and the agent imports none
//! of them.

mod calendar;
mod io;
pub mod state;
mod update;

use crate::command::{Command, CommandError, ErrorCode};
use crate::config::{self, Config};
use crate::event::{Event, MediaState};
use crate::media::{MediaControl, MediaNotice};
use crate::room::{RoomAction, RoomLink, RoomNotice};
use crate::sync::sleep_until;
use crate::sysd;
use crate::transcribe::live::{TranscriptionAction, TranscriptionNotice};
use calendar::CalendarPart;
use io::{livestream_setup, post_setup, Done};
use state::{AgentState, Effect, FleetLink, IoNotice, Reply, StateMachine, Token};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

/// How many commands may wait for the agent; senders wait (never drop) beyond that.
const COMMAND_QUEUE: usize = 256;
/// How many events a slow output may fall behind before it misses some.
const EVENT_BUFFER: usize = 1024;
/// How long a clean stop may take to finalise recordings before the agent exits anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The signals the agent answers. Install them before anything can signal the process (a
/// SIGHUP left to its default action would kill it).
pub struct Signals {
    sigterm: tokio::signal::unix::Signal,
    sigint: tokio::signal::unix::Signal,
    sighup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Takes over SIGTERM, SIGINT and SIGHUP.
    pub fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            sigterm: signal(SignalKind::terminate())?,
            sigint: signal(SignalKind::interrupt())?,
            sighup: signal(SignalKind::hangup())?,
        })
    }
}

/// A command and where its reply goes.
struct Request {
    command: Command,
    reply: oneshot::Sender<Result<serde_json::Value, CommandError>>,
}

/// A handle on the running agent: send commands, follow events and state.
#[derive(Clone)]
pub struct AgentHandle {
    requests: mpsc::Sender<Request>,
    events: broadcast::Sender<Event>,
    state: watch::Receiver<AgentState>,
    /// The fleet client's link reports, into the agent's state.
    fleet_links: mpsc::UnboundedSender<FleetLink>,
    /// The configuration in force, replaced on every accepted reload.
    config: watch::Receiver<Arc<Config>>,
}

impl AgentHandle {
    /// Reports the fleet link (connected or not, and why) into the agent's state.
    pub fn report_fleet(&self, link: FleetLink) {
        let _ = self.fleet_links.send(link);
    }

    /// Follows the configuration in force: what run.rs re-applies to the buttons, LEDs and the
    /// fleet client after a reload.
    pub fn config(&self) -> watch::Receiver<Arc<Config>> {
        self.config.clone()
    }

    /// Sends a command and waits for its reply. Commands are queued in order, never dropped.
    pub async fn send(&self, command: Command) -> Result<serde_json::Value, CommandError> {
        let (reply, rx) = oneshot::channel();
        self.requests
            .send(Request { command, reply })
            .await
            .map_err(|_| CommandError::new(ErrorCode::InvalidState, "the agent has stopped"))?;
        rx.await
            .map_err(|_| CommandError::new(ErrorCode::InvalidState, "the agent has stopped"))?
    }

    /// Follows every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Follows the state; `borrow()` gives the current one.
    pub fn state(&self) -> watch::Receiver<AgentState> {
        self.state.clone()
    }
}

/// Where a command's reply goes.
type ReplyTx = oneshot::Sender<Result<serde_json::Value, CommandError>>;

/// The agent task.
pub struct Agent {
    /// The state machine, owned here only.
    machine: StateMachine,
    /// The config file to re-read on reload (none: the embedded default).
    config_path: Option<PathBuf>,
    /// The media engine.
    media: Box<dyn MediaControl>,
    /// Where the engine's notices arrive.
    notices: mpsc::UnboundedReceiver<MediaNotice>,
    /// Incoming commands.
    requests: mpsc::Receiver<Request>,
    /// Outgoing events.
    events: broadcast::Sender<Event>,
    /// Outgoing state.
    state_tx: watch::Sender<AgentState>,
    /// Periodic work (health, identify expiry, watchdog, status line).
    tick: Duration,
    /// The room session's action queue, once attached.
    room_actions: Option<mpsc::UnboundedSender<RoomAction>>,
    /// The room session's notices, once attached.
    room_notices: Option<mpsc::UnboundedReceiver<RoomNotice>>,
    /// The fleet client's link reports.
    fleet_links: mpsc::UnboundedReceiver<FleetLink>,
    /// The configuration in force, for the parts the agent does not own.
    config_tx: watch::Sender<Arc<Config>>,
    /// Live transcription and the recordings' transcriptions.
    speech: Speech,
    /// Results of the I/O the machine asked for, from the tasks that did it.
    io_tx: mpsc::UnboundedSender<Done>,
    io_rx: mpsc::UnboundedReceiver<Done>,
    /// I/O asked for and not yet done. Commands wait meanwhile, so they are still answered
    /// one after the other, in order, as if each had been carried out at once.
    in_flight: HashSet<Token>,
    /// Replies deferred by the machine, by the token of the I/O they wait for.
    waiting: HashMap<Token, ReplyTx>,
    /// The room's calendar task and the agent's clock.
    calendar: CalendarPart,
}

/// The agent's transcription plumbing (I/O the pure state asks for).
struct Speech {
    /// The live transcriber, while it runs.
    live: Option<crate::transcribe::service::LiveService>,
    /// The engine just loaded, for the `Start` the machine answers with.
    engine: Option<Box<dyn crate::transcribe::Transcriber>>,
    /// Open while the local mic's audio may be transcribed (on, and no mute asked).
    mic_gate: Arc<std::sync::atomic::AtomicBool>,
    /// Remote participants' speech, from the room session's playback.
    hub: Option<crate::media::pcm::PcmHub>,
    /// The recordings' transcription queue, once there is work (a thread: not started for
    /// agents that never transcribe, such as the fleet simulator's thousand).
    post: Option<crate::transcribe::post::PostQueue>,
    /// Notices of the live transcriber and the recordings' transcriptions.
    tx: mpsc::UnboundedSender<TranscriptionNotice>,
    rx: mpsc::UnboundedReceiver<TranscriptionNotice>,
}

impl Agent {
    /// Builds the agent around a media engine whose notices arrive on `notices`.
    pub fn new(
        config: &Config,
        config_path: Option<PathBuf>,
        media: Box<dyn MediaControl>,
        notices: mpsc::UnboundedReceiver<MediaNotice>,
    ) -> (AgentHandle, Agent) {
        Self::with_event_buffer(config, config_path, media, notices, EVENT_BUFFER)
    }

    /// As [`Agent::new`], with room for `event_buffer` events behind the slowest output (at
    /// least 16). The ring is allocated whole (about 160 bytes an event): a simulated box whose
    /// only output is its fleet link needs far fewer than a box with LEDs, a console and logs.
    pub fn with_event_buffer(
        config: &Config,
        config_path: Option<PathBuf>,
        media: Box<dyn MediaControl>,
        notices: mpsc::UnboundedReceiver<MediaNotice>,
        event_buffer: usize,
    ) -> (AgentHandle, Agent) {
        let mut machine = StateMachine::new(config, config.device_id());
        machine.set_livestream(livestream_setup(config));
        let (req_tx, requests) = mpsc::channel(COMMAND_QUEUE);
        let (events, _) = broadcast::channel(event_buffer.max(16));
        let (state_tx, state_rx) = watch::channel(machine.state().clone());
        let (fleet_tx, fleet_links) = mpsc::unbounded_channel();
        let (config_tx, config_rx) = watch::channel(Arc::new(config.clone()));
        let (speech_tx, speech_rx) = mpsc::unbounded_channel();
        let (io_tx, io_rx) = mpsc::unbounded_channel();
        let handle = AgentHandle {
            requests: req_tx,
            events: events.clone(),
            state: state_rx,
            fleet_links: fleet_tx,
            config: config_rx,
        };
        let agent = Agent {
            machine,
            config_path,
            media,
            notices,
            requests,
            events,
            state_tx,
            tick: Duration::from_secs(1),
            room_actions: None,
            room_notices: None,
            fleet_links,
            config_tx,
            speech: Speech {
                live: None,
                engine: None,
                mic_gate: Arc::default(),
                hub: None,
                post: None,
                tx: speech_tx,
                rx: speech_rx,
            },
            io_tx,
            io_rx,
            in_flight: HashSet::new(),
            waiting: HashMap::new(),
            calendar: CalendarPart::default(),
        };
        (handle, agent)
    }

    /// Moves the agent's clock by `offset_ms` (tests drive the room's day this way, never by
    /// sleeping to a meeting's time); call before [`Agent::run`].
    pub fn set_clock_offset(&mut self, offset_ms: i64) {
        self.calendar.set_offset(offset_ms);
    }

    /// The offset itself, to move the agent's clock while it runs (tests).
    pub fn clock_offset(&self) -> Arc<std::sync::atomic::AtomicI64> {
        self.calendar.offset()
    }

    /// The agent's time: the real clock plus any offset, ms since the epoch.
    fn now(&self) -> u64 {
        self.calendar.now()
    }

    /// Tells the agent where its HTTP server answers; call before [`Agent::run`].
    pub fn set_http_base(&mut self, base: Option<String>) {
        self.machine.set_http_base(base);
    }

    /// Connects a room session (from [`crate::room::spawn`]); call before [`Agent::run`].
    pub fn attach_room(&mut self, link: RoomLink) {
        self.machine.set_room_backend(true);
        self.room_actions = Some(link.actions);
        self.room_notices = Some(link.notices);
        self.speech.hub = Some(link.speech);
    }

    /// Runs until a clean stop: SIGTERM or SIGINT (with `signals`), or the `restart` command.
    /// SIGHUP reloads the configuration. Returns once recordings are finalised. Agents embedded
    /// several to a process (the fleet simulator) pass no signals.
    pub async fn run(mut self, signals: Option<Signals>) -> anyhow::Result<()> {
        let (mut sigterm, mut sigint, mut sighup) = match signals {
            Some(s) => (Some(s.sigterm), Some(s.sigint), Some(s.sighup)),
            None => (None, None, None),
        };
        let mut tick = tokio::time::interval(self.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ready_sent = false;
        let mut drain_deadline: Option<tokio::time::Instant> = None;

        let fx = self.machine.start();
        self.execute(fx, &mut drain_deadline);
        let config = self.config_tx.borrow().clone();
        if let Some(n) = update::resumed(&config) {
            let _ = self.io_tx.send(Done::Notice(n));
        }
        self.start_calendar(&config);
        // Recordings' transcription queued before a restart goes on.
        let pending = crate::transcribe::post::read_pending(
            &self
                .config_tx
                .borrow()
                .state_dir()
                .join(crate::transcribe::post::PENDING_FILE),
        );
        if !pending.is_empty() {
            self.post_queue();
        }

        loop {
            let deadline = drain_deadline;
            tokio::select! {
                Some(req) = self.requests.recv(), if deadline.is_none() && self.in_flight.is_empty() => {
                    let step = self.machine.command(&req.command, self.now());
                    tracing::debug!(command = %req.command, ok = step.reply.is_ok(), "command");
                    self.execute(step.effects, &mut drain_deadline);
                    self.answer(req.reply, step.reply);
                }
                Some(done) = self.io_rx.recv() => {
                    let notice = self.io_done(done);
                    let token = notice.token();
                    if let Some(t) = token {
                        self.in_flight.remove(&t);
                    }
                    self.machine.at(self.now());
                    let step = self.machine.io_notice(notice);
                    self.execute(step.effects, &mut drain_deadline);
                    // An engine the machine did not start with is not kept (75 MB).
                    self.speech.engine = None;
                    if let Some(reply) = token.and_then(|t| self.waiting.remove(&t)) {
                        self.answer(reply, step.reply);
                    }
                }
                Some(notice) = self.notices.recv() => {
                    let stopped = matches!(notice, MediaNotice::State { state: MediaState::Stopped, .. });
                    // READY once the config is valid and the devices are open, or once opening
                    // them has failed and the engine is retrying: the box is up (degraded, and
                    // saying so) rather than stuck in start-up. Never when a server answers.
                    let up = matches!(
                        notice,
                        MediaNotice::State { state: MediaState::Playing | MediaState::Restarting, .. }
                    );
                    let fx = self.machine.media_notice(notice);
                    self.execute(fx, &mut drain_deadline);
                    if up && !ready_sent {
                        sysd::ready();
                        ready_sent = true;
                    }
                    if stopped && drain_deadline.is_some() {
                        break;
                    }
                }
                Some(notice) = recv_room(&mut self.room_notices) => {
                    self.machine.at(self.now());
                    let fx = self.machine.room_notice(notice);
                    self.execute(fx, &mut drain_deadline);
                }
                Some(notice) = self.speech.rx.recv() => {
                    self.machine.at(self.now());
                    let fx = self.machine.transcription_notice(notice);
                    self.execute(fx, &mut drain_deadline);
                }
                Some(notice) = self.calendar.recv() => {
                    let now = self.now();
                    match notice {
                        crate::calendar::CalendarNotice::Booked { token, result } => {
                            if let Some(n) = self.calendar.booked(token, result) {
                                let _ = self.io_tx.send(Done::Notice(n));
                            }
                        }
                        notice => {
                            self.machine.at(now);
                            let fx = self.machine.calendar_notice(notice, now);
                            self.execute(fx, &mut drain_deadline);
                        }
                    }
                }
                Some(link) = self.fleet_links.recv() => {
                    let fx = self.machine.fleet_notice(link);
                    self.execute(fx, &mut drain_deadline);
                }
                _ = tick.tick() => {
                    let fx = self.machine.tick(self.now());
                    self.execute(fx, &mut drain_deadline);
                    // The watchdog is fed from the loop itself, so a hung loop gets killed.
                    sysd::watchdog();
                    sysd::status(&self.machine.state().summary());
                }
                _ = recv(&mut sigterm) => self.begin_drain("SIGTERM", &mut drain_deadline),
                _ = recv(&mut sigint) => self.begin_drain("SIGINT", &mut drain_deadline),
                _ = recv(&mut sighup) => {
                    let fx = self.machine.command(&Command::ReloadConfig, self.now()).effects;
                    self.execute(fx, &mut drain_deadline);
                }
                _ = sleep_until(deadline) => {
                    tracing::warn!("media did not stop within {DRAIN_TIMEOUT:?}; exiting anyway");
                    break;
                }
            }
            // What follows from the state the input left, whatever the input was.
            let fx = self.machine.settle();
            self.execute(fx, &mut drain_deadline);
            self.speech.mic_gate.store(
                self.machine.mic_may_be_transcribed(),
                std::sync::atomic::Ordering::Relaxed,
            );
            let shown = self.machine.state();
            self.state_tx.send_if_modified(|s| {
                if s != shown {
                    *s = shown.clone();
                    true
                } else {
                    false
                }
            });
        }
        let _ = self.state_tx.send(self.machine.state().clone());
        tracing::info!("agent stopped");
        Ok(())
    }

    fn begin_drain(&mut self, why: &str, deadline: &mut Option<tokio::time::Instant>) {
        if deadline.is_some() {
            return;
        }
        tracing::info!("{why}: finalising recordings and stopping");
        sysd::stopping();
        let fx = self.machine.drain();
        self.execute(fx, deadline);
    }

    fn execute(&mut self, effects: Vec<Effect>, deadline: &mut Option<tokio::time::Instant>) {
        for effect in effects {
            match effect {
                Effect::Media(action) => {
                    tracing::debug!(?action, "media");
                    self.media.apply(action);
                }
                Effect::Room(action) => {
                    tracing::debug!(?action, "room");
                    match &self.room_actions {
                        Some(tx) => {
                            let _ = tx.send(action);
                        }
                        None => tracing::warn!(?action, "no room session is attached"),
                    }
                }
                Effect::Transcription(action) => self.transcription_action(action),
                Effect::Emit(event) => {
                    log_event(&event);
                    let _ = self.events.send(event);
                }
                Effect::ReloadConfig => self.reload(),
                Effect::ResolveHosts { token, urls } => {
                    self.in_flight.insert(token);
                    tokio::spawn(io::resolve_hosts(token, urls, self.io_tx.clone()));
                }
                Effect::LoadSpeechEngine { token, language } => {
                    self.in_flight.insert(token);
                    let config = self.config_tx.borrow().clone();
                    io::load_speech_engine(&config, token, language, self.io_tx.clone());
                }
                Effect::FindSegments {
                    token,
                    dir,
                    file,
                    from,
                    to,
                    skip_newest,
                } => {
                    self.in_flight.insert(token);
                    let result = io::find_segments(&dir, file.as_deref(), from, to, skip_newest);
                    let _ = self
                        .io_tx
                        .send(Done::Notice(IoNotice::SegmentsFound { token, result }));
                }
                Effect::Calendar(action) => self.calendar.send(action),
                Effect::BookMeeting { token, booking } => {
                    self.in_flight.insert(token);
                    if let Some(n) = self.calendar.book(token, booking) {
                        let _ = self.io_tx.send(Done::Notice(n));
                    }
                }
                Effect::Update(action) => {
                    update::act(action, &self.config_tx.borrow(), self.io_tx.clone())
                }
                Effect::Shutdown => {
                    if deadline.is_none() {
                        sysd::stopping();
                        *deadline = Some(tokio::time::Instant::now() + DRAIN_TIMEOUT);
                    }
                }
            }
        }
    }

    /// Sends a reply now, or keeps it until the I/O it waits for is done.
    fn answer(&mut self, tx: ReplyTx, reply: Reply) {
        match reply {
            Reply::Now(r) => {
                let _ = tx.send(r);
            }
            Reply::Later(token) => {
                self.waiting.insert(token, tx);
            }
        }
    }

    /// Turns what an I/O task reported into the machine's notice, keeping a loaded engine.
    fn io_done(&mut self, done: Done) -> IoNotice {
        match done {
            Done::Notice(n) => n,
            Done::Engine { token, result } => IoNotice::SpeechEngineLoaded {
                token,
                result: result.map(|engine| {
                    let describe = engine.describe();
                    self.speech.engine = Some(engine);
                    describe
                }),
            },
        }
    }

    /// The recordings' transcription queue, started on first use.
    fn post_queue(&mut self) -> &crate::transcribe::post::PostQueue {
        let config = self.config_tx.borrow().clone();
        let setup = post_setup(&config, self.machine.state());
        let tx = self.speech.tx.clone();
        self.speech.post.get_or_insert_with(|| {
            crate::transcribe::post::PostQueue::spawn(&config.state_dir(), setup, tx)
        })
    }

    fn transcription_action(&mut self, action: TranscriptionAction) {
        match action {
            TranscriptionAction::TranscribeFiles(segments) => {
                self.post_queue().push(segments);
            }
            TranscriptionAction::Start { local_id, .. } => {
                let Some(engine) = self.speech.engine.take() else {
                    let _ = self
                        .speech
                        .tx
                        .send(TranscriptionNotice::Failed("no engine was loaded".into()));
                    return;
                };
                let config = self.config_tx.borrow().clone();
                let dir = crate::transcribe::transcript::live_dir(&config.state_dir());
                crate::transcribe::transcript::prune(
                    &dir,
                    config.recording.max_age,
                    std::time::SystemTime::now(),
                );
                let live = crate::transcribe::service::LiveService::start(
                    engine,
                    config.transcription.max_backlog,
                    local_id,
                    self.speech.mic_gate.clone(),
                    self.speech.hub.clone(),
                    &dir,
                    self.speech.tx.clone(),
                );
                // The machine attaches the mic's tap to it (or not, without a mic).
                let _ = self.io_tx.send(Done::Notice(IoNotice::TranscriberStarted(
                    live.local_sender(),
                )));
                self.speech.live = Some(live);
            }
            TranscriptionAction::Stop => {
                match self.speech.live.take() {
                    Some(mut live) => live.stop(),
                    // Nothing runs (a failure already stopped it): the state still hears so.
                    None => {
                        let _ = self.speech.tx.send(TranscriptionNotice::Stopped);
                    }
                }
            }
            TranscriptionAction::Append(caption) => {
                if let Some(live) = &mut self.speech.live {
                    live.append(&caption);
                }
            }
        }
    }

    fn reload(&mut self) {
        match config::load(self.config_path.as_deref()) {
            Ok(loaded) => {
                let calendar_changed = loaded.config.calendar != self.config_tx.borrow().calendar
                    || loaded.config.room != self.config_tx.borrow().room;
                let fx = self.machine.configure(&loaded.config);
                if calendar_changed {
                    self.start_calendar(&loaded.config);
                }
                if let Some(q) = &self.speech.post {
                    q.set_setup(post_setup(&loaded.config, self.machine.state()));
                }
                self.machine
                    .set_livestream(livestream_setup(&loaded.config));
                self.config_tx.send_replace(Arc::new(loaded.config.clone()));
                self.media
                    .apply(crate::media::MediaAction::Reconfigure(Box::new(
                        loaded.config,
                    )));
                let mut none = None;
                self.execute(fx, &mut none);
                tracing::info!(files = ?loaded.files, "configuration reloaded");
                let _ = self.events.send(Event::ConfigReloaded);
            }
            Err(errors) => {
                for e in &errors {
                    tracing::error!("reload refused: {e}");
                }
                let _ = self.events.send(Event::Error {
                    code: "config".into(),
                    message: format!(
                        "reload refused, keeping the running configuration: {}",
                        errors[0]
                    ),
                });
            }
        }
    }
}

async fn recv_room(rx: &mut Option<mpsc::UnboundedReceiver<RoomNotice>>) -> Option<RoomNotice> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn recv(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

fn log_event(event: &Event) {
    let json = serde_json::to_string(event).unwrap_or_default();
    match event {
        Event::Error { .. } => tracing::warn!(event = %event.name(), "{json}"),
        _ => tracing::info!(event = %event.name(), "{json}"),
    }
}
