//! Cuts the shared encode into low-latency HLS parts and segments: pure, no GStreamer.
//!
//! Video drives the cuts when there is video: a part closes once it holds its target duration,
//! and a segment closes at the first keyframe once it holds its own (the segmenter asks for
//! that keyframe a little ahead). Audio frames go into the part their time falls in. Without
//! video, audio drives the cuts and every part is independent.

use super::fmp4::{fragment, Fmp4Error, Run, Sample, VIDEO_TIMESCALE};
use std::collections::VecDeque;
use std::time::Duration;

/// AAC-LC samples per frame.
const AAC_FRAME: u32 = 1024;
/// A segment without a keyframe is cut at this many times the segment length.
const MAX_SEGMENTS_LONG: u64 = 3;
/// Audio frames kept while video is late, at most (10 s at 48 kHz).
const MAX_AUDIO_BACKLOG: usize = 470;

/// A video access unit: times in ns from the stream's origin, data length-prefixed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoIn {
    /// Presentation time.
    pub pts: u64,
    /// Decode time.
    pub dts: u64,
    /// True for a keyframe.
    pub key: bool,
    /// Length-prefixed NAL units.
    pub data: Vec<u8>,
}

/// An AAC frame: its time in ns from the stream's origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioIn {
    /// Presentation time.
    pub pts: u64,
    /// The raw frame.
    pub data: Vec<u8>,
}

/// A finished part.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// The media sequence number of its segment.
    pub msn: u64,
    /// Its index in the segment, from 0.
    pub index: u32,
    /// Its start in seconds from the stream's origin.
    pub start: f64,
    /// Its duration in seconds.
    pub duration: f64,
    /// True when it starts with a keyframe (or is audio only).
    pub independent: bool,
    /// True when it is the last part of its segment.
    pub ends_segment: bool,
    /// The fragment: `moof` + `mdat`.
    pub bytes: Vec<u8>,
}

#[derive(Debug)]
pub struct Segmenter {
    /// Part target, ns.
    part: u64,
    /// Segment target, ns.
    segment: u64,
    /// The video track's id, when there is video.
    video: Option<u32>,
    /// The audio track's id and sample rate, when there is audio.
    audio: Option<(u32, u32)>,
    /// Video of the open part.
    vq: Vec<VideoIn>,
    /// Audio not yet in a part.
    aq: VecDeque<AudioIn>,
    /// The open part's start, ns; `None` between parts.
    part_start: Option<u64>,
    /// Whether the open part starts with a keyframe.
    part_independent: bool,
    /// The open segment's start, ns.
    seg_start: u64,
    /// The open segment's media sequence number.
    msn: u64,
    /// The open part's index in its segment.
    index: u32,
    /// The next fragment's sequence number.
    seq: u32,
    /// The latest interval between two frames of the driving track, ns.
    frame: u64,
    /// The driving track's latest time, ns.
    last: Option<u64>,
    /// When this segment's keyframe was last asked for, ns.
    asked: Option<u64>,
    /// The next keyframe ends the open segment, however short (a new picture format starts
    /// there).
    break_at_key: bool,
}

/// What a pushed sample led to.
#[derive(Debug, Default)]
pub struct Pushed {
    /// A part that closed.
    pub part: Option<Part>,
    /// True when the encoder should make a keyframe now, for the next segment.
    pub want_keyframe: bool,
}

fn ticks(ns: u64, timescale: u32) -> u64 {
    (ns as u128 * timescale as u128 / 1_000_000_000) as u64
}

impl Segmenter {
    /// A segmenter for the tracks present (`audio` is the sample rate).
    pub fn new(part: Duration, segment: Duration, video: bool, audio: Option<u32>) -> Segmenter {
        let video_id = video.then_some(1);
        Segmenter {
            part: part.as_nanos() as u64,
            segment: segment.as_nanos() as u64,
            video: video_id,
            audio: audio.map(|rate| (if video { 2 } else { 1 }, rate.max(1))),
            vq: Vec::new(),
            aq: VecDeque::new(),
            part_start: None,
            part_independent: false,
            seg_start: 0,
            msn: 0,
            index: 0,
            seq: 1,
            frame: if video { 33_333_333 } else { 21_333_333 },
            last: None,
            asked: None,
            break_at_key: false,
        }
    }

    /// Ends the open segment at the next keyframe, however short it is: the stream's picture
    /// format changes there, and a segment holds one format.
    pub fn break_at_next_keyframe(&mut self) {
        self.break_at_key = true;
    }

