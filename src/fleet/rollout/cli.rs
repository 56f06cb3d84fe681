//! `roombox fleet update`: publish a group's rollout record, follow every box's progress in a
//! live table, and stop the rollout when more than `--max-rollbacks` boxes roll back.
//!
//! The table is built from what the boxes publish: their `rollout-state-changed` events (each
//! box of the group that is online answers every new record: in or not, scheduled, started,
//! held), their `update-state-changed` events and, for what happened before the command ran
//! (an earlier stage), the `update` node of their retained state. [`Progress`] is that table
//! without I/O; [`run`] is the loop around it.

use super::follow::BoxState;
use super::{check_id, Phase, Record};
use crate::command::UpdateManifest;
use crate::event::UpdatePhase;
use crate::fleet::cli::{ConnArgs, Operator};
use crate::model::now_ms;
use anyhow::Context;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// `roombox fleet update`.
#[derive(Debug, Clone, clap::Args)]
pub struct UpdateArgs {
    /// The group (`floor-4` or `group/floor-4`).
    pub group: String,
    /// The signed manifest, as `fleet sign-update` prints it (`{"manifest":{...}}`).
    #[arg(long)]
    pub manifest: PathBuf,
    /// The share of the group that takes it, 0 to 100. Run again with a higher percent and
    /// the same rollout id to widen it.
    #[arg(long)]
    pub percent: u32,
    /// Names the rollout (default: the manifest's version). Keep it across stages.
    #[arg(long)]
    pub rollout_id: Option<String>,
    /// Stop the rollout when more than this many boxes roll back.
    #[arg(long, default_value_t = 0)]
    pub max_rollbacks: usize,
    /// Spread the selected boxes' starts over this long, by bucket.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub spread: Duration,
    /// Install even while a room is busy.
    #[arg(long)]
    pub force: bool,
    /// Publish the rollout as STOPPED (boxes that have not started do not start) and exit.
    #[arg(long)]
    pub stop: bool,
    /// Follow the progress for at most this long.
    #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
    pub wait: Duration,
    /// Once every box that answered is done, wait this long for late answers, then exit.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub settle: Duration,
    /// Redraw the table in place when stdout is a terminal (off for a library caller writing
    /// elsewhere).
    #[arg(skip = true)]
    pub live_tty: bool,
}

/// One box's line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    pub bucket: Option<u64>,
    pub rollout: Option<BoxState>,
    pub update: Option<UpdatePhase>,
    pub percent: Option<u64>,
    pub reason: Option<String>,
}

impl Row {
    /// Nothing more will happen to this box in this stage.
    pub fn done(&self) -> bool {
        match self.rollout {
            None | Some(BoxState::Scheduled) => false,
            Some(BoxState::Started) => matches!(
                self.update,
                Some(UpdatePhase::Healthy | UpdatePhase::RolledBack | UpdatePhase::Failed)
            ),
            Some(_) => true,
        }
    }
}

/// The rollout's table, from the boxes' messages.
#[derive(Debug, Clone)]
pub struct Progress {
    rollout_id: String,
    version: String,
    /// The boxes that answered the record.
    pub rows: BTreeMap<String, Row>,
    /// The latest update of every box (its retained state's `update` node or its last
    /// `update-state-changed` event), for boxes whose rollout event comes later.
    states: BTreeMap<String, serde_json::Value>,
}

impl Progress {
    pub fn new(rollout_id: &str, version: &str) -> Progress {
        Progress {
            rollout_id: rollout_id.to_string(),
            version: version.to_string(),
            rows: BTreeMap::new(),
            states: BTreeMap::new(),
        }
    }

    fn take_update(row: &mut Row, v: &serde_json::Value) {
        row.update = serde_json::from_value(v["state"].clone()).ok();
        row.percent = v["percent"].as_u64();
        row.reason = v["reason"].as_str().map(str::to_string);
    }

    /// One event of `device`; true when the table changed.
    pub fn on_event(&mut self, device: &str, v: &serde_json::Value) -> bool {
        if v["version"].as_str() != Some(&self.version) {
            return false;
        }
        match v["event"].as_str() {
            Some("rollout-state-changed") if v["rolloutId"].as_str() == Some(&self.rollout_id) => {
                let Ok(state) = serde_json::from_value::<BoxState>(v["state"].clone()) else {
                    return false;
                };
                let row = self.rows.entry(device.to_string()).or_default();
                row.rollout = Some(state);
                row.bucket = v["bucket"].as_u64();
                if state == BoxState::Refused {
                    row.reason = v["reason"].as_str().map(str::to_string);
                }
                if row.update.is_none() && state == BoxState::Started {
                    if let Some(u) = self.states.get(device) {
                        let u = u.clone();
                        Self::take_update(row, &u);
                    }
                }
                true
            }
            Some("update-state-changed") => {
                // Kept aside until the box says it is in this rollout (its update may start
                // before that event is out, and another group may update to the same version).
                self.states.insert(device.to_string(), v.clone());
                match self.rows.get_mut(device) {
                    Some(row) if row.rollout == Some(BoxState::Started) => {
                        Self::take_update(row, v);
                        true
                    }
                    _ => false,
                }
            }
            _ => false,
        }
    }

