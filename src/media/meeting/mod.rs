//! The meeting feed: every participant composed in a layout and every voice mixed, encoded once
//! for the outputs whose source is the meeting ([`Feed::Meeting`](super::Feed::Meeting),
//! [`Feed::MeetingAac`](super::Feed::MeetingAac), [`Feed::MeetingOpus`](super::Feed::MeetingOpus)).
//!
//! Two pipelines meet here. Room playback (`room::playback`, its own pipeline) decodes each
//! remote participant and hands the frames and the audio to the [`MeetingHub`]; the capture
//! pipeline's [`compose::Compose`] takes them through one `appsrc` per participant and track,
//! beside the box's own camera and processed mic. The hub is open only while a compose runs:
//! closed, playback drops its taps before decoding or converting anything for it.
//!
//! Nothing waits on the meeting: the hub pushes without blocking into leaky `appsrc`s, and the
//! camera and mic reach the compose through leaky queues, so a slow compose drops only its own
//! frames.
//!
//! The room session tells the hub who is who (display names) and who talks; the compose reads
//! a snapshot of it on the engine's housekeeping tick, lays the tiles out with
//! [`super::layout`] and moves the compositor's pads.
//!
//! Imported by the media engine (`engine`, `pipeline`) and by `room` (playback and session).

pub mod compose;

use gstreamer as gst;
use gstreamer_app as gst_app;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// What follows a participant's id in the id of their share: a share is composed as a member
/// of its own beside their camera (the box's own share under [`compose::LOCAL`]).
pub const SHARE_SUFFIX: &str = "#share";

/// The hub's id for `owner`'s share.
pub fn share_id(owner: &str) -> String {
    format!("{owner}{SHARE_SUFFIX}")
}

/// Whose share `id` is, if it is one.
pub fn share_owner(id: &str) -> Option<&str> {
    id.strip_suffix(SHARE_SUFFIX)
}

/// A remote participant as the hub knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// Participant id.
    pub id: String,
    /// Display name (the id until the room says).
    pub name: String,
    /// Decoded video has arrived since the hub opened.
    pub video: bool,
    /// Decoded audio has arrived since the hub opened.
    pub audio: bool,
}

/// What the compose reads on each tick.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    /// Remote participants, in the order they joined.
    pub remotes: Vec<Remote>,
    /// Who the room says is talking, most recent last.
    pub talking: Vec<String>,
    /// Pinned by a command.
    pub pinned: Option<String>,
    /// Who presents.
    pub presenter: Option<String>,
}

#[derive(Default)]
struct Inner {
    remotes: Vec<Remote>,
    talking: Vec<String>,
    pinned: Option<String>,
    presenter: Option<String>,
    video: HashMap<String, gst_app::AppSrc>,
    audio: HashMap<String, gst_app::AppSrc>,
    /// Where each participant's next piece of audio starts, in the capture's running time.
    audio_next: HashMap<String, gst::ClockTime>,
    /// Who else takes each participant's own audio (the recorder's per-participant tracks).
    voice_taps: Vec<(u64, VoiceTap)>,
    next_tap: u64,
}

/// Takes a participant's own audio as it enters the mix: their id and the piece, stamped in
/// the capture's running time (`media::tracks`, a recording's per-participant tracks).
pub type VoiceTap = Arc<dyn Fn(&str, &gst::Sample) + Send + Sync>;

/// How far a participant's audio may drift from its arrival before it is stamped anew.
const RESYNC: std::time::Duration = std::time::Duration::from_millis(200);

impl Inner {
    fn remote(&mut self, id: &str) -> &mut Remote {
        if let Some(i) = self.remotes.iter().position(|r| r.id == id) {
            return &mut self.remotes[i];
        }
        self.remotes.push(Remote {
            id: id.to_string(),
            name: id.to_string(),
            video: false,
            audio: false,
        });
        self.remotes.last_mut().expect("just pushed")
    }
}

/// Where room playback hands decoded participants to the meeting feed; cheap to clone.
#[derive(Clone, Default)]
pub struct MeetingHub {
    open: Arc<AtomicBool>,
    /// Counts the taps' requests for a keyframe of remote video.
    keyframes: Arc<std::sync::atomic::AtomicU64>,
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for MeetingHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeetingHub")
            .field("open", &self.is_open())
            .finish()
    }
}

