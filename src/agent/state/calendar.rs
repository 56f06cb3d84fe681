//! The calendar half of the state machine: today's meetings as the calendar task read them,
//! the current and next one, Join, book-now and no-show release, by the pure
//! [`crate::calendar::Rules`] on the time the machine is told.
//!
//! Anything a person does (a command other than a read, a room joined) counts as someone in
//! the room for the meetings whose window is open; a meeting nobody came to is released on the
//! server, and `booking-released` is said once the server took it.

use super::{Effect, IoNotice, StateMachine, Step, Token};
use crate::calendar::{
    source::Booking, BookFailed, BookRefused, CalendarAction, CalendarNotice, Meeting, RuleEvent,
    Rules, RulesSetup,
};
use crate::command::{Command, ErrorCode};
use crate::config::Config;
use crate::event::Event;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Most problems kept to show (events that could not be read).
const MAX_PROBLEMS: usize = 10;
/// How long after a meeting's end the box stays in its room when nobody remote is left.
pub const END_GRACE_MS: u64 = 2 * 60_000;

/// The room's calendar as shown: none when `[calendar]` is off.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CalendarStatus {
    /// Today's and tomorrow's meetings on the room's clock, by start.
    pub meetings: Vec<Meeting>,
    /// The meeting under way.
    pub current: Option<Meeting>,
    /// The next meeting to start.
    pub next: Option<Meeting>,
    /// The meeting Join is offered for (its id).
    pub joinable: Option<String>,
    /// The book-now lengths allowed now, in minutes.
    pub book_minutes: Vec<u32>,
    /// When the calendar was last read, ms since the epoch.
    pub updated_ms: Option<u64>,
    /// Why the last read failed; the meetings are the last good ones.
    pub error: Option<String>,
    /// Since when reads fail.
    pub unreachable_since_ms: Option<u64>,
    /// Events that could not be read (and are not shown).
    pub problems: Vec<String>,
    /// The meeting the box joined for ended (plus the grace) with people still in the room:
    /// its title, and the console asks whether to leave. The box leaves by itself once the
    /// last of them goes.
    pub ended: Option<String>,
}

/// `[calendar]` as the machine uses it.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct CalendarSetup {
    enabled: bool,
    /// The source can be written to (CalDAV): book-now and release need it.
    writable: bool,
    auto_join: bool,
    room_address: Option<String>,
    device_name: String,
}

/// The rules' memory and what was asked of the calendar task.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct CalendarPending {
    rules: Rules,
    /// Meetings auto-joined already (once each).
    auto_joined: BTreeSet<String>,
    /// The meeting whose room the box joined for it (Join, the short press, auto-join), and
    /// that room: left at the end when nobody remote is left.
    joined_for: Option<(Meeting, String)>,
}

impl StateMachine {
    pub(super) fn configure_calendar(&mut self, config: &Config) {
        let c = &config.calendar;
        self.setup.calendar = CalendarSetup {
            enabled: c.enabled(),
            writable: c.source == crate::config::CalendarSource::Caldav,
            auto_join: c.auto_join,
            room_address: (!c.room_address.is_empty()).then(|| c.room_address.to_ascii_lowercase()),
            device_name: config.device.name.clone(),
        };
        self.pending.calendar.rules.setup = RulesSetup {
            join_before_ms: c.join_before.as_millis() as u64,
            // An .ics URL or a file cannot be declined on: nothing is released.
            release_after_ms: match c.source == crate::config::CalendarSource::Caldav {
                true => c.release_after.as_millis() as u64,
                false => 0,
            },
        };
        match (c.enabled(), &self.state.calendar) {
            (true, None) => self.state.calendar = Some(CalendarStatus::default()),
            (false, Some(_)) => self.state.calendar = None,
            _ => {}
        }
    }

    fn meetings(&self) -> &[Meeting] {
        self.state
            .calendar
            .as_ref()
            .map(|c| c.meetings.as_slice())
            .unwrap_or(&[])
    }

