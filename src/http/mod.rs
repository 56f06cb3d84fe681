//! The box's one HTTP front door: HLS, and the surface transcripts and the console build on.
//! Loopback by default; bound beyond loopback, every request needs a token: the console's opens
//! everything, the viewers' only the viewers' page and HLS (see `console::token`). The console's
//! routes live in `console/` below this file, mounted here.
//!
//! Layer 13 of docs/architecture.md: imported only by `run` (which binds it) and the binary
//! (the console's token CLI); it may import every layer below it.

pub mod console;

use crate::agent::AgentHandle;
use crate::config::{Config, HttpConfig};
use crate::media::hls::{self, parse_name, HlsFile};
use crate::sync::lock;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use console::token::{Role, Tokens};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the handlers share.
pub(crate) struct Shared {
    /// The agent, for its state.
    pub(crate) agent: AgentHandle,
    /// Where HLS is written.
    hls_dir: PathBuf,
    /// How long a blocking playlist request or a request for the hinted part may wait: three
    /// target durations, as the LL-HLS spec says.
    hls_wait: Duration,
    /// The tokens requests must carry; None on loopback.
    pub(crate) tokens: Option<Tokens>,
    /// Where transcripts are: the live sessions', then the recordings' (beside their segments).
    transcript_dirs: [PathBuf; 2],
    /// Wrong tokens per client address, so the token cannot be guessed at network speed. A std
    /// Mutex: it is held for a map lookup, never across an await.
    failures: Mutex<Failures>,
    /// What the console's routes keep between requests.
    pub(crate) console: console::ConsoleShared,
}

/// Wrong tokens from one address within [`FAILURE_WINDOW`] before it is locked out.
const MAX_FAILURES: usize = 5;
/// How far back wrong tokens count.
const FAILURE_WINDOW: Duration = Duration::from_secs(10);
/// How long a locked-out address gets 429, whatever it sends.
const LOCKOUT: Duration = Duration::from_secs(60);
/// Addresses remembered at most; past this, forgotten entries are swept first, so a flood from
/// many addresses costs bounded memory.
const MAX_TRACKED: usize = 4096;

/// Wrong-token bookkeeping: pure, time passed in, so the policy is tested without sockets.
#[derive(Debug, Default)]
struct Failures {
    /// Per address: times of recent wrong tokens, and the end of its lockout if any.
    by_ip: HashMap<IpAddr, Tally>,
}

/// One address's record.
#[derive(Debug, Default)]
struct Tally {
    /// Wrong tokens inside the window, oldest first.
    recent: Vec<Instant>,
    /// Locked out until then.
    locked_until: Option<Instant>,
}

/// The address wrong tokens are counted against: an IPv6 client owns a whole /64 and could
/// rotate through it, so its /64 is one key; an IPv4-mapped address counts as the IPv4 one.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

impl Failures {
    /// Whether `ip` is locked out at `now`.
    fn locked(&self, ip: IpAddr, now: Instant) -> bool {
        self.by_ip
            .get(&ip)
            .and_then(|t| t.locked_until)
            .is_some_and(|until| now < until)
    }

    /// Records a wrong token from `ip`; locks it out on the [`MAX_FAILURES`]th in the window.
    fn fail(&mut self, ip: IpAddr, now: Instant) {
        if self.by_ip.len() >= MAX_TRACKED && !self.by_ip.contains_key(&ip) {
            self.sweep(now);
        }
        let t = self.by_ip.entry(ip).or_default();
        t.recent
            .retain(|&at| now.duration_since(at) < FAILURE_WINDOW);
        t.recent.push(now);
        if t.recent.len() >= MAX_FAILURES {
            t.recent.clear();
            t.locked_until = Some(now + LOCKOUT);
        }
    }

    /// Forgets addresses with nothing recent and no lockout in force; if that frees nothing
    /// (a flood), forgets everything rather than grow without bound.
    fn sweep(&mut self, now: Instant) {
        self.by_ip.retain(|_, t| {
            t.locked_until.is_some_and(|u| now < u)
                || t.recent
                    .iter()
                    .any(|&at| now.duration_since(at) < FAILURE_WINDOW)
        });
        if self.by_ip.len() >= MAX_TRACKED {
            self.by_ip.clear();
        }
    }
}

