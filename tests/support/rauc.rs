//! A RAUC box for tests, the way RAUC's own tests make one: two file-backed slots, a custom
//! bootloader backend script that keeps the primary slot and each slot's boot attempts in
//! files, and the real `rauc service` on a private D-Bus. The test plays the firmware
//! ([`Rig::power_on`]): it boots the primary slot while it has attempts left, else the other
//! one, and starts `rauc service` for the slot it booted. Stopped on drop.

use roombox::command::UpdateManifest;
use roombox::update::install::{self, Outcome, Request};
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
pub fn unable() -> Option<String> {
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
pub fn slot_version(path: &Path) -> String {
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
pub struct Rig {
    dir: tempfile::TempDir,
    bus: Child,
    pub address: String,
    service: RefCell<Option<Child>>,
    pub boots: Cell<u32>,
}

impl Rig {
    pub fn new() -> Rig {
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

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// The firmware: boots the primary slot while it has attempts left (taking one), else the
    /// other; then `rauc service` starts for it. The booted bootname.
    pub fn power_on(&self) -> String {
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
    pub fn rauc_status(&self) -> Option<serde_json::Value> {
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
    pub fn boot_status(&self, slot: &str) -> String {
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
    pub fn request(&self, signer: &str, fleet: &ed25519_dalek::SigningKey) {
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

    pub fn outcome(&self) -> Option<Outcome> {
        install::read_json(&self.path("agent").join(install::OUTCOME))
    }

    pub fn reboots(&self) -> usize {
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
