//! `[calendar]`: where the room's calendar comes from (CalDAV, an `.ics` URL, a local file),
//! how often it is read, and the meeting rules' settings. Checked at load: a source without
//! its URL or file, a password file without a user, an unknown zone or a join template
//! without `{room}` is an error naming the field.

use super::{check_duration, fail, FieldError};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Where the calendar is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CalendarSource {
    /// No calendar: the calendar commands answer `unavailable`.
    #[default]
    None,
    /// A CalDAV calendar collection (RFC 4791), read with a time-range `calendar-query`.
    Caldav,
    /// An iCalendar subscription URL (the secret `.ics` links Google and Outlook publish).
    IcsUrl,
    /// A local `.ics` file.
    File,
}

/// The room's calendar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CalendarConfig {
    pub source: CalendarSource,
    /// The calendar collection's URL (`caldav`), or the `.ics` URL (`ics-url`).
    pub url: String,
    /// The `.ics` file (`file`).
    pub file: PathBuf,
    /// The user for HTTP basic auth; none when empty.
    pub username: String,
    /// A file holding the password (its first line). The password itself is never in the
    /// configuration, a log, the state or the fleet's topics.
    pub password_file: PathBuf,
    /// How often the calendar is read (and at once on `calendar-refresh`).
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How long one read may take.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// The room's time zone (IANA, `Europe/Berlin`): what "today" is, and the clock of all-day
    /// events and times without a zone. The system's zone when empty.
    pub timezone: String,
    /// Join shows this long before a meeting starts, and "meeting starting soon" is said.
    #[serde(with = "humantime_serde")]
    pub join_before: Duration,
    /// A booking nobody came to (no room joined, no button pressed) is declined on the server
    /// this long after its start; 0 never releases.
    #[serde(with = "humantime_serde")]
    pub release_after: Duration,
    /// Join the meeting's room at its start without a press.
    pub auto_join: bool,
    /// Every title shows as "Private meeting" (private and confidential ones always do).
    pub private_titles: bool,
    /// The room's own address as an attendee (`room-4@example.com`): its answer is what a
    /// release declines, and a booking it declined is not shown.
    pub room_address: String,
    /// Meeting links the box can join beside its Janus server's: templates with `{room}`
    /// (`https://meet.example.com/r/{room}`).
    pub join_urls: Vec<String>,
}

impl Default for CalendarConfig {
    fn default() -> Self {
        CalendarConfig {
            source: CalendarSource::None,
            url: String::new(),
            file: PathBuf::new(),
            username: String::new(),
            password_file: PathBuf::new(),
            poll_interval: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            timezone: String::new(),
            join_before: Duration::from_secs(5 * 60),
            release_after: Duration::from_secs(10 * 60),
            auto_join: false,
            private_titles: false,
            room_address: String::new(),
            join_urls: Vec::new(),
        }
    }
}

fn http_url(u: &str) -> bool {
    (u.starts_with("http://") || u.starts_with("https://"))
        && u.len() > "https://".len()
        && !u.chars().any(|c| c.is_whitespace() || c.is_control())
}

impl CalendarConfig {
    /// True when a source is set.
    pub fn enabled(&self) -> bool {
        self.source != CalendarSource::None
    }

