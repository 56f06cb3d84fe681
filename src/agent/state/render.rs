//! The state in words for people: `roombox status` ([`AgentState::render`], from the state the
//! daemon returned, read back into its type) and the one-line summary of the demo's live view
//! and systemd's `STATUS=` ([`AgentState::summary`]).

use super::{AgentState, FleetLinkState, FleetStatus};
use crate::model::ServiceState;
use serde::Serialize;

/// A unit enum as it is serialized (`PLAYING`, `CONNECTED`), or nothing.
pub(super) fn plain<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// A number as JSON writes it (`30.0`), as `roombox status` has always shown it.
fn number(v: f64) -> String {
    serde_json::Number::from_f64(v)
        .map(|n| n.to_string())
        .unwrap_or_else(|| "-".into())
}

fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

/// A meeting's start as the box's wall clock reads it (`Mon 14:00`).
fn wall(ms: u64) -> String {
    crate::calendar::instant(ms)
        .with_timezone(&chrono::Local)
        .format("%a %H:%M")
        .to_string()
}

/// `calendar` lines: what is on now, the next meeting, and whether the server answers.
fn render_calendar(c: &super::CalendarStatus) -> String {
    let mut s = String::new();
    let meeting = |m: &crate::calendar::Meeting| {
        format!(
            "{} {}-{}{}",
            m.title,
            wall(m.start_ms),
            crate::calendar::instant(m.end_ms)
                .with_timezone(&chrono::Local)
                .format("%H:%M"),
            m.room_id
                .as_ref()
                .map(|r| format!(" (room {r})"))
                .unwrap_or_default()
        )
    };
    s.push_str(&format!(
        "calendar     {} meetings today and tomorrow; next: {}\n",
        c.meetings.len(),
        c.next
            .as_ref()
            .map(meeting)
            .unwrap_or_else(|| "none".into())
    ));
    if let Some(m) = &c.current {
        s.push_str(&format!("  now        {}\n", meeting(m)));
    }
    if let Some(e) = &c.error {
        s.push_str(&format!(
            "  unreachable since {}: {e}\n",
            c.unreachable_since_ms
                .map(wall)
                .unwrap_or_else(|| "-".into())
        ));
    }
    s
}