/// A bound server, not yet serving.
pub struct Server {
    listener: tokio::net::TcpListener,
    router: Router,
    /// The address it listens on.
    pub addr: SocketAddr,
}

/// The URL people and players use for the box: `http://host:port`.
pub fn base_url(http: &HttpConfig, addr: SocketAddr) -> String {
    let host = if !http.public_host.is_empty() {
        http.public_host.clone()
    } else if addr.ip().is_unspecified() {
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".into())
    } else if addr.is_ipv6() {
        format!("[{}]", addr.ip())
    } else {
        addr.ip().to_string()
    };
    format!("http://{host}:{}", addr.port())
}

/// Binds the server for `config`; `None` when `[http]` is off.
pub async fn bind(config: &Config, agent: AgentHandle) -> anyhow::Result<Option<Server>> {
    let http = &config.http;
    if !http.enabled {
        return Ok(None);
    }
    let tokens = if http.bind.is_loopback() {
        None
    } else {
        Some(console::token::for_config(config)?)
    };
    let listener = tokio::net::TcpListener::bind((http.bind, http.port))
        .await
        .map_err(|e| anyhow::anyhow!("http: cannot listen on {}:{}: {e}", http.bind, http.port))?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared {
        agent,
        hls_dir: config.hls_dir(),
        hls_wait: 3 * config.hls.segment,
        tokens,
        transcript_dirs: [
            crate::transcribe::transcript::live_dir(&config.state_dir()),
            config.recording_dir(),
        ],
        failures: Mutex::new(Failures::default()),
        console: console::ConsoleShared::default(),
    });
    let router = Router::new()
        .route("/hls/{file}", get(hls_file))
        .route("/api/state", get(state))
        .merge(console::routes())
        .route("/transcripts/", get(transcript_list))
        .route("/transcripts/{file}", get(transcript_file))
        .with_state(shared);
    Ok(Some(Server {
        listener,
        router,
        addr,
    }))
}

impl Server {
    /// Serves until the task is dropped or aborted.
    pub async fn serve(self) {
        // The peer's address feeds the wrong-token limit.
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(self.listener, service).await {
            tracing::error!("http server stopped: {e}");
        }
    }
}

/// The token a request carries: `Authorization: Bearer …` or `?token=…`.
fn presented<'a>(headers: &'a HeaderMap, query: &'a HashMap<String, String>) -> Option<&'a str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| query.get("token").map(String::as_str))
}

/// Compares in time independent of where they differ, so the token cannot be guessed byte by
/// byte from response times.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Percent-encodes all but RFC 3986's unreserved characters, for a query value.
fn url_encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Why a request was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Denied {
    /// No token, or the wrong one: 401.
    Unauthorized,
    /// Too many wrong tokens from this address lately: 429.
    LockedOut,
    /// A real token that does not open this route (the viewers' on the console): 403.
    Forbidden,
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        match self {
            Denied::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "a valid token is needed\n",
            )
                .into_response(),
            Denied::LockedOut => (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, LOCKOUT.as_secs().to_string())],
                "too many wrong tokens; try again later\n",
            )
                .into_response(),
            Denied::Forbidden => (
                StatusCode::FORBIDDEN,
                "this token does not open this page\n",
            )
                .into_response(),
        }
    }
}

/// A request's metadata, as every guarded handler takes it.
pub(crate) struct Req {
    /// The client's address.
    pub peer: SocketAddr,
    pub headers: HeaderMap,
    /// Its query (`?token=` for GETs that cannot set headers: EventSource, links).
    pub query: HashMap<String, String>,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Req {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        // The server is served with connect info (`Server::serve`); without it there is no
        // address to rate-limit, so nothing is let through.
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0)
            .ok_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response())?;
        let Query(query) = Query::<HashMap<String, String>>::try_from_uri(&parts.uri)
            .map_err(IntoResponse::into_response)?;
        Ok(Req {
            peer,
            headers: parts.headers.clone(),
            query,
        })
    }
}

impl Req {
    /// Checks this request's token for a front-door route the console's token opens (see
    /// [`authorize_role`]).
    fn authorize(&self, s: &Shared, allow_viewer: bool) -> Result<Role, Denied> {
        authorize_role(
            s,
            client_key(self.peer.ip()),
            &self.headers,
            &self.query,
            allow_viewer,
        )
    }
}

