//! `roombox check`: validates the configuration and this machine against it, one line per
//! check (ok, warning or failed), like iot-identity-service's `check`.
//!
//! Layer 12 of docs/architecture.md: one checker per concern in this folder, each free to open
//! its concern's real backend; only `http` (the console's installer page), `run` and the binary
//! import it.

mod audio;
mod calendar;
mod controls;
mod fleet;
mod room;

pub use calendar::calendar;
pub use controls::controls;
pub use fleet::fleet;

use crate::config::{self, AudioSource, Config, RecordingFormat, ShareSource, VideoSource};
use crate::media::{encoder, retention};
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Fine.
    Ok,
    /// Works, but something deserves attention.
    Warning,
    /// Will not work.
    Failed,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckLine {
    pub status: Status,
    /// What was checked (`config`, `camera`, `encoder`, ...).
    pub check: String,
    pub detail: String,
}

impl CheckLine {
    /// A line.
    pub fn new(status: Status, check: &str, detail: impl Into<String>) -> CheckLine {
        CheckLine {
            status,
            check: check.into(),
            detail: detail.into(),
        }
    }
}

/// Runs every check for the config at `path` (or the default). GStreamer is initialised here.
pub fn run(path: Option<&Path>) -> Vec<CheckLine> {
    let mut out = Vec::new();
    let loaded = match config::load(path) {
        Ok(l) => l,
        Err(errors) => {
            for e in errors {
                out.push(CheckLine::new(Status::Failed, "config", e.to_string()));
            }
            return out;
        }
    };
    out.push(CheckLine::new(
        Status::Ok,
        "config",
        if loaded.files.is_empty() {
            "no config file: the embedded default (synthetic camera and mic)".to_string()
        } else {
            loaded
                .files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(" + ")
        },
    ));
    if let Err(e) = gstreamer::init() {
        out.push(CheckLine::new(Status::Failed, "gstreamer", e.to_string()));
        return out;
    }
    environment(&loaded.config, &mut out);
    out.extend(room::room(&loaded.config.room));
    out.push(calendar(&loaded.config));
    out.extend(fleet(&loaded.config));
    out
}

fn element(out: &mut Vec<CheckLine>, check: &str, name: &str, why: &str) {
    if !encoder::registered(name) {
        out.push(CheckLine::new(
            Status::Failed,
            check,
            format!("GStreamer element `{name}` is missing ({why})"),
        ));
    }
}