fn or_dash(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

impl AgentState {
    /// `roombox status`: health, the fleet link, media, the meeting and its participants,
    /// recording, transcription, HLS and the RTMP outputs, one concern a line.
    pub fn render(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "device       {} ({})  v{}\n",
            self.device_name, self.device_id, self.version
        ));
        s.push_str(&format!(
            "health       {}{}\n",
            if self.health.ok { "ok" } else { "PROBLEMS: " },
            self.health.problems.join("; ")
        ));
        s.push_str(&render_fleet(self.fleet.as_ref()));
        let m = &self.media;
        s.push_str(&format!(
            "media        {} {} {} {} fps {} kbps of {} target (restarts {})\n",
            plain(&m.state),
            or_dash(&m.encoder),
            m.resolution,
            number(m.fps),
            m.encoded_kbps,
            m.bitrate_kbps,
            m.restarts
        ));
        if m.quality_limitation == "cpu" {
            s.push_str(&format!(
                "             cpu-limited: {} fps of {} (encoder at {} of its time)\n",
                m.target_fps,
                m.resolution.rsplit('@').next().unwrap_or("-"),
                number(m.encode_usage)
            ));
        }
        s.push_str(&format!(
            "meeting      {} room {}\n",
            plain(&self.meeting_state),
            self.room
                .as_ref()
                .map(|r| r.room_id.as_str())
                .unwrap_or("-")
        ));
        s.push_str(&format!(
            "local        mic {} webcam {}\n",
            on_off(self.local_participant.mic_on),
            on_off(self.local_participant.webcam_on),
        ));
        for p in self.participants.values() {
            s.push_str(&format!(
                "participant  {} ({}) mic {} webcam {}\n",
                p.display_name, p.participant_id, p.mic_on, p.webcam_on,
            ));
        }
        s.push_str(&format!(
            "recording    {} {} segments in {}\n",
            plain(&self.recording.state),
            self.recording.segments_closed,
            self.recording.dir
        ));
        s.push_str(&format!(
            "cloud rec    {}   transcription {}\n",
            plain(&self.cloud_recording),
            plain(&self.transcription.state)
        ));
        s.push_str(&format!(
            "hls          {}{}\n",
            plain(&self.hls.state),
            self.hls
                .playback_url
                .as_ref()
                .map(|u| format!(" {u}"))
                .unwrap_or_default()
        ));
        if let Some(c) = &self.calendar {
            s.push_str(&render_calendar(c));
        }
        let l = &self.livestream;
        s.push_str(&format!("livestream   {}\n", plain(&l.state)));
        for (name, o) in &l.outputs {
            s.push_str(&format!(
                "  output     {name}{} {} {} (retries {}){}\n",
                if o.fallback { " (fallback)" } else { "" },
                plain(&o.state),
                o.url,
                o.retries,
                o.last_error
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ));
        }
        if let Some(f) = &l.fallback.output {
            s.push_str(&format!(
                "  fallback   to {f}: {}{}\n",
                if l.fallback.active {
                    "ACTIVE"
                } else {
                    "standing by"
                },
                l.fallback
                    .reason
                    .as_ref()
                    .map(|r| format!(" (last: {r})"))
                    .unwrap_or_default()
            ));
        }
        s
    }

    /// A one-line summary for people (the demo's live line, `STATUS=` for systemd).
    pub fn summary(&self) -> String {
        let m = &self.media;
        let mut s = format!(
            "media {} {} {} {:.1} fps {} kbps",
            plain(&m.state),
            or_dash(&m.encoder),
            m.resolution,
            m.fps,
            m.bitrate_kbps
        );
        if m.quality_limitation == "cpu" {
            s.push_str(&format!(" (cpu-limited to {} fps)", m.target_fps));
        }
        s.push_str(&format!(
            " | mic {} cam {}",
            on_off(self.local_participant.mic_on),
            on_off(self.local_participant.webcam_on),
        ));
        s.push_str(&format!(
            " | rec {} {} segments",
            plain(&self.recording.state),
            self.recording.segments_closed
        ));
        if let Some(room) = &self.room {
            s.push_str(&format!(
                " | room {} {}",
                room.room_id,
                plain(&self.meeting_state)
            ));
        }
        if !self.livestream.outputs.is_empty() {
            let outs: Vec<String> = self
                .livestream
                .outputs
                .iter()
                .map(|(n, o)| format!("{n} {}", plain(&o.state)))
                .collect();
            s.push_str(&format!(" | rtmp {}", outs.join(", ")));
        }
        if self.transcription.state != ServiceState::Stopped {
            s.push_str(&format!(
                " | captions {} {}",
                plain(&self.transcription.state),
                self.transcription.captions
            ));
        }
        if let Some(f) = &self.fleet {
            s.push_str(&format!(" | fleet {}", plain(&f.state)));
        }
        s
    }
}

