//! The `[controls]` section's rules, on real config text (the shipped files among it).

use super::*;
use crate::config::{load_str, ConfigError};
use crate::model::RecordingTarget;

fn load(text: &str) -> Result<ControlsConfig, Vec<ConfigError>> {
    load_str("test.toml", text).map(|l| l.config.controls)
}

fn fields(text: &str) -> Vec<String> {
    load(text)
        .unwrap_err()
        .into_iter()
        .map(|e| e.field.unwrap_or_default())
        .collect()
}

#[test]
fn no_gpio_is_the_valid_default() {
    let c = ControlsConfig::default();
    assert!(c.validate().is_empty());
    assert!(!c.enabled(), "nothing to open without lines");
    assert_eq!(c.buttons.join.short.0, Some(Command::ToggleJoin));
    assert_eq!(c.buttons.join.long.0, Some(Command::End));
    assert_eq!(c.buttons.mute.short.0, Some(Command::ToggleMic));
    assert_eq!(c.buttons.camera.short.0, Some(Command::ToggleWebcam));
}

#[test]
fn the_documented_section_is_the_default() {
    let text = include_str!("../../../config/roombox.toml");
    let loaded = load_str("roombox.toml", text).unwrap();
    assert_eq!(loaded.config.controls, ControlsConfig::default());
}

#[test]
fn a_button_table_with_only_a_line_keeps_that_buttons_actions() {
    let c = load(
        "[controls.buttons.mute]\nline = \"btn-mute\"\n[controls.buttons.join]\nline = \"7\"\nlong = \"none\"\n",
    )
    .unwrap();
    assert_eq!(c.buttons.mute.line, "btn-mute");
    assert_eq!(c.buttons.mute.short.0, Some(Command::ToggleMic));
    assert_eq!(c.buttons.join.short.0, Some(Command::ToggleJoin));
    assert_eq!(c.buttons.join.long.0, None);
    assert!(c.buttons.join.active_low);
    assert_eq!(c.buttons.camera.short.0, Some(Command::ToggleWebcam));
}

#[test]
fn the_board_examples_keep_the_default_actions() {
    for text in [
        include_str!("../../../config/raspberry-pi-4.toml"),
        include_str!("../../../config/raspberry-pi-5.toml"),
        include_str!("../../../config/jetson.toml"),
    ] {
        let c = load(text).unwrap();
        assert!(c.enabled());
        assert_eq!(c.buttons.join.short.0, Some(Command::ToggleJoin));
        assert_eq!(c.buttons.join.long.0, Some(Command::End));
        assert_eq!(c.buttons.mute.short.0, Some(Command::ToggleMic));
        assert_eq!(c.buttons.camera.short.0, Some(Command::ToggleWebcam));
        assert_eq!(c.button_lines().len(), 3);
        assert_eq!(c.led_lines().len(), 3);
    }
}

#[test]
fn actions_are_names_tables_or_none() {
    let c = load(
        r#"
        [controls]
        backend = "simulated"
        [controls.buttons.join]
        short = { command = "start-recording", target = "local" }
        long = "stop-recording"
        double = { command = "identify", seconds = 5 }
        [controls.buttons.mute]
        short = "none"
        "#,
    )
    .unwrap();
    assert_eq!(
        c.buttons.join.short.0,
        Some(Command::StartRecording {
            target: RecordingTarget::Local
        })
    );
    assert_eq!(
        c.buttons.join.long.0,
        Some(Command::StopRecording {
            target: RecordingTarget::Local
        })
    );
    assert_eq!(
        c.buttons.join.double.0,
        Some(Command::Identify { seconds: 5 })
    );
    assert_eq!(c.buttons.mute.short.0, None);
    // And back: what serializes loads again unchanged.
    let text = toml::to_string(&c.buttons.join).unwrap();
    let back: ButtonConfig = toml::from_str(&text).unwrap();
    assert_eq!(back, c.buttons.join);
}

