//! Expansion as a room would see it: each case is a calendar as servers and clients write it,
//! and the meetings the box must show for it.

use super::*;
use crate::calendar::ics::parse;

fn setup(zone: Tz) -> ExpandSetup {
    ExpandSetup {
        zone,
        private_all: false,
        room_address: Some("room-4@example.com".into()),
        device_id: "box1".into(),
        matcher: JoinMatcher::new(Some("ws://janus.example.com:8188"), &["1234".into()], &[]),
    }
}

fn cal(events: &str) -> String {
    format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{events}END:VCALENDAR\r\n")
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// The meetings of `[from, to)` as `(id, start, end, title)`, times in UTC RFC 3339.
fn day(ics: &str, zone: Tz, from: &str, to: &str) -> Vec<(String, String, String, String)> {
    let parsed = parse(ics).unwrap();
    assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
    let out = expand(&parsed.events, &setup(zone), utc(from), utc(to));
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    out.meetings
        .into_iter()
        .map(|m| {
            let t = |ms: u64| instant(ms).format("%Y-%m-%dT%H:%M:%SZ").to_string();
            (m.id, t(m.start_ms), t(m.end_ms), m.title)
        })
        .collect()
}

fn starts(v: &[(String, String, String, String)]) -> Vec<&str> {
    v.iter().map(|m| m.1.as_str()).collect()
}

#[test]
fn a_weekly_series_keeps_its_wall_time_across_dst_in_its_own_zone() {
    // Berlin moves to summer time on 29 March 2026: 09:00 is 08:00Z before, 07:00Z after. The
    // box itself runs in UTC; expanding in UTC would keep 08:00Z and join an hour late.
    let ics = cal(
        "BEGIN:VEVENT\r\nUID:weekly\r\nDTSTART;TZID=Europe/Berlin:20260305T090000\r\n\
                   DTEND;TZID=Europe/Berlin:20260305T100000\r\nRRULE:FREQ=WEEKLY;BYDAY=TH\r\n\
                   SUMMARY:Standup\r\nEND:VEVENT\r\n",
    );
    let got = day(
        &ics,
        Tz::UTC,
        "2026-03-20T00:00:00Z",
        "2026-04-06T00:00:00Z",
    );
    assert_eq!(
        starts(&got),
        ["2026-03-26T08:00:00Z", "2026-04-02T07:00:00Z"]
    );
    assert_eq!(
        got[1].2, "2026-04-02T08:00:00Z",
        "one hour long after the change too"
    );
    assert_eq!(got[1].0, "weekly/20260402T070000Z");
}

#[test]
fn exdate_with_tzid_removes_the_instance_after_a_dst_change() {
    // New York leaves summer time on 1 November 2026: 10:00 is 14:00Z before, 15:00Z after.
    // The EXDATE is 10:00 New York on 4 November, 15:00Z: read as summer time it would miss.
    let ics = cal(
        "BEGIN:VEVENT\r\nUID:daily\r\nDTSTART;TZID=America/New_York:20261026T100000\r\n\
                   DURATION:PT30M\r\nRRULE:FREQ=DAILY;COUNT=20\r\n\
                   EXDATE;TZID=America/New_York:20261104T100000,20261106T100000\r\n\
                   SUMMARY:Daily\r\nEND:VEVENT\r\n",
    );
    let got = day(
        &ics,
        Tz::America__New_York,
        "2026-11-03T00:00:00Z",
        "2026-11-08T00:00:00Z",
    );
    assert_eq!(
        starts(&got),
        [
            "2026-11-03T15:00:00Z",
            "2026-11-05T15:00:00Z",
            "2026-11-07T15:00:00Z"
        ]
    );
}

#[test]
fn an_overridden_instance_replaces_the_one_it_names() {
    let ics = cal("BEGIN:VEVENT\r\nUID:review\r\nDTSTART;TZID=Europe/Berlin:20261203T090000\r\n\
                   DTEND;TZID=Europe/Berlin:20261203T100000\r\nRRULE:FREQ=WEEKLY\r\n\
                   SUMMARY:Review\r\nEND:VEVENT\r\n\
                   BEGIN:VEVENT\r\nUID:review\r\nRECURRENCE-ID;TZID=Europe/Berlin:20261210T090000\r\n\
                   DTSTART;TZID=Europe/Berlin:20261210T140000\r\nDTEND;TZID=Europe/Berlin:20261210T150000\r\n\
                   SUMMARY:Review (moved)\r\nEND:VEVENT\r\n\
                   BEGIN:VEVENT\r\nUID:review\r\nRECURRENCE-ID:20261217T080000Z\r\n\
                   DTSTART;TZID=Europe/Berlin:20261216T090000\r\nDTEND;TZID=Europe/Berlin:20261216T100000\r\n\
                   SUMMARY:Review (a day early)\r\nEND:VEVENT\r\n");
    let got = day(
        &ics,
        Tz::Europe__Berlin,
        "2026-12-09T23:00:00Z",
        "2026-12-10T23:00:00Z",
    );
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].1, "2026-12-10T13:00:00Z");
    assert_eq!(got[0].3, "Review (moved)");
    assert_eq!(
        got[0].0, "review/20261210T080000Z",
        "the id names the instance replaced"
    );
    let got = day(
        &ics,
        Tz::Europe__Berlin,
        "2026-12-15T23:00:00Z",
        "2026-12-17T23:00:00Z",
    );
    assert_eq!(
        starts(&got),
        ["2026-12-16T08:00:00Z"],
        "moved out of the 17th"
    );
    assert_eq!(got[0].3, "Review (a day early)");
    let got = day(
        &ics,
        Tz::Europe__Berlin,
        "2026-12-02T23:00:00Z",
        "2026-12-03T23:00:00Z",
    );
    assert_eq!(got[0].3, "Review", "other instances stay");
}

