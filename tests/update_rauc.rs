//! The RAUC update method (`update.method = "rauc"`) the way RAUC's own tests run it: two
//! file-backed slots, a custom bootloader backend script that keeps the primary slot and each
//! slot's boot attempts in files, and the real `rauc service` on a private D-Bus. The test plays
//! the firmware: at each "power on" it boots the primary slot while it has attempts left, else
//! the other one, and starts `rauc service` for the slot it booted.
//!
//! - a good bundle goes into slot B, the box reboots into it, the new agent proves health and the
//!   installer marks B good: B booted, primary and good;
//! - no proof within the deadline: the installer marks B bad and reboots into A, which reports
//!   ROLLED_BACK with the reason;
//! - a new slot that never gets to its installer: the bootloader's counter falls back to A by
//!   itself, and the run there reports ROLLED_BACK;
//! - a bundle signed by another CA is refused by `rauc info` before anything is written to a
//!   slot (slot B's bytes, the bootloader's state and log unchanged), reported FAILED.
//!
//! Needs `rauc` and `mksquashfs` (scripts/setup.sh installs both) and root (rauc mounts the
//! bundle on a loop device).

use roombox::command::UpdateManifest;
use roombox::config::Config;
use roombox::event::UpdatePhase;
use roombox::update::apply::{Installer, Ran, System};
use roombox::update::install::{self, Outcome, Request, Trial};
use roombox::update::rauc::Rauc;
use std::cell::{Cell, RefCell};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The custom bootloader backend: `primary`, `attempts.<bootname>` and `booted` in `boot/`
/// beside it; a slot is good while it has attempts left. Every call is logged.
const BOOTLOADER: &str = r#"#!/bin/sh
set -eu
d="$(dirname "$0")/boot"
echo "$*" >> "$d/log"
case "$1" in
  get-primary) cat "$d/primary" ;;
  set-primary) echo "$2" > "$d/primary"; echo 3 > "$d/attempts.$2" ;;
  get-state) if [ "$(cat "$d/attempts.$2")" -gt 0 ]; then echo good; else echo bad; fi ;;
  set-state) if [ "$3" = good ]; then echo 3 > "$d/attempts.$2"; else echo 0 > "$d/attempts.$2"; fi ;;
  get-current) cat "$d/booted" ;;
  *) echo "unknown command $1" >&2; exit 1 ;;
esac
"#;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether the machine can run the test; the reason when not.
fn unable() -> Option<String> {
    if Command::new("rauc").arg("--version").output().is_err() {
        return Some("rauc is not installed (scripts/setup.sh installs it)".into());
    }
    if Command::new("mksquashfs").arg("-version").output().is_err() {
        return Some("mksquashfs is not installed (squashfs-tools; scripts/setup.sh)".into());
    }
    if !nix::unistd::geteuid().is_root() {
        return Some("rauc mounts the bundle on a loop device: run as root".into());
    }
    None
}

/// An ext4 image of 4 MiB holding `/roombox-version`.
fn image(path: &Path, version: &str) {
    let tree = path.with_extension("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("roombox-version"), format!("{version}\n")).unwrap();
    let f = std::fs::File::create(path).unwrap();
    f.set_len(4 << 20).unwrap();
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-d"])
        .arg(&tree)
        .arg(path));
}

/// The version in a slot's image, as the agent booted from it reports it.
fn slot_version(path: &Path) -> String {
    run(Command::new("debugfs")
        .args(["-R", "cat /roombox-version"])
        .arg(path)
        .stderr(Stdio::null()))
    .trim()
    .to_string()
}

