//! The room console (`/`) and the viewers' page (`/watch`), served by the box's HTTP front door.
//!
//! - The console follows the agent over server-sent events (`/api/events`: the state first,
//!   then every event, and the state again whenever it changes), and POSTs the very JSON
//!   commands the control socket and MQTT take (`/api/command`) through the one decoder, with
//!   its error codes. The page shows only what the agent reports, never what it asked for.
//! - The installer's part: `roombox check` and `probe` results, telemetry, recordings.
//! - Viewers follow the viewers' chat and the room's poll (`/watch/api/events`) and send
//!   messages, questions and votes (`/watch/api/chat`, `/watch/api/question`,
//!   `/watch/api/vote`). Those become `viewer-chat`, `ask-question` and `vote` commands, built
//!   from the viewer's JSON through the same decoder; a viewer can send nothing else (a poll is
//!   opened and closed from the console).
//!
//! Access (see [`token`] and [`guard`]): on loopback no token, but the Host must be a loopback
//! name; beyond loopback the console's token opens everything and the viewers' token only
//! `/watch` and HLS. Requests that change state must be JSON with the [`guard::CSRF_HEADER`]
//! header from the box's own origin, the token in `Authorization`, never a cookie.
//!
//! Imported only by the front door (`http`, which mounts [`routes`]) and the binary's
//! `console-token` command.

pub mod guard;
pub mod pages;
pub mod recordings;
pub mod token;

use crate::command::{Command, CommandError, ErrorCode};
use crate::event::Event;
use crate::http::{authorize_role, peer_key, Denied, Req, Shared};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use guard::RateLimit;
use serde::Serialize;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use token::Role;
use tokio::sync::broadcast::error::RecvError;

/// What the console's routes keep between requests.
#[derive(Default)]
pub struct ConsoleShared {
    /// Viewers' messages per address.
    rate: Mutex<RateLimit>,
    /// CPU counters between telemetry requests.
    telemetry: Mutex<crate::fleet::telemetry::Sampler>,
}

/// The console's and the viewers' routes, mounted by `http::bind`.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/", get(pages::console))
        .route("/watch", get(pages::watch))
        .route("/assets/hls.min.js", get(pages::hls_js))
        // Browsers ask for it on every page; an empty answer keeps a 404 out of their consoles.
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/api/events", get(events))
        .route("/api/command", post(command))
        .route("/api/telemetry", get(telemetry))
        .route("/api/check", get(check))
        .route("/api/probe", get(probe))
        .route("/api/recordings", get(recordings::list))
        .route("/api/recordings/{file}", get(recordings::download))
        .route("/watch/api/events", get(watch_events))
        .route("/watch/api/chat", post(watch_chat))
        .route("/watch/api/question", post(watch_question))
        .route("/watch/api/vote", post(watch_vote))
}

/// Who may use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// The console's token.
    Console,
    /// The viewers' or the console's.
    Viewer,
}

/// A JSON error body with a code a script can act on, as command replies have.
pub(crate) fn refuse(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(serde_json::json!({
            "ok": false,
            "error": CommandError::new(code, message),
        })),
    )
        .into_response()
}

/// Why the access rules turned a request away.
#[derive(Debug)]
pub(crate) enum Rejected {
    /// The token: missing, wrong, locked out, or not one for this route.
    Token(Denied),
    /// The request's form: a forgery rule, or a Host a loopback box does not answer.
    Form(String),
}

impl IntoResponse for Rejected {
    fn into_response(self) -> Response {
        match self {
            Rejected::Token(d) => d.into_response(),
            Rejected::Form(m) => refuse(StatusCode::FORBIDDEN, ErrorCode::Unauthorized, m),
        }
    }
}

/// Applies the access rules to a GET (token in a header or the query).
pub(crate) fn gate(s: &Shared, r: &Req, need: Need) -> Result<Role, Rejected> {
    if s.tokens.is_none() {
        if let Err(e) = guard::check_loopback_host(&r.headers) {
            return Err(Rejected::Form(e.0));
        }
    }
    authorize_role(
        s,
        peer_key(r.peer),
        &r.headers,
        &r.query,
        need == Need::Viewer,
    )
    .map_err(Rejected::Token)
}

/// Applies the access rules to a state-changing POST: the CSRF rules, then the token from the
/// `Authorization` header only (a token in a URL ends up in logs and histories).
fn gate_post(s: &Shared, r: &Req, need: Need) -> Result<Role, Rejected> {
    if let Err(e) = guard::check_post(&r.headers) {
        return Err(Rejected::Form(e.0));
    }
    let headers_only = Req {
        peer: r.peer,
        headers: r.headers.clone(),
        query: HashMap::new(),
    };
    gate(s, &headers_only, need)
}

