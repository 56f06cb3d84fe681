//! Transcription in the agent, end to end: the real `roombox` binary with the file mic playing
//! espeak-ng's sentences (scripts/speech-clips.sh), the tiny.en model setup converts, and its
//! events, state, transcript files and HTTP server.
//!
//! WER threshold for live captions: 22 %. The engine alone measures 16.3 to 19.3 % on these
//! clips (tests/transcribe.rs). Live, the captions' words are scored in order against the best
//! run of the looping sentences (the first caption may start mid-sentence, so it is dropped), so
//! a caption said twice costs its words; measured 13.6 % live, 14.3 % for a recording (9.5 % with
//! recordings decoded whole, scored between the first and the last cue, 2026-12-07) and 15.2 %
//! for a remote participant through Opus (2026-12-07; 12 to 19 % with the earlier, lenient
//! scoring). A broken tap, resampling or VAD path gives 60 % and more.
//!
//! The engine runs at the lowest CPU priority (SCHED_IDLE), so on a machine busy with other
//! work captions come late: the timeouts here are generous, and the latency is measured by the
//! bench, not asserted.

mod support;

use roombox::command::{Command, ErrorCode};
use roombox::event::Event;
use roombox::model::ServiceState;
use roombox::transcribe::transcript::parse_vtt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::agent::{wait_event, AgentProcess, SMALL_MEDIA};
use support::speech::{self, Clip};

/// Live captions' word error rate ceiling (see the header).
const MAX_WER: f64 = 0.22;

/// A caption as the event gives it.
#[derive(Debug, Clone)]
struct Caption {
    participant_id: Option<String>,
    participant_name: String,
    text: String,
    timestamp_ms: u64,
    start_ms: u64,
    end_ms: u64,
    meeting_start_ms: u64,
    meeting_end_ms: u64,
}

fn caption(e: &Event) -> Option<Caption> {
    match e {
        Event::TranscriptionText {
            participant_id,
            participant_name,
            text,
            timestamp_ms,
            start_ms,
            end_ms,
            meeting_start_ms,
            meeting_end_ms,
            is_final,
        } => {
            assert!(is_final);
            Some(Caption {
                participant_id: participant_id.clone(),
                participant_name: participant_name.clone(),
                text: text.clone(),
                timestamp_ms: *timestamp_ms,
                start_ms: *start_ms,
                end_ms: *end_ms,
                meeting_start_ms: *meeting_start_ms,
                meeting_end_ms: *meeting_end_ms,
            })
        }
        _ => None,
    }
}

/// The config of a box whose mic is `wav`, transcribing with `model`.
fn config(wav: &Path, model: &Path, extra: &str) -> String {
    format!(
        "[media.video]\nsource = \"none\"\n[media.audio]\nsource = \"file\"\nfile = \"{}\"\n[transcription]\nmodel = \"{}\"\n{extra}",
        wav.display(),
        model.display()
    )
}

/// Synthesized speech: every clip joined into one file in `dir`, and all the sentences.
fn speech_file(dir: &Path) -> (PathBuf, Vec<String>) {
    let clips = speech::clips(&dir.join("clips"));
    let all = dir.join("all.wav");
    speech::join(&clips, &all);
    let sentences = clips.iter().flat_map(|c| c.sentences.clone()).collect();
    (all, sentences)
}

async fn start_transcription(agent: &AgentProcess) {
    agent
        .wait_state("media PLAYING", Duration::from_secs(30), |s| {
            s["media"]["state"] == "PLAYING"
        })
        .await;
    let mut events = agent.events().await;
    let r = agent
        .call(Command::StartTranscription { language: None })
        .await;
    assert!(r.ok, "start-transcription refused: {:?}", r.error);
    wait_event(&mut events, Duration::from_secs(30), |e| {
        matches!(
            e,
            Event::TranscriptionStateChanged {
                state: ServiceState::Started,
                ..
            }
        )
    })
    .await
    .unwrap_or_else(|| panic!("transcription never STARTED; log:\n{}", agent.log()));
}

