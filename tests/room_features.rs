//! Room features end to end with a real Janus 1.1.2 and a webrtcbin participant, each test in a
//! network namespace of its own (see `support::netns`): chat over the room's data channel both
//! ways, speaker-changed from Janus's audio-level events, camera off and on renegotiated so the
//! others see the stream disabled and enabled (both ways), and ending the room (by the box or by
//! someone else) without rejoining.

mod support;

use roombox::command::Command;
use roombox::config::Config;
use roombox::event::Event;
use roombox::model::{MeetingState, StreamKind};
use roombox::room::janus::client::Client;
use roombox::room::janus::Janus as JanusBackend;
use roombox::room::signaller::{
    Joined, PublishKinds, RoomError, SignalEvent, Signaller, Subscription,
};
use roombox::room::JoinRequest;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::inproc::InProcBox as Box_;
use support::janus::{JanusProcess, ServerConfig};
use support::peer::{Peer, PeerOptions, PeerStats};
use support::poll_until as eventually;

const ROOM: &str = "5151";
const WAIT: Duration = Duration::from_secs(40);

fn config(url: &str, dir: &std::path::Path) -> Config {
    support::inproc::room_config(url, dir, ROOM, (320, 240))
}

/// A Janus that prints the end of its log when the test fails.
struct Janus(JanusProcess);

impl Drop for Janus {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.0.log).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!(
                "--- end of the Janus log ---\n{}",
                lines[lines.len().saturating_sub(80)..].join("\n")
            );
        }
    }
}

/// Janus in a temp dir, with the box's config.
fn janus(tmp: &std::path::Path) -> (Janus, Config) {
    let rec = tmp.join("rec");
    let mut sc = ServerConfig::new("127.0.0.1", rec.clone()).expect("port");
    sc.debug_level = 5;
    let url = sc.url();
    let janus =
        JanusProcess::start(sc, &tmp.join("janus"), Duration::from_secs(20)).expect("janus");
    (Janus(janus), config(&url, tmp))
}

/// Waits until `count` has not changed for `quiet`, within `timeout`; returns the settled value.
async fn settles(timeout: Duration, quiet: Duration, count: impl Fn() -> u64) -> Option<u64> {
    let end = tokio::time::Instant::now() + timeout;
    let mut last = count();
    let mut since = tokio::time::Instant::now();
    while tokio::time::Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = count();
        if now != last {
            last = now;
            since = tokio::time::Instant::now();
        } else if since.elapsed() >= quiet {
            return Some(now);
        }
    }
    None
}

/// A webrtcbin participant "Pat" joins, the box lists it, and it subscribes to the box and
/// sees and hears it. Returns the peer and the box's feed id.
async fn peer_sees_box(b: &Box_, url: &str) -> (Peer, String) {
    let feed = b.feed_id().expect("meeting-joined carries the box's id");
    let mut peer = Peer::join(url, ROOM, "Pat").await;
    b.lists(&peer.id).await;
    peer.subscribe(ROOM, &feed).await;
    assert!(
        eventually(WAIT, || peer.stats().video_frames > 10
            && peer.stats().audio_dbfs.is_some_and(|d| d > -30.0))
        .await,
        "the peer got no video or sound from the box: {:?}",
        peer.stats()
    );
    (peer, feed)
}

#[test]
fn chat_speaker_and_camera_in_a_janus_room() {
    support::netns::isolated_async(crate::test_name!(), features);
}

