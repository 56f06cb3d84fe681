//! The meeting rules, on a clock given to them: which meeting is current and next, when Join
//! shows (`join_before` ahead of the start), when "meeting starting soon" is said (once per
//! meeting), when a booking nobody came to is released (`release_after` past the start with
//! nobody in a room and no button pressed), and how long book-now may book (15, 30 or 60
//! minutes, only up to the next meeting).
//!
//! Pure: nothing here reads a clock or a socket. The agent tells it the meetings, the time and
//! what people did; it answers with [`RuleEvent`]s for the agent to act on.

use super::expand::Meeting;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The lengths book-now offers, in minutes.
pub const BOOK_STEPS: [u32; 3] = [15, 30, 60];

/// The rules' settings, from `[calendar]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RulesSetup {
    /// Join shows this long before a meeting's start, ms.
    pub join_before_ms: u64,
    /// A meeting nobody came to is released this long after its start, ms; 0: never.
    pub release_after_ms: u64,
}

impl Default for RulesSetup {
    fn default() -> Self {
        RulesSetup {
            join_before_ms: 5 * 60_000,
            release_after_ms: 10 * 60_000,
        }
    }
}

/// What the rules ask the agent to do or say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleEvent {
    /// The meeting's join window opened.
    StartingSoon(Meeting),
    /// Nobody came: decline (or delete) the booking.
    Release(Meeting),
}

/// Where the room stands now, for the state and the console.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Now {
    /// The meeting under way (timed, not released).
    pub current: Option<Meeting>,
    /// The next timed meeting to start.
    pub next: Option<Meeting>,
    /// The meeting Join is offered for: within its join window and with a room to join.
    pub joinable: Option<String>,
    /// The book-now lengths allowed now, in minutes; empty while the room is busy.
    pub book_minutes: Vec<u32>,
}

/// Why book-now was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BookRefused {
    #[error("the room is booked now: `{title}` until {until}")]
    Busy { title: String, until: String },
    #[error("{minutes} minutes is not offered; book 15, 30 or 60")]
    Length { minutes: u32 },
    #[error("the next meeting starts in {free} minutes; {minutes} do not fit")]
    TooLong { minutes: u32, free: u64 },
}

/// The rules' memory: what was already said and done, so each happens once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rules {
    pub setup: RulesSetup,
    /// Meetings whose "starting soon" was said.
    announced: BTreeSet<String>,
    /// Meetings somebody attended (a room joined or a button pressed in their window).
    attended: BTreeSet<String>,
    /// Meetings released (or asked to be).
    released: BTreeSet<String>,
}

impl Rules {
    pub fn new(setup: RulesSetup) -> Rules {
        Rules {
            setup,
            ..Rules::default()
        }
    }

    /// A meeting's window of attendance: from its join window to its end.
    fn in_window(&self, m: &Meeting, now_ms: u64) -> bool {
        !m.all_day
            && m.start_ms.saturating_sub(self.setup.join_before_ms) <= now_ms
            && now_ms < m.end_ms
    }

    /// Somebody is in the room: a room was joined, or a button or the console was used.
    /// Counts for every meeting whose window is open.
    pub fn activity(&mut self, meetings: &[Meeting], now_ms: u64) {
        let open: Vec<String> = meetings
            .iter()
            .filter(|m| self.in_window(m, now_ms))
            .map(|m| m.id.clone())
            .collect();
        self.attended.extend(open);
    }

    /// True once the meeting was released.
    pub fn is_released(&self, id: &str) -> bool {
        self.released.contains(id)
    }

    /// Notes a release done elsewhere (the fleet, or a retry that found it already declined).
    pub fn mark_released(&mut self, id: &str) {
        self.released.insert(id.to_string());
    }