/// The checks that need the machine, for a valid config.
pub fn environment(c: &Config, out: &mut Vec<CheckLine>) {
    let v = &c.media.video;
    match v.source {
        VideoSource::V4l2 => {
            element(out, "camera", "v4l2src", "gstreamer1.0-plugins-good");
            out.push(v4l2_camera(&v.device));
        }
        VideoSource::Libcamera => {
            element(out, "camera", "libcamerasrc", "gstreamer1.0-libcamera");
        }
        VideoSource::Argus => {
            element(
                out,
                "camera",
                "nvarguscamerasrc",
                "NVIDIA's L4T GStreamer plugins",
            );
        }
        VideoSource::Test => out.push(CheckLine::new(
            Status::Warning,
            "camera",
            "synthetic test pattern (media.video.source = \"test\")",
        )),
        VideoSource::None => out.push(CheckLine::new(Status::Ok, "camera", "no video configured")),
    }
    if v.source != VideoSource::None {
        let candidates = encoder::candidates(&v.encoder, encoder::registered);
        let (chosen, results) =
            encoder::choose(&candidates, |n| encoder::probe(n, Duration::from_secs(5)));
        for r in results.iter().filter(|r| !r.works) {
            out.push(CheckLine::new(
                Status::Warning,
                "encoder",
                format!(
                    "{} is registered but does not work: {}",
                    r.name,
                    r.error.as_deref().unwrap_or("?")
                ),
            ));
        }
        match chosen.and_then(encoder::spec) {
            Some(s) if s.hardware => out.push(CheckLine::new(
                Status::Ok,
                "encoder",
                format!("{} (hardware) reaches PLAYING", s.name),
            )),
            Some(s) => out.push(CheckLine::new(
                Status::Ok,
                "encoder",
                format!("{} (software) reaches PLAYING", s.name),
            )),
            None => out.push(CheckLine::new(
                Status::Failed,
                "encoder",
                format!(
                    "no H.264 encoder works (media.video.encoder = \"{}\")",
                    v.encoder
                ),
            )),
        }
    }

    share(c, out);
    let a = &c.media.audio;
    match a.source {
        AudioSource::Alsa => {
            element(out, "microphone", "alsasrc", "gstreamer1.0-alsa");
            out.push(alsa_capture(&a.device));
        }
        AudioSource::Test => out.push(CheckLine::new(
            Status::Warning,
            "microphone",
            "synthetic tone (media.audio.source = \"test\")",
        )),
        AudioSource::File => out.push(
            match crate::media::filemic::decode(&a.file, a.rate, a.channels) {
                Ok(pcm) => CheckLine::new(
                    Status::Warning,
                    "microphone",
                    format!(
                        "the file {} played in a loop ({:.1} s; media.audio.source = \"file\")",
                        a.file.display(),
                        pcm.len() as f64 / f64::from(2 * a.rate * a.channels)
                    ),
                ),
                Err(e) => CheckLine::new(Status::Failed, "microphone", e.to_string()),
            },
        ),
        AudioSource::Pipe => out.push(CheckLine::new(
            Status::Warning,
            "microphone",
            format!(
                "raw S16LE at {} Hz, {} channel(s), read from {}{} (media.audio.source = \"pipe\": a room simulator's end)",
                a.rate,
                a.channels,
                a.file.display(),
                if a.file.exists() { "" } else { ", which does not exist yet" }
            ),
        )),
        AudioSource::None => out.push(CheckLine::new(
            Status::Ok,
            "microphone",
            "no audio configured",
        )),
    }
    if a.source != AudioSource::None {
        element(out, "audio", "opusenc", "gstreamer1.0-plugins-base");
        if c.audio_processing().any() {
            element(
                out,
                "audio processing",
                "audiobuffersplit",
                "gstreamer1.0-plugins-bad",
            );
        }
    }
    out.extend(audio::processing(c));
    out.extend(audio::speaker_format(c));

    element(
        out,
        "recording",
        "splitmuxsink",
        "gstreamer1.0-plugins-good",
    );
    match c.recording.format {
        RecordingFormat::Mp4 => {
            element(out, "recording", "mp4mux", "gstreamer1.0-plugins-good");
            if a.source != AudioSource::None
                && !["fdkaacenc", "voaacenc", "avenc_aac"]
                    .iter()
                    .any(|e| encoder::registered(e))
            {
                out.push(CheckLine::new(
                    Status::Failed,
                    "recording",
                    "MP4 recording needs an AAC encoder: voaacenc (gstreamer1.0-plugins-bad) or avenc_aac (gstreamer1.0-libav)",
                ));
            }
        }
        RecordingFormat::Mkv => {
            element(out, "recording", "matroskamux", "gstreamer1.0-plugins-good")
        }
    }
    out.push(transcription_model(c));
    out.push(writable_dir("state", &c.state_dir()));
    let rec = c.recording_dir();
    out.push(writable_dir("recording", &rec));
    if let Ok(free) = retention::free_bytes(&rec) {
        let mib = free / (1024 * 1024);
        let status = if mib < c.recording.stop_free_mb {
            Status::Failed
        } else if mib < c.recording.min_free_mb {
            Status::Warning
        } else {
            Status::Ok
        };
        out.push(CheckLine::new(
            status,
            "disk",
            format!(
                "{mib} MiB free in {} (keep {} MiB, stop below {} MiB)",
                rec.display(),
                c.recording.min_free_mb,
                c.recording.stop_free_mb
            ),
        ));
    }
    let sock = c.control_socket();
    let sock_dir = sock.parent().unwrap_or(Path::new("."));
    if sock_dir == Path::new(crate::config::INSTALLED_RUNTIME_DIR) && !sock_dir.exists() {
        // The unit's RuntimeDirectory: systemd makes it, owned by roombox, as the service
        // starts, and removes it when it stops.
        out.push(CheckLine::new(
            Status::Ok,
            "control",
            format!(
                "{} is made by systemd (RuntimeDirectory=) when the service starts",
                sock_dir.display()
            ),
        ));
    } else {
        out.push(writable_dir("control", sock_dir));
    }
    out.extend(controls::controls(&c.controls));
}

