//! The text a booking writes and the edit a release makes: the room's ATTENDEE answer set to
//! DECLINED in the event (or in an override of the one instance, added when the series has
//! none). Everything else in the resource is written back as it was read.

use super::Booking;
use crate::calendar::expand::Meeting;
use chrono::{DateTime, Utc};

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// Escapes TEXT (RFC 5545 3.3.11).
fn escape(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .fold(String::new(), |mut o, c| {
            if matches!(c, '\\' | ';' | ',') {
                o.push('\\');
            }
            o.push(c);
            o
        })
}

/// Folds lines longer than 75 octets (RFC 5545 3.1), at character boundaries; CRLF endings.
pub fn fold(lines: &[String]) -> String {
    let mut out = String::new();
    for line in lines {
        let mut width = 0;
        for ch in line.chars() {
            if width + ch.len_utf8() > 75 {
                out.push_str("\r\n ");
                width = 1;
            }
            out.push(ch);
            width += ch.len_utf8();
        }
        out.push_str("\r\n");
    }
    out
}

/// A book-now booking as a calendar object.
pub fn booking_ics(b: &Booking, now: DateTime<Utc>) -> String {
    let mut lines: Vec<String> = vec![
        "BEGIN:VCALENDAR".into(),
        "VERSION:2.0".into(),
        "PRODID:-//roombox//book-now//EN".into(),
        "BEGIN:VEVENT".into(),
        format!("UID:{}", b.uid),
        format!("DTSTAMP:{}", stamp(now)),
        format!("DTSTART:{}", stamp(b.start)),
        format!("DTEND:{}", stamp(b.end)),
        format!("SUMMARY:{}", escape(&b.title)),
        "TRANSP:OPAQUE".into(),
        format!("X-ROOMBOX-BOOKED-BY:{}", escape(&b.device_id)),
    ];
    if let Some(room) = &b.room_address {
        lines.push(format!("ORGANIZER:mailto:{room}"));
        lines.push(format!(
            "ATTENDEE;CUTYPE=ROOM;PARTSTAT=ACCEPTED:mailto:{room}"
        ));
    }
    lines.push("END:VEVENT".into());
    lines.push("END:VCALENDAR".into());
    fold(&lines)
}

/// Splits a content line into its name-and-parameters and its value, at the first `:` outside
/// quotes.
fn split_line(line: &str) -> Option<(&str, &str)> {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ':' if !quoted => return Some((&line[..i], &line[i + 1..])),
            _ => {}
        }
    }
    None
}

fn name_of(line: &str) -> String {
    let head = split_line(line).map(|(h, _)| h).unwrap_or(line);
    head.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_uppercase()
}

/// The line with PARTSTAT set to DECLINED (other parameters kept).
fn declined(line: &str) -> String {
    let Some((head, value)) = split_line(line) else {
        return line.to_string();
    };
    let mut parts: Vec<String> = Vec::new();
    let mut quoted = false;
    let mut cur = String::new();
    for c in head.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ';' if !quoted => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    parts.push(cur);
    parts.retain(|p| {
        !p.to_ascii_uppercase().starts_with("PARTSTAT=")
            && !p.to_ascii_uppercase().starts_with("RSVP=")
    });
    parts.push("PARTSTAT=DECLINED".into());
    format!("{}:{value}", parts.join(";"))
}

/// Declines for `room` in `block` (one VEVENT's lines): its ATTENDEE lines for the room are
/// answered DECLINED, or one is added.
fn decline_in(block: &mut Vec<String>, room: &str) {
    let mut found = false;
    for line in block.iter_mut() {
        if name_of(line) == "ATTENDEE"
            && split_line(line).is_some_and(|(_, v)| crate::calendar::ics::address(v) == room)
        {
            *line = declined(line);
            found = true;
        }
    }
    if !found {
        let at = block.len().saturating_sub(1);
        block.insert(
            at,
            format!("ATTENDEE;CUTYPE=ROOM;PARTSTAT=DECLINED:mailto:{room}"),
        );
    }
}

