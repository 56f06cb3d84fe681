//! The calendar bench (benches/calendar.sh): a busy room's year, 50 meetings a week (40 weekly
//! series in three zones, Outlook's Windows name among them, each with EXDATEs and moved
//! instances, and 10 single meetings a week), parsed and expanded for the whole year, beside
//! the box's own poll (today and tomorrow) as the baseline. Time is the median of 20 runs;
//! memory is the heap's peak above what was live before, counted by this binary's allocator.
//! Then a change on a CalDAV server (Debian's Radicale on loopback) to the agent's state: the
//! poll alone, against `calendar-refresh` right after the change as the baseline.
//! Prints a markdown section for BENCHMARKS.md.

use roombox::calendar::{expand, parse, ExpandSetup, JoinMatcher};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The year 2027 of a busy room, as one iCalendar file.
fn busy_year() -> String {
    let mut s = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//roombox bench//EN\r\n");
    let zones = [
        "Europe/Berlin",
        "W. Europe Standard Time",
        "America/New_York",
    ];
    let days = ["MO", "TU", "WE", "TH", "FR"];
    for i in 0..40 {
        let zone = zones[i % 3];
        let day = days[i % 5];
        let hour = 8 + (i / 5) % 9;
        // Monday 28 December 2026 and the days after it: each series starts in the week
        // before 2027 on its own weekday.
        let first = chrono::NaiveDate::from_ymd_opt(2026, 12, 28).unwrap_or_default()
            + chrono::Duration::days((i % 5) as i64);
        let start = format!("{}T{hour:02}{:02}00", first.format("%Y%m%d"), (i % 2) * 30);
        s.push_str(&format!(
            "BEGIN:VEVENT\r\nUID:series-{i}\r\nDTSTAMP:20261201T000000Z\r\n\
             DTSTART;TZID=\"{zone}\":{start}\r\nDURATION:PT30M\r\n\
             RRULE:FREQ=WEEKLY;BYDAY={day};UNTIL=20280101T000000Z\r\nSUMMARY:Series {i}\r\n\
             LOCATION:https://janus.example.com/videoroom?room={i}\r\n"
        ));
        // Three weeks off (holidays), as EXDATEs in the series' zone.
        for week in [10, 30, 50] {
            let d = first + chrono::Duration::weeks(week);
            s.push_str(&format!(
                "EXDATE;TZID=\"{zone}\":{}T{hour:02}{:02}00\r\n",
                d.format("%Y%m%d"),
                (i % 2) * 30
            ));
        }
        s.push_str("END:VEVENT\r\n");
        // Two instances moved an hour later.
        for week in [5, 25] {
            let d = first + chrono::Duration::weeks(week);
            let (date, min) = (d.format("%Y%m%d"), (i % 2) * 30);
            s.push_str(&format!(
                "BEGIN:VEVENT\r\nUID:series-{i}\r\nDTSTAMP:20261201T000000Z\r\n\
                 RECURRENCE-ID;TZID=\"{zone}\":{date}T{hour:02}{min:02}00\r\n\
                 DTSTART;TZID=\"{zone}\":{date}T{:02}{min:02}00\r\nDURATION:PT30M\r\n\
                 SUMMARY:Series {i} (moved)\r\nEND:VEVENT\r\n",
                hour + 1
            ));
        }
    }
    // Ten single meetings a week.
    for week in 0..52 {
        for k in 0..10 {
            let d = chrono::NaiveDate::from_ymd_opt(2027, 1, 4).unwrap_or_default()
                + chrono::Duration::weeks(week)
                + chrono::Duration::days(k % 5);
            s.push_str(&format!(
                "BEGIN:VEVENT\r\nUID:single-{week}-{k}\r\nDTSTAMP:20261201T000000Z\r\n\
                 DTSTART:{}T{:02}1500Z\r\nDTEND:{}T{:02}4500Z\r\nSUMMARY:Single {week}/{k}\r\n\
                 CLASS:{}\r\nEND:VEVENT\r\n",
                d.format("%Y%m%d"),
                7 + k % 10,
                d.format("%Y%m%d"),
                7 + k % 10,
                if k % 4 == 0 { "PRIVATE" } else { "PUBLIC" }
            ));
        }
    }
    s.push_str("END:VCALENDAR\r\n");
    s
}