async fn features() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_janus, config) = janus(tmp.path());
    let url = config.room.url.clone();
    let b = Box_::start(&config);
    b.join().await;
    let feed = b.feed_id().expect("meeting-joined carries the box's id");

    // A participant with chat and audio levels joins and watches the box.
    let opts = PeerOptions {
        data: true,
        audio_level: true,
        ..Default::default()
    };
    let mut peer = Peer::join_with(&url, ROOM, "Pat", opts).await;
    let pid = peer.id.clone();
    b.lists(&pid).await;
    assert_eq!(
        b.state().participants[&pid].display_name,
        "Pat",
        "status shows the peer's display name"
    );
    peer.subscribe(ROOM, &feed).await;
    assert!(
        eventually(WAIT, || peer.stats().video_frames > 10).await,
        "the peer decoded no video from the box: {:?}",
        peer.stats()
    );

    // Speaker: the peer's tone makes Janus report it talking; the box names it.
    assert!(
        eventually(WAIT, || b.saw(|e| matches!(
            e,
            Event::SpeakerChanged { participant_id: Some(p) } if *p == pid
        )))
        .await,
        "no speaker-changed naming the peer; the peer's own handle saw {:?}",
        peer.stats().room_events
    );
    assert_eq!(b.state().active_speaker.as_deref(), Some(pid.as_str()));
    // The peer falls silent: Janus says it stopped talking; nobody speaks.
    peer.set_tone(false);
    assert!(
        eventually(WAIT, || b.state().active_speaker.is_none()).await,
        "the peer is still the speaker after falling silent"
    );
    assert!(b.saw(|e| matches!(
        e,
        Event::SpeakerChanged {
            participant_id: None
        }
    )));
    peer.set_tone(true);

    // Chat from the box: plain text on the box's data channel, relayed by Janus to the peer.
    // A private message is refused (the room's channel reaches everyone) and never sent.
    b.handle
        .send(Command::SendChat {
            message: "only for Pat".into(),
            to: Some(pid.clone()),
        })
        .await
        .expect("send-chat accepted");
    b.handle
        .send(Command::SendChat {
            message: "hello from the box".into(),
            to: None,
        })
        .await
        .expect("send-chat accepted");
    assert!(
        eventually(WAIT, || peer
            .stats()
            .chat
            .contains(&"hello from the box".to_string()))
        .await,
        "the peer received no chat from the box: {:?}",
        peer.stats().chat
    );
    assert_eq!(
        peer.stats().chat,
        vec!["hello from the box".to_string()],
        "the private message must not reach the room"
    );
    assert!(b.saw(|e| matches!(
        e,
        Event::Error { code, message } if code == "room" && message.contains("private")
    )));

    // Chat from the peer: chat-message on the box with the peer's id and name.
    peer.send_chat("hello from Pat", WAIT).await;
    assert!(
        eventually(WAIT, || b.saw(|e| matches!(
            e,
            Event::ChatMessage { message }
                if message.from == pid
                    && message.text == "hello from Pat"
                    && message.display_name.as_deref() == Some("Pat")
        )))
        .await,
        "no chat-message from the peer: {:?}",
        b.events()
            .iter()
            .filter(|e| matches!(e, Event::ChatMessage { .. }))
            .collect::<Vec<_>>()
    );

    peer.leave().await;
    b.handle.send(Command::Leave).await.expect("leave");
    assert!(eventually(WAIT, || b.state().meeting_state == MeetingState::Closed).await);
}

