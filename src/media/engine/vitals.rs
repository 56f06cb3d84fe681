//! What each second of capture says, kept apart from GStreamer: the rates for the stats (frames
//! per second, encoded kbit/s, encode usage), the frame-rate step under overload, and whether
//! the camera or the microphone has stalled.
//!
//! The engine reads the capture's counters and the encoder's load once a second and hands them
//! to [`Vitals::second`] with the time; the verdict says what to report and whether capture has
//! failed. The overload decision itself is [`Detector`]'s; this only says when it may judge.

use crate::media::error::MediaError;
use crate::media::overload::{self, Detector, Load};
use std::time::{Duration, Instant};

/// A camera that delivers no frame for this long, or a microphone no sound, is a fault: capture
/// is rebuilt rather than left PLAYING at 0 fps.
pub const STALL_LIMIT: Duration = Duration::from_secs(5);
/// How long a new capture may take to deliver its first frame.
pub const FIRST_FRAME_LIMIT: Duration = Duration::from_secs(15);

/// The capture's running totals since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Encoded video frames.
    pub frames: u64,
    /// Encoded video bytes.
    pub video_bytes: u64,
    /// Opus frames (muted audio still flows, as silence).
    pub audio_frames: u64,
}

/// One second's readings and what the capture is doing, as the verdict depends on both.
#[derive(Debug, Clone, Copy)]
pub struct Second {
    /// The counters now.
    pub totals: Totals,
    /// The encoder's load over the second (None without a load meter).
    pub load: Option<Load>,
    /// The capture has a camera (or test source).
    pub has_video: bool,
    /// The capture has a microphone.
    pub has_audio: bool,
    /// Capture has delivered its first frame.
    pub playing: bool,
    /// A stop is under way: nothing is judged, as capture is going anyway.
    pub stopping: bool,
    /// The capture can drop frames (it has a decimator), so a step in rate can take effect.
    pub can_adapt: bool,
}

/// A camera or microphone that stopped delivering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stall {
    /// No video frame for this long while playing.
    Camera(Duration),
    /// No first frame this long after the capture started.
    FirstFrame(Duration),
    /// No audio frame for this long while playing.
    Microphone(Duration),
}

impl From<Stall> for MediaError {
    fn from(s: Stall) -> MediaError {
        MediaError::Stalled(match s {
            Stall::Camera(d) => format!("the camera delivered no frame for {}s", d.as_secs()),
            Stall::FirstFrame(d) => format!(
                "the camera delivered no first frame within {}s",
                d.as_secs()
            ),
            Stall::Microphone(d) => {
                format!("the microphone delivered no sound for {}s", d.as_secs())
            }
        })
    }
}

/// A step in frame rate under overload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Frames per second sent from now on.
    pub fps: u32,
    /// The configured rate it steps from.
    pub full_fps: u32,
}

/// What a second comes to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// Encoded frames per second, to a tenth.
    pub fps: f64,
    /// Video bitrate the encoder produced, kbit/s.
    pub encoded_kbps: u32,
    /// The encoder's time per frame as a share of the frame interval, to a hundredth.
    pub encode_usage: f64,
    /// The frame rate overload stepped to, when it changed.
    pub adapted: Option<Step>,
    /// Capture has stalled and must be rebuilt.
    pub stall: Option<Stall>,
}

/// The meter's and the watchdog's memory from one second to the next.
#[derive(Debug, Clone)]
pub struct Vitals {
    last: Totals,
    /// When the totals were last taken: rates divide by the real time since, as a tick that
    /// comes late under load would otherwise read as a higher rate.
    last_at: Instant,
    /// When video frames last advanced (or the capture started).
    video_progress: Instant,
    /// When audio frames last advanced (or the capture started).
    audio_progress: Instant,
    /// Steps the frame rate down when the encoder is overloaded (None when not adapting). It
    /// outlives capture restarts: the load that made it step down is still there.
    overload: Option<Detector>,
}

/// Rounds to `places` decimal places.
fn round(x: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (x * scale).round() / scale
}

impl Vitals {
    /// Nothing measured yet, no rate adaptation.
    pub fn new(now: Instant) -> Vitals {
        Vitals {
            last: Totals::default(),
            last_at: now,
            video_progress: now,
            audio_progress: now,
            overload: None,
        }
    }

    /// A new capture starts at `now`, its counters from zero. `adapt`: the configured frame
    /// rate and its floor when the rate adapts to the CPU, else None. Returns the rate the new
    /// capture is to send when adapting: the one overload last chose.
    pub fn restart(&mut self, now: Instant, adapt: Option<(u32, u32)>) -> Option<u32> {
        self.last = Totals::default();
        self.last_at = now;
        self.video_progress = now;
        self.audio_progress = now;
        match adapt {
            None => self.overload = None,
            Some((fps, min_fps)) => {
                if self.overload.is_none() {
                    self.overload = Some(Detector::new(overload::steps(fps, min_fps)));
                }
            }
        }
        self.overload.as_ref().map(Detector::fps)
    }

