//! The update rules, without I/O: checks, progress, the waiting rule, the hand-over, the proof.

use super::super::tests_support::emitted;
use super::super::*;
use super::*;
use crate::update::manifest::sign;
use ed25519_dalek::SigningKey;

const NOON_UTC: u64 = 1_780_000_000_000 - 1_780_000_000_000 % 86_400_000 + 12 * 3_600_000;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

fn config() -> Config {
    let mut c = Config::default();
    use base64::Engine;
    c.fleet.signing.public_key =
        base64::engine::general_purpose::STANDARD.encode(key().verifying_key().to_bytes());
    c.update.timezone = "UTC".into();
    c
}

fn manifest(version: &str) -> UpdateManifest {
    let mut m = UpdateManifest {
        version: version.into(),
        url: "http://127.0.0.1:1/roombox.deb".into(),
        size: 1000,
        sha256: "0f".repeat(32),
        signature: None,
    };
    sign(&mut m, &key());
    m
}

fn update(s: &mut StateMachine, m: &UpdateManifest, force: bool) -> Step {
    s.command(
        &Command::Update {
            manifest: m.clone(),
            force,
        },
        NOON_UTC,
    )
}

fn phases(fx: &[Effect]) -> Vec<(UpdatePhase, Option<String>)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Emit(Event::UpdateStateChanged { state, reason, .. }) => {
                Some((*state, reason.clone()))
            }
            _ => None,
        })
        .collect()
}

fn installs(fx: &[Effect]) -> bool {
    fx.iter()
        .any(|e| matches!(e, Effect::Update(UpdateAction::Install { .. })))
}

/// A machine whose download of 0.2.0 has just verified.
fn fetched(c: &Config, busy: impl FnOnce(&mut StateMachine)) -> (StateMachine, Vec<Effect>) {
    let mut s = StateMachine::new(c, "b".into());
    s.at(NOON_UTC);
    busy(&mut s);
    assert!(update(&mut s, &manifest("0.2.0"), false).reply.is_ok());
    let fx = s.update_notice(UpdateNotice::Fetched(Ok("/x/p.deb".into())), NOON_UTC);
    (s, fx)
}

fn in_a_call(s: &mut StateMachine) {
    s.state_mut().room = Some(crate::model::Room {
        room_id: "r1".into(),
        session_id: None,
    });
    s.state_mut().meeting_state = MeetingState::Connected;
}

#[test]
fn a_signed_manifest_starts_a_download_and_a_bad_one_changes_nothing() {
    let mut s = StateMachine::new(&config(), "b".into());
    let mut unsigned = manifest("0.2.0");
    unsigned.signature = None;
    let e = update(&mut s, &unsigned, false).reply.unwrap_err();
    assert_eq!(e.code, ErrorCode::Unauthorized);
    let mut tampered = manifest("0.2.0");
    tampered.size = 2000;
    assert!(update(&mut s, &tampered, false).effects.is_empty());
    assert_eq!(s.state().update, UpdateStatus::default(), "nothing changed");

    let step = update(&mut s, &manifest("0.2.0"), false);
    assert_eq!(step.reply.clone().result().unwrap()["signed"], true);
    assert_eq!(
        phases(&step.effects),
        vec![(UpdatePhase::Downloading, None)]
    );
    assert!(step
        .effects
        .iter()
        .any(|e| matches!(e, Effect::Update(UpdateAction::Fetch(m)) if m.version == "0.2.0")));
    let again = update(&mut s, &manifest("0.3.0"), false).reply.unwrap_err();
    assert_eq!(again.code, ErrorCode::InvalidState, "one update at a time");
}

#[test]
fn unsigned_passes_only_when_configured_and_the_running_version_needs_force() {
    let mut c = config();
    c.update.allow_unsigned = true;
    let mut s = StateMachine::new(&c, "b".into());
    let mut m = manifest("0.2.0");
    m.signature = None;
    assert_eq!(
        update(&mut s, &m, false).reply.result().unwrap()["signed"],
        false
    );
    let mut s = StateMachine::new(&config(), "b".into());
    let running = manifest(env!("CARGO_PKG_VERSION"));
    assert!(update(&mut s, &running, false)
        .reply
        .unwrap_err()
        .message
        .contains("force"));
    assert!(update(&mut s, &running, true).reply.is_ok());
}