/// Collects `n` captions, or panics after `timeout`.
async fn captions(agent: &AgentProcess, n: usize, timeout: Duration) -> Vec<Caption> {
    let mut events = agent.events().await;
    let mut out = Vec::new();
    let deadline = Instant::now() + timeout;
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match wait_event(&mut events, left, |e| caption(e).is_some()).await {
            Some(e) => out.extend(caption(&e)),
            None => panic!(
                "{} of {n} captions in {timeout:?}: {out:#?}\nlog:\n{}",
                out.len(),
                agent.log()
            ),
        }
    }
    out
}

/// The scorer itself: in order, a repeated caption is an insertion, not a free second match.
#[test]
fn captions_are_scored_in_order_and_a_repeat_costs_its_words() {
    let sentences: Vec<String> = ["one two three", "four five", "six seven eight"]
        .map(String::from)
        .to_vec();
    let s = |c: &[&str]| {
        speech::score(
            &c.iter().map(|x| x.to_string()).collect::<Vec<_>>(),
            &sentences,
        )
    };
    // From the second sentence, wrapping around the loop: perfect.
    assert_eq!(
        s(&["four five", "six seven eight", "one two three"]),
        (0, 8)
    );
    // The same caption twice: two inserted words.
    assert_eq!(s(&["four five", "four five", "six seven eight"]), (2, 5));
    // Out of order: not a perfect score either.
    assert!(s(&["six seven eight", "four five"]).0 > 0);
}

#[tokio::test]
async fn the_mics_speech_becomes_captions_of_the_local_participant() {
    let Some(model) = speech::model() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let (wav, sentences) = speech_file(dir.path());
    let agent = AgentProcess::start(&config(&wav, &model, ""));
    start_transcription(&agent).await;
    // Seven captions: the first may begin mid-sentence (the file plays from capture's start).
    let caps = captions(&agent, 7, Duration::from_secs(240)).await;
    for c in &caps {
        assert_eq!(c.participant_id.as_deref(), Some("test-box"), "{c:?}");
        assert_eq!(c.participant_name, "roombox", "the device's name");
        assert!(c.start_ms < c.end_ms && c.end_ms <= c.timestamp_ms, "{c:?}");
        assert!(c.meeting_start_ms < c.meeting_end_ms, "{c:?}");
        assert_eq!(
            c.end_ms - c.start_ms,
            c.meeting_end_ms - c.meeting_start_ms,
            "wall and meeting-relative spans agree"
        );
    }
    for w in caps.windows(2) {
        assert!(w[0].meeting_start_ms < w[1].meeting_start_ms, "in order");
    }
    let texts: Vec<String> = caps[1..].iter().map(|c| c.text.clone()).collect();
    let (e, n) = speech::score(&texts, &sentences);
    let wer = e as f64 / n as f64;
    let mut lags: Vec<u64> = caps.iter().map(|c| c.timestamp_ms - c.end_ms).collect();
    lags.sort();
    eprintln!(
        "live WER {:.1} % over {n} words; caption lag median {} ms, max {} ms; {texts:#?}",
        wer * 100.0,
        lags[lags.len() / 2],
        lags[lags.len() - 1]
    );
    assert!(wer <= MAX_WER, "WER {wer:.3} above {MAX_WER}: {texts:#?}");

    // The running transcript: in the state, served over HTTP, WebVTT with the same cues.
    let state = agent.state().await;
    let t = &state["transcription"];
    assert_eq!(t["state"], "STARTED");
    assert!(t["captions"].as_u64().unwrap_or(0) >= 7);
    let url = t["transcriptUrl"]
        .as_str()
        .expect("transcript URL")
        .to_string();
    let r = support::http::get_url(&url).await;
    assert_eq!(r.code, 200, "{url}");
    assert!(r
        .header("content-type")
        .unwrap_or("")
        .starts_with("text/vtt"));
    let cues = parse_vtt(&r.text()).expect("the transcript parses as WebVTT");
    assert!(cues.len() >= caps.len(), "{} cues", cues.len());
    for w in cues.windows(2) {
        assert!(w[0].0 <= w[1].0 && w[0].0 < w[0].1, "monotonic: {w:?}");
    }
    assert!(cues[0].2.starts_with("<v roombox>"), "{:?}", cues[0]);
    let base = url.split("/transcripts/").next().expect("base");
    let list = support::http::get_url(&format!("{base}/transcripts/")).await;
    assert_eq!(list.code, 200);
    let name = t["transcript"].as_str().expect("name");
    assert!(list.text().contains(name), "{}", list.text());
    assert!(list.text().contains(&name.replace(".vtt", ".jsonl")));
    for bad in ["..%2Froombox.toml", "agent.log", "x.vtt"] {
        let r = support::http::get_url(&format!("{base}/transcripts/{bad}")).await;
        assert_eq!(r.code, 404, "{bad}");
    }

    let mut events = agent.events().await;
    assert!(agent.call(Command::StopTranscription).await.ok);
    wait_event(&mut events, Duration::from_secs(60), |e| {
        matches!(
            e,
            Event::TranscriptionStateChanged {
                state: ServiceState::Stopped,
                ..
            }
        )
    })
    .await
    .unwrap_or_else(|| panic!("never STOPPED; log:\n{}", agent.log()));
    let jsonl = agent
        .state_dir()
        .join("transcripts")
        .join(name.replace(".vtt", ".jsonl"));
    let lines = std::fs::read_to_string(&jsonl).expect("JSON lines transcript");
    assert!(lines.lines().count() >= caps.len());
    for l in lines.lines() {
        let v: serde_json::Value = serde_json::from_str(l).expect("one JSON object a line");
        assert_eq!(v["participantId"], "test-box");
    }
}

