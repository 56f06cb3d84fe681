//! The agent's side of the room's calendar: starting the calendar task from `[calendar]` (the
//! password read from its file here, and nowhere kept but in the source), passing it the
//! machine's requests, matching book-now answers to the replies that wait for them, and the
//! agent's clock (the real one, moved by an offset in tests).

use super::state::{IoNotice, Token};
use super::Agent;
use crate::calendar::source::{self, Booking};
use crate::calendar::{BookFailed, CalendarAction, CalendarLink, CalendarNotice, ExpandSetup};
use crate::config::Config;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// The calendar task, once started, and the clock it shares with the agent.
#[derive(Default)]
pub(super) struct CalendarPart {
    link: Option<CalendarLink>,
    /// Book-now requests in flight: the raw token, the machine's token and the minutes.
    books: HashMap<u64, (Token, u64)>,
    offset_ms: Arc<AtomicI64>,
}

impl CalendarPart {
    pub(super) fn set_offset(&mut self, ms: i64) {
        self.offset_ms.store(ms, Ordering::Relaxed);
    }

    pub(super) fn offset(&self) -> Arc<AtomicI64> {
        self.offset_ms.clone()
    }

    pub(super) fn now(&self) -> u64 {
        shifted(&self.offset_ms)
    }

    pub(super) async fn recv(&mut self) -> Option<CalendarNotice> {
        match &mut self.link {
            Some(l) => l.notices.recv().await,
            None => std::future::pending().await,
        }
    }

    pub(super) fn send(&self, action: CalendarAction) {
        match &self.link {
            Some(l) => {
                let _ = l.actions.send(action);
            }
            None => tracing::warn!(?action, "no calendar task runs"),
        }
    }

    /// Sends a booking; without a calendar task, the answer at once.
    pub(super) fn book(&mut self, token: Token, booking: Booking) -> Option<IoNotice> {
        let minutes = (booking.end - booking.start).num_minutes().max(0) as u64;
        let Some(l) = &self.link else {
            return Some(IoNotice::CalendarBooked {
                token,
                result: Err(BookFailed::Other("no calendar task runs".into())),
                minutes,
            });
        };
        self.books.insert(token.raw(), (token, minutes));
        let _ = l.actions.send(CalendarAction::Book {
            token: token.raw(),
            booking,
        });
        None
    }

    /// The answer to a booking, for the reply waiting on it.
    pub(super) fn booked(&mut self, raw: u64, result: Result<(), BookFailed>) -> Option<IoNotice> {
        let (token, minutes) = self.books.remove(&raw)?;
        Some(IoNotice::CalendarBooked {
            token,
            result,
            minutes,
        })
    }
}

fn shifted(offset: &AtomicI64) -> u64 {
    let now = crate::model::now_ms() as i64 + offset.load(Ordering::Relaxed);
    now.max(0) as u64
}

impl Agent {
    /// Starts (or restarts, after a reload) the calendar task; stops it when `[calendar]` is off.
    pub(super) fn start_calendar(&mut self, config: &Config) {
        self.calendar.link = None;
        if !config.calendar.enabled() {
            return;
        }
        let started = source::read_password(&config.calendar)
            .and_then(|pw| source::from_config(&config.calendar, pw).map_err(|e| e.to_string()));
        match started {
            Ok(Some(src)) => {
                let offset = self.calendar.offset_ms.clone();
                let room_address = (!config.calendar.room_address.is_empty())
                    .then(|| config.calendar.room_address.to_ascii_lowercase());
                self.calendar.link = Some(crate::calendar::spawn(
                    src,
                    ExpandSetup::from_config(config),
                    room_address,
                    config.calendar.poll_interval,
                    Arc::new(move || shifted(&offset)),
                ));
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!("calendar: {error}");
                let now = self.now();
                let fx = self
                    .machine
                    .calendar_notice(CalendarNotice::Failed { error, at_ms: now }, now);
                let mut none = None;
                self.execute(fx, &mut none);
            }
        }
    }
}