impl MeetingHub {
    /// The process's hub: one box, one room session and one capture per process, as with the
    /// echo path (`echo::EchoPath::shared`).
    pub fn shared() -> MeetingHub {
        static SHARED: OnceLock<MeetingHub> = OnceLock::new();
        SHARED.get_or_init(MeetingHub::default).clone()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True while a compose takes the participants: playback decodes for it only then.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }

    /// Opens (a compose started) or closes the hub; closing forgets the compose's inputs and
    /// what had arrived.
    pub fn set_open(&self, open: bool) {
        self.open.store(open, Ordering::Relaxed);
        if !open {
            let mut inner = self.lock();
            inner.video.clear();
            inner.audio.clear();
            inner.audio_next.clear();
            for r in &mut inner.remotes {
                r.video = false;
                r.audio = false;
            }
        }
    }

    /// A tap waits for a keyframe of a participant's video: room playback asks the senders.
    pub fn want_keyframes(&self) {
        self.keyframes.fetch_add(1, Ordering::Relaxed);
    }

    /// How many times a keyframe was wanted: a change means "ask again".
    pub fn keyframes_wanted(&self) -> u64 {
        self.keyframes.load(Ordering::Relaxed)
    }

    /// A remote participant joined, or their name changed.
    pub fn joined(&self, id: &str, name: &str) {
        let mut inner = self.lock();
        let r = inner.remote(id);
        if !name.is_empty() {
            r.name = name.to_string();
        }
    }

    /// A remote participant left (and their share with them), or a share (by [`share_id`])
    /// stopped.
    pub fn left(&self, id: &str) {
        let share = share_id(id);
        let mut inner = self.lock();
        for id in [id, share.as_str()] {
            inner.remotes.retain(|r| r.id != id);
            inner.talking.retain(|t| t != id);
            inner.video.remove(id);
            inner.audio.remove(id);
            if inner.pinned.as_deref() == Some(id) {
                inner.pinned = None;
            }
        }
    }

    /// An appsink that hands what reaches it to the hub as participant `id`'s video or audio
    /// (never blocking, dropping when full).
    pub fn sink(&self, id: &str, video: bool) -> gst_app::AppSink {
        let sink = gst_app::AppSink::builder()
            .sync(false)
            .async_(false)
            .enable_last_sample(false)
            .max_buffers(2)
            .drop(true)
            .build();
        let (who, to) = (id.to_string(), self.clone());
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    if let Ok(sample) = s.pull_sample() {
                        match video {
                            true => to.push_video(&who, &sample),
                            false => to.push_audio(&who, &sample),
                        }
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        sink
    }

    /// The room left: nobody remote is in the meeting.
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.remotes.clear();
        inner.talking.clear();
        inner.video.clear();
        inner.audio.clear();
        inner.presenter = None;
    }

    /// Someone started or stopped talking.
    pub fn talking(&self, id: &str, talking: bool) {
        let mut inner = self.lock();
        inner.talking.retain(|t| t != id);
        if talking {
            inner.talking.push(id.to_string());
        }
    }

    /// Pins a participant to the focus (None: unpin).
    pub fn pin(&self, id: Option<&str>) {
        self.lock().pinned = id.map(str::to_string);
    }

    /// Who presents (None: nobody).
    pub fn presenter(&self, id: Option<&str>) {
        self.lock().presenter = id.map(str::to_string);
    }

    /// What the compose lays out.
    pub fn snapshot(&self) -> Snapshot {
        let inner = self.lock();
        Snapshot {
            remotes: inner.remotes.clone(),
            talking: inner.talking.clone(),
            pinned: inner.pinned.clone(),
            presenter: inner.presenter.clone(),
        }
    }

    /// Adds a taker of each participant's own audio; returns its key for [`Self::remove_voice_tap`].
    pub fn add_voice_tap(&self, tap: VoiceTap) -> u64 {
        let mut inner = self.lock();
        inner.next_tap += 1;
        let key = inner.next_tap;
        inner.voice_taps.push((key, tap));
        key
    }