#[tokio::test]
async fn muted_speech_is_never_transcribed() {
    let Some(model) = speech::model() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let (wav, _) = speech_file(dir.path());
    let agent = AgentProcess::start(&config(&wav, &model, ""));
    agent
        .wait_state("mic on", Duration::from_secs(30), |s| {
            s["localParticipant"]["micOn"] == true
        })
        .await;
    assert!(agent.call(Command::DisableMic).await.ok);
    agent
        .wait_state("mic muted", Duration::from_secs(10), |s| {
            s["localParticipant"]["micOn"] == false
        })
        .await;
    start_transcription(&agent).await;
    let mut events = agent.events().await;
    // 25 s of the file is four or five sentences: none may come out while muted.
    let heard = wait_event(&mut events, Duration::from_secs(25), |e| {
        caption(e).is_some()
    })
    .await;
    assert!(heard.is_none(), "muted speech was transcribed: {heard:?}");
    // And the same box does transcribe once unmuted, so the silence above meant something.
    assert!(agent.call(Command::EnableMic).await.ok);
    let caps = captions(&agent, 1, Duration::from_secs(120)).await;
    assert_eq!(caps[0].participant_id.as_deref(), Some("test-box"));
}

#[tokio::test]
async fn bad_models_and_languages_are_clear_errors_and_change_nothing() {
    let Some(model) = speech::model() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let clips: Vec<Clip> = speech::clips(&dir.path().join("clips"));
    let garbage = dir.path().join("garbage.bin");
    std::fs::write(&garbage, b"not a model\n".repeat(100_000)).expect("write");
    let mut agent = AgentProcess::start(&config(&clips[0].wav, &garbage, ""));
    agent
        .wait_state("media PLAYING", Duration::from_secs(30), |s| {
            s["media"]["state"] == "PLAYING"
        })
        .await;
    let refused = |r: roombox::api::ReplyLine, code: ErrorCode, words: &str| {
        assert!(!r.ok, "accepted");
        let e = r.error.expect("an error");
        assert_eq!(e.code, code, "{e:?}");
        assert!(e.message.contains(words), "{e:?}");
    };
    refused(
        agent
            .call(Command::StartTranscription { language: None })
            .await,
        ErrorCode::Unavailable,
        &garbage.display().to_string(),
    );
    // Nothing changed, and the agent is up.
    let s = agent.state().await;
    assert_eq!(s["transcription"]["state"], "STOPPED");
    assert!(agent.call(Command::Ping).await.ok);

    // A model that is not there.
    let missing = dir.path().join("nowhere.bin");
    let body = std::fs::read_to_string(&agent.config).expect("config");
    std::fs::write(
        &agent.config,
        body.replace(
            &garbage.display().to_string(),
            &missing.display().to_string(),
        ),
    )
    .expect("config");
    assert!(agent.call(Command::ReloadConfig).await.ok);
    tokio::time::sleep(Duration::from_millis(500)).await;
    refused(
        agent
            .call(Command::StartTranscription { language: None })
            .await,
        ErrorCode::Unavailable,
        "no such file",
    );

    // The real model: languages it does not know are refused; English starts.
    let body = std::fs::read_to_string(&agent.config).expect("config");
    std::fs::write(
        &agent.config,
        body.replace(&missing.display().to_string(), &model.display().to_string()),
    )
    .expect("config");
    assert!(agent.call(Command::ReloadConfig).await.ok);
    tokio::time::sleep(Duration::from_millis(500)).await;
    refused(
        agent
            .call(Command::StartTranscription {
                language: Some("de-DE".into()),
            })
            .await,
        ErrorCode::OutOfRange,
        "de",
    );
    refused(
        agent
            .call(Command::StartTranscription {
                language: Some("klingon!".into()),
            })
            .await,
        ErrorCode::OutOfRange,
        "language",
    );
    assert_eq!(agent.state().await["transcription"]["state"], "STOPPED");
    start_transcription(&agent).await;
    refused(
        agent
            .call(Command::StartTranscription { language: None })
            .await,
        ErrorCode::InvalidState,
        "already",
    );
    // A clean stop of the agent while transcribing.
    agent.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(agent.wait_exit(Duration::from_secs(30)).success());
}

