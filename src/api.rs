//! The local control socket: JSON lines over a Unix socket.
//!
//! Each line a client writes is a command (`{"command":"get-state"}`); the agent answers each with
//! one line, `{"ok":true,"result":...}` or `{"ok":false,"error":{"code":...,"message":...}}`, in
//! order. The line `{"follow":"events"}` turns the connection into a stream of events: one reply
//! line `{"ok":true,"result":{"following":"events"}}` once subscribed, then one JSON event a line. The socket is created mode 0660, so only root and the agent's group reach it.

use crate::agent::AgentHandle;
use crate::command::{Command, CommandError, ErrorCode, MAX_COMMAND_BYTES};
use serde::{Deserialize, Serialize};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// One reply line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplyLine {
    /// Whether the command was accepted.
    pub ok: bool,
    /// The result, when accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// The error, when refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<CommandError>,
}

impl From<Result<serde_json::Value, CommandError>> for ReplyLine {
    fn from(r: Result<serde_json::Value, CommandError>) -> Self {
        match r {
            Ok(v) => ReplyLine {
                ok: true,
                result: Some(v),
                error: None,
            },
            Err(e) => ReplyLine {
                ok: false,
                result: None,
                error: Some(e),
            },
        }
    }
}

/// Serves clients on a bound listener until the task is dropped.
pub async fn serve_listener(
    listener: UnixListener,
    path: PathBuf,
    agent: AgentHandle,
) -> anyhow::Result<()> {
    tracing::info!(socket = %path.display(), "control socket listening");
    loop {
        let (stream, _) = listener.accept().await?;
        let agent = agent.clone();
        tokio::spawn(async move {
            if let Err(e) = client(stream, agent).await {
                tracing::debug!("control client: {e}");
            }
        });
    }
}

/// Binds the socket (mode 0660), removing a stale one left by a killed agent.
pub fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!("{} is in use: is another roombox running?", path.display());
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(listener)
}

async fn client(stream: UnixStream, agent: AgentHandle) -> anyhow::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = read_line_limited(&mut lines, &mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        let reply: ReplyLine = if buf.len() > MAX_COMMAND_BYTES {
            Err(CommandError::new(
                ErrorCode::PayloadTooLarge,
                format!("line exceeds {MAX_COMMAND_BYTES} bytes"),
            ))
            .into()
        } else if is_follow(&buf) {
            let mut events = agent.subscribe();
            // Acknowledge only once subscribed, so the client misses nothing after it returns.
            write
                .write_all(b"{\"ok\":true,\"result\":{\"following\":\"events\"}}\n")
                .await?;
            loop {
                match events.recv().await {
                    Ok(ev) => {
                        let mut line = serde_json::to_vec(&ev)?;
                        line.push(b'\n');
                        write.write_all(&line).await?;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!("control follower lagged, {n} events skipped");
                    }
                    Err(_) => return Ok(()),
                }
            }
        } else {
            match Command::decode(&buf) {
                Ok(cmd) => agent.send(cmd).await.into(),
                Err(e) => Err(e).into(),
            }
        };
        let mut line = serde_json::to_vec(&reply)?;
        line.push(b'\n');
        write.write_all(&line).await?;
    }
}

/// Reads one line, keeping at most `MAX_COMMAND_BYTES + 1` bytes of it (the rest is discarded), so
/// an endless line cannot exhaust memory.
async fn read_line_limited<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let mut total = 0;
    loop {
        let chunk = r.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(total);
        }
        let (take, done) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let room = (MAX_COMMAND_BYTES + 1).saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..take.min(room)]);
        r.consume(take);
        total += take;
        if done {
            if buf.last() == Some(&b'\n') {
                buf.pop();
            }
            return Ok(total);
        }
    }
}

fn is_follow(line: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Follow {
        follow: String,
    }
    serde_json::from_slice::<Follow>(line).is_ok_and(|f| f.follow == "events")
}

/// A client of the control socket, for the CLI and tests.
pub struct Client {
    reader: BufReader<tokio::net::unix::OwnedReadHalf>,
    writer: tokio::net::unix::OwnedWriteHalf,
}

impl Client {
    /// Connects to the agent's socket.
    pub async fn connect(path: &Path) -> anyhow::Result<Client> {
        let stream = UnixStream::connect(path).await.map_err(|e| {
            let hint = match e.kind() {
                // The unit's runtime directory is roombox:roombox 0750.
                std::io::ErrorKind::PermissionDenied => {
                    "run it as root or as a member of the roombox group"
                }
                _ => "is the roombox service running? `systemctl status roombox`, or `roombox run`",
            };
            anyhow::anyhow!("cannot reach the agent at {}: {e} ({hint})", path.display())
        })?;
        let (r, w) = stream.into_split();
        Ok(Client {
            reader: BufReader::new(r),
            writer: w,
        })
    }

    /// Sends one command and reads its reply.
    pub async fn call(&mut self, command: &Command) -> anyhow::Result<ReplyLine> {
        let mut line = serde_json::to_vec(command)?;
        line.push(b'\n');
        self.call_raw(&line).await
    }

    /// Sends raw bytes (one line) and reads one reply line.
    pub async fn call_raw(&mut self, line: &[u8]) -> anyhow::Result<ReplyLine> {
        self.writer.write_all(line).await?;
        let mut reply = String::new();
        if self.reader.read_line(&mut reply).await? == 0 {
            anyhow::bail!("the agent closed the connection");
        }
        Ok(serde_json::from_str(&reply)?)
    }

    /// Turns the connection into an event stream, once the agent confirms it follows: every
    /// event after this returns is seen.
    pub async fn follow(mut self) -> anyhow::Result<EventStream> {
        let ack = self.call_raw(b"{\"follow\":\"events\"}\n").await?;
        if !ack.ok {
            anyhow::bail!("the agent refused to stream events: {:?}", ack.error);
        }
        Ok(EventStream {
            reader: self.reader,
            _writer: self.writer,
        })
    }
}

/// Events read from the control socket.
pub struct EventStream {
    reader: BufReader<tokio::net::unix::OwnedReadHalf>,
    _writer: tokio::net::unix::OwnedWriteHalf,
}

impl EventStream {
    /// The next event, or none when the agent closed the socket.
    pub async fn next(&mut self) -> anyhow::Result<Option<crate::event::Event>> {
        let mut line = String::new();
        if self.reader.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        Ok(Some(serde_json::from_str(&line)?))
    }
}
