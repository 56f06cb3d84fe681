//! One test per rule of the session's state, driven as the session task drives it, with the
//! time and the jitter given.

use super::*;

mod camera;
mod remotes;

const SECOND: Duration = Duration::from_secs(1);

/// The top of each backoff step, so a delay is exactly the step.
fn full_jitter() -> f64 {
    1.0
}

fn state() -> SessionState {
    SessionState::new(
        "janus",
        Duration::from_secs(15),
        Backoff::new(SECOND, Duration::from_secs(8)),
        full_jitter,
    )
}

fn request(mode: Mode, mic: bool, webcam: bool) -> JoinRequest {
    JoinRequest {
        room_id: "1234".into(),
        display_name: "box".into(),
        metadata: Default::default(),
        mic,
        webcam,
        mode,
    }
}

fn publisher(id: &str, audio: bool, video: bool) -> RemotePublisher {
    RemotePublisher {
        participant_id: id.into(),
        display_name: format!("{id}'s name"),
        audio,
        video,
        data: false,
        share: false,
    }
}

fn joined(publishers: Vec<RemotePublisher>) -> Joined {
    Joined {
        room_id: "1234".into(),
        session_id: Some("s1".into()),
        participant_id: "me".into(),
        publishers,
        roster: true,
    }
}

fn notices(actions: &[Action]) -> Vec<RoomNotice> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Notify(n) => Some(n.clone()),
            _ => None,
        })
        .collect()
}

fn states(actions: &[Action]) -> Vec<MeetingState> {
    notices(actions)
        .into_iter()
        .filter_map(|n| match n {
            RoomNotice::State(s) => Some(s),
            _ => None,
        })
        .collect()
}

fn subscribe(id: &str) -> Action {
    Action::Subscribe {
        participant: id.into(),
        again: false,
    }
}

/// A box that joined at `t0` to publish (the camera as `webcam`) and whose offer was answered,
/// its media not connected yet.
fn publishing(t0: Instant, webcam: bool) -> SessionState {
    let mut s = state();
    s.join(request(Mode::SendAndReceive, true, webcam));
    assert_eq!(s.joined(joined(vec![]), t0), vec![Action::Publish]);
    s.published(true, false);
    s
}

/// A box joined to publish, its publisher connected, with `others` subscribed as `sub-<id>`.
fn connected(t0: Instant, others: &[RemotePublisher]) -> SessionState {
    let mut s = state();
    s.join(request(Mode::SendAndReceive, true, true));
    assert_eq!(s.joined(joined(others.to_vec()), t0), vec![Action::Publish]);
    s.published(true, true);
    for p in others {
        s.subscribed(&p.participant_id, format!("sub-{}", p.participant_id));
    }
    s.publisher_connected();
    s
}

/// The signalling connection dropped at `now`.
fn drop_signalling(s: &mut SessionState, now: Instant) -> Vec<Action> {
    s.signal(
        SignalEvent::Disconnected {
            reason: "socket closed".into(),
        },
        now,
    )
}

/// The agent hears the box left room 1234 for `reason`.
fn left(reason: &str) -> RoomNotice {
    RoomNotice::Left {
        room_id: "1234".into(),
        reason: reason.into(),
    }
}

#[test]
fn a_join_says_connecting_and_asks_the_signaller() {
    let mut s = state();
    let req = request(Mode::SendAndReceive, true, true);
    assert_eq!(
        s.join(req.clone()),
        vec![
            Action::Notify(RoomNotice::State(MeetingState::Connecting)),
            Action::Join(req),
        ]
    );
    assert!(!s.in_room(), "in the room only once the signaller joined");
}

#[test]
fn a_publishing_box_publishes_then_subscribes_and_is_connected_when_its_media_is() {
    let t0 = Instant::now();
    let mut s = state();
    s.join(request(Mode::SendAndReceive, true, true));
    let others = vec![
        publisher("alice", true, true),
        publisher("idle", false, false),
    ];
    assert_eq!(s.joined(joined(others), t0), vec![Action::Publish]);
    let after = s.published(true, true);
    assert_eq!(
        after
            .iter()
            .filter(|a| matches!(a, Action::Subscribe { .. }))
            .collect::<Vec<_>>(),
        vec![&subscribe("alice")],
        "nobody to subscribe to in someone who sends nothing"
    );
    assert_eq!(notices(&after).len(), 2, "both are listed");
    assert!(states(&after).is_empty(), "not connected before the media");
    let up = s.publisher_connected();
    assert_eq!(
        states(&up),
        vec![MeetingState::Connected],
        "connected once the publisher's ICE and DTLS are"
    );
    assert!(notices(&up).contains(&RoomNotice::Joined {
        room_id: "1234".into(),
        session_id: Some("s1".into()),
        participant_id: "me".into(),
    }));
    assert_eq!(up.last(), Some(&Action::AttachTap));
    assert!(s.publisher_connected().is_empty(), "connected only once");
}

