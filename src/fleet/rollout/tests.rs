use super::*;

pub(super) fn manifest() -> UpdateManifest {
    UpdateManifest {
        version: "0.2.0".into(),
        url: "http://127.0.0.1:1/roombox_0.2.0.deb".into(),
        size: 1000,
        sha256: "0f".repeat(32),
        signature: None,
    }
}

pub(super) fn record(percent: u32) -> Record {
    Record {
        rollout_id: "r1".into(),
        group: "floor-4".into(),
        percent,
        state: Phase::Active,
        issued_ms: 1_000,
        spread_ms: 0,
        force: false,
        manifest: manifest(),
        signature: None,
    }
}

#[test]
fn about_the_percent_of_boxes_is_selected_and_widening_keeps_them() {
    let devices: Vec<String> = (0..10_000).map(|i| format!("box-{i}")).collect();
    let mut previous: Vec<&String> = Vec::new();
    for percent in [0, 1, 10, 50, 100] {
        let now: Vec<&String> = devices
            .iter()
            .filter(|d| selected(d, "r1", percent))
            .collect();
        let want = devices.len() * percent as usize / 100;
        // A fair hash: within 1.5 points of the percent over 10,000 boxes.
        assert!(
            now.len().abs_diff(want) <= 150,
            "{percent} %: {} of 10000",
            now.len()
        );
        for d in &previous {
            assert!(now.contains(d), "{d} left the rollout at {percent} %");
        }
        previous = now;
    }
    assert!(devices.iter().all(|d| selected(d, "r1", 100)));
    assert!(!devices.iter().any(|d| selected(d, "r1", 0)));
    // Another rollout draws other boxes.
    let a: Vec<_> = devices.iter().filter(|d| selected(d, "r1", 10)).collect();
    let b: Vec<_> = devices.iter().filter(|d| selected(d, "r2", 10)).collect();
    let common = a.iter().filter(|d| b.contains(d)).count();
    assert!(common < a.len() / 4, "{common} of {} in both", a.len());
    // Stable: the bucket is a function of the two ids only.
    assert_eq!(bucket("box-1", "r1"), bucket("box-1", "r1"));
    assert!(devices.iter().all(|d| bucket(d, "r1") < BUCKETS));
}

#[test]
fn starts_spread_over_the_spread_by_bucket() {
    assert_eq!(start_delay_ms(0, 10, 60_000), 0);
    assert_eq!(start_delay_ms(500, 10, 60_000), 30_000);
    assert_eq!(start_delay_ms(999, 10, 60_000), 59_940);
    assert_eq!(start_delay_ms(5_000, 100, 10_000), 5_000);
    assert_eq!(start_delay_ms(5_000, 100, 0), 0);
    assert_eq!(start_delay_ms(9_999, 0, 10_000), 0);
    // A bucket above the bound (not selected) never waits past the spread.
    assert_eq!(start_delay_ms(9_999, 10, 1_000), 1_000);
}

#[test]
fn a_signed_record_verifies_and_any_change_breaks_it() {
    let sk = SigningKey::from_bytes(&rand::random());
    let pk = sk.verifying_key();
    let mut r = record(10);
    r.sign(&sk);
    assert_eq!(r.verify(Some(&pk)), Ok(()));
    type Change = fn(&mut Record);
    let changes: [Change; 8] = [
        |r| r.rollout_id = "r2".into(),
        |r| r.group = "lobby".into(),
        |r| r.percent = 100,
        |r| r.state = Phase::Stopped,
        |r| r.issued_ms += 1,
        |r| r.spread_ms = 5,
        |r| r.force = true,
        |r| r.manifest.version = "0.3.0".into(),
    ];
    for change in changes {
        let mut bad = r.clone();
        change(&mut bad);
        assert!(bad.verify(Some(&pk)).is_err(), "{bad:?}");
    }
    let mut unsigned = record(10);
    assert!(unsigned
        .verify(Some(&pk))
        .unwrap_err()
        .contains("not signed"));
    assert_eq!(
        unsigned.verify(None),
        Ok(()),
        "no key: taken as commands are"
    );
    unsigned.signature = Some("!!".into());
    assert!(unsigned.verify(Some(&pk)).is_err());
}

#[test]
fn bad_records_are_refused_naming_the_field() {
    let good = serde_json::to_value(record(10)).unwrap();
    assert!(parse(good.to_string().as_bytes()).is_ok());
    let cases: [(&str, serde_json::Value, &str); 9] = [
        (
            "percent",
            serde_json::json!(150),
            "percent: 150 is outside 0..=100",
        ),
        ("percent", serde_json::json!(-5), "percent: invalid value"),
        ("percent", serde_json::json!("ten"), "percent: invalid type"),
        (
            "state",
            serde_json::json!("PAUSED"),
            "state: unknown variant",
        ),
        ("rolloutId", serde_json::json!("a b"), "rolloutId: expected"),
        ("group", serde_json::json!("a/b"), "group: expected"),
        ("spreadMs", serde_json::json!(u64::MAX), "spreadMs:"),
        ("rampUp", serde_json::json!(1), "unknown field `rampUp`"),
        ("manifest", serde_json::json!({"version": "1"}), "manifest"),
    ];
    for (field, value, want) in cases {
        let mut v = good.clone();
        v[field] = value;
        let e = parse(v.to_string().as_bytes()).unwrap_err();
        assert!(e.contains(want), "{field}: {e}");
    }
    let mut v = good.clone();
    v["manifest"]["sha256"] = serde_json::json!("XY");
    assert!(parse(v.to_string().as_bytes())
        .unwrap_err()
        .starts_with("manifest.sha256"));
    assert!(parse(b"").is_err());
    assert!(parse(b"[1]").is_err());
}

#[test]
fn record_topics_name_their_group() {
    assert_eq!(topic("rb", "floor-4"), "rb/group/floor-4/rollout");
    assert_eq!(group_of("rb", "rb/group/floor-4/rollout"), Some("floor-4"));
    for other in [
        "rb/group/floor-4/cmd/update",
        "rb/group/a/b/rollout",
        "rb/box1/rollout",
        "rbx/group/floor-4/rollout",
    ] {
        assert_eq!(group_of("rb", other), None, "{other}");
    }
}
