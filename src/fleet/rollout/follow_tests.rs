use super::super::tests::record;
use super::*;

/// A device in rollout r1 at 10 % (`inside`), or one that is not.
fn device(inside: bool) -> String {
    (0..)
        .map(|i| format!("box-{i}"))
        .find(|d| selected(d, "r1", 10) == inside)
        .unwrap()
}

fn bytes(r: &Record) -> Vec<u8> {
    serde_json::to_vec(r).unwrap()
}

fn states(out: &[Out]) -> Vec<String> {
    out.iter()
        .map(|o| match o {
            Out::Event(e) => {
                let v: serde_json::Value = serde_json::from_str(e).unwrap();
                v["state"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("error: {}", v["message"]))
            }
            Out::Start { manifest, .. } => format!("start {}", manifest.version),
        })
        .collect()
}

#[test]
fn a_selected_box_starts_once_even_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE);
    let d = device(true);
    let mut f = Follower::open(&d, Some(path.clone()));
    let r = record(10);
    assert_eq!(
        states(&f.on_record("floor-4", &bytes(&r), None, "0.1.0", 5)),
        ["start 0.2.0"]
    );
    // The broker's re-delivery of the same record does nothing.
    assert!(f
        .on_record("floor-4", &bytes(&r), None, "0.1.0", 6)
        .is_empty());
    // After a restart (or a rollback to 0.1.0) the record is read again: it says it started.
    let mut f = Follower::open(&d, Some(path));
    assert_eq!(
        states(&f.on_record("floor-4", &bytes(&r), None, "0.1.0", 7)),
        ["STARTED"]
    );
    // Widening does not start it again either.
    let mut wide = record(100);
    wide.issued_ms += 10;
    assert_eq!(
        states(&f.on_record("floor-4", &bytes(&wide), None, "0.1.0", 8)),
        ["STARTED"]
    );
}

#[test]
fn a_box_outside_the_percent_waits_and_widening_takes_it() {
    let d = device(false);
    let mut f = Follower::open(&d, None);
    assert_eq!(
        states(&f.on_record("floor-4", &bytes(&record(10)), None, "0.1.0", 5)),
        ["NOT_SELECTED"]
    );
    let mut wide = record(100);
    wide.issued_ms = 2_000;
    assert_eq!(
        states(&f.on_record("floor-4", &bytes(&wide), None, "0.1.0", 6)),
        ["start 0.2.0"]
    );
    // A box that already runs the version says so and does nothing.
    let mut g = Follower::open(&d, None);
    assert_eq!(
        states(&g.on_record("floor-4", &bytes(&wide), None, "0.2.0", 6)),
        ["UP_TO_DATE"]
    );
}

#[test]
fn a_stop_holds_the_boxes_whose_turn_has_not_come() {
    let d = device(true);
    let mut f = Follower::open(&d, None);
    let mut r = record(100);
    r.spread_ms = 1_000_000;
    let delay = start_delay_ms(bucket(&d, "r1"), 100, r.spread_ms);
    assert!(delay > 0, "a box with bucket 0 would start at once");
    let out = f.on_record("floor-4", &bytes(&r), None, "0.1.0", 1_000);
    assert_eq!(states(&out), ["SCHEDULED"]);
    assert_eq!(f.next_due(), Some(1_000 + delay));
    assert!(f.due(1_000 + delay - 1).is_empty());
    let mut stop = r.clone();
    stop.state = Phase::Stopped;
    stop.issued_ms += 1;
    assert_eq!(
        states(&f.on_record("floor-4", &bytes(&stop), None, "0.1.0", 2_000)),
        ["HELD"]
    );
    assert_eq!(f.next_due(), None);
    assert!(f.due(u64::MAX).is_empty());

    // Without the stop, the turn comes and it starts.
    let mut g = Follower::open(&d, None);
    g.on_record("floor-4", &bytes(&r), None, "0.1.0", 1_000);
    assert_eq!(states(&g.due(1_000 + delay)), ["start 0.2.0"]);
    assert!(g.due(u64::MAX).is_empty(), "once");

    // A cleared record holds it too.
    let mut h = Follower::open(&d, None);
    h.on_record("floor-4", &bytes(&r), None, "0.1.0", 1_000);
    assert!(h.on_record("floor-4", b"", None, "0.1.0", 1_500).is_empty());
    assert!(h.due(u64::MAX).is_empty());
}

#[test]
fn bad_forged_misplaced_and_replayed_records_change_nothing() {
    let sk = ed25519_dalek::SigningKey::from_bytes(&rand::random());
    let pk = sk.verifying_key();
    let d = device(false);
    let mut f = Follower::open(&d, None);
    let mut r = record(10);
    r.issued_ms = 5_000;
    r.sign(&sk);
    assert_eq!(
        states(&f.on_record("floor-4", &bytes(&r), Some(&pk), "0.1.0", 5)),
        ["NOT_SELECTED"]
    );
    let mut bad = serde_json::to_value(&r).unwrap();
    bad["percent"] = serde_json::json!(101);
    let mut unknown = serde_json::to_value(&r).unwrap();
    unknown["batch"] = serde_json::json!(1);
    let mut unsigned = record(100);
    unsigned.issued_ms = 6_000;
    let mut forged = record(100);
    forged.issued_ms = 6_000;
    forged.sign(&ed25519_dalek::SigningKey::from_bytes(&rand::random()));
    let mut older = record(100);
    older.issued_ms = 4_000;
    older.sign(&sk);
    let cases: [(&str, Vec<u8>, &str); 6] = [
        (
            "floor-4",
            bad.to_string().into_bytes(),
            "percent: 101 is outside 0..=100",
        ),
        (
            "floor-4",
            unknown.to_string().into_bytes(),
            "unknown field `batch`",
        ),
        ("floor-4", bytes(&unsigned), "not signed"),
        ("floor-4", bytes(&forged), "does not verify"),
        ("floor-4", bytes(&older), "older than"),
        ("lobby", bytes(&r), "came on group lobby's topic"),
    ];
    for (group, payload, want) in cases {
        let out = f.on_record(group, &payload, Some(&pk), "0.1.0", 10);
        let s = states(&out);
        assert!(
            s.len() == 1 && s[0].starts_with("error") && s[0].contains(want),
            "{want}: {s:?}"
        );
    }
    // Nothing changed: the record in force is still the signed 10 % one.
    assert_eq!(f.record("r1"), Some(&r));
    assert!(f
        .on_record("floor-4", &bytes(&r), Some(&pk), "0.1.0", 11)
        .is_empty());
    assert_eq!(f.next_due(), None);
}

#[test]
fn the_answer_of_the_agent_is_reported() {
    let r = record(10);
    let ok = answer_event("b", &r, &Ok(serde_json::json!({"accepted": true})));
    assert!(ok.contains("\"state\":\"STARTED\""), "{ok}");
    let e = crate::command::CommandError::new(
        crate::command::ErrorCode::InvalidState,
        "an update to 0.3.0 is Waiting",
    );
    let refused = answer_event("b", &r, &Err(e));
    assert!(
        refused.contains("REFUSED") && refused.contains("0.3.0"),
        "{refused}"
    );
}