#[test]
fn all_day_events_cover_their_dates_on_the_rooms_clock_and_end_is_exclusive() {
    let ics = cal(
        "BEGIN:VEVENT\r\nUID:holiday\r\nDTSTART;VALUE=DATE:20261207\r\n\
                   DTEND;VALUE=DATE:20261208\r\nSUMMARY:Offsite\r\nEND:VEVENT\r\n\
                   BEGIN:VEVENT\r\nUID:fair\r\nDTSTART;VALUE=DATE:20261209\r\n\
                   DTEND;VALUE=DATE:20261212\r\nSUMMARY:Fair\r\nEND:VEVENT\r\n\
                   BEGIN:VEVENT\r\nUID:nodtend\r\nDTSTART;VALUE=DATE:20261214\r\n\
                   SUMMARY:One day\r\nEND:VEVENT\r\n",
    );
    let berlin = Tz::Europe__Berlin;
    let got = day(&ics, berlin, "2026-12-06T23:00:00Z", "2026-12-07T23:00:00Z");
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].1.as_str(), got[0].2.as_str()),
        ("2026-12-06T23:00:00Z", "2026-12-07T23:00:00Z")
    );
    let got = day(&ics, berlin, "2026-12-07T23:00:00Z", "2026-12-08T23:00:00Z");
    assert!(
        got.is_empty(),
        "DTEND is the first day not covered: {got:?}"
    );
    let got = day(&ics, berlin, "2026-12-10T23:00:00Z", "2026-12-11T23:00:00Z");
    assert_eq!(got[0].3, "Fair", "a three-day event covers its last day");
    let got = day(&ics, berlin, "2026-12-13T23:00:00Z", "2026-12-15T23:00:00Z");
    assert_eq!(got.len(), 1, "no DTEND: one day");
    let parsed = parse(&ics).unwrap();
    let m = expand(
        &parsed.events,
        &setup(berlin),
        utc("2026-12-06T23:00:00Z"),
        utc("2026-12-07T23:00:00Z"),
    );
    assert!(m.meetings[0].all_day);
}

#[test]
fn a_windows_zone_name_is_read_as_outlook_means_it() {
    let ics = cal(
        "BEGIN:VTIMEZONE\r\nTZID:W. Europe Standard Time\r\nBEGIN:STANDARD\r\n\
                   DTSTART:16010101T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\n\
                   END:STANDARD\r\nEND:VTIMEZONE\r\n\
                   BEGIN:VEVENT\r\nUID:outlook\r\n\
                   DTSTART;TZID=\"W. Europe Standard Time\":20261207T100000\r\n\
                   DTEND;TZID=\"W. Europe Standard Time\":20261207T110000\r\n\
                   SUMMARY:Budget\r\nEND:VEVENT\r\n",
    );
    let got = day(
        &ics,
        Tz::UTC,
        "2026-12-07T00:00:00Z",
        "2026-12-08T00:00:00Z",
    );
    assert_eq!(starts(&got), ["2026-12-07T09:00:00Z"]);
}

