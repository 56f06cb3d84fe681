//! A transcript of a meeting recording says who spoke: the box in a Janus room says one
//! espeak-ng sentence into its own mic (a file mic, looping), and a webrtcbin participant, Ana,
//! says another, later; the box records the meeting (Matroska, `source = "meeting"`), and
//! `transcribe-recording` gives each sentence under its speaker's name. The recording is read
//! back with GStreamer's discoverer: the mix first, then a track named after each participant.
//! In a network namespace of its own (see `support::netns`).

mod support;

use gstreamer_pbutils::prelude::*;
use roombox::command::Command;
use roombox::config::{AudioSource, RecordingFormat};
use roombox::event::Event;
use roombox::model::{OutputSource, RecordingTarget, ServiceState};
use roombox::transcribe::transcript::parse_vtt;
use std::path::Path;
use std::process::Command as Process;
use std::time::{Duration, Instant};
use support::inproc::InProcBox as Box_;
use support::janus::{JanusProcess, ServerConfig};
use support::peer::{Peer, PeerOptions};
use support::poll_until as eventually;

const ROOM: &str = "4747";
const WAIT: Duration = Duration::from_secs(40);
/// What the box's mic says (then 6 s of silence, looped).
const BOX_SAYS: &str = "Please send the quarterly report to the finance team before Friday.";
const BOX_WORDS: [&str; 3] = ["report", "finance", "friday"];
/// What Ana says, once, 8 s after she joins.
const ANA_SAYS: &str = "The weather forecast says it will rain tomorrow afternoon.";
const ANA_WORDS: [&str; 3] = ["weather", "rain", "forecast"];

#[test]
fn a_meeting_recordings_transcript_puts_each_cue_under_its_speaker() {
    support::netns::isolated_async(crate::test_name!(), scenario);
}

/// `text` spoken by espeak-ng into a 16 kHz mono WAV at `out`, with `before` and `after`
/// seconds of silence around it.
fn speak(text: &str, out: &Path, before: f32, after: f32) {
    let raw = out.with_extension("raw.wav");
    let ok = Process::new("espeak-ng")
        .args(["-v", "en-us", "-s", "160", "-w"])
        .arg(&raw)
        .arg(text)
        .status()
        .expect("espeak-ng (scripts/setup.sh installs it)");
    assert!(ok.success());
    let ok = Process::new("sox")
        .args(["-q"])
        .arg(&raw)
        .args(["-r", "16000", "-c", "1", "-b", "16"])
        .arg(out)
        .args(["pad", &before.to_string(), &after.to_string()])
        .status()
        .expect("sox");
    assert!(ok.success());
}

/// The audio tracks' titles of `file`, in order, as GStreamer's discoverer reads them.
fn track_titles(file: &Path) -> Vec<String> {
    let d = gstreamer_pbutils::Discoverer::new(gstreamer::ClockTime::from_seconds(20))
        .expect("discoverer");
    let uri = gstreamer::glib::filename_to_uri(file, None).expect("uri");
    let info = d.discover_uri(&uri).expect("the recording is readable");
    info.audio_streams()
        .iter()
        .map(|s| {
            s.tags()
                .and_then(|t| {
                    t.get::<gstreamer::tags::Title>()
                        .map(|v| v.get().to_string())
                })
                .unwrap_or_default()
        })
        .collect()
}

