//! A meeting recording's per-participant audio tracks, so that its transcript can say who spoke.
//!
//! A Matroska recording of the meeting (`source = "meeting"`, `format = "mkv"`) holds the mix as
//! its first audio track, then the box's own processed mic, then one Opus track for each remote
//! participant in the room when the recording starts. Each track's stream tags carry the
//! participant's display name (`title`) and id (`comment`, `participantId=...`); matroskamux
//! writes them as the track's Matroska tags and matroskademux reads them back.
//!
//! The tracks are fixed for the whole recording: matroskamux takes no new track once its header
//! is written, and splitmuxsink keeps its pads across segments. A participant who joins later is
//! heard in the mix only (until the recording is started again); one who leaves or is silent
//! keeps a track of silence, filled in on the mix's timeline so the track stays continuous and
//! the muxer, which waits for every track, never stalls on it.
//!
//! The reading side, [`read_voices`], decodes each participant's track of a segment apart.

use super::consumer::{FeedSink, Pushed};
use super::element::{make, set};
use super::error::{MediaError, Result};
use super::meeting::MeetingHub;
use super::recorder::rebase;
use super::sink::AppSrcSink;
use crate::sync::lock;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The mix's track title.
pub const MIX_TITLE: &str = "mix";
/// How a participant track's comment tag starts; the participant id follows.
pub const ID_PREFIX: &str = "participantId=";
/// How far behind the mix the silence of a quiet participant is filled in: more than the hub
/// lets their audio drift (`meeting::RESYNC`), so real audio never lands on filled silence.
const LAG: Duration = Duration::from_millis(300);
/// Silence is pushed in pieces of at most this.
const PIECE: Duration = Duration::from_millis(100);
/// What a track's silence is until the participant's own audio says otherwise.
const RATE: i32 = 48_000;

/// Who gets a track of their own in a recording.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrackPlan {
    /// The box itself: its participant id and display name (its processed mic's track).
    pub local: Option<(String, String)>,
    /// Remote participants in the room when the recording starts: id and display name.
    pub remotes: Vec<(String, String)>,
}

/// Tags the stream leaving `pad` with a track title and, for a participant, their id; sent
/// before the first buffer.
pub fn tag_stream(pad: &gst::Pad, title: &str, participant: Option<&str>) {
    let mut tags = gst::TagList::new();
    {
        let t = tags.make_mut();
        t.add::<gst::tags::Title>(&title, gst::TagMergeMode::Replace);
        if let Some(id) = participant {
            let comment = format!("{ID_PREFIX}{id}");
            t.add::<gst::tags::Comment>(&comment.as_str(), gst::TagMergeMode::Replace);
        }
    }
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, _| {
        pad.push_event(gst::event::Tag::new(tags.clone()));
        gst::PadProbeReturn::Remove
    });
}

/// Tags the stream of a track fed by `appsrc` (appsrc → parser → muxer) at the parser's output.
pub fn tag_after(appsrc: &gst_app::AppSrc, title: &str, participant: Option<&str>) {
    let pad = appsrc
        .static_pad("src")
        .and_then(|p| p.peer())
        .and_then(|p| p.parent_element())
        .and_then(|parser| parser.static_pad("src"));
    match pad {
        Some(pad) => tag_stream(&pad, title, participant),
        None => tracing::warn!("recorder: the {title} track cannot be named"),
    }
}

struct Track {
    sink: AppSrcSink,
    /// Where the track's next piece starts, in the capture's running time.
    next: Option<gst::ClockTime>,
    caps: gst::Caps,
}

/// The remote participants' tracks of a running recording: the hub's audio of each goes to
/// their track, and [`VoiceTracks::advance`] fills silence in.
pub struct VoiceTracks {
    hub: MeetingHub,
    key: u64,
    tracks: Arc<Mutex<HashMap<String, Track>>>,
    base: Arc<Mutex<Option<gst::ClockTime>>>,
    /// The tracks' sources, ended with the recording.
    pub sources: Vec<gst_app::AppSrc>,
}