    /// The retained state of `device`: its `update` node, when it is for this version.
    pub fn on_state(&mut self, device: &str, state: &serde_json::Value) -> bool {
        let u = &state["update"];
        if u["version"].as_str() != Some(&self.version) {
            return false;
        }
        self.states.insert(device.to_string(), u.clone());
        match self.rows.get_mut(device) {
            Some(row) if row.rollout == Some(BoxState::Started) => {
                Self::take_update(row, u);
                true
            }
            _ => false,
        }
    }

    /// Boxes that rolled back this version.
    pub fn rollbacks(&self) -> usize {
        self.count(|r| r.update == Some(UpdatePhase::RolledBack))
    }

    pub fn count(&self, f: impl Fn(&Row) -> bool) -> usize {
        self.rows.values().filter(|r| f(r)).count()
    }

    /// Every box that answered is done (and one did).
    pub fn settled(&self) -> bool {
        !self.rows.is_empty() && self.rows.values().all(Row::done)
    }

    /// The table and a summary line.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:<24} {:>6} {:<13} {:<12} {:>4}  {}\n",
            "DEVICE", "BUCKET", "ROLLOUT", "UPDATE", "%", "REASON"
        );
        for (device, r) in &self.rows {
            out.push_str(&format!(
                "{device:<24} {:>6} {:<13} {:<12} {:>4}  {}\n",
                r.bucket.map(|b| b.to_string()).unwrap_or_default(),
                r.rollout.as_ref().map(Word::word).unwrap_or_default(),
                r.update.as_ref().map(Word::word).unwrap_or_default(),
                r.percent.map(|p| p.to_string()).unwrap_or_default(),
                r.reason.as_deref().unwrap_or(""),
            ));
        }
        let started = self.count(|r| r.rollout == Some(BoxState::Started));
        out.push_str(&format!(
            "{} boxes answered: {} started ({} HEALTHY, {} ROLLED_BACK, {} FAILED), {} scheduled, {} not selected, {} held, {} up to date, {} refused\n",
            self.rows.len(),
            started,
            self.count(|r| r.update == Some(UpdatePhase::Healthy)),
            self.rollbacks(),
            self.count(|r| r.update == Some(UpdatePhase::Failed)),
            self.count(|r| r.rollout == Some(BoxState::Scheduled)),
            self.count(|r| r.rollout == Some(BoxState::NotSelected)),
            self.count(|r| r.rollout == Some(BoxState::Held)),
            self.count(|r| r.rollout == Some(BoxState::UpToDate)),
            self.count(|r| r.rollout == Some(BoxState::Refused)),
        ));
        out
    }
}

/// The JSON word of a SCREAMING_SNAKE enum.
trait Word {
    fn word(&self) -> String;
}

