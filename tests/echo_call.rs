//! Echo cancellation in a real call: a webrtcbin participant in a Janus room speaks (espeak-ng
//! sentences), the box (in-process, the real engine and room session) plays it on its speaker,
//! a `filesink` on a named pipe; a room simulator (`roombox::media::echo::sim::Room`: 80 ms, a
//! pyroomacoustics impulse response from `tests/data`, a little loudspeaker saturation, noise)
//! turns what the speaker plays into the box's microphone (`source = "pipe"`). The participant
//! subscribes to the box and measures the level of what comes back: its own speech, as the
//! room's echo, unless the canceller takes it out.
//!
//! One call, the same box: first with `echo_cancel = false` (noise suppression, gain control
//! and the high-pass on, as they are by default with a speaker), then with the canceller
//! switched on (the box's one `EchoPath` configured as the config's defaults would, a canceller
//! converging afresh), then with the participant silent, which shows what the box sends with no
//! echo at all. The box's mic hears nothing but the room, so everything the participant
//! receives while it speaks is its own echo. Where a Whisper model is installed (required under
//! `ROOMBOX_REQUIRE_MODEL`), the box also captions its mic live, and the room's captions are
//! counted for the far end's clauses: some with the canceller off, none once it has converged.
//! BENCHMARKS.md ("In a real call") has the figures this prints.

mod support;

use roombox::command::Command;
use roombox::config::{AudioSource, ProcessingConfig, VideoSource};
use roombox::event::Event;
use roombox::media::echo::sim::{self, Room, RoomParams};
use roombox::media::echo::{EchoPath, Processing};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::inproc::InProcBox as Box_;
use support::janus::{JanusProcess, ServerConfig};
use support::peer::{Peer, PeerOptions};
use support::poll_until as eventually;

const ROOM: &str = "4242";
const RATE: u32 = 16_000;
/// Samples in one 10 ms block.
const N: usize = (RATE / 100) as usize;
const WAIT: Duration = Duration::from_secs(40);

// What the participant says (three times over, so it talks through the whole call).
use roombox::media::echo::sim::FAR_TEXT;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn fifo(path: &Path) {
    let _ = std::fs::remove_file(path);
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
}

/// The room between the box's speaker pipe and its mic pipe, until `stop`. Until the speaker
/// plays (it opens when the box joins a room) the mic gets the room's noise at real time, 10 ms
/// at a time, since the box watches its mic for stalls; from the speaker's first block on, each
/// mic block is the room's echo of the speaker's block and the noise, in lockstep, as
/// `sim::run_pipes` does.
fn room_between(speaker: &Path, mic: &Path, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let (speaker, mic) = (speaker.to_path_buf(), mic.to_path_buf());
    std::thread::spawn(move || {
        let ir = sim::load_ir(&data("room-ir-a-16k.f32")).expect("IR a");
        let mut room = Room::new(RoomParams {
            rate: RATE,
            delay_ms: 80,
            ir,
            echo_gain: 0.25,
            drive: 1.5,
            noise_dbfs: -65.0,
        });
        // Non-blocking: open with no writer yet, and read what has come.
        let mut spk = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&speaker)
            .expect("open the speaker's pipe");
        let mut out: Option<std::fs::File> = None;
        let mut block = vec![0u8; 2 * N];
        let mut bytes = vec![0u8; 2 * N];
        let mut lockstep = false;
        let mut start = Instant::now();
        let mut index = 0u32;
        while !stop.load(Ordering::Relaxed) {
            if out.is_none() {
                // Blocks until the box's mic reads (the capture starts, or restarts).
                out = std::fs::OpenOptions::new().write(true).open(&mic).ok();
                start = Instant::now();
                index = 0;
            }
            let mut played = vec![0f32; N];
            if lockstep {
                // The speaker plays at real time (its sink syncs to the clock): it paces the mic.
                if spk.read_exact(&mut block).is_err() {
                    break;
                }
                roombox::media::echo::frames::s16_to_f32(&block, &mut played);
            } else {
                match spk.read(&mut block[..2]) {
                    Ok(2) => {
                        // The box has joined and its speaker plays: from here on, block by block.
                        set_blocking(&spk);
                        spk.read_exact(&mut block[2..])
                            .expect("the speaker's block");
                        roombox::media::echo::frames::s16_to_f32(&block, &mut played);
                        lockstep = true;
                    }
                    Ok(1) => {
                        set_blocking(&spk);
                        spk.read_exact(&mut block[1..])
                            .expect("the speaker's block");
                        roombox::media::echo::frames::s16_to_f32(&block, &mut played);
                        lockstep = true;
                    }
                    _ => {
                        // No speaker yet: the room's noise, 10 ms at a time.
                        index += 1;
                        let due = start + Duration::from_millis(10 * u64::from(index));
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                    }
                }
            }
            let echo = room.echo(&played);
            let noise = room.noise(N);
            let heard: Vec<f32> = echo.iter().zip(&noise).map(|(e, n)| e + n).collect();
            roombox::media::echo::frames::f32_to_s16(&heard, &mut bytes);
            if let Some(f) = out.as_mut() {
                if f.write_all(&bytes).is_err() {
                    out = None;
                }
            }
        }
    })
}

