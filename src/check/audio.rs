//! The room audio checker: whether processing runs on the mic, at what, and whether the
//! speaker and the mic can be paired for echo cancellation. A canceller that cannot hear the
//! speaker it should cancel is said out loud here, never left to do nothing in silence.

use super::{CheckLine, Status};
use crate::config::{AudioSource, Config, RoomBackendKind};

/// Where the speaker plays, as far as pairing with the mic goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Speaker {
    /// No room, or `audio_sink = "none"`/a fakesink: nothing plays.
    Nothing,
    /// An ALSA device (or `auto`, the system's default output).
    Alsa(String),
    /// A `filesink` (a room simulator's pipe).
    File(String),
    /// Some other GStreamer sink.
    Other(String),
}

fn speaker(c: &Config) -> Speaker {
    if c.room.backend == RoomBackendKind::None {
        return Speaker::Nothing;
    }
    let p = &c.room.playback;
    let sink = p.audio_sink.trim();
    let factory = sink.split_whitespace().next().unwrap_or("");
    match factory {
        "none" | "fakesink" | "" => Speaker::Nothing,
        "auto" | "autoaudiosink" => Speaker::Alsa("the system's default output".into()),
        "alsa" => Speaker::Alsa(p.audio_device.clone()),
        "alsasink" => Speaker::Alsa(prop(sink, "device").unwrap_or_else(|| "default".into())),
        "filesink" => Speaker::File(prop(sink, "location").unwrap_or_default()),
        other => Speaker::Other(other.to_string()),
    }
}

fn prop(desc: &str, key: &str) -> Option<String> {
    desc.split_whitespace()
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_string())
}

/// The ALSA card a device name points at (`hw:1,0` → `1`, `plughw:CARD=Mic` → `Mic`); None
/// for names that do not say (`default`, a PCM of asoundrc's).
fn card(device: &str) -> Option<&str> {
    let rest = device
        .strip_prefix("plughw:")
        .or_else(|| device.strip_prefix("hw:"))?;
    let first = rest.split(',').next()?;
    Some(first.strip_prefix("CARD=").unwrap_or(first))
}

