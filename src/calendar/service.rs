//! The calendar's task: reads the source every `poll_interval` (and at once when asked), expands
//! today and tomorrow on the room's clock, and carries out bookings and releases. It reports
//! [`CalendarNotice`]s; what they mean for the room (current, next, Join, release) is decided by
//! the agent's state machine with [`super::Rules`].
//!
//! Time comes from a [`Clock`] the agent gives it, so a test can move the room's day without
//! waiting for it.

use super::expand::{expand, instant, two_days, ExpandSetup, Meeting};
use super::source::{Booking, Source};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Milliseconds since the epoch, as the agent counts them (the real clock plus any offset).
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// What the agent asks of the calendar task.
#[derive(Debug, Clone, PartialEq)]
pub enum CalendarAction {
    /// Read the source now (`calendar-refresh`).
    Refresh,
    /// Write a book-now booking; answered by [`CalendarNotice::Booked`] with the same token.
    Book { token: u64, booking: Booking },
    /// Give a meeting back; answered by [`CalendarNotice::Released`].
    Release { meeting: Meeting },
}

/// What the calendar task reports.
#[derive(Debug, Clone, PartialEq)]
pub enum CalendarNotice {
    /// A read found today's and tomorrow's meetings (or nothing changed: `changed` false, and
    /// `meetings` are the last ones).
    Updated {
        meetings: Vec<Meeting>,
        problems: Vec<String>,
        changed: bool,
        at_ms: u64,
    },
    /// A read failed; the last good day stands.
    Failed { error: String, at_ms: u64 },
    Booked {
        token: u64,
        result: Result<(), BookFailed>,
    },
    Released {
        meeting: Meeting,
        result: Result<(), String>,
    },
}

/// Why a booking was not written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BookFailed {
    /// Someone booked the same free time first.
    Conflict,
    Other(String),
}

/// The agent's end of the calendar task.
pub struct CalendarLink {
    pub actions: mpsc::UnboundedSender<CalendarAction>,
    pub notices: mpsc::UnboundedReceiver<CalendarNotice>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CalendarLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the task. `room_address` is what a release declines for.
pub fn spawn(
    source: Box<dyn Source>,
    setup: ExpandSetup,
    room_address: Option<String>,
    poll: Duration,
    clock: Clock,
) -> CalendarLink {
    let (actions, mut rx) = mpsc::unbounded_channel();
    let (tx, notices) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut source = source;
        let mut last: Vec<Meeting> = Vec::new();
        let mut timer = tokio::time::interval(poll);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let action = tokio::select! {
                _ = timer.tick() => CalendarAction::Refresh,
                a = rx.recv() => match a {
                    Some(a) => a,
                    None => return,
                },
            };
            let notice = match action {
                CalendarAction::Refresh => {
                    let now = clock();
                    let (from, to) = two_days(setup.zone, instant(now));
                    match source.fetch(from, to).await {
                        Ok(Some(f)) => {
                            let out = expand(&f.parsed.events, &setup, from, to);
                            let mut problems = f.parsed.problems;
                            problems.extend(out.problems);
                            last = out.meetings.clone();
                            CalendarNotice::Updated {
                                meetings: out.meetings,
                                problems,
                                changed: true,
                                at_ms: clock(),
                            }
                        }
                        Ok(None) => CalendarNotice::Updated {
                            meetings: last.clone(),
                            problems: Vec::new(),
                            changed: false,
                            at_ms: clock(),
                        },
                        Err(e) => CalendarNotice::Failed {
                            error: e.to_string(),
                            at_ms: clock(),
                        },
                    }
                }
                CalendarAction::Book { token, booking } => {
                    let result = source.book(&booking).await.map_err(|e| match e {
                        super::source::SourceError::Conflict => BookFailed::Conflict,
                        e => BookFailed::Other(e.to_string()),
                    });
                    // Read back at once, so the booking is on the console.
                    let _ = tx.send(CalendarNotice::Booked { token, result });
                    timer.reset_immediately();
                    continue;
                }
                CalendarAction::Release { meeting } => {
                    let result = source
                        .release(&meeting, room_address.as_deref())
                        .await
                        .map_err(|e| e.to_string());
                    timer.reset_immediately();
                    CalendarNotice::Released { meeting, result }
                }
            };
            if tx.send(notice).is_err() {
                return;
            }
        }
    });
    CalendarLink {
        actions,
        notices,
        task,
    }
}
