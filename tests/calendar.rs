//! The room's calendar against a real CalDAV server: Radicale on loopback with its own storage
//! and users, holding the fixtures a room sees (a weekly series across DST with an EXDATE and an
//! override, an all-day event, a cancelled one, a private one crossing midnight, Outlook's
//! Windows zone). The box reads them through its sources, and books and releases on the server.
//! Windows are fixed days: the sources take the window they are asked for, and the agents run on
//! a clock the test sets, so no test waits for a real meeting time. The console's day view is
//! checked in headless Chromium (`tests/browser/setup.sh`).

mod support;

use chrono::{DateTime, Utc};
use roombox::calendar::source::{
    Booking, CalDav, Credentials, IcsFile, IcsUrl, Secret, Source, SourceError,
};
use roombox::calendar::{expand, two_days, ExpandSetup, JoinMatcher, Meeting, PRIVATE_TITLE};
use std::time::Duration;
use support::radicale::{Radicale, PASSWORD, USER};

const FIXTURES: &str = include_str!("calendar/fixtures.ics");
const OUTLOOK: &str = include_str!("calendar/outlook.ics");

fn berlin() -> chrono_tz::Tz {
    chrono_tz::Tz::Europe__Berlin
}

fn setup() -> ExpandSetup {
    ExpandSetup {
        zone: berlin(),
        private_all: false,
        room_address: Some("room-4@example.com".into()),
        device_id: "box1".into(),
        matcher: JoinMatcher::new(Some("ws://janus.example.com:8188"), &["1234".into()], &[]),
    }
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn creds(password: &str) -> Option<Credentials> {
    Some(Credentials {
        username: USER.into(),
        password: Secret::new(password.into()),
    })
}

fn caldav(r: &Radicale, password: &str) -> CalDav {
    CalDav::new(
        &r.calendar_url("room"),
        creds(password),
        Duration::from_secs(5),
    )
    .unwrap()
}

/// Today and tomorrow around `now` (UTC, RFC 3339), as the box reads them.
async fn days(src: &mut dyn Source, now: &str) -> Option<Vec<Meeting>> {
    let (from, to) = two_days(berlin(), utc(now));
    let fetched = src.fetch(from, to).await.unwrap()?;
    assert!(
        fetched.parsed.problems.is_empty(),
        "{:?}",
        fetched.parsed.problems
    );
    let out = expand(&fetched.parsed.events, &setup(), from, to);
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    Some(out.meetings)
}

fn show(m: &[Meeting]) -> Vec<(String, String, Option<String>)> {
    m.iter()
        .map(|m| {
            (
                roombox::calendar::instant(m.start_ms)
                    .format("%d %H:%M")
                    .to_string(),
                m.title.clone(),
                m.room_id.clone(),
            )
        })
        .collect()
}

/// A file's events as CalDAV stores them: one object per UID (a series with its overrides),
/// named `<uid>.ics`.
fn objects(ics: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = ics.lines().collect();
    let head: Vec<&str> = lines
        .iter()
        .take_while(|l| **l != "BEGIN:VEVENT")
        .copied()
        .collect();
    let mut by_uid: Vec<(String, Vec<&str>)> = Vec::new();
    let mut block: Vec<&str> = Vec::new();
    for l in &lines[head.len()..] {
        if *l == "END:VCALENDAR" {
            break;
        }
        block.push(l);
        if *l == "END:VEVENT" {
            let uid = block
                .iter()
                .find_map(|l| l.strip_prefix("UID:"))
                .unwrap()
                .to_string();
            match by_uid.iter_mut().find(|(u, _)| *u == uid) {
                Some((_, b)) => b.append(&mut block),
                None => by_uid.push((uid, std::mem::take(&mut block))),
            }
        }
    }
    by_uid
        .into_iter()
        .map(|(uid, b)| {
            (
                uid,
                format!("{}\n{}\nEND:VCALENDAR\n", head.join("\n"), b.join("\n")),
            )
        })
        .collect()
}

async fn server_with_fixtures() -> Radicale {
    let r = Radicale::start();
    r.mkcalendar("room").await;
    for (uid, text) in objects(FIXTURES) {
        assert_eq!(
            r.put("room", &format!("{uid}.ics"), &text).await,
            201,
            "{uid}: {}",
            r.log()
        );
    }
    assert_eq!(
        r.put("room", "outlook.ics", OUTLOOK).await,
        201,
        "{}",
        r.log()
    );
    r
}

#[tokio::test]
async fn caldav_reads_the_rooms_day_and_an_unchanged_calendar_costs_no_report() {
    let r = server_with_fixtures().await;
    let mut src = caldav(&r, PASSWORD);
    // Thursday 10 December 2026 in Berlin.
    let day = days(&mut src, "2026-12-10T08:00:00Z")
        .await
        .expect("a first read");
    assert_eq!(
        show(&day),
        [
            ("09 23:00".into(), "Offsite".into(), None),
            ("10 10:00".into(), "Standup (late)".into(), None),
            ("10 14:00".into(), "Budget".into(), Some("5678".into())),
            ("10 22:00".into(), PRIVATE_TITLE.into(), Some("1234".into())),
        ],
        "all day on Berlin's dates; the override at 11:00 Berlin; Outlook's zone; the \
         cancelled one gone; the private one crossing midnight, joinable from its description"
    );
    assert!(day[0].all_day);
    assert_eq!(day[3].end_ms - day[3].start_ms, 90 * 60_000);
    let before = r.log().matches("REPORT request").count();
    assert!(before > 0, "the server logs its REPORTs: {}", r.log());
    assert!(
        days(&mut src, "2026-12-10T08:05:00Z").await.is_none(),
        "same ctag: nothing new"
    );
    assert_eq!(
        r.log().matches("REPORT request").count(),
        before,
        "and no REPORT was made"
    );

    // Monday 7 December is an EXDATE; Monday 30 March, after the change to summer time, is
    // 09:00 Berlin at 07:00Z (08:00Z in winter, Monday 14 December).
    let mut src = caldav(&r, PASSWORD);
    let day = days(&mut src, "2026-12-07T08:00:00Z").await.unwrap();
    assert!(
        show(&day).iter().all(|m| m.1 != "Standup"),
        "{:?}",
        show(&day)
    );
    let day = days(&mut src, "2026-03-30T06:00:00Z").await.unwrap();
    assert_eq!(
        show(&day)[0],
        ("30 07:00".into(), "Standup".into(), Some("1234".into()))
    );
    let day = days(&mut src, "2026-12-14T06:00:00Z").await.unwrap();
    assert_eq!(
        show(&day)[0],
        ("14 08:00".into(), "Standup".into(), Some("1234".into()))
    );

    // A change on the server is seen at the next poll.
    let mut src = caldav(&r, PASSWORD);
    days(&mut src, "2026-12-10T08:00:00Z").await.unwrap();
    let renamed = OUTLOOK.replace("SUMMARY:Budget", "SUMMARY:Budget v2");
    assert!(
        r.put("room", "outlook.ics", &renamed).await < 300,
        "{}",
        r.log()
    );
    let day = days(&mut src, "2026-12-10T08:10:00Z")
        .await
        .expect("the ctag changed");
    assert!(
        show(&day).iter().any(|m| m.1 == "Budget v2"),
        "{:?}",
        show(&day)
    );
}

#[tokio::test]
async fn a_wrong_password_and_a_server_that_is_down_are_clear_errors() {
    let mut r = server_with_fixtures().await;
    let (from, to) = two_days(berlin(), utc("2026-12-10T08:00:00Z"));
    let err = caldav(&r, "wrong-password")
        .fetch(from, to)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SourceError::Unauthorized { status: 401, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("calendar.password_file") && !text.contains("wrong-password"),
        "{text}"
    );

    r.stop();
    let err = caldav(&r, PASSWORD).fetch(from, to).await.unwrap_err();
    assert!(matches!(err, SourceError::Unreachable { .. }), "{err:?}");
    assert!(
        err.to_string().contains("cannot reach http://127.0.0.1"),
        "{err}"
    );
}

#[tokio::test]
async fn an_ics_url_is_read_with_its_etag_and_a_file_with_its_time() {
    let r = server_with_fixtures().await;
    // Radicale serves a collection as one iCalendar file, with an ETag.
    let mut src = IcsUrl::new(
        &r.calendar_url("room"),
        creds(PASSWORD),
        Duration::from_secs(5),
    )
    .unwrap();
    let day = days(&mut src, "2026-12-10T08:00:00Z").await.unwrap();
    assert_eq!(day.len(), 4, "{:?}", show(&day));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("room.ics");
    std::fs::write(&path, FIXTURES).unwrap();
    let mut file = IcsFile::new(path.clone());
    assert_eq!(
        days(&mut file, "2026-12-10T08:00:00Z").await.unwrap().len(),
        3
    );
    assert!(
        days(&mut file, "2026-12-10T08:01:00Z").await.is_none(),
        "unchanged"
    );

    std::fs::write(&path, "<html>404 Not Found</html>").unwrap();
    let (from, to) = two_days(berlin(), utc("2026-12-10T08:00:00Z"));
    let err = file.fetch(from, to).await.unwrap_err();
    assert!(err.to_string().contains("not an iCalendar file"), "{err}");
}

#[tokio::test]
async fn a_five_megabyte_calendar_is_read_and_the_day_found_in_it() {
    // 20,000 single meetings over three years, about 5 MB: a big room's export.
    let mut ics = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:big\r\n");
    let first = chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap();
    for i in 0..20_000 {
        let d = first + chrono::Duration::days(i / 18);
        let h = 6 + i % 18;
        ics.push_str(&format!(
            "BEGIN:VEVENT\r\nUID:big-{i}\r\nDTSTAMP:20250101T000000Z\r\n\
             DTSTART:{}T{h:02}0000Z\r\nDTEND:{}T{h:02}4500Z\r\nSUMMARY:Meeting {i}\r\n\
             DESCRIPTION:{}\r\nEND:VEVENT\r\n",
            d.format("%Y%m%d"),
            d.format("%Y%m%d"),
            "An agenda line that makes the export as large as real ones are. ".repeat(2)
        ));
    }
    ics.push_str("END:VCALENDAR\r\n");
    assert!(ics.len() > 5_000_000, "{}", ics.len());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.ics");
    std::fs::write(&path, &ics).unwrap();
    let day = days(&mut IcsFile::new(path), "2026-12-10T08:00:00Z")
        .await
        .unwrap();
    // 18 meetings a day (06:00Z to 23:00Z); Berlin's two days run from 23:00Z on the 9th to
    // 23:00Z on the 11th: the 9th's last, all of the 10th, the 11th's first 17.
    assert_eq!(day.len(), 18 + 18, "{:?}", show(&day));
}

#[tokio::test]
async fn two_boxes_booking_the_same_free_time_make_exactly_one_booking() {
    let r = server_with_fixtures().await;
    let booking = |device: &str| Booking {
        uid: "roombox-booknow-20261210T120000Z".into(),
        start: utc("2026-12-10T12:05:00Z"),
        end: utc("2026-12-10T12:35:00Z"),
        title: format!("Booked now ({device})"),
        device_id: device.into(),
        room_address: Some("room-4@example.com".into()),
    };
    let (mut a, mut b) = (caldav(&r, PASSWORD), caldav(&r, PASSWORD));
    let (ba, bb) = (booking("box-a"), booking("box-b"));
    let (ra, rb) = tokio::join!(a.book(&ba), b.book(&bb));
    let results = [ra.clone(), rb.clone()];
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{ra:?} {rb:?}"
    );
    assert!(
        results.iter().any(|r| r == &Err(SourceError::Conflict)),
        "{ra:?} {rb:?}"
    );
    let all = r.get("room", "").await.unwrap();
    assert_eq!(
        all.matches("UID:roombox-booknow-20261210T120000Z").count(),
        1,
        "{all}"
    );
    let day = days(&mut caldav(&r, PASSWORD), "2026-12-10T08:00:00Z")
        .await
        .unwrap();
    assert_eq!(
        day.iter()
            .filter(|m| m.title.starts_with("Booked now"))
            .count(),
        1
    );
}