/// An openssl key and certificate, self-signed (a CA) or signed by `ca`.
fn cert(dir: &Path, name: &str, ca: Option<&str>) {
    let (key, pem) = (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.pem")),
    );
    let mut c = Command::new("openssl");
    c.args(["req", "-newkey", "rsa:2048", "-nodes", "-keyout"])
        .arg(&key)
        .args(["-subj", &format!("/CN=roombox test {name}")]);
    match ca {
        None => {
            c.args(["-x509", "-days", "2", "-out"]).arg(&pem).args([
                "-addext",
                "basicConstraints=critical,CA:true",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ]);
            run(c.stderr(Stdio::null()));
        }
        Some(ca) => {
            let csr = dir.join(format!("{name}.csr"));
            run(c.arg("-out").arg(&csr).stderr(Stdio::null()));
            run(Command::new("openssl")
                .args(["x509", "-req", "-days", "2", "-in"])
                .arg(&csr)
                .arg("-CA")
                .arg(dir.join(format!("{ca}.pem")))
                .arg("-CAkey")
                .arg(dir.join(format!("{ca}.key")))
                .arg("-CAcreateserial")
                .arg("-out")
                .arg(&pem)
                .stderr(Stdio::null()));
        }
    }
}

/// The box: slots, bootloader state, the bus and `rauc service` for the booted slot.
struct Rig {
    dir: tempfile::TempDir,
    bus: Child,
    address: String,
    service: RefCell<Option<Child>>,
    boots: Cell<u32>,
}

