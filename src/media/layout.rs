//! Where each participant goes in the meeting's composed picture: pure, no GStreamer.
//!
//! [`layout`] turns the meeting (who is in it, who has video, who speaks, presents or is
//! pinned), a [`LayoutKind`] and the picture's size into tiles: a participant's video, a tile
//! with only their name (no video), or "+N" for those that do not fit. The participant in
//! focus (pinned, else presenting, else speaking) is always shown.
//!
//! A share is a member of its own (the presenter's content beside their camera): in focus, it
//! takes the large tile with the others in a strip, whatever the layout, as a presentation does.
//!
//! [`SpeakerHold`] keeps the picture from flapping: a new speaker takes the focus only after
//! speaking for a moment, so a cough does not move the tiles.
//!
//! `media::meeting` carries out what these decide on the compositor's pads.

use crate::model::LayoutKind;
use std::time::{Duration, Instant};

/// One participant as the layout sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Participant id (the box's own is its own id, or any id that is not a remote's).
    pub id: String,
    /// What the tile says.
    pub name: String,
    /// Whether there is a picture of them to show.
    pub video: bool,
    /// True for the box itself.
    pub local: bool,
    /// True for a presenter's shared content (its own member beside their camera).
    pub share: bool,
}

/// A rectangle of the picture, pixels; even-aligned for I420.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl Rect {
    /// Whether the point lies inside.
    pub fn contains(&self, x: u32, y: u32) -> bool {
        x >= self.x && y >= self.y && x < self.x + self.w && y < self.y + self.h
    }

    /// The centre.
    pub fn centre(&self) -> (u32, u32) {
        (self.x + self.w / 2, self.y + self.h / 2)
    }
}

/// What a tile shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TileContent {
    /// The participant's video.
    Video(String),
    /// Only the participant's name (no video).
    Name(String),
    /// This many participants that did not fit.
    More(usize),
}

/// One tile of the picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tile {
    pub rect: Rect,
    pub content: TileContent,
    /// The label drawn on it: the display name, or "+N".
    pub label: String,
}

impl Tile {
    /// The participant it shows, if any.
    pub fn participant(&self) -> Option<&str> {
        match &self.content {
            TileContent::Video(id) | TileContent::Name(id) => Some(id),
            TileContent::More(_) => None,
        }
    }
}

/// What a layout is made from.
#[derive(Debug, Clone, PartialEq)]
pub struct Scene<'a> {
    /// Everyone, in a stable order (the box first, then remotes as they joined).
    pub members: &'a [Member],
    /// The active speaker, already held (see [`SpeakerHold`]).
    pub speaker: Option<&'a str>,
    /// Who presents (shares), if anyone.
    pub presenter: Option<&'a str>,
    /// Who was pinned by a command, if anyone.
    pub pinned: Option<&'a str>,
    pub kind: LayoutKind,
    /// The picture's width and height.
    pub size: (u32, u32),
    /// The most tiles a grid shows (the "+N" tile among them); at least 2.
    pub max_tiles: usize,
}

/// The most small tiles beside the large one in spotlight and sidebar.
const STRIP: usize = 4;

impl Scene<'_> {
    /// The participant in focus: pinned, else presenting, else speaking, else the first
    /// remote, else the box; only among those present.
    pub fn focus(&self) -> Option<&str> {
        let present = |id: &&str| self.members.iter().any(|m| m.id == *id);
        self.pinned
            .filter(present)
            .or(self.presenter.filter(present))
            .or(self.speaker.filter(present))
            .or_else(|| {
                self.members
                    .iter()
                    .find(|m| !m.local)
                    .map(|m| m.id.as_str())
            })
            .or_else(|| self.members.first().map(|m| m.id.as_str()))
    }
}

