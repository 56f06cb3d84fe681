//! The `[calendar]` checker: the password file, then one real read of today's and tomorrow's
//! events, expanded as the agent expands them, so an installer sees "5 meetings today" or the
//! server's refusal before the box is left in the room.

use super::{CheckLine, Status};
use crate::calendar::{self, source, ExpandSetup};
use crate::config::Config;

/// One line: off, or what a read of the calendar found.
pub fn calendar(c: &Config) -> CheckLine {
    if !c.calendar.enabled() {
        return CheckLine::new(Status::Ok, "calendar", "off (calendar.source = \"none\")");
    }
    let fail = |detail: String| CheckLine::new(Status::Failed, "calendar", detail);
    let src = match source::read_password(&c.calendar)
        .and_then(|pw| source::from_config(&c.calendar, pw).map_err(|e| e.to_string()))
    {
        Ok(Some(s)) => s,
        Ok(None) => return CheckLine::new(Status::Ok, "calendar", "off"),
        Err(e) => return fail(e),
    };
    let setup = ExpandSetup::from_config(c);
    let (from, to) = calendar::two_days(setup.zone, chrono::Utc::now());
    let read = async move {
        let mut src = src;
        src.fetch(from, to).await
    };
    let fetched = match tokio::runtime::Handle::try_current() {
        Ok(h) => h.block_on(read),
        Err(_) => match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(read),
            Err(e) => return fail(format!("cannot start a runtime to read it: {e}")),
        },
    };
    let where_ = match c.calendar.source {
        crate::config::CalendarSource::File => c.calendar.file.display().to_string(),
        _ => source::redact(&c.calendar.url),
    };
    match fetched {
        Ok(Some(f)) => {
            let out = calendar::expand(&f.parsed.events, &setup, from, to);
            let problems = f.parsed.problems.len() + out.problems.len();
            let joinable = out.meetings.iter().filter(|m| m.room_id.is_some()).count();
            let detail = format!(
                "{where_}: {} today and tomorrow ({} in {}), {joinable} with a room the box can \
                 join{}",
                match out.meetings.len() {
                    1 => "1 meeting".to_string(),
                    n => format!("{n} meetings"),
                },
                setup.zone,
                if c.calendar.timezone.is_empty() {
                    "the system's zone"
                } else {
                    "calendar.timezone"
                },
                if problems == 0 {
                    String::new()
                } else {
                    format!("; {problems} events could not be read and are not shown")
                }
            );
            let status = if problems == 0 {
                Status::Ok
            } else {
                Status::Warning
            };
            CheckLine::new(status, "calendar", detail)
        }
        Ok(None) => CheckLine::new(Status::Ok, "calendar", format!("{where_}: read")),
        Err(e) => fail(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_read_and_counted_and_a_missing_password_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let ics = dir.path().join("room.ics");
        let start = chrono::Utc::now() + chrono::Duration::minutes(30);
        let fmt = |t: chrono::DateTime<chrono::Utc>| t.format("%Y%m%dT%H%M%SZ").to_string();
        std::fs::write(
            &ics,
            format!(
                "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\n\
                 UID:a\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{}\r\nDTEND:{}\r\n\
                 SUMMARY:Standup\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
                fmt(start),
                fmt(start + chrono::Duration::minutes(15))
            ),
        )
        .unwrap();
        let mut c = Config::default();
        c.calendar.source = crate::config::CalendarSource::File;
        c.calendar.file = ics;
        c.calendar.timezone = "UTC".into();
        let line = calendar(&c);
        assert_eq!(line.status, Status::Ok, "{}", line.detail);
        assert!(line.detail.contains("1 meeting today"), "{}", line.detail);

        c.calendar.username = "room".into();
        c.calendar.password_file = dir.path().join("no-such.pw");
        let line = calendar(&c);
        assert_eq!(line.status, Status::Failed);
        assert!(line.detail.contains("no-such.pw"), "{}", line.detail);
    }
}