/// Checks the token of a request from `peer` (a [`client_key`]) and says whose it is. The
/// viewers' token opens a route only with `allow_viewer`; elsewhere it is refused with 403 (a
/// real token, so not counted as a guess). On loopback there are no tokens: the console's role.
pub(crate) fn authorize_role(
    s: &Shared,
    peer: IpAddr,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    allow_viewer: bool,
) -> Result<Role, Denied> {
    let Some(tokens) = &s.tokens else {
        return Ok(Role::Console);
    };
    let now = Instant::now();
    // A poisoned lock only means a panic elsewhere mid-update; the tallies are still usable.
    let mut failures = lock(&s.failures);
    if failures.locked(peer, now) {
        return Err(Denied::LockedOut);
    }
    if let Some(p) = presented(headers, query) {
        if tokens.console.current().is_some_and(|t| same(p, &t)) {
            return Ok(Role::Console);
        }
        if tokens.viewer.current().is_some_and(|t| same(p, &t)) {
            return if allow_viewer {
                Ok(Role::Viewer)
            } else {
                Err(Denied::Forbidden)
            };
        }
    }
    failures.fail(peer, now);
    Err(Denied::Unauthorized)
}

/// The address wrong tokens from `peer` are counted against.
pub(crate) fn peer_key(peer: SocketAddr) -> IpAddr {
    client_key(peer.ip())
}

/// HLS is fetched by players on pages from other origins (a console, a web page embedding the
/// room), so its responses carry CORS. `*` is safe: the token travels in the URL, not in
/// cookies, and only GET is routed, so no preflight is ever needed.
async fn hls_file(s: State<Arc<Shared>>, file: Path<String>, req: Req) -> Response {
    let mut r = hls_response(s, file, req).await;
    r.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    r
}

async fn hls_response(State(s): State<Arc<Shared>>, Path(file): Path<String>, r: Req) -> Response {
    // Viewers play HLS too.
    if let Err(d) = r.authorize(&s, true) {
        return d.into_response();
    }
    let Some(kind) = parse_name(&file) else {
        return (StatusCode::NOT_FOUND, "no such file\n").into_response();
    };
    let mut edge = hls::edge(&s.hls_dir);
    // What the request waits for: a blocking playlist reload names a segment (and part) the
    // playlist must hold; a part or segment not yet written is waited for when it is the next.
    let wanted = match kind {
        HlsFile::Playlist => match blocking_reload(&r.query) {
            Ok(w) => w,
            Err(why) => return (StatusCode::BAD_REQUEST, why).into_response(),
        },
        HlsFile::Part(m, p) => Some((m, Some(p))),
        HlsFile::Segment(m) => Some((m, None)),
        HlsFile::Init(_) => None,
    };
    if let Some((msn, part)) = wanted {
        let now = *edge.borrow();
        if kind == HlsFile::Playlist && now.live && !now.ended && msn > now.msn + 2 {
            return (
                StatusCode::BAD_REQUEST,
                "_HLS_msn is more than two segments past the live edge\n",
            )
                .into_response();
        }
        if now.can_bring(msn, part) {
            let waited = tokio::time::timeout(
                s.hls_wait,
                edge.wait_for(|e| e.has(msn, part) || !e.can_bring(msn, part)),
            )
            .await;
            if waited.is_err() && kind == HlsFile::Playlist {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the live edge did not reach that part in time\n",
                )
                    .into_response();
            }
        }
    }
    let path = s.hls_dir.join(&file);
    let Ok(body) = tokio::fs::read(&path).await else {
        return (
            StatusCode::NOT_FOUND,
            "no such segment (HLS is off, or it expired)\n",
        )
            .into_response();
    };
    if kind == HlsFile::Playlist {
        let mut text = String::from_utf8_lossy(&body).to_string();
        // Players fetch segments by the playlist's relative names: carry the token on. Only
        // the real token (a request authorized by header may carry any ?token=, which must not
        // be written into the playlist), and URL-encoded, or a `&` or `#` in it breaks the URL.
        let carried = s.tokens.as_ref().and_then(|t| {
            [t.console.current(), t.viewer.current()]
                .into_iter()
                .flatten()
                .find(|t| r.query.get("token").is_some_and(|q| same(q, t)))
        });
        if let Some(t) = carried.as_deref().map(url_encode) {
            text = carry_token(&text, &t);
        }
        return (
            [
                (header::CONTENT_TYPE, "application/vnd.apple.mpegurl"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            text,
        )
            .into_response();
    }
    (
        [
            (header::CONTENT_TYPE, "video/mp4"),
            (header::CACHE_CONTROL, "max-age=60"),
        ],
        body,
    )
        .into_response()
}

/// The segment and part a blocking playlist request waits for (`_HLS_msn`, `_HLS_part`).
fn blocking_reload(
    query: &HashMap<String, String>,
) -> std::result::Result<Option<(u64, Option<u32>)>, &'static str> {
    let Some(msn) = query.get("_HLS_msn") else {
        if query.contains_key("_HLS_part") {
            return Err("_HLS_part needs _HLS_msn\n");
        }
        return Ok(None);
    };
    let msn = msn
        .parse::<u64>()
        .map_err(|_| "_HLS_msn is not a media sequence number\n")?;
    let part = match query.get("_HLS_part") {
        None => None,
        Some(p) => Some(
            p.parse::<u32>()
                .map_err(|_| "_HLS_part is not a part index\n")?,
        ),
    };
    Ok(Some((msn, part)))
}