#[tokio::test]
async fn overload_drops_the_oldest_speech_with_an_event_and_media_goes_on() {
    let Some(model) = speech::model() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let (wav, _) = speech_file(dir.path());
    let agent = AgentProcess::start(&config(&wav, &model, "threads = 1\nmax_backlog = \"1s\"\n"));
    start_transcription(&agent).await;
    let restarts = agent.state().await["media"]["restarts"].clone();
    // The engine runs at the lowest priority: two busy threads at normal priority take both
    // cores, and it gets no CPU, as on a box whose call needs all of it.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hogs: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                }
                x
            })
        })
        .collect();
    let mut events = agent.events().await;
    let dropped = wait_event(&mut events, Duration::from_secs(90), |e| {
        matches!(e, Event::TranscriptionDropped { .. })
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for h in hogs {
        let _ = h.join();
    }
    let Some(Event::TranscriptionDropped {
        participant_id,
        audio_ms,
    }) = dropped
    else {
        panic!("no transcription-dropped; log:\n{}", agent.log())
    };
    assert_eq!(participant_id, "test-box");
    assert!(audio_ms > 0);
    // Capture never stalled, and the captions come back once the CPU is free.
    let s = agent.state().await;
    assert_eq!(s["media"]["state"], "PLAYING");
    assert_eq!(s["media"]["restarts"], restarts);
    assert_eq!(s["transcription"]["state"], "STARTED");
    assert!(s["transcription"]["droppedMs"].as_u64().unwrap_or(0) >= audio_ms);
    captions(&agent, 1, Duration::from_secs(120)).await;
}

#[tokio::test]
async fn a_recording_is_transcribed_beside_its_segments_and_pending_work_survives_a_restart() {
    let Some(model) = speech::model() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let clips = speech::clips(&dir.path().join("clips"));
    let state = dir.path().join("state");
    let recordings = dir.path().join("recordings");
    let body = |post: bool| {
        format!(
            "[device]\nid = \"rec-box\"\nname = \"Rec Box\"\nstate_dir = \"{}\"\n{SMALL_MEDIA}\n[media.audio]\nsource = \"file\"\nfile = \"{}\"\n[recording]\ndir = \"{}\"\nformat = \"mkv\"\nsegment = \"60s\"\nmin_free_mb = 0\nstop_free_mb = 0\n[transcription]\nmodel = \"{}\"\npost_on_stop = {post}\n",
            state.display(),
            clips[0].wav.display(),
            recordings.display(),
            model.display()
        )
    };
    let mut agent = AgentProcess::start(&body(true));
    agent
        .wait_state("media PLAYING", Duration::from_secs(30), |s| {
            s["media"]["state"] == "PLAYING"
        })
        .await;
    let mut events = agent.events().await;
    let start = Command::StartRecording {
        target: roombox::model::RecordingTarget::Local,
    };
    assert!(agent.call(start).await.ok);
    // The clip is about 13 s: record it twice through, so that whole sentences are scored
    // between the first and the last, which the recording's start and stop may cut.
    tokio::time::sleep(Duration::from_secs(28)).await;
    let stop = Command::StopRecording {
        target: roombox::model::RecordingTarget::Local,
    };
    assert!(agent.call(stop).await.ok);
    // post_on_stop: the segment is transcribed without being asked.
    let done = wait_event(&mut events, Duration::from_secs(180), |e| {
        matches!(
            e,
            Event::TranscriptionProgress {
                state: ServiceState::Stopped | ServiceState::Failed,
                ..
            }
        )
    })
    .await
    .unwrap_or_else(|| panic!("no transcription of the recording; log:\n{}", agent.log()));
    let Event::TranscriptionProgress {
        recording,
        vtt: Some(vtt),
        srt: Some(srt),
        state: ServiceState::Stopped,
        total_ms,
        done_ms,
        ..
    } = done
    else {
        panic!("{done:?}")
    };
    assert_eq!(done_ms, total_ms);
    assert!(total_ms > 20_000, "{total_ms} ms recorded");
    let segment = recordings.join(&recording);
    let vtt_path = recordings.join(&vtt);
    let text = std::fs::read_to_string(&vtt_path).expect("the .vtt beside the segment");
    let cues = parse_vtt(&text).expect("WebVTT");
    assert!(cues.len() >= 2, "{text}");
    for w in cues.windows(2) {
        assert!(w[0].0 <= w[1].0, "monotonic: {text}");
    }
    assert!(cues.iter().all(|c| c.0 < c.1 && c.1 <= total_ms + 1000));
    let srt_text = std::fs::read_to_string(recordings.join(&srt)).expect("the .srt");
    assert!(srt_text.starts_with("1\n00:00:"), "{srt_text}");
    assert!(srt_text.contains("Rec Box: "), "{srt_text}");
    let said: Vec<String> = cues
        .iter()
        .map(|c| c.2.trim_start_matches("<v Rec Box>").to_string())
        .collect();
    // The first cue may start mid-sentence (the recording started after the file did), and the
    // last may end mid-sentence, which Whisper, decoding the recording whole, finishes with words
    // of its own ("restarted whilst you're in the house" for a cut "restarted twi-").
    assert!(said.len() >= 4, "{said:?}");
    let (e, n) = speech::score(&said[1..said.len() - 1], &clips[0].sentences);
    eprintln!(
        "recording WER {:.1} % over {n} words: {said:?}",
        100.0 * e as f64 / n as f64
    );
    assert!(e as f64 / n as f64 <= MAX_WER, "{said:?}");

    // A recording that does not exist is an error.
    let r = agent
        .call(Command::TranscribeRecording {
            file: Some("roombox-nope.mkv".into()),
            from: None,
            to: None,
        })
        .await;
    assert_eq!(r.error.expect("refused").code, ErrorCode::InvalidArgument);

    // Work queued when the agent stops is done when it comes back.
    agent.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(agent.wait_exit(Duration::from_secs(30)).success());
    std::fs::remove_file(&vtt_path).expect("rm vtt");
    std::fs::write(
        state.join(roombox::transcribe::post::PENDING_FILE),
        serde_json::to_vec(&[&segment]).expect("json"),
    )
    .expect("pending");
    drop(agent);
    let agent = AgentProcess::start_in(tempfile::tempdir().expect("tempdir"), &body(false));
    support::eventually(
        "the pending segment transcribed",
        Duration::from_secs(180),
        || {
            let p = vtt_path.clone();
            async move { p.exists().then_some(()) }
        },
    )
    .await;
    support::eventually("the pending file emptied", Duration::from_secs(10), || {
        let p = state.join(roombox::transcribe::post::PENDING_FILE);
        async move {
            roombox::transcribe::post::read_pending(&p)
                .is_empty()
                .then_some(())
        }
    })
    .await;
    assert!(agent.call(Command::Ping).await.ok);
}

#[test]
fn a_remote_participants_speech_is_captioned_with_their_id() {
    support::netns::isolated_async(crate::test_name!(), remote_speech);
}

/// The box in a Janus room (in the test's network namespace) with no mic of its own; a
/// webrtcbin participant speaks the clips; their captions carry the participant's id and name.
async fn remote_speech() {
    use support::inproc::InProcBox;
    use support::janus::{JanusProcess, ServerConfig};
    use support::peer::{Peer, PeerOptions};
    let Some(model) = speech::model() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let (wav, sentences) = speech_file(tmp.path());
    let rec = tmp.path().join("rec");
    let sc = ServerConfig::new("127.0.0.1", rec.clone()).expect("port");
    let url = sc.url();
    let _janus =
        JanusProcess::start(sc, &tmp.path().join("janus"), Duration::from_secs(20)).expect("janus");
    let mut config = support::inproc::room_config(&url, &rec, "4545", (320, 180));
    config.media.audio.source = roombox::config::AudioSource::None;
    config.transcription.model = model;
    let b = InProcBox::start(&config);
    b.join().await;
    let wav: &'static str = Box::leak(wav.display().to_string().into_boxed_str());
    let opts = PeerOptions {
        speech: Some(wav),
        ..Default::default()
    };
    let peer = Peer::join_with(&url, "4545", "Speaker Pat", opts).await;
    let pid = peer.id.clone();
    assert!(
        support::poll_until(Duration::from_secs(40), || b
            .state()
            .participants
            .contains_key(&pid))
        .await,
        "the box never listed the peer"
    );
    b.handle
        .send(Command::StartTranscription { language: None })
        .await
        .expect("start-transcription");
    let got = |b: &InProcBox| -> Vec<Caption> { b.events().iter().filter_map(caption).collect() };
    assert!(
        support::poll_until(Duration::from_secs(180), || got(&b).len() >= 4).await,
        "captions of the remote participant: {:#?}",
        got(&b)
    );
    let caps = got(&b);
    for c in &caps {
        assert_eq!(c.participant_id.as_deref(), Some(pid.as_str()), "{c:?}");
        assert_eq!(c.participant_name, "Speaker Pat");
    }
    let texts: Vec<String> = caps[1..].iter().map(|c| c.text.clone()).collect();
    let (e, n) = speech::score(&texts, &sentences);
    eprintln!(
        "remote WER {:.1} % over {n} words: {texts:#?}",
        100.0 * e as f64 / n as f64
    );
    // Opus at the peer's default bitrate and back costs a little accuracy.
    assert!(e as f64 / n as f64 <= MAX_WER + 0.03, "{texts:#?}");
    peer.leave().await;
}