/// The reply to a command, with the status a script expects: 200, or 4xx/5xx by error code.
fn reply(result: Result<serde_json::Value, CommandError>) -> Response {
    match result {
        Ok(v) => axum::Json(serde_json::json!({"ok": true, "result": v})).into_response(),
        Err(e) => {
            let status = match e.code {
                ErrorCode::BadJson | ErrorCode::InvalidArgument | ErrorCode::OutOfRange => {
                    StatusCode::BAD_REQUEST
                }
                ErrorCode::UnknownCommand => StatusCode::NOT_FOUND,
                ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::InvalidState => StatusCode::CONFLICT,
                ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unauthorized => StatusCode::FORBIDDEN,
                ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            };
            (
                status,
                axum::Json(serde_json::json!({"ok": false, "error": e})),
            )
                .into_response()
        }
    }
}

/// `POST /api/command`: one JSON command, exactly as the control socket takes it.
async fn command(State(s): State<Arc<Shared>>, r: Req, body: Bytes) -> Response {
    if let Err(resp) = gate_post(&s, &r, Need::Console) {
        return resp.into_response();
    }
    match Command::decode(&body) {
        Ok(cmd) => reply(s.agent.send(cmd).await),
        Err(e) => reply(Err(e)),
    }
}

/// The console's first message: the state, and the viewers' feed and queue (which the state
/// does not serialize).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Snapshot<'a> {
    state: &'a crate::agent::state::AgentState,
    feed: Vec<crate::model::FeedMessage>,
    questions: &'a [crate::model::Question],
    /// The configured room, for the join button's label.
    room_id: String,
    /// The other rooms the console offers (`[room] rooms`).
    rooms: Vec<String>,
}

fn snapshot_json(s: &Shared) -> String {
    let (room_id, rooms) = {
        let c = s.agent.config();
        let c = c.borrow();
        (c.room.room_id.clone(), c.room.rooms.clone())
    };
    let st = s.agent.state();
    let state = st.borrow();
    let snap = Snapshot {
        state: &state,
        feed: state.viewers.feed.iter().cloned().collect(),
        questions: &state.viewers.questions,
        room_id,
        rooms,
    };
    serde_json::to_string(&snap).unwrap_or_default()
}

fn state_json(st: &tokio::sync::watch::Receiver<crate::agent::state::AgentState>) -> String {
    serde_json::to_string(&*st.borrow()).unwrap_or_default()
}