    /// The time passes: what opened and what is to be released. `in_room` says the box is in
    /// a room now (that counts as attendance).
    pub fn tick(&mut self, meetings: &[Meeting], now_ms: u64, in_room: bool) -> Vec<RuleEvent> {
        if in_room {
            self.activity(meetings, now_ms);
        }
        let mut out = Vec::new();
        for m in meetings.iter().filter(|m| !m.all_day) {
            if self.released.contains(&m.id) {
                continue;
            }
            let opens = m.start_ms.saturating_sub(self.setup.join_before_ms);
            if opens <= now_ms
                && now_ms < m.start_ms.max(opens + 1)
                && self.announced.insert(m.id.clone())
            {
                out.push(RuleEvent::StartingSoon(m.clone()));
            }
            let release_at = m.start_ms.saturating_add(self.setup.release_after_ms);
            if self.setup.release_after_ms > 0
                && release_at <= now_ms
                && now_ms < m.end_ms
                && !self.attended.contains(&m.id)
            {
                self.released.insert(m.id.clone());
                out.push(RuleEvent::Release(m.clone()));
            }
        }
        // Forget meetings that are gone, so the sets stay the size of a day.
        let ids: BTreeSet<&str> = meetings.iter().map(|m| m.id.as_str()).collect();
        self.announced.retain(|i| ids.contains(i.as_str()));
        self.attended.retain(|i| ids.contains(i.as_str()));
        self.released.retain(|i| ids.contains(i.as_str()));
        out
    }

    /// Current, next, Join and book-now, at `now_ms`.
    pub fn now(&self, meetings: &[Meeting], now_ms: u64) -> Now {
        let live = |m: &&Meeting| !m.all_day && !self.released.contains(&m.id);
        let current = meetings
            .iter()
            .filter(live)
            .find(|m| m.start_ms <= now_ms && now_ms < m.end_ms)
            .cloned();
        let next = meetings
            .iter()
            .filter(live)
            .filter(|m| m.start_ms > now_ms)
            .min_by_key(|m| m.start_ms)
            .cloned();
        let joinable = meetings
            .iter()
            .filter(live)
            .filter(|m| m.room_id.is_some() && self.in_window(m, now_ms))
            .min_by_key(|m| m.start_ms)
            .map(|m| m.id.clone());
        let book_minutes = match &current {
            Some(_) => Vec::new(),
            None => BOOK_STEPS
                .into_iter()
                .filter(|min| {
                    next.as_ref()
                        .is_none_or(|n| now_ms + u64::from(*min) * 60_000 <= n.start_ms)
                })
                .collect(),
        };
        Now {
            current,
            next,
            joinable,
            book_minutes,
        }
    }