    /// Removes a taker added by [`Self::add_voice_tap`].
    pub fn remove_voice_tap(&self, key: u64) {
        self.lock().voice_taps.retain(|(k, _)| *k != key);
    }

    /// A decoded video frame of participant `id`; never blocks.
    pub fn push_video(&self, id: &str, sample: &gst::Sample) {
        self.push(id, sample, true);
    }

    /// Some decoded audio of participant `id`; never blocks.
    pub fn push_audio(&self, id: &str, sample: &gst::Sample) {
        self.push(id, sample, false);
    }

    fn push(&self, id: &str, sample: &gst::Sample, video: bool) {
        if !self.is_open() {
            return;
        }
        let src = {
            let mut inner = self.lock();
            let r = inner.remote(id);
            if video {
                r.video = true;
            } else {
                r.audio = true;
            }
            let map = if video { &inner.video } else { &inner.audio };
            map.get(id).cloned()
        };
        let Some(src) = src else { return };
        if let Some(mut buffer) = sample.buffer_owned() {
            // Stamped again as it enters the capture pipeline: playback's times are of another
            // pipeline's clock. Video by the appsrc (do-timestamp), as it arrives; audio one
            // buffer after the last, so arrival jitter never makes gaps or overlaps the mixer
            // would drop.
            let pts = match video {
                true => None,
                false => match self.audio_pts(id, &src, sample) {
                    Some(t) => Some(t),
                    None => return,
                },
            };
            {
                let b = buffer.make_mut();
                b.set_pts(pts);
                b.set_dts(gst::ClockTime::NONE);
                if video {
                    b.set_duration(gst::ClockTime::NONE);
                }
            }
            if let Some(caps) = sample.caps_owned() {
                if src.caps().as_ref() != Some(&caps) {
                    src.set_caps(Some(&caps));
                }
            }
            if !video {
                let taps: Vec<VoiceTap> = self
                    .lock()
                    .voice_taps
                    .iter()
                    .map(|(_, t)| t.clone())
                    .collect();
                if !taps.is_empty() {
                    let mut b = gst::Sample::builder().buffer(&buffer);
                    let caps = sample.caps_owned();
                    if let Some(caps) = caps.as_ref() {
                        b = b.caps(caps);
                    }
                    let stamped = b.build();
                    for tap in taps {
                        tap(id, &stamped);
                    }
                }
            }
            // Leaky: a full appsrc drops its oldest buffer, and the push returns at once.
            let _ = src.push_buffer(buffer);
        }
    }

    /// The running time of `sample`, a piece of participant `id`'s audio, in the pipeline of
    /// `src`: right after their previous piece, unless that drifted more than [`RESYNC`] from
    /// now (a pause, a loss), then now. None while `src` has no clock (not playing yet).
    fn audio_pts(
        &self,
        id: &str,
        src: &gst_app::AppSrc,
        sample: &gst::Sample,
    ) -> Option<gst::ClockTime> {
        use gstreamer::prelude::*;
        let now = src.clock()?.time().checked_sub(src.base_time()?)?;
        let length = sample.buffer()?.duration().or_else(|| {
            // The taps give S16LE (`room::playback`): two bytes a sample.
            let st = sample.caps()?.structure(0)?;
            let rate = st.get::<i32>("rate").ok()?.max(1) as u64;
            let channels = st.get::<i32>("channels").unwrap_or(1).max(1) as u64;
            let frames = sample.buffer()?.size() as u64 / (2 * channels);
            gst::ClockTime::SECOND.mul_div_floor(frames, rate)
        })?;
        let mut inner = self.lock();
        let next = inner.audio_next.get(id).copied();
        let pts = match next {
            Some(n) if n.nseconds().abs_diff(now.nseconds()) < RESYNC.as_nanos() as u64 => n,
            _ => now,
        };
        inner.audio_next.insert(id.to_string(), pts + length);
        Some(pts)
    }