/// `GET /api/events`: `snapshot` first, then `agent` (one event each) and `state` (the state
/// whenever it changed). Subscribed before the snapshot is taken, so nothing falls between.
async fn events(State(s): State<Arc<Shared>>, r: Req) -> Response {
    if let Err(resp) = gate(&s, &r, Need::Console) {
        return resp.into_response();
    }
    let rx = s.agent.subscribe();
    let mut st = s.agent.state();
    st.mark_unchanged();
    let first = snapshot_json(&s);
    let shared = s.clone();
    let stream = futures::stream::unfold(
        (rx, st, Some(first), shared),
        |(mut rx, mut st, first, shared)| async move {
            if let Some(f) = first {
                let ev = SseEvent::default().event("snapshot").data(f);
                return Some((Ok::<_, Infallible>(ev), (rx, st, None, shared)));
            }
            let ev = tokio::select! {
                r = rx.recv() => match r {
                    Ok(e) => SseEvent::default()
                        .event("agent")
                        .data(serde_json::to_string(&e).unwrap_or_default()),
                    // Behind: start again from a fresh snapshot rather than show a gap.
                    Err(RecvError::Lagged(_)) => {
                        SseEvent::default().event("snapshot").data(snapshot_json(&shared))
                    }
                    Err(RecvError::Closed) => return None,
                },
                c = st.changed() => match c {
                    Ok(()) => SseEvent::default().event("state").data(state_json(&st)),
                    Err(_) => return None,
                },
            };
            Some((Ok(ev), (rx, st, None, shared)))
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// Events a viewer sees: the viewers' chat, the poll and whether the stream plays.
fn for_viewers(e: &Event) -> bool {
    matches!(
        e,
        Event::FeedMessage { .. }
            | Event::FeedMessageHidden { .. }
            | Event::HlsStateChanged { .. }
            | Event::PollCreated { .. }
            | Event::PollUpdated { .. }
            | Event::PollClosed { .. }
    )
}

/// What a viewer's page starts from.
fn viewer_snapshot(s: &Shared) -> String {
    let st = s.agent.state();
    let state = st.borrow();
    serde_json::to_string(&serde_json::json!({
        "feed": state.viewers.visible(),
        "poll": state.poll,
        "hls": state.hls.state,
        "deviceName": state.device_name,
    }))
    .unwrap_or_default()
}

/// `GET /watch/api/events`: `snapshot`, then the events of [`for_viewers`].
async fn watch_events(State(s): State<Arc<Shared>>, r: Req) -> Response {
    if let Err(resp) = gate(&s, &r, Need::Viewer) {
        return resp.into_response();
    }
    let rx = s.agent.subscribe();
    let first = viewer_snapshot(&s);
    let shared = s.clone();
    let stream = futures::stream::unfold(
        (rx, Some(first), shared),
        |(mut rx, first, shared)| async move {
            if let Some(f) = first {
                let ev = SseEvent::default().event("snapshot").data(f);
                return Some((Ok::<_, Infallible>(ev), (rx, None, shared)));
            }
            loop {
                match rx.recv().await {
                    Ok(e) if for_viewers(&e) => {
                        let ev = SseEvent::default()
                            .event("agent")
                            .data(serde_json::to_string(&e).unwrap_or_default());
                        return Some((Ok(ev), (rx, None, shared)));
                    }
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => {
                        let ev = SseEvent::default()
                            .event("snapshot")
                            .data(viewer_snapshot(&shared));
                        return Some((Ok(ev), (rx, None, shared)));
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// A viewer's message or question: the viewer's JSON object becomes the arguments of
/// `name` (`viewer-chat` or `ask-question`) through the one decoder, within the rate.
async fn viewer_post(s: &Shared, r: Req, name: &str, body: &[u8]) -> Response {
    if let Err(resp) = gate_post(s, &r, Need::Viewer) {
        return resp.into_response();
    }
    let cmd = match Command::from_parts(name, body) {
        Ok(c) => c,
        Err(e) => return reply(Err(e)),
    };
    let allowed = s
        .console
        .rate
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .allow(peer_key(r.peer), std::time::Instant::now());
    if !allowed {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(
                axum::http::header::RETRY_AFTER,
                guard::RATE_WINDOW.as_secs().to_string(),
            )],
            axum::Json(serde_json::json!({"ok": false, "error": CommandError::new(
                ErrorCode::InvalidState,
                format!(
                    "at most {} messages every {} s; wait a moment",
                    guard::RATE_MESSAGES,
                    guard::RATE_WINDOW.as_secs()
                ),
            )})),
        )
            .into_response();
    }
    reply(s.agent.send(cmd).await)
}

/// `POST /watch/api/chat` `{"name":"Ana","message":"…"}`.
async fn watch_chat(State(s): State<Arc<Shared>>, r: Req, body: Bytes) -> Response {
    viewer_post(&s, r, "viewer-chat", &body).await
}

/// `POST /watch/api/question` `{"name":"Ana","text":"…"}`.
async fn watch_question(State(s): State<Arc<Shared>>, r: Req, body: Bytes) -> Response {
    viewer_post(&s, r, "ask-question", &body).await
}

/// `POST /watch/api/vote` `{"pollId":3,"option":0,"name":"Ana"}`: once per name, within the
/// viewers' message rate.
async fn watch_vote(State(s): State<Arc<Shared>>, r: Req, body: Bytes) -> Response {
    viewer_post(&s, r, "vote", &body).await
}

/// `GET /api/telemetry`: CPU (since the previous request), temperature, memory, disk, and the
/// media and room figures of the state.
async fn telemetry(State(s): State<Arc<Shared>>, r: Req) -> Response {
    if let Err(resp) = gate(&s, &r, Need::Console) {
        return resp.into_response();
    }
    let state_dir = s.agent.config().borrow().state_dir();
    let state = s.agent.state().borrow().clone();
    let sample = s
        .console
        .telemetry
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .sample(&state, &state_dir, crate::model::now_ms());
    axum::Json(sample).into_response()
}

/// `GET /api/check`: `roombox check` against the running configuration.
async fn check(State(s): State<Arc<Shared>>, r: Req) -> Response {
    if let Err(resp) = gate(&s, &r, Need::Console) {
        return resp.into_response();
    }
    let config = (**s.agent.config().borrow()).clone();
    let lines = tokio::task::spawn_blocking(move || {
        use crate::check::{CheckLine, Status};
        let mut out = vec![CheckLine::new(
            Status::Ok,
            "config",
            "the running configuration",
        )];
        crate::check::environment(&config, &mut out);
        out.extend(crate::check::fleet(&config));
        out
    })
    .await;
    match lines {
        Ok(l) => axum::Json(l).into_response(),
        Err(e) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            format!("check: {e}"),
        ),
    }
}

/// `GET /api/probe`: what `roombox probe` finds on this machine.
async fn probe(State(s): State<Arc<Shared>>, r: Req) -> Response {
    if let Err(resp) = gate(&s, &r, Need::Console) {
        return resp.into_response();
    }
    match tokio::task::spawn_blocking(crate::probe::run).await {
        Ok(report) => axum::Json(report).into_response(),
        Err(e) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            format!("probe: {e}"),
        ),
    }
}