/// The quietest level the peer heard from the box while `f` ran, sampled every 100 ms.
async fn quietest_while<T>(peer: &Peer, f: impl std::future::Future<Output = T>) -> (T, f64) {
    let stats = peer.stats.clone();
    let quietest = Arc::new(Mutex::new(f64::INFINITY));
    let q = quietest.clone();
    let sampler = tokio::spawn(async move {
        loop {
            let level = stats.lock().ok().and_then(|s| s.audio_dbfs);
            if let (Some(l), Ok(mut q)) = (level, q.lock()) {
                *q = q.min(l);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let out = f.await;
    sampler.abort();
    let q = *quietest.lock().unwrap();
    (out, q)
}

/// Whether `e` says participant `pid`'s video was enabled (`on`) or disabled.
fn camera_event(e: &Event, pid: &str, on: bool) -> bool {
    match e {
        Event::StreamEnabled {
            participant_id,
            kind: StreamKind::Video,
            ..
        } => on && participant_id == pid,
        Event::StreamDisabled {
            participant_id,
            kind: StreamKind::Video,
            ..
        } => !on && participant_id == pid,
        _ => false,
    }
}

/// The box's feed as the peer's publisher handle last saw it listed, after entry `from`.
fn listed(stats: &PeerStats, feed: &str, from: usize) -> Vec<support::peer::FeedSeen> {
    stats
        .feeds
        .iter()
        .skip(from)
        .filter(|f| f.id == feed)
        .cloned()
        .collect()
}

#[test]
fn camera_off_and_on_are_renegotiated_so_the_room_sees_them() {
    support::netns::isolated_async(crate::test_name!(), camera);
}

async fn camera() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_janus, config) = janus(tmp.path());
    let url = config.room.url.clone();
    let b = Box_::start(&config);
    b.join().await;
    let (peer, feed) = peer_sees_box(&b, &url).await;
    let pid = peer.id.clone();

    // Camera off: the box renegotiates; Janus tells the room the box's video is disabled, the
    // peer stops receiving pictures (not black ones) and keeps hearing the box.
    let seen = peer.stats().feeds.len();
    b.clear_events();
    let (_, quietest) = quietest_while(&peer, async {
        b.handle
            .send(Command::DisableWebcam)
            .await
            .expect("camera off");
        assert!(
            eventually(WAIT, || listed(&peer.stats(), &feed, seen)
                .iter()
                .any(|f| f.has("video", true) && f.has("audio", false)))
            .await,
            "Janus never told the peer the box's video is disabled: {:?}",
            listed(&peer.stats(), &feed, seen)
        );
        let stalled = settles(WAIT, Duration::from_secs(3), || peer.stats().video_frames).await;
        stalled.unwrap_or_else(|| {
            panic!(
                "the peer kept decoding video with the camera off: {}",
                peer.stats().video_frames
            )
        })
    })
    .await;
    assert!(
        quietest > -30.0,
        "the box's sound dropped while its camera went off: {quietest} dBFS"
    );
    assert!(!b.state().local_participant.webcam_on);
    assert!(b.saw(|e| matches!(
        e,
        Event::StreamDisabled {
            kind: StreamKind::Video,
            ..
        }
    )));
    assert!(
        !b.saw(|e| matches!(e, Event::Error { .. })),
        "camera off reported an error: {:?}",
        b.events()
    );
    let frames = peer.stats().video_frames;

    // Camera on: renegotiated back; Janus lists the video enabled again, and pictures resume
    // (the box starts on a keyframe) with the sound still there.
    let seen = peer.stats().feeds.len();
    let (_, quietest) = quietest_while(&peer, async {
        b.handle
            .send(Command::EnableWebcam)
            .await
            .expect("camera on");
        assert!(
            eventually(WAIT, || listed(&peer.stats(), &feed, seen)
                .iter()
                .any(|f| f.has("video", false) && f.has("audio", false)))
            .await,
            "Janus never told the peer the box's video is back: {:?}",
            listed(&peer.stats(), &feed, seen)
        );
        assert!(
            eventually(WAIT, || peer.stats().video_frames > frames + 10).await,
            "the peer decoded no video after camera on: {} then {}",
            frames,
            peer.stats().video_frames
        );
    })
    .await;
    assert!(
        quietest > -30.0,
        "the box's sound dropped while its camera came back: {quietest} dBFS"
    );
    assert!(b.state().local_participant.webcam_on);
    assert!(b.saw(|e| matches!(
        e,
        Event::StreamEnabled {
            kind: StreamKind::Video,
            ..
        }
    )));
    assert!(
        !b.saw(|e| matches!(e, Event::Error { .. })),
        "camera on reported an error: {:?}",
        b.events()
    );

    // The other way: the peer turns its camera off with its own renegotiation. The box says
    // the peer's video stream is disabled, and enabled when it comes back, and keeps the
    // participant. (webrtcbin 1.22 sends no video again after its transceiver was inactive,
    // so that pictures resume is checked between two boxes, below.)
    assert!(
        eventually(WAIT, || b.frames_from(&pid) > 10
            && b.state()
                .participants
                .get(&pid)
                .is_some_and(|p| p.webcam_on))
        .await,
        "the box never decoded the peer's video: {} frames, {:?}",
        b.frames_from(&pid),
        b.state().participants.get(&pid)
    );
    let webcam = |b: &Box_| {
        b.handle
            .state()
            .borrow()
            .participants
            .get(&pid)
            .map(|p| p.webcam_on)
    };
    b.clear_events();
    peer.set_video(false).await;
    assert!(
        eventually(WAIT, || b.saw(|e| camera_event(e, &pid, false))).await,
        "no stream-disabled for the peer's video: {:?}",
        b.events()
    );
    assert_eq!(
        webcam(&b),
        Some(false),
        "status still shows the peer's camera on"
    );
    settles(WAIT, Duration::from_secs(3), || b.frames_from(&pid))
        .await
        .expect("the box kept decoding the peer's video with its camera off");
    peer.set_video(true).await;
    assert!(
        eventually(WAIT, || b.saw(|e| camera_event(e, &pid, true))).await,
        "no stream-enabled for the peer's video: {:?}",
        b.events()
    );
    assert_eq!(webcam(&b), Some(true));
    assert!(
        !b.saw(|e| matches!(
            e,
            Event::StreamDisabled { participant_id, kind: StreamKind::Audio, .. } if *participant_id == pid
        ) || matches!(e, Event::ParticipantLeft { .. } | Event::Error { .. })),
        "the peer's audio or the peer went with its camera, or errors: {:?}",
        b.events()
    );

    // Joining with the camera off publishes the video disabled from the start; camera on then
    // enables it.
    b.handle.send(Command::Leave).await.expect("leave");
    assert!(eventually(WAIT, || b.state().meeting_state == MeetingState::Closed).await);
    b.clear_events();
    let seen = peer.stats().feeds.len();
    b.handle
        .send(Command::Join {
            room_id: None,
            display_name: None,
            metadata: None,
            mic: None,
            webcam: Some(false),
            mode: None,
        })
        .await
        .expect("join accepted");
    assert!(
        eventually(WAIT, || b.state().meeting_state == MeetingState::Connected).await,
        "the box did not rejoin with its camera off"
    );
    let feed = b.feed_id().expect("meeting-joined carries the box's id");
    assert!(
        eventually(WAIT, || listed(&peer.stats(), &feed, seen)
            .iter()
            .any(|f| f.has("video", true) && f.has("audio", false)))
        .await,
        "the box joined with its camera off but Janus lists its video: {:?}",
        listed(&peer.stats(), &feed, seen)
    );
    let seen = peer.stats().feeds.len();
    b.handle
        .send(Command::EnableWebcam)
        .await
        .expect("camera on");
    assert!(
        eventually(WAIT, || listed(&peer.stats(), &feed, seen)
            .iter()
            .any(|f| f.has("video", false)))
        .await,
        "camera on after a camera-off join never enabled the box's video: {:?}",
        listed(&peer.stats(), &feed, seen)
    );
    assert!(
        !b.saw(|e| matches!(e, Event::Error { .. })),
        "a camera-off join made errors: {:?}",
        b.events()
    );

    peer.leave().await;
    b.handle.send(Command::Leave).await.expect("leave");
    assert!(eventually(WAIT, || b.state().meeting_state == MeetingState::Closed).await);
}

#[test]
fn a_camera_turned_off_and_on_by_another_participant_is_followed() {
    support::netns::isolated_async(crate::test_name!(), two_boxes);
}

/// Another box is the remote participant here (webrtcbin sends no video again once its
/// transceiver was inactive): its camera off and on must show on this box as stream events,
/// with pictures stopping and coming back on the same subscription, also when the box
/// subscribed while that camera was off (Janus then offers the video inactive and does not
/// re-offer it when the camera comes back; the relayed pictures must still play).
async fn two_boxes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_janus, config) = janus(tmp.path());
    let url = config.room.url.clone();
    let b = Box_::start(&config);
    b.join().await;
    let mut other_config = self::config(&url, &tmp.path().join("other"));
    other_config.device.name = "other".into();
    let other = Box_::start(&other_config);
    other.join().await;
    let oid = other.feed_id().expect("the other box's id");
    b.lists(&oid).await;
    assert!(
        eventually(WAIT, || b.frames_from(&oid) > 10).await,
        "the box decoded no video from the other box: {:?}",
        b.stats.borrow()
    );

    b.clear_events();
    other
        .handle
        .send(Command::DisableWebcam)
        .await
        .expect("camera off");
    assert!(
        eventually(WAIT, || b.saw(|e| camera_event(e, &oid, false))).await,
        "no stream-disabled for the other box's video: {:?}",
        b.events()
    );
    let frames = settles(WAIT, Duration::from_secs(3), || b.frames_from(&oid))
        .await
        .expect("the box kept decoding video from a camera that is off");
    other
        .handle
        .send(Command::EnableWebcam)
        .await
        .expect("camera on");
    assert!(
        eventually(WAIT, || b.saw(|e| camera_event(e, &oid, true))).await,
        "no stream-enabled for the other box's video: {:?}",
        b.events()
    );
    assert!(
        eventually(WAIT, || b.frames_from(&oid) > frames + 10).await,
        "no pictures after the other box's camera came back: {frames} then {}",
        b.frames_from(&oid)
    );

    // The box joins while the other camera is off, then the camera comes back.
    other
        .handle
        .send(Command::DisableWebcam)
        .await
        .expect("camera off");
    assert!(
        eventually(WAIT, || b
            .state()
            .participants
            .get(&oid)
            .is_some_and(|p| !p.webcam_on))
        .await
    );
    b.handle.send(Command::Leave).await.expect("leave");
    assert!(eventually(WAIT, || b.state().meeting_state == MeetingState::Closed).await);
    b.join().await;
    b.lists(&oid).await;
    assert!(!b.state().participants[&oid].webcam_on);
    other
        .handle
        .send(Command::EnableWebcam)
        .await
        .expect("camera on");
    assert!(
        eventually(WAIT, || b.frames_from(&oid) > 10).await,
        "no pictures from a camera that came back after the box joined: {}",
        b.frames_from(&oid)
    );
    assert!(
        !b.saw(|e| matches!(e, Event::Error { .. })),
        "errors: {:?}",
        b.events()
    );
    other.handle.send(Command::Leave).await.expect("leave");
    b.handle.send(Command::Leave).await.expect("leave");
    assert!(eventually(WAIT, || b.state().meeting_state == MeetingState::Closed).await);
}