/// The lines for `[media.audio.processing]`.
pub fn processing(c: &Config) -> Vec<CheckLine> {
    let a = &c.media.audio;
    let p = c.audio_processing();
    let mut out = Vec::new();
    if a.source == AudioSource::None {
        return out;
    }
    if !p.any() {
        out.push(CheckLine::new(
            Status::Ok,
            "audio processing",
            if p.speaker {
                "off (every switch of media.audio.processing is false)".to_string()
            } else {
                "off: no speaker in a room that the mic hears (set media.audio.processing to turn it on)"
                    .to_string()
            },
        ));
        return out;
    }
    let mut what = Vec::new();
    if p.echo_cancel {
        what.push("echo cancellation");
    }
    if p.noise_suppression {
        what.push("noise suppression");
    }
    if p.gain_control {
        what.push("gain control");
    }
    if p.high_pass {
        what.push("high-pass filter");
    }
    let spk = speaker(c);
    let reference = match (&spk, p.echo_cancel) {
        (_, false) => String::new(),
        (Speaker::Nothing, true) => "; no reference: nothing plays".into(),
        (Speaker::Alsa(d), true) => format!("; reference: the speaker ({d}) at {} Hz mono", a.rate),
        (Speaker::File(f), true) => {
            format!("; reference: the speaker (file {f}) at {} Hz mono", a.rate)
        }
        (Speaker::Other(s), true) => {
            format!("; reference: the speaker ({s}) at {} Hz mono", a.rate)
        }
    };
    out.push(CheckLine::new(
        Status::Ok,
        "audio processing",
        format!(
            "{} (aec3) on the mic at {} Hz, {} channel{}, 10 ms frames{reference}",
            what.join(", "),
            a.rate,
            a.channels,
            if a.channels == 1 { "" } else { "s" },
        ),
    ));
    if !p.echo_cancel {
        return out;
    }
    let problem = |status, detail: String| CheckLine::new(status, "echo cancellation", detail);
    let mic_hears_room = matches!(a.source, AudioSource::Alsa | AudioSource::Pipe);
    match (&spk, a.source) {
        (Speaker::Nothing, _) => out.push(problem(
            Status::Warning,
            if c.room.backend == RoomBackendKind::None {
                "on, but the box joins no room (room.backend = \"none\"): nothing plays on a speaker, so there is no echo to cancel".into()
            } else {
                "on, but the speaker sink is `none`: nothing plays, so there is no echo to cancel".into()
            },
        )),
        (_, AudioSource::File | AudioSource::Test) => out.push(problem(
            Status::Failed,
            format!(
                "on, but the mic is a {} (media.audio.source = \"{}\"): it cannot hear the speaker, so the canceller would run with nothing to cancel; use an ALSA mic, or a pipe fed by a room simulator",
                if a.source == AudioSource::File { "file" } else { "synthetic tone" },
                if a.source == AudioSource::File { "file" } else { "test" },
            ),
        )),
        (Speaker::Alsa(_), AudioSource::Pipe) | (Speaker::File(_), AudioSource::Alsa) => {
            out.push(problem(
                Status::Failed,
                "the speaker and the mic run on different clocks (one is an ALSA device, the other a file or pipe): the echo the mic hears is not the speaker's; put both on ALSA, or both on pipes through a room simulator".into(),
            ))
        }
        (Speaker::Alsa(d), AudioSource::Alsa) => {
            if let (Some(s), Some(m)) = (card(d), card(&a.device)) {
                if s != m {
                    out.push(problem(
                        Status::Warning,
                        format!(
                            "the speaker (card {s}) and the mic (card {m}) are on different sound cards, whose clocks drift apart; AEC3 follows a small drift, but one card for both is safer"
                        ),
                    ));
                }
            }
        }
        (Speaker::Other(s), _) if mic_hears_room => out.push(problem(
            Status::Warning,
            format!("the speaker is `{s}`, which roombox cannot pair with the mic; the reference is what it is handed, at {} Hz mono", a.rate),
        )),
        _ => {}
    }
    out
}

