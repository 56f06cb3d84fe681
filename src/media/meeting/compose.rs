//! The meeting's composition in the capture pipeline, built when the first consumer takes a
//! meeting feed and taken out when the last one lets go.
//!
//! ```text
//! camera raw tee → leaky queue ─┐
//! appsrc (each remote's video) ─┴→ compositor → I420 WxH@fps → textoverlay ×N → leaky queue → convert → H.264 enc → meetingtee
//! mic raw tee → leaky queue ────┐
//! appsrc (each remote's audio) ─┴→ audiomixer → S16LE rate/channels → meetrawtee → (AAC, Opus on demand)
//! ```
//!
//! Every picture keeps its aspect in its tile; a share (the box's or a remote's) is a member of
//! its own, in focus while it lasts.
//!
//! The labels are a fixed row of `textoverlay`s, one per tile the layouts can show, moved and
//! re-texted on each change and silent when unused; without the element (no Pango on the
//! machine) the tiles go unlabelled, with a warning.

use super::super::element::{add_chain, h264_encode, leaky_queue, make, raw_video_caps, set};
use super::super::encoder::EncoderSpec;
use super::super::error::{MediaError, Result};
use super::super::layout::{layout, Member, Scene, SpeakerHold, Tile, TileContent};
use super::MeetingHub;
use crate::model::LayoutKind;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The local participant's id in the layout (remote ids come from the room server).
pub const LOCAL: &str = "local";
/// The most tiles a layout shows, so the most labels.
pub const MAX_TILES: usize = 9;
/// How late an input may be and still make its frame or its audio: decoded remote media is
/// stamped as it enters, so the mixers wait this long for it.
const LATENCY: Duration = Duration::from_millis(100);

/// What the composition is made with.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub kind: LayoutKind,
    pub hold: Duration,
    /// The picture: the camera's size and rate.
    pub size: (u32, u32),
    pub fps: u32,
    pub kbps: u32,
    pub gop_frames: u32,
    /// The mixed audio's rate and channels: the mic's.
    pub rate: u32,
    pub channels: u32,
    /// The box's label.
    pub local_name: String,
}

struct Input {
    src: gst_app::AppSrc,
    pad: gst::Pad,
}

/// A branch from a playing tee into the composition.
struct Tap {
    tee: gst::Element,
    tee_pad: gst::Pad,
}

/// The running composition.
pub struct Compose {
    hub: MeetingHub,
    settings: Settings,
    hold: SpeakerHold,
    vmix: Option<gst::Element>,
    amix: Option<gst::Element>,
    camera_pad: Option<gst::Pad>,
    labels: Vec<gst::Element>,
    taps: Vec<Tap>,
    inputs: HashMap<(String, bool), Input>,
    elements: Vec<gst::Element>,
    encoder: Option<gst::Element>,
    /// The meeting's H.264.
    pub vtee: Option<gst::Element>,
    /// The meeting's mixed audio, raw.
    pub rawtee: Option<gst::Element>,
    /// The mix in AAC and in Opus, once asked for.
    pub aactee: Option<gst::Element>,
    pub opustee: Option<gst::Element>,
    /// The tiles as last laid out.
    pub tiles: Vec<Tile>,
}

impl Compose {
    /// Builds the composition in the playing `pipeline` from the camera's raw tee and the mic's
    /// (either may be absent), and opens the hub.
    pub fn build(
        pipeline: &gst::Pipeline,
        settings: Settings,
        camera: Option<&gst::Element>,
        mic: Option<&gst::Element>,
        encoder: Option<(&str, &EncoderSpec)>,
        hub: MeetingHub,
    ) -> Result<Compose> {
        let mut c = Compose {
            hub,
            hold: SpeakerHold::new(settings.hold),
            settings,
            vmix: None,
            amix: None,
            camera_pad: None,
            labels: Vec::new(),
            taps: Vec::new(),
            inputs: HashMap::new(),
            elements: Vec::new(),
            encoder: None,
            vtee: None,
            rawtee: None,
            aactee: None,
            opustee: None,
            tiles: Vec::new(),
        };
        let built = c
            .build_video(pipeline, camera, encoder)
            .and_then(|_| c.build_audio(pipeline, mic));
        if let Err(e) = built {
            c.release(pipeline);
            return Err(e);
        }
        c.hub.set_open(true);
        Ok(c)
    }

