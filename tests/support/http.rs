//! HTTP on loopback for the tests: one request per connection, read whole, and starting the
//! box's HLS.

use super::agent::{wait_event, AgentProcess};
use roombox::command::Command;
use roombox::event::Event;
use roombox::model::ServiceState;
use std::time::Duration;

/// One HTTP response, as read off the socket.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub code: u16,
    /// Header names lower-cased, with their values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    /// A header's value, by its lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }
}

/// One request over a fresh connection to `host` (`127.0.0.1:port`).
pub async fn request(method: &str, host: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    request_from(None, method, host, path, headers, b"").await
}

/// One request with a body, from the source address `from` (another loopback address, such
/// as 127.0.0.7, counts as another client) or the default one.
pub async fn request_from(
    from: Option<std::net::IpAddr>,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr: std::net::SocketAddr = host.parse().expect("host is ip:port");
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    if let Some(ip) = from {
        sock.bind((ip, 0).into()).expect("bind the source address");
    }
    let mut s = sock.connect(addr).await.expect("connect");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    let has_host = headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host"));
    if has_host {
        req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    }
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    s.write_all(body).await.expect("write the body");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("a reply within 10 s")
        .expect("read");
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let mut lines = head.lines();
    let code = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        code,
        headers,
        body: buf[split + 4..].to_vec(),
    }
}

pub async fn get(host: &str, path: &str) -> Reply {
    request("GET", host, path, &[]).await
}

/// Starts HLS and returns the playback URL the box announced.
pub async fn start_hls(agent: &AgentProcess) -> String {
    agent
        .wait_state("media PLAYING", Duration::from_secs(30), |s| {
            s["media"]["state"] == "PLAYING"
        })
        .await;
    let mut events = agent.events().await;
    assert!(agent.call(Command::StartHls).await.ok);
    let ev = wait_event(&mut events, Duration::from_secs(20), |e| {
        matches!(
            e,
            Event::HlsStateChanged {
                state: ServiceState::Started,
                ..
            }
        )
    })
    .await
    .unwrap_or_else(|| panic!("HLS never started; log:\n{}", agent.log()));
    let Event::HlsStateChanged {
        playback_url: Some(url),
        ..
    } = ev
    else {
        panic!("no playback URL in {ev:?}")
    };
    url
}

/// GET of a whole `http://host:port/path` URL.
pub async fn get_url(url: &str) -> Reply {
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    get(host, &format!("/{path}")).await
}
