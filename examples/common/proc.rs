//! What the media benches share: their arguments, a process's CPU time, and the median of
//! their rounds.
//! Included by path (`#[path = "common/proc.rs"]`) by the benches that need no test-util.

/// CPU seconds (user + system) a process has used.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    let ut: f64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    let st: f64 = f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    (ut + st) / ticks
}

/// The median of the rounds.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// `--seconds N --rounds N --roombox PATH`.
pub struct Args {
    pub seconds: u64,
    pub rounds: usize,
    /// The agent's binary: beside the bench's own directory by default.
    pub roombox: std::path::PathBuf,
}

/// The command line, with these defaults.
pub fn args(seconds: u64, rounds: usize) -> Args {
    let mut a = Args {
        seconds,
        rounds,
        roombox: std::env::current_exe()
            .ok()
            .and_then(|p| p.parent()?.parent().map(|d| d.join("roombox")))
            .unwrap_or_else(|| "roombox".into()),
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < v.len() {
        let next = v.get(i + 1).cloned().unwrap_or_default();
        match v[i].as_str() {
            "--seconds" => a.seconds = next.parse().expect("--seconds N"),
            "--rounds" => a.rounds = next.parse().expect("--rounds N"),
            "--roombox" => a.roombox = next.into(),
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    a
}