    /// Current, next, Join and book-now at `now_ms`.
    fn calendar_view(&mut self, now_ms: u64) {
        let now = self.pending.calendar.rules.now(self.meetings(), now_ms);
        if let Some(c) = &mut self.state.calendar {
            c.current = now.current;
            c.next = now.next;
            c.joinable = now.joinable;
            c.book_minutes = match self.setup.calendar.writable {
                true => now.book_minutes,
                false => Vec::new(),
            };
        }
    }

    /// A command counts as someone in the room, unless it only reads.
    pub(super) fn calendar_activity(&mut self, cmd: &Command, now_ms: u64) {
        if self.state.calendar.is_none()
            || matches!(
                cmd,
                Command::GetState | Command::Ping | Command::CalendarRefresh
            )
        {
            return;
        }
        let meetings = self.meetings().to_vec();
        self.pending.calendar.rules.activity(&meetings, now_ms);
    }

    /// The room the join button's short press joins: the meeting whose Join shows, else none
    /// (the configured room).
    pub(super) fn calendar_join_room(&mut self) -> Option<String> {
        let c = self.state.calendar.as_ref()?;
        let id = c.joinable.as_ref()?;
        let m = c.meetings.iter().find(|m| &m.id == id)?.clone();
        let room = m.room_id.clone()?;
        self.pending.calendar.joined_for = Some((m, room.clone()));
        Some(room)
    }

    pub(super) fn calendar_command(&mut self, cmd: &Command, now_ms: u64) -> Step {
        if self.state.calendar.is_none() {
            return Step::err(
                ErrorCode::Unavailable,
                format!("`{cmd}` needs a calendar, and none is configured ([calendar] source)"),
            );
        }
        match cmd {
            Command::CalendarRefresh => Step::ok(vec![Effect::Calendar(CalendarAction::Refresh)]),
            Command::JoinMeeting { event_id } => self.join_meeting(event_id, now_ms),
            Command::BookNow { minutes } => self.book_now(*minutes, now_ms),
            _ => Step::err(ErrorCode::Internal, "not a calendar command"),
        }
    }

    fn join_meeting(&mut self, id: &str, now_ms: u64) -> Step {
        let Some(m) = self.meetings().iter().find(|m| m.id == id).cloned() else {
            return Step::err(
                ErrorCode::InvalidArgument,
                format!("no meeting `{id}` today or tomorrow"),
            );
        };
        let Some(room) = m.room_id.clone() else {
            return Step::err(
                ErrorCode::InvalidState,
                format!("`{}` has no meeting link this box can join", m.title),
            );
        };
        let opens = m
            .start_ms
            .saturating_sub(self.pending.calendar.rules.setup.join_before_ms);
        if now_ms < opens || now_ms >= m.end_ms {
            return Step::err(
                ErrorCode::InvalidState,
                format!(
                    "`{}` can be joined from {} to {}",
                    m.title,
                    crate::calendar::instant(opens).format("%H:%M UTC"),
                    crate::calendar::instant(m.end_ms).format("%H:%M UTC")
                ),
            );
        }
        if !self.setup.room_backend {
            return Step::err(
                ErrorCode::Unavailable,
                "joining a meeting needs a room backend",
            );
        }
        if self.state.room.as_ref().is_some_and(|r| r.room_id == room) {
            return Step::ok(Vec::new());
        }
        let mut fx = Vec::new();
        if self.state.room.is_some() {
            fx.push(Effect::Room(crate::room::RoomAction::Leave));
        }
        self.pending.calendar.joined_for = Some((m, room.clone()));
        fx.extend(self.join(Some(room), None, None, None, None, None));
        Step::ok(fx)
    }