    fn build_video(
        &mut self,
        pipeline: &gst::Pipeline,
        camera: Option<&gst::Element>,
        encoder: Option<(&str, &EncoderSpec)>,
    ) -> Result<()> {
        let (Some(camera), Some((name, spec))) = (camera, encoder) else {
            return Ok(());
        };
        let s = &self.settings;
        let vmix = mixer("compositor")?;
        set(&vmix, "background", "black")?;
        let mut chain = vec![vmix.clone(), raw_video_caps(s.size.0, s.size.1, s.fps)?];
        match make("textoverlay") {
            Ok(_) => {
                for _ in 0..MAX_TILES {
                    let t = make("textoverlay")?;
                    for (k, v) in [
                        ("halignment", "left"),
                        ("valignment", "top"),
                        ("xpad", "0"),
                        ("ypad", "0"),
                        ("shaded-background", "true"),
                        ("silent", "true"),
                        ("wait-text", "false"),
                    ] {
                        set(&t, k, v)?;
                    }
                    t.set_property(
                        "font-desc",
                        format!("Sans Bold {}", font_px(s.size.1) * 3 / 4),
                    );
                    self.labels.push(t.clone());
                    chain.push(t);
                }
            }
            Err(e) => tracing::warn!("meeting: tiles go unlabelled: {e}"),
        }
        let [enc, enc_caps, parse, out] = h264_encode(name, spec, s.kbps, s.gop_frames)?;
        let vtee = tee("meetingtee")?;
        chain.extend([
            leaky_queue(2)?,
            make("videoconvert")?,
            enc.clone(),
            enc_caps,
            parse,
            out,
        ]);
        chain.push(vtee.clone());
        self.start_chain(pipeline, &chain)?;
        let q = leaky_queue(2)?;
        let pad = self.tap(pipeline, camera, &q, &vmix)?;
        keep_aspect(&pad);
        self.camera_pad = Some(pad);
        self.vmix = Some(vmix);
        self.encoder = Some(enc);
        self.vtee = Some(vtee);
        Ok(())
    }

    fn build_audio(&mut self, pipeline: &gst::Pipeline, mic: Option<&gst::Element>) -> Result<()> {
        let s = &self.settings;
        let amix = mixer("audiomixer")?;
        let caps = make("capsfilter")?;
        caps.set_property("caps", crate::media::element::s16_caps(s.rate, s.channels));
        let rawtee = tee("meetrawtee")?;
        self.start_chain(pipeline, &[amix.clone(), caps, rawtee.clone()])?;
        if let Some(mic) = mic {
            let q = leaky_queue(50)?;
            self.tap(pipeline, mic, &q, &amix)?;
        }
        self.amix = Some(amix);
        self.rawtee = Some(rawtee);
        Ok(())
    }

    /// Adds `chain` to the playing pipeline, linked and playing, downstream first.
    fn start_chain(&mut self, pipeline: &gst::Pipeline, chain: &[gst::Element]) -> Result<()> {
        add_chain(pipeline, chain, "meeting")?;
        self.elements.extend(chain.iter().cloned());
        for e in chain.iter().rev() {
            e.sync_state_with_parent()
                .map_err(|_| MediaError::Start(format!("meeting ({})", e.name())))?;
        }
        Ok(())
    }

    /// `tee → queue → mixer`: the queue plays before the tee's new pad is linked, so the tee's
    /// thread (the camera's, the mic's) never pushes into a flushing pad. Returns the mixer's pad.
    fn tap(
        &mut self,
        pipeline: &gst::Pipeline,
        tee: &gst::Element,
        queue: &gst::Element,
        mixer: &gst::Element,
    ) -> Result<gst::Pad> {
        let fail = |e: &dyn std::fmt::Display| MediaError::link("meeting", e.to_string());
        pipeline.add(queue).map_err(|e| fail(&e))?;
        self.elements.push(queue.clone());
        let mix_pad = mixer
            .request_pad_simple("sink_%u")
            .ok_or_else(|| fail(&"the mixer gave no pad"))?;
        queue
            .static_pad("src")
            .ok_or_else(|| fail(&"no src pad"))?
            .link(&mix_pad)
            .map_err(|e| fail(&e))?;
        queue
            .sync_state_with_parent()
            .map_err(|_| MediaError::Start("meeting".into()))?;
        let tee_pad = tee
            .request_pad_simple("src_%u")
            .ok_or_else(|| fail(&"the tee gave no pad"))?;
        tee_pad
            .link(
                &queue
                    .static_pad("sink")
                    .ok_or_else(|| fail(&"no sink pad"))?,
            )
            .map_err(|e| fail(&e))?;
        self.taps.push(Tap {
            tee: tee.clone(),
            tee_pad,
        });
        Ok(mix_pad)
    }

    /// Asks the meeting's encoder for keyframes.
    pub fn keyframes(&self) -> super::super::consumer::KeyframeRequester {
        super::super::consumer::KeyframeRequester::new(self.encoder.clone())
    }