    /// The part that opens next, as (media sequence number, index): the preload hint.
    pub fn next_part(&self) -> (u64, u32) {
        (self.msn, self.index)
    }

    /// Sets the audio track's sample rate (from its caps).
    pub fn set_audio_rate(&mut self, rate: u32) {
        if let Some((_, r)) = self.audio.as_mut() {
            *r = rate.max(1);
        }
    }

    /// Drops the audio track (its setup never came).
    pub fn drop_audio(&mut self) {
        self.audio = None;
        self.aq.clear();
    }

    /// Decides whether a sample of the driving track at `t` closes the open part, and whether
    /// a keyframe `key` there closes the segment.
    fn cut(&mut self, t: u64, key: bool) -> Result<Option<Part>, Fmp4Error> {
        let Some(start) = self.part_start else {
            return Ok(None);
        };
        let seg_elapsed = t.saturating_sub(self.seg_start);
        // A segment starts at a keyframe. An encoder that never makes the one asked for still
        // gets its segments cut, at three times their length, so memory and the playlist stay
        // bounded; players then find a keyframe later in the segment.
        if (key && (self.break_at_key || seg_elapsed + self.part / 2 >= self.segment))
            || seg_elapsed + self.frame / 2 >= MAX_SEGMENTS_LONG * self.segment
        {
            if key {
                self.break_at_key = false;
            }
            return self.close(t, true).map(Some);
        }
        if t.saturating_sub(start) + self.frame / 2 >= self.part {
            return self.close(t, false).map(Some);
        }
        Ok(None)
    }

    /// Notes the driving track's sample at `t` and opens a part when none is open.
    fn open(&mut self, t: u64, independent: bool) -> bool {
        if let Some(last) = self.last {
            if t > last {
                self.frame = t - last;
            }
        }
        self.last = Some(t);
        if self.part_start.is_none() {
            self.part_start = Some(t);
            self.part_independent = independent;
            if self.index == 0 {
                self.seg_start = t;
            }
        }
        // Ask for the keyframe within two frames of the boundary, and again each segment length
        // while it does not come.
        let ask = match self.asked {
            None => t.saturating_sub(self.seg_start) + 2 * self.frame >= self.segment,
            Some(at) => t.saturating_sub(at) >= self.segment,
        };
        if ask {
            self.asked = Some(t);
        }
        ask
    }

    /// Takes a video access unit. The first must be a keyframe; the caller starts the stream
    /// there.
    pub fn push_video(&mut self, mut v: VideoIn) -> Result<Pushed, Fmp4Error> {
        if self.video.is_none() {
            return Ok(Pushed::default());
        }
        // Decode times only go forward. A switch between two encoders (the program's camera
        // and share) can hand over a frame stamped at or before the last one: it moves to just
        // after it.
        if let Some(last) = self.last.filter(|&l| v.dts <= l) {
            v.dts = last + 1_000_000;
            v.pts = v.pts.max(v.dts);
        }
        let part = self.cut(v.dts, v.key)?;
        let want_keyframe = self.open(v.dts, v.key);
        self.vq.push(v);
        Ok(Pushed {
            part,
            want_keyframe,
        })
    }

    /// Takes an AAC frame.
    pub fn push_audio(&mut self, a: AudioIn) -> Result<Pushed, Fmp4Error> {
        if self.audio.is_none() {
            return Ok(Pushed::default());
        }
        if self.video.is_some() {
            self.aq.push_back(a);
            while self.aq.len() > MAX_AUDIO_BACKLOG {
                self.aq.pop_front();
            }
            return Ok(Pushed::default());
        }
        let part = self.cut(a.pts, true)?;
        self.open(a.pts, true);
        self.aq.push_back(a);
        Ok(Pushed {
            part,
            want_keyframe: false,
        })
    }

    /// Closes the open part (and segment) at the end of the stream.
    pub fn finish(&mut self) -> Result<Option<Part>, Fmp4Error> {
        let (Some(_), Some(last)) = (self.part_start, self.last) else {
            return Ok(None);
        };
        self.close(last + self.frame, true).map(Some)
    }