    /// Checks a book-now of `minutes` at `now_ms`: the span to book, `[now, now + minutes)`.
    pub fn book(
        &self,
        meetings: &[Meeting],
        now_ms: u64,
        minutes: u32,
    ) -> Result<(u64, u64), BookRefused> {
        if !BOOK_STEPS.contains(&minutes) {
            return Err(BookRefused::Length { minutes });
        }
        let now = self.now(meetings, now_ms);
        if let Some(c) = now.current {
            return Err(BookRefused::Busy {
                title: c.title,
                until: super::expand::instant(c.end_ms)
                    .format("%H:%M UTC")
                    .to_string(),
            });
        }
        if !now.book_minutes.contains(&minutes) {
            let free = now
                .next
                .map(|n| n.start_ms.saturating_sub(now_ms) / 60_000)
                .unwrap_or(0);
            return Err(BookRefused::TooLong { minutes, free });
        }
        Ok((now_ms, now_ms + u64::from(minutes) * 60_000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    fn meeting(id: &str, start_min: u64, end_min: u64, room: Option<&str>) -> Meeting {
        Meeting {
            id: id.into(),
            uid: id.into(),
            recurrence_id: None,
            start_ms: start_min * MIN,
            end_ms: end_min * MIN,
            all_day: false,
            title: id.to_uppercase(),
            organizer: None,
            room_id: room.map(str::to_string),
            booked_here: false,
            ordinal: 0,
        }
    }

    fn day() -> Vec<Meeting> {
        vec![
            meeting("a", 600, 660, Some("1234")),
            meeting("b", 700, 730, None),
        ]
    }

    #[test]
    fn join_shows_from_join_before_until_the_end_and_soon_is_said_once() {
        let mut r = Rules::new(RulesSetup::default());
        let d = day();
        assert_eq!(r.now(&d, 594 * MIN).joinable, None);
        assert!(r.tick(&d, 594 * MIN, false).is_empty());
        assert_eq!(r.now(&d, 595 * MIN).joinable.as_deref(), Some("a"));
        assert_eq!(
            r.tick(&d, 595 * MIN, false),
            [RuleEvent::StartingSoon(d[0].clone())]
        );
        assert!(r.tick(&d, 596 * MIN, false).is_empty(), "once");
        assert_eq!(r.now(&d, 659 * MIN).joinable.as_deref(), Some("a"));
        assert_eq!(r.now(&d, 660 * MIN).joinable, None);
        // b has no room: soon is said (the LEDs show it), Join is not offered.
        assert_eq!(
            r.tick(&d, 695 * MIN, true),
            [RuleEvent::StartingSoon(d[1].clone())]
        );
        assert_eq!(r.now(&d, 696 * MIN).joinable, None);
    }

    #[test]
    fn current_and_next_follow_the_clock() {
        let r = Rules::new(RulesSetup::default());
        let d = day();
        let n = r.now(&d, 500 * MIN);
        assert_eq!(
            (n.current.map(|m| m.id), n.next.map(|m| m.id)),
            (None, Some("a".into()))
        );
        let n = r.now(&d, 600 * MIN);
        assert_eq!(
            (n.current.map(|m| m.id), n.next.map(|m| m.id)),
            (Some("a".into()), Some("b".into()))
        );
        let n = r.now(&d, 800 * MIN);
        assert_eq!((n.current, n.next), (None, None));
    }

    #[test]
    fn a_booking_nobody_came_to_is_released_once_after_release_after() {
        let mut r = Rules::new(RulesSetup::default());
        let d = day();
        assert!(r
            .tick(&d, 609 * MIN, false)
            .iter()
            .all(|e| !matches!(e, RuleEvent::Release(_))));
        assert_eq!(
            r.tick(&d, 610 * MIN, false),
            [RuleEvent::Release(d[0].clone())]
        );
        assert!(r.tick(&d, 611 * MIN, false).is_empty(), "once");
        assert!(r.is_released("a"));
        assert_eq!(r.now(&d, 611 * MIN).current, None, "the room is free again");
        assert_eq!(r.now(&d, 611 * MIN).book_minutes, [15, 30, 60]);
    }

    #[test]
    fn anyone_in_the_room_keeps_the_booking() {
        let d = day();
        let mut r = Rules::new(RulesSetup::default());
        r.activity(&d, 597 * MIN);
        assert!(r.tick(&d, 615 * MIN, false).is_empty());
        let mut r = Rules::new(RulesSetup::default());
        r.tick(&d, 605 * MIN, true);
        assert!(r.tick(&d, 615 * MIN, false).is_empty(), "in a room counts");
        let mut r = Rules::new(RulesSetup::default());
        r.activity(&d, 590 * MIN);
        assert_eq!(
            r.tick(&d, 615 * MIN, false).len(),
            1,
            "a press before the window does not"
        );
        let mut r = Rules::new(RulesSetup {
            release_after_ms: 0,
            ..RulesSetup::default()
        });
        assert!(
            r.tick(&d, 615 * MIN, false)
                .iter()
                .all(|e| !matches!(e, RuleEvent::Release(_))),
            "0: never"
        );
    }

    #[test]
    fn book_now_fits_before_the_next_meeting_and_never_over_one() {
        let r = Rules::new(RulesSetup::default());
        let d = day();
        assert_eq!(r.now(&d, 500 * MIN).book_minutes, [15, 30, 60]);
        assert_eq!(r.now(&d, 560 * MIN).book_minutes, [15, 30]);
        assert_eq!(r.now(&d, 590 * MIN).book_minutes, Vec::<u32>::new());
        assert_eq!(r.book(&d, 560 * MIN, 30), Ok((560 * MIN, 590 * MIN)));
        assert!(matches!(
            r.book(&d, 560 * MIN, 60),
            Err(BookRefused::TooLong { free: 40, .. })
        ));
        assert!(matches!(
            r.book(&d, 620 * MIN, 15),
            Err(BookRefused::Busy { .. })
        ));
        assert!(matches!(
            r.book(&d, 500 * MIN, 20),
            Err(BookRefused::Length { .. })
        ));
        assert_eq!(r.book(&[], 500 * MIN, 60), Ok((500 * MIN, 560 * MIN)));
    }

    #[test]
    fn all_day_events_are_neither_current_nor_released() {
        let mut r = Rules::new(RulesSetup::default());
        let mut m = meeting("h", 0, 1440, Some("1234"));
        m.all_day = true;
        let d = vec![m];
        assert!(r.tick(&d, 700 * MIN, false).is_empty());
        assert_eq!(
            r.now(&d, 700 * MIN),
            Now {
                book_minutes: vec![15, 30, 60],
                ..Now::default()
            }
        );
    }
}