    /// Once a tick: an input for each remote whose media arrived, none for those gone, and the
    /// tiles laid out again when anything changed.
    pub fn tick(&mut self, pipeline: &gst::Pipeline, now: Instant) {
        let snap = self.hub.snapshot();
        for r in &snap.remotes {
            for (video, arrived, mixer) in
                [(true, r.video, &self.vmix), (false, r.audio, &self.amix)]
            {
                let key = (r.id.clone(), video);
                let Some(mixer) = mixer.clone() else { continue };
                if arrived && !self.inputs.contains_key(&key) {
                    match add_input(pipeline, &mixer, video) {
                        Ok(input) => {
                            self.hub.set_input(&r.id, video, Some(input.src.clone()));
                            self.inputs.insert(key, input);
                        }
                        Err(e) => tracing::warn!(participant = %r.id, "meeting: no input: {e}"),
                    }
                }
            }
        }
        let gone: Vec<(String, bool)> = self
            .inputs
            .keys()
            .filter(|(id, _)| !snap.remotes.iter().any(|r| &r.id == id))
            .cloned()
            .collect();
        for key in gone {
            self.hold.forget(&key.0);
            if let Some(input) = self.inputs.remove(&key) {
                self.hub.set_input(&key.0, key.1, None);
                remove_input(pipeline, input);
            }
        }
        let speaker = self
            .hold
            .observe(snap.talking.last().map(String::as_str), now);
        let speaker = speaker.map(str::to_string);
        let members = self.members(&snap);
        // A share on the picture is in focus (the latest, should two overlap), before the
        // presenter's camera.
        let presenter = members
            .iter()
            .rev()
            .find(|m| m.share)
            .map(|m| m.id.as_str())
            .or(snap.presenter.as_deref());
        let tiles = layout(&Scene {
            members: &members,
            speaker: speaker.as_deref(),
            presenter,
            pinned: snap.pinned.as_deref(),
            kind: self.settings.kind,
            size: self.settings.size,
            max_tiles: MAX_TILES,
        });
        if tiles != self.tiles {
            let shown: Vec<&str> = tiles.iter().map(|t| t.label.as_str()).collect();
            tracing::info!(
                speaker = speaker.as_deref().unwrap_or(""),
                "meeting: tiles {shown:?}"
            );
            self.place(&tiles);
            self.tiles = tiles;
        }
    }

    /// Everyone in the picture: the box, then the remotes as they joined; a share (see
    /// [`super::share_id`]) once its frames arrive, labelled by its presenter's name.
    fn members(&self, snap: &super::Snapshot) -> Vec<Member> {
        let name_of = |id: &str| match id {
            LOCAL => self.settings.local_name.clone(),
            _ => snap
                .remotes
                .iter()
                .find(|r| r.id == id)
                .map_or_else(|| id.to_string(), |r| r.name.clone()),
        };
        let mut members = vec![Member {
            id: LOCAL.into(),
            name: self.settings.local_name.clone(),
            video: self.camera_pad.is_some(),
            local: true,
            share: false,
        }];
        for r in &snap.remotes {
            let video = self.inputs.contains_key(&(r.id.clone(), true));
            match super::share_owner(&r.id) {
                Some(owner) if video => members.push(Member {
                    id: r.id.clone(),
                    name: format!("{} (share)", name_of(owner)),
                    video,
                    local: owner == LOCAL,
                    share: true,
                }),
                Some(_) => {}
                None => members.push(Member {
                    id: r.id.clone(),
                    name: r.name.clone(),
                    video,
                    local: false,
                    share: false,
                }),
            }
        }
        members
    }

    /// Moves the pads and the labels to `tiles`; a pad with no tile is hidden.
    fn place(&self, tiles: &[Tile]) {
        let video_tile = |id: &str| {
            tiles
                .iter()
                .find(|t| t.content == TileContent::Video(id.to_string()))
        };
        let mut pads: Vec<(&str, &gst::Pad)> = self
            .inputs
            .iter()
            .filter(|((_, video), _)| *video)
            .map(|((id, _), i)| (id.as_str(), &i.pad))
            .collect();
        pads.extend(self.camera_pad.as_ref().map(|p| (LOCAL, p)));
        for (id, pad) in pads {
            match video_tile(id) {
                Some(t) => {
                    pad.set_property("xpos", t.rect.x as i32);
                    pad.set_property("ypos", t.rect.y as i32);
                    pad.set_property("width", t.rect.w as i32);
                    pad.set_property("height", t.rect.h as i32);
                    pad.set_property("alpha", 1.0f64);
                }
                None => pad.set_property("alpha", 0.0f64),
            }
        }
        let px = font_px(self.settings.size.1);
        for (i, label) in self.labels.iter().enumerate() {
            let Some(t) = tiles.get(i) else {
                label.set_property("silent", true);
                continue;
            };
            let (x, y) = match t.content {
                // Bottom left, clear of the picture's centre.
                TileContent::Video(_) => (
                    t.rect.x + px / 2,
                    t.rect.y + t.rect.h.saturating_sub(px * 2),
                ),
                // Centred (roughly: Pango measures, this guesses).
                _ => {
                    let (cx, cy) = t.rect.centre();
                    let w = t.label.chars().count() as u32 * px * 3 / 5;
                    (cx.saturating_sub(w / 2), cy.saturating_sub(px / 2))
                }
            };
            label.set_property("text", &t.label);
            label.set_property("deltax", x as i32);
            label.set_property("deltay", y as i32);
            label.set_property("silent", false);
        }
    }