/// The Janus backend, except that it refuses every renegotiation, as a room server that
/// cannot renegotiate (or one that times out) would: only once the test says so, so the test
/// can check what flows while the answer is pending.
struct Refusing {
    janus: JanusBackend,
    /// Set while a renegotiation waits.
    pending: Arc<std::sync::atomic::AtomicBool>,
    /// Lets a waiting renegotiation fail.
    release: Arc<tokio::sync::Notify>,
}

#[async_trait::async_trait]
impl Signaller for Refusing {
    fn name(&self) -> &'static str {
        self.janus.name()
    }
    async fn join(&mut self, req: &JoinRequest) -> Result<Joined, RoomError> {
        self.janus.join(req).await
    }
    async fn publish(&mut self, offer: &str, kinds: PublishKinds) -> Result<String, RoomError> {
        self.janus.publish(offer, kinds).await
    }
    async fn renegotiate(&mut self, _: &str, _: PublishKinds) -> Result<String, RoomError> {
        self.pending
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.release.notified().await;
        self.pending
            .store(false, std::sync::atomic::Ordering::SeqCst);
        Err(RoomError::Refused(
            "configure: 499 refused by the test".into(),
        ))
    }
    async fn unpublish(&mut self) -> Result<(), RoomError> {
        self.janus.unpublish().await
    }
    async fn subscribe(&mut self, participant_id: &str) -> Result<Subscription, RoomError> {
        self.janus.subscribe(participant_id).await
    }
    async fn accept(&mut self, subscription_id: &str, answer: &str) -> Result<(), RoomError> {
        self.janus.accept(subscription_id, answer).await
    }
    async fn unsubscribe(&mut self, subscription_id: &str) -> Result<(), RoomError> {
        self.janus.unsubscribe(subscription_id).await
    }
    async fn leave(&mut self) -> Result<(), RoomError> {
        self.janus.leave().await
    }
    async fn end_for_all(&mut self) -> Result<(), RoomError> {
        self.janus.end_for_all().await
    }
    async fn set_recording(&mut self, on: bool) -> Result<(), RoomError> {
        self.janus.set_recording(on).await
    }
    async fn next_event(&mut self) -> Option<SignalEvent> {
        self.janus.next_event().await
    }
}

