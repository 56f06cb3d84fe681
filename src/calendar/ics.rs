//! iCalendar text to typed events: the VEVENTs of a file, with their times, recurrence, status,
//! privacy and the places a meeting link may hide. The text is parsed by the `icalendar` crate;
//! this file only reads the properties the box needs, and bounds what it will read.

use super::zones::Zones;
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// Largest calendar read, in bytes: a busy room's year is well under 1 MiB.
pub const MAX_ICS_BYTES: usize = 16 * 1024 * 1024;
/// Most VEVENTs read from one file.
pub const MAX_EVENTS: usize = 100_000;
/// Deepest nesting of BEGIN/END blocks (VCALENDAR > VEVENT > VALARM is 3).
const MAX_DEPTH: usize = 8;

/// Why a calendar could not be read at all. Problems with single events are
/// [`Parsed::problems`] instead: the rest of the calendar is still shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the calendar is {0} bytes; at most {MAX_ICS_BYTES} are read")]
    TooLarge(usize),
    #[error("not an iCalendar file: {0}")]
    NotICalendar(String),
    #[error("the calendar has more than {MAX_EVENTS} events")]
    TooManyEvents,
}

/// A point in time as iCalendar writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// `VALUE=DATE`: a whole day, wherever the room is.
    Date(NaiveDate),
    /// No zone: the room's wall clock.
    Floating(NaiveDateTime),
    /// UTC (`Z`) or a TZID.
    Zoned(DateTime<Tz>),
}

impl When {
    /// The instant, reading dates and floating times on the room's wall clock. A wall time in
    /// a DST gap is read one hour later (as the clock reads after the jump).
    pub fn instant(&self, room: Tz) -> DateTime<Utc> {
        let local = match self {
            When::Zoned(dt) => return dt.with_timezone(&Utc),
            When::Floating(ndt) => *ndt,
            When::Date(d) => d.and_hms_opt(0, 0, 0).unwrap_or_default(),
        };
        wall_clock(room, local)
    }

    pub fn is_date(&self) -> bool {
        matches!(self, When::Date(_))
    }
}

/// A wall-clock time in a zone as an instant: the earlier of two in a fold, one hour on in a gap.
pub fn wall_clock(zone: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match zone.from_local_datetime(&local).earliest() {
        Some(dt) => dt.with_timezone(&Utc),
        None => zone
            .from_local_datetime(&(local + chrono::Duration::hours(1)))
            .earliest()
            .map(|dt| dt.with_timezone(&Utc))
            .unwrap_or_else(|| Utc.from_utc_datetime(&local)),
    }
}

/// An ATTENDEE: who, and their answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attendee {
    /// The address without `mailto:`, lower case.
    pub address: String,
    /// `ACCEPTED`, `DECLINED`, `NEEDS-ACTION`, ...
    pub partstat: Option<String>,
}

/// One VEVENT as read: a single event, a recurring series' master, or one overridden instance.
#[derive(Debug, Clone, PartialEq)]
pub struct VEvent {
    /// Which VEVENT of the file it is (0 for the first), for an edit to find its block.
    pub ordinal: usize,
    pub uid: String,
    pub start: When,
    pub end: Option<When>,
    pub duration: Option<chrono::Duration>,
    /// The RRULE's value (`FREQ=WEEKLY;BYDAY=MO`), expanded by the `rrule` crate.
    pub rrule: Option<String>,
    pub rdates: Vec<When>,
    pub exdates: Vec<When>,
    /// Set on an override: which instance of the series it replaces.
    pub recurrence_id: Option<When>,
    /// `STATUS:CANCELLED`.
    pub cancelled: bool,
    /// `CLASS:PRIVATE` or `CONFIDENTIAL`.
    pub private: bool,
    pub summary: Option<String>,
    /// The organizer's name (CN), else address.
    pub organizer: Option<String>,
    pub location: Option<String>,
    /// Read only to find a meeting link; never shown, kept or sent.
    pub description: Option<String>,
    /// RFC 7986 CONFERENCE and Google's X-GOOGLE-CONFERENCE URIs, in file order.
    pub conference: Vec<String>,
    pub attendees: Vec<Attendee>,
    /// `X-ROOMBOX-BOOKED-BY`: the device that booked it with book-now.
    pub booked_by: Option<String>,
}

