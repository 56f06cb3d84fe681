//! Content share from the box, through the real media engine and GStreamer elements: the share
//! starts and stops beside the camera without restarting it, its own encode decodes at its own
//! size, and the program (what local outputs show) switches from the camera to the share's
//! encode and back at keyframes, with the switch measured.

mod support;

use roombox::config::ShareSource;
use roombox::media::{EncodedSample, Feed, MediaAction, MediaControl, MediaNotice, ShareNotice};
use std::time::{Duration, Instant};
use support::engine::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_share_runs_beside_the_camera_and_the_program_follows_it() {
    let mut r = Rig::start(|_| {}).await;
    let mut camera_rx = r.tap("camera", vec![Feed::H264]);
    let mut share_rx = r.tap("share", vec![Feed::Share]);
    let mut program_rx = r.tap("program", vec![Feed::Program]);
    let mut camera = Vec::new();
    let mut share = Vec::new();
    let mut program = Vec::new();

    // Before any share: the camera flows; the share's consumer is attached and gets nothing.
    collect(&mut camera_rx, &mut camera, Duration::from_secs(1)).await;
    take(&mut share_rx, &mut share);
    take(&mut program_rx, &mut program);
    assert!(
        camera.len() >= 5,
        "camera frames before the share: {}",
        camera.len()
    );
    assert!(
        share.is_empty(),
        "the share's consumer got {} frames with no share",
        share.len()
    );

    for round in 0..2 {
        let asked = Instant::now();
        r.engine.apply(MediaAction::StartShare);
        r.wait_for("share started", |n| {
            matches!(n, MediaNotice::Share(ShareNotice::Started))
        })
        .await;
        let cam_before = camera.len();
        let prog_before = program.len();
        let end = Instant::now() + Duration::from_secs(3);
        while Instant::now() < end {
            take(&mut camera_rx, &mut camera);
            take(&mut share_rx, &mut share);
            take(&mut program_rx, &mut program);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let shared: Vec<EncodedSample> = share.drain(..).map(|(_, s)| s).collect();
        let decoded = decode(&shared);
        assert!(
            decoded.len() >= 15,
            "round {round}: {} share frames decoded of {} in 3 s at 10 fps",
            decoded.len(),
            shared.len()
        );
        assert!(
            decoded.iter().all(|&(_, w, h)| (w, h) == (640, 360)),
            "the share keeps its own size: {:?}",
            &decoded[..3]
        );
        assert!(shared[0].keyframe, "the share starts with a keyframe");
        // The camera never paused for the share.
        assert!(
            camera.len() - cam_before >= 30,
            "round {round}: camera frames while sharing: {}",
            camera.len() - cam_before
        );
        assert!(
            longest_gap(&camera[cam_before..]) < Duration::from_millis(500),
            "round {round}: the camera stalled {:?} as the share started",
            longest_gap(&camera[cam_before..])
        );

        // The program went from the camera's size to the share's, without a gap.
        let prog = from_key(&program[prog_before..]);
        let samples: Vec<EncodedSample> = prog.iter().map(|(_, s)| s.clone()).collect();
        let frames = decode(&samples);
        let first_share = frames
            .iter()
            .position(|&(_, w, _)| w == 640)
            .unwrap_or_else(|| panic!("round {round}: the program never showed the share"));
        assert!(
            frames[first_share..].iter().all(|&(_, w, _)| w == 640),
            "round {round}: the program went back to the camera while sharing"
        );
        let at = frames[first_share].0;
        let pos = program
            .iter()
            .position(|(_, s)| s.pts == Some(at))
            .expect("the decoded frame's sample");
        assert!(pos > 0, "the program had camera frames before the share");
        let before = program[pos - 1].1.pts.unwrap_or_default();
        assert!(
            at > before,
            "the program's time went back at the switch: {before:?} then {at:?}"
        );
        let gap = at - before;
        eprintln!(
            "round {round}: the program showed the share {:?} after start-share; the picture \
             paused {gap:?} between the last camera frame and the first share frame",
            program[pos].0 - asked
        );
        assert!(
            gap < Duration::from_millis(300),
            "round {round}: the program showed nothing for {gap:?} at the switch"
        );

        // Stop: the camera goes on, the share's consumer gets nothing more, the program is the
        // camera again.
        take(&mut camera_rx, &mut camera);
        take(&mut program_rx, &mut program);
        let cam_before = camera.len();
        let prog_before = program.len();
        let stop_at = Instant::now();
        r.engine.apply(MediaAction::StopShare);
        r.wait_for("share stopped", |n| {
            matches!(n, MediaNotice::Share(ShareNotice::Stopped))
        })
        .await;
        // What was in the channel before the stop.
        take(&mut share_rx, &mut share);
        share.clear();
        let end = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < end {
            take(&mut camera_rx, &mut camera);
            take(&mut program_rx, &mut program);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        take(&mut share_rx, &mut share);
        assert!(
            share.is_empty(),
            "round {round}: share frames after its stop"
        );
        assert!(
            camera.len() - cam_before >= 15,
            "round {round}: camera frames after the stop: {}",
            camera.len() - cam_before
        );
        assert!(
            longest_gap(&camera[cam_before..]) < Duration::from_millis(500),
            "round {round}: the camera stalled as the share stopped"
        );
        let back = from_key(&program[prog_before..]);
        assert!(
            !back.is_empty(),
            "round {round}: the program got no keyframe after the stop"
        );
        let samples: Vec<EncodedSample> = back.iter().map(|(_, s)| s.clone()).collect();
        let frames = decode(&samples);
        assert!(
            frames.len() >= 10 && frames.iter().all(|&(_, w, _)| w == 320),
            "round {round}: the program after the stop: {} frames, sizes {:?}",
            frames.len(),
            frames
                .iter()
                .map(|f| f.1)
                .collect::<std::collections::BTreeSet<_>>()
        );
        eprintln!(
            "round {round}: the program was the camera again {:?} after stop-share",
            back[0].0 - stop_at
        );
    }
    r.drain();
    assert_eq!(
        r.capture_restarts(),
        0,
        "the camera was restarted: {:?}",
        r.seen
    );
    r.engine.apply(MediaAction::Stop);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grabber_that_fails_stops_the_share_and_not_the_camera() {
    let mut r = Rig::start(|c| {
        c.media.share.source = ShareSource::V4l2;
        c.media.share.device = "/dev/v4l/by-id/roombox-test-absent-grabber".into();
    })
    .await;
    let signal = |n: &MediaNotice| matches!(n, MediaNotice::Share(ShareNotice::Signal(_)));
    let n = match r.seen.iter().find(|n| signal(n)) {
        Some(n) => n.clone(),
        None => r.wait_for("the grabber's signal", signal).await,
    };
    assert_eq!(
        n,
        MediaNotice::Share(ShareNotice::Signal(false)),
        "no grabber, no signal"
    );
    let mut camera_rx = r.tap("camera", vec![Feed::H264]);
    r.engine.apply(MediaAction::StartShare);
    let n = r
        .wait_for("the share's failure", |n| {
            matches!(n, MediaNotice::Share(_))
        })
        .await;
    let MediaNotice::Share(ShareNotice::Failed(e)) = n else {
        panic!("expected a failure, got {n:?}");
    };
    assert!(e.to_string().contains("share"), "{e}");
    let mut camera = Vec::new();
    collect(&mut camera_rx, &mut camera, Duration::from_secs(2)).await;
    assert!(
        camera.len() >= 15,
        "the camera after the grabber failed: {}",
        camera.len()
    );
    r.drain();
    assert_eq!(
        r.capture_restarts(),
        0,
        "the camera was restarted: {:?}",
        r.seen
    );
    r.engine.apply(MediaAction::Stop);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_share_source_start_share_says_so() {
    let mut r = Rig::start(|c| c.media.share.source = ShareSource::None).await;
    r.engine.apply(MediaAction::StartShare);
    let n = r
        .wait_for("the refusal", |n| matches!(n, MediaNotice::Share(_)))
        .await;
    assert!(
        matches!(n, MediaNotice::Share(ShareNotice::Failed(_))),
        "{n:?}"
    );
    r.engine.apply(MediaAction::Stop);
}

/// Share frames per second over `d`, after `settle` to let a change take.
async fn share_rate(
    rx: &mut tokio::sync::mpsc::Receiver<EncodedSample>,
    settle: Duration,
    d: Duration,
) -> (f64, Vec<(Instant, EncodedSample)>) {
    tokio::time::sleep(settle).await;
    let mut drop = Vec::new();
    take(rx, &mut drop);
    let mut got = Vec::new();
    collect(rx, &mut got, d).await;
    (got.len() as f64 / d.as_secs_f64(), got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tight_network_lowers_the_shares_frame_rate_not_its_size() {
    let mut r = Rig::start(|_| {}).await;
    let mut share_rx = r.tap("share", vec![Feed::Share]);
    r.engine.apply(MediaAction::StartShare);
    r.wait_for("share started", |n| {
        matches!(n, MediaNotice::Share(ShareNotice::Started))
    })
    .await;
    let d = Duration::from_secs(3);
    let (full, mut all) = share_rate(&mut share_rx, Duration::from_secs(1), d).await;
    // Congestion control asks the camera for 40 % of its 500 kbit/s.
    r.engine.apply(MediaAction::SetBitrate(200));
    let (tight, frames) = share_rate(&mut share_rx, Duration::from_millis(500), d).await;
    let tight_from = frames
        .first()
        .and_then(|(_, s)| s.pts)
        .expect("frames while tight");
    all.extend(frames);
    r.engine.apply(MediaAction::SetBitrate(500));
    let (back, _) = share_rate(&mut share_rx, Duration::from_millis(500), d).await;
    // The tight frames decode (from the keyframe before them) at the share's full size.
    let samples: Vec<EncodedSample> = from_key(&all).iter().map(|(_, s)| s.clone()).collect();
    let decoded: Vec<_> = decode(&samples)
        .into_iter()
        .filter(|f| f.0 >= tight_from)
        .collect();
    eprintln!("share fps: {full:.1} at full bitrate, {tight:.1} at 40 %, {back:.1} after");
    assert!(full >= 8.0, "the share's full rate: {full:.1}");
    assert!(
        (2.5..=5.5).contains(&tight),
        "at 40 % of the bitrate: {tight:.1} fps"
    );
    assert!(back >= 8.0, "back at full bitrate: {back:.1}");
    assert!(
        decoded.len() >= 10 && decoded.iter().all(|&(_, w, h)| (w, h) == (640, 360)),
        "the share kept its size: {:?}",
        decoded
            .iter()
            .map(|f| (f.1, f.2))
            .collect::<std::collections::BTreeSet<_>>()
    );
    r.engine.apply(MediaAction::Stop);
}
