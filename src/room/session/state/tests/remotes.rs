//! Whom the box receives: listing, subscribing, dropping and resubscribing.

use super::*;
use crate::model::StreamKind;

#[test]
fn a_signalling_only_box_lists_publishers_but_subscribes_to_none() {
    let mut s = state();
    s.join(request(Mode::SignallingOnly, false, false));
    let out = s.joined(joined(vec![publisher("alice", true, true)]), Instant::now());
    assert!(!out.iter().any(|a| matches!(a, Action::Subscribe { .. })));
    assert!(matches!(
        notices(&out).first(),
        Some(RoomNotice::ParticipantJoined(p)) if p.participant_id == "alice" && p.webcam_on
    ));
}

#[test]
fn a_publisher_that_stops_stays_listed_with_its_streams_off_until_it_leaves() {
    let t0 = Instant::now();
    let mut s = connected(t0, &[publisher("alice", true, false)]);
    let stopped = SignalEvent::Unpublished {
        participant_id: "alice".into(),
    };
    assert_eq!(
        s.signal(stopped, t0),
        vec![
            Action::Unsubscribe("sub-alice".into()),
            Action::StopPlayback("alice".into()),
            Action::Notify(RoomNotice::Stream {
                participant_id: "alice".into(),
                kind: StreamKind::Audio,
                enabled: false,
            }),
        ]
    );
    let back = s.signal(SignalEvent::Published(publisher("alice", true, false)), t0);
    assert!(
        back.contains(&subscribe("alice")),
        "publishing again subscribes again"
    );
    s.subscribed("alice", "sub-alice-2".into());
    let gone = SignalEvent::ParticipantLeft {
        participant_id: "alice".into(),
    };
    assert_eq!(
        s.signal(gone, t0),
        vec![
            Action::Unsubscribe("sub-alice-2".into()),
            Action::StopPlayback("alice".into()),
            Action::Notify(RoomNotice::ParticipantLeft("alice".into())),
        ]
    );
    assert_eq!(s.subscriber_of("sub-alice-2"), None);
    assert!(
        s.signal(SignalEvent::Published(publisher("bob", false, false)), t0)
            .iter()
            .all(|a| matches!(a, Action::Notify(_))),
        "nothing to receive from someone who sends nothing"
    );
}

#[test]
fn a_camera_coming_on_after_the_subscription_resubscribes_for_its_video() {
    let t0 = Instant::now();
    let mut s = connected(t0, &[publisher("alice", true, false)]);
    let out = s.signal(SignalEvent::Published(publisher("alice", true, true)), t0);
    assert_eq!(
        out,
        vec![
            Action::Notify(RoomNotice::Stream {
                participant_id: "alice".into(),
                kind: StreamKind::Video,
                enabled: true,
            }),
            Action::Unsubscribe("sub-alice".into()),
            Action::StopPlayback("alice".into()),
            subscribe("alice"),
        ]
    );
    s.subscribed("alice", "sub-alice-2".into());
    let again = s.signal(SignalEvent::Published(publisher("alice", true, true)), t0);
    assert!(again.is_empty(), "a subscription with the video is kept");
}

#[test]
fn a_share_starting_or_stopping_resubscribes_so_the_screen_follows_it() {
    let t0 = Instant::now();
    let mut s = connected(t0, &[publisher("alice", true, true)]);
    let sharing = RemotePublisher {
        share: true,
        ..publisher("alice", true, true)
    };
    let resubscribe = [
        Action::Unsubscribe("sub-alice".into()),
        Action::StopPlayback("alice".into()),
        subscribe("alice"),
    ];
    let out = s.signal(SignalEvent::Published(sharing.clone()), t0);
    assert_eq!(
        out[0],
        Action::Notify(RoomNotice::Stream {
            participant_id: "alice".into(),
            kind: StreamKind::Share,
            enabled: true,
        })
    );
    assert_eq!(out[1..], resubscribe[..]);
    s.subscribed("alice", "sub-alice".into());
    assert!(
        s.signal(SignalEvent::Published(sharing), t0).is_empty(),
        "the same share again changes nothing"
    );
    let out = s.signal(SignalEvent::Published(publisher("alice", true, true)), t0);
    assert_eq!(out[1..], resubscribe[..], "{out:?}");
}

