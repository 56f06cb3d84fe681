//! The RAUC update method (`update.method = "rauc"`) the way RAUC's own tests run it: two
//! file-backed slots, a custom bootloader backend script that keeps the primary slot and each
//! slot's boot attempts in files, and the real `rauc service` on a private D-Bus
//! (`tests/support/rauc.rs`; the test plays the firmware and simulates the reboots).
//!
//! - a good bundle goes into slot B, the box reboots into it, the new agent proves health and the
//!   installer marks B good: B booted, primary and good;
//! - no proof within the deadline: the installer marks B bad and reboots into A, which reports
//!   ROLLED_BACK with the reason;
//! - a new slot that never gets to its installer: the bootloader's counter falls back to A by
//!   itself, and the run there reports ROLLED_BACK;
//! - a power cut after `rauc install` but before the marker said so: the run in B takes up the
//!   trial instead of installing again, into A;
//! - a bundle signed by another CA is refused by `rauc info` before anything is written to a
//!   slot (slot B's bytes, the bootloader's state and log unchanged), reported FAILED.
//!
//! Needs `rauc`, `mksquashfs` (scripts/setup.sh) and root (rauc mounts bundles on loop devices).

mod support;

use roombox::config::Config;
use roombox::event::UpdatePhase;
use roombox::update::apply::{Installer, Ran, System};
use roombox::update::install::{self, Trial};
use roombox::update::rauc::Rauc;
use std::time::{Duration, Instant};
use support::rauc::{slot_version, unable, Rig};

/// The machine the installer watches; the agent, when it runs, proves health with the version
/// in the slot it booted from.
struct Host<'a> {
    rig: &'a Rig,
    agent_proves: bool,
}

impl System for Host<'_> {
    fn unit(&self) -> (u32, bool) {
        (0, false)
    }
    fn restart_unit(&self) {}
    fn boot_id(&self) -> String {
        format!("boot-{}", self.rig.boots.get())
    }
    fn pause(&self) {
        std::thread::sleep(Duration::from_millis(100));
        let agent = self.rig.path("agent");
        let trial = install::read_json::<Trial>(&agent.join(install::TRIAL));
        if self.agent_proves && trial.is_some() && !agent.join(install::HEALTHY).exists() {
            let slot = format!("slot{}.img", self.rig.read("boot/booted"));
            let running = slot_version(&self.rig.path(&slot));
            install::write_atomic(&agent.join(install::HEALTHY), running.as_bytes()).unwrap();
        }
    }
}

/// The installer as `roombox update-apply` makes it for `method = "rauc"`, with the fleet key.
fn installer<'a>(rig: &'a Rig, public: &str, proves: bool) -> Installer<Host<'a>, Rauc> {
    let mut config = Config::default();
    config.fleet.signing.public_key = public.to_string();
    config.update.health_deadline = Duration::from_secs(3);
    Installer {
        sys: Host {
            rig,
            agent_proves: proves,
        },
        method: Rauc {
            rauc: "rauc".into(),
            conf: Some(rig.path("system.conf")),
            bus: Some(rig.address.clone()),
            reboot: vec![rig.path("reboot.sh").display().to_string()],
        },
        root: rig.path("root"),
        agent: rig.path("agent"),
        config,
    }
}

fn fleet_key() -> (ed25519_dalek::SigningKey, String) {
    let (private, public) = roombox::fleet::signing::generate();
    (
        roombox::config::parse_signing_key(&private).unwrap(),
        public,
    )
}

/// A new box, or none (said why) when the machine cannot run the test.
fn rig() -> Option<Rig> {
    if let Some(why) = unable() {
        eprintln!("SKIPPED: {why}");
        return None;
    }
    Some(Rig::new())
}