#[test]
fn a_refused_renegotiation_still_stops_the_video_and_keeps_the_meeting() {
    support::netns::isolated_async(crate::test_name!(), refused);
}

async fn refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_janus, config) = janus(tmp.path());
    let url = config.room.url.clone();
    let pending = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let release = Arc::new(tokio::sync::Notify::new());
    let backend = Box::new(Refusing {
        janus: JanusBackend::new(config.room.clone()),
        pending: pending.clone(),
        release: release.clone(),
    });
    let b = Box_::start_with(&config, roombox::room::session::spawn(&config, backend));
    b.join().await;
    let (peer, feed) = peer_sees_box(&b, &url).await;

    // Camera off: the room takes its time, then refuses to renegotiate. The sound keeps
    // flowing meanwhile; the box says so, stops the video anyway, keeps the sound, and stays in
    // the meeting.
    let seen = peer.stats().feeds.len();
    b.clear_events();
    let (frames, quietest) = quietest_while(&peer, async {
        b.handle
            .send(Command::DisableWebcam)
            .await
            .expect("camera off");
        assert!(
            eventually(WAIT, || pending.load(std::sync::atomic::Ordering::SeqCst)).await,
            "camera off never renegotiated"
        );
        let heard = peer.stats().audio_buffers;
        // 50 decoded Opus buffers: a second of sound while the renegotiation is pending.
        assert!(
            eventually(WAIT, || peer.stats().audio_buffers > heard + 50).await,
            "the sound stopped while the renegotiation was pending: {} then {}",
            heard,
            peer.stats().audio_buffers
        );
        assert!(pending.load(std::sync::atomic::Ordering::SeqCst));
        release.notify_one();
        assert!(
            eventually(WAIT, || b.saw(|e| matches!(
                e,
                Event::Error { code, message }
                    if code == "room" && message.contains("camera off") && message.contains("refused by the test")
            )))
            .await,
            "no error event for the refused renegotiation: {:?}",
            b.events()
        );
        settles(WAIT, Duration::from_secs(3), || peer.stats().video_frames)
            .await
            .unwrap_or_else(|| {
                panic!(
                    "the peer kept decoding video with the camera off: {}",
                    peer.stats().video_frames
                )
            })
    })
    .await;
    assert!(
        quietest > -30.0,
        "the box's sound dropped with the refused renegotiation: {quietest} dBFS"
    );
    assert_eq!(b.state().meeting_state, MeetingState::Connected);
    assert!(!b.state().local_participant.webcam_on);
    assert!(
        !b.saw(|e| matches!(
            e,
            Event::MeetingStateChanged { .. } | Event::MeetingLeft { .. }
        )),
        "the refused renegotiation disturbed the meeting: {:?}",
        b.events()
    );
    assert!(
        listed(&peer.stats(), &feed, seen).is_empty(),
        "Janus relisted the box's feed without a renegotiation: {:?}",
        listed(&peer.stats(), &feed, seen)
    );

    // Camera on: the video was never renegotiated away, so pictures simply resume.
    b.handle
        .send(Command::EnableWebcam)
        .await
        .expect("camera on");
    assert!(
        eventually(WAIT, || peer.stats().video_frames > frames + 10).await,
        "the peer decoded no video after camera on: {} then {}",
        frames,
        peer.stats().video_frames
    );

    peer.leave().await;
    b.handle.send(Command::Leave).await.expect("leave");
    assert!(eventually(WAIT, || b.state().meeting_state == MeetingState::Closed).await);
}