/// The transcription model: present, and a whisper.cpp model. Missing is only a warning unless
/// the configuration would use it unasked (`autostart`, `post_on_stop`): transcription is
/// optional, and the rest of the box works without it.
fn transcription_model(c: &Config) -> CheckLine {
    let t = &c.transcription;
    let path = t.model_path(&c.state_dir());
    let needed = t.autostart || t.post_on_stop;
    match crate::transcribe::model::inspect(&path) {
        Ok(about) => {
            let gate = match t.gate_path(&c.state_dir()) {
                Some(g) => format!("; speech gate: Silero ({})", g.display()),
                None if t.speech_gate => format!(
                    "; no speech gate: {} is not installed beside the model, so noise the \
                     energy VAD takes for speech is decoded too",
                    crate::transcribe::gate::SILERO_FILE
                ),
                None => "; speech gate off".into(),
            };
            CheckLine::new(Status::Ok, "transcription", format!("{about}{gate}"))
        }
        Err(e) if !path.exists() && !needed => CheckLine::new(
            Status::Warning,
            "transcription",
            format!("{e}; start-transcription will answer unavailable until a model is installed"),
        ),
        Err(e) => CheckLine::new(Status::Failed, "transcription", e.to_string()),
    }
}

/// Whether the agent can write in `dir`. It never creates `dir`: typed as root on a board, a
/// directory made here would belong to root, and the agent, which runs as its own user, could no
/// longer write its recordings there (the booted box caught exactly that). A missing directory
/// is judged by its nearest existing parent, where the agent will create it.
fn writable_dir(check: &str, dir: &Path) -> CheckLine {
    let (target, missing) = match dir.ancestors().find(|a| a.is_dir()) {
        Some(a) if a == dir => (a, false),
        Some(a) => (a, true),
        None => (Path::new("."), true),
    };
    let probe = target.join(format!(".roombox-check-{}", std::process::id()));
    let r = std::fs::write(&probe, b"ok");
    let _ = std::fs::remove_file(&probe);
    match (r, missing) {
        (Ok(()), false) => {
            CheckLine::new(Status::Ok, check, format!("{} is writable", dir.display()))
        }
        (Ok(()), true) => CheckLine::new(
            Status::Ok,
            check,
            format!(
                "{} does not exist yet; the agent creates it in {} (writable)",
                dir.display(),
                target.display()
            ),
        ),
        (Err(e), _) => CheckLine::new(
            Status::Failed,
            check,
            format!("{} is not writable: {e}", target.display()),
        ),
    }
}

fn v4l2_camera(device: &str) -> CheckLine {
    v4l2_capture("camera", device)
}

