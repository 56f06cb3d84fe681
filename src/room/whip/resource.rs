//! The HTTP half of WHIP (RFC 9725) and WHEP (draft-ietf-wish-whep), which share it: POST an
//! SDP offer to an endpoint, take `201 Created` with the answer, the session's resource URL
//! (`Location`), its ETag and the ICE servers (`Link: <...>; rel="ice-server"`), and DELETE the
//! resource to end the session.
//!
//! Redirects (307/308) are followed by hand, up to five, so the bearer token goes along (an
//! HTTP client drops `Authorization` on a redirect to another origin). Every status maps to a
//! [`RoomError`] the session's rules understand: a refusal (4xx: wrong token, no such endpoint)
//! ends the attempt, a server or network fault is retried with backoff, and an answer the box
//! cannot use says what was wrong with it. The token never appears in an error or a log.

use crate::room::signaller::{IceServer, RoomError};
use reqwest::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE, ETAG, LINK, LOCATION};
use reqwest::{StatusCode, Url};
use std::time::Duration;

/// Redirects followed before giving up.
const MAX_REDIRECTS: usize = 5;
/// The longest answer taken; an SDP answer is a few KiB.
const MAX_ANSWER: usize = 256 * 1024;

/// A session created at an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// Where the session lives: PATCH and DELETE go here.
    pub url: Url,
    /// The session's ETag, for PATCH's `If-Match`.
    pub etag: Option<String>,
    /// The server's SDP answer.
    pub answer: String,
    /// ICE servers the endpoint named.
    pub ice_servers: Vec<IceServer>,
}

/// An endpoint and its credentials.
#[derive(Clone)]
pub struct Endpoint {
    pub url: Url,
    /// The bearer token, if the endpoint wants one.
    pub token: Option<String>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.url.as_str())
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// The HTTP client every exchange uses: no automatic redirects (see the module documentation),
/// and `timeout` for a whole request.
/// A box without the system's CA certificates (a minimal Debian without ca-certificates) cannot
/// make a TLS-capable client at all: it then gets one for plain http:// only, and an https://
/// endpoint fails with the certificate error.
pub fn client(timeout: Duration) -> Result<reqwest::Client, RoomError> {
    let builder = || {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
    };
    builder()
        .build()
        .or_else(|e| {
            tracing::warn!(error = %e, "whip: no CA certificates (install ca-certificates for https://); plain http:// only");
            builder().tls_certs_only(std::iter::empty()).build()
        })
        .map_err(|e| RoomError::Protocol(format!("HTTP client: {e}")))
}