    /// The compose's inputs for participant `id` (None: removed).
    pub(crate) fn set_input(&self, id: &str, video: bool, src: Option<gst_app::AppSrc>) {
        let mut inner = self.lock();
        let map = if video {
            &mut inner.video
        } else {
            &mut inner.audio
        };
        match src {
            Some(s) => {
                map.insert(id.to_string(), s);
            }
            None => {
                map.remove(id);
            }
        }
        inner.audio_next.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hub_keeps_names_order_and_talkers() {
        let hub = MeetingHub::default();
        hub.joined("a", "Ana");
        hub.joined("b", "");
        hub.talking("a", true);
        hub.talking("b", true);
        hub.talking("a", false);
        let s = hub.snapshot();
        let names: Vec<&str> = s.remotes.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["Ana", "b"], "an empty name leaves the id");
        assert_eq!(s.talking, ["b"]);
        hub.joined(&share_id("b"), "");
        hub.pin(Some("b"));
        hub.left("b");
        let s = hub.snapshot();
        assert_eq!(s.remotes.len(), 1, "their share left with them");
        assert_eq!(share_owner("b#share"), Some("b"));
        assert_eq!(share_owner("b"), None);
        assert!(s.talking.is_empty() && s.pinned.is_none());
    }

    #[test]
    fn a_closed_hub_notes_nothing_and_closing_forgets_what_arrived() {
        gst::init().unwrap();
        let hub = MeetingHub::default();
        hub.joined("a", "Ana");
        let sample = gst::Sample::builder().buffer(&gst::Buffer::new()).build();
        hub.push_video("a", &sample);
        assert!(!hub.snapshot().remotes[0].video, "closed: nothing noted");
        hub.set_open(true);
        hub.push_video("a", &sample);
        hub.push_audio("x", &sample);
        let s = hub.snapshot();
        assert!(s.remotes[0].video && !s.remotes[0].audio);
        assert_eq!(
            s.remotes[1].id, "x",
            "audio from someone unannounced adds them"
        );
        assert!(s.remotes[1].audio);
        hub.set_open(false);
        assert!(hub.snapshot().remotes.iter().all(|r| !r.video && !r.audio));
    }

    #[test]
    fn a_voice_tap_gets_each_participants_audio_as_stamped_for_the_mix() {
        gst::init().unwrap();
        use gstreamer::prelude::*;
        let hub = MeetingHub::default();
        let pipeline = gst::Pipeline::new();
        let src = gst_app::AppSrc::builder()
            .format(gst::Format::Time)
            .is_live(true)
            .build();
        let sink = crate::media::element::make("fakesink").unwrap();
        sink.set_property("async", false);
        pipeline.add_many([src.upcast_ref(), &sink]).unwrap();
        src.link(&sink).unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let _ = pipeline.state(gst::ClockTime::from_seconds(5));
        hub.set_open(true);
        hub.set_input("a", false, Some(src.clone()));
        let got: Arc<Mutex<Vec<(String, gst::ClockTime)>>> = Arc::default();
        let g = got.clone();
        let key = hub.add_voice_tap(Arc::new(move |id: &str, s: &gst::Sample| {
            let pts = s.buffer().and_then(|b| b.pts()).unwrap();
            g.lock().unwrap().push((id.to_string(), pts));
        }));
        // 20 ms of S16LE mono at 48 kHz, twice; and some from someone with no input.
        let caps = gst::Caps::builder("audio/x-raw")
            .field("format", "S16LE")
            .field("rate", 48_000i32)
            .field("channels", 1i32)
            .build();
        let piece = gst::Sample::builder()
            .buffer(&gst::Buffer::from_mut_slice(vec![0u8; 1920]))
            .caps(&caps)
            .build();
        hub.push_audio("a", &piece);
        hub.push_audio("a", &piece);
        hub.push_audio("b", &piece);
        hub.remove_voice_tap(key);
        hub.push_audio("a", &piece);
        let got = got.lock().unwrap().clone();
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got.iter().all(|(id, _)| id == "a"));
        assert_eq!(
            got[1].1 - got[0].1,
            gst::ClockTime::from_mseconds(20),
            "one piece right after the other"
        );
        pipeline.set_state(gst::State::Null).unwrap();
    }
}