/// The playlist with `?token=` on every URI it names (segment lines and `URI="..."`).
fn carry_token(text: &str, token: &str) -> String {
    text.lines()
        .map(|l| {
            if l.starts_with('#') {
                l.replace(".m4s\"", &format!(".m4s?token={token}\""))
                    .replace(".mp4\"", &format!(".mp4?token={token}\""))
            } else if l.ends_with(".m4s") {
                format!("{l}?token={token}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

async fn state(State(s): State<Arc<Shared>>, r: Req) -> Response {
    if let Err(d) = r.authorize(&s, false) {
        return d.into_response();
    }
    let state = s.agent.state().borrow().clone();
    axum::Json(state).into_response()
}

/// `/transcripts/`: the transcripts there are, newest first, as JSON (`name`, `bytes`,
/// `modifiedMs`), under the same access rules as HLS.
async fn transcript_list(State(s): State<Arc<Shared>>, r: Req) -> Response {
    if let Err(d) = r.authorize(&s, false) {
        return d.into_response();
    }
    let mut files = Vec::new();
    for dir in &s.transcript_dirs {
        let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
            continue;
        };
        while let Ok(Some(e)) = entries.next_entry().await {
            let name = e.file_name().to_string_lossy().into_owned();
            if !crate::transcribe::transcript::is_transcript_name(&name) {
                continue;
            }
            let Ok(meta) = e.metadata().await else {
                continue;
            };
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_millis() as u64);
            files.push(serde_json::json!({
                "name": name,
                "bytes": meta.len(),
                "modifiedMs": modified,
            }));
        }
    }
    files.sort_by_key(|f| std::cmp::Reverse(f["modifiedMs"].as_u64().unwrap_or(0)));
    axum::Json(serde_json::json!({ "transcripts": files })).into_response()
}

/// `/transcripts/{file}`: one transcript (`.vtt`, `.srt`, `.jsonl`); any other name is a 404.
async fn transcript_file(
    State(s): State<Arc<Shared>>,
    Path(file): Path<String>,
    r: Req,
) -> Response {
    if let Err(d) = r.authorize(&s, false) {
        return d.into_response();
    }
    if !crate::transcribe::transcript::is_transcript_name(&file) {
        return (StatusCode::NOT_FOUND, "no such transcript\n").into_response();
    }
    let kind = match file.rsplit_once('.').map(|(_, e)| e) {
        Some("vtt") => "text/vtt; charset=utf-8",
        Some("srt") => "application/x-subrip; charset=utf-8",
        _ => "application/x-ndjson; charset=utf-8",
    };
    for dir in &s.transcript_dirs {
        if let Ok(body) = tokio::fs::read(dir.join(&file)).await {
            return (
                [
                    (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
                    (
                        header::ACCESS_CONTROL_ALLOW_ORIGIN,
                        HeaderValue::from_static("*"),
                    ),
                    (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
                ],
                body,
            )
                .into_response();
        }
    }
    (StatusCode::NOT_FOUND, "no such transcript\n").into_response()
}

#[cfg(test)]
mod tests;
