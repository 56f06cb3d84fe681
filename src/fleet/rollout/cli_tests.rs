use super::*;
use serde_json::json;

fn rollout_event(state: &str, bucket: u64) -> serde_json::Value {
    json!({"event": "rollout-state-changed", "rolloutId": "r1", "version": "0.2.0",
           "percent": 10, "bucket": bucket, "state": state})
}

fn update_event(state: &str) -> serde_json::Value {
    json!({"event": "update-state-changed", "version": "0.2.0", "state": state})
}

#[test]
fn the_table_follows_each_box_and_counts_rollbacks() {
    let mut p = Progress::new("r1", "0.2.0");
    assert!(!p.settled(), "nobody answered yet");
    assert!(p.on_event("box-a", &rollout_event("NOT_SELECTED", 9000)));
    assert!(p.on_event("box-b", &rollout_event("STARTED", 10)));
    assert!(!p.settled(), "box-b is updating");
    assert!(p.on_event("box-b", &update_event("DOWNLOADING")));
    assert!(p.on_event("box-b", &update_event("HEALTHY")));
    assert!(p.settled());
    // Progress can come before the box's rollout event: it is shown once that comes.
    assert!(!p.on_event("box-c", &update_event("INSTALLING")));
    assert!(!p.rows.contains_key("box-c"));
    assert!(p.on_event("box-c", &rollout_event("STARTED", 20)));
    assert_eq!(p.rows["box-c"].update, Some(UpdatePhase::Installing));
    assert!(!p.settled());
    let mut rb = update_event("ROLLED_BACK");
    rb["reason"] = json!("no proof of health: media is not PLAYING");
    assert!(p.on_event("box-c", &rb));
    assert_eq!(p.rollbacks(), 1);
    assert!(p.settled());
    // Other rollouts and versions are not this table's.
    assert!(!p.on_event(
        "box-d",
        &json!({"event": "update-state-changed", "version": "0.3.0", "state": "HEALTHY"})
    ));
    let mut other = rollout_event("STARTED", 1);
    other["rolloutId"] = json!("r2");
    assert!(!p.on_event("box-d", &other));
    assert!(!p.on_event(
        "box-d",
        &json!({"event": "meeting-state-changed", "state": "CONNECTED"})
    ));
    let t = p.table();
    let lines: Vec<&str> = t.lines().collect();
    assert!(lines[0].starts_with("DEVICE"));
    assert!(
        lines[1].starts_with("box-a") && lines[1].contains("NOT_SELECTED"),
        "{t}"
    );
    assert!(
        lines[2].contains("STARTED") && lines[2].contains("HEALTHY"),
        "{t}"
    );
    assert!(
        lines[3].contains("ROLLED_BACK") && lines[3].contains("media is not PLAYING"),
        "{t}"
    );
    assert!(
        lines[4].starts_with("3 boxes answered: 2 started (1 HEALTHY, 1 ROLLED_BACK, 0 FAILED)"),
        "{t}"
    );
}

#[test]
fn a_later_stage_sees_what_earlier_ones_left_in_the_retained_state() {
    let mut p = Progress::new("r1", "0.2.0");
    // Retained states come first: one box rolled back in the 10 % stage, one is on another version.
    assert!(!p.on_state(
        "box-a",
        &json!({"update": {"state": "ROLLED_BACK", "version": "0.2.0"}})
    ));
    assert!(!p.on_state(
        "box-b",
        &json!({"update": {"state": "HEALTHY", "version": "0.1.9"}})
    ));
    assert_eq!(p.rollbacks(), 0, "not in this table until it answers");
    p.on_event("box-a", &rollout_event("STARTED", 5));
    assert_eq!(p.rollbacks(), 1);
    p.on_event("box-b", &rollout_event("SCHEDULED", 5000));
    assert_eq!(p.rows["box-b"].update, None);
    assert!(!p.settled());
    p.on_event("box-b", &rollout_event("HELD", 5000));
    assert!(p.settled());
}

fn args(percent: u32) -> UpdateArgs {
    UpdateArgs {
        group: "group/floor-4".into(),
        manifest: "m.json".into(),
        percent,
        rollout_id: None,
        max_rollbacks: 0,
        spread: Duration::from_secs(60),
        force: false,
        stop: false,
        wait: Duration::from_secs(1),
        settle: Duration::from_secs(1),
        live_tty: false,
    }
}

#[test]
fn the_record_is_checked_before_anything_is_published() {
    let m = super::super::tests::record(10).manifest;
    let sk = ed25519_dalek::SigningKey::from_bytes(&rand::random());
    let r = record(&args(10), m.clone(), Phase::Active, Some(&sk)).unwrap();
    assert_eq!(
        (r.group.as_str(), r.rollout_id.as_str()),
        ("floor-4", "0.2.0")
    );
    assert_eq!(r.spread_ms, 60_000);
    assert_eq!(r.verify(Some(&sk.verifying_key())), Ok(()));
    let e = record(&args(150), m.clone(), Phase::Active, None).unwrap_err();
    assert_eq!(e.to_string(), "--percent: percent: 150 is outside 0..=100");
    let mut a = args(10);
    a.rollout_id = Some("a b".into());
    assert!(record(&a, m.clone(), Phase::Active, None)
        .unwrap_err()
        .to_string()
        .starts_with("--rollout-id"));
    a = args(10);
    a.group = "a/b".into();
    assert!(record(&a, m, Phase::Active, None).is_err());
}

#[test]
fn the_manifest_file_is_read_as_sign_update_prints_it() {
    let dir = tempfile::tempdir().unwrap();
    let m = super::super::tests::record(10).manifest;
    let f = dir.path().join("m.json");
    std::fs::write(&f, json!({ "manifest": m }).to_string()).unwrap();
    assert_eq!(read_manifest(&f).unwrap(), m);
    std::fs::write(&f, serde_json::to_string(&m).unwrap()).unwrap();
    assert_eq!(read_manifest(&f).unwrap(), m);
    std::fs::write(
        &f,
        json!({"manifest": {"version": "0.2.0", "extra": 1}}).to_string(),
    )
    .unwrap();
    assert!(read_manifest(&f)
        .unwrap_err()
        .to_string()
        .contains("not an update manifest"));
    std::fs::write(&f, "nope").unwrap();
    assert!(read_manifest(&f)
        .unwrap_err()
        .to_string()
        .contains("not JSON"));
    assert!(read_manifest(&dir.path().join("missing")).is_err());
}