#[test]
fn ending_the_room_closes_it_for_everyone_and_the_box_stays_out() {
    support::netns::isolated_async(crate::test_name!(), ending);
}

/// After the room ended: left with reason `ended`, CLOSED, and no rejoin for a while (the
/// reconnect backoff here starts at 200 ms, so a rejoin loop would show within seconds).
async fn stays_out(b: &Box_) {
    assert!(
        eventually(WAIT, || b.saw(|e| matches!(
            e,
            Event::MeetingLeft { reason, .. } if reason == "ended"
        )))
        .await,
        "no meeting-left with reason `ended`: {:?}",
        b.events()
    );
    assert!(eventually(WAIT, || b.state().meeting_state == MeetingState::Closed).await);
    assert!(b.saw(|e| matches!(
        e,
        Event::MeetingStateChanged {
            state: MeetingState::Closed
        }
    )));
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after: Vec<Event> = b
        .events()
        .into_iter()
        .skip_while(|e| !matches!(e, Event::MeetingLeft { .. }))
        .collect();
    assert!(
        !after.iter().any(|e| matches!(
            e,
            Event::MeetingJoined { .. }
                | Event::MeetingStateChanged {
                    state: MeetingState::Connecting
                }
        )),
        "the box tried to rejoin an ended room: {after:?}"
    );
    assert_eq!(b.state().meeting_state, MeetingState::Closed);
    assert!(b.state().participants.is_empty());
}