impl VoiceTracks {
    /// Adds `appsrc → audioconvert → audioresample → opusenc` on a new audio pad of `split` for
    /// each of `remotes`, and takes their audio from `hub`. `base` is the recording's origin
    /// (see [`rebase`]); `has_video` as there.
    pub fn build(
        pipeline: &gst::Pipeline,
        split: &gst::Element,
        remotes: &[(String, String)],
        hub: MeetingHub,
        base: Arc<Mutex<Option<gst::ClockTime>>>,
        has_video: bool,
    ) -> Result<VoiceTracks> {
        let what = "a participant's track";
        let mut tracks = HashMap::new();
        let mut sources = Vec::new();
        for (id, name) in remotes {
            let src = AppSrcSink::appsrc(4 << 20)?;
            let caps = make("capsfilter")?;
            caps.set_property(
                "caps",
                gst::Caps::builder("audio/x-raw")
                    .field("rate", RATE)
                    .field("channels", 1i32)
                    .build(),
            );
            let enc = make("opusenc")?;
            set(&enc, "bitrate", "32000")?;
            let chain = [
                src.clone().upcast(),
                make("audioconvert")?,
                make("audioresample")?,
                caps,
                enc.clone(),
            ];
            pipeline
                .add_many(&chain)
                .map_err(|e| MediaError::link(what, e))?;
            gst::Element::link_many(&chain).map_err(|e| MediaError::link(what, e))?;
            let pad = split
                .request_pad_simple("audio_%u")
                .ok_or_else(|| MediaError::link(what, "splitmuxsink gave no audio pad"))?;
            let enc_src = enc
                .static_pad("src")
                .ok_or_else(|| MediaError::link(what, "opusenc has no pad"))?;
            enc_src.link(&pad).map_err(|e| MediaError::link(what, e))?;
            tag_stream(&enc_src, name, Some(id));
            let b = base.clone();
            let sink = AppSrcSink::with_map(src.clone(), move |s| rebase(s, &b, false, has_video));
            tracks.insert(
                id.clone(),
                Track {
                    sink,
                    next: None,
                    caps: raw_caps(RATE, 1),
                },
            );
            sources.push(src);
        }
        let tracks = Arc::new(Mutex::new(tracks));
        let t = tracks.clone();
        let b = base.clone();
        let key = hub.add_voice_tap(Arc::new(move |id: &str, sample: &gst::Sample| {
            let origin = lock(&b).as_ref().copied();
            if let Some(track) = lock(&t).get_mut(id) {
                track.take(sample, origin);
            }
        }));
        Ok(VoiceTracks {
            hub,
            key,
            tracks,
            base,
            sources,
        })
    }

    /// The mix reached running time `now` on the capture's clock: every track is filled with
    /// silence up to a little before it.
    pub fn advance(&self, now: gst::ClockTime) {
        let Some(origin) = *lock(&self.base) else {
            return;
        };
        let Some(upto) = now.checked_sub(gst::ClockTime::from_nseconds(LAG.as_nanos() as u64))
        else {
            return;
        };
        for track in lock(&self.tracks).values_mut() {
            track.fill(upto, origin);
        }
    }
}

impl Drop for VoiceTracks {
    fn drop(&mut self) {
        self.hub.remove_voice_tap(self.key);
    }
}

impl Track {
    /// A piece of the participant's audio (stamped in the capture's running time), placed
    /// right after what the track holds.
    fn take(&mut self, sample: &gst::Sample, origin: Option<gst::ClockTime>) {
        let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps()) else {
            return;
        };
        let (Some(pts), Some(origin)) = (buffer.pts(), origin) else {
            return;
        };
        if caps.structure(0).and_then(|s| s.get::<&str>("format").ok()) != Some("S16LE") {
            return;
        }
        self.caps = caps.to_owned();
        self.fill(pts, origin);
        let pts = self.next.map_or(pts, |n| n.max(pts));
        let length = length_of(&self.caps, buffer.size());
        let mut b = buffer.copy();
        {
            let b = b.make_mut();
            b.set_pts(pts);
            b.set_duration(length);
        }
        self.push(b);
        self.next = Some(pts + length);
    }

    /// Silence from where the track is up to `upto` (from `origin` for a track still empty).
    fn fill(&mut self, upto: gst::ClockTime, origin: gst::ClockTime) {
        let mut next = self.next.unwrap_or(origin);
        let (rate, channels) = rate_channels(&self.caps);
        while next < upto {
            let len = (upto - next).min(gst::ClockTime::from_nseconds(PIECE.as_nanos() as u64));
            let frames = len.nseconds() * rate / 1_000_000_000;
            if frames == 0 {
                break;
            }
            let length = gst::ClockTime::SECOND
                .mul_div_floor(frames, rate)
                .unwrap_or(len);
            let mut b = gst::Buffer::from_mut_slice(vec![0u8; (frames * 2 * channels) as usize]);
            {
                let b = b.make_mut();
                b.set_pts(next);
                b.set_duration(length);
            }
            if !self.push(b) {
                break;
            }
            next += length;
        }
        self.next = Some(next);
    }

    fn push(&self, buffer: gst::Buffer) -> bool {
        let sample = gst::Sample::builder()
            .buffer(&buffer)
            .caps(&self.caps)
            .build();
        self.sink.push(&sample) == Pushed::Ok
    }
}