/// What a file holds.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    pub events: Vec<VEvent>,
    /// Events that were skipped, and why (a bad date, an unknown zone).
    pub problems: Vec<String>,
}

/// Reads an iCalendar file's events. A file that is not iCalendar at all is an error; an event
/// that cannot be read is skipped and named in [`Parsed::problems`].
pub fn parse(text: &str) -> Result<Parsed, ParseError> {
    if text.len() > MAX_ICS_BYTES {
        return Err(ParseError::TooLarge(text.len()));
    }
    let unfolded = icalendar::parser::unfold(text);
    precheck(&unfolded)?;
    let cal = icalendar::parser::read_calendar(&unfolded).map_err(|e| {
        let first = e.lines().take(3).collect::<Vec<_>>().join(" ");
        ParseError::NotICalendar(truncate(&first, 200))
    })?;
    let mut zones = Zones::default();
    for c in &cal.components {
        if c.name.as_str().eq_ignore_ascii_case("VTIMEZONE") {
            let tzid = prop(c, "TZID").map(|p| p.val.as_str().to_string());
            let loc = prop(c, "X-LIC-LOCATION").map(|p| p.val.as_str().to_string());
            if let (Some(t), Some(l)) = (tzid, loc) {
                zones.learn(&t, &l);
            }
        }
    }
    let mut out = Parsed::default();
    let vevents = cal
        .components
        .iter()
        .filter(|c| c.name.as_str().eq_ignore_ascii_case("VEVENT"));
    for (ordinal, c) in vevents.enumerate() {
        if ordinal >= MAX_EVENTS {
            return Err(ParseError::TooManyEvents);
        }
        match event(c, &zones, ordinal) {
            Ok(e) => out.events.push(e),
            Err(why) => {
                let uid = prop(c, "UID").map(|p| p.val.as_str()).unwrap_or("?");
                out.problems
                    .push(format!("event {}: {why}", truncate(uid, 80)));
            }
        }
    }
    Ok(out)
}

/// Refuses what is plainly not a calendar before the parser sees it, and bounds its nesting.
fn precheck(text: &str) -> Result<(), ParseError> {
    let first = text.lines().map(str::trim).find(|l| !l.is_empty());
    match first {
        Some(l) if l.eq_ignore_ascii_case("BEGIN:VCALENDAR") => {}
        Some(l) => {
            return Err(ParseError::NotICalendar(format!(
                "expected BEGIN:VCALENDAR on the first line, found `{}`",
                truncate(l, 60)
            )))
        }
        None => return Err(ParseError::NotICalendar("the file is empty".into())),
    }
    let mut depth = 0usize;
    for (n, line) in text.lines().enumerate() {
        let upper = line.trim_end().to_ascii_uppercase();
        if upper.starts_with("BEGIN:") {
            depth += 1;
            if depth > MAX_DEPTH {
                return Err(ParseError::NotICalendar(format!(
                    "blocks nested deeper than {MAX_DEPTH} at line {}",
                    n + 1
                )));
            }
        } else if upper.starts_with("END:") {
            depth = depth.saturating_sub(1);
        }
    }
    Ok(())
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}

type Prop<'a> = icalendar::parser::Property<'a>;
type Comp<'a> = icalendar::parser::Component<'a>;

fn prop<'a>(c: &'a Comp<'a>, name: &str) -> Option<&'a Prop<'a>> {
    c.properties
        .iter()
        .find(|p| p.name.as_str().eq_ignore_ascii_case(name))
}

fn props<'a>(c: &'a Comp<'a>, name: &'a str) -> impl Iterator<Item = &'a Prop<'a>> + 'a {
    c.properties
        .iter()
        .filter(move |p| p.name.as_str().eq_ignore_ascii_case(name))
}