async fn ending() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_janus, config) = janus(tmp.path());
    let url = config.room.url.clone();
    let b = Box_::start(&config);

    // A moderator made the room with a secret the box does not know: the box cannot end it,
    // says so, and stays in.
    let (admin, _events) = Client::connect(&url).await.expect("connect");
    let h = admin
        .attach("janus.plugin.videoroom")
        .await
        .expect("attach");
    admin
        .request(
            h,
            json!({"request": "create", "room": 5151, "secret": "s3cret", "audiocodec": "opus",
                   "videocodec": "h264", "h264_profile": "42e01f", "notify_joining": true}),
        )
        .await
        .expect("the moderator creates the room");
    b.join().await;
    let peer = Peer::join(&url, ROOM, "Moderator").await;
    b.lists(&peer.id).await;
    b.clear_events();
    b.handle.send(Command::End).await.expect("end accepted");
    assert!(
        eventually(WAIT, || b.saw(|e| matches!(
            e,
            Event::Error { code, message } if code == "room" && message.contains("end for everyone")
        )))
        .await,
        "no error for an end Janus refused: {:?}",
        b.events()
    );
    assert_eq!(b.state().meeting_state, MeetingState::Connected);
    assert!(!b.saw(|e| matches!(e, Event::MeetingLeft { .. })));
    assert!(peer.stats().room_events.iter().all(|e| e != "destroyed"));

    // The moderator ends it: the box reports it and stays out.
    peer.destroy_room(ROOM, Some("s3cret"))
        .await
        .expect("the moderator destroys the room");
    stays_out(&b).await;
    peer.leave().await;

    // The box ends the room: the peer's handle hears `destroyed`, the room is gone, and the
    // box stays out.
    b.join().await;
    let peer = Peer::join(&url, ROOM, "Guest").await;
    b.lists(&peer.id).await;
    b.clear_events();
    b.handle.send(Command::End).await.expect("end accepted");
    assert!(
        eventually(WAIT, || peer
            .stats()
            .room_events
            .iter()
            .any(|e| e == "destroyed"))
        .await,
        "the peer never heard the room end: {:?}",
        peer.stats().room_events
    );
    stays_out(&b).await;
    let h = peer
        .client
        .attach("janus.plugin.videoroom")
        .await
        .expect("attach");
    let exists = peer
        .client
        .request(h, json!({"request": "exists", "room": 5151}))
        .await
        .expect("exists");
    assert_eq!(exists["exists"], json!(false), "the room still exists");
    peer.leave().await;
}