#[test]
fn progress_is_reported_in_whole_percents_then_verifying() {
    let mut s = StateMachine::new(&config(), "b".into());
    update(&mut s, &manifest("0.2.0"), false);
    let fx = s.update_notice(
        UpdateNotice::Progress {
            done: 250,
            total: 1000,
        },
        1,
    );
    assert!(matches!(
        &fx[..],
        [Effect::Emit(Event::UpdateStateChanged {
            percent: Some(25),
            ..
        })]
    ));
    assert!(s
        .update_notice(
            UpdateNotice::Progress {
                done: 251,
                total: 1000
            },
            2
        )
        .is_empty());
    assert_eq!(s.state().update.percent, Some(25));
    let fx = s.update_notice(UpdateNotice::Verifying, 3);
    assert_eq!(phases(&fx), vec![(UpdatePhase::Verifying, None)]);
    let fx = s.update_notice(UpdateNotice::Fetched(Err("SHA-256 mismatch".into())), 4);
    assert_eq!(
        phases(&fx),
        vec![(UpdatePhase::Failed, Some("SHA-256 mismatch".into()))]
    );
    assert!(
        update(&mut s, &manifest("0.2.0"), false).reply.is_ok(),
        "a new try is taken"
    );
}

#[test]
fn an_idle_room_installs_at_once() {
    let (s, fx) = fetched(&config(), |_| {});
    assert_eq!(phases(&fx), vec![(UpdatePhase::Installing, None)]);
    assert!(installs(&fx));
    assert_eq!(s.state().update.state, UpdatePhase::Installing);
}

#[test]
fn a_call_a_recording_or_a_live_output_makes_it_wait_until_idle() {
    let (mut s, fx) = fetched(&config(), in_a_call);
    assert_eq!(
        phases(&fx),
        vec![(UpdatePhase::Waiting, Some("the room is in a call".into()))]
    );
    assert!(!installs(&fx));
    assert!(
        s.tick(NOON_UTC + 1000).is_empty(),
        "said once, not every tick"
    );
    s.state_mut().room = None;
    s.state_mut().meeting_state = MeetingState::Closed;
    s.state_mut().recording.state = ServiceState::Started;
    let fx = s.tick(NOON_UTC + 2000);
    assert_eq!(
        phases(&fx),
        vec![(UpdatePhase::Waiting, Some("the room is recording".into()))]
    );
    s.state_mut().recording.state = ServiceState::Stopped;
    s.state_mut().hls.state = ServiceState::Started;
    assert_eq!(room_busy(s.state()), Some("the room has a live output"));
    s.tick(NOON_UTC + 3000);
    s.state_mut().hls.state = ServiceState::Stopped;
    let fx = s.tick(NOON_UTC + 4000);
    assert_eq!(phases(&fx), vec![(UpdatePhase::Installing, None)]);
    assert!(installs(&fx));
}

#[test]
fn force_or_an_open_window_installs_in_a_call() {
    // force on the command
    let mut s = StateMachine::new(&config(), "b".into());
    in_a_call(&mut s);
    update(&mut s, &manifest("0.2.0"), true);
    let fx = s.update_notice(UpdateNotice::Fetched(Ok("/x/p.deb".into())), NOON_UTC);
    assert!(installs(&fx));
    let room = fx.iter().find_map(|e| match e {
        Effect::Update(UpdateAction::Install { room, .. }) => Some(room.clone()),
        _ => None,
    });
    assert_eq!(room, Some(Some("r1".into())), "the room to be back in");

    // force sent again while it waits
    let (mut s, _) = fetched(&config(), in_a_call);
    let fx = update(&mut s, &manifest("0.2.0"), true).effects;
    assert!(installs(&fx));

    // a window around noon UTC, and one that is not open
    let mut c = config();
    c.update.maintenance_windows = vec!["11:30-12:30".into()];
    let (_, fx) = fetched(&c, in_a_call);
    assert!(installs(&fx));
    c.update.maintenance_windows = vec!["02:00-05:00".into()];
    let (mut s, fx) = fetched(&c, in_a_call);
    assert!(!installs(&fx));
    assert!(
        installs(&s.tick(NOON_UTC + 15 * 3_600_000)),
        "03:00 the next night"
    );
}

#[test]
fn the_gate_is_a_plain_rule() {
    assert_eq!(install_gate(None, false, false), Ok(()));
    assert_eq!(install_gate(Some("busy"), false, false), Err("busy"));
    assert_eq!(install_gate(Some("busy"), true, false), Ok(()));
    assert_eq!(install_gate(Some("busy"), false, true), Ok(()));
}