/// The tiles for `scene`; empty when nobody is in it.
pub fn layout(scene: &Scene) -> Vec<Tile> {
    let (w, h) = scene.size;
    if scene.members.is_empty() || w < 2 || h < 2 {
        return Vec::new();
    }
    let focus = scene.focus().map(str::to_string);
    let share_in_focus = scene
        .members
        .iter()
        .any(|m| m.share && Some(m.id.as_str()) == focus.as_deref());
    let kind = match (scene.kind, share_in_focus) {
        (LayoutKind::Grid, true) => LayoutKind::Spotlight,
        (k, _) => k,
    };
    match kind {
        LayoutKind::Grid => {
            let shown = pick(scene.members, focus.as_deref(), scene.max_tiles.max(2));
            let cells = grid(shown.len(), (0, 0, w, h));
            tiles(shown, cells)
        }
        LayoutKind::Spotlight | LayoutKind::Sidebar => {
            let Some(big) = scene
                .members
                .iter()
                .find(|m| Some(m.id.as_str()) == focus.as_deref())
            else {
                return Vec::new();
            };
            let rest: Vec<Member> = scene
                .members
                .iter()
                .filter(|m| m.id != big.id)
                .cloned()
                .collect();
            let small = pick(&rest, None, STRIP);
            let (big_rect, strip) = if kind == LayoutKind::Spotlight {
                let sh = if small.is_empty() { 0 } else { even(h / 5) };
                let strip: Vec<Rect> = (0..small.len())
                    .map(|i| {
                        let sw = even(w / STRIP as u32);
                        // The strip is centred under the large tile.
                        let left = even((w - sw * small.len() as u32) / 2);
                        Rect {
                            x: left + sw * i as u32,
                            y: h - sh,
                            w: sw,
                            h: sh,
                        }
                    })
                    .collect();
                (rect(0, 0, w, h - sh), strip)
            } else {
                let cw = if small.is_empty() { 0 } else { even(w / 4) };
                let ch = even(h / STRIP as u32);
                let strip: Vec<Rect> = (0..small.len())
                    .map(|i| rect(w - cw, ch * i as u32, cw, ch))
                    .collect();
                (rect(0, 0, w - cw, h), strip)
            };
            let mut out = tiles(vec![Shown::One(big.clone())], vec![big_rect]);
            out.extend(tiles(small, strip));
            out
        }
    }
}

/// A participant shown, or the count of those not.
#[derive(Debug, Clone)]
enum Shown {
    One(Member),
    More(usize),
}

/// Up to `max` of `members` in order, the last slot a "+N" when they do not all fit, and
/// `focus` always among those shown (in the last participant's slot if it was not).
fn pick(members: &[Member], focus: Option<&str>, max: usize) -> Vec<Shown> {
    if members.len() <= max {
        return members.iter().cloned().map(Shown::One).collect();
    }
    let keep = max.saturating_sub(1).max(1);
    let mut shown: Vec<Member> = members[..keep].to_vec();
    if let Some(f) = focus {
        if !shown.iter().any(|m| m.id == f) {
            if let Some(m) = members.iter().find(|m| m.id == f) {
                shown[keep - 1] = m.clone();
            }
        }
    }
    let mut out: Vec<Shown> = shown.into_iter().map(Shown::One).collect();
    out.push(Shown::More(members.len() - keep));
    out
}

fn tiles(shown: Vec<Shown>, rects: Vec<Rect>) -> Vec<Tile> {
    shown
        .into_iter()
        .zip(rects)
        .map(|(s, rect)| match s {
            Shown::One(m) if m.video => Tile {
                rect,
                label: m.name,
                content: TileContent::Video(m.id),
            },
            Shown::One(m) => Tile {
                rect,
                label: m.name,
                content: TileContent::Name(m.id),
            },
            Shown::More(n) => Tile {
                rect,
                label: format!("+{n}"),
                content: TileContent::More(n),
            },
        })
        .collect()
}

/// `n` equal cells in the area, as square a grid as fits, filled row by row; a last row that is
/// not full is centred.
fn grid(n: usize, (x0, y0, w, h): (u32, u32, u32, u32)) -> Vec<Rect> {
    if n == 0 {
        return Vec::new();
    }
    let n = n as u32;
    let cols = (1..=n).find(|c| c * c >= n).unwrap_or(1);
    let rows = n.div_ceil(cols);
    let (cw, ch) = (even(w / cols), even(h / rows));
    (0..n)
        .map(|i| {
            let (row, col) = (i / cols, i % cols);
            let in_row = if row == rows - 1 {
                n - row * cols
            } else {
                cols
            };
            let left = even((w - cw * in_row) / 2);
            rect(x0 + left + col * cw, y0 + row * ch, cw, ch)
        })
        .collect()
}