fn raw_caps(rate: i32, channels: i32) -> gst::Caps {
    super::element::s16_caps(rate.max(1) as u32, channels.max(1) as u32)
}

fn rate_channels(caps: &gst::Caps) -> (u64, u64) {
    let s = caps.structure(0);
    let get = |f: &str, d: i32| s.and_then(|s| s.get::<i32>(f).ok()).unwrap_or(d).max(1) as u64;
    (get("rate", RATE), get("channels", 1))
}

/// How long `bytes` of S16LE audio of `caps` last.
fn length_of(caps: &gst::Caps, bytes: usize) -> gst::ClockTime {
    let (rate, channels) = rate_channels(caps);
    gst::ClockTime::SECOND
        .mul_div_floor(bytes as u64 / (2 * channels), rate)
        .unwrap_or(gst::ClockTime::ZERO)
}

/// One participant's track of a recording, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Voice {
    /// Participant id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// S16LE mono at the rate asked for, from the segment's start (silence where the track
    /// had nothing).
    pub pcm: Vec<u8>,
}

/// Reads the participant tracks of the recording at `path`, each decoded apart to S16LE mono at
/// `rate`; empty when it has none (a recording of the room, an MP4).
pub fn read_voices(path: &Path, rate: u32) -> Result<Vec<Voice>> {
    super::tracks_read::read(path, rate)
}

