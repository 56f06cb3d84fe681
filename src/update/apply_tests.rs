//! The installer's steps against a stand-in machine (a `.deb` here is a text file "name
//! version"), with power cuts (a panic mid-step) at each step and a new boot after each.

use super::*;
use crate::command::UpdateManifest;
use crate::update::deb::{Deb, Packages};
use std::cell::{Cell, RefCell};

/// What the agent does at each look of the trial.
type AgentAct = Box<dyn Fn(&Machine)>;

#[derive(Default)]
struct Machine {
    installed: RefCell<String>,
    installs: RefCell<Vec<String>>,
    restarts: Cell<u32>,
    boot: RefCell<String>,
    clock: Cell<u64>,
    /// Panic (a power cut) at the install of this version.
    cut_install: RefCell<Option<String>>,
    /// What the agent does at each pause of the trial.
    agent: RefCell<Option<AgentAct>>,
    agent_dir: RefCell<PathBuf>,
    pauses: Cell<u32>,
    /// Whether the trial note was there at each install (the agent dpkg starts reads it).
    trial_at_install: RefCell<Vec<bool>>,
    /// Whether the agent's request was still there when the previous package was kept.
    request_at_keep: RefCell<Vec<bool>>,
    /// Panic (a power cut) while the previous package is kept.
    cut_keep: Cell<bool>,
}

impl Packages for Machine {
    fn installed_version(&self) -> Option<String> {
        Some(self.installed.borrow().clone())
    }
    fn deb_field(&self, deb: &Path, field: &str) -> Result<String, String> {
        let text = std::fs::read_to_string(deb).map_err(|e| e.to_string())?;
        let (name, version) = text.trim().split_once(' ').ok_or("not a package")?;
        Ok(if field == "Package" { name } else { version }.to_string())
    }
    fn install(&self, deb: &Path) -> Result<(), String> {
        let version = self.deb_field(deb, "Version")?;
        if self.cut_install.borrow().as_deref() == Some(version.as_str()) {
            *self.cut_install.borrow_mut() = None;
            panic!("power cut while dpkg installs {version}");
        }
        self.installs.borrow_mut().push(version.clone());
        let note = self.agent_dir.borrow().join(install::TRIAL);
        self.trial_at_install.borrow_mut().push(note.exists());
        *self.installed.borrow_mut() = version;
        Ok(())
    }
    fn keep_installed(&self, out: &Path) -> Result<(), String> {
        let request = self.agent_dir.borrow().join(install::REQUEST);
        self.request_at_keep.borrow_mut().push(request.exists());
        if self.cut_keep.replace(false) {
            panic!("power cut while the previous package is kept");
        }
        std::fs::write(out, format!("roombox {}", self.installed.borrow()))
            .map_err(|e| e.to_string())
    }
}

impl System for Machine {
    fn unit(&self) -> (u32, bool) {
        (self.restarts.get(), false)
    }
    fn restart_unit(&self) {}
    fn boot_id(&self) -> String {
        self.boot.borrow().clone()
    }
    fn now_ms(&self) -> u64 {
        self.clock.get()
    }
    fn pause(&self) {
        self.pauses.set(self.pauses.get() + 1);
        self.clock.set(self.clock.get() + 1000);
        if let Some(agent) = self.agent.borrow().as_ref() {
            agent(self);
        }
    }
}

struct Rig {
    dir: tempfile::TempDir,
    installer: Installer<Machine, Deb>,
    manifest: UpdateManifest,
}

/// An installed 0.1.0 and a request for 0.2.0 (unsigned, allowed).
fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let agent = dir.path().join("agent");
    std::fs::create_dir_all(&agent).unwrap();
    let package = agent.join("new.deb");
    std::fs::write(&package, "roombox 0.2.0").unwrap();
    let manifest = UpdateManifest {
        version: "0.2.0".into(),
        url: "http://127.0.0.1:1/p.deb".into(),
        size: 13,
        sha256: super::super::download::sha256_file(&package).unwrap(),
        signature: None,
    };
    let req = Request {
        manifest: manifest.clone(),
        package,
        room: None,
    };
    install::write_json(&agent.join(install::REQUEST), &req).unwrap();
    let mut config = Config::default();
    config.update.allow_unsigned = true;
    config.update.health_deadline = Duration::from_secs(30);
    let sys = Machine::default();
    *sys.installed.borrow_mut() = "0.1.0".into();
    *sys.boot.borrow_mut() = "boot-1".into();
    *sys.agent_dir.borrow_mut() = agent.clone();
    Rig {
        installer: Installer {
            sys,
            method: Deb,
            root: dir.path().join("root"),
            agent,
            config,
        },
        dir,
        manifest,
    }
}