fn even(v: u32) -> u32 {
    v & !1
}

fn rect(x: u32, y: u32, w: u32, h: u32) -> Rect {
    Rect {
        x: even(x),
        y: even(y),
        w: even(w),
        h: even(h),
    }
}

/// Holds the active speaker for the layout: someone new takes over only after speaking for
/// `hold` without a break in the reports; silence keeps the last speaker.
#[derive(Debug, Clone)]
pub struct SpeakerHold {
    hold: Duration,
    shown: Option<String>,
    candidate: Option<(String, Instant)>,
}

impl SpeakerHold {
    /// A hold of `hold`.
    pub fn new(hold: Duration) -> SpeakerHold {
        SpeakerHold {
            hold,
            shown: None,
            candidate: None,
        }
    }

    /// The speaker reported now (None: nobody speaks); returns the speaker the layout shows.
    pub fn observe(&mut self, speaker: Option<&str>, now: Instant) -> Option<&str> {
        match speaker {
            None => self.candidate = None,
            Some(s) if self.shown.as_deref() == Some(s) => self.candidate = None,
            // The first speaker of all needs no hold: nobody is displaced.
            Some(s) if self.shown.is_none() => {
                self.shown = Some(s.to_string());
                self.candidate = None;
            }
            Some(s) => match &self.candidate {
                Some((c, since)) if c == s => {
                    if now.duration_since(*since) >= self.hold {
                        self.shown = Some(s.to_string());
                        self.candidate = None;
                    }
                }
                _ => self.candidate = Some((s.to_string(), now)),
            },
        }
        self.shown.as_deref()
    }

    /// A participant left: they are no longer the speaker, nor about to be.
    pub fn forget(&mut self, id: &str) {
        if self.shown.as_deref() == Some(id) {
            self.shown = None;
        }
        if self.candidate.as_ref().is_some_and(|(c, _)| c == id) {
            self.candidate = None;
        }
    }

    /// The speaker shown now.
    pub fn shown(&self) -> Option<&str> {
        self.shown.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, video: bool) -> Member {
        Member {
            id: id.into(),
            name: format!("name-{id}"),
            video,
            local: id == "box",
            share: false,
        }
    }

    fn people(n: usize) -> Vec<Member> {
        let mut v = vec![member("box", true)];
        v.extend((1..n).map(|i| member(&format!("p{i}"), true)));
        v
    }