impl Rig {
    fn new() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        cert(d, "ca", None);
        cert(d, "signer", Some("ca"));
        cert(d, "stranger", None);
        image(&d.join("slotA.img"), "0.1.0");
        std::fs::File::create(d.join("slotB.img"))
            .unwrap()
            .set_len(4 << 20)
            .unwrap();
        let boot = d.join("boot");
        std::fs::create_dir_all(&boot).unwrap();
        for (f, v) in [("primary", "A"), ("attempts.A", "3"), ("attempts.B", "0")] {
            std::fs::write(boot.join(f), format!("{v}\n")).unwrap();
        }
        let script = d.join("bootloader.sh");
        std::fs::write(&script, BOOTLOADER).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(
            d.join("reboot.sh"),
            "#!/bin/sh\necho reboot >> \"$(dirname \"$0\")/reboots\"\n",
        )
        .unwrap();
        std::fs::set_permissions(d.join("reboot.sh"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::fs::write(
            d.join("system.conf"),
            format!(
                "[system]\ncompatible=roombox-test-box\nbootloader=custom\nmountprefix={d}/mnt\n\
                 data-directory={d}/data\nbundle-formats=plain\n\n[keyring]\npath={d}/ca.pem\n\n\
                 [handlers]\nbootloader-custom-backend={d}/bootloader.sh\n\n\
                 [slot.rootfs.0]\ndevice={d}/slotA.img\ntype=raw\nbootname=A\n\n\
                 [slot.rootfs.1]\ndevice={d}/slotB.img\ntype=raw\nbootname=B\n",
                d = d.display()
            ),
        )
        .unwrap();
        for sub in ["mnt", "data", "agent", "root"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let mut bus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address"])
            .arg(format!("--address=unix:path={}/bus", d.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon");
        let mut address = String::new();
        BufReader::new(bus.stdout.take().unwrap())
            .read_line(&mut address)
            .unwrap();
        let rig = Rig {
            address: address.trim().to_string(),
            dir,
            bus,
            service: RefCell::new(None),
            boots: Cell::new(0),
        };
        rig.power_on();
        rig
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// The firmware: boots the primary slot while it has attempts left (taking one), else the
    /// other; then `rauc service` starts for it. The booted bootname.
    fn power_on(&self) -> String {
        if let Some(mut s) = self.service.borrow_mut().take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        let primary = self.read("boot/primary");
        let other = if primary == "A" { "B" } else { "A" };
        let booted = [primary.as_str(), other]
            .into_iter()
            .find(|s| {
                self.read(&format!("boot/attempts.{s}"))
                    .parse::<u32>()
                    .unwrap()
                    > 0
            })
            .expect("no slot left to boot")
            .to_string();
        let left: u32 = self
            .read(&format!("boot/attempts.{booted}"))
            .parse()
            .unwrap();
        std::fs::write(
            self.path(&format!("boot/attempts.{booted}")),
            format!("{}\n", left - 1),
        )
        .unwrap();
        std::fs::write(self.path("boot/booted"), format!("{booted}\n")).unwrap();
        self.boots.set(self.boots.get() + 1);
        let child = Command::new("rauc")
            .arg("service")
            .arg(format!("--conf={}", self.path("system.conf").display()))
            .arg(format!("--override-boot-slot={booted}"))
            .env("DBUS_SYSTEM_BUS_ADDRESS", &self.address)
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(self.path(&format!("service-{}.log", self.boots.get())))
                    .unwrap(),
            )
            .spawn()
            .expect("rauc service");
        *self.service.borrow_mut() = Some(child);
        let t = Instant::now();
        while self.rauc_status().is_none() {
            assert!(
                t.elapsed() < Duration::from_secs(15),
                "rauc service did not come up"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        booted
    }

    /// `rauc status --output-format=json`, once the service answers.
    fn rauc_status(&self) -> Option<serde_json::Value> {
        let out = Command::new("rauc")
            .args(["status", "--output-format=json"])
            .env("DBUS_SYSTEM_BUS_ADDRESS", &self.address)
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).ok())
            .flatten()
    }

    /// A slot's `boot_status` in `rauc status`.
    fn boot_status(&self, slot: &str) -> String {
        let status = self.rauc_status().unwrap();
        status["slots"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|s| s.get(slot))
            .unwrap_or_else(|| panic!("no {slot} in {status}"))["boot_status"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// A plain bundle of version 0.2.0 signed by `signer`, and its manifest signed by the
    /// fleet key; the request for it left in the agent's directory.
    fn request(&self, signer: &str, fleet: &ed25519_dalek::SigningKey) {
        let content = self.path(&format!("bundle-{signer}"));
        std::fs::create_dir_all(&content).unwrap();
        image(&content.join("rootfs.ext4"), "0.2.0");
        std::fs::remove_dir_all(content.join("rootfs.tree")).unwrap();
        std::fs::write(
            content.join("manifest.raucm"),
            "[update]\ncompatible=roombox-test-box\nversion=0.2.0\n\n[bundle]\nformat=plain\n\n\
             [image.rootfs]\nfilename=rootfs.ext4\n",
        )
        .unwrap();
        let bundle = self.path("agent/roombox-0.2.0.raucb");
        let _ = std::fs::remove_file(&bundle);
        run(Command::new("rauc")
            .arg("bundle")
            .arg(format!(
                "--cert={}",
                self.path(&format!("{signer}.pem")).display()
            ))
            .arg(format!(
                "--key={}",
                self.path(&format!("{signer}.key")).display()
            ))
            .arg(&content)
            .arg(&bundle));
        let mut manifest = UpdateManifest {
            version: "0.2.0".into(),
            url: "https://updates.example/roombox-0.2.0.raucb".into(),
            size: std::fs::metadata(&bundle).unwrap().len(),
            sha256: roombox::update::download::sha256_file(&bundle).unwrap(),
            signature: None,
        };
        roombox::update::manifest::sign(&mut manifest, fleet);
        let req = Request {
            manifest,
            package: bundle,
            room: None,
        };
        install::write_json(&self.path("agent").join(install::REQUEST), &req).unwrap();
    }

    fn outcome(&self) -> Option<Outcome> {
        install::read_json(&self.path("agent").join(install::OUTCOME))
    }

    fn reboots(&self) -> usize {
        self.read("reboots").lines().count()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Some(mut s) = self.service.borrow_mut().take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        let _ = self.bus.kill();
        let _ = self.bus.wait();
    }
}

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
    assert!(!rig.path("root/marker.json").exists());
    assert!(!rig.path("agent").join(install::TRIAL).exists());
}
