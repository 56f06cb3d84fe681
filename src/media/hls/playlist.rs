//! The low-latency HLS media playlist: pure, so its text is tested without media.
//!
//! Names: `init.mp4` (and `init{k}.mp4` after the k-th change of the picture's format, each
//! behind an `#EXT-X-DISCONTINUITY`), `seg{msn}.m4s` for a complete segment,
//! `part{msn}.{index}.m4s` for a part. Parts are listed for the open segment and the two before it (the spec lets a server
//! drop parts older than three target durations).

use std::fmt::Write;
use std::time::SystemTime;

/// The playlist's file name.
pub const PLAYLIST: &str = "index.m3u8";
/// The init segment's file name.
pub const INIT: &str = "init.mp4";
/// Complete segments whose parts are still listed.
const SEGMENTS_WITH_PARTS: usize = 2;

/// A part as the playlist lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct PartEntry {
    /// Duration, seconds.
    pub duration: f64,
    /// Starts with a keyframe.
    pub independent: bool,
}

/// A segment as the playlist lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentEntry {
    /// Its media sequence number.
    pub msn: u64,
    /// Its parts so far.
    pub parts: Vec<PartEntry>,
    /// When its first frame was captured (wall clock).
    pub date: Option<SystemTime>,
    /// Its init segment: 0 for `init.mp4`, k for `init{k}.mp4`. A segment whose init differs
    /// from the one before follows a discontinuity.
    pub init: u32,
}

impl SegmentEntry {
    /// Its duration, seconds: the sum of its parts.
    pub fn duration(&self) -> f64 {
        self.parts.iter().map(|p| p.duration).sum()
    }
}

/// An init segment's file name: `init.mp4`, then `init{k}.mp4`.
pub fn init_name(k: u32) -> String {
    if k == 0 {
        INIT.to_string()
    } else {
        format!("init{k}.mp4")
    }
}

/// A segment's file name.
pub fn segment_name(msn: u64) -> String {
    format!("seg{msn}.m4s")
}

/// A part's file name.
pub fn part_name(msn: u64, index: u32) -> String {
    format!("part{msn}.{index}.m4s")
}

/// What a file name of the HLS directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HlsFile {
    Playlist,
    /// An init segment (0 for `init.mp4`).
    Init(u32),
    /// A complete segment.
    Segment(u64),
    /// A part of a segment.
    Part(u64, u32),
}

/// Parses a name this consumer writes; anything else is `None`, so a server refuses it.
pub fn parse_name(name: &str) -> Option<HlsFile> {
    let digits = |s: &str| !s.is_empty() && s.len() <= 12 && s.bytes().all(|b| b.is_ascii_digit());
    match name {
        PLAYLIST => return Some(HlsFile::Playlist),
        INIT => return Some(HlsFile::Init(0)),
        _ => {}
    }
    if let Some(k) = name
        .strip_prefix("init")
        .and_then(|s| s.strip_suffix(".mp4"))
    {
        let k: u32 = (digits(k) && !k.starts_with('0'))
            .then(|| k.parse().ok())
            .flatten()?;
        return Some(HlsFile::Init(k));
    }
    if let Some(n) = name
        .strip_prefix("seg")
        .and_then(|s| s.strip_suffix(".m4s"))
    {
        return digits(n).then(|| n.parse().ok().map(HlsFile::Segment))?;
    }
    let (m, i) = name
        .strip_prefix("part")?
        .strip_suffix(".m4s")?
        .split_once('.')?;
    (digits(m) && digits(i) && i.len() <= 4)
        .then(|| Some(HlsFile::Part(m.parse().ok()?, i.parse().ok()?)))?
}