async fn scenario() {
    let Some(model) = support::speech::model() else {
        return;
    };
    let t0 = Instant::now();
    let tmp = tempfile::tempdir().expect("tempdir");
    let box_wav = tmp.path().join("box.wav");
    let ana_wav = tmp.path().join("ana.wav");
    speak(BOX_SAYS, &box_wav, 0.5, 6.0);
    speak(ANA_SAYS, &ana_wav, 8.0, 1.0);
    let rec = tmp.path().join("rec");
    let sc = ServerConfig::new("127.0.0.1", rec.clone()).expect("port");
    let url = sc.url();
    let _janus =
        JanusProcess::start(sc, &tmp.path().join("janus"), Duration::from_secs(20)).expect("janus");
    let mut config = support::inproc::room_config(&url, &rec, ROOM, (320, 180));
    config.media.audio.source = AudioSource::File;
    config.media.audio.file = box_wav.clone();
    config.recording.source = OutputSource::Meeting;
    config.recording.format = RecordingFormat::Mkv;
    config.recording.segment = Duration::from_secs(60);
    config.recording.dir = tmp.path().join("recordings");
    config.recording.min_free_mb = 0;
    config.recording.stop_free_mb = 0;
    config.transcription.model = model;
    assert!(config.validate().is_empty(), "{:?}", config.validate());
    // The transcription's pending-work file lives there.
    std::fs::create_dir_all(&config.device.state_dir).expect("state dir");
    let b = Box_::start(&config);
    b.join().await;
    let wav: &'static str = Box::leak(ana_wav.display().to_string().into_boxed_str());
    let opts = PeerOptions {
        speech: Some(wav),
        ..PeerOptions::default()
    };
    let peer = Peer::join_with(&url, ROOM, "Ana", opts).await;
    let joined = Instant::now();
    b.lists(&peer.id).await;
    // Ana's track is hers from the recording's start: she is in the room before it.
    b.handle
        .send(Command::StartRecording {
            target: RecordingTarget::Local,
        })
        .await
        .expect("start-recording");
    assert!(
        eventually(WAIT, || b.saw(|e| matches!(
            e,
            Event::RecordingStateChanged {
                state: ServiceState::Started,
                ..
            }
        )))
        .await,
        "the recording never started"
    );
    // Ana speaks 8 s to 12 s after joining; the box's sentence comes round every 9 s or so.
    let until = joined + Duration::from_secs(15);
    tokio::time::sleep(until.saturating_duration_since(Instant::now())).await;
    b.handle
        .send(Command::StopRecording {
            target: RecordingTarget::Local,
        })
        .await
        .expect("stop-recording");
    let segment = |b: &Box_| b.segments_closed().into_iter().next();
    assert!(
        eventually(WAIT, || segment(&b).is_some()).await,
        "no segment closed"
    );
    let seg = segment(&b).expect("a segment");
    let titles = track_titles(&seg);
    eprintln!("tracks of {}: {titles:?}", seg.display());
    assert!(titles.len() >= 3, "{titles:?}");
    assert_eq!(titles[0], "mix", "the mix is the first audio track");
    assert!(titles.iter().any(|t| t == "box"), "{titles:?}");
    assert!(titles.iter().any(|t| t == "Ana"), "{titles:?}");

    let asked = Instant::now();
    let name = seg
        .file_name()
        .expect("a file name")
        .to_string_lossy()
        .to_string();
    b.handle
        .send(Command::TranscribeRecording {
            file: Some(name),
            from: None,
            to: None,
        })
        .await
        .expect("transcribe-recording");
    let done = |b: &Box_| {
        b.events().into_iter().find_map(|e| match e {
            Event::TranscriptionProgress {
                state: ServiceState::Stopped,
                vtt: Some(vtt),
                ..
            } => Some(vtt),
            Event::TranscriptionProgress {
                state: ServiceState::Failed,
                reason,
                ..
            } => panic!("the transcription failed: {reason:?}"),
            _ => None,
        })
    };
    assert!(
        eventually(Duration::from_secs(120), || done(&b).is_some()).await,
        "no transcript"
    );
    let took = asked.elapsed();
    let vtt = seg.with_file_name(done(&b).expect("the transcript"));
    let text = std::fs::read_to_string(&vtt).expect("the .vtt beside the segment");
    eprintln!(
        "transcribed in {took:?} (test {:?} so far):\n{text}",
        t0.elapsed()
    );
    let cues = parse_vtt(&text).expect("WebVTT");
    for w in cues.windows(2) {
        assert!(w[0].0 <= w[1].0, "merged by time: {text}");
    }
    let said_by = |who: &str| -> String {
        let voice = format!("<v {who}>");
        cues.iter()
            .filter_map(|c| c.2.strip_prefix(&voice))
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    let (ana, mine) = (said_by("Ana"), said_by("box"));
    let has = |text: &str, words: &[&str]| words.iter().any(|w| text.contains(w));
    assert!(has(&ana, &ANA_WORDS), "Ana's words under her name: {text}");
    assert!(
        has(&mine, &BOX_WORDS),
        "the box's words under its name: {text}"
    );
    assert!(
        !has(&ana, &BOX_WORDS),
        "the box's words under Ana's name: {text}"
    );
    assert!(
        !has(&mine, &ANA_WORDS),
        "Ana's words under the box's name: {text}"
    );
    drop(peer);
}
