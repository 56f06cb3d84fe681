//! The root installer's memory and rules, pure: where an install stands ([`Marker`], kept in
//! `/var/lib/roombox-update/marker.json` and written before each step is taken), and the
//! verdict on a version on trial ([`verdict`]).
//!
//! Every step is safe to take again, so a power cut anywhere ends, at the next boot, in the step
//! the marker names being taken again:
//!
//! | marker | on disk | the step (again) |
//! |---|---|---|
//! | none, `request.json` present | nothing installed | copy and check the package, keep the previous one |
//! | `STAGED` | both packages in the installer's directory | `dpkg -i` the new one |
//! | `TRIAL` | the new version installed | watch for the proof of health (a new boot counts, and a new deadline starts) |
//! | `ROLLING_BACK` | either version, maybe half-installed | `dpkg -i` the previous one |
//! | `COMMITTING` | the new version, proved | keep its package as the one to roll back to next time |
//!
//! An A/B update (RAUC) also records the slot it started from, and [`on_slot`] squares the
//! marker with the slot the box booted at the start of each run.

use serde::{Deserialize, Serialize};

/// How many restarts of the agent's unit during a trial make a crash loop.
pub const CRASH_LOOP: u32 = 3;
/// How many boots a trial may see before it is given up.
pub const MAX_TRIAL_BOOTS: u32 = 3;

/// The step an install is at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Phase {
    /// The new and the previous packages are in the installer's directory, checked.
    Staged,
    /// The new version is installed and must prove health.
    Trial,
    /// The previous version is being put back.
    RollingBack,
    /// The new version proved health; its package becomes the one kept.
    Committing,
}

/// An install in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Marker {
    /// The step.
    pub phase: Phase,
    /// The version being installed.
    pub version: String,
    /// The version installed before, kept to roll back to.
    pub previous_version: String,
    /// The room the agent was in, to be back in.
    #[serde(default)]
    pub room: Option<String>,
    /// When the trial began (this boot), ms since the epoch.
    #[serde(default)]
    pub trial_started_ms: u64,
    /// The agent unit's restart count when the trial began.
    #[serde(default)]
    pub restarts_base: u32,
    /// The boot the marker was last written in (`/proc/sys/kernel/random/boot_id`).
    #[serde(default)]
    pub boot_id: String,
    /// Boots seen during the trial.
    #[serde(default)]
    pub trial_boots: u32,
    /// Why it rolls back.
    #[serde(default)]
    pub reason: Option<String>,
    /// A/B updates: the slot (its bootname) the previous version runs from, booted when the
    /// install began. None for a package manager.
    #[serde(default)]
    pub slot: Option<String>,
}

impl Marker {
    /// Takes a new boot into account: a trial starts its deadline and restart count again,
    /// and is given up after [`MAX_TRIAL_BOOTS`] boots (a version that takes the box down).
    pub fn on_start(&mut self, boot_id: &str, now_ms: u64, restarts: u32) {
        if self.boot_id == boot_id {
            return;
        }
        self.boot_id = boot_id.to_string();
        if self.phase == Phase::Trial {
            self.trial_boots += 1;
            self.trial_started_ms = now_ms;
            self.restarts_base = restarts;
            if self.trial_boots > MAX_TRIAL_BOOTS {
                self.roll_back(format!(
                    "the box restarted {} times during the trial of {}",
                    self.trial_boots, self.version
                ));
            }
        }
    }

    /// Moves to [`Phase::RollingBack`] with a reason.
    pub fn roll_back(&mut self, reason: String) {
        self.phase = Phase::RollingBack;
        self.reason = Some(reason);
    }
}

/// What to do at the start of a run of an A/B update, once [`on_slot`] has looked at the
/// booted slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotStep {
    /// Take the marker's step.
    Go,
    /// Reboot first: the new version is installed in the other slot and this boot is still
    /// the old one's (the reboot was not taken, or cut).
    Reboot,
}