fn param<'a>(p: &'a Prop<'a>, key: &str) -> Option<&'a str> {
    p.params
        .iter()
        .find(|q| q.key.as_str().eq_ignore_ascii_case(key))
        .and_then(|q| q.val.as_ref())
        .map(|v| v.as_str().trim_matches('"'))
}

fn text(p: &Prop<'_>) -> String {
    p.val.clone().unescape_text().as_str().to_string()
}

fn event(c: &Comp<'_>, zones: &Zones, ordinal: usize) -> Result<VEvent, String> {
    let uid = prop(c, "UID")
        .map(|p| p.val.as_str().trim().to_string())
        .filter(|u| !u.is_empty())
        .ok_or("no UID")?;
    let start = prop(c, "DTSTART").ok_or("no DTSTART")?;
    let start = when(start, zones)?
        .into_iter()
        .next()
        .ok_or("empty DTSTART")?;
    let end = match prop(c, "DTEND") {
        Some(p) => when(p, zones)?.into_iter().next(),
        None => None,
    };
    let duration = match prop(c, "DURATION") {
        Some(p) => Some(duration(p.val.as_str()).ok_or_else(|| {
            format!(
                "DURATION `{}` is not a duration",
                truncate(p.val.as_str(), 40)
            )
        })?),
        None => None,
    };
    let mut rdates = Vec::new();
    for p in props(c, "RDATE") {
        if param(p, "VALUE").is_some_and(|v| v.eq_ignore_ascii_case("PERIOD")) {
            continue;
        }
        rdates.extend(when(p, zones)?);
    }
    let mut exdates = Vec::new();
    for p in props(c, "EXDATE") {
        exdates.extend(when(p, zones)?);
    }
    let recurrence_id = match prop(c, "RECURRENCE-ID") {
        Some(p) => when(p, zones)?.into_iter().next(),
        None => None,
    };
    let class = prop(c, "CLASS").map(|p| p.val.as_str().trim().to_ascii_uppercase());
    let organizer = prop(c, "ORGANIZER").map(|p| {
        param(p, "CN")
            .map(str::to_string)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| address(p.val.as_str()))
    });
    let mut conference: Vec<String> = props(c, "CONFERENCE")
        .map(|p| p.val.as_str().trim().to_string())
        .collect();
    conference.extend(props(c, "X-GOOGLE-CONFERENCE").map(|p| p.val.as_str().trim().to_string()));
    Ok(VEvent {
        ordinal,
        uid,
        start,
        end,
        duration,
        rrule: prop(c, "RRULE").map(|p| p.val.as_str().trim().to_string()),
        rdates,
        exdates,
        recurrence_id,
        cancelled: prop(c, "STATUS")
            .is_some_and(|p| p.val.as_str().trim().eq_ignore_ascii_case("CANCELLED")),
        private: matches!(class.as_deref(), Some("PRIVATE" | "CONFIDENTIAL")),
        summary: prop(c, "SUMMARY").map(text),
        organizer,
        location: prop(c, "LOCATION").map(text),
        description: prop(c, "DESCRIPTION").map(text),
        conference,
        attendees: props(c, "ATTENDEE")
            .map(|p| Attendee {
                address: address(p.val.as_str()),
                partstat: param(p, "PARTSTAT").map(|s| s.to_ascii_uppercase()),
            })
            .collect(),
        booked_by: prop(c, "X-ROOMBOX-BOOKED-BY").map(|p| p.val.as_str().trim().to_string()),
    })
}

/// `mailto:Room-4@Example.com` → `room-4@example.com`.
pub fn address(v: &str) -> String {
    let v = v.trim();
    let v = if v.len() >= 7 && v[..7].eq_ignore_ascii_case("mailto:") {
        &v[7..]
    } else {
        v
    };
    v.to_ascii_lowercase()
}

