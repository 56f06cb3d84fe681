//! Where remote videos go on the box's screen: a grid of the cameras, or, while someone
//! shares, the share as the main picture with the cameras in a strip below. Pure.

use crate::model::StreamKind;

/// A tile on the screen, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Tile {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
    /// The share's main picture.
    pub main: bool,
}

/// Where each video goes on a `(w, h)` screen, in the order given (shares first): the first
/// share fills the screen above a strip a quarter of its height for the rest (16:9, centred),
/// or the whole screen when it is alone; without a share, a grid of equal tiles.
pub(super) fn screen_layout(kinds: &[StreamKind], (w, h): (u32, u32)) -> Vec<Tile> {
    let even = |v: u32| v & !1;
    if kinds.first() != Some(&StreamKind::Share) {
        let n = kinds.len() as u32;
        let cols = (1..=n).find(|c| c * c >= n).unwrap_or(1);
        let rows = n.div_ceil(cols).max(1);
        let (tw, th) = (w / cols, h / rows);
        return (0..n)
            .map(|i| Tile {
                x: (i % cols) * tw,
                y: (i / cols) * th,
                w: tw,
                h: th,
                main: false,
            })
            .collect();
    }
    let rest = kinds.len() as u32 - 1;
    let strip = if rest == 0 { 0 } else { even(h / 4) };
    let (mw, mh) = (w, h - strip);
    // The share at 16:9 inside the main area, centred.
    let (sw, sh) = if mw * 9 > mh * 16 {
        (even(mh * 16 / 9), mh)
    } else {
        (mw, even(mw * 9 / 16))
    };
    let mut out = vec![Tile {
        x: (mw - sw) / 2,
        y: (mh - sh) / 2,
        w: sw,
        h: sh,
        main: true,
    }];
    // The others side by side in the strip, each at most 16:9 of the strip's height.
    if let Some(per) = w.checked_div(rest) {
        let tw = even(per.min(strip * 16 / 9));
        let x0 = (w - tw * rest) / 2;
        out.extend((0..rest).map(|i| Tile {
            x: x0 + i * tw,
            y: mh,
            w: tw,
            h: strip,
            main: false,
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_is_the_main_picture_with_the_cameras_in_a_strip() {
        use StreamKind::{Share, Video};
        let t = |x, y, w, h, main| Tile { x, y, w, h, main };
        // No share: the grid as before.
        assert_eq!(
            screen_layout(&[Video, Video, Video], (1280, 720)),
            vec![
                t(0, 0, 640, 360, false),
                t(640, 0, 640, 360, false),
                t(0, 360, 640, 360, false)
            ]
        );
        // A share alone fills the screen.
        assert_eq!(
            screen_layout(&[Share], (1280, 720)),
            vec![t(0, 0, 1280, 720, true)]
        );
        // With two cameras: the share in the top three quarters at 16:9, centred; the cameras
        // side by side in the bottom quarter.
        assert_eq!(
            screen_layout(&[Share, Video, Video], (1280, 720)),
            vec![
                t(160, 0, 960, 540, true),
                t(320, 540, 320, 180, false),
                t(640, 540, 320, 180, false)
            ]
        );
        // Many cameras share the strip's width.
        let many = screen_layout(&[Share, Video, Video, Video, Video, Video], (1280, 720));
        assert!(many[1..].iter().all(|r| r.w == 256 && r.y == 540));
        assert!(many.iter().all(|r| r.x + r.w <= 1280 && r.y + r.h <= 720));
    }
}
