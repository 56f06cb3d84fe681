use super::*;

#[test]
fn the_cli_is_well_formed_and_parses_targets() {
    use clap::CommandFactory;
    #[derive(clap::Parser)]
    struct Top {
        #[command(flatten)]
        fleet: FleetArgs,
    }
    Top::command().debug_assert();
    let top = <Top as clap::Parser>::try_parse_from([
        "fleet",
        "--broker",
        "mqtt://h:1",
        "send",
        "group/floor-4",
        "identify",
        "{\"seconds\":3}",
    ])
    .unwrap();
    let FleetCommand::Send {
        target,
        command,
        args,
        ..
    } = top.fleet.command
    else {
        panic!()
    };
    assert_eq!(To::parse(&target).unwrap(), To::Group("floor-4".into()));
    assert_eq!(
        (command.as_str(), args.as_deref()),
        ("identify", Some("{\"seconds\":3}"))
    );
    assert_eq!(To::parse("box-1").unwrap(), To::Device("box-1".into()));
    assert!(To::parse("a/b").is_err());
    assert!(To::parse("group/").is_err());
}

#[test]
fn the_list_shows_online_room_mic_recording_and_health() {
    let mut boxes = BTreeMap::new();
    boxes.insert(
        "box1".to_string(),
        (
            Some(serde_json::json!({"status":"online"})),
            Some(serde_json::json!({
                "room": {"roomId": "r-42"},
                "localParticipant": {"micOn": false},
                "recording": {"state": "STARTED"},
                "health": {"ok": false, "problems": ["media STARTING"]}
            })),
        ),
    );
    boxes.insert(
        "box2".to_string(),
        (Some(serde_json::json!({"status":"offline"})), None),
    );
    let t = list_table(&boxes);
    let lines: Vec<&str> = t.lines().collect();
    assert!(lines[1].starts_with("box1"));
    for want in [
        "online",
        "r-42",
        "muted",
        "STARTED",
        "PROBLEM: media STARTING",
    ] {
        assert!(lines[1].contains(want), "{want} in {}", lines[1]);
    }
    assert!(lines[2].contains("offline"));
}