#[test]
fn a_receive_only_box_is_connected_at_join_and_attaches_no_tap() {
    let mut s = state();
    s.join(request(Mode::ReceiveOnly, true, true));
    let out = s.joined(
        joined(vec![publisher("alice", true, false)]),
        Instant::now(),
    );
    assert!(out.contains(&subscribe("alice")));
    assert_eq!(states(&out), vec![MeetingState::Connected]);
    assert!(!out.contains(&Action::AttachTap));
    assert!(!out.contains(&Action::Publish));
}

#[test]
fn a_fault_while_connected_says_disconnected_and_retries_at_a_backoff_time() {
    let t0 = Instant::now();
    let mut s = connected(t0, &[publisher("alice", true, true)]);
    let t1 = t0 + 30 * SECOND;
    let out = drop_signalling(&mut s, t1);
    assert_eq!(
        out,
        vec![
            Action::Notify(RoomNotice::DetachTap),
            Action::Close,
            Action::Notify(RoomNotice::ParticipantLeft("alice".into())),
            Action::Notify(RoomNotice::Error(
                "room connection lost: socket closed".into()
            )),
            Action::Notify(RoomNotice::State(MeetingState::Disconnected)),
        ]
    );
    assert_eq!(s.retry_at(), Some(t1 + SECOND));
    assert!(!s.in_room());
    assert_eq!(
        states(&s.retry()),
        vec![MeetingState::Connecting],
        "the retry joins again"
    );
    assert_eq!(s.retry_at(), None);
}

#[test]
fn rejoin_delays_double_up_to_the_cap_and_start_over_after_a_success() {
    let t0 = Instant::now();
    let mut s = state();
    s.join(request(Mode::SendAndReceive, true, false));
    let down = RoomError::Transport("unreachable".into());
    let mut delays = Vec::new();
    for _ in 0..5 {
        s.retry();
        s.join_failed(&down, t0);
        delays.push(s.retry_at().map(|t| t - t0));
    }
    let secs = |n| Some(Duration::from_secs(n));
    assert_eq!(delays, vec![secs(1), secs(2), secs(4), secs(8), secs(8)]);
    s.retry();
    s.joined(joined(vec![]), t0);
    s.published(false, false);
    s.publisher_connected();
    drop_signalling(&mut s, t0);
    assert_eq!(
        s.retry_at(),
        Some(t0 + SECOND),
        "a success resets the backoff"
    );
}

#[test]
fn a_leave_during_a_retry_cancels_it() {
    let t0 = Instant::now();
    let mut s = connected(t0, &[]);
    drop_signalling(&mut s, t0);
    assert!(s.retry_at().is_some());
    let out = s.leave("left");
    assert_eq!(s.retry_at(), None);
    assert_eq!(
        out,
        vec![
            Action::SignalLeave,
            Action::Notify(RoomNotice::State(MeetingState::Closed)),
            Action::Notify(left("left")),
        ],
        "nothing to close: the fault closed it"
    );
    assert!(s.retry().is_empty(), "a stale timer joins nothing");
}

#[test]
fn a_leave_while_connected_closes_then_says_closed() {
    let mut s = connected(Instant::now(), &[]);
    let out = s.leave("shutdown");
    assert_eq!(
        states(&out),
        vec![MeetingState::Closing, MeetingState::Closed]
    );
    assert!(out.contains(&Action::Close));
    assert_eq!(notices(&out).last(), Some(&left("shutdown")));
}

#[test]
fn a_join_while_in_a_room_leaves_it_first() {
    let mut s = connected(Instant::now(), &[]);
    let out = s.join(request(Mode::SendAndReceive, true, true));
    assert_eq!(
        states(&out),
        vec![
            MeetingState::Closing,
            MeetingState::Closed,
            MeetingState::Connecting
        ]
    );
    assert!(matches!(out.last(), Some(Action::Join(_))));
}

#[test]
fn a_join_cancels_a_pending_rejoin() {
    let t0 = Instant::now();
    let mut s = state();
    s.join(request(Mode::SendAndReceive, true, true));
    s.join_failed(&RoomError::Transport("down".into()), t0);
    assert!(s.retry_at().is_some());
    s.join(request(Mode::ReceiveOnly, false, false));
    assert_eq!(s.retry_at(), None);
}

#[test]
fn a_refused_join_fails_for_good() {
    let t0 = Instant::now();
    let mut s = state();
    s.join(request(Mode::SendAndReceive, true, true));
    let out = s.join_failed(&RoomError::Refused("bad pin".into()), t0);
    assert_eq!(s.retry_at(), None);
    assert_eq!(states(&out), vec![MeetingState::Failed]);
    assert_eq!(notices(&out).last(), Some(&left("refused")));
    assert!(s.retry().is_empty(), "the request is forgotten");
}

