//! A tile for a remote video the box cannot decode (a VP8 or AV1 camera or share from a room
//! that allows more codecs than H.264): the box answers such an m-line as refused, so no RTP of
//! it ever reaches playback, and without a tile nobody in the room would know why the picture is
//! missing. The tile is a still, dark picture with a line saying whose video it is and its
//! codec, laid out where the video would be (a share as the main picture).

use crate::media::element::{add_chain, make, raw_video_caps, set};
use crate::media::MediaError;
use crate::model::StreamKind;
use gstreamer as gst;
use gstreamer::prelude::*;

/// The video m-lines of a subscription's `offer` that carry no H.264, with their kind (a share
/// when its track, by `a=msid`, is one of `share_tracks`) and the codec they offer instead.
pub fn undecodable(offer: &str, share_tracks: &[String]) -> Vec<(StreamKind, String)> {
    let mut out = Vec::new();
    for section in offer.split("\nm=").skip(1) {
        if !section.starts_with("video") {
            continue;
        }
        let codecs: Vec<String> = section
            .lines()
            .filter_map(|l| l.trim_end().strip_prefix("a=rtpmap:"))
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter_map(|c| c.split('/').next())
            .map(str::to_uppercase)
            .filter(|c| !matches!(c.as_str(), "RTX" | "RED" | "ULPFEC" | "FLEXFEC-03"))
            .collect();
        // A refused or empty m-line (port 0, no codec) is nothing to show.
        let port = section.split_whitespace().nth(1).unwrap_or("0");
        if port == "0" || codecs.is_empty() || codecs.iter().any(|c| c == "H264") {
            continue;
        }
        let track = section
            .lines()
            .find_map(|l| l.trim_end().strip_prefix("a=msid:"))
            .and_then(|m| m.split(' ').nth(1))
            .map(str::to_string);
        let kind = match track {
            Some(t) if share_tracks.contains(&t) => StreamKind::Share,
            _ => StreamKind::Video,
        };
        out.push((kind, codecs[0].clone()));
    }
    out
}

/// What the tile says.
pub fn label(name: &str, kind: StreamKind, codec: &str) -> String {
    let what = match kind {
        StreamKind::Share => "share",
        _ => "video",
    };
    format!("{name}'s {what} is {codec}: this box shows H.264 only")
}

/// The tile's chain, added to `pipeline` and linked; its last element's src pad goes to the
/// compositor. Five frames a second of a still picture: it costs next to nothing.
pub fn chain(pipeline: &gst::Pipeline, text: &str) -> Result<Vec<gst::Element>, MediaError> {
    let src = make("videotestsrc")?;
    for (k, v) in [
        ("is-live", "true"),
        ("pattern", "solid-color"),
        ("foreground-color", "0xff2b3440"),
    ] {
        set(&src, k, v)?;
    }
    let mut chain = vec![src, raw_video_caps(640, 360, 5)?];
    // Without Pango (no textoverlay) the tile is still there, only wordless.
    if let Ok(t) = make("textoverlay") {
        t.set_property("text", text);
        for (k, v) in [
            ("valignment", "center"),
            ("halignment", "center"),
            ("font-desc", "Sans 14"),
            ("wrap-mode", "word"),
        ] {
            set(&t, k, v)?;
        }
        chain.push(t);
    }
    chain.extend([make("videoconvert")?, make("queue")?]);
    add_chain(pipeline, &chain, "the placeholder tile")?;
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=mid:1\r\na=msid:janus janus1\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 98\r\na=mid:2\r\na=msid:janus janus2\r\na=rtpmap:98 AV1/90000\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:3\r\na=msid:janus janus3\r\na=rtpmap:102 H264/90000\r\n\
m=video 0 UDP/TLS/RTP/SAVPF 0\r\na=mid:4\r\n";

    #[test]
    fn video_without_h264_is_found_with_its_kind_and_codec() {
        let found = undecodable(OFFER, &["janus2".to_string()]);
        assert_eq!(
            found,
            [
                (StreamKind::Video, "VP8".to_string()),
                (StreamKind::Share, "AV1".to_string())
            ],
            "H.264, audio and a refused m-line are not"
        );
        assert!(undecodable("v=0\r\n", &[]).is_empty());
        assert!(undecodable("garbage\nm=video", &[]).is_empty());
    }

    #[test]
    fn the_tile_says_whose_and_which_codec() {
        assert_eq!(
            label("Ana", StreamKind::Share, "VP8"),
            "Ana's share is VP8: this box shows H.264 only"
        );
    }
}