#[test]
fn a_request_no_installer_takes_fails_and_is_withdrawn_and_a_stop_is_the_restart() {
    let (mut s, _) = fetched(&config(), |_| {});
    assert_eq!(
        s.tick(NOON_UTC + INSTALL_TIMEOUT_MS - 1),
        vec![Effect::Update(UpdateAction::Poll)],
        "asks whether the installer took it"
    );
    let fx = s.tick(NOON_UTC + INSTALL_TIMEOUT_MS);
    assert_eq!(phases(&fx)[0].0, UpdatePhase::Failed);
    assert!(fx.contains(&Effect::Update(UpdateAction::Withdraw)));

    let (mut s, _) = fetched(&config(), |_| {});
    s.update_notice(UpdateNotice::Taken, NOON_UTC + 1000);
    assert_eq!(
        phases(&s.tick(NOON_UTC + INSTALL_TIMEOUT_MS + 1)),
        vec![],
        "taken: no timeout"
    );
    let fx = s.drain();
    assert_eq!(phases(&fx), vec![(UpdatePhase::Restarting, None)]);

    // The installer refused it (a package changed after the check): the agent hears why.
    let (mut s, _) = fetched(&config(), |_| {});
    let fx = s.update_notice(
        UpdateNotice::Resumed(Resumed {
            outcome: Some((UpdatePhase::Failed, "0.2.0".into(), Some("SHA-256".into()))),
            ..Resumed::default()
        }),
        NOON_UTC + 2000,
    );
    assert_eq!(
        phases(&fx),
        vec![(UpdatePhase::Failed, Some("SHA-256".into()))]
    );
    assert!(s.tick(NOON_UTC + 3000).is_empty(), "no more polls");
}

#[test]
fn the_new_version_proves_health_then_tells_the_installer() {
    let mut c = config();
    c.fleet.broker = "mqtt://127.0.0.1:1".into();
    let mut s = StateMachine::new(&c, "b".into());
    let fx = s.update_notice(
        UpdateNotice::Resumed(Resumed {
            trial: Some("0.2.0".into()),
            room: None,
            outcome: None,
        }),
        1000,
    );
    assert_eq!(phases(&fx), vec![(UpdatePhase::Restarting, None)]);
    s.state_mut().media.state = MediaState::Playing;
    assert!(s.tick(2000).is_empty(), "the fleet is not connected yet");
    s.fleet_notice(FleetLink::Connecting {
        broker: c.fleet.broker.clone(),
        at_ms: 2400,
    });
    s.fleet_notice(FleetLink::Connected {
        broker: "mqtt://127.0.0.1:1883".into(),
        at_ms: 2500,
    });
    let fx = s.tick(3000);
    assert_eq!(phases(&fx), vec![(UpdatePhase::Healthy, None)]);
    assert!(fx.contains(&Effect::Update(UpdateAction::ProveHealthy {
        version: "0.2.0".into()
    })));
    assert!(s.tick(4000).is_empty(), "proved once");
}

#[test]
fn a_trial_that_was_in_a_room_rejoins_it_and_says_what_is_missing_past_the_deadline() {
    let mut s = StateMachine::new(&config(), "b".into());
    s.set_room_backend(true);
    let fx = s.update_notice(
        UpdateNotice::Resumed(Resumed {
            trial: Some("0.2.0".into()),
            room: Some("r1".into()),
            outcome: None,
        }),
        1000,
    );
    assert!(fx.iter().any(|e| matches!(e, Effect::Room(_))), "rejoins");
    s.state_mut().media.state = MediaState::Playing;
    assert!(s.tick(2000).is_empty(), "not back in the room yet");
    s.tick(1000 + 181_000);
    let why = s.state().update.reason.clone().unwrap();
    assert!(why.contains("not back in its room"), "{why}");
}

#[test]
fn a_rollback_left_by_the_installer_is_reported() {
    let mut s = state_for_outcome();
    let fx = s.update_notice(
        UpdateNotice::Resumed(Resumed {
            trial: None,
            room: None,
            outcome: Some((
                UpdatePhase::RolledBack,
                "0.2.0".into(),
                Some("crashed 5 times".into()),
            )),
        }),
        1,
    );
    assert_eq!(
        phases(&fx),
        vec![(UpdatePhase::RolledBack, Some("crashed 5 times".into()))]
    );
    assert_eq!(emitted(&fx), vec!["update-state-changed"]);
    assert_eq!(s.state().update.version.as_deref(), Some("0.2.0"));
}

fn state_for_outcome() -> StateMachine {
    StateMachine::new(&config(), "b".into())
}
