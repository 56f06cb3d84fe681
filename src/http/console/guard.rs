//! Request rules of the console and the viewers' page, pure so they are tested without sockets:
//! what makes a state-changing request safe from cross-site forgery, which Host a loopback box
//! answers, and the viewers' message rate.

use axum::http::{header, HeaderMap};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The custom header every state-changing request carries. A page on another origin cannot set
/// it without a CORS preflight, which this server never grants; a plain form cannot set it at
/// all.
pub const CSRF_HEADER: &str = "x-roombox";

/// Why a request was refused before reaching the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

/// A state-changing request must be `Content-Type: application/json`, carry [`CSRF_HEADER`],
/// and, when the browser names an Origin, come from the box's own origin (`http://<Host>`).
/// Tokens travel in headers, never cookies, so a forged request has no credential either; these
/// rules also protect a loopback box, which has no token.
pub fn check_post(headers: &HeaderMap) -> Result<(), Refused> {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = ctype.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/json") {
        return Err(Refused("Content-Type must be application/json".to_string()));
    }
    if headers.get(CSRF_HEADER).is_none() {
        return Err(Refused(format!("the {CSRF_HEADER} header is missing")));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let origin = origin.to_str().unwrap_or("");
        if host.is_empty() || !origin.eq_ignore_ascii_case(&format!("http://{host}")) {
            return Err(Refused(format!(
                "origin {origin} is not this box's (http://{host})"
            )));
        }
    }
    Ok(())
}

/// A box bound to loopback has no token, so a web page could reach it through DNS rebinding (a
/// name of the attacker's that resolves to 127.0.0.1): the Host must then be a loopback name.
pub fn check_loopback_host(headers: &HeaderMap) -> Result<(), Refused> {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host),
    };
    let loopback = name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(Refused(format!(
            "Host {host} is not a loopback name; this box listens on loopback only"
        )))
    }
}

/// Messages (chat, questions and votes together) one viewer address may send per [`RATE_WINDOW`].
pub const RATE_MESSAGES: usize = 5;
/// The window of [`RATE_MESSAGES`].
pub const RATE_WINDOW: Duration = Duration::from_secs(10);
/// Addresses remembered at most; beyond, stale ones are swept, then all (bounded memory).
const MAX_TRACKED: usize = 4096;

/// Viewers' messages per address, time passed in.
#[derive(Debug, Default)]
pub struct RateLimit {
    by_ip: HashMap<IpAddr, VecDeque<Instant>>,
}

impl RateLimit {
    /// Takes one message from `ip` at `now` if it is within the rate; false when it is not.
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.by_ip.len() >= MAX_TRACKED && !self.by_ip.contains_key(&ip) {
            self.by_ip.retain(|_, q| {
                q.back()
                    .is_some_and(|&t| now.duration_since(t) < RATE_WINDOW)
            });
            if self.by_ip.len() >= MAX_TRACKED {
                self.by_ip.clear();
            }
        }
        let q = self.by_ip.entry(ip).or_default();
        while q
            .front()
            .is_some_and(|&t| now.duration_since(t) >= RATE_WINDOW)
        {
            q.pop_front();
        }
        if q.len() >= RATE_MESSAGES {
            return false;
        }
        q.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.insert(*n, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn a_post_needs_json_the_custom_header_and_its_own_origin() {
        let good = [
            ("content-type", "application/json"),
            ("x-roombox", "1"),
            ("host", "10.0.0.5:8480"),
        ];
        assert!(
            check_post(&headers(&good)).is_ok(),
            "no Origin: curl, a script"
        );
        let mut with_origin = good.to_vec();
        with_origin.push(("origin", "http://10.0.0.5:8480"));
        assert!(check_post(&headers(&with_origin)).is_ok());
        let mut other = good.to_vec();
        other.push(("origin", "http://evil.example"));
        assert!(check_post(&headers(&other)).is_err());
        let mut null = good.to_vec();
        null.push(("origin", "null"));
        assert!(check_post(&headers(&null)).is_err());
        // What an HTML form can send.
        assert!(check_post(&headers(&[
            ("content-type", "text/plain"),
            ("x-roombox", "1"),
            ("host", "h")
        ]))
        .is_err());
        assert!(check_post(&headers(&[
            ("content-type", "application/json; charset=utf-8"),
            ("host", "h")
        ]))
        .is_err());
    }

    #[test]
    fn a_loopback_box_answers_loopback_names_only() {
        for h in [
            "127.0.0.1:8480",
            "localhost:8480",
            "[::1]:8480",
            "localhost",
        ] {
            assert!(check_loopback_host(&headers(&[("host", h)])).is_ok(), "{h}");
        }
        for h in ["evil.example:8480", "10.0.0.5:8480", ""] {
            assert!(
                check_loopback_host(&headers(&[("host", h)])).is_err(),
                "{h}"
            );
        }
    }

    #[test]
    fn a_viewer_sends_a_few_messages_per_window() {
        let mut r = RateLimit::default();
        let a: IpAddr = [192, 0, 2, 1].into();
        let b: IpAddr = [192, 0, 2, 2].into();
        let t0 = Instant::now();
        for _ in 0..RATE_MESSAGES {
            assert!(r.allow(a, t0));
        }
        assert!(!r.allow(a, t0 + Duration::from_secs(1)));
        assert!(r.allow(b, t0), "others are not held back");
        assert!(r.allow(a, t0 + RATE_WINDOW), "the window moves on");
    }
}
