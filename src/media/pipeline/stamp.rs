//! The synthetic camera's capture-time stamp, for latency tests (`test-util` only).

use gstreamer as gst;
use gstreamer::prelude::*;

/// Set, the synthetic source writes each frame's capture time (system clock, milliseconds, 32
/// bits) into its luma as two rows of 32 blocks of 32x32 pixels (the bits, then their
/// complement), so a subscriber decoding the box's video can measure glass-to-glass latency
/// (tests/room.rs `bench_glass_to_glass`, tests/room_browser.rs, tests/livestream.rs
/// `bench_output_latency`).
///
/// Behind the `test-util` feature: only the synthetic source is stamped and only test code
/// (tests/support/peer.rs, tests/browser/g2g.mjs) reads the stamp, so a box in a room has no use
/// for it; a product build ignores the variable.
pub const STAMP_ENV: &str = "ROOMBOX_TEST_STAMP";

pub(super) fn stamp_frames(src: &gst::Element) {
    let Some(pad) = src.static_pad("src") else {
        return;
    };
    pad.add_probe(gst::PadProbeType::BUFFER, |pad, info| {
        let caps = pad.current_caps();
        let info_v = caps
            .as_ref()
            .and_then(|c| gstreamer_video::VideoInfo::from_caps(c).ok());
        let Some(vi) = info_v else {
            return gst::PadProbeReturn::Ok;
        };
        if vi.width() < 1024 || vi.height() < 64 || !vi.format_info().is_yuv() {
            return gst::PadProbeReturn::Ok;
        }
        let now = gst::SystemClock::obtain().time().mseconds() as u32;
        if let Some(gst::PadProbeData::Buffer(ref mut buffer)) = info.data {
            let buf = buffer.make_mut();
            let stride = vi.stride()[0] as usize;
            let offset = vi.offset()[0];
            if let Ok(mut map) = buf.map_writable() {
                let data = map.as_mut_slice();
                for row in 0..2usize {
                    for bit in 0..32usize {
                        let one = (now >> bit) & 1 == 1;
                        let v = if one != (row == 1) { 235 } else { 16 };
                        for y in row * 32..row * 32 + 32 {
                            let start = offset + y * stride + bit * 32;
                            if let Some(px) = data.get_mut(start..start + 32) {
                                px.fill(v);
                            }
                        }
                    }
                }
            }
        }
        gst::PadProbeReturn::Ok
    });
}
