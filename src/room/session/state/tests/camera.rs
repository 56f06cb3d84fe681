//! The camera's rules: the video gate and when the publication is renegotiated.

use super::*;

#[test]
fn camera_off_while_connected_renegotiates_and_stops_the_video_at_once() {
    let mut s = connected(Instant::now(), &[]);
    assert!(s.admit_video(false));
    assert_eq!(s.set_camera(false), vec![Action::Renegotiate(false)]);
    assert!(!s.admit_video(true), "no video leaves with the camera off");
    assert!(s.renegotiated(false, Renegotiation::Done).is_empty());
    assert!(s.set_camera(false).is_empty(), "already off");
}

#[test]
fn camera_on_renegotiates_then_asks_a_keyframe_and_resumes_on_it() {
    let mut s = connected(Instant::now(), &[]);
    s.set_camera(false);
    s.renegotiated(false, Renegotiation::Done);
    assert_eq!(
        s.set_camera(true),
        vec![
            Action::Renegotiate(true),
            Action::Notify(RoomNotice::KeyframeRequested),
        ]
    );
    assert!(
        !s.admit_video(false),
        "a delta frame cannot start a picture"
    );
    assert!(s.admit_video(true));
    assert!(s.admit_video(false), "on from the keyframe");
}

#[test]
fn a_camera_off_at_join_is_renegotiated_once_the_publisher_connects() {
    let mut s = publishing(Instant::now(), false);
    assert!(!s.admit_video(true));
    let up = s.publisher_connected();
    assert_eq!(up.last(), Some(&Action::Renegotiate(false)));
    s.renegotiated(false, Renegotiation::Done);
    assert!(s.set_camera(false).is_empty());
}

#[test]
fn a_camera_change_before_the_media_connects_waits_for_it() {
    let mut s = publishing(Instant::now(), true);
    assert_eq!(
        s.set_camera(false),
        vec![],
        "nothing to renegotiate before the publisher connects"
    );
    assert!(s
        .publisher_connected()
        .contains(&Action::Renegotiate(false)));
}

#[test]
fn a_failed_renegotiation_keeps_the_video_as_negotiated_and_says_what_the_others_see() {
    let mut s = connected(Instant::now(), &[]);
    s.set_camera(false);
    let out = s.renegotiated(false, Renegotiation::Failed("timeout".into()));
    assert_eq!(
        notices(&out),
        vec![RoomNotice::Error(
            "camera off: renegotiation with the janus room failed (timeout); no video is sent, \
             but the others are not told the camera is off"
                .into()
        )]
    );
    assert!(!s.admit_video(true));
    assert_eq!(
        s.set_camera(true),
        vec![Action::Notify(RoomNotice::KeyframeRequested)],
        "the room still has the video on: nothing to renegotiate"
    );
    assert!(s.renegotiated(true, Renegotiation::Skipped).is_empty());
}

#[test]
fn the_camera_setting_outlives_a_rejoin() {
    let t0 = Instant::now();
    let mut s = connected(t0, &[]);
    s.set_camera(false);
    drop_signalling(&mut s, t0);
    s.retry();
    s.joined(joined(vec![]), t0);
    s.published(true, false);
    assert_eq!(
        s.publisher_connected().last(),
        Some(&Action::Renegotiate(false)),
        "the new publisher offers video, so the room is told again"
    );
}

#[test]
fn a_share_is_renegotiated_in_and_leaves_only_once_the_room_takes_it() {
    let mut s = connected(Instant::now(), &[]);
    assert!(!s.admit_share(true), "no share asked");
    assert_eq!(s.set_share(true), vec![Action::RenegotiateShare(true)]);
    assert!(s.set_share(true).is_empty(), "already asked");
    assert!(!s.admit_share(true), "not before the room took it");
    assert!(s.share_renegotiated(true, Renegotiation::Done).is_empty());
    assert!(
        !s.admit_share(false),
        "a delta frame cannot start a picture"
    );
    assert!(s.admit_share(true));
    assert!(s.admit_share(false));
    assert_eq!(s.set_share(false), vec![Action::RenegotiateShare(false)]);
    assert!(!s.admit_share(true), "nothing leaves once stopped");
    assert!(s.share_renegotiated(false, Renegotiation::Done).is_empty());
}

#[test]
fn a_share_asked_before_the_media_connects_waits_for_it_and_a_failure_is_told() {
    let mut s = publishing(Instant::now(), true);
    assert!(s.set_share(true).is_empty(), "not connected yet");
    let up = s.publisher_connected();
    assert_eq!(up.last(), Some(&Action::RenegotiateShare(true)));
    let out = s.share_renegotiated(true, Renegotiation::Failed("409".into()));
    assert!(
        matches!(&out[..], [Action::Notify(RoomNotice::Error(e))] if e.contains("share on")),
        "{out:?}"
    );
    assert!(!s.admit_share(true));
}

#[test]
fn a_share_stopped_during_its_renegotiation_is_caught_up() {
    let mut s = connected(Instant::now(), &[]);
    s.set_share(true);
    s.set_share(false);
    assert_eq!(
        s.share_renegotiated(true, Renegotiation::Done),
        vec![Action::RenegotiateShare(false)]
    );
}
