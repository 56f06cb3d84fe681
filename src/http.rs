//! The box's one HTTP front door: HLS today, and the surface transcripts and the console build
//! on. Loopback by default; bound beyond loopback, every request needs the access token.

use crate::agent::AgentHandle;
use crate::config::{Config, HttpConfig};
use crate::media::hls::{is_hls_file, PLAYLIST};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// What the handlers share.
struct Shared {
    /// The agent, for its state.
    agent: AgentHandle,
    /// Where HLS is written.
    hls_dir: PathBuf,
    /// The token requests must carry; None on loopback.
    token: Option<String>,
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
    let token = if http.bind.is_loopback() {
        None
    } else if !http.token.is_empty() {
        Some(http.token.clone())
    } else {
        let t = std::fs::read_to_string(&http.token_file)
            .map_err(|e| anyhow::anyhow!("http.token_file {}: {e}", http.token_file.display()))?;
        Some(t.trim().to_string())
    };
    let listener = tokio::net::TcpListener::bind((http.bind, http.port))
        .await
        .map_err(|e| anyhow::anyhow!("http: cannot listen on {}:{}: {e}", http.bind, http.port))?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared {
        agent,
        hls_dir: config.hls_dir(),
        token,
    });
    let router = Router::new()
        .route("/hls/{file}", get(hls_file))
        .route("/api/state", get(state))
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
        if let Err(e) = axum::serve(self.listener, self.router).await {
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

fn authorized(s: &Shared, headers: &HeaderMap, query: &HashMap<String, String>) -> bool {
    match &s.token {
        None => true,
        Some(t) => presented(headers, query).is_some_and(|p| same(p, t)),
    }
}

fn refuse() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "a valid token is needed\n",
    )
        .into_response()
}

async fn hls_file(
    State(s): State<Arc<Shared>>,
    Path(file): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&s, &headers, &query) {
        return refuse();
    }
    if !is_hls_file(&file) {
        return (StatusCode::NOT_FOUND, "no such file\n").into_response();
    }
    let path = s.hls_dir.join(&file);
    let Ok(body) = tokio::fs::read(&path).await else {
        return (
            StatusCode::NOT_FOUND,
            "no such segment (HLS is off, or it expired)\n",
        )
            .into_response();
    };
    if file == PLAYLIST {
        let mut text = String::from_utf8_lossy(&body).to_string();
        if let Some(t) = query.get("token").filter(|_| s.token.is_some()) {
            // Players fetch segments by the playlist's relative names: carry the token on.
            text = text
                .lines()
                .map(|l| {
                    if l.ends_with(".ts") && !l.starts_with('#') {
                        format!("{l}?token={t}")
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
                + "\n";
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
            (header::CONTENT_TYPE, "video/mp2t"),
            (header::CACHE_CONTROL, "max-age=60"),
        ],
        body,
    )
        .into_response()
}

async fn state(
    State(s): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&s, &headers, &query) {
        return refuse();
    }
    let state = s.agent.state().borrow().clone();
    axum::Json(state).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same("abcdef0123456789", "abcdef0123456789"));
        assert!(!same("abcdef0123456789", "abcdef012345678"));
        assert!(!same("abcdef0123456789", "abcdef0123456780"));
    }
}