#[test]
fn cancelled_events_and_cancelled_instances_are_not_shown() {
    let ics = cal("BEGIN:VEVENT\r\nUID:gone\r\nDTSTART:20261207T090000Z\r\nDTEND:20261207T100000Z\r\n\
                   STATUS:CANCELLED\r\nSUMMARY:Gone\r\nEND:VEVENT\r\n\
                   BEGIN:VEVENT\r\nUID:series\r\nDTSTART:20261207T120000Z\r\nDTEND:20261207T130000Z\r\n\
                   RRULE:FREQ=DAILY\r\nSUMMARY:Lunch\r\nEND:VEVENT\r\n\
                   BEGIN:VEVENT\r\nUID:series\r\nRECURRENCE-ID:20261208T120000Z\r\n\
                   DTSTART:20261208T120000Z\r\nDTEND:20261208T130000Z\r\nSTATUS:CANCELLED\r\n\
                   SUMMARY:Lunch\r\nEND:VEVENT\r\n");
    let got = day(
        &ics,
        Tz::UTC,
        "2026-12-07T00:00:00Z",
        "2026-12-10T00:00:00Z",
    );
    assert_eq!(
        starts(&got),
        ["2026-12-07T12:00:00Z", "2026-12-09T12:00:00Z"]
    );
}

#[test]
fn an_event_crossing_midnight_shows_on_both_days_once() {
    let ics = cal(
        "BEGIN:VEVENT\r\nUID:late\r\nDTSTART;TZID=Europe/Berlin:20261207T230000\r\n\
                   DTEND;TZID=Europe/Berlin:20261208T013000\r\nSUMMARY:Launch\r\nEND:VEVENT\r\n",
    );
    let berlin = Tz::Europe__Berlin;
    let (from, to) = two_days(berlin, utc("2026-12-07T10:00:00Z"));
    assert_eq!(
        day(&ics, berlin, &from.to_rfc3339(), &to.to_rfc3339()).len(),
        1
    );
    let (from, to) = two_days(berlin, utc("2026-12-08T10:00:00Z"));
    let got = day(&ics, berlin, &from.to_rfc3339(), &to.to_rfc3339());
    assert_eq!(got.len(), 1, "still on the 8th, where it ends");
    assert_eq!(
        (got[0].1.as_str(), got[0].2.as_str()),
        ("2026-12-07T22:00:00Z", "2026-12-08T00:30:00Z")
    );
}

#[test]
fn ten_thousand_recurrences_expand_and_an_endless_series_is_bounded() {
    let ics = cal(
        "BEGIN:VEVENT\r\nUID:many\r\nDTSTART:20000101T090000Z\r\nDURATION:PT1H\r\n\
                   RRULE:FREQ=DAILY;COUNT=10000\r\nSUMMARY:Many\r\nEND:VEVENT\r\n",
    );
    // 10,000 days from 1 January 2000 reach 18 May 2027.
    let got = day(
        &ics,
        Tz::UTC,
        "2026-12-07T00:00:00Z",
        "2026-12-08T00:00:00Z",
    );
    assert_eq!(starts(&got), ["2026-12-07T09:00:00Z"]);
    let got = day(
        &ics,
        Tz::UTC,
        "2027-06-01T00:00:00Z",
        "2027-06-02T00:00:00Z",
    );
    assert!(got.is_empty());

    let endless = cal(
        "BEGIN:VEVENT\r\nUID:endless\r\nDTSTART:14000101T090000Z\r\nDURATION:PT1H\r\n\
                       RRULE:FREQ=DAILY\r\nSUMMARY:Old\r\nEND:VEVENT\r\n\
                       BEGIN:VEVENT\r\nUID:fine\r\nDTSTART:20261207T100000Z\r\nDURATION:PT1H\r\n\
                       SUMMARY:Fine\r\nEND:VEVENT\r\n",
    );
    let parsed = parse(&endless).unwrap();
    let out = expand(
        &parsed.events,
        &setup(Tz::UTC),
        utc("2026-12-07T00:00:00Z"),
        utc("2026-12-08T00:00:00Z"),
    );
    assert_eq!(
        out.meetings.len(),
        1,
        "the rest of the calendar is still shown"
    );
    assert!(
        out.problems[0].contains("endless") && out.problems[0].contains("occurrences"),
        "{:?}",
        out.problems
    );
}

