//! Telemetry: CPU load and temperature, memory, disk, and the media figures from the agent
//! state. What is not known (no thermal zone, no room for packet loss and RTT) is null.

use crate::agent::state::AgentState;
use serde::Serialize;
use std::path::Path;

/// One telemetry sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    /// Milliseconds since the epoch.
    pub time_ms: u64,
    /// CPU busy share over the last interval, percent of all cores.
    pub cpu_percent: Option<f64>,
    /// 1-minute load average.
    pub load1: Option<f64>,
    /// Hottest thermal zone, °C.
    pub temperature_c: Option<f64>,
    /// Memory in use (total - available), MiB.
    pub memory_used_mb: Option<u64>,
    /// Total memory, MiB.
    pub memory_total_mb: Option<u64>,
    /// Free space on the state directory's filesystem, MiB.
    pub disk_free_mb: Option<u64>,
    /// Size of that filesystem, MiB.
    pub disk_total_mb: Option<u64>,
    /// Frames encoded per second.
    pub fps: f64,
    /// Video bitrate target, kbit/s.
    pub bitrate_kbps: u32,
    /// Video bitrate the encoder produced over the last second, kbit/s.
    pub encoded_kbps: u32,
    /// Packet loss toward the room, percent; null outside a room.
    pub packet_loss_percent: Option<f64>,
    /// Round-trip time to the room server, ms; null outside a room.
    pub rtt_ms: Option<f64>,
    /// The software update's state (IDLE when none was asked for).
    pub update_state: crate::event::UpdatePhase,
    /// Its download progress, while DOWNLOADING.
    pub update_percent: Option<u8>,
}

/// Samples the system; keeps the previous CPU counters to compute a share.
#[derive(Debug, Default)]
pub struct Sampler {
    last_cpu: Option<(u64, u64)>,
}

impl Sampler {
    /// A new sampler.
    pub fn new() -> Sampler {
        Sampler::default()
    }

    /// Takes a sample at `now_ms`.
    pub fn sample(&mut self, state: &AgentState, state_dir: &Path, now_ms: u64) -> Sample {
        let cpu = read_cpu();
        let cpu_percent = match (self.last_cpu, cpu) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => Some(round1(
                100.0 * (b1.saturating_sub(b0)) as f64 / (t1 - t0) as f64,
            )),
            _ => None,
        };
        if cpu.is_some() {
            self.last_cpu = cpu;
        }
        let (mem_used, mem_total) = read_mem();
        let (disk_free, disk_total) = disk(state_dir);
        Sample {
            time_ms: now_ms,
            cpu_percent,
            load1: std::fs::read_to_string("/proc/loadavg")
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse().ok()),
            temperature_c: read_temperature(),
            memory_used_mb: mem_used,
            memory_total_mb: mem_total,
            disk_free_mb: disk_free,
            disk_total_mb: disk_total,
            fps: state.media.fps,
            bitrate_kbps: state.media.bitrate_kbps,
            encoded_kbps: state.media.encoded_kbps,
            packet_loss_percent: None,
            rtt_ms: None,
            update_state: state.update.state,
            update_percent: state.update.percent,
        }
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// (busy, total) jiffies from the first line of /proc/stat.
fn read_cpu() -> Option<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let line = s.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 4 {
        return None;
    }
    let total: u64 = v.iter().take(8).sum();
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

fn read_mem() -> (Option<u64>, Option<u64>) {
    let Ok(s) = std::fs::read_to_string("/proc/meminfo") else {
        return (None, None);
    };
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
    };
    let total = field("MemTotal:");
    let avail = field("MemAvailable:");
    (
        total.zip(avail).map(|(t, a)| t.saturating_sub(a) / 1024),
        total.map(|t| t / 1024),
    )
}

fn read_temperature() -> Option<f64> {
    let mut best: Option<f64> = None;
    for e in std::fs::read_dir("/sys/class/thermal").ok()?.flatten() {
        if !e.file_name().to_string_lossy().starts_with("thermal_zone") {
            continue;
        }
        if let Some(t) = std::fs::read_to_string(e.path().join("temp"))
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
        {
            let c = t / 1000.0;
            best = Some(best.map_or(c, |b: f64| b.max(c)));
        }
    }
    best.map(round1)
}

// The statvfs counters are u32 on some 32-bit boards.
#[allow(clippy::unnecessary_cast)]
fn disk(dir: &Path) -> (Option<u64>, Option<u64>) {
    match nix::sys::statvfs::statvfs(dir) {
        Ok(s) => {
            let unit = s.fragment_size() as u64;
            (
                Some(s.blocks_available() as u64 * unit / (1 << 20)),
                Some(s.blocks() as u64 * unit / (1 << 20)),
            )
        }
        Err(_) => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn a_sample_has_system_figures_and_nulls_for_what_is_unknown() {
        let machine = crate::agent::state::StateMachine::new(&Config::default(), "b".into());
        let state = machine.state();
        let mut s = Sampler::new();
        let dir = tempfile::tempdir().unwrap();
        let first = s.sample(state, dir.path(), 1);
        assert!(first.memory_total_mb.unwrap() > 0);
        assert!(first.disk_total_mb.unwrap() > 0);
        assert_eq!(first.packet_loss_percent, None);
        let json = serde_json::to_value(&first).unwrap();
        assert!(json.get("rttMs").unwrap().is_null());
        assert_eq!(json["bitrateKbps"], 2500);
    }
}