/// The fleet link's lines: connected or not, since when, the last error and its fix.
fn render_fleet(fleet: Option<&FleetStatus>) -> String {
    let Some(f) = fleet else {
        return "fleet        off\n".into();
    };
    let since = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(f.since_ms),
    );
    let mut s = format!(
        "fleet        {} {} {} since {since}\n",
        plain(&f.state),
        if f.state == FleetLinkState::Disconnected {
            "from"
        } else {
            "to"
        },
        f.broker,
    );
    if let Some(e) = &f.last_error {
        let label = if f.state == FleetLinkState::Connected {
            "last error"
        } else {
            "error"
        };
        s.push_str(&format!("             {label}: {e}\n"));
        if let Some(fix) = &f.fix {
            s.push_str(&format!("             fix: {fix}\n"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::super::{FleetLink, OutputStatus, StateMachine};
    use super::*;
    use crate::config::Config;
    use crate::event::MediaState;
    use crate::model::{MeetingState, Participant, Room};

    /// A box in a call, recording, streaming to two outputs (one the fallback), CPU-limited.
    fn busy() -> AgentState {
        let mut c = Config::default();
        c.fleet.broker = "mqtts://fleet.example:8883".into();
        let mut m = StateMachine::new(&c, "box7".into());
        m.fleet_notice(FleetLink::Connecting {
            broker: "mqtts://fleet.example:8883".into(),
            at_ms: 0,
        });
        m.fleet_notice(FleetLink::Down {
            error: "connection refused".into(),
            fix: Some("start the broker".into()),
            at_ms: 1_000,
        });
        let mut s = m.state().clone();
        s.version = "9.9.9".into();
        // Health as the machine made it, less the media it had not seen playing.
        s.health.problems.retain(|p| p.starts_with("fleet"));
        s.media.state = MediaState::Playing;
        s.media.encoder = Some("x264enc".into());
        s.media.fps = 15.0;
        s.media.encoded_kbps = 2400;
        s.media.encode_usage = 0.97;
        s.media.quality_limitation = "cpu".into();
        s.media.target_fps = 15;
        s.meeting_state = MeetingState::Connected;
        s.room = Some(Room {
            room_id: "1234".into(),
            session_id: None,
        });
        s.local_participant.mic_on = true;
        s.participants.insert(
            "7".into(),
            Participant {
                participant_id: "7".into(),
                display_name: "Ann".into(),
                local: false,
                mode: crate::model::Mode::SendAndReceive,
                metadata: Default::default(),
                mic_on: true,
                webcam_on: false,
                streams: Default::default(),
            },
        );
        s.recording.state = ServiceState::Started;
        s.recording.segments_closed = 3;
        s.recording.dir = "/var/lib/roombox/recordings".into();
        s.hls.state = ServiceState::Started;
        s.hls.playback_url = Some("http://box:8480/hls/index.m3u8".into());
        s.livestream.state = ServiceState::Started;
        for (name, fallback, state, err) in [
            ("backup", true, ServiceState::Started, None),
            (
                "yt",
                false,
                ServiceState::Failed,
                Some("refused".to_string()),
            ),
        ] {
            s.livestream.outputs.insert(
                name.into(),
                OutputStatus {
                    url: format!("rtmp://{name}/live/****"),
                    state,
                    last_error: err,
                    retries: 2,
                    fallback,
                    source: Default::default(),
                },
            );
        }
        s.livestream.fallback.output = Some("backup".into());
        s.livestream.fallback.active = true;
        s.livestream.fallback.reason = Some("room 1234 unreachable for 10s".into());
        s
    }

    #[test]
    fn status_says_every_concern_in_its_line() {
        let text = busy().render();
        let want = "\
device       roombox (box7)  v9.9.9
health       PROBLEMS: fleet: cannot reach mqtts://fleet.example:8883: connection refused
fleet        DISCONNECTED from mqtts://fleet.example:8883 since 1970-01-01T00:00:01Z
             error: connection refused
             fix: start the broker
media        PLAYING x264enc 1280x720@30 15.0 fps 2400 kbps of 2500 target (restarts 0)
             cpu-limited: 15 fps of 30 (encoder at 0.97 of its time)
meeting      CONNECTED room 1234
local        mic on webcam off
participant  Ann (7) mic true webcam false
recording    STARTED 3 segments in /var/lib/roombox/recordings
cloud rec    STOPPED   transcription STOPPED
hls          STARTED http://box:8480/hls/index.m3u8
livestream   STARTED
  output     backup (fallback) STARTED rtmp://backup/live/**** (retries 2)
  output     yt FAILED rtmp://yt/live/**** (retries 2): refused
  fallback   to backup: ACTIVE (last: room 1234 unreachable for 10s)
";
        assert_eq!(text, want);
    }

    #[test]
    fn status_of_an_idle_box_reads_back_from_get_state() {
        let m = state();
        let json = serde_json::to_value(m.state()).unwrap();
        let back: AgentState = serde_json::from_value(json).unwrap();
        let text = back.render();
        assert!(text.contains("\nfleet        off\n"), "{text}");
        assert!(
            text.contains(
                "\nmedia        STOPPED - 1280x720@30 0.0 fps 0 kbps of 2500 target (restarts 0)\n"
            ),
            "{text}"
        );
        assert!(text.contains("\nmeeting      CLOSED room -\n"), "{text}");
        assert!(text.ends_with("livestream   STOPPED\n"), "{text}");
    }

    #[test]
    fn summary_is_one_line() {
        let line = busy().summary();
        assert_eq!(
            line,
            "media PLAYING x264enc 1280x720@30 15.0 fps 2500 kbps (cpu-limited to 15 fps) | mic on cam off \
             | rec STARTED 3 segments | room 1234 CONNECTED | rtmp backup STARTED, yt FAILED | fleet DISCONNECTED"
        );
    }
}