/// Installs 0.2.0 into slot B and reboots into it: the time the install took.
fn install_and_reboot(rig: &Rig, public: &str, proves: bool) -> Duration {
    let t = Instant::now();
    let ran = installer(rig, public, proves).run();
    let took = t.elapsed();
    assert_eq!(ran, Ok(Ran::Rebooting("0.2.0".into())));
    assert_eq!(rig.reboots(), 1, "the reboot command ran once");
    let status = rig.rauc_status().unwrap();
    assert_eq!(status["booted"], "A");
    assert_eq!(status["boot_primary"], "rootfs.1", "{status}");
    assert_eq!(slot_version(&rig.path("slotB.img")), "0.2.0");
    assert_eq!(slot_version(&rig.path("slotA.img")), "0.1.0");
    let trial: Trial = install::read_json(&rig.path("agent").join(install::TRIAL)).unwrap();
    assert_eq!(
        trial.old_slot.as_deref(),
        Some("A"),
        "the note is not for A's agent"
    );
    took
}

#[test]
fn a_good_bundle_is_installed_into_the_other_slot_and_marked_good_after_the_proof() {
    let Some(rig) = rig() else { return };
    let (key, public) = fleet_key();
    rig.request("signer", &key);
    let t = Instant::now();
    let install = install_and_reboot(&rig, &public, true);
    let r = Instant::now();
    assert_eq!(rig.power_on(), "B");
    let reboot = r.elapsed();
    let c = Instant::now();
    assert_eq!(
        installer(&rig, &public, true).run(),
        Ok(Ran::Committed("0.2.0".into()))
    );
    eprintln!(
        "rauc update: request to mark-good {:.2} s (install into slot B {:.2} s, simulated reboot {:.2} s, trial to mark-good {:.2} s)",
        t.elapsed().as_secs_f64(),
        install.as_secs_f64(),
        reboot.as_secs_f64(),
        c.elapsed().as_secs_f64()
    );
    let status = rig.rauc_status().unwrap();
    assert_eq!(
        (&status["booted"], &status["boot_primary"]),
        (&"B".into(), &"rootfs.1".into()),
        "{status}"
    );
    assert_eq!(rig.boot_status("rootfs.1"), "good");
    assert_eq!(
        rig.read("boot/attempts.B"),
        "3",
        "mark-good gave B its attempts back (the boot took one)"
    );
    assert!(rig
        .read("boot/log")
        .lines()
        .any(|l| l == "set-state B good"));
    assert!(!rig.path("root/marker.json").exists());
    assert!(!rig.path("agent").join(install::TRIAL).exists());
    assert_eq!(
        rig.outcome(),
        None,
        "the proved agent reports HEALTHY itself"
    );

    // The next boots stay in B: the installer confirms it each time.
    for _ in 0..3 {
        assert_eq!(rig.power_on(), "B");
        assert_eq!(installer(&rig, &public, true).run(), Ok(Ran::Nothing));
    }
    assert_eq!(rig.read("boot/attempts.B"), "3");
}

#[test]
fn a_power_cut_between_the_install_and_the_marker_does_not_install_over_the_old_slot() {
    let Some(rig) = rig() else { return };
    let (key, public) = fleet_key();
    rig.request("signer", &key);
    install_and_reboot(&rig, &public, true);
    // As if the power went after `rauc install` and before the marker said TRIAL.
    let marker = rig.path("root/marker.json");
    let text = std::fs::read_to_string(&marker).unwrap();
    std::fs::write(&marker, text.replace("\"TRIAL\"", "\"STAGED\"")).unwrap();
    assert_eq!(rig.power_on(), "B");
    let ran = installer(&rig, &public, true).run();
    assert_eq!(ran, Ok(Ran::Committed("0.2.0".into())));
    assert_eq!(
        slot_version(&rig.path("slotA.img")),
        "0.1.0",
        "A kept the old version"
    );
    assert_eq!(rig.boot_status("rootfs.1"), "good");
}