/// The playlist's text.
///
/// `segments` are in order, the last one open (possibly without parts yet) unless `ended`;
/// `next` is the part that opens next (the preload hint).
pub fn render(
    segments: &[SegmentEntry],
    part_target: f64,
    segment_target: u64,
    next: (u64, u32),
    ended: bool,
) -> String {
    let complete = if ended {
        segments.len()
    } else {
        segments.len().saturating_sub(1)
    };
    let target = segments[..complete]
        .iter()
        .map(|s| s.duration().round() as u64)
        .max()
        .unwrap_or(0)
        .max(segment_target);
    let mut t = String::new();
    let _ = writeln!(t, "#EXTM3U");
    let _ = writeln!(t, "#EXT-X-VERSION:9");
    let _ = writeln!(t, "#EXT-X-TARGETDURATION:{target}");
    let _ = writeln!(t, "#EXT-X-PART-INF:PART-TARGET={part_target:.3}");
    let _ = writeln!(
        t,
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={:.3}",
        3.0 * part_target
    );
    let _ = writeln!(
        t,
        "#EXT-X-MEDIA-SEQUENCE:{}",
        segments.first().map_or(0, |s| s.msn)
    );
    // Each change of init before the first listed segment was one discontinuity.
    let first_init = segments.first().map_or(0, |s| s.init);
    if first_init > 0 {
        let _ = writeln!(t, "#EXT-X-DISCONTINUITY-SEQUENCE:{first_init}");
    }
    let _ = writeln!(t, "#EXT-X-MAP:URI=\"{}\"", init_name(first_init));
    let with_parts = complete.saturating_sub(SEGMENTS_WITH_PARTS);
    for (i, s) in segments.iter().enumerate() {
        if i > 0 && s.init != segments[i - 1].init {
            let _ = writeln!(t, "#EXT-X-DISCONTINUITY");
            let _ = writeln!(t, "#EXT-X-MAP:URI=\"{}\"", init_name(s.init));
        }
        if let Some(d) = s.date {
            let _ = writeln!(
                t,
                "#EXT-X-PROGRAM-DATE-TIME:{}",
                humantime::format_rfc3339_millis(d)
            );
        }
        if i >= with_parts {
            for (k, p) in s.parts.iter().enumerate() {
                let _ = writeln!(
                    t,
                    "#EXT-X-PART:DURATION={:.5},URI=\"{}\"{}",
                    p.duration,
                    part_name(s.msn, k as u32),
                    if p.independent {
                        ",INDEPENDENT=YES"
                    } else {
                        ""
                    }
                );
            }
        }
        if i < complete {
            let _ = writeln!(t, "#EXTINF:{:.5},", s.duration());
            let _ = writeln!(t, "{}", segment_name(s.msn));
        }
    }
    if ended {
        let _ = writeln!(t, "#EXT-X-ENDLIST");
    } else {
        let _ = writeln!(
            t,
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"",
            part_name(next.0, next.1)
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(msn: u64, parts: usize) -> SegmentEntry {
        SegmentEntry {
            msn,
            parts: (0..parts)
                .map(|k| PartEntry {
                    duration: 0.2,
                    independent: k == 0,
                })
                .collect(),
            date: None,
            init: 0,
        }
    }

    #[test]
    fn only_names_this_consumer_writes_parse() {
        assert_eq!(parse_name("index.m3u8"), Some(HlsFile::Playlist));
        assert_eq!(parse_name("init.mp4"), Some(HlsFile::Init(0)));
        assert_eq!(parse_name("init3.mp4"), Some(HlsFile::Init(3)));
        assert_eq!(parse_name(&init_name(7)), Some(HlsFile::Init(7)));
        assert_eq!(parse_name("seg12.m4s"), Some(HlsFile::Segment(12)));
        assert_eq!(parse_name("part12.3.m4s"), Some(HlsFile::Part(12, 3)));
        for bad in [
            "../etc/passwd",
            "seg.m4s",
            "segx.m4s",
            "seg-1.m4s",
            "part1.m4s",
            "part1..m4s",
            "part1.2.3.m4s",
            "part99999999999999999999.1.m4s",
            "seg1.m4s/..",
            "segment00001.ts",
            "init0.mp4",
            "init03.mp4",
            "init-1.mp4",
            "initx.mp4",
            "",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_live_playlist_lists_recent_parts_and_hints_the_next() {
        let list = [seg(4, 5), seg(5, 5), seg(6, 5), seg(7, 2)];
        let text = render(&list, 0.2, 1, (7, 2), false);
        assert!(text.starts_with("#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:1\n"));
        assert!(text.contains("#EXT-X-PART-INF:PART-TARGET=0.200\n"));
        assert!(text.contains("CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.600\n"));
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:4\n#EXT-X-MAP:URI=\"init.mp4\"\n"));
        // Segment 4 is listed whole only; 5 and 6 with their parts; 7 is open.
        assert!(!text.contains("part4."));
        assert!(text.contains("#EXT-X-PART:DURATION=0.20000,URI=\"part5.0.m4s\",INDEPENDENT=YES\n"));
        assert!(text.contains("URI=\"part5.1.m4s\"\n"));
        assert!(text.contains("#EXTINF:1.00000,\nseg6.m4s\n"));
        assert!(!text.contains("seg7.m4s"));
        assert!(text.contains("URI=\"part7.1.m4s\"\n"));
        assert!(text.ends_with("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part7.2.m4s\"\n"));
    }

    #[test]
    fn a_new_picture_format_is_a_discontinuity_with_its_own_init() {
        let mut list = [seg(4, 5), seg(5, 5), seg(6, 5), seg(7, 2)];
        list[2].init = 1;
        list[3].init = 1;
        let text = render(&list, 0.2, 1, (7, 2), false);
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:4\n#EXT-X-MAP:URI=\"init.mp4\"\n"));
        assert!(text.contains(
            "seg5.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init1.mp4\"\n#EXT-X-PART:DURATION=0.20000,URI=\"part6.0.m4s\""
        ), "{text}");
        assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1);
        // Once the older segments slide out, the count of discontinuities before the first one
        // listed is said, and its init is the map.
        let text = render(&list[2..], 0.2, 1, (7, 2), false);
        assert!(text.contains(
            "#EXT-X-MEDIA-SEQUENCE:6\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n#EXT-X-MAP:URI=\"init1.mp4\"\n"
        ), "{text}");
        assert!(!text.contains("#EXT-X-DISCONTINUITY\n"));
    }

    #[test]
    fn an_ended_playlist_lists_every_segment_and_a_long_one_raises_the_target() {
        let mut long = seg(1, 5);
        long.parts.push(PartEntry {
            duration: 1.0,
            independent: false,
        });
        let text = render(&[seg(0, 5), long], 0.2, 1, (2, 0), true);
        assert!(text.contains("#EXT-X-TARGETDURATION:2\n"));
        assert!(text.contains("seg1.m4s\n#EXT-X-ENDLIST\n"));
        assert!(!text.contains("PRELOAD-HINT"));
    }
}