/// The share's grabber: absent is a warning (a laptop's grabber comes and goes; the share
/// starts once it is there), present but not a capture device is a failure.
fn share(c: &Config, out: &mut Vec<CheckLine>) {
    let s = &c.media.share;
    match s.source {
        ShareSource::None => {}
        ShareSource::Test => out.push(CheckLine::new(
            Status::Warning,
            "share",
            format!(
                "synthetic pattern (media.share.source = \"test\"), {}x{} at {} fps, {} kbit/s",
                s.width, s.height, s.fps, s.bitrate_kbps
            ),
        )),
        ShareSource::V4l2 => {
            element(out, "share", "v4l2src", "gstreamer1.0-plugins-good");
            let mut line = v4l2_capture("share", &s.device);
            if line.status == Status::Failed && !Path::new(&s.device).exists() {
                line = CheckLine::new(
                    Status::Warning,
                    "share",
                    format!(
                        "{} is not plugged in (the share starts once it is)",
                        s.device
                    ),
                );
            }
            // A grabber with nothing plugged into it streams no frames: no signal, no share.
            // (Busy is fine: the running agent's share holds it.)
            if line.status == Status::Ok {
                let wait = crate::media::grabber::WAIT * 2;
                match crate::media::v4l2::delivers_frames(&s.device, wait) {
                    Ok(()) => line.detail.push_str(", delivers frames (a signal)"),
                    Err(e) if e.contains("busy") => line.detail.push_str(", in use"),
                    Err(e) => {
                        line = CheckLine::new(
                            Status::Warning,
                            "share",
                            format!("{e}; the share starts once it delivers frames"),
                        )
                    }
                }
            }
            out.push(line);
        }
    }
}

fn v4l2_capture(check: &'static str, device: &str) -> CheckLine {
    match v4l::Device::with_path(device) {
        Ok(dev) => match dev.query_caps() {
            Ok(caps)
                if caps
                    .capabilities
                    .contains(v4l::capability::Flags::VIDEO_CAPTURE) =>
            {
                CheckLine::new(
                    Status::Ok,
                    check,
                    format!("{device}: {} [{}]", caps.card, caps.driver),
                )
            }
            Ok(caps) => CheckLine::new(
                Status::Failed,
                check,
                format!("{device} ({}) cannot capture video", caps.card),
            ),
            Err(e) => CheckLine::new(Status::Failed, check, format!("{device}: {e}")),
        },
        Err(e) => CheckLine::new(
            Status::Failed,
            check,
            format!("{device} cannot be opened: {e} (unplugged? in the video group?)"),
        ),
    }
}

fn alsa_capture(device: &str) -> CheckLine {
    match alsa::pcm::PCM::new(device, alsa::Direction::Capture, true) {
        Ok(_) => CheckLine::new(
            Status::Ok,
            "microphone",
            format!("ALSA `{device}` opens for capture"),
        ),
        Err(e) => CheckLine::new(
            Status::Failed,
            "microphone",
            format!("ALSA `{device}` cannot capture: {e} (see `roombox probe` for devices)"),
        ),
    }
}

/// The report for people: one line per check.
pub fn render(lines: &[CheckLine]) -> String {
    // The details line up under the longest check's name ("audio processing").
    let width = lines
        .iter()
        .map(|l| l.check.len())
        .max()
        .unwrap_or(0)
        .max(11);
    lines
        .iter()
        .map(|l| {
            let s = match l.status {
                Status::Ok => "ok",
                Status::Warning => "warning",
                Status::Failed => "failed",
            };
            format!("{s:<8} {:<width$} {}\n", l.check, l.detail)
        })
        .collect()
}

/// True when any check failed.
pub fn failed(lines: &[CheckLine]) -> bool {
    lines.iter().any(|l| l.status == Status::Failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_never_creates_the_agents_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let rec = tmp.path().join("state/recordings");
        let line = writable_dir("recording", &rec);
        assert_eq!(line.status, Status::Ok, "{}", line.detail);
        assert!(
            line.detail.contains("does not exist yet"),
            "{}",
            line.detail
        );
        assert!(
            !rec.exists() && !tmp.path().join("state").exists(),
            "check made a directory"
        );
        std::fs::create_dir_all(&rec).unwrap();
        let line = writable_dir("recording", &rec);
        assert_eq!(line.detail, format!("{} is writable", rec.display()));
        assert_eq!(
            std::fs::read_dir(&rec).unwrap().count(),
            0,
            "the probe file stays behind"
        );
    }
}