#[test]
fn no_proof_of_health_boots_the_old_slot_again_and_reports_rolled_back() {
    let Some(rig) = rig() else { return };
    let (key, public) = fleet_key();
    rig.request("signer", &key);
    install_and_reboot(&rig, &public, false);
    assert_eq!(rig.power_on(), "B");
    let t = Instant::now();
    assert_eq!(
        installer(&rig, &public, false).run(),
        Ok(Ran::Rebooting("0.2.0".into()))
    );
    let decided = t.elapsed();
    assert!(
        decided >= Duration::from_secs(3) && decided < Duration::from_secs(13),
        "the deadline is 3 s: {decided:?}"
    );
    assert_eq!(rig.reboots(), 2);
    assert_eq!(rig.boot_status("rootfs.1"), "bad");
    assert_eq!(rig.rauc_status().unwrap()["boot_primary"], "rootfs.0");
    assert_eq!(rig.power_on(), "A");
    let Ok(Ran::RolledBack(why)) = installer(&rig, &public, false).run() else {
        panic!("not rolled back")
    };
    assert!(why.contains("did not prove healthy within 3s"), "{why}");
    let o = rig.outcome().expect("an outcome for the agent in A");
    assert_eq!(
        (o.state, o.version.as_str(), o.reason.as_deref()),
        (UpdatePhase::RolledBack, "0.2.0", Some(why.as_str()))
    );
    let status = rig.rauc_status().unwrap();
    assert_eq!(
        (&status["booted"], &status["boot_primary"]),
        (&"A".into(), &"rootfs.0".into())
    );
    assert_eq!(rig.boot_status("rootfs.1"), "bad");
    assert_eq!(slot_version(&rig.path("slotA.img")), "0.1.0");
    assert!(!rig.path("root/marker.json").exists());
    eprintln!(
        "rauc rollback: no proof, decided {decided:.2?} after the trial began (deadline 3 s)"
    );
}

#[test]
fn a_slot_that_never_comes_up_is_left_by_the_bootloader_and_reported_rolled_back() {
    let Some(rig) = rig() else { return };
    let (key, public) = fleet_key();
    rig.request("signer", &key);
    install_and_reboot(&rig, &public, false);
    // B dies before its installer runs, three times; then the bootloader takes A.
    for _ in 0..3 {
        assert_eq!(rig.power_on(), "B");
    }
    assert_eq!(rig.power_on(), "A", "the bootloader fell back");
    let Ok(Ran::RolledBack(why)) = installer(&rig, &public, false).run() else {
        panic!("not rolled back")
    };
    assert!(why.contains("fell back to slot A"), "{why}");
    assert_eq!(rig.outcome().unwrap().state, UpdatePhase::RolledBack);
    let status = rig.rauc_status().unwrap();
    assert_eq!(
        (&status["booted"], &status["boot_primary"]),
        (&"A".into(), &"rootfs.0".into())
    );
    assert_eq!(rig.boot_status("rootfs.1"), "bad");
    assert_eq!(rig.reboots(), 1, "no reboot after the fallback");
}

#[test]
fn a_bundle_signed_by_another_ca_is_refused_before_a_slot_is_written() {
    let Some(rig) = rig() else { return };
    let (key, public) = fleet_key();
    // The manifest is the fleet's, the bundle is not signed by the keyring's CA.
    rig.request("stranger", &key);
    let slot_b = std::fs::read(rig.path("slotB.img")).unwrap();
    let log = rig.read("boot/log");
    let Ok(Ran::Refused(why)) = installer(&rig, &public, true).run() else {
        panic!("not refused")
    };
    assert!(
        why.contains("rauc info") && why.contains("signature"),
        "{why}"
    );
    assert_eq!(std::fs::read(rig.path("slotB.img")).unwrap(), slot_b);
    assert_eq!(rig.read("boot/log"), log, "the bootloader was not touched");
    assert_eq!(rig.rauc_status().unwrap()["boot_primary"], "rootfs.0");
    assert_eq!(rig.reboots(), 0);
    let o = rig.outcome().unwrap();
    assert_eq!(
        (o.state, o.version.as_str()),
        (UpdatePhase::Failed, "0.2.0")
    );
    assert!(!rig.path("root/marker.json").exists() && !rig.path("root/new.raucb").exists());
    assert!(!rig.path("agent").join(install::TRIAL).exists());
}