impl<T: serde::Serialize> Word for T {
    fn word(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

/// Reads the manifest file: `{"manifest":{...}}` as `sign-update` prints it, or the bare
/// manifest.
pub fn read_manifest(path: &std::path::Path) -> anyhow::Result<UpdateManifest> {
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_slice(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let inner = match v.get("manifest") {
        Some(m) => m.clone(),
        None => v,
    };
    let m: UpdateManifest = serde_json::from_value(inner)
        .map_err(|e| anyhow::anyhow!("{}: not an update manifest: {e}", path.display()))?;
    m.check_shape()
        .map_err(|e| anyhow::anyhow!("{}: manifest.{e}", path.display()))?;
    Ok(m)
}

/// The record `args` describe, issued now and signed with `key` when there is one; every
/// field is checked before anything is published.
pub fn record(
    args: &UpdateArgs,
    manifest: UpdateManifest,
    state: Phase,
    key: Option<&ed25519_dalek::SigningKey>,
) -> anyhow::Result<Record> {
    let group = args.group.strip_prefix("group/").unwrap_or(&args.group);
    let rollout_id = args
        .rollout_id
        .clone()
        .unwrap_or_else(|| manifest.version.clone());
    check_id(&rollout_id).map_err(|e| anyhow::anyhow!("--rollout-id: {e}"))?;
    let mut r = Record {
        rollout_id,
        group: group.to_string(),
        percent: args.percent,
        state,
        issued_ms: now_ms(),
        spread_ms: args.spread.as_millis().min(u128::from(u64::MAX)) as u64,
        force: args.force,
        manifest,
        signature: None,
    };
    r.check().map_err(|e| {
        let flag = match e.split(':').next().unwrap_or("") {
            "percent" => "--percent",
            "spreadMs" => "--spread",
            "group" => "the group",
            _ => "the record",
        };
        anyhow::anyhow!("{flag}: {e}")
    })?;
    if let Some(k) = key {
        r.sign(k);
    }
    Ok(r)
}

/// Runs `roombox fleet update`, printing on stdout; returns the exit code: 0 when every box
/// that answered is done and the rollout went on, 3 when it was stopped for rollbacks, 2 when no
/// box answered, 1 when `--wait` ran out with boxes still updating.
pub async fn run(conn: &ConnArgs, args: &UpdateArgs) -> anyhow::Result<i32> {
    Ok(follow(conn, args, &mut std::io::stdout()).await?.code)
}

/// How a run of `fleet update` ended (benches read the times).
#[derive(Debug)]
pub struct Report {
    /// The exit code.
    pub code: i32,
    /// The table as it ended.
    pub progress: Progress,
    /// When the record was published.
    pub published: tokio::time::Instant,
    /// When the table last changed.
    pub last_change: tokio::time::Instant,
    /// When the stop was published, if it was.
    pub stopped: Option<tokio::time::Instant>,
}

/// [`run`], writing the table to `out`.
pub async fn follow(
    conn: &ConnArgs,
    args: &UpdateArgs,
    out: &mut dyn Write,
) -> anyhow::Result<Report> {
    let key = match &conn.signing_key {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            Some(
                crate::fleet::signing::parse_signing_key(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
            )
        }
        None => None,
    };
    let manifest = read_manifest(&args.manifest)?;
    let phase = if args.stop {
        Phase::Stopped
    } else {
        Phase::Active
    };
    let rec = record(args, manifest, phase, key.as_ref())?;
    if key.is_none() {
        eprintln!("warning: no --signing-key: the record is unsigned, and boxes with a fleet key refuse it");
    }
    let mut op = Operator::connect(conn).await?;
    let p = &conn.prefix;
    op.subscribe(&[format!("{p}/+/events"), format!("{p}/+/state")])
        .await?;
    let topic = super::topic(p, &rec.group);
    op.publish_retained(&topic, serde_json::to_vec(&rec)?)
        .await?;
    let published = tokio::time::Instant::now();
    let stdout = out;
    writeln!(
        stdout,
        "rollout {} of {} to group {}: {} % {}",
        rec.rollout_id,
        rec.manifest.version,
        rec.group,
        rec.percent,
        if args.stop { "STOPPED" } else { "ACTIVE" }
    )?;
    if args.stop {
        return Ok(Report {
            code: 0,
            progress: Progress::new(&rec.rollout_id, &rec.manifest.version),
            published,
            last_change: published,
            stopped: Some(published),
        });
    }
    let mut progress = Progress::new(&rec.rollout_id, &rec.manifest.version);
    let mut stopped = None;
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout()) && args.live_tty;
    let end = tokio::time::Instant::now() + args.wait;
    let mut quiet_since = tokio::time::Instant::now();
    let mut dirty = false;
    let mut printed = tokio::time::Instant::now();
    loop {
        let now = tokio::time::Instant::now();
        if progress.settled() && now >= quiet_since + args.settle || now >= end {
            break;
        }
        let tick = (now + Duration::from_millis(250)).min(end);
        if let Some(m) = op.next_until(tick).await {
            let Some((device, leaf)) = split(p, &m.topic) else {
                continue;
            };
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&m.payload) else {
                continue;
            };
            let changed = match leaf {
                "events" => progress.on_event(device, &v),
                "state" => progress.on_state(device, &v),
                _ => false,
            };
            if changed {
                dirty = true;
                quiet_since = tokio::time::Instant::now();
            }
        }
        if stopped.is_none() && progress.rollbacks() > args.max_rollbacks {
            let mut stop = rec.clone();
            stop.state = Phase::Stopped;
            stop.issued_ms = now_ms().max(rec.issued_ms + 1);
            stop.signature = None;
            if let Some(k) = &key {
                stop.sign(k);
            }
            op.publish_retained(&topic, serde_json::to_vec(&stop)?)
                .await?;
            stopped = Some(tokio::time::Instant::now());
            dirty = true;
            writeln!(
                stdout,
                "STOPPED: {} boxes rolled back (more than --max-rollbacks {}); boxes that have not started will not",
                progress.rollbacks(),
                args.max_rollbacks
            )?;
        }
        if dirty && printed.elapsed() >= Duration::from_secs(1) {
            if tty {
                write!(stdout, "\x1b[H\x1b[J")?;
            }
            write!(stdout, "{}", progress.table())?;
            if !tty {
                writeln!(stdout)?;
            }
            stdout.flush()?;
            dirty = false;
            printed = tokio::time::Instant::now();
        }
    }
    write!(stdout, "{}", progress.table())?;
    let code = if stopped.is_some() {
        writeln!(stdout, "rollout {} STOPPED", rec.rollout_id)?;
        3
    } else if progress.rows.is_empty() {
        writeln!(stdout, "no box of group {} answered", rec.group)?;
        2
    } else if !progress.settled() {
        writeln!(stdout, "--wait ran out with boxes still updating")?;
        1
    } else {
        0
    };
    stdout.flush()?;
    Ok(Report {
        code,
        progress,
        published,
        last_change: quiet_since,
        stopped,
    })
}

fn split<'t>(prefix: &str, topic: &'t str) -> Option<(&'t str, &'t str)> {
    topic
        .strip_prefix(prefix)?
        .strip_prefix('/')?
        .split_once('/')
}

#[cfg(test)]
#[path = "cli_tests.rs"]
mod tests;