/// Whether the speaker's ALSA device takes what the box plays while processing runs: S16LE mono
/// at the mic's rate (the speaker's chain pins it, so that what it plays is the canceller's
/// reference). A `hw:` device has no plug layer to convert: one that plays only 48 kHz, or only
/// stereo, would refuse it, and the room would fall back to playing nothing. Other names
/// (`plughw:`, `default`, a PCM of asoundrc's) convert, and are not probed. None when nothing
/// runs or there is nothing to probe; it opens the device, so `processing` stays pure.
pub fn speaker_format(c: &Config) -> Option<CheckLine> {
    let a = &c.media.audio;
    if a.source == AudioSource::None || !c.audio_processing().any() {
        return None;
    }
    let Speaker::Alsa(device) = speaker(c) else {
        return None;
    };
    if !device.starts_with("hw:") {
        return None;
    }
    let line = |status, detail: String| Some(CheckLine::new(status, "speaker", detail));
    let pcm = match alsa::PCM::new(&device, alsa::Direction::Playback, true) {
        Ok(p) => p,
        Err(e) if e.errno() == libc::EBUSY => {
            return line(
                Status::Warning,
                format!("ALSA `{device}` is in use, so whether it plays S16LE mono at {} Hz was not checked", a.rate),
            )
        }
        Err(e) => {
            return line(
                Status::Failed,
                format!("ALSA `{device}` cannot play: {e}; the room would play no sound (see `roombox probe` for devices)"),
            )
        }
    };
    let refused: Vec<String> = match alsa::pcm::HwParams::any(&pcm) {
        Err(e) => vec![e.to_string()],
        Ok(hw) => [
            hw.test_format(alsa::pcm::Format::s16())
                .err()
                .map(|_| "S16LE".to_string()),
            hw.test_channels(1).err().map(|_| "mono".to_string()),
            hw.test_rate(a.rate).err().map(|_| format!("{} Hz", a.rate)),
        ]
        .into_iter()
        .flatten()
        .collect(),
    };
    if refused.is_empty() {
        return line(
            Status::Ok,
            format!(
                "ALSA `{device}` plays S16LE mono at {} Hz, the canceller's reference",
                a.rate
            ),
        );
    }
    line(
        Status::Failed,
        format!(
            "ALSA `{device}` refuses {}: with processing on the speaker plays S16LE mono at the mic's rate ({} Hz), the canceller's reference, and a `hw:` device does not convert; use `plughw:{}`, or a media.audio.rate it plays",
            refused.join(", "),
            a.rate,
            device.trim_start_matches("hw:"),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProcessingConfig;

    fn room() -> Config {
        let mut c = Config::default();
        c.room.backend = RoomBackendKind::Janus;
        c.room.url = "ws://127.0.0.1:8188".into();
        c.room.room_id = "1234".into();
        c.room.playback.audio_sink = "alsa".into();
        c.room.playback.audio_device = "hw:0,0".into();
        c.media.audio.source = AudioSource::Alsa;
        c.media.audio.device = "hw:0,0".into();
        c
    }

    fn statuses(c: &Config) -> Vec<(Status, String)> {
        processing(c)
            .into_iter()
            .map(|l| (l.status, l.check))
            .collect()
    }

    #[test]
    fn a_room_with_an_alsa_speaker_and_mic_runs_everything_and_says_at_what() {
        let lines = processing(&room());
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0].status, Status::Ok);
        assert_eq!(
            lines[0].detail,
            "echo cancellation, noise suppression, gain control, high-pass filter (aec3) on the mic at 48000 Hz, 1 channel, 10 ms frames; reference: the speaker (hw:0,0) at 48000 Hz mono"
        );
    }

    #[test]
    fn the_default_box_has_no_speaker_and_no_processing() {
        let lines = processing(&Config::default());
        assert_eq!(lines.len(), 1);
        assert!(lines[0].detail.starts_with("off: no speaker"), "{lines:?}");
    }

    #[test]
    fn unpairable_ends_are_said_never_silent() {
        let mut c = room();
        c.media.audio.source = AudioSource::File;
        c.media.audio.processing.echo_cancel = Some(true);
        assert!(statuses(&c).contains(&(Status::Failed, "echo cancellation".into())));

        let mut c = room();
        c.media.audio.source = AudioSource::Pipe;
        assert!(statuses(&c).contains(&(Status::Failed, "echo cancellation".into())));

        let mut c = room();
        c.room.backend = RoomBackendKind::None;
        c.media.audio.processing = ProcessingConfig {
            echo_cancel: Some(true),
            ..ProcessingConfig::default()
        };
        assert!(statuses(&c).contains(&(Status::Warning, "echo cancellation".into())));

        let mut c = room();
        c.media.audio.device = "plughw:CARD=Mic".into();
        assert!(statuses(&c).contains(&(Status::Warning, "echo cancellation".into())));
    }

    fn all_off() -> ProcessingConfig {
        ProcessingConfig {
            echo_cancel: Some(false),
            noise_suppression: Some(false),
            gain_control: Some(false),
            high_pass: Some(false),
        }
    }

    #[test]
    fn only_a_hw_speaker_with_processing_on_is_probed() {
        let mut c = room();
        c.room.playback.audio_device = "plughw:0,0".into();
        assert_eq!(speaker_format(&c), None, "a plug layer converts");
        let mut c = room();
        c.media.audio.processing = all_off();
        assert_eq!(
            speaker_format(&c),
            None,
            "nothing pins the speaker's format"
        );
        let mut c = room();
        c.room.playback.audio_device = "hw:NoSuchCard,0".into();
        let line = speaker_format(&c).expect("probed");
        assert_eq!(line.status, Status::Failed, "{line:?}");
        assert!(line.detail.contains("cannot play"), "{line:?}");
    }

    #[test]
    fn the_older_switch_turns_echo_cancellation_on_and_processing_can_be_turned_off() {
        let mut c = Config::default();
        c.media.audio.echo_cancel = true;
        assert!(c.audio_processing().echo_cancel);
        assert!(!c.audio_processing().gain_control);

        let mut c = room();
        c.media.audio.processing = all_off();
        assert!(!c.audio_processing().any());
    }
}