    fn book_now(&mut self, minutes: u32, now_ms: u64) -> Step {
        if !self.setup.calendar.writable {
            return Step::err(
                ErrorCode::Unavailable,
                "book-now needs a CalDAV calendar (calendar.source = \"caldav\")",
            );
        }
        let meetings = self.meetings().to_vec();
        let rules = &self.pending.calendar.rules;
        let (start, end) = match rules.book(&meetings, now_ms, minutes) {
            Ok(span) => span,
            Err(e @ (BookRefused::Busy { .. } | BookRefused::TooLong { .. })) => {
                return Step::err(ErrorCode::InvalidState, e.to_string())
            }
            Err(e) => return Step::err(ErrorCode::OutOfRange, e.to_string()),
        };
        // The free time's start names the booking: two boxes (or two presses) booking the same
        // free time write the same object, and `If-None-Match: *` lets only the first in.
        let gap = meetings
            .iter()
            .filter(|m| !m.all_day && m.end_ms <= now_ms && !rules.is_released(&m.id))
            .map(|m| m.end_ms)
            .max()
            .unwrap_or(now_ms - now_ms % 86_400_000);
        let token = self.token();
        let booking = Booking {
            uid: format!(
                "roombox-booknow-{}",
                crate::calendar::instant(gap).format("%Y%m%dT%H%M%SZ")
            ),
            start: crate::calendar::instant(start),
            end: crate::calendar::instant(end),
            title: format!("Booked now ({})", self.setup.calendar.device_name),
            device_id: self.state.device_id.clone(),
            room_address: self.setup.calendar.room_address.clone(),
        };
        Step::later(token, vec![Effect::BookMeeting { token, booking }])
    }

    /// The answer to a book-now.
    pub(super) fn calendar_booked(
        &mut self,
        _token: Token,
        result: Result<(), BookFailed>,
        minutes: u64,
    ) -> Step {
        match result {
            Ok(()) => Step::reply(
                Ok(serde_json::json!({"ok": true, "minutes": minutes})),
                vec![Effect::Calendar(CalendarAction::Refresh)],
            ),
            Err(BookFailed::Conflict) => Step::err(
                ErrorCode::InvalidState,
                "someone booked the room first; it is not double-booked",
            ),
            Err(BookFailed::Other(e)) => {
                Step::err(ErrorCode::Internal, format!("booking failed: {e}"))
            }
        }
    }

    /// What the calendar task reported.
    pub fn calendar_notice(&mut self, notice: CalendarNotice, now_ms: u64) -> Vec<Effect> {
        let Some(c) = self.state.calendar.as_mut() else {
            return Vec::new();
        };
        let mut fx = Vec::new();
        match notice {
            CalendarNotice::Updated {
                meetings,
                problems,
                changed,
                at_ms,
            } => {
                let recovered = c.error.take().is_some();
                c.unreachable_since_ms = None;
                c.updated_ms = Some(at_ms);
                if changed {
                    c.problems = problems.into_iter().take(MAX_PROBLEMS).collect();
                    c.meetings = meetings;
                }
                if changed || recovered {
                    let count = c.meetings.len();
                    for p in &c.problems {
                        fx.push(Effect::Emit(Event::Error {
                            code: "calendar".into(),
                            message: p.clone(),
                        }));
                    }
                    self.calendar_view(now_ms);
                    let next = self
                        .state
                        .calendar
                        .as_ref()
                        .and_then(|c| c.next.as_ref())
                        .map(Into::into);
                    fx.push(Effect::Emit(Event::CalendarUpdated {
                        meetings: count,
                        next,
                        error: None,
                    }));
                }
            }
            CalendarNotice::Failed { error, at_ms } => {
                c.unreachable_since_ms.get_or_insert(at_ms);
                if c.error.as_deref() != Some(error.as_str()) {
                    c.error = Some(error.clone());
                    fx.push(Effect::Emit(Event::CalendarUpdated {
                        meetings: c.meetings.len(),
                        next: c.next.as_ref().map(Into::into),
                        error: Some(error),
                    }));
                }
            }
            CalendarNotice::Released { meeting, result } => match result {
                Ok(()) => {
                    c.meetings.retain(|m| m.id != meeting.id);
                    fx.push(Effect::Emit(Event::BookingReleased {
                        meeting: (&meeting).into(),
                        reason: "no-show".into(),
                    }));
                }
                Err(e) => fx.push(Effect::Emit(Event::Error {
                    code: "calendar".into(),
                    message: format!("could not release `{}`: {e}", meeting.title),
                })),
            },
            CalendarNotice::Booked { .. } => {}
        }
        self.calendar_view(now_ms);
        fx
    }