    /// Checks ranges and relations; pushes every problem.
    pub(super) fn validate(&self, e: &mut Vec<FieldError>) {
        match self.source {
            CalendarSource::Caldav | CalendarSource::IcsUrl if !http_url(&self.url) => fail(
                e,
                "calendar.url",
                format!(
                    "`{}` is not an http:// or https:// URL; the {} source needs one",
                    self.url,
                    if self.source == CalendarSource::Caldav {
                        "caldav"
                    } else {
                        "ics-url"
                    }
                ),
            ),
            CalendarSource::File if self.file.as_os_str().is_empty() => fail(
                e,
                "calendar.file",
                "empty; the file source needs an .ics file",
            ),
            _ => {}
        }
        if self.url.contains('@')
            && self.url.split("://").nth(1).is_some_and(|r| {
                r.split('/')
                    .next()
                    .is_some_and(|authority| authority.contains('@'))
            })
        {
            fail(
                e,
                "calendar.url",
                "carries credentials; set calendar.username and calendar.password_file instead",
            );
        }
        if !self.password_file.as_os_str().is_empty() && self.username.is_empty() {
            fail(
                e,
                "calendar.username",
                "empty, but calendar.password_file is set",
            );
        }
        if self.username.len() > 256 || self.username.chars().any(|c| c.is_control() || c == ':') {
            fail(
                e,
                "calendar.username",
                "expected at most 256 printable characters without `:`",
            );
        }
        if !self.timezone.is_empty() && self.timezone.parse::<chrono_tz::Tz>().is_err() {
            fail(
                e,
                "calendar.timezone",
                format!(
                    "`{}` is not an IANA time zone (like Europe/Berlin)",
                    self.timezone
                ),
            );
        }
        check_duration(
            e,
            "calendar.poll_interval",
            self.poll_interval,
            Duration::from_secs(5),
            Duration::from_secs(3600),
        );
        check_duration(
            e,
            "calendar.timeout",
            self.timeout,
            Duration::from_secs(1),
            Duration::from_secs(120),
        );
        check_duration(
            e,
            "calendar.join_before",
            self.join_before,
            Duration::ZERO,
            Duration::from_secs(30 * 60),
        );
        if !self.release_after.is_zero() {
            check_duration(
                e,
                "calendar.release_after",
                self.release_after,
                Duration::from_secs(60),
                Duration::from_secs(60 * 60),
            );
        }
        if !self.room_address.is_empty()
            && (!self.room_address.contains('@')
                || self.room_address.len() > 254
                || self
                    .room_address
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control()))
        {
            fail(
                e,
                "calendar.room_address",
                format!(
                    "`{}` is not an address like room-4@example.com",
                    self.room_address
                ),
            );
        }
        if self.join_urls.len() > 16 {
            fail(e, "calendar.join_urls", "at most 16 templates");
        }
        for t in &self.join_urls {
            if !t.contains("{room}") || !http_url(&t.replace("{room}", "x")) {
                fail(
                    e,
                    "calendar.join_urls",
                    format!("`{t}` is not an http(s) URL with a `{{room}}` placeholder"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(c: &CalendarConfig) -> Vec<String> {
        let mut e = Vec::new();
        c.validate(&mut e);
        e.into_iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect()
    }

    #[test]
    fn the_default_is_off_and_valid() {
        let c = CalendarConfig::default();
        assert!(!c.enabled());
        assert!(errors(&c).is_empty());
    }

    #[test]
    fn each_mistake_names_its_field() {
        let c = CalendarConfig {
            source: CalendarSource::Caldav,
            url: "ftp://x".into(),
            password_file: "/etc/roombox/cal.pw".into(),
            timezone: "Mars/Olympus".into(),
            release_after: Duration::from_secs(5),
            room_address: "room 4".into(),
            join_urls: vec!["https://meet.example.com/r/".into()],
            ..CalendarConfig::default()
        };
        let e = errors(&c);
        for field in [
            "calendar.url",
            "calendar.username",
            "calendar.timezone",
            "calendar.release_after",
            "calendar.room_address",
            "calendar.join_urls",
        ] {
            assert!(e.iter().any(|m| m.starts_with(field)), "{field}: {e:?}");
        }
        let c = CalendarConfig {
            source: CalendarSource::IcsUrl,
            url: "https://user:pw@cal.example.com/x.ics".into(),
            ..CalendarConfig::default()
        };
        assert!(errors(&c)[0].contains("credentials"), "{:?}", errors(&c));
        let c = CalendarConfig {
            source: CalendarSource::File,
            ..CalendarConfig::default()
        };
        assert!(errors(&c)[0].starts_with("calendar.file"));
    }
}
