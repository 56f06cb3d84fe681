//! What the fleet benches share: arguments, a process's memory, the group round trip, and a
//! mosquitto of their own.
#![allow(dead_code)]

use roombox::fleet::cli::{Operator, To};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The value after `name` on the command line, or `default`.
pub fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A process's resident memory, KiB.
pub fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// `rounds` group `ping`s to `group` through `op`, each timed until all `boxes` replies are in
/// (seconds); an error when one round misses a reply within `wait`.
pub async fn group_pings(
    op: &mut Operator,
    group: &str,
    boxes: usize,
    rounds: usize,
    wait: Duration,
) -> anyhow::Result<Vec<f64>> {
    let mut out = Vec::new();
    for round in 0..rounds {
        let corr = format!("group-{round}");
        let t = Instant::now();
        op.send(
            &To::Group(group.into()),
            "ping",
            b"",
            &corr,
            corr.as_bytes(),
        )
        .await?;
        let mut got = 0;
        let deadline = tokio::time::Instant::now() + wait;
        while got < boxes {
            let Some(m) = op.next_until(deadline).await else {
                break;
            };
            if m.correlation.as_deref() == Some(corr.as_bytes()) {
                got += 1;
            }
        }
        anyhow::ensure!(got == boxes, "round {round}: {got} of {boxes} replies");
        out.push(t.elapsed().as_secs_f64());
    }
    Ok(out)
}

/// A mosquitto of the bench's own on an ephemeral loopback port, stopped on drop.
pub struct Broker {
    pub child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_broker() -> anyhow::Result<Broker> {
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nset_tcp_nodelay true\nallow_anonymous true\nmax_connections -1\nuser root\nlog_type error\nmax_queued_messages 100000\n"
        ),
    )?;
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(Instant::now() < deadline, "mosquitto did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Broker {
        child,
        port,
        _dir: dir,
    })
}