    /// Closes the open part at `end` (ns): its video, and the audio before `end`.
    fn close(&mut self, end: u64, ends_segment: bool) -> Result<Part, Fmp4Error> {
        let start = self.part_start.take().unwrap_or(end);
        let mut runs_v = Vec::new();
        let mut video_time = 0;
        if let Some(_id) = self.video {
            let vq = std::mem::take(&mut self.vq);
            video_time = vq.first().map_or(0, |v| ticks(v.dts, VIDEO_TIMESCALE));
            for (i, v) in vq.iter().enumerate() {
                let next = vq.get(i + 1).map_or(end, |n| n.dts);
                let d = ticks(next, VIDEO_TIMESCALE).saturating_sub(ticks(v.dts, VIDEO_TIMESCALE));
                runs_v.push(Sample {
                    data: v.data.clone(),
                    duration: d as u32,
                    cts: (ticks(v.pts, VIDEO_TIMESCALE) as i64
                        - ticks(v.dts, VIDEO_TIMESCALE) as i64) as i32,
                    sync: v.key,
                });
            }
        }
        let mut runs_a = Vec::new();
        let mut audio_time = 0;
        if let Some((_, rate)) = self.audio {
            let mut taken = Vec::new();
            while self.aq.front().is_some_and(|a| a.pts < end) {
                taken.extend(self.aq.pop_front());
            }
            audio_time = taken.first().map_or(0, |a| ticks(a.pts, rate));
            for (i, a) in taken.iter().enumerate() {
                let next = taken.get(i + 1).or(self.aq.front());
                let d = match next {
                    Some(n) => ticks(n.pts, rate).saturating_sub(ticks(a.pts, rate)) as u32,
                    None => AAC_FRAME,
                };
                runs_a.push(Sample {
                    data: a.data.clone(),
                    duration: d,
                    cts: 0,
                    sync: true,
                });
            }
        }
        let mut runs = Vec::new();
        if let Some(id) = self.video {
            runs.push(Run {
                track_id: id,
                decode_time: video_time,
                samples: &runs_v,
            });
        }
        if let Some((id, _)) = self.audio {
            runs.push(Run {
                track_id: id,
                decode_time: audio_time,
                samples: &runs_a,
            });
        }
        let bytes = fragment(self.seq, &runs)?;
        self.seq += 1;
        let part = Part {
            msn: self.msn,
            index: self.index,
            start: start as f64 / 1e9,
            duration: end.saturating_sub(start) as f64 / 1e9,
            independent: self.part_independent,
            ends_segment,
            bytes,
        };
        if ends_segment {
            self.msn += 1;
            self.index = 0;
            self.asked = None;
        } else {
            self.index += 1;
        }
        Ok(part)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mp4_atom::{Decode, Moof};

    const MS: u64 = 1_000_000;

    fn video(seg: &mut Segmenter, n: u64, key_every: u64) -> (Vec<Part>, Vec<u64>) {
        let mut parts = Vec::new();
        let mut asked = Vec::new();
        for i in 0..n {
            let t = i * 100 * MS / 3;
            if i % 3 == 0 {
                for k in 0..2 {
                    let at = t + k * 16 * MS;
                    seg.push_audio(AudioIn {
                        pts: at,
                        data: vec![7; 3],
                    })
                    .expect("audio");
                }
            }
            let p = seg
                .push_video(VideoIn {
                    pts: t,
                    dts: t,
                    key: i % key_every == 0,
                    data: vec![1, 2, 3],
                })
                .expect("video");
            if p.want_keyframe {
                asked.push(i);
            }
            parts.extend(p.part);
        }
        (parts, asked)
    }

    #[test]
    fn parts_hold_their_target_and_segments_start_at_keyframes() {
        // 30 fps, a keyframe each second: 200 ms parts, 1 s segments of 5 parts.
        let mut seg = Segmenter::new(
            Duration::from_millis(200),
            Duration::from_secs(1),
            true,
            Some(48000),
        );
        let (parts, _) = video(&mut seg, 91, 30);
        assert_eq!(parts.len(), 15, "{parts:?}");
        for p in &parts {
            assert!((p.duration - 0.2).abs() < 0.001, "{p:?}");
            assert_eq!(p.independent, p.index == 0);
            assert_eq!(p.ends_segment, p.index == 4);
        }
        assert_eq!(parts.last().map(|p| (p.msn, p.index)), Some((2, 4)));
        assert_eq!(seg.next_part(), (3, 0));
        // Each fragment carries six frames and the audio of its time, numbered in order.
        let moof = Moof::decode(&mut std::io::Cursor::new(&parts[6].bytes)).expect("moof");
        assert_eq!(moof.mfhd.sequence_number, 7);
        assert_eq!(moof.traf[0].trun[0].samples.len(), 6);
        assert_eq!(moof.traf[1].trun[0].samples.len(), 4);
        let tfdt = |t: usize| moof.traf[t].tfdt.as_ref().map(|d| d.base_media_decode_time);
        assert_eq!(tfdt(0), Some(18_000 * 6));
        assert_eq!(tfdt(1), Some(9_600 * 6));
    }

    #[test]
    fn a_break_ends_the_segment_at_the_next_keyframe_however_short() {
        let mut seg = Segmenter::new(
            Duration::from_millis(200),
            Duration::from_secs(1),
            true,
            None,
        );
        // Frames 0..10 (a keyframe at 0), then the break asked: frame 10 is not a keyframe,
        // so the segment goes on until 12, the next keyframe, and ends there at 400 ms.
        let push = |seg: &mut Segmenter, i: u64, key: bool| {
            let t = i * 100 * MS / 3;
            seg.push_video(VideoIn {
                pts: t,
                dts: t,
                key,
                data: vec![1],
            })
            .expect("video")
            .part
        };
        let mut parts = Vec::new();
        for i in 0..10 {
            parts.extend(push(&mut seg, i, i == 0));
        }
        seg.break_at_next_keyframe();
        parts.extend(push(&mut seg, 10, false));
        parts.extend(push(&mut seg, 11, false));
        assert!(parts.iter().all(|p| !p.ends_segment), "{parts:?}");
        let end = push(&mut seg, 12, true).expect("the keyframe closes the part");
        assert!(end.ends_segment && end.msn == 0, "{end:?}");
        assert_eq!(seg.next_part(), (1, 0));
        // A frame of the other encoder stamped before the last one moves just after it.
        let back = seg
            .push_video(VideoIn {
                pts: 12 * 100 * MS / 3 - 5 * MS,
                dts: 12 * 100 * MS / 3 - 5 * MS,
                key: false,
                data: vec![1],
            })
            .expect("a frame stamped back in time is taken");
        assert!(back.part.is_none());
        // The break was used up: the next keyframe 300 ms later does not cut again.
        for i in 13..22 {
            let p = push(&mut seg, i, i == 21);
            assert!(p.is_none_or(|p| !p.ends_segment));
        }
    }

    #[test]
    fn the_keyframe_is_asked_for_ahead_of_each_segment_and_a_late_one_lengthens_it() {
        // Keyframes only every 2 s: the segmenter asks near 1 s, and again a second later
        // while none comes; the segment waits for the keyframe.
        let mut seg = Segmenter::new(
            Duration::from_millis(200),
            Duration::from_secs(1),
            true,
            None,
        );
        let (parts, asked) = video(&mut seg, 121, 60);
        assert_eq!(asked, vec![29, 59, 89, 119], "asked at frames");
        let ends: Vec<_> = parts.iter().filter(|p| p.ends_segment).collect();
        assert_eq!(ends.len(), 2);
        let per_segment: f64 = parts
            .iter()
            .filter(|p| p.msn == 0)
            .map(|p| p.duration)
            .sum();
        assert!((per_segment - 2.0).abs() < 0.001, "{per_segment}");
    }

    #[test]
    fn without_any_keyframe_segments_are_still_cut_at_three_times_their_length() {
        let mut seg = Segmenter::new(
            Duration::from_millis(200),
            Duration::from_secs(1),
            true,
            None,
        );
        // One keyframe at the start, then none for 10 s.
        let (parts, asked) = video(&mut seg, 301, 1_000_000);
        let ends: Vec<_> = parts.iter().filter(|p| p.ends_segment).collect();
        assert_eq!(ends.len(), 3, "{ends:?}");
        let first: f64 = parts
            .iter()
            .filter(|p| p.msn == 0)
            .map(|p| p.duration)
            .sum();
        assert!((first - 3.0).abs() < 0.001, "{first}");
        assert!(asked.len() >= 9, "asked again each second: {asked:?}");
        assert!(parts.iter().filter(|p| p.msn > 0).all(|p| !p.independent));
    }

    #[test]
    fn audio_alone_drives_the_cuts_and_every_part_is_independent() {
        let mut seg = Segmenter::new(
            Duration::from_millis(200),
            Duration::from_secs(1),
            false,
            Some(48000),
        );
        let mut parts = Vec::new();
        for i in 0..200u64 {
            let p = seg
                .push_audio(AudioIn {
                    pts: i * 64 * MS / 3,
                    data: vec![1],
                })
                .expect("audio");
            parts.extend(p.part);
        }
        parts.extend(seg.finish().expect("finish"));
        assert!(parts.len() >= 20, "{}", parts.len());
        assert!(parts.iter().all(|p| p.independent));
        assert!(parts.last().is_some_and(|p| p.ends_segment));
        let segments = parts.iter().filter(|p| p.ends_segment).count();
        assert!((4..=5).contains(&segments), "{segments}");
    }
}