    /// The rules at `now_ms`: starting soon, release, auto-join.
    pub(super) fn calendar_tick(&mut self, now_ms: u64) -> Vec<Effect> {
        if self.state.calendar.is_none() {
            return Vec::new();
        }
        let meetings = self.meetings().to_vec();
        let in_room = self.state.room.is_some();
        let mut fx = Vec::new();
        for e in self.pending.calendar.rules.tick(&meetings, now_ms, in_room) {
            match e {
                RuleEvent::StartingSoon(m) => fx.push(Effect::Emit(Event::MeetingStartingSoon {
                    meeting: (&m).into(),
                })),
                RuleEvent::Release(m) => {
                    fx.push(Effect::Calendar(CalendarAction::Release { meeting: m }))
                }
            }
        }
        self.calendar_view(now_ms);
        if self.setup.calendar.auto_join && self.setup.room_backend && self.state.room.is_none() {
            let current = self.state.calendar.as_ref().and_then(|c| c.current.clone());
            if let Some(m) = current.filter(|m| m.room_id.is_some()) {
                if self.pending.calendar.auto_joined.insert(m.id.clone()) {
                    let room = m.room_id.clone().unwrap_or_default();
                    self.pending.calendar.joined_for = Some((m, room.clone()));
                    fx.extend(self.join(Some(room), None, None, None, None, None));
                }
            }
        }
        fx.extend(self.leave_ended_meeting(now_ms));
        fx
    }

    /// At a meeting's end plus [`END_GRACE_MS`], the box leaves the room it joined for it if
    /// nobody remote is left; with people still there it stays (they may run over).
    fn leave_ended_meeting(&mut self, now_ms: u64) -> Vec<Effect> {
        let Some((m, room)) = self.pending.calendar.joined_for.clone() else {
            return Vec::new();
        };
        let here = self.state.room.as_ref().map(|r| r.room_id.as_str());
        if here != Some(room.as_str()) {
            // Left already, or moved to another room by hand: not this rule's any more.
            if here.is_none() || now_ms >= m.end_ms {
                self.pending.calendar.joined_for = None;
                self.ask_ended(None);
            }
            return Vec::new();
        }
        if now_ms < m.end_ms + END_GRACE_MS {
            return Vec::new();
        }
        if !self.state.participants.is_empty() {
            // People run over: ask on the console, and leave when the last of them goes.
            self.ask_ended(Some(m.title));
            return Vec::new();
        }
        self.pending.calendar.joined_for = None;
        self.ask_ended(None);
        vec![Effect::Room(crate::room::RoomAction::Leave)]
    }

    fn ask_ended(&mut self, title: Option<String>) {
        if let Some(c) = self.state.calendar.as_mut() {
            if c.ended != title {
                c.ended = title;
            }
        }
    }