#[test]
fn a_participant_entering_is_listed_once() {
    let t0 = Instant::now();
    let mut s = connected(t0, &[]);
    let enter = || SignalEvent::ParticipantJoined {
        participant_id: "bob".into(),
        display_name: "Bob".into(),
    };
    assert!(matches!(
        notices(&s.signal(enter(), t0)).as_slice(),
        [RoomNotice::ParticipantJoined(p)] if p.display_name == "Bob" && !p.mic_on
    ));
    assert!(s.signal(enter(), t0).is_empty());
}

#[test]
fn a_failed_subscription_is_replaced_while_its_participant_is_listed() {
    let t0 = Instant::now();
    let mut s = connected(t0, &[publisher("alice", true, true)]);
    assert_eq!(
        s.subscription_failed("sub-alice", Instant::now()),
        vec![
            Action::Unsubscribe("sub-alice".into()),
            Action::Subscribe {
                participant: "alice".into(),
                again: true,
            },
        ]
    );
    assert!(
        s.subscription_failed("sub-alice", Instant::now())
            .is_empty(),
        "a gone one is not"
    );
}

#[test]
fn a_new_offer_is_answered_on_its_subscription_or_subscribed_afresh() {
    let t0 = Instant::now();
    let mut s = connected(t0, &[publisher("alice", true, true)]);
    let offer = |id: &str| SignalEvent::SubscriptionOffer {
        subscription_id: id.into(),
        offer: "v=0".into(),
    };
    assert!(s.signal(offer("sub-gone"), t0).is_empty());
    assert_eq!(
        s.signal(offer("sub-alice"), t0),
        vec![Action::Reanswer {
            participant: "alice".into(),
            subscription_id: "sub-alice".into(),
            offer: "v=0".into(),
        }]
    );
    assert_eq!(
        s.reanswer_failed("alice"),
        vec![
            Action::Unsubscribe("sub-alice".into()),
            Action::Subscribe {
                participant: "alice".into(),
                again: true,
            },
        ]
    );
}

/// A box publishing into a room with no roster (WHIP), `sources` (WHEP) to receive, connected.
fn without_roster(t0: Instant, sources: &[RemotePublisher]) -> (SessionState, Vec<Action>) {
    let mut s = state();
    s.join(request(Mode::SendAndReceive, true, true));
    let mut j = joined(sources.to_vec());
    j.roster = false;
    assert_eq!(s.joined(j, t0), vec![Action::Publish]);
    let out = s.published(true, false);
    s.publisher_connected();
    (s, out)
}

#[test]
fn without_a_roster_a_source_is_listed_only_once_its_subscription_stands() {
    let t0 = Instant::now();
    let (mut s, out) = without_roster(t0, &[publisher("whep-hall", true, true)]);
    assert!(out.contains(&subscribe("whep-hall")));
    assert!(notices(&out).is_empty(), "not listed before it flows");
    assert!(matches!(
        notices(&s.subscribed("whep-hall", "whep-hall#1".into())).as_slice(),
        [RoomNotice::ParticipantJoined(p)] if p.participant_id == "whep-hall" && p.webcam_on
    ));
    assert!(
        s.subscribed("whep-hall", "whep-hall#2".into()).is_empty(),
        "listed once"
    );
}

#[test]
fn without_a_roster_a_source_not_live_is_tried_again_after_its_backoff() {
    let t0 = Instant::now();
    let (mut s, _) = without_roster(t0, &[publisher("whep-hall", true, true)]);
    let out = s.subscribe_failed(
        "whep-hall",
        false,
        &RoomError::Transport("404 (not live)".into()),
        t0,
    );
    assert!(matches!(notices(&out).as_slice(), [RoomNotice::Error(m)] if m.contains("not live")));
    assert!(
        !notices(&out)
            .iter()
            .any(|n| matches!(n, RoomNotice::ParticipantLeft(_))),
        "never listed, so never left"
    );
    assert!(
        !s.tick(t0 + SECOND / 2)
            .iter()
            .any(|a| matches!(a, Action::Subscribe { .. })),
        "not before the backoff"
    );
    let again = Action::Subscribe {
        participant: "whep-hall".into(),
        again: true,
    };
    assert!(s.tick(t0 + SECOND).contains(&again), "after one step");
    assert!(
        !s.tick(t0 + 2 * SECOND).contains(&again),
        "one attempt at a time"
    );
    // The second failure waits twice as long.
    let t1 = t0 + 3 * SECOND;
    s.subscribe_failed("whep-hall", true, &RoomError::Transport("down".into()), t1);
    assert!(!s.tick(t1 + SECOND).contains(&again));
    assert!(s.tick(t1 + 2 * SECOND).contains(&again));
    assert!(!notices(&s.subscribed("whep-hall", "whep-hall#2".into())).is_empty());
}