#[tokio::test]
async fn a_release_declines_for_the_room_on_the_server() {
    let r = server_with_fixtures().await;
    let mut src = caldav(&r, PASSWORD);
    // Monday 14 December: a plain instance of the series.
    let day = days(&mut src, "2026-12-14T06:00:00Z").await.unwrap();
    let standup = day.iter().find(|m| m.title == "Standup").unwrap().clone();
    src.release(&standup, Some("room-4@example.com"))
        .await
        .unwrap();

    let stored = r.get("room", "weekly-berlin.ics").await.unwrap();
    let unfolded = stored.replace("\r\n ", "").replace("\n ", "");
    assert!(
        unfolded.contains("RECURRENCE-ID:20261214T080000Z"),
        "{unfolded}"
    );
    assert!(
        unfolded.contains("PARTSTAT=DECLINED:mailto:room-4@example.com"),
        "{unfolded}"
    );
    let day = days(&mut src, "2026-12-14T06:00:00Z").await.unwrap();
    assert!(day.iter().all(|m| m.title != "Standup"), "{:?}", show(&day));
    let day = days(&mut src, "2026-12-17T06:00:00Z").await.unwrap();
    assert!(
        day.iter().any(|m| m.title == "Standup"),
        "the other instances stay"
    );

    // A booking the box made itself is deleted, not declined.
    let mine = Booking {
        uid: "roombox-booknow-20261214T120000Z".into(),
        start: utc("2026-12-14T12:00:00Z"),
        end: utc("2026-12-14T12:15:00Z"),
        title: "Booked now".into(),
        device_id: "box1".into(),
        room_address: None,
    };
    src.book(&mine).await.unwrap();
    let day = days(&mut src, "2026-12-14T06:00:00Z").await.unwrap();
    let booked = day.iter().find(|m| m.booked_here).unwrap().clone();
    src.release(&booked, None).await.unwrap();
    assert!(r
        .get("room", "roombox-booknow-20261214T120000Z.ics")
        .await
        .is_none());
}