    pub(super) fn calendar_io(&mut self, notice: IoNotice) -> Option<Step> {
        match notice {
            IoNotice::CalendarBooked {
                token,
                result,
                minutes,
            } => Some(self.calendar_booked(token, result, minutes)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::emitted;
    use super::*;
    use crate::config::CalendarSource;

    const MIN: u64 = 60_000;
    /// 10:00 UTC on some day.
    const T0: u64 = 1_796_637_600_000;

    fn meeting(id: &str, start: u64, end: u64, room: Option<&str>) -> Meeting {
        Meeting {
            id: id.into(),
            uid: id.into(),
            recurrence_id: None,
            start_ms: T0 + start * MIN,
            end_ms: T0 + end * MIN,
            all_day: false,
            title: id.to_uppercase(),
            organizer: None,
            room_id: room.map(str::to_string),
            booked_here: false,
            ordinal: 0,
        }
    }

    fn machine() -> StateMachine {
        let mut c = Config::default();
        c.calendar.source = CalendarSource::Caldav;
        c.calendar.url = "https://cal.example.com/room/".into();
        let mut s = StateMachine::new(&c, "box1".into());
        s.set_room_backend(true);
        let fx = s.calendar_notice(
            CalendarNotice::Updated {
                meetings: vec![
                    meeting("a", 30, 90, Some("1234")),
                    meeting("b", 120, 150, None),
                ],
                problems: Vec::new(),
                changed: true,
                at_ms: T0,
            },
            T0,
        );
        assert_eq!(emitted(&fx), ["calendar-updated"]);
        s
    }

    #[test]
    fn the_state_shows_next_then_current_and_the_short_press_joins_the_meeting() {
        let mut s = machine();
        let c = s.state().calendar.clone().unwrap();
        assert_eq!(c.next.unwrap().id, "a");
        assert_eq!(
            c.book_minutes,
            [15, 30],
            "up to the next meeting, not over it"
        );
        let fx = s.tick(T0 + 25 * MIN);
        assert_eq!(emitted(&fx), ["meeting-starting-soon"]);
        assert_eq!(
            s.state().calendar.as_ref().unwrap().joinable.as_deref(),
            Some("a")
        );
        s.command(&Command::ToggleJoin, T0 + 26 * MIN);
        assert_eq!(s.state().room.as_ref().unwrap().room_id, "1234");
        s.tick(T0 + 40 * MIN);
        assert!(
            s.tick(T0 + 41 * MIN)
                .iter()
                .all(|e| !matches!(e, Effect::Calendar(_))),
            "someone came"
        );
        assert_eq!(
            s.state()
                .calendar
                .as_ref()
                .unwrap()
                .current
                .as_ref()
                .unwrap()
                .id,
            "a"
        );
    }

    #[test]
    fn nobody_came_releases_and_the_event_waits_for_the_server() {
        let mut s = machine();
        assert!(s
            .tick(T0 + 39 * MIN)
            .iter()
            .all(|e| !matches!(e, Effect::Calendar(_))));
        let fx = s.tick(T0 + 40 * MIN);
        let released: Vec<&Effect> = fx
            .iter()
            .filter(|e| matches!(e, Effect::Calendar(CalendarAction::Release { .. })))
            .collect();
        assert_eq!(released.len(), 1);
        assert!(
            !emitted(&fx).contains(&"booking-released".to_string()),
            "not before the server took it"
        );
        let m = s.meetings()[0].clone();
        let fx = s.calendar_notice(
            CalendarNotice::Released {
                meeting: m,
                result: Ok(()),
            },
            T0 + 40 * MIN,
        );
        assert_eq!(emitted(&fx), ["booking-released"]);
        let c = s.state().calendar.as_ref().unwrap();
        assert!(c.current.is_none());
        assert_eq!(c.book_minutes, [15, 30, 60]);
    }

    #[test]
    fn join_meeting_and_book_now_say_why_not() {
        let mut s = machine();
        let step = s.command(
            &Command::JoinMeeting {
                event_id: "a".into(),
            },
            T0,
        );
        assert!(step
            .reply
            .unwrap_err()
            .message
            .contains("can be joined from"));
        let step = s.command(
            &Command::JoinMeeting {
                event_id: "b".into(),
            },
            T0 + 120 * MIN,
        );
        assert!(step.reply.unwrap_err().message.contains("no meeting link"));
        let step = s.command(&Command::BookNow { minutes: 60 }, T0);
        assert!(step
            .reply
            .unwrap_err()
            .message
            .contains("next meeting starts in 30"));
        let step = s.command(&Command::BookNow { minutes: 15 }, T0);
        let Reply::Later(_) = step.reply else {
            panic!("{:?}", step.reply)
        };
        let Some(Effect::BookMeeting { booking, .. }) = step.effects.first() else {
            panic!()
        };
        assert_eq!(booking.end - booking.start, chrono::Duration::minutes(15));
        assert!(booking.uid.starts_with("roombox-booknow-"));
    }

    #[test]
    fn a_failed_read_keeps_the_last_good_day_and_says_since_when() {
        let mut s = machine();
        let fx = s.calendar_notice(
            CalendarNotice::Failed {
                error: "cannot reach x".into(),
                at_ms: T0 + MIN,
            },
            T0 + MIN,
        );
        assert_eq!(emitted(&fx), ["calendar-updated"]);
        let fx = s.calendar_notice(
            CalendarNotice::Failed {
                error: "cannot reach x".into(),
                at_ms: T0 + 2 * MIN,
            },
            T0 + 2 * MIN,
        );
        assert!(fx.is_empty(), "said once");
        let c = s.state().calendar.as_ref().unwrap();
        assert_eq!(c.meetings.len(), 2);
        assert_eq!(c.unreachable_since_ms, Some(T0 + MIN));
        let v = serde_json::to_value(s.state()).unwrap();
        assert_eq!(v["calendar"]["meetings"][0]["title"], "A");
    }

    #[test]
    fn the_box_leaves_a_meeting_it_joined_after_the_end_when_nobody_remote_is_left() {
        let mut s = machine();
        s.command(
            &Command::JoinMeeting {
                event_id: "a".into(),
            },
            T0 + 26 * MIN,
        );
        assert_eq!(s.state().room.as_ref().unwrap().room_id, "1234");
        let leaves = |fx: &[Effect]| fx.contains(&Effect::Room(crate::room::RoomAction::Leave));
        assert!(!leaves(&s.tick(T0 + 91 * MIN)), "within the grace");
        let remote = crate::model::Participant {
            participant_id: "p1".into(),
            display_name: "Ana".into(),
            local: false,
            mode: crate::model::Mode::SendAndReceive,
            metadata: Default::default(),
            mic_on: true,
            webcam_on: true,
            streams: Default::default(),
        };
        s.state_mut().participants.insert("p1".into(), remote);
        let ended = |s: &StateMachine| s.state().calendar.as_ref().unwrap().ended.clone();
        assert_eq!(ended(&s), None, "nothing to ask before the end");
        assert!(
            !leaves(&s.tick(T0 + 93 * MIN)),
            "someone remote is still there"
        );
        assert_eq!(ended(&s), Some("A".into()), "the console asks");
        s.state_mut().participants.clear();
        assert!(leaves(&s.tick(T0 + 94 * MIN)));
        assert_eq!(ended(&s), None, "asked no more once it leaves");
        assert!(!leaves(&s.tick(T0 + 95 * MIN)), "once");
    }

    #[test]
    fn a_read_only_calendar_offers_no_booking_and_releases_nothing() {
        let mut c = Config::default();
        c.calendar.source = CalendarSource::File;
        c.calendar.file = "/tmp/room.ics".into();
        let mut s = StateMachine::new(&c, "box1".into());
        s.calendar_notice(
            CalendarNotice::Updated {
                meetings: vec![meeting("a", 30, 90, None)],
                problems: Vec::new(),
                changed: true,
                at_ms: T0,
            },
            T0,
        );
        assert!(s.state().calendar.as_ref().unwrap().book_minutes.is_empty());
        let step = s.command(&Command::BookNow { minutes: 15 }, T0);
        assert_eq!(step.reply.unwrap_err().code, ErrorCode::Unavailable);
        assert!(s
            .tick(T0 + 45 * MIN)
            .iter()
            .all(|e| !matches!(e, Effect::Calendar(_))));
    }

    use super::super::Reply;
}