    /// Forgets the rate overload chose (the media settings changed).
    pub fn forget_rate(&mut self) {
        self.overload = None;
    }

    /// The frame rate sent now: the one overload chose, else `configured`.
    pub fn fps(&self, configured: u32) -> u32 {
        self.overload.as_ref().map_or(configured, Detector::fps)
    }

    /// Takes one second's readings at `now`.
    pub fn second(&mut self, now: Instant, s: Second) -> Verdict {
        let secs = now
            .saturating_duration_since(self.last_at)
            .as_secs_f64()
            .max(0.5);
        self.last_at = now;
        let frames = s.totals.frames.saturating_sub(self.last.frames);
        let bytes = s.totals.video_bytes.saturating_sub(self.last.video_bytes);
        let audio_moved = s.totals.audio_frames > self.last.audio_frames;
        self.last = s.totals;
        let fps = round(frames as f64 / secs, 1);
        let encoded_kbps = (bytes as f64 * 8.0 / 1000.0 / secs) as u32;
        let encode_usage = s.load.map_or(0.0, |l| round(l.usage, 2));
        let mut adapted = None;
        if let (Some(o), Some(load)) = (self.overload.as_mut(), s.load) {
            if s.can_adapt && s.playing && !s.stopping {
                adapted = o.sample(load, now).map(|fps| Step {
                    fps,
                    full_fps: o.full(),
                });
            }
        }
        let stall = if s.stopping {
            None
        } else {
            self.watch(now, &s, fps, audio_moved)
        };
        Verdict {
            fps,
            encoded_kbps,
            encode_usage,
            adapted,
            stall,
        }
    }

