//! The room's calendar: iCalendar parsed and expanded on the box, the meeting rules, and the
//! sources the calendar comes from.
//!
//! - `ics.rs` reads a file's events (the `icalendar` crate parses), `zones.rs` and
//!   `windows_zones.rs` resolve their TZIDs (IANA, Windows as Outlook writes them);
//! - `expand.rs` turns events into the meetings of a window (the `rrule` crate expands series
//!   in the event's own zone), with titles made private and the room to join (`link.rs`);
//! - `rules.rs` is the pure state machine of current, next, Join, starting soon, no-show
//!   release and book-now, on a clock it is given;
//! - `source/` fetches the calendar (CalDAV, an `.ics` URL, a local file) behind one trait;
//! - `service.rs` is the task that polls the source and carries out bookings and releases.
//!
//! Layer 7 of docs/architecture.md: it imports only `config` and `event` below it; the agent
//! drives it and the layers above read its [`Meeting`]s from the agent's state.

mod expand;
mod ics;
mod link;
mod rules;
mod service;
pub mod source;
mod windows_zones;
mod zones;

pub use expand::{
    expand, instant, two_days, ExpandSetup, Expanded, Meeting, MAX_STEPS, PRIVATE_TITLE,
};
pub use ics::{parse, ParseError, Parsed, VEvent, MAX_EVENTS, MAX_ICS_BYTES};
pub use link::JoinMatcher;
pub use rules::{BookRefused, Now, RuleEvent, Rules, RulesSetup, BOOK_STEPS};
pub use service::{spawn, BookFailed, CalendarAction, CalendarLink, CalendarNotice, Clock};
pub use zones::{lookup as zone, system_zone};