/// A DATE or DATE-TIME property's values (EXDATE and RDATE may list several).
fn when(p: &Prop<'_>, zones: &Zones) -> Result<Vec<When>, String> {
    let is_date = param(p, "VALUE").is_some_and(|v| v.eq_ignore_ascii_case("DATE"));
    let zone = match param(p, "TZID") {
        Some(tzid) => Some(
            zones
                .resolve(tzid)
                .ok_or_else(|| format!("unknown time zone `{}`", truncate(tzid, 60)))?,
        ),
        None => None,
    };
    p.val
        .as_str()
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| {
            one_when(v, is_date, zone).ok_or_else(|| {
                format!(
                    "{} `{}` is not a date or date-time",
                    p.name.as_str(),
                    truncate(v, 40)
                )
            })
        })
        .collect()
}

fn one_when(v: &str, is_date: bool, zone: Option<Tz>) -> Option<When> {
    if is_date || (v.len() == 8 && !v.contains('T')) {
        return NaiveDate::parse_from_str(v, "%Y%m%d").ok().map(When::Date);
    }
    let (v, utc) = match v.strip_suffix(['Z', 'z']) {
        Some(rest) => (rest, true),
        None => (v, false),
    };
    let ndt = NaiveDateTime::parse_from_str(v, "%Y%m%dT%H%M%S").ok()?;
    if utc {
        return Some(When::Zoned(Tz::UTC.from_utc_datetime(&ndt)));
    }
    match zone {
        Some(tz) => {
            let instant = wall_clock(tz, ndt);
            Some(When::Zoned(instant.with_timezone(&tz)))
        }
        None => Some(When::Floating(ndt)),
    }
}

/// An RFC 5545 duration (`PT1H30M`, `P1D`, `P2W`, `-PT15M`).
pub fn duration(v: &str) -> Option<chrono::Duration> {
    let v = v.trim();
    let (neg, v) = match v.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, v.strip_prefix('+').unwrap_or(v)),
    };
    let v = v.strip_prefix('P')?;
    let mut secs: i64 = 0;
    let mut num = String::new();
    let mut in_time = false;
    let mut any = false;
    for ch in v.chars() {
        match ch {
            '0'..='9' => num.push(ch),
            'T' if num.is_empty() => in_time = true,
            'W' | 'D' | 'H' | 'M' | 'S' => {
                let n: i64 = num.parse().ok()?;
                num.clear();
                let unit = match (ch, in_time) {
                    ('W', false) => 7 * 86_400,
                    ('D', false) => 86_400,
                    ('H', true) => 3600,
                    ('M', true) => 60,
                    ('S', true) => 1,
                    _ => return None,
                };
                secs = secs.checked_add(n.checked_mul(unit)?)?;
                any = true;
            }
            _ => return None,
        }
    }
    if !num.is_empty() || !any {
        return None;
    }
    Some(chrono::Duration::seconds(if neg { -secs } else { secs }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_rfc_5545_writes_them() {
        assert_eq!(duration("PT1H30M"), Some(chrono::Duration::minutes(90)));
        assert_eq!(duration("P1D"), Some(chrono::Duration::days(1)));
        assert_eq!(duration("P2W"), Some(chrono::Duration::days(14)));
        assert_eq!(duration("-PT15M"), Some(chrono::Duration::minutes(-15)));
        assert_eq!(duration("PT"), None);
        assert_eq!(duration("1H"), None);
        assert_eq!(duration("P1H"), None);
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let e = parse("hello world\nthis is not a calendar").unwrap_err();
        assert!(e.to_string().contains("expected BEGIN:VCALENDAR"), "{e}");
        let e = parse("").unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
        let deep = format!("BEGIN:VCALENDAR\n{}", "BEGIN:X\n".repeat(10_000));
        let e = parse(&deep).unwrap_err();
        assert!(e.to_string().contains("nested"), "{e}");
        let broken = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:a\n\u{0}\u{1}garbage\n";
        assert!(parse(broken).is_err());
    }

    #[test]
    fn a_calendar_over_the_limit_is_refused_unread() {
        let big = format!("BEGIN:VCALENDAR\n{}", "X".repeat(MAX_ICS_BYTES));
        assert_eq!(parse(&big).unwrap_err(), ParseError::TooLarge(big.len()));
    }
}
