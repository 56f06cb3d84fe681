//! The pages, embedded in the binary so the console works on a box with no internet: one HTML
//! file each (CSS and vanilla JS inline, no framework: a few hundred lines of DOM code need no
//! build step and nothing to keep up to date), and hls.js 1.7.4 for the viewers' player, copied
//! from npm (`tests/browser/` pins the same version; its license sits beside it).

use super::{gate, Need, Req};
use crate::http::Shared;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The console page.
pub const CONSOLE_HTML: &str = include_str!("assets/console.html");
/// The viewers' page.
pub const WATCH_HTML: &str = include_str!("assets/watch.html");
/// What a browser without a token gets: a form that asks for it.
pub const LOGIN_HTML: &str = include_str!("assets/login.html");
/// hls.js 1.7.4 (Apache-2.0, `assets/hls.js-LICENSE`).
pub const HLS_JS: &str = include_str!("assets/hls.min.js");

/// Pages are never cached (a box upgrade changes them) and never framed by another site (a
/// framed console could be clicked through).
fn html(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; \
                 img-src 'self' data: blob:; media-src 'self' blob:; worker-src 'self' blob:; \
                 frame-ancestors 'none'",
            ),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response()
}

/// A page behind `need`: a browser without a token is asked for it.
fn page(s: &Shared, r: &Req, need: Need, body: &'static str) -> Response {
    match gate(s, r, need) {
        Ok(_) => html(StatusCode::OK, body),
        Err(super::Rejected::Token(crate::http::Denied::Unauthorized)) => {
            html(StatusCode::UNAUTHORIZED, LOGIN_HTML)
        }
        Err(r) => r.into_response(),
    }
}

/// `GET /`: the console.
pub(crate) async fn console(State(s): State<Arc<Shared>>, r: Req) -> Response {
    page(&s, &r, Need::Console, CONSOLE_HTML)
}

/// `GET /watch`: the viewers' page.
pub(crate) async fn watch(State(s): State<Arc<Shared>>, r: Req) -> Response {
    page(&s, &r, Need::Viewer, WATCH_HTML)
}

/// `GET /assets/hls.min.js`: public library code, served without a token so the page can load
/// it with a plain `<script src>`; cached, since it changes only with the binary.
pub(crate) async fn hls_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=86400"),
        ],
        HLS_JS,
    )
        .into_response()
}