fn utc(s: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap()
        .with_timezone(&chrono::Utc)
}

/// Parses and expands `text` over `[from, to)` `runs` times: the median time (ms), the peak
/// heap above the start (bytes) and the meetings found.
fn measure(text: &str, from: &str, to: &str, runs: usize) -> (f64, usize, usize) {
    let setup = ExpandSetup {
        zone: chrono_tz::Tz::Europe__Berlin,
        private_all: false,
        room_address: Some("room-4@example.com".into()),
        device_id: "bench".into(),
        matcher: JoinMatcher::new(Some("ws://janus.example.com:8188"), &["1".into()], &[]),
    };
    let (from, to) = (utc(from), utc(to));
    let mut times = Vec::new();
    let mut peak = 0;
    let mut count = 0;
    for _ in 0..runs {
        let base = LIVE.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        let t = Instant::now();
        let parsed = parse(text).expect("the bench calendar parses");
        let out = expand(&parsed.events, &setup, from, to);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(
            out.problems.is_empty() && parsed.problems.is_empty(),
            "{:?}",
            out.problems
        );
        count = out.meetings.len();
        drop(out);
        drop(parsed);
        peak = peak.max(PEAK.load(Ordering::Relaxed) - base);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    (times[times.len() / 2], peak, count)
}

/// A meeting object for the change bench: `title` at 14:00-15:00Z on 10 December 2026.
fn object(title: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//roombox bench//EN\r\nBEGIN:VEVENT\r\n\
         UID:change\r\nDTSTAMP:20261201T000000Z\r\nDTSTART:20261210T140000Z\r\n\
         DTEND:20261210T150000Z\r\nSUMMARY:{title}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

struct NoMedia;

impl roombox::media::MediaControl for NoMedia {
    fn apply(&mut self, _: roombox::media::MediaAction) {}
}

/// Seconds from each PUT's answer to the agent's state showing the new title, `rounds` times;
/// with `refresh`, a `calendar-refresh` follows each PUT.
async fn change_to_state(poll: std::time::Duration, rounds: usize, refresh: bool) -> Vec<f64> {
    let dir = std::env::temp_dir().join(format!(
        "roombox-bench-cal-{}-{refresh}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    std::fs::write(dir.join("users"), "room:pw\n").expect("users");
    std::fs::write(
        dir.join("config"),
        format!(
            "[server]\nhosts = 127.0.0.1:{port}\n[auth]\ntype = htpasswd\nhtpasswd_filename = {}\n\
             htpasswd_encryption = plain\ndelay = 0\n[rights]\ntype = owner_only\n\
             [storage]\nfilesystem_folder = {}\n[web]\ntype = none\n[logging]\nlevel = warning\n",
            dir.join("users").display(),
            dir.join("collections").display()
        ),
    )
    .expect("config");
    let mut radicale = std::process::Command::new("radicale")
        .arg("--config")
        .arg(dir.join("config"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("radicale is installed (scripts/setup.sh)");
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let http = reqwest::Client::new();
    let cal = format!("http://127.0.0.1:{port}/room/cal/");
    let send = |method: &str, url: String, body: String| {
        http.request(
            reqwest::Method::from_bytes(method.as_bytes()).expect("a method"),
            url,
        )
        .basic_auth("room", Some("pw"))
        .body(body)
        .send()
    };
    send("MKCALENDAR", cal.clone(), String::new())
        .await
        .expect("MKCALENDAR");
    send("PUT", format!("{cal}change.ics"), object("v0"))
        .await
        .expect("PUT");

    std::fs::write(dir.join("pw"), "pw\n").expect("pw");
    let mut c = roombox::config::Config::default();
    c.device.state_dir = dir.join("state");
    c.http.enabled = false;
    c.calendar.source = roombox::config::CalendarSource::Caldav;
    c.calendar.url = cal.clone();
    c.calendar.username = "room".into();
    c.calendar.password_file = dir.join("pw");
    c.calendar.timezone = "UTC".into();
    c.calendar.poll_interval = poll;
    let (_tx, notices) = tokio::sync::mpsc::unbounded_channel();
    let (handle, agent) = roombox::agent::Agent::new(&c, None, Box::new(NoMedia), notices);
    let real = chrono::Utc::now().timestamp_millis();
    agent.clock_offset().store(
        utc("2026-12-10T12:00:00Z").timestamp_millis() - real,
        Ordering::Relaxed,
    );
    tokio::spawn(agent.run(None));
    let mut state = handle.state();
    let shows = |s: &roombox::agent::state::AgentState, t: &str| {
        s.calendar
            .as_ref()
            .is_some_and(|c| c.meetings.iter().any(|m| m.title == t))
    };
    let _ = state.wait_for(|s| shows(s, "v0")).await;
    let mut out = Vec::new();
    for round in 1..=rounds {
        // A change at a random point of the poll period.
        let phase = (round as u64 * 7919 % 1000) * poll.as_millis() as u64 / 1000;
        tokio::time::sleep(std::time::Duration::from_millis(phase)).await;
        let title = format!("v{round}");
        send("PUT", format!("{cal}change.ics"), object(&title))
            .await
            .expect("PUT");
        let t = Instant::now();
        if refresh {
            let _ = handle
                .send(roombox::command::Command::CalendarRefresh)
                .await;
        }
        let _ = state.wait_for(|s| shows(s, &title)).await;
        out.push(t.elapsed().as_secs_f64());
    }
    let _ = radicale.kill();
    let _ = radicale.wait();
    let _ = std::fs::remove_dir_all(&dir);
    out
}

fn main() {
    let text = busy_year();
    let (year_ms, year_peak, year_n) =
        measure(&text, "2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z", 20);
    let (day_ms, day_peak, day_n) =
        measure(&text, "2027-06-09T22:00:00Z", "2027-06-11T22:00:00Z", 20);
    let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!("## Calendar: a busy room's year, parsed and expanded (issue 19)");
    println!();
    println!(
        "A synthetic year of a busy room: 40 weekly series (Europe/Berlin, Outlook's \"W. Europe \
         Standard Time\", America/New_York; three EXDATEs and two moved instances each) and 10 \
         single meetings a week, {} KiB of iCalendar. Parsed (`icalendar`) and expanded (`rrule`, \
         `chrono-tz`) in one go by the release build, the median of 20 runs; memory is the heap's \
         peak during a run above what was live before it (this bench's counting allocator). \
         Baseline: the same file for the box's own poll, today and tomorrow.",
        text.len() / 1024
    );
    println!();
    println!("| window | meetings | time, median | heap peak | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| two days (the box's poll; baseline) | {day_n} | {day_ms:.1} ms | {:.2} MiB | – |",
        mib(day_peak)
    );
    println!(
        "| a year | {year_n} | **{year_ms:.1} ms** | **{:.2} MiB** | ≤ 50 ms and ≤ 5 MiB ({}) |",
        mib(year_peak),
        verdict(year_ms <= 50.0 && mib(year_peak) <= 5.0)
    );

    let poll = std::time::Duration::from_secs(5);
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let polled = rt.block_on(change_to_state(poll, 6, false));
    let refreshed = rt.block_on(change_to_state(poll, 6, true));
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let show = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let limit = poll.as_secs_f64() + 1.0;
    println!();
    println!(
        "A change on the CalDAV server (Radicale on loopback, one PUT at a spread of points of the \
         poll period) to the agent's state, with `poll_interval = \"5s\"`: 6 changes each way, \
         seconds from the PUT's answer to the state showing it."
    );
    println!();
    println!("| path | worst | each | target |");
    println!("|---|---|---|---|");
    println!(
        "| `calendar-refresh` right after the change (baseline) | {:.2} s | {} | – |",
        max(&refreshed),
        show(&refreshed)
    );
    println!(
        "| the poll alone | **{:.2} s** | {} | ≤ poll interval + 1 s = {limit:.0} s ({}) |",
        max(&polled),
        show(&polled),
        verdict(max(&polled) <= limit)
    );
}