/// The participant a track's tags name (id, name), if any.
pub fn participant_of(tags: &gst::TagListRef) -> Option<(String, String)> {
    let id = tags
        .iter_tag::<gst::tags::Comment>()
        .find_map(|c| c.get().strip_prefix(ID_PREFIX).map(str::to_string))?;
    let name = tags
        .get::<gst::tags::Title>()
        .map(|t| t.get().to_string())
        .unwrap_or_else(|| id.clone());
    Some((id, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 100 ms pieces of a 440 Hz tone, S16LE mono at 48 kHz, from `from` for `n` pieces.
    fn tone(from: gst::ClockTime, n: u64) -> Vec<gst::Sample> {
        (0..n)
            .map(|k| {
                let frames = 4800u64;
                let data: Vec<u8> = (0..frames)
                    .flat_map(|i| {
                        let t = (k * frames + i) as f64 / 48_000.0;
                        let v = (0.5 * (t * 440.0 * std::f64::consts::TAU).sin() * 32767.0) as i16;
                        v.to_le_bytes()
                    })
                    .collect();
                let mut b = gst::Buffer::from_mut_slice(data);
                b.make_mut()
                    .set_pts(from + gst::ClockTime::from_mseconds(100 * k));
                gst::Sample::builder()
                    .buffer(&b)
                    .caps(&raw_caps(48_000, 1))
                    .build()
            })
            .collect()
    }

    fn rms(pcm: &[u8]) -> f64 {
        let n = (pcm.len() / 2).max(1) as f64;
        let sum: f64 = pcm
            .chunks_exact(2)
            .map(|s| f64::from(i16::from_le_bytes([s[0], s[1]])).powi(2))
            .sum();
        (sum / n).sqrt()
    }

    #[test]
    fn a_participant_track_is_named_in_every_segment_continuous_and_read_back_in_place() {
        gst::init().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let pipeline = gst::Pipeline::new();
        // As the recorder writes: splitmuxsink with matroskamux, here 3 s segments.
        let split = make("splitmuxsink").unwrap();
        split.set_property("muxer", make("matroskamux").unwrap());
        split.set_property("max-size-time", 3_000_000_000u64);
        let pattern = dir.path().join("t%02d.mkv");
        split.set_property("location", pattern.to_str().unwrap());
        pipeline.add(&split).unwrap();
        let base = Arc::new(Mutex::new(Some(gst::ClockTime::ZERO)));
        let hub = MeetingHub::default();
        let remotes = [("p-ana".to_string(), "Ana".to_string())];
        let voices = VoiceTracks::build(&pipeline, &split, &remotes, hub, base, false).unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        // Ana is quiet for 2 s (the mix's timeline fills it), speaks for 1 s, and is quiet
        // again until 4 s.
        voices.advance(gst::ClockTime::from_seconds(2));
        {
            let mut tracks = lock(&voices.tracks);
            let ana = tracks.get_mut("p-ana").unwrap();
            for s in tone(gst::ClockTime::from_seconds(2), 10) {
                ana.take(&s, Some(gst::ClockTime::ZERO));
            }
        }
        let lag = gst::ClockTime::from_nseconds(LAG.as_nanos() as u64);
        voices.advance(gst::ClockTime::from_seconds(4) + lag);
        for src in &voices.sources {
            src.end_of_stream().unwrap();
        }
        let bus = pipeline.bus().unwrap();
        let msg = bus
            .timed_pop_filtered(
                gst::ClockTime::from_seconds(10),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            )
            .expect("the files are finished");
        assert!(matches!(msg.view(), gst::MessageView::Eos(_)), "{msg:?}");
        pipeline.set_state(gst::State::Null).unwrap();
        drop(voices);

        let read = |n: u32| read_voices(&dir.path().join(format!("t{n:02}.mkv")), 16_000).unwrap();
        let (first, second) = (read(0), read(1));
        for segment in [&first, &second] {
            assert_eq!(segment.len(), 1);
            assert_eq!(
                (segment[0].id.as_str(), segment[0].name.as_str()),
                ("p-ana", "Ana")
            );
        }
        let ana = &first[0].pcm;
        let secs = |pcm: &[u8]| pcm.len() as f64 / 32_000.0;
        assert!((2.9..=3.1).contains(&secs(ana)), "{} s", secs(ana));
        assert!(
            (0.9..=1.1).contains(&secs(&second[0].pcm)),
            "{} s",
            secs(&second[0].pcm)
        );
        let at = |a: f64, b: f64| rms(&ana[(a * 32_000.0) as usize..(b * 32_000.0) as usize]);
        assert!(at(0.1, 1.8) < 50.0, "silence before: {}", at(0.1, 1.8));
        assert!(
            at(2.2, 2.8) > 5_000.0,
            "the tone in place: {}",
            at(2.2, 2.8)
        );
        assert!(rms(&second[0].pcm) < 50.0, "silence after");
    }

    #[test]
    fn a_file_that_is_no_recording_is_an_error_and_one_without_tracks_has_no_voices() {
        gst::init().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.mkv");
        std::fs::write(&junk, b"not matroska".repeat(100)).unwrap();
        assert!(read_voices(&junk, 16_000).is_err());
        assert!(read_voices(&dir.path().join("missing.mkv"), 16_000).is_err());
        // A mix alone (a recording of the room): no participant's track.
        let mix = dir.path().join("mix.mkv");
        let line = format!(
            "audiotestsrc num-buffers=20 ! opusenc ! matroskamux ! filesink location={}",
            mix.display()
        );
        let p = gst::parse::launch(&line).unwrap();
        p.set_state(gst::State::Playing).unwrap();
        let bus = p.bus().unwrap();
        bus.timed_pop_filtered(gst::ClockTime::from_seconds(10), &[gst::MessageType::Eos])
            .expect("written");
        p.set_state(gst::State::Null).unwrap();
        assert!(read_voices(&mix, 16_000).unwrap().is_empty());
    }
}