fn set_blocking(f: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: fcntl on a descriptor this File owns, changing only its O_NONBLOCK flag.
    unsafe {
        let flags = libc::fcntl(f.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(f.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK);
    }
}

/// The mean power over the participant's level readings between `from` and `to`, dBFS.
fn level(peer: &Peer, from: Instant, to: Instant) -> f64 {
    let levels: Vec<f64> = peer
        .stats()
        .audio_levels
        .iter()
        .filter(|(t, _)| *t >= from && *t < to)
        .map(|(_, db)| 10f64.powf(db / 10.0))
        .collect();
    assert!(
        levels.len() >= 10,
        "the participant measured {} levels in the window",
        levels.len()
    );
    10.0 * (levels.iter().sum::<f64>() / levels.len() as f64)
        .max(1e-20)
        .log10()
}

/// What the participant receives over the `secs` seconds from now, dBFS.
async fn listen(peer: &Peer, secs: u64) -> f64 {
    let from = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    level(peer, from, Instant::now())
}

#[test]
fn the_far_end_does_not_hear_itself_come_back() {
    support::netns::isolated_async(crate::test_name!(), scenario);
}

async fn scenario() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let rec = tmp.path().join("rec");
    let sc = ServerConfig::new("127.0.0.1", rec.clone()).expect("port");
    let url = sc.url();
    let _janus =
        JanusProcess::start(sc, &tmp.path().join("janus"), Duration::from_secs(20)).expect("janus");

    let wav = tmp.path().join("far.wav");
    let ok = std::process::Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&wav)
        .arg(format!("{FAR_TEXT} ").repeat(3))
        .status()
        .expect("espeak-ng (scripts/setup.sh installs it)")
        .success();
    assert!(ok, "espeak-ng failed");

    let (mic, speaker) = (tmp.path().join("mic.pcm"), tmp.path().join("speaker.pcm"));
    fifo(&mic);
    fifo(&speaker);
    let stop = Arc::new(AtomicBool::new(false));
    let room = room_between(&speaker, &mic, stop.clone());

    let mut config = support::inproc::room_config(&url, &rec, ROOM, (320, 240));
    config.media.video.source = VideoSource::Test;
    config.media.audio.source = AudioSource::Pipe;
    config.media.audio.file = mic.clone();
    config.media.audio.rate = RATE;
    config.media.audio.channels = 1;
    config.room.playback.audio_sink = format!("filesink location={} sync=true", speaker.display());
    config.media.audio.processing = ProcessingConfig {
        echo_cancel: Some(false),
        ..ProcessingConfig::default()
    };
    assert!(config.validate().is_empty(), "{:?}", config.validate());
    let processing = config.audio_processing();
    assert!(
        processing.noise_suppression && processing.gain_control && !processing.echo_cancel,
        "{processing:?}"
    );

    // Live captions of the room's mic, where a Whisper model is installed.
    let model = support::speech::model();
    if let Some(m) = &model {
        config.transcription.model = m.clone();
    }
    let b = Box_::start(&config);
    b.join().await;
    if model.is_some() {
        b.handle
            .send(Command::StartTranscription { language: None })
            .await
            .expect("start transcription");
    }
    let feed = b.feed_id().expect("the box's id");
    let wav: &'static str = Box::leak(wav.display().to_string().into_boxed_str());
    let mut peer = Peer::join_with(
        &url,
        ROOM,
        "far end",
        PeerOptions {
            speech: Some(wav),
            ..PeerOptions::default()
        },
    )
    .await;
    b.lists(&peer.id).await;
    peer.subscribe(ROOM, &feed).await;
    assert!(
        eventually(WAIT, || peer.stats().audio_levels.len() > 10).await,
        "the participant heard nothing from the box: {:?}",
        peer.stats().audio_dbfs
    );
    let heard = EchoPath::shared().status();
    assert!(
        heard.processing.is_some_and(|p| !p.echo_cancel),
        "{heard:?}"
    );

    // With no canceller: the participant's own speech comes back, through the room.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let off_from = now_ms();
    let off = listen(&peer, 6).await;
    let off_to = now_ms();

    // The canceller on, as `echo_cancel = true` gives: converging afresh, then measured.
    let on_config = {
        let mut c = config.clone();
        c.media.audio.processing.echo_cancel = Some(true);
        c
    };
    EchoPath::shared().configure(Some(Processing::from_config(&on_config)));
    let mut converging = Vec::new();
    for _ in 0..4 {
        converging.push(listen(&peer, 2).await);
    }
    let on_from = now_ms();
    let on = listen(&peer, 6).await;
    let on_to = now_ms();
    let status = EchoPath::shared().status();

    // The participant falls silent: what the box sends with no echo to send.
    peer.set_tone(false);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let silent = listen(&peer, 3).await;
    stop.store(true, Ordering::SeqCst);
    let (echoed_off, echoed_on) = (
        // Any utterance heard while the canceller was off.
        room_captions(&b, |start, end| start < off_to && end > off_from),
        // Any begun once it had converged.
        room_captions(&b, |start, _| (on_from..on_to).contains(&start)),
    );

    eprintln!(
        "the far end's own speech as it comes back from the box: {off:.1} dBFS with echo_cancel = false; \
         with it on, {converging:.1?} dBFS over its first 8 s (2 s each), then {on:.1} dBFS ({:.1} dB less); \
         {silent:.1} dBFS while the far end is silent; canceller: {status:?}",
        off - on
    );
    assert!(
        status.render_frames > 500 && status.processing.is_some_and(|p| p.echo_cancel),
        "the canceller heard the speaker: {status:?}"
    );
    assert!(
        off > silent + 20.0,
        "without the canceller the far end hears itself ({off:.1} dBFS) well over the box's silence ({silent:.1} dBFS)"
    );
    // Measured here: 30 dB under, at the level the box sends when the far end is silent (its
    // noise floor, about -55 dBFS with gain control on), which bounds what any canceller shows.
    assert!(
        on <= off - 25.0,
        "with the canceller the echo is only {:.1} dB under ({on:.1} against {off:.1} dBFS)",
        off - on
    );
    assert!(
        on <= silent + 4.0,
        "with the canceller the far end still hears itself: {on:.1} dBFS, where silence is {silent:.1}"
    );
    if model.is_some() {
        eprintln!(
            "the far end's clauses in the room's captions: {} in {} captions with echo_cancel = false, {} in {} with it on: {echoed_off:?} / {echoed_on:?}",
            echoed_off.iter().map(|c| c.1).sum::<usize>(),
            echoed_off.len(),
            echoed_on.iter().map(|c| c.1).sum::<usize>(),
            echoed_on.len(),
        );
        assert!(
            echoed_off.iter().any(|c| c.1 > 0),
            "with no canceller the room's captions should carry the far end's words: {echoed_off:?}"
        );
        assert!(
            echoed_on.iter().all(|c| c.1 == 0),
            "with the canceller the room's captions carry the far end's words: {echoed_on:?}"
        );
    }
    drop(room);
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The captions of the room's own mic whose utterances' (start, end), ms since the epoch, pass
/// `when`, each with how many of the far end's sentences (and clauses) it carries: three words
/// in a row from one.
fn room_captions(b: &Box_, when: impl Fn(u64, u64) -> bool) -> Vec<(String, usize)> {
    let local = b.state().local_participant.participant_id;
    let far: Vec<Vec<String>> = FAR_TEXT
        .split(['.', '?', ','])
        .map(support::speech::words)
        .filter(|w| w.len() >= 3)
        .collect();
    b.events()
        .into_iter()
        .filter_map(|e| match e {
            Event::TranscriptionText {
                participant_id,
                text,
                start_ms,
                end_ms,
                ..
            } if participant_id.as_deref() == Some(local.as_str()) && when(start_ms, end_ms) => {
                let said = support::speech::words(&text);
                let echoed = far
                    .iter()
                    .filter(|sentence| sentence.windows(3).any(|f| said.windows(3).any(|w| w == f)))
                    .count();
                Some((text, echoed))
            }
            _ => None,
        })
        .collect()
}