#[test]
fn without_a_roster_a_stream_that_stops_unlists_its_source_until_it_flows_again() {
    let t0 = Instant::now();
    let (mut s, _) = without_roster(t0, &[publisher("whep-hall", true, true)]);
    s.subscribed("whep-hall", "whep-hall#1".into());
    let out = s.subscription_failed("whep-hall#1", t0);
    assert_eq!(out[0], Action::Unsubscribe("whep-hall#1".into()));
    assert!(out.contains(&Action::StopPlayback("whep-hall".into())));
    assert!(notices(&out).contains(&RoomNotice::ParticipantLeft("whep-hall".into())));
    assert!(s.tick(t0 + SECOND).contains(&Action::Subscribe {
        participant: "whep-hall".into(),
        again: true,
    }));
    assert!(matches!(
        notices(&s.subscribed("whep-hall", "whep-hall#2".into())).as_slice(),
        [RoomNotice::ParticipantJoined(_)]
    ));
    // Leaving the room: an unlisted source is not said to leave.
    s.subscription_failed("whep-hall#2", t0);
    let bye = s.leave("asked");
    assert!(
        !notices(&bye)
            .iter()
            .any(|n| matches!(n, RoomNotice::ParticipantLeft(_))),
        "it left when its stream stopped: {bye:?}"
    );
}

#[test]
fn without_a_roster_a_refused_source_is_forgotten() {
    let t0 = Instant::now();
    let (mut s, _) = without_roster(t0, &[publisher("whep-hall", true, true)]);
    s.subscribe_failed(
        "whep-hall",
        false,
        &RoomError::Refused("401: check the token".into()),
        t0,
    );
    assert!(
        !s.tick(t0 + 60 * SECOND)
            .iter()
            .any(|a| matches!(a, Action::Subscribe { .. })),
        "a refusal does not pass by itself"
    );
    assert!(s.subscribed("whep-hall", "late".into()).is_empty());
}

#[test]
fn with_a_roster_a_subscription_that_cannot_be_made_is_tried_again_while_listed() {
    let t0 = Instant::now();
    let mut s = connected(t0, &[]);
    s.signal(SignalEvent::Published(publisher("bob", true, true)), t0);
    let out = s.subscribe_failed("bob", false, &RoomError::Transport("timeout".into()), t0);
    assert!(
        !notices(&out)
            .iter()
            .any(|n| matches!(n, RoomNotice::ParticipantLeft(_))),
        "the roster says who is here"
    );
    s.signal(
        SignalEvent::ParticipantLeft {
            participant_id: "bob".into(),
        },
        t0,
    );
    assert!(
        !s.tick(t0 + 10 * SECOND)
            .iter()
            .any(|a| matches!(a, Action::Subscribe { .. })),
        "not for someone who left"
    );
}

#[test]
fn a_remote_share_coming_and_going_is_reported_as_a_share_stream() {
    let t0 = Instant::now();
    let mut s = connected(t0, &[publisher("alice", true, true)]);
    let sharing = RemotePublisher {
        share: true,
        ..publisher("alice", true, true)
    };
    let on = s.signal(SignalEvent::Published(sharing.clone()), t0);
    let share = |enabled| {
        Action::Notify(RoomNotice::Stream {
            participant_id: "alice".into(),
            kind: StreamKind::Share,
            enabled,
        })
    };
    assert!(on.contains(&share(true)), "{on:?}");
    let off = s.signal(SignalEvent::Published(publisher("alice", true, true)), t0);
    assert!(off.contains(&share(false)), "{off:?}");
    // Joining while sharing is told at once; unpublishing ends the share.
    let bob = RemotePublisher {
        share: true,
        ..publisher("bob", true, true)
    };
    let joined = s.signal(SignalEvent::Published(bob), t0);
    assert!(joined.iter().any(|a| matches!(
        a,
        Action::Notify(RoomNotice::Stream { participant_id, kind: StreamKind::Share, enabled: true })
            if participant_id == "bob"
    )));
    let gone = s.signal(
        SignalEvent::Unpublished {
            participant_id: "bob".into(),
        },
        t0,
    );
    assert!(gone.iter().any(|a| matches!(
        a,
        Action::Notify(RoomNotice::Stream { participant_id, kind: StreamKind::Share, enabled: false })
            if participant_id == "bob"
    )));
}
