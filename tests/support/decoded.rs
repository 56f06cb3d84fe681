//! What a recording or a stream holds, decoded for tests: small RGB frames to sample the
//! pixels of a layout's tiles, and mono audio to find tones in (Goertzel).

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Frames are scaled to this for sampling.
pub const SMALL: (usize, usize) = (160, 90);

/// One decoded file: small RGB frames, and the audio as mono f32 at 48 kHz.
pub struct Decoded {
    pub frames: Vec<Vec<u8>>,
    pub audio: Vec<f32>,
    /// The picture's size as recorded, for [`Decoded::pixel`].
    pub size: (u32, u32),
}

impl Decoded {
    /// The RGB of the pixel at `(x, y)` of the full picture, in the middle frame.
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let f = &self.frames[self.frames.len() / 2];
        let sx = x as usize * SMALL.0 / self.size.0 as usize;
        let sy = y as usize * SMALL.1 / self.size.1 as usize;
        let i = (sy * SMALL.0 + sx) * 3;
        [f[i], f[i + 1], f[i + 2]]
    }

    /// The tone's level, dBFS (a full-scale sine is 0), over the segment after its first
    /// quarter.
    pub fn tone_db(&self, hz: f64) -> f64 {
        let a = &self.audio[self.audio.len() / 4..];
        10.0 * (4.0 * goertzel(a, hz)).max(1e-12).log10()
    }
}

pub fn is_orange([r, g, b]: [u8; 3]) -> bool {
    r > 200 && (90..=170).contains(&g) && b < 80
}

/// Power at `hz` (48 kHz samples).
pub fn goertzel(x: &[f32], hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / 48_000.0;
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &v in x {
        let s = f64::from(v) + c * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    (s1 * s1 + s2 * s2 - c * s1 * s2) / (x.len().max(1) as f64).powi(2)
}

/// Decodes a recorded file (MP4, FLV, ...) whose picture is `size`, with GStreamer.
pub fn decode(path: &Path, size: (u32, u32)) -> Decoded {
    gst::init().expect("gst");
    let desc = format!(
        "filesrc location={} ! decodebin name=d \
         d. ! queue ! videoconvert ! videoscale ! video/x-raw,format=RGB,width={},height={},pixel-aspect-ratio=1/1 ! appsink name=v sync=false \
         d. ! queue ! audioconvert ! audioresample ! audio/x-raw,format=F32LE,channels=1,rate=48000 ! appsink name=a sync=false",
        path.display(),
        SMALL.0,
        SMALL.1
    );
    let pipe = gst::parse::launch(&desc)
        .expect("decode pipeline")
        .downcast::<gst::Pipeline>()
        .expect("pipeline");
    let frames = Arc::new(Mutex::new(Vec::new()));
    let audio = Arc::new(Mutex::new(Vec::new()));
    let v = pipe
        .by_name("v")
        .expect("v")
        .downcast::<gst_app::AppSink>()
        .unwrap();
    let f = frames.clone();
    v.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let map = sample.buffer().unwrap().map_readable().unwrap();
                f.lock().unwrap().push(map.to_vec());
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    let a = pipe
        .by_name("a")
        .expect("a")
        .downcast::<gst_app::AppSink>()
        .unwrap();
    let au = audio.clone();
    a.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let map = sample.buffer().unwrap().map_readable().unwrap();
                au.lock().unwrap().extend(
                    map.chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                );
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    pipe.set_state(gst::State::Playing).expect("play");
    let bus = pipe.bus().unwrap();
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(30)) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("decoding {}: {}", path.display(), e.error()),
            _ => {}
        }
    }
    let _ = pipe.set_state(gst::State::Null);
    let frames = std::mem::take(&mut *frames.lock().unwrap());
    let audio = std::mem::take(&mut *audio.lock().unwrap());
    assert!(!frames.is_empty(), "{} has no video", path.display());
    Decoded {
        frames,
        audio,
        size,
    }
}
