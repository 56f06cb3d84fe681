//! The share's synthetic picture (`source = "test"`): videotestsrc's moving ball on black, drawn
//! cheaply.
//!
//! `videotestsrc pattern=ball` paints every line of every frame (a blend into a line buffer and a
//! conversion to I420): at 1920x1080@5 that was 3.7 % of a core, more than the share's encode
//! (measured with gst-launch-1.0, see BENCHMARKS.md), a cost no real grabber has (a grabber's
//! frames come by DMA; a YUY2 one needs a colour conversion, which the chain keeps). Here
//! `videotestsrc pattern=black` gives the frames (its static picture is made once) and this
//! probe draws the same ball on a copy of each: the encoder sees the same kind of picture (black,
//! a ball of radius 20 moving on videotestsrc's path at its pace in frames) for a copy and a
//! 41x41 patch a frame.

use super::error::{MediaError, Result};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_video as gst_video;
use gstreamer_video::VideoFrameExt;
use std::sync::atomic::{AtomicU64, Ordering};

/// The ball's radius in pixels (as videotestsrc's).
const RADIUS: f64 = 20.0;
/// Luma of the ball (white) and of the background (black), limited range.
const WHITE: f64 = 235.0;
const BLACK: u8 = 16;

/// Where the ball's centre is in frame `n` of a `w`x`h` picture: videotestsrc's path
/// (`animation-mode=frames`, `motion=wavy`).
pub fn centre(n: u64, w: u32, h: u32) -> (f64, f64) {
    let rad = n as f64 / 200.0;
    let tau = 2.0 * std::f64::consts::PI;
    let x = RADIUS + (0.5 + 0.5 * (tau * rad).sin()) * (f64::from(w) - 2.0 * RADIUS);
    let y = RADIUS + (0.5 + 0.5 * (tau * rad * 2f64.sqrt()).sin()) * (f64::from(h) - 2.0 * RADIUS);
    (x, y)
}

/// Draws frame `n`'s ball, with an antialiased edge, into a luma plane (`stride` bytes a row)
/// that holds black: chroma stays neutral, as the ball is white.
pub fn draw_ball(luma: &mut [u8], stride: usize, w: u32, h: u32, n: u64) {
    let (cx, cy) = centre(n, w, h);
    let x0 = (cx - RADIUS - 1.0).floor().max(0.0) as usize;
    let x1 = ((cx + RADIUS + 1.0).ceil() as usize).min(w as usize);
    let y0 = (cy - RADIUS - 1.0).floor().max(0.0) as usize;
    let y1 = ((cy + RADIUS + 1.0).ceil() as usize).min(h as usize);
    for y in y0..y1 {
        let Some(row) = luma.get_mut(y * stride..y * stride + x1) else {
            return;
        };
        for (x, px) in row.iter_mut().enumerate().skip(x0) {
            let d = ((x as f64 + 0.5 - cx).powi(2) + (y as f64 + 0.5 - cy).powi(2)).sqrt();
            let cover = (RADIUS + 0.5 - d).clamp(0.0, 1.0);
            if cover > 0.0 {
                *px = (f64::from(BLACK) + cover * (WHITE - f64::from(BLACK))).round() as u8;
            }
        }
    }
}

/// Makes `src` (a `videotestsrc pattern=black` whose output is fixed to I420 `width`x`height`)
/// show the moving ball: each buffer is copied (the source hands out its one static frame) and
/// the ball drawn on it.
pub fn install(src: &gst::Element, width: u32, height: u32) -> Result<()> {
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, width, height)
        .build()
        .map_err(|e| MediaError::Start(format!("the share's test picture: {e}")))?;
    let pad = src
        .static_pad("src")
        .ok_or_else(|| MediaError::Start("the share's test source has no src pad".into()))?;
    let frames = AtomicU64::new(0);
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, probe| {
        if let Some(gst::PadProbeData::Buffer(buffer)) = probe.data.as_mut() {
            let n = frames.fetch_add(1, Ordering::Relaxed);
            let b = buffer.make_mut();
            if let Ok(mut frame) = gst_video::VideoFrameRef::from_buffer_ref_writable(b, &info) {
                let stride = frame.plane_stride()[0] as usize;
                if let Ok(luma) = frame.plane_data_mut(0) {
                    draw_ball(luma, stride, width, height, n);
                }
            }
        }
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(w: u32, h: u32, n: u64) -> Vec<u8> {
        let mut luma = vec![BLACK; (w * h) as usize];
        draw_ball(&mut luma, w as usize, w, h, n);
        luma
    }

    fn lit(luma: &[u8]) -> Vec<usize> {
        (0..luma.len()).filter(|&i| luma[i] > 128).collect()
    }

    #[test]
    fn the_ball_is_a_disc_of_radius_20_where_the_path_says() {
        let (w, h) = (1920, 1080);
        for n in [0, 7, 50, 123, 999] {
            let luma = frame(w, h, n);
            let on = lit(&luma);
            // π·20² ≈ 1257 pixels, give or take the edge.
            assert!((1150..1350).contains(&on.len()), "{n}: {} lit", on.len());
            let (cx, cy) = centre(n, w, h);
            let (sx, sy) = on.iter().fold((0.0, 0.0), |(sx, sy), &i| {
                (
                    sx + (i % w as usize) as f64 + 0.5,
                    sy + (i / w as usize) as f64 + 0.5,
                )
            });
            let k = on.len() as f64;
            assert!(
                (sx / k - cx).abs() < 1.0 && (sy / k - cy).abs() < 1.0,
                "{n}"
            );
            // Away from the ball, black.
            assert!(
                luma[..w as usize]
                    .iter()
                    .chain(&luma[luma.len() - w as usize..])
                    .all(|&p| p == BLACK)
                    || cy < 22.0
                    || cy > f64::from(h) - 22.0
            );
        }
    }

    #[test]
    fn the_ball_moves_and_stays_inside_the_picture() {
        let (w, h) = (640, 360);
        let mut last = None;
        for n in 0..400 {
            let (x, y) = centre(n, w, h);
            assert!(x >= RADIUS && x <= f64::from(w) - RADIUS, "{n}: x {x}");
            assert!(y >= RADIUS && y <= f64::from(h) - RADIUS, "{n}: y {y}");
            if let Some(l) = last {
                assert_ne!(l, (x, y), "{n}: the ball stood still");
            }
            last = Some((x, y));
            // Drawn at the edge, it is not cut short by a panic or a wrap to the next row.
            let luma = frame(w, h, n);
            assert!(!lit(&luma).is_empty());
        }
    }

    #[test]
    fn a_short_plane_is_left_alone_rather_than_overrun() {
        let mut luma = vec![BLACK; 100];
        draw_ball(&mut luma, 1920, 1920, 1080, 0);
    }
}