    /// Takes the composition out of the pipeline and closes the hub: the taps leave their tees
    /// once idle (the camera and the mic never wait), then every element goes.
    pub fn release(mut self, pipeline: &gst::Pipeline) {
        self.hub.set_open(false);
        for tap in self.taps.drain(..) {
            let (tx, rx) = std::sync::mpsc::channel();
            let tee = tap.tee.clone();
            tap.tee_pad
                .add_probe(gst::PadProbeType::IDLE, move |pad, _| {
                    if let Some(peer) = pad.peer() {
                        let _ = pad.unlink(&peer);
                    }
                    tee.release_request_pad(pad);
                    let _ = tx.send(());
                    gst::PadProbeReturn::Remove
                });
            if rx.recv_timeout(Duration::from_secs(1)).is_err() {
                tracing::warn!("meeting: a tap did not come idle");
            }
        }
        for (_, input) in self.inputs.drain() {
            remove_input(pipeline, input);
        }
        for e in &self.elements {
            let _ = e.set_state(gst::State::Null);
        }
        let _ = pipeline.remove_many(&self.elements);
    }
}

fn tee(name: &str) -> Result<gst::Element> {
    let t = make("tee")?;
    t.set_property("allow-not-linked", true);
    t.set_property("name", name);
    Ok(t)
}

/// A live compositor or audiomixer that starts at its first input's time, does not wait for
/// inputs that have sent nothing yet, and waits [`LATENCY`] for late ones.
fn mixer(factory: &str) -> Result<gst::Element> {
    let m = make(factory)?;
    set(&m, "start-time-selection", "first")?;
    set(&m, "ignore-inactive-pads", "true")?;
    m.set_property("latency", LATENCY.as_nanos() as u64);
    Ok(m)
}

/// A picture keeps its aspect inside its tile (black bars where they differ): a 4:3 camera, a
/// 16:10 laptop's share, a portrait phone, all in 16:9 tiles.
fn keep_aspect(pad: &gst::Pad) {
    if pad.find_property("sizing-policy").is_some() {
        pad.set_property_from_str("sizing-policy", "keep-aspect-ratio");
    }
}

/// The labels' height in pixels for a picture `height` high.
fn font_px(height: u32) -> u32 {
    (height / 30).clamp(10, 48)
}

/// A leaky appsrc on a new pad of `mixer`, hidden until laid out.
fn add_input(pipeline: &gst::Pipeline, mixer: &gst::Element, video: bool) -> Result<Input> {
    let fail = |e: &dyn std::fmt::Display| MediaError::link("meeting input", e.to_string());
    let src = gst_app::AppSrc::builder()
        .is_live(true)
        .format(gst::Format::Time)
        // Video is stamped as it arrives; audio by the hub, one piece after the last.
        .do_timestamp(video)
        .max_buffers(if video { 2 } else { 10 })
        .leaky_type(gst_app::AppLeakyType::Downstream)
        .block(false)
        // A live basesrc reports its maximum latency as its minimum, 0, which the mixers
        // cannot meet beside the camera's and the mic's; any lateness is fine: it is leaky.
        .min_latency(0)
        .max_latency(-1)
        .build();
    pipeline.add(&src).map_err(|e| fail(&e))?;
    let pad = mixer
        .request_pad_simple("sink_%u")
        .ok_or_else(|| fail(&"the mixer gave no pad"))?;
    if video {
        pad.set_property("alpha", 0.0f64);
        keep_aspect(&pad);
    }
    let linked = src
        .static_pad("src")
        .ok_or_else(|| fail(&"no src pad"))
        .and_then(|p| p.link(&pad).map_err(|e| fail(&e)));
    if let Err(e) = linked.and_then(|_| {
        src.sync_state_with_parent()
            .map_err(|_| MediaError::Start("meeting input".into()))
    }) {
        remove_input(pipeline, Input { src, pad });
        return Err(e);
    }
    Ok(Input { src, pad })
}

fn remove_input(pipeline: &gst::Pipeline, input: Input) {
    let _ = input.src.set_state(gst::State::Null);
    if let Some(p) = input.src.static_pad("src") {
        let _ = p.unlink(&input.pad);
    }
    if let Some(mixer) = input.pad.parent_element() {
        mixer.release_request_pad(&input.pad);
    }
    let _ = pipeline.remove(&input.src);
}
