//! Events to the meetings of a window: recurring series expanded by the `rrule` crate in the
//! event's own zone (a weekly 09:00 in Berlin stays 09:00 across DST), EXDATEs and overridden
//! instances (RECURRENCE-ID) applied, cancelled ones dropped, all-day events on the room's
//! dates, and each meeting's title (or "Private meeting") and room to join.
//!
//! Expansion is bounded: a series may step at most [`MAX_STEPS`] times (occurrences before the
//! window included) before it is skipped and named in the problems.

use super::ics::{VEvent, When};
use super::link::JoinMatcher;
use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// Most steps through one series' occurrences: 200,000 steps is about 40 ms here.
pub const MAX_STEPS: usize = 200_000;
/// The title shown for private meetings.
pub const PRIVATE_TITLE: &str = "Private meeting";
/// The title shown for an event without a SUMMARY.
pub const UNTITLED: &str = "Meeting";

/// One meeting as the box shows it. Its description is never kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meeting {
    /// Stable across refreshes: the UID, and for an instance of a series its start in UTC
    /// (`uid/20261207T090000Z`, or `uid/20261207` for all-day ones).
    pub id: String,
    #[serde(skip)]
    pub uid: String,
    /// For an instance of a series: its RECURRENCE-ID value, in UTC (or a date).
    #[serde(skip)]
    pub recurrence_id: Option<String>,
    /// ms since the epoch.
    pub start_ms: u64,
    /// ms since the epoch; exclusive.
    pub end_ms: u64,
    pub all_day: bool,
    /// The SUMMARY, or "Private meeting".
    pub title: String,
    pub organizer: Option<String>,
    /// The room the box would join for it; none when no link is one the box can join.
    pub room_id: Option<String>,
    /// Booked by this box with book-now.
    #[serde(default)]
    pub booked_here: bool,
    /// The VEVENT it came from (its ordinal in its file), for a release to edit.
    #[serde(skip)]
    pub ordinal: usize,
}

impl From<&Meeting> for crate::event::MeetingSummary {
    fn from(m: &Meeting) -> Self {
        crate::event::MeetingSummary {
            id: m.id.clone(),
            title: m.title.clone(),
            start_ms: m.start_ms,
            end_ms: m.end_ms,
            room_id: m.room_id.clone(),
        }
    }
}

/// How events become meetings.
#[derive(Debug, Clone)]
pub struct ExpandSetup {
    /// The room's zone: "today", all-day dates and floating times are read on its clock.
    pub zone: Tz,
    /// Every title shows as "Private meeting".
    pub private_all: bool,
    /// The room's own address (`room-4@example.com`): an event it declined is not shown.
    pub room_address: Option<String>,
    /// This box's device id, to know its own book-now bookings.
    pub device_id: String,
    pub matcher: JoinMatcher,
}

impl ExpandSetup {
    /// What expansion needs from the configuration: the zone, privacy, the room's address and
    /// the links the box can join.
    pub fn from_config(config: &crate::config::Config) -> ExpandSetup {
        let c = &config.calendar;
        let zone = match c.timezone.as_str() {
            "" => super::system_zone(),
            tz => super::zone(tz).unwrap_or(chrono_tz::Tz::UTC),
        };
        let janus = (config.room.backend == crate::config::RoomBackendKind::Janus)
            .then_some(config.room.url.as_str());
        let mut rooms = vec![config.room.room_id.clone()];
        rooms.extend(config.room.rooms.iter().cloned());
        ExpandSetup {
            zone,
            private_all: c.private_titles,
            room_address: (!c.room_address.is_empty()).then(|| c.room_address.to_ascii_lowercase()),
            device_id: config.device_id(),
            matcher: JoinMatcher::new(janus, &rooms, &c.join_urls),
        }
    }
}

/// A window's meetings, by start, and the events that could not be expanded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expanded {
    pub meetings: Vec<Meeting>,
    pub problems: Vec<String>,
}