// The agent with its calendar task, on a clock the test moves: the state, the events, release
// and book-now as a room sees them.

/// A media engine that does nothing: these tests are about the calendar.
struct NoMedia;

impl roombox::media::MediaControl for NoMedia {
    fn apply(&mut self, _: roombox::media::MediaAction) {}
}

struct CalendarBox {
    handle: roombox::agent::AgentHandle,
    events: std::sync::Arc<std::sync::Mutex<Vec<roombox::event::Event>>>,
    offset: std::sync::Arc<std::sync::atomic::AtomicI64>,
    _dir: tempfile::TempDir,
}

impl CalendarBox {
    async fn start(r: &Radicale, device: &str) -> CalendarBox {
        Self::start_with(r, device, |_| {}).await.0
    }

    /// The box with `edit` applied to its configuration; the console's URL when `[http]` is on.
    async fn start_with(
        r: &Radicale,
        device: &str,
        edit: impl FnOnce(&mut roombox::config::Config),
    ) -> (CalendarBox, Option<String>) {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("calendar.pw");
        std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
        let mut c = roombox::config::Config::default();
        c.device.id = device.into();
        c.device.name = device.into();
        c.device.state_dir = dir.path().join("state");
        c.http.enabled = false;
        c.calendar.source = roombox::config::CalendarSource::Caldav;
        c.calendar.url = r.calendar_url("room");
        c.calendar.username = USER.into();
        c.calendar.password_file = pw;
        c.calendar.timezone = "Europe/Berlin".into();
        c.calendar.room_address = "room-4@example.com".into();
        c.calendar.poll_interval = Duration::from_secs(5);
        edit(&mut c);
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        let (_tx, notices) = tokio::sync::mpsc::unbounded_channel();
        let (handle, agent) = roombox::agent::Agent::new(&c, None, Box::new(NoMedia), notices);
        let offset = agent.clock_offset();
        let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut rx = handle.subscribe();
        let sink = events.clone();
        tokio::spawn(async move {
            while let Ok(e) = rx.recv().await {
                sink.lock().unwrap().push(e);
            }
        });
        tokio::spawn(agent.run(None));
        let console = roombox::http::bind(&c, handle.clone())
            .await
            .unwrap()
            .map(|s| {
                let url = format!("http://{}/", s.addr);
                tokio::spawn(s.serve());
                url
            });
        (
            CalendarBox {
                handle,
                events,
                offset,
                _dir: dir,
            },
            console,
        )
    }