/// The resource's text with the room's answer to `meeting` set to DECLINED. For an instance of
/// a series without an override, one is added for that instance alone.
pub fn decline(text: &str, meeting: &Meeting, room: &str) -> Result<String, String> {
    let unfolded = icalendar::parser::unfold(text);
    let mut lines: Vec<String> = unfolded
        .lines()
        .map(|l| l.trim_end_matches('\r').to_string())
        .filter(|l| !l.is_empty())
        .collect();
    // The VEVENT blocks at the top of the calendar, as `(begin, end)` line indexes.
    let mut blocks = Vec::new();
    let mut depth = 0usize;
    let mut begin = 0;
    for (i, l) in lines.iter().enumerate() {
        let up = l.to_ascii_uppercase();
        if up.starts_with("BEGIN:") {
            depth += 1;
            if depth == 2 && up == "BEGIN:VEVENT" {
                begin = i;
            }
        } else if up.starts_with("END:") {
            if depth == 2 && up == "END:VEVENT" {
                blocks.push((begin, i));
            }
            depth = depth.saturating_sub(1);
        }
    }
    let &(b, e) = blocks
        .get(meeting.ordinal)
        .ok_or("the event is no longer in its resource")?;
    let mut block: Vec<String> = lines[b..=e].to_vec();
    let is_override = block.iter().any(|l| name_of(l) == "RECURRENCE-ID");
    match (&meeting.recurrence_id, is_override) {
        // A single event, or the override that is this instance: edit it in place.
        (None, _) | (Some(_), true) => {
            decline_in(&mut block, room);
            lines.splice(b..=e, block);
        }
        // An instance of the series: an override for it alone.
        (Some(rid), false) => {
            let skip = [
                "RRULE",
                "RDATE",
                "EXDATE",
                "EXRULE",
                "DTSTART",
                "DTEND",
                "DURATION",
                "RECURRENCE-ID",
            ];
            let mut ov: Vec<String> = block
                .iter()
                .filter(|l| !skip.contains(&name_of(l).as_str()))
                .cloned()
                .collect();
            let start = crate::calendar::instant(meeting.start_ms);
            let end = crate::calendar::instant(meeting.end_ms);
            let rid_line = if rid.len() == 8 {
                format!("RECURRENCE-ID;VALUE=DATE:{rid}")
            } else {
                format!("RECURRENCE-ID:{rid}")
            };
            let at = 1.min(ov.len());
            ov.splice(
                at..at,
                [
                    rid_line,
                    format!("DTSTART:{}", stamp(start)),
                    format!("DTEND:{}", stamp(end)),
                ],
            );
            decline_in(&mut ov, room);
            let cal_end = lines
                .iter()
                .rposition(|l| l.eq_ignore_ascii_case("END:VCALENDAR"))
                .ok_or("the resource has no END:VCALENDAR")?;
            lines.splice(cal_end..cal_end, ov);
        }
    }
    Ok(fold(&lines))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::{expand, parse, ExpandSetup, JoinMatcher};

    fn meetings(text: &str) -> Vec<Meeting> {
        let p = parse(text).unwrap();
        let setup = ExpandSetup {
            zone: chrono_tz::Tz::UTC,
            private_all: false,
            room_address: Some("room@example.com".into()),
            device_id: "box1".into(),
            matcher: JoinMatcher::default(),
        };
        let from = crate::calendar::instant(1_796_601_600_000); // 2026-12-07T00:00Z
        expand(&p.events, &setup, from, from + chrono::Duration::days(2)).meetings
    }

    const SERIES: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:s\r\n\
        DTSTART:20261201T090000Z\r\nDTEND:20261201T100000Z\r\nRRULE:FREQ=DAILY\r\nSUMMARY:Daily\r\n\
        ATTENDEE;CN=\"Room; 4\";PARTSTAT=ACCEPTED;RSVP=TRUE:mailto:Room@example.com\r\n\
        ATTENDEE;PARTSTAT=ACCEPTED:mailto:ana@example.com\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    #[test]
    fn declining_an_instance_adds_an_override_for_it_alone() {
        let before = meetings(SERIES);
        assert_eq!(before.len(), 2);
        let text = decline(SERIES, &before[0], "room@example.com").unwrap();
        let after = meetings(&text);
        assert_eq!(after.len(), 1, "{text}");
        assert_eq!(after[0].id, before[1].id, "the other day stays");
        assert!(text.contains("mailto:ana@example.com"), "{text}");
        assert!(text.contains("CN=\"Room; 4\";PARTSTAT=DECLINED"), "{text}");
    }

    #[test]
    fn declining_a_single_event_edits_it_in_place_or_adds_the_room() {
        let single = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:one\r\n\
            DTSTART:20261207T090000Z\r\nDTEND:20261207T100000Z\r\nSUMMARY:One\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let m = meetings(single);
        let text = decline(single, &m[0], "room@example.com").unwrap();
        assert!(meetings(&text).is_empty(), "{text}");
        assert_eq!(text.matches("BEGIN:VEVENT").count(), 1);
    }

    #[test]
    fn a_booking_reads_back_as_this_boxs_own() {
        let b = Booking {
            uid: "roombox-booknow-x".into(),
            start: crate::calendar::instant(1_796_634_000_000),
            end: crate::calendar::instant(1_796_635_800_000),
            title: "Booked now; Room 4".into(),
            device_id: "box1".into(),
            room_address: None,
        };
        let text = booking_ics(&b, b.start);
        let m = meetings(&text);
        assert_eq!(m.len(), 1);
        assert!(m[0].booked_here);
        assert_eq!(m[0].title, "Booked now; Room 4");
        assert_eq!(m[0].end_ms - m[0].start_ms, 30 * 60_000);
    }
}