/// The meetings that overlap `[from, to)`.
pub fn expand(
    events: &[VEvent],
    setup: &ExpandSetup,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Expanded {
    let mut out = Expanded::default();
    // Overrides by UID, with the instants of the instances they replace.
    let mut overridden: HashMap<&str, HashSet<i64>> = HashMap::new();
    for e in events {
        if let Some(rid) = &e.recurrence_id {
            overridden
                .entry(e.uid.as_str())
                .or_default()
                .insert(rid.instant(setup.zone).timestamp());
        }
    }
    for e in events {
        if declined_by_room(e, setup) {
            continue;
        }
        if e.recurrence_id.is_some() {
            if !e.cancelled {
                push_single(&mut out, e, setup, from, to);
            }
            continue;
        }
        if e.cancelled {
            continue;
        }
        let skip = overridden.get(e.uid.as_str());
        if e.rrule.is_some() || !e.rdates.is_empty() {
            if let Err(why) = push_series(&mut out, e, setup, from, to, skip) {
                out.problems.push(format!("event {}: {why}", e.uid));
            }
        } else {
            push_single(&mut out, e, setup, from, to);
        }
    }
    out.meetings
        .sort_by(|a, b| (a.start_ms, a.end_ms, &a.id).cmp(&(b.start_ms, b.end_ms, &b.id)));
    out.meetings.dedup_by(|a, b| a.id == b.id);
    out
}

fn declined_by_room(e: &VEvent, setup: &ExpandSetup) -> bool {
    let Some(room) = &setup.room_address else {
        return false;
    };
    e.attendees
        .iter()
        .any(|a| &a.address == room && a.partstat.as_deref() == Some("DECLINED"))
}

/// How long each occurrence lasts: DTEND − DTSTART, else DURATION, else a day for a date and
/// nothing for a date-time (RFC 5545 3.6.1).
fn length(e: &VEvent, zone: Tz) -> Duration {
    if let Some(end) = &e.end {
        let d = end.instant(zone) - e.start.instant(zone);
        if d > Duration::zero() {
            return d;
        }
    }
    if let Some(d) = e.duration {
        if d > Duration::zero() {
            return d;
        }
    }
    if e.start.is_date() {
        Duration::days(1)
    } else {
        Duration::zero()
    }
}

fn ms(t: DateTime<Utc>) -> u64 {
    u64::try_from(t.timestamp_millis()).unwrap_or(0)
}

fn meeting(
    e: &VEvent,
    setup: &ExpandSetup,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    instance: Option<String>,
) -> Meeting {
    let private = setup.private_all || e.private;
    let title = if private {
        PRIVATE_TITLE.to_string()
    } else {
        e.summary
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .unwrap_or(UNTITLED)
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect()
    };
    let id = match &instance {
        Some(i) => format!("{}/{i}", e.uid),
        None => e.uid.clone(),
    };
    Meeting {
        id,
        uid: e.uid.clone(),
        recurrence_id: instance,
        start_ms: ms(start),
        end_ms: ms(end),
        all_day: e.start.is_date(),
        title,
        organizer: e.organizer.clone(),
        room_id: setup.matcher.pick(
            &e.conference,
            e.location.as_deref(),
            e.description.as_deref(),
        ),
        booked_here: e
            .booked_by
            .as_deref()
            .is_some_and(|b| !setup.device_id.is_empty() && b == setup.device_id),
        ordinal: e.ordinal,
    }
}

/// The instance key of an occurrence: its original start in UTC, or its date.
fn instance_key(w: &When, zone: Tz) -> String {
    match w {
        When::Date(d) => d.format("%Y%m%d").to_string(),
        _ => w.instant(zone).format("%Y%m%dT%H%M%SZ").to_string(),
    }
}

fn push_single(
    out: &mut Expanded,
    e: &VEvent,
    setup: &ExpandSetup,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) {
    let zone = setup.zone;
    let (start, end) = match e.start {
        When::Date(d) => {
            let days = length(e, zone).num_days().max(1);
            (
                When::Date(d).instant(zone),
                When::Date(d + Duration::days(days)).instant(zone),
            )
        }
        _ => {
            let s = e.start.instant(zone);
            (s, s + length(e, zone))
        }
    };
    if overlaps(start, end, from, to) {
        let instance = e.recurrence_id.as_ref().map(|r| instance_key(r, zone));
        out.meetings.push(meeting(e, setup, start, end, instance));
    }
}

fn overlaps(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> bool {
    start < to && (end > from || (end == start && start >= from))
}

/// The zone a series repeats in: its own for a zoned start, the room's for a date or a
/// floating time.
fn series_start(e: &VEvent, zone: Tz) -> DateTime<rrule::Tz> {
    match e.start {
        When::Zoned(dt) => dt.with_timezone(&rrule::Tz::Tz(dt.timezone())),
        When::Floating(_) | When::Date(_) => {
            e.start.instant(zone).with_timezone(&rrule::Tz::Tz(zone))
        }
    }
}

fn push_series(
    out: &mut Expanded,
    e: &VEvent,
    setup: &ExpandSetup,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    skip: Option<&HashSet<i64>>,
) -> Result<(), String> {
    let zone = setup.zone;
    let dtstart = series_start(e, zone);
    let rtz = dtstart.timezone();
    let mut set = match &e.rrule {
        Some(rule) => {
            let series_zone = match rtz {
                rrule::Tz::Tz(tz) => tz,
                rrule::Tz::Local(_) => zone,
            };
            let rule = until_to_utc(rule, series_zone);
            let parsed: rrule::RRule<rrule::Unvalidated> = rule
                .parse()
                .map_err(|err| format!("RRULE `{rule}`: {err}"))?;
            if matches!(
                parsed.get_freq(),
                rrule::Frequency::Secondly | rrule::Frequency::Minutely
            ) {
                return Err(format!("RRULE `{rule}` repeats more often than hourly"));
            }
            parsed
                .build(dtstart)
                .map_err(|err| format!("RRULE `{rule}`: {err}"))?
        }
        None => rrule::RRuleSet::new(dtstart),
    };
    for r in &e.rdates {
        set = set.rdate(r.instant(zone).with_timezone(&rtz));
    }
    if e.rrule.is_none() {
        // An RDATE-only series still has its DTSTART as the first instance.
        set = set.rdate(dtstart);
    }
    for x in &e.exdates {
        set = set.exdate(x.instant(zone).with_timezone(&rtz));
    }
    let len = length(e, zone);
    let days = len.num_days().max(1);
    // Only occurrences that could overlap the window: none starts after `to`, and none that
    // ends before `from`.
    let earliest = from - len;
    for (steps, occ) in (&set).into_iter().enumerate() {
        if steps >= MAX_STEPS {
            return Err(format!(
                "more than {MAX_STEPS} occurrences before the window; the rest are not shown"
            ));
        }
        let start = occ.with_timezone(&Utc);
        if start >= to {
            break;
        }
        if start < earliest {
            continue;
        }
        if skip.is_some_and(|s| s.contains(&start.timestamp())) {
            continue;
        }
        let (start, end, key) = if e.start.is_date() {
            let date = occ.with_timezone(&zone).date_naive();
            (
                When::Date(date).instant(zone),
                When::Date(date + Duration::days(days)).instant(zone),
                date.format("%Y%m%d").to_string(),
            )
        } else {
            (
                start,
                start + len,
                start.format("%Y%m%dT%H%M%SZ").to_string(),
            )
        };
        if overlaps(start, end, from, to) {
            out.meetings.push(meeting(e, setup, start, end, Some(key)));
        }
    }
    Ok(())
}

/// An UNTIL as a date (an all-day series) or a wall time (as some writers put it) → the UTC
/// instant `rrule` requires beside a zoned start: the end of that day, or that wall time, in
/// the series' zone.
fn until_to_utc(rule: &str, zone: Tz) -> String {
    rule.split(';')
        .map(|part| match part.split_once('=') {
            Some((k, v)) if k.eq_ignore_ascii_case("UNTIL") && !v.ends_with(['Z', 'z']) => {
                let end = if v.len() == 8 {
                    chrono::NaiveDate::parse_from_str(v, "%Y%m%d")
                        .ok()
                        .map(|d| {
                            super::ics::wall_clock(zone, d.and_time(NaiveTime::MIN))
                                + Duration::days(1)
                                - Duration::seconds(1)
                        })
                } else {
                    chrono::NaiveDateTime::parse_from_str(v, "%Y%m%dT%H%M%S")
                        .ok()
                        .map(|t| super::ics::wall_clock(zone, t))
                };
                match end {
                    Some(end) => format!("UNTIL={}", end.format("%Y%m%dT%H%M%SZ")),
                    None => part.to_string(),
                }
            }
            _ => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// Today and tomorrow on the room's clock, as instants: `[today 00:00, the day after 00:00)`.
pub fn two_days(zone: Tz, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let today = now.with_timezone(&zone).date_naive();
    (
        When::Date(today).instant(zone),
        When::Date(today + Duration::days(2)).instant(zone),
    )
}

/// `now_ms` as an instant.
pub fn instant(now_ms: u64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(i64::try_from(now_ms).unwrap_or(i64::MAX))
        .single()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