    /// Sets the agent's clock to `at` (RFC 3339).
    fn at(&self, at: &str) {
        let real = Utc::now().timestamp_millis();
        self.offset.store(
            utc(at).timestamp_millis() - real,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    fn calendar(&self) -> roombox::agent::state::CalendarStatus {
        self.handle
            .state()
            .borrow()
            .calendar
            .clone()
            .expect("[calendar] is on")
    }

    fn saw(&self, name: &str) -> Option<roombox::event::Event> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .find(|e| e.name() == name)
            .cloned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_shows_the_day_says_soon_releases_a_no_show_and_keeps_the_day_when_the_server_goes(
) {
    let mut r = server_with_fixtures().await;
    // 09:56 Berlin on Thursday 10 December: the moved standup starts at 11:00 Berlin (10:00Z).
    let b = CalendarBox::start(&r, "box1").await;
    b.at("2026-12-10T09:56:00Z");
    b.handle
        .send(roombox::command::Command::CalendarRefresh)
        .await
        .unwrap();
    let wait = Duration::from_secs(15);
    support::eventually("the day in the state", wait, || async {
        (b.calendar().meetings.len() == 4).then_some(())
    })
    .await;
    let c = b.calendar();
    assert_eq!(c.next.as_ref().unwrap().title, "Standup (late)");
    assert!(
        c.current.is_none(),
        "an all-day event is not a meeting under way"
    );
    let status = b.handle.state().borrow().render();
    assert!(status.contains("next: Standup (late)"), "{status}");
    support::eventually("meeting-starting-soon", wait, || async {
        b.saw("meeting-starting-soon")
    })
    .await;

    // Nobody comes: 10 minutes after the start the booking is declined on the server.
    b.at("2026-12-10T10:10:30Z");
    let released = support::eventually("booking-released", wait, || async {
        b.saw("booking-released")
    })
    .await;
    assert!(serde_json::to_string(&released)
        .unwrap()
        .contains("Standup (late)"));
    let stored = r
        .get("room", "weekly-berlin.ics")
        .await
        .unwrap()
        .replace("\r\n ", "");
    let late = &stored[stored.find("RECURRENCE-ID").unwrap()..];
    assert!(
        late.contains("PARTSTAT=DECLINED:mailto:room-4@example.com"),
        "{stored}"
    );
    support::eventually("the room free again", wait, || async {
        b.calendar().current.is_none().then_some(())
    })
    .await;

    // The server goes away: the error is shown, the last good day stays.
    r.stop();
    b.handle
        .send(roombox::command::Command::CalendarRefresh)
        .await
        .unwrap();
    let c = support::eventually("the error in the state", wait, || async {
        let c = b.calendar();
        c.error.is_some().then_some(c)
    })
    .await;
    assert!(c.error.unwrap().contains("cannot reach"));
    assert!(c.unreachable_since_ms.is_some());
    assert_eq!(
        c.meetings.len(),
        3,
        "the last good day, less the released meeting"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_boxes_pressing_book_now_at_once_book_the_room_once() {
    let r = server_with_fixtures().await;
    let (a, b) = (
        CalendarBox::start(&r, "box-a").await,
        CalendarBox::start(&r, "box-b").await,
    );
    for x in [&a, &b] {
        x.at("2026-12-10T12:00:00Z");
        x.handle
            .send(roombox::command::Command::CalendarRefresh)
            .await
            .unwrap();
    }
    let wait = Duration::from_secs(15);
    for x in [&a, &b] {
        support::eventually("the day", wait, || async {
            (x.calendar().book_minutes == [15, 30, 60]).then_some(())
        })
        .await;
    }
    let book = roombox::command::Command::BookNow { minutes: 30 };
    let (ra, rb) = tokio::join!(a.handle.send(book.clone()), b.handle.send(book));
    assert_eq!(
        [&ra, &rb].iter().filter(|r| r.is_ok()).count(),
        1,
        "{ra:?} {rb:?}"
    );
    let refused = [ra, rb].into_iter().find_map(|r| r.err()).unwrap();
    assert!(
        refused.message.contains("someone booked the room first"),
        "{refused:?}"
    );
    let all = r.get("room", "").await.unwrap();
    assert_eq!(all.matches("X-ROOMBOX-BOOKED-BY").count(), 1, "{all}");
    // Both boxes then see the room booked, by one of them.
    for x in [&a, &b] {
        x.handle
            .send(roombox::command::Command::CalendarRefresh)
            .await
            .unwrap();
        support::eventually("the booking on both", wait, || async {
            x.calendar()
                .current
                .filter(|m| m.title.starts_with("Booked now"))
                .map(|_| ())
        })
        .await;
    }
    let late = a
        .handle
        .send(roombox::command::Command::BookNow { minutes: 15 })
        .await;
    assert!(late.unwrap_err().message.contains("booked now"));
}

/// The console at a 7" panel's 800x480: the day with its now line, Book now writing to the
/// server, Join on the meeting whose window opened, and the last known day when the server
/// goes away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_the_day_books_now_offers_join_and_keeps_the_day_offline() {
    let mut r = server_with_fixtures().await;
    let (b, url) = CalendarBox::start_with(&r, "box1", |c| {
        c.http.enabled = true;
        c.http.port = 0;
        // The room server's host makes the Budget meeting's link joinable (no session runs).
        c.room.backend = roombox::config::RoomBackendKind::Janus;
        c.room.url = "ws://janus.example.com:8188".into();
    })
    .await;
    let url = url.expect("http on");
    b.at("2026-12-10T12:00:00Z");
    b.handle
        .send(roombox::command::Command::CalendarRefresh)
        .await
        .unwrap();
    let mut w = support::browser::Browser::start().await;
    w.open("c", &url, (800, 480)).await;
    w.wait_text("c", "#meetings li", "Standup (late)").await;
    w.wait_text("c", "#meetings li", "Budget").await;
    w.wait_text("c", "#meetings li.now-line", "now").await;
    // The home screen with the day on it still fits the 7" panel.
    let fit: Vec<f64> = serde_json::from_value(
        w.eval(
            "c",
            "[document.scrollingElement.scrollHeight, innerHeight, \
             document.getElementById('day').getBoundingClientRect().bottom]",
        )
        .await,
    )
    .unwrap();
    assert!(
        fit[0] <= fit[1] + 1.0 && fit[2] <= fit[1] + 1.0,
        "the home screen with the day scrolls at 800x480: {fit:?}"
    );
    if std::env::var_os("ROOMBOX_DOCS_SCREENSHOTS").is_some() {
        w.screenshot(
            "c",
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/console-day-800x480.png"),
        )
        .await;
    }

    w.click(
        "c",
        "#book button[aria-label='Book the room now for 30 minutes']",
    )
    .await;
    w.wait_text("c", "#meetings li.current", "Booked now").await;
    let all = r.get("room", "").await.unwrap();
    assert_eq!(all.matches("X-ROOMBOX-BOOKED-BY:box1").count(), 1, "{all}");

    // 13:56: Budget (14:00) opens its join window; its Join sends join-meeting for it (refused
    // here, as no room session runs, and the page says so).
    assert!(
        !roombox::controls::leds::holds(
            roombox::config::controls::LedState::MeetingSoon,
            &b.handle.state().borrow(),
        ),
        "nothing to join at noon"
    );
    b.at("2026-12-10T13:56:00Z");
    w.wait_text("c", "#meetings li:has-text('Budget') button", "Join")
        .await;
    let soon = || {
        roombox::controls::leds::holds(
            roombox::config::controls::LedState::MeetingSoon,
            &b.handle.state().borrow(),
        )
    };
    assert!(soon(), "the LEDs show a meeting to join beside its Join");
    w.click("c", "#meetings li:has-text('Budget') button").await;
    w.wait_text("c", "#toast", "join-meeting").await;

    r.stop();
    b.handle
        .send(roombox::command::Command::CalendarRefresh)
        .await
        .unwrap();
    w.wait_text("c", "#day-error", "Calendar unreachable since")
        .await;
    w.wait_text("c", "#meetings li", "Budget").await;
}

/// `roombox check`'s calendar line reads the real server: the day's meetings with the right
/// password, the file named and the server's refusal with a wrong one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reads_the_calendar_and_names_a_refusal() {
    let r = server_with_fixtures().await;
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("calendar.pw");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let mut c = roombox::config::Config::default();
    c.calendar.source = roombox::config::CalendarSource::Caldav;
    c.calendar.url = r.calendar_url("room");
    c.calendar.username = USER.into();
    c.calendar.password_file = pw.clone();
    c.calendar.timezone = "Europe/Berlin".into();
    let line = tokio::task::spawn_blocking({
        let c = c.clone();
        move || roombox::check::calendar(&c)
    })
    .await
    .unwrap();
    assert_eq!(line.status, roombox::check::Status::Ok, "{}", line.detail);
    assert!(
        line.detail.contains("today and tomorrow"),
        "{}",
        line.detail
    );
    std::fs::write(&pw, "wrong\n").unwrap();
    let line = tokio::task::spawn_blocking(move || roombox::check::calendar(&c))
        .await
        .unwrap();
    assert_eq!(
        line.status,
        roombox::check::Status::Failed,
        "{}",
        line.detail
    );
    assert!(line.detail.contains("password_file"), "{}", line.detail);
    assert!(!line.detail.contains(PASSWORD), "{}", line.detail);
}