/// POSTs `offer` to the endpoint and returns the session it created. `what` names the protocol
/// (`WHIP`, `WHEP`) in errors.
pub async fn create(
    http: &reqwest::Client,
    ep: &Endpoint,
    offer: &str,
    what: &str,
) -> Result<Resource, RoomError> {
    let mut url = ep.url.clone();
    for _ in 0..=MAX_REDIRECTS {
        let mut req = http
            .post(url.clone())
            .header(CONTENT_TYPE, "application/sdp")
            .body(offer.to_string());
        if let Some(t) = &ep.token {
            req = req.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        let resp = req.send().await.map_err(|e| transport(what, &url, &e))?;
        let status = resp.status();
        if status == StatusCode::TEMPORARY_REDIRECT || status == StatusCode::PERMANENT_REDIRECT {
            url = location(resp.headers(), &url, what)?;
            tracing::debug!(%url, "{what}: redirected");
            continue;
        }
        if status != StatusCode::CREATED {
            let e = refusal(what, &url, status, resp).await;
            // A WHEP endpoint with nothing to play yet says 404: it may go live later.
            return Err(match e {
                RoomError::Refused(m) if what == "WHEP" && status == StatusCode::NOT_FOUND => {
                    RoomError::Transport(m.replace("(no such endpoint)", "(not live)"))
                }
                e => e,
            });
        }
        let headers = resp.headers().clone();
        let resource = location(&headers, &url, what)?;
        let answer = read_sdp(resp, what).await?;
        return Ok(Resource {
            url: resource,
            etag: headers
                .get(ETAG)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            answer,
            ice_servers: headers
                .get_all(LINK)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(ice_servers)
                .collect(),
        });
    }
    Err(RoomError::Protocol(format!(
        "{what} endpoint {}: more than {MAX_REDIRECTS} redirects",
        ep.url
    )))
}

/// DELETEs a session's resource. A resource already gone (404) counts as deleted.
pub async fn delete(
    http: &reqwest::Client,
    resource: &Url,
    token: Option<&str>,
    what: &str,
) -> Result<(), RoomError> {
    let mut req = http.delete(resource.clone());
    if let Some(t) = token {
        req = req.header(AUTHORIZATION, format!("Bearer {t}"));
    }
    let resp = req
        .send()
        .await
        .map_err(|e| transport(what, resource, &e))?;
    let status = resp.status();
    if status.is_success() || status == StatusCode::NOT_FOUND {
        return Ok(());
    }
    Err(refusal(what, resource, status, resp).await)
}

fn transport(what: &str, url: &Url, e: &reqwest::Error) -> RoomError {
    let why = if e.is_timeout() {
        "no answer in time".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        e.to_string()
    };
    RoomError::Transport(format!("{what} endpoint {url}: {why}"))
}

/// A status other than 201: 4xx are refusals (the same request will not do better), 408, 425,
/// 429 and 5xx faults worth retrying. The reason is the status and the start of the body.
async fn refusal(what: &str, url: &Url, status: StatusCode, resp: reqwest::Response) -> RoomError {
    let body = resp.text().await.unwrap_or_default();
    let said: String = body.chars().filter(|c| !c.is_control()).take(200).collect();
    let said = if said.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", said.trim())
    };
    let hint = match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => " (check room.token_file)",
        StatusCode::NOT_FOUND => " (no such endpoint)",
        _ => "",
    };
    let msg = format!("{what} endpoint {url} answered {status}{hint}{said}");
    let retry = status.is_server_error()
        || matches!(status.as_u16(), 408 | 425 | 429)
        || status.is_success()
        || status.is_informational()
        || status.is_redirection();
    if status.is_success() || status.is_redirection() {
        RoomError::Protocol(format!("{msg}; expected 201 Created"))
    } else if retry {
        RoomError::Transport(msg)
    } else {
        RoomError::Refused(msg)
    }
}