    fn scene(members: &[Member], kind: LayoutKind) -> Scene<'_> {
        Scene {
            members,
            speaker: None,
            presenter: None,
            pinned: None,
            kind,
            size: (1280, 720),
            max_tiles: 9,
        }
    }

    fn ids(tiles: &[Tile]) -> Vec<String> {
        tiles
            .iter()
            .map(|t| match &t.content {
                TileContent::More(n) => format!("+{n}"),
                _ => t.participant().unwrap_or_default().to_string(),
            })
            .collect()
    }

    fn overlap(a: &Rect, b: &Rect) -> bool {
        a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h
    }

    fn check_geometry(tiles: &[Tile], (w, h): (u32, u32)) {
        for (i, t) in tiles.iter().enumerate() {
            let r = t.rect;
            assert!(r.w > 0 && r.h > 0, "{t:?}");
            assert!(r.x + r.w <= w && r.y + r.h <= h, "{t:?} outside {w}x{h}");
            assert!(r.x % 2 == 0 && r.y % 2 == 0 && r.w % 2 == 0 && r.h % 2 == 0);
            for o in &tiles[i + 1..] {
                assert!(!overlap(&r, &o.rect), "{t:?} overlaps {o:?}");
            }
        }
    }

    #[test]
    fn alone_the_box_fills_the_picture() {
        let m = people(1);
        for kind in [LayoutKind::Grid, LayoutKind::Spotlight, LayoutKind::Sidebar] {
            let t = layout(&scene(&m, kind));
            assert_eq!(t.len(), 1, "{kind:?}");
            assert_eq!(t[0].rect, rect(0, 0, 1280, 720), "{kind:?}");
            assert_eq!(t[0].label, "name-box");
            assert_eq!(t[0].content, TileContent::Video("box".into()));
        }
        assert!(layout(&scene(&[], LayoutKind::Grid)).is_empty());
    }

    #[test]
    fn a_grid_of_two_is_side_by_side_and_of_four_two_by_two() {
        let m = people(2);
        let t = layout(&scene(&m, LayoutKind::Grid));
        assert_eq!(ids(&t), ["box", "p1"]);
        assert_eq!(t[0].rect, rect(0, 0, 640, 720));
        assert_eq!(t[1].rect, rect(640, 0, 640, 720));
        let m = people(4);
        let t = layout(&scene(&m, LayoutKind::Grid));
        assert_eq!(t[3].rect, rect(640, 360, 640, 360));
        check_geometry(&t, (1280, 720));
    }

    #[test]
    fn a_short_last_row_is_centred() {
        let m = people(3);
        let t = layout(&scene(&m, LayoutKind::Grid));
        assert_eq!(t[2].rect, rect(320, 360, 640, 360));
        check_geometry(&t, (1280, 720));
    }

    #[test]
    fn twelve_people_in_a_three_by_three_grid_leave_a_plus_four_and_keep_the_speaker() {
        let m = people(12);
        let mut s = scene(&m, LayoutKind::Grid);
        let t = layout(&s);
        assert_eq!(t.len(), 9);
        assert_eq!(t[8].content, TileContent::More(4));
        assert_eq!(t[8].label, "+4");
        check_geometry(&t, (1280, 720));
        // p10 speaks: it is shown, in the last participant's place, and "+4" still counts the rest.
        s.speaker = Some("p10");
        let t = layout(&s);
        assert_eq!(t[7].participant(), Some("p10"));
        assert_eq!(t[8].label, "+4");
        assert!(!ids(&t).contains(&"p7".to_string()));
        // A pinned participant beats the speaker.
        s.pinned = Some("p11");
        let t = layout(&s);
        assert!(ids(&t).contains(&"p11".to_string()));
        assert!(!ids(&t).contains(&"p10".to_string()));
    }

    #[test]
    fn a_participant_without_video_gets_a_name_tile() {
        let m = vec![member("box", true), member("ana", false)];
        let t = layout(&scene(&m, LayoutKind::Grid));
        assert_eq!(t[1].content, TileContent::Name("ana".into()));
        assert_eq!(t[1].label, "name-ana");
    }

    #[test]
    fn spotlight_puts_the_focus_large_and_the_others_in_a_strip_below() {
        let m = people(4);
        let mut s = scene(&m, LayoutKind::Spotlight);
        s.speaker = Some("p2");
        let t = layout(&s);
        assert_eq!(ids(&t), ["p2", "box", "p1", "p3"]);
        assert_eq!(t[0].rect, rect(0, 0, 1280, 720 - 144));
        assert!(t[1..]
            .iter()
            .all(|x| x.rect.y == 720 - 144 && x.rect.h == 144));
        check_geometry(&t, (1280, 720));
        // The presenter beats the speaker; the pinned beats both.
        s.presenter = Some("p3");
        assert_eq!(layout(&s)[0].participant(), Some("p3"));
        s.pinned = Some("box");
        assert_eq!(layout(&s)[0].participant(), Some("box"));
        // Someone absent is not in focus.
        s.pinned = Some("gone");
        assert_eq!(layout(&s)[0].participant(), Some("p3"));
    }

    #[test]
    fn a_share_in_focus_takes_the_large_tile_even_in_a_grid() {
        let mut m = people(3);
        m.push(Member {
            id: "p1#share".into(),
            name: "name-p1 (share)".into(),
            video: true,
            local: false,
            share: true,
        });
        let mut s = scene(&m, LayoutKind::Grid);
        // Not in focus: one more grid tile.
        s.speaker = Some("p2");
        let t = layout(&s);
        assert_eq!(t.len(), 4);
        assert!(t.iter().all(|x| x.rect.w == 640 && x.rect.h == 360));
        // Presenting: large, the cameras in a strip below, as spotlight.
        s.presenter = Some("p1#share");
        let t = layout(&s);
        assert_eq!(ids(&t), ["p1#share", "box", "p1", "p2"]);
        assert_eq!(t[0].rect, rect(0, 0, 1280, 720 - 144));
        check_geometry(&t, (1280, 720));
        // Sidebar keeps its side strip.
        s.kind = LayoutKind::Sidebar;
        let t = layout(&s);
        assert_eq!(t[0].participant(), Some("p1#share"));
        assert_eq!(t[0].rect.h, 720);
    }

    #[test]
    fn without_a_speaker_the_first_remote_is_in_focus() {
        let m = people(3);
        let t = layout(&scene(&m, LayoutKind::Spotlight));
        assert_eq!(t[0].participant(), Some("p1"));
    }

    #[test]
    fn a_crowded_strip_ends_in_plus_n() {
        let m = people(8);
        let mut s = scene(&m, LayoutKind::Sidebar);
        s.speaker = Some("p5");
        let t = layout(&s);
        assert_eq!(ids(&t), ["p5", "box", "p1", "p2", "+4"]);
        assert_eq!(t[0].rect, rect(0, 0, 960, 720));
        assert!(t[1..].iter().all(|x| x.rect.x == 960 && x.rect.w == 320));
        check_geometry(&t, (1280, 720));
    }

    #[test]
    fn every_layout_of_any_size_stays_inside_and_never_overlaps() {
        for n in 1..=14 {
            let m = people(n);
            for kind in [LayoutKind::Grid, LayoutKind::Spotlight, LayoutKind::Sidebar] {
                for size in [(1280, 720), (640, 360), (322, 242)] {
                    let mut s = scene(&m, kind);
                    s.size = size;
                    s.speaker = m.last().map(|x| x.id.as_str());
                    let t = layout(&s);
                    check_geometry(&t, size);
                    assert!(ids(&t).contains(&m.last().unwrap().id), "{n} {kind:?}");
                    let counted: usize = t
                        .iter()
                        .map(|x| match x.content {
                            TileContent::More(k) => k,
                            _ => 1,
                        })
                        .sum();
                    assert_eq!(counted, n, "{n} {kind:?} {size:?}: everyone is counted");
                }
            }
        }
    }

    #[test]
    fn a_new_speaker_takes_over_only_after_the_hold_and_a_cough_does_not() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut h = SpeakerHold::new(Duration::from_millis(1500));
        assert_eq!(
            h.observe(Some("ana"), at(0)),
            Some("ana"),
            "the first needs no hold"
        );
        // Bob coughs for half a second, then silence: Ana stays.
        assert_eq!(h.observe(Some("bob"), at(100)), Some("ana"));
        assert_eq!(h.observe(Some("bob"), at(600)), Some("ana"));
        assert_eq!(h.observe(None, at(700)), Some("ana"));
        assert_eq!(
            h.observe(Some("bob"), at(800)),
            Some("ana"),
            "the hold restarts"
        );
        assert_eq!(h.observe(Some("bob"), at(2200)), Some("ana"));
        assert_eq!(h.observe(Some("bob"), at(2300)), Some("bob"));
        // Interrupted by someone else, the hold starts again.
        assert_eq!(h.observe(Some("ana"), at(2400)), Some("bob"));
        assert_eq!(h.observe(Some("cy"), at(3000)), Some("bob"));
        assert_eq!(h.observe(Some("ana"), at(4000)), Some("bob"));
        h.forget("bob");
        assert_eq!(h.shown(), None);
        assert_eq!(h.observe(Some("ana"), at(4100)), Some("ana"));
    }
}