/// Where an A/B update stands, seen from the slot the box `booted`: a power cut or a
/// bootloader that fell back can leave the marker behind what happened. Without a slot in the
/// marker (a package manager) nothing changes.
///
/// | marker | booted | meaning | then |
/// |---|---|---|---|
/// | `STAGED` | the new slot | the install went through and the box rebooted into it | `TRIAL` |
/// | `TRIAL`, no boot since | the old slot | installed, not rebooted yet | reboot |
/// | `TRIAL` or `COMMITTING`, a boot since | the old slot | the bootloader fell back | `ROLLING_BACK` |
/// | anything else | | as the marker says | |
/// Called after [`Marker::on_start`]; `now_ms` and `restarts` start a trial it finds.
pub fn on_slot(m: &mut Marker, booted: &str, now_ms: u64, restarts: u32) -> SlotStep {
    let Some(old) = m.slot.as_deref() else {
        return SlotStep::Go;
    };
    let in_old = booted == old;
    match m.phase {
        Phase::Staged if !in_old => {
            m.phase = Phase::Trial;
            m.trial_boots = m.trial_boots.max(1);
            m.trial_started_ms = now_ms;
            m.restarts_base = restarts;
            SlotStep::Go
        }
        Phase::Trial if in_old && m.trial_boots == 0 => SlotStep::Reboot,
        Phase::Trial | Phase::Committing if in_old => {
            m.roll_back(format!(
                "the bootloader fell back to slot {old} ({}): {} did not boot to its proof of health",
                m.previous_version, m.version
            ));
            SlotStep::Go
        }
        _ => SlotStep::Go,
    }
}

/// What to do about a version on trial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Keep watching.
    Wait,
    /// It proved health: commit.
    Commit,
    /// Put the previous version back, for this reason.
    RollBack(String),
}

/// What the installer sees of the agent during a trial.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Seen {
    /// The version in the agent's proof of health, if it wrote one.
    pub healthy: Option<String>,
    /// The agent unit's restart count.
    pub restarts: u32,
    /// The unit is in the failed state (its start limit hit, or it cannot start).
    pub failed: bool,
}