/// The new agent proves health at its second look.
fn healthy_agent(m: &Machine) {
    if m.pauses.get() >= 2 && *m.installed.borrow() == "0.2.0" {
        let dir = m.agent_dir.borrow().clone();
        let trial: Trial = install::read_json(&dir.join(install::TRIAL)).expect("a trial note");
        std::fs::write(dir.join(install::HEALTHY), trial.version).unwrap();
    }
}

fn outcome(r: &Rig) -> Option<Outcome> {
    install::read_json(&r.installer.agent.join(install::OUTCOME))
}

fn new_boot(r: &Rig, id: &str) {
    *r.installer.sys.boot.borrow_mut() = id.into();
}

#[test]
fn a_healthy_new_version_is_committed_and_kept_for_next_time() {
    let r = rig();
    *r.installer.sys.agent.borrow_mut() = Some(Box::new(healthy_agent));
    assert_eq!(r.installer.run(), Ok(Ran::Committed("0.2.0".into())));
    assert_eq!(*r.installer.sys.installs.borrow(), vec!["0.2.0"]);
    let root = &r.installer.root;
    assert_eq!(
        std::fs::read_to_string(root.join("current.deb")).unwrap(),
        "roombox 0.2.0"
    );
    assert!(!root.join("previous.deb").exists() && !root.join("marker.json").exists());
    for f in [
        install::REQUEST,
        install::TRIAL,
        install::HEALTHY,
        install::OUTCOME,
    ] {
        assert!(!r.installer.agent.join(f).exists(), "{f} left behind");
    }
    assert_eq!(r.installer.run(), Ok(Ran::Nothing), "nothing more to do");
}

#[test]
fn a_crash_loop_rolls_back_and_the_agent_is_told_why() {
    let r = rig();
    *r.installer.sys.agent.borrow_mut() =
        Some(Box::new(|m: &Machine| m.restarts.set(m.restarts.get() + 1)));
    let Ok(Ran::RolledBack(why)) = r.installer.run() else {
        panic!()
    };
    assert!(why.contains("crashed 3 times"), "{why}");
    assert_eq!(*r.installer.sys.installs.borrow(), vec!["0.2.0", "0.1.0"]);
    assert_eq!(
        *r.installer.sys.trial_at_install.borrow(),
        vec![true, false],
        "the new agent finds its trial note; the previous one does not"
    );
    let o = outcome(&r).unwrap();
    assert_eq!(
        (o.state, o.version.as_str()),
        (UpdatePhase::RolledBack, "0.2.0")
    );
    assert_eq!(
        std::fs::read_to_string(r.installer.root.join("current.deb")).unwrap(),
        "roombox 0.1.0",
        "the running version's package is kept for the next update"
    );
    assert!(!r.installer.agent.join(install::TRIAL).exists());
}

#[test]
fn no_proof_within_the_deadline_rolls_back() {
    let r = rig();
    let Ok(Ran::RolledBack(why)) = r.installer.run() else {
        panic!()
    };
    assert!(why.contains("did not prove healthy within 30s"), "{why}");
    assert_eq!(r.installer.sys.pauses.get(), 30);
}

#[test]
fn a_bad_request_is_refused_before_anything_is_installed() {
    // The package changed after the agent checked it.
    let r = rig();
    std::fs::write(r.installer.agent.join("new.deb"), "roombox 0.2.1").unwrap();
    let Ok(Ran::Refused(why)) = r.installer.run() else {
        panic!()
    };
    assert!(why.contains("SHA-256"), "{why}");
    assert!(r.installer.sys.installs.borrow().is_empty());
    assert_eq!(outcome(&r).unwrap().state, UpdatePhase::Failed);
    assert!(!r.installer.agent.join(install::REQUEST).exists());

    // Unsigned, with unsigned not allowed by the root's configuration.
    let mut r = rig();
    r.installer.config.update.allow_unsigned = false;
    let Ok(Ran::Refused(why)) = r.installer.run() else {
        panic!()
    };
    assert!(why.contains("not signed"), "{why}");

    // Another package, or another version than the manifest says.
    let r = rig();
    let other = r.installer.agent.join("new.deb");
    std::fs::write(&other, "evilbox 0.2.0").unwrap();
    let mut req: Request = install::read_json(&r.installer.agent.join(install::REQUEST)).unwrap();
    req.manifest.sha256 = super::super::download::sha256_file(&other).unwrap();
    install::write_json(&r.installer.agent.join(install::REQUEST), &req).unwrap();
    let Ok(Ran::Refused(why)) = r.installer.run() else {
        panic!()
    };
    assert!(why.contains("evilbox"), "{why}");
    let _ = (&r.dir, &r.manifest);
}