#[test]
fn a_bad_action_names_the_field_and_the_command() {
    let e = load("[controls.buttons.join]\nshort = \"jump\"\n").unwrap_err();
    assert_eq!(e[0].field.as_deref(), Some("controls.buttons.join.short"));
    assert!(e[0].message.contains("jump"), "{}", e[0].message);
    assert_eq!(e[0].line, Some(2));
    let e = load("[controls.buttons.join]\nlong = { command = \"identify\", seconds = 0 }\n")
        .unwrap_err();
    assert!(e[0].message.contains("seconds"), "{}", e[0].message);
    let e = load("[controls.buttons.join]\nshort = \"send-chat\"\n").unwrap_err();
    assert!(e[0].message.contains("message"), "{}", e[0].message);
    let e = load("[controls.buttons.join]\nshort = 3\n").unwrap_err();
    assert_eq!(e[0].field.as_deref(), Some("controls.buttons.join.short"));
}

#[test]
fn ranges_are_checked() {
    let f = fields(
        r#"
        [controls]
        debounce = "2s"
        long_press = "100ms"
        double_press = "5s"
        [controls.leds]
        dim_level = 1.5
        "#,
    );
    for want in [
        "controls.debounce",
        "controls.long_press",
        "controls.double_press",
        "controls.leds.dim_level",
    ] {
        assert!(f.iter().any(|x| x == want), "{want} missing from {f:?}");
    }
}

#[test]
fn a_line_used_twice_is_an_error() {
    let f = fields(
        r#"
        [controls.buttons.join]
        line = "btn"
        [controls.leds.red]
        line = "btn"
        "#,
    );
    assert_eq!(f, vec!["controls.leds.red.line"]);
}

#[test]
fn line_names_and_offsets_are_checked() {
    assert!(load("[controls.buttons.join]\nline = \"17\"\n").is_ok());
    assert!(load("[controls.buttons.join]\nline = \"PQ.05\"\n").is_ok());
    assert_eq!(
        fields("[controls.buttons.join]\nline = \"has space\"\n"),
        vec!["controls.buttons.join.line"]
    );
    assert_eq!(
        fields("[controls.buttons.join]\nline = \"5000\"\n"),
        vec!["controls.buttons.join.line"]
    );
}

#[test]
fn rppal_takes_bcm_numbers_and_needs_its_feature() {
    let f = fields("[controls]\nbackend = \"rppal\"\n[controls.buttons.join]\nline = \"GPIO17\"\n");
    assert!(f.iter().any(|x| x == "controls.buttons.join.line"), "{f:?}");
    assert_eq!(
        f.iter().any(|x| x == "controls.backend"),
        !cfg!(feature = "rpi")
    );
}

#[test]
fn priority_lists_each_state_once() {
    let f = fields("[controls.leds]\npriority = [\"muted\", \"idle\", \"muted\"]\n");
    assert_eq!(f, vec!["controls.leds.priority"]);
    let e = load("[controls.leds]\npriority = [\"sleeping\"]\n").unwrap_err();
    assert_eq!(e[0].field.as_deref(), Some("controls.leds.priority.0"));
}

#[test]
fn unknown_keys_and_colours_are_refused() {
    assert!(load("[controls]\nbuttonz = 1\n").is_err());
    assert!(
        load("[controls.leds.looks]\nmuted = { color = \"pink\", pattern = \"solid\" }\n").is_err()
    );
    assert!(load("[controls.buttons.join]\nbias = \"pull-sideways\"\n").is_err());
}

#[test]
fn a_chip_is_needed_once_lines_are_set() {
    let f = fields("[controls]\nchip = \"\"\n[controls.buttons.join]\nline = \"1\"\n");
    assert_eq!(f, vec!["controls.chip"]);
    assert!(
        load("[controls]\nchip = \"\"\n").is_ok(),
        "no lines, no chip needed"
    );
}