/// The `Location` header resolved against the request's URL (it may be relative).
fn location(headers: &HeaderMap, base: &Url, what: &str) -> Result<Url, RoomError> {
    let Some(raw) = headers.get(LOCATION) else {
        return Err(RoomError::Protocol(format!(
            "{what} endpoint {base}: no Location header in its answer"
        )));
    };
    let text = raw.to_str().map_err(|_| {
        RoomError::Protocol(format!(
            "{what} endpoint {base}: a Location header that is not text"
        ))
    })?;
    let url = base.join(text).map_err(|e| {
        RoomError::Protocol(format!(
            "{what} endpoint {base}: Location `{}` is not a URL: {e}",
            printable(text)
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(RoomError::Protocol(format!(
            "{what} endpoint {base}: Location `{}` is not an http(s) URL",
            printable(text)
        )));
    }
    Ok(url)
}

/// The body as an SDP answer: `application/sdp`, starting `v=0`.
async fn read_sdp(resp: reqwest::Response, what: &str) -> Result<String, RoomError> {
    let url = resp.url().clone();
    let kind = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| RoomError::Transport(format!("{what} endpoint {url}: {e}")))?;
    if bytes.len() > MAX_ANSWER {
        return Err(RoomError::Protocol(format!(
            "{what} endpoint {url}: an answer of {} bytes (more than {MAX_ANSWER})",
            bytes.len()
        )));
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    if !kind.starts_with("application/sdp") || !text.trim_start().starts_with("v=0") {
        return Err(RoomError::Protocol(format!(
            "{what} endpoint {url}: the answer is not SDP (Content-Type `{}`, starts `{}`)",
            printable(&kind),
            printable(&text.chars().take(40).collect::<String>())
        )));
    }
    Ok(text)
}

/// At most 80 printable characters of something the server sent, for an error.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(80)
        .collect()
}

/// The ICE servers in one `Link` header value (it may hold several links, comma-separated).
pub fn ice_servers(header: &str) -> Vec<IceServer> {
    split_links(header)
        .into_iter()
        .filter_map(|link| {
            let (target, params) = link.trim().split_once('>')?;
            let url = target.trim().strip_prefix('<')?.trim().to_string();
            let mut rel = false;
            let mut server = IceServer {
                url,
                username: None,
                credential: None,
            };
            for p in params.split(';') {
                let Some((k, v)) = p.split_once('=') else {
                    continue;
                };
                let v = v.trim().trim_matches('"').to_string();
                match k.trim().to_ascii_lowercase().as_str() {
                    "rel" => rel = v.split_whitespace().any(|r| r == "ice-server"),
                    "username" => server.username = Some(v),
                    "credential" => server.credential = Some(v),
                    _ => {}
                }
            }
            let scheme_ok = ["stun:", "stuns:", "turn:", "turns:"]
                .iter()
                .any(|s| server.url.starts_with(s));
            (rel && scheme_ok).then_some(server)
        })
        .collect()
}

/// Splits a `Link` value at the commas between links, not those inside `<...>` or quotes.
fn split_links(header: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut angle, mut quote) = (0, false, false);
    for (i, c) in header.char_indices() {
        match c {
            '<' if !quote => angle = true,
            '>' if !quote => angle = false,
            '"' if !angle => quote = !quote,
            ',' if !angle && !quote => {
                out.push(&header[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&header[start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers_give_stun_and_turn_servers() {
        let h = r#"<stun:stun.example.net>; rel="ice-server", <turn:turn.example.net?transport=udp>; rel="ice-server"; username="user"; credential="p,ss"; credential-type="password", <https://example.net/x>; rel="alternate""#;
        let s = ice_servers(h);
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!(s[0].url, "stun:stun.example.net");
        assert_eq!(s[1].url, "turn:turn.example.net?transport=udp");
        assert_eq!(s[1].username.as_deref(), Some("user"));
        assert_eq!(s[1].credential.as_deref(), Some("p,ss"));
    }

    #[test]
    fn garbage_link_headers_give_nothing() {
        for h in [
            "",
            "garbage",
            "<>; rel=ice-server",
            "<http://x>; rel=\"ice-server\"",
            "<stun:x",
        ] {
            assert!(ice_servers(h).is_empty(), "{h}");
        }
    }

    #[test]
    fn location_is_resolved_against_the_endpoint_and_must_be_http() {
        let base = Url::parse("http://127.0.0.1:7080/whip/endpoint/abc").unwrap();
        let mut h = HeaderMap::new();
        h.insert(LOCATION, "/whip/resource/abc".parse().unwrap());
        assert_eq!(
            location(&h, &base, "WHIP").unwrap().as_str(),
            "http://127.0.0.1:7080/whip/resource/abc"
        );
        h.insert(LOCATION, "javascript:alert(1)".parse().unwrap());
        let e = location(&h, &base, "WHIP").unwrap_err();
        assert!(
            matches!(&e, RoomError::Protocol(m) if m.contains("not an http(s) URL")),
            "{e}"
        );
        h.insert(LOCATION, "http://[::zz]/".parse().unwrap());
        assert!(matches!(
            location(&h, &base, "WHIP"),
            Err(RoomError::Protocol(_))
        ));
        assert!(matches!(
            location(&HeaderMap::new(), &base, "WHIP"),
            Err(RoomError::Protocol(m)) if m.contains("no Location")
        ));
    }

    #[test]
    fn an_endpoints_debug_form_hides_the_token() {
        let ep = Endpoint {
            url: Url::parse("http://x/whip").unwrap(),
            token: Some("s3cret".into()),
        };
        assert!(!format!("{ep:?}").contains("s3cret"));
    }
}