fn cut(r: &Rig) -> bool {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| r.installer.run())).is_err()
}

#[test]
fn a_power_cut_during_the_install_installs_again_at_the_next_boot() {
    let r = rig();
    *r.installer.sys.cut_install.borrow_mut() = Some("0.2.0".into());
    assert!(cut(&r));
    let m: Marker = install::read_json(&r.installer.root.join("marker.json")).unwrap();
    assert_eq!(m.phase, Phase::Staged);
    new_boot(&r, "boot-2");
    *r.installer.sys.agent.borrow_mut() = Some(Box::new(healthy_agent));
    assert_eq!(r.installer.run(), Ok(Ran::Committed("0.2.0".into())));
}

#[test]
fn a_power_cut_during_the_trial_starts_it_again_and_too_many_roll_back() {
    let r = rig();
    *r.installer.sys.agent.borrow_mut() = Some(Box::new(|m: &Machine| {
        if m.pauses.get() == 3 {
            panic!("power cut during the trial");
        }
    }));
    assert!(cut(&r));
    // The next boot: the trial begins again, and this time the agent proves health.
    new_boot(&r, "boot-2");
    r.installer.sys.pauses.set(0);
    *r.installer.sys.agent.borrow_mut() = Some(Box::new(healthy_agent));
    assert_eq!(r.installer.run(), Ok(Ran::Committed("0.2.0".into())));

    // A version that takes the box down at every boot is given up.
    let r = rig();
    *r.installer.sys.agent.borrow_mut() = Some(Box::new(|_: &Machine| panic!("the box dies")));
    assert!(cut(&r));
    for boot in 2..=4 {
        new_boot(&r, &format!("boot-{boot}"));
        assert!(cut(&r), "boot {boot}");
    }
    new_boot(&r, "boot-5");
    let Ok(Ran::RolledBack(why)) = r.installer.run() else {
        panic!()
    };
    assert!(why.contains("restarted 4 times"), "{why}");
    assert_eq!(*r.installer.sys.installed.borrow(), "0.1.0");
}

#[test]
fn a_power_cut_during_the_rollback_rolls_back_again() {
    let r = rig();
    *r.installer.sys.cut_install.borrow_mut() = Some("0.1.0".into());
    assert!(cut(&r), "cut while putting 0.1.0 back after no proof");
    let m: Marker = install::read_json(&r.installer.root.join("marker.json")).unwrap();
    assert_eq!(m.phase, Phase::RollingBack);
    new_boot(&r, "boot-2");
    assert!(matches!(r.installer.run(), Ok(Ran::RolledBack(_))));
    assert_eq!(*r.installer.sys.installed.borrow(), "0.1.0");
    assert_eq!(outcome(&r).unwrap().state, UpdatePhase::RolledBack);
}

#[test]
fn the_request_is_taken_before_the_slow_checks_and_survives_a_power_cut_in_them() {
    let r = rig();
    r.installer.sys.cut_keep.set(true);
    assert!(cut(&r));
    // The agent saw its request taken before the installer kept the previous package.
    assert_eq!(*r.installer.sys.request_at_keep.borrow(), vec![false]);
    assert!(!r.installer.agent.join(install::REQUEST).exists());
    new_boot(&r, "boot-2");
    *r.installer.sys.agent.borrow_mut() = Some(Box::new(healthy_agent));
    assert_eq!(r.installer.run(), Ok(Ran::Committed("0.2.0".into())));
    assert_eq!(
        *r.installer.sys.installs.borrow(),
        vec!["0.2.0".to_string()]
    );
    assert_eq!(r.installer.run(), Ok(Ran::Nothing));
}