/// The verdict at `now_ms` on the trial `m`, with `deadline_ms` for the proof.
pub fn verdict(m: &Marker, seen: &Seen, now_ms: u64, deadline_ms: u64) -> Verdict {
    if seen.healthy.as_deref() == Some(m.version.as_str()) {
        return Verdict::Commit;
    }
    let crashes = seen.restarts.saturating_sub(m.restarts_base);
    if seen.failed {
        return Verdict::RollBack(format!("roombox.service failed running {}", m.version));
    }
    if crashes >= CRASH_LOOP {
        return Verdict::RollBack(format!(
            "{} crashed {crashes} times before it proved healthy",
            m.version
        ));
    }
    if now_ms.saturating_sub(m.trial_started_ms) >= deadline_ms {
        return Verdict::RollBack(format!(
            "{} did not prove healthy within {} (READY, media PLAYING, fleet CONNECTED, back in its room)",
            m.version,
            humantime::format_duration(std::time::Duration::from_millis(deadline_ms))
        ));
    }
    Verdict::Wait
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial() -> Marker {
        Marker {
            phase: Phase::Trial,
            version: "0.2.0".into(),
            previous_version: "0.1.0".into(),
            room: None,
            trial_started_ms: 1000,
            restarts_base: 4,
            boot_id: "boot-a".into(),
            trial_boots: 0,
            reason: None,
            slot: None,
        }
    }

    #[test]
    fn a_proof_for_this_version_commits_and_nothing_else_does() {
        let m = trial();
        let mut seen = Seen {
            restarts: 4,
            ..Seen::default()
        };
        assert_eq!(verdict(&m, &seen, 2000, 60_000), Verdict::Wait);
        seen.healthy = Some("0.1.0".into());
        assert_eq!(
            verdict(&m, &seen, 2000, 60_000),
            Verdict::Wait,
            "an old proof"
        );
        seen.healthy = Some("0.2.0".into());
        assert_eq!(verdict(&m, &seen, 2000, 60_000), Verdict::Commit);
    }

    #[test]
    fn a_crash_loop_a_failed_unit_or_the_deadline_rolls_back() {
        let m = trial();
        let crashing = Seen {
            restarts: 4 + CRASH_LOOP,
            ..Seen::default()
        };
        let Verdict::RollBack(why) = verdict(&m, &crashing, 2000, 60_000) else {
            panic!()
        };
        assert!(why.contains("crashed 3 times"), "{why}");
        let failed = Seen {
            restarts: 4,
            failed: true,
            ..Seen::default()
        };
        assert!(matches!(
            verdict(&m, &failed, 2000, 60_000),
            Verdict::RollBack(_)
        ));
        let quiet = Seen {
            restarts: 5,
            ..Seen::default()
        };
        assert_eq!(verdict(&m, &quiet, 60_999, 60_000), Verdict::Wait);
        let Verdict::RollBack(why) = verdict(&m, &quiet, 61_000, 60_000) else {
            panic!()
        };
        assert!(why.contains("within 1m"), "{why}");
    }

    #[test]
    fn a_new_boot_restarts_the_trial_and_too_many_give_it_up() {
        let mut m = trial();
        m.on_start("boot-a", 50_000, 9);
        assert_eq!(
            (m.trial_started_ms, m.restarts_base),
            (1000, 4),
            "same boot"
        );
        for boot in 1..=MAX_TRIAL_BOOTS {
            m.on_start(&format!("boot-{boot}"), 90_000, 0);
            assert_eq!(m.phase, Phase::Trial);
            assert_eq!((m.trial_started_ms, m.restarts_base), (90_000, 0));
        }
        m.on_start("boot-last", 99_000, 0);
        assert_eq!(m.phase, Phase::RollingBack);
        assert!(m.reason.unwrap().contains("restarted 4 times"));
        // Other phases just take the step again.
        let mut s = trial();
        s.phase = Phase::Staged;
        s.on_start("boot-b", 1, 1);
        assert_eq!(s.phase, Phase::Staged);
    }

    #[test]
    fn a_slot_update_follows_the_booted_slot() {
        let mut m = trial();
        m.slot = Some("A".into());
        // Installed into B, the reboot not taken yet: reboot.
        m.trial_boots = 0;
        assert_eq!(on_slot(&mut m, "A", 5000, 2), SlotStep::Reboot);
        assert_eq!(m.phase, Phase::Trial);
        // Booted into B: the trial goes on.
        m.trial_boots = 1;
        assert_eq!(on_slot(&mut m, "B", 5000, 2), SlotStep::Go);
        assert_eq!(m.phase, Phase::Trial);
        // Back in A after a boot: the bootloader fell back.
        assert_eq!(on_slot(&mut m, "A", 5000, 2), SlotStep::Go);
        assert_eq!(m.phase, Phase::RollingBack);
        assert!(
            m.reason
                .as_deref()
                .unwrap()
                .contains("fell back to slot A (0.1.0)"),
            "{:?}",
            m.reason
        );
        // A power cut after the install, before the marker said so: B runs, so it is on trial.
        let mut s = trial();
        s.slot = Some("A".into());
        s.phase = Phase::Staged;
        assert_eq!(on_slot(&mut s, "B", 5000, 2), SlotStep::Go);
        assert_eq!(s.phase, Phase::Trial);
        assert_eq!(
            (s.trial_started_ms, s.restarts_base, s.trial_boots),
            (5000, 2, 1),
            "its trial starts now"
        );
        // Still in A: install (again).
        s.phase = Phase::Staged;
        assert_eq!(on_slot(&mut s, "A", 5000, 2), SlotStep::Go);
        assert_eq!(s.phase, Phase::Staged);
        // Committing in B is committed; rolling back in either slot is the installer's step.
        s.phase = Phase::Committing;
        assert_eq!(on_slot(&mut s, "B", 5000, 2), SlotStep::Go);
        assert_eq!(s.phase, Phase::Committing);
        s.phase = Phase::RollingBack;
        assert_eq!(on_slot(&mut s, "B", 5000, 2), SlotStep::Go);
        assert_eq!(s.phase, Phase::RollingBack);
        // A package manager's marker has no slot: nothing changes.
        let mut d = trial();
        d.trial_boots = 0;
        assert_eq!(on_slot(&mut d, "A", 5000, 2), SlotStep::Go);
        assert_eq!(d, trial_with_boots(0));
    }

    fn trial_with_boots(n: u32) -> Marker {
        let mut m = trial();
        m.trial_boots = n;
        m
    }
}