    /// The stall rules: no sound for [`STALL_LIMIT`] while playing; no frame for
    /// [`STALL_LIMIT`] while playing, or none [`FIRST_FRAME_LIMIT`] after the start.
    fn watch(&mut self, now: Instant, s: &Second, fps: f64, audio_moved: bool) -> Option<Stall> {
        if audio_moved {
            self.audio_progress = now;
        }
        let silent = now.saturating_duration_since(self.audio_progress);
        if s.has_audio && s.playing && silent >= STALL_LIMIT {
            // Muted audio still flows (as silence): no frames at all is a dead microphone or
            // a stopped streaming thread, and a rebuilt capture is the cure for both.
            return Some(Stall::Microphone(silent));
        }
        if !s.has_video {
            return None;
        }
        if fps > 0.0 {
            self.video_progress = now;
            return None;
        }
        let idle = now.saturating_duration_since(self.video_progress);
        if s.playing && idle >= STALL_LIMIT {
            Some(Stall::Camera(idle))
        } else if !s.playing && idle >= FIRST_FRAME_LIMIT {
            Some(Stall::FirstFrame(idle))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    /// A playing capture with video and audio, counters at these totals.
    fn second(frames: u64, video_bytes: u64, audio_frames: u64) -> Second {
        Second {
            totals: Totals {
                frames,
                video_bytes,
                audio_frames,
            },
            load: None,
            has_video: true,
            has_audio: true,
            playing: true,
            stopping: false,
            can_adapt: true,
        }
    }

    fn load(usage: f64) -> Option<Load> {
        Some(Load {
            usage,
            lag: Duration::ZERO,
            frames: 20,
        })
    }

    #[test]
    fn the_meter_gives_the_rates_over_the_second_since_the_last_reading() {
        let t0 = Instant::now();
        let mut v = Vitals::new(t0);
        v.restart(t0, None);
        // 30 frames and 250,000 bytes (2 Mbit) in the first second.
        let r = v.second(t0 + SEC, second(30, 250_000, 50));
        assert_eq!((r.fps, r.encoded_kbps), (30.0, 2000));
        // 25 more frames and 125,000 more bytes, read 2 s later (a late tick): per second.
        let r = v.second(t0 + 3 * SEC, second(55, 375_000, 150));
        assert_eq!((r.fps, r.encoded_kbps), (12.5, 500));
        // Rounded to a tenth.
        let r = v.second(t0 + 6 * SEC, second(65, 375_000, 300));
        assert_eq!(r.fps, 3.3);
        assert_eq!(r.encoded_kbps, 0);
    }

    #[test]
    fn a_tick_that_comes_early_counts_as_half_a_second_at_least() {
        let t0 = Instant::now();
        let mut v = Vitals::new(t0);
        let r = v.second(t0 + Duration::from_millis(10), second(15, 0, 1));
        assert_eq!(r.fps, 30.0);
    }

    #[test]
    fn a_new_capture_counts_from_zero() {
        let t0 = Instant::now();
        let mut v = Vitals::new(t0);
        v.second(t0 + SEC, second(300, 1_000_000, 50));
        v.restart(t0 + 2 * SEC, None);
        let r = v.second(t0 + 3 * SEC, second(30, 125_000, 50));
        assert_eq!((r.fps, r.encoded_kbps), (30.0, 1000));
    }

    #[test]
    fn encode_usage_is_the_load_to_a_hundredth_and_zero_without_a_meter() {
        let t0 = Instant::now();
        let mut v = Vitals::new(t0);
        let mut s = second(30, 0, 50);
        assert_eq!(v.second(t0 + SEC, s).encode_usage, 0.0);
        s.load = load(0.4567);
        assert_eq!(v.second(t0 + 2 * SEC, s).encode_usage, 0.46);
    }

    #[test]
    fn a_camera_without_frames_for_the_stall_limit_is_a_fault() {
        let t0 = Instant::now();
        let mut v = Vitals::new(t0);
        v.restart(t0, None);
        let mut frames = 0;
        for i in 1..=3 {
            frames += 30;
            let r = v.second(t0 + i * SEC, second(frames, 0, i as u64 * 50));
            assert_eq!(r.stall, None);
        }
        // From 3 s on the camera delivers nothing; the microphone goes on.
        for i in 4..8 {
            let r = v.second(t0 + i * SEC, second(frames, 0, i as u64 * 50));
            assert_eq!(r.stall, None, "{i} s");
        }
        let r = v.second(t0 + 8 * SEC, second(frames, 0, 400));
        assert_eq!(r.stall, Some(Stall::Camera(STALL_LIMIT)));
        assert_eq!(
            MediaError::from(Stall::Camera(STALL_LIMIT)),
            MediaError::Stalled("the camera delivered no frame for 5s".into())
        );
    }

    #[test]
    fn a_new_capture_may_take_the_first_frame_limit_to_deliver_a_frame() {
        let t0 = Instant::now();
        let mut v = Vitals::new(t0);
        v.restart(t0, None);
        let mut s = second(0, 0, 0);
        s.playing = false;
        for i in 1..15 {
            s.totals.audio_frames = i * 50;
            assert_eq!(v.second(t0 + i as u32 * SEC, s).stall, None, "{i} s");
        }
        let r = v.second(t0 + FIRST_FRAME_LIMIT, s);
        assert_eq!(r.stall, Some(Stall::FirstFrame(FIRST_FRAME_LIMIT)));
        assert_eq!(
            MediaError::from(Stall::FirstFrame(FIRST_FRAME_LIMIT)).to_string(),
            "the camera delivered no first frame within 15s"
        );
    }

    #[test]
    fn a_microphone_without_frames_for_the_stall_limit_is_a_fault() {
        let t0 = Instant::now();
        let mut v = Vitals::new(t0);
        v.restart(t0, None);
        let mut s = second(0, 0, 50);
        s.has_video = false;
        assert_eq!(v.second(t0 + SEC, s).stall, None);
        for i in 2..6 {
            s.totals.frames = 0;
            assert_eq!(v.second(t0 + i * SEC, s).stall, None, "{i} s");
        }
        assert_eq!(
            v.second(t0 + 6 * SEC, s).stall,
            Some(Stall::Microphone(STALL_LIMIT))
        );
        // Before capture plays, a silent microphone is not judged.
        let mut v = Vitals::new(t0);
        s.playing = false;
        assert_eq!(v.second(t0 + 20 * SEC, s).stall, None);
    }

    #[test]
    fn nothing_is_judged_while_a_stop_is_under_way() {
        let t0 = Instant::now();
        let mut v = Vitals::new(t0);
        v.restart(t0, Some((30, 10)));
        let mut s = second(0, 0, 0);
        s.stopping = true;
        s.load = load(0.99);
        for i in 1..30 {
            let r = v.second(t0 + i * SEC, s);
            assert_eq!((r.stall, r.adapted), (None, None), "{i} s");
        }
    }

    #[test]
    fn overload_steps_down_only_while_playing_with_a_decimator() {
        let t0 = Instant::now();
        let mut v = Vitals::new(t0);
        assert_eq!(v.restart(t0, Some((30, 10))), Some(30));
        let mut s = second(0, 0, 0);
        s.load = load(0.95);
        s.can_adapt = false;
        let mut frames = 0;
        let mut next = |v: &mut Vitals, s: &mut Second, i: u32| {
            frames += 30;
            s.totals.frames = frames;
            s.totals.audio_frames = frames;
            v.second(t0 + i * SEC, *s)
                .adapted
                .map(|a| (a.fps, a.full_fps))
        };
        assert_eq!(next(&mut v, &mut s, 1), None);
        assert_eq!(next(&mut v, &mut s, 2), None, "no decimator: not judged");
        s.can_adapt = true;
        s.playing = false;
        assert_eq!(next(&mut v, &mut s, 3), None);
        assert_eq!(next(&mut v, &mut s, 4), None, "not playing: not judged");
        s.playing = true;
        assert_eq!(next(&mut v, &mut s, 5), None);
        assert_eq!(next(&mut v, &mut s, 6), Some((20, 30)));
        assert_eq!(v.fps(30), 20);
        // A rebuilt capture keeps the rate overload chose; new settings forget it.
        assert_eq!(v.restart(t0 + 7 * SEC, Some((30, 10))), Some(20));
        v.forget_rate();
        assert_eq!(v.fps(25), 25);
        assert_eq!(v.restart(t0 + 8 * SEC, None), None);
    }
}