#[test]
fn private_titles_are_hidden_and_the_description_never_leaves() {
    let ics = cal("BEGIN:VEVENT\r\nUID:p\r\nDTSTART:20261207T090000Z\r\nDTEND:20261207T100000Z\r\n\
                   CLASS:PRIVATE\r\nSUMMARY:Layoffs\r\nDESCRIPTION:secret agenda\r\nEND:VEVENT\r\n\
                   BEGIN:VEVENT\r\nUID:c\r\nDTSTART:20261207T110000Z\r\nDTEND:20261207T120000Z\r\n\
                   CLASS:CONFIDENTIAL\r\nSUMMARY:Merger\r\nEND:VEVENT\r\n\
                   BEGIN:VEVENT\r\nUID:o\r\nDTSTART:20261207T130000Z\r\nDTEND:20261207T140000Z\r\n\
                   SUMMARY:Open\r\nDESCRIPTION:Join https://janus.example.com/v?room=1234 (secret agenda)\r\n\
                   ORGANIZER;CN=Ana Lima:mailto:ana@example.com\r\nEND:VEVENT\r\n");
    let parsed = parse(&ics).unwrap();
    let (from, to) = (utc("2026-12-07T00:00:00Z"), utc("2026-12-08T00:00:00Z"));
    let out = expand(&parsed.events, &setup(Tz::UTC), from, to);
    let titles: Vec<&str> = out.meetings.iter().map(|m| m.title.as_str()).collect();
    assert_eq!(titles, [PRIVATE_TITLE, PRIVATE_TITLE, "Open"]);
    assert_eq!(out.meetings[2].room_id.as_deref(), Some("1234"));
    assert_eq!(out.meetings[2].organizer.as_deref(), Some("Ana Lima"));
    let json = serde_json::to_string(&out.meetings).unwrap();
    assert!(!json.contains("secret"), "{json}");
    let mut all = setup(Tz::UTC);
    all.private_all = true;
    let out = expand(&parsed.events, &all, from, to);
    assert!(out.meetings.iter().all(|m| m.title == PRIVATE_TITLE));
}

#[test]
fn a_booking_the_room_declined_is_not_shown() {
    let ics = cal("BEGIN:VEVENT\r\nUID:d\r\nDTSTART:20261207T090000Z\r\nDTEND:20261207T100000Z\r\n\
                   ATTENDEE;PARTSTAT=DECLINED:mailto:Room-4@example.com\r\nSUMMARY:X\r\nEND:VEVENT\r\n\
                   BEGIN:VEVENT\r\nUID:a\r\nDTSTART:20261207T110000Z\r\nDTEND:20261207T120000Z\r\n\
                   ATTENDEE;PARTSTAT=ACCEPTED:mailto:room-4@example.com\r\nSUMMARY:Y\r\nEND:VEVENT\r\n");
    let got = day(
        &ics,
        Tz::UTC,
        "2026-12-07T00:00:00Z",
        "2026-12-08T00:00:00Z",
    );
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, "a");
}

#[test]
fn a_bad_event_is_named_and_the_others_are_kept() {
    let ics = cal("BEGIN:VEVENT\r\nUID:bad\r\nDTSTART;TZID=Mars/Olympus:20261207T090000\r\nEND:VEVENT\r\n\
                   BEGIN:VEVENT\r\nUID:good\r\nDTSTART:20261207T110000Z\r\nDTEND:20261207T120000Z\r\nEND:VEVENT\r\n");
    let parsed = parse(&ics).unwrap();
    assert_eq!(parsed.events.len(), 1);
    assert!(
        parsed.problems[0].contains("Mars/Olympus"),
        "{:?}",
        parsed.problems
    );
}