#[test]
fn a_failed_publish_closes_what_was_joined_and_retries() {
    let t0 = Instant::now();
    let mut s = state();
    s.join(request(Mode::SendAndReceive, true, true));
    s.joined(joined(vec![publisher("alice", true, true)]), t0);
    let out = s.join_failed(&RoomError::Protocol("webrtc offer: no codec".into()), t0);
    assert_eq!(out.first(), Some(&Action::Close));
    assert_eq!(
        states(&out),
        vec![MeetingState::Disconnected],
        "a protocol error may pass"
    );
    assert_eq!(s.retry_at(), Some(t0 + SECOND));
}

#[test]
fn media_that_does_not_connect_in_time_is_a_fault() {
    let t0 = Instant::now();
    let mut s = publishing(t0, true);
    assert!(s.tick(t0 + 15 * SECOND).is_empty());
    let out = s.tick(t0 + 16 * SECOND);
    assert!(notices(&out).contains(&RoomNotice::Error(
        "room connection lost: ICE/DTLS did not connect in time".into()
    )));
    assert_eq!(s.retry_at(), Some(t0 + 17 * SECOND));
}

#[test]
fn the_publishers_media_going_down_is_a_fault_and_a_subscriptions_is_not() {
    let t0 = Instant::now();
    let mut s = connected(t0, &[publisher("alice", true, true)]);
    let sub_down = SignalEvent::MediaDown {
        what: "sub-alice".into(),
        reason: "timeout".into(),
    };
    assert!(s.signal(sub_down, t0).is_empty());
    let pub_down = SignalEvent::MediaDown {
        what: "publisher".into(),
        reason: "timeout".into(),
    };
    let out = s.signal(pub_down, t0);
    assert_eq!(
        states(&out),
        vec![MeetingState::Disconnected],
        "the publisher's media is the box's presence"
    );
}

#[test]
fn cloud_recording_needs_a_room_and_stops_when_leaving_it() {
    let mut s = state();
    assert_eq!(
        s.set_cloud_recording(true),
        vec![Action::Notify(RoomNotice::CloudRecording {
            state: ServiceState::Failed,
            reason: Some("not in a room".into()),
        })]
    );
    let mut s = connected(Instant::now(), &[]);
    assert_eq!(
        s.set_cloud_recording(true),
        vec![Action::SetRecording(true)]
    );
    s.recording_set(true, Ok(()));
    let failed_stop = s.recording_set(false, Err(RoomError::Transport("down".into())));
    assert!(matches!(
        notices(&failed_stop).as_slice(),
        [RoomNotice::CloudRecording {
            state: ServiceState::Started,
            reason: Some(_)
        }]
    ));
    assert!(
        notices(&s.leave("left")).contains(&RoomNotice::CloudRecording {
            state: ServiceState::Stopped,
            reason: Some("left the room".into()),
        })
    );
}

#[test]
fn ending_for_everyone_needs_a_room_and_leaves_once_the_server_agrees() {
    let mut s = state();
    assert_eq!(
        s.end(),
        vec![Action::Notify(RoomNotice::Error("not in a room".into()))]
    );
    let mut s = connected(Instant::now(), &[]);
    assert_eq!(s.end(), vec![Action::EndForAll]);
    let refused = s.ended(Err(RoomError::Refused("not the owner".into())));
    assert!(
        matches!(notices(&refused).as_slice(), [RoomNotice::Error(e)] if e.starts_with("end for everyone"))
    );
    assert!(s.in_room());
    let out = s.ended(Ok(()));
    assert!(notices(&out).contains(&left("ended")));
}

#[test]
fn a_closed_room_is_left_with_the_servers_reason_and_not_rejoined() {
    let t0 = Instant::now();
    let mut s = connected(t0, &[]);
    let out = s.signal(
        SignalEvent::RoomClosed {
            reason: "kicked".into(),
        },
        t0,
    );
    assert_eq!(s.retry_at(), None);
    assert_eq!(notices(&out).last(), Some(&left("kicked")));
}

#[test]
fn chat_goes_to_everyone_on_an_open_channel_and_names_come_from_the_roster() {
    let mut s = state();
    assert!(matches!(
        notices(&s.send_chat("hi".into(), None)).as_slice(),
        [RoomNotice::Error(e)] if e.contains("not open")
    ));
    let mut s = connected(Instant::now(), &[publisher("alice", true, true)]);
    assert!(matches!(
        notices(&s.send_chat("hi".into(), Some("alice".into()))).as_slice(),
        [RoomNotice::Error(e)] if e.contains("not supported by the janus room backend")
    ));
    assert_eq!(
        s.send_chat("hi".into(), None),
        vec![Action::SendChat("hi".into())]
    );
    let RoomNotice::Chat(m) = s.chat_received("alice".into(), "hello".into(), 7) else {
        panic!("a chat notice");
    };
    assert_eq!(m.display_name.as_deref(), Some("alice's name"));
    let RoomNotice::Chat(m) = s.chat_received("stranger".into(), "hello".into(), 7) else {
        panic!("a chat notice");
    };
    assert_eq!(m.display_name, None);
}
