//! One run of examples/echo_aloop: the room simulator on two ALSA ends, the box's capture and
//! speaker on the other two, and what the simulator and the box gave, aligned.

use super::{Devices, BPS, END, FAR, N, NEAR, RATE};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use roombox::config::{AudioSource, Config, VideoSource};
use roombox::media::echo::sim::{self, db, energy, Block, Control, Room, RoomParams};
use roombox::media::echo::{Backend, EchoPath, EchoStatus, Processing};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn within(spans: &[(f64, f64)], t: f64) -> bool {
    spans.iter().any(|(a, b)| t >= *a && t < *b)
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// One run: the simulator's blocks, and the box's processed mic aligned to them.
pub struct Run {
    pub blocks: Vec<Block>,
    pub out: Vec<f32>,
    /// The simulator's block at which the speaker started: the timeline's 0.
    pub start: usize,
    pub status: EchoStatus,
    pub xruns: u64,
    /// Where the box's first sample sits among the simulator's (see `lead` in `run`).
    pub lead: i64,
    /// The simulator's CPU per second of audio, ms.
    pub sim_ms_per_s: f64,
    /// Seconds of audio the simulator made, and the box captured, per second of the run: 1 when
    /// each kept real time.
    pub sim_pace: f64,
    pub box_pace: f64,
}

impl Run {
    /// ms from the far end's first block to the first echo at the mic (the speaker's buffer, the
    /// simulator's chunk and its room's delay).
    pub fn echo_onset_ms(&self) -> Option<u64> {
        let from = self.start + (FAR[0].0 * BPS) as usize;
        let at = (from..self.blocks.len()).find(|&i| energy(&self.blocks[i].echo) > 1e-6)?;
        Some(((at - from) * 10) as u64)
    }

    pub fn range(&self, a: f64, b: f64) -> std::ops::Range<usize> {
        self.start + (a * BPS) as usize..self.start + (b * BPS) as usize
    }

    pub fn out_energy(&self, i: usize) -> f64 {
        let a = (i * N).min(self.out.len());
        let b = ((i + 1) * N).min(self.out.len());
        energy(&self.out[a..b])
    }

    /// The mic's energy over the box's, dB, over [a, b) s.
    pub fn erle(&self, a: f64, b: f64) -> f64 {
        let (mut mic, mut out) = (0.0, 0.0);
        for i in self.range(a, b).filter(|i| *i < self.blocks.len()) {
            mic += energy(&self.blocks[i].mic);
            out += self.out_energy(i);
        }
        db(mic, out)
    }

    /// The box's energy over the near-end talker's, dB, over [a, b) s (0: kept whole).
    pub fn near_kept(&self, a: f64, b: f64) -> f64 {
        let (mut near, mut out) = (0.0, 0.0);
        for i in self.range(a, b).filter(|i| *i < self.blocks.len()) {
            near += energy(&self.blocks[i].near);
            out += self.out_energy(i);
        }
        db(out, near)
    }

    /// The echo over the rest of the mic (the noise) over [a, b) s, dB.
    pub fn echo_over_noise(&self, a: f64, b: f64) -> f64 {
        let (mut echo, mut rest) = (0.0, 0.0);
        for i in self.range(a, b).filter(|i| *i < self.blocks.len()) {
            let blk = &self.blocks[i];
            echo += energy(&blk.echo);
            let r: Vec<f32> = blk.mic.iter().zip(&blk.echo).map(|(m, e)| m - e).collect();
            rest += energy(&r);
        }
        db(echo, rest)
    }
}

pub fn processing(backend: Backend) -> Processing {
    Processing {
        backend,
        rate: RATE,
        channels: 1,
        echo_cancel: true,
        noise_suppression: false,
        gain_control: false,
        high_pass: false,
    }
}

/// The simulator's own delay: the air between speaker and mic (1.7 m). The rest of the echo's
/// delay is real: the speaker's ALSA buffer, the simulator's chunk and prefill, the mic's.
const AIR_MS: u32 = 5;

/// What the room simulator does, within what the machine can convolve in real time.
pub struct Sim {
    /// The room's impulse response, cut to this many ms.
    pub ir_ms: u32,
    /// 10 ms blocks convolved at a time.
    pub chunk_blocks: usize,
}

pub fn run(
    dev: &Devices,
    s: &Sim,
    backend: Backend,
    far: &[f32],
    near: &[f32],
) -> Result<Run, String> {
    let mut ir = sim::load_ir(&data("room-ir-a-16k.f32")).map_err(|e| format!("IR: {e}"))?;
    ir.truncate((RATE * s.ir_ms / 1000) as usize);
    // The room first: a loopback pair takes the format of the side opened first, and the box
    // must find its two ends at 16 kHz mono.
    let room = Room::new(RoomParams {
        rate: RATE,
        delay_ms: AIR_MS,
        ir,
        echo_gain: 0.25,
        drive: 1.5,
        noise_dbfs: -65.0,
    });
    let control = Control::default();
    let start = Arc::new(AtomicU64::new(u64::MAX));
    let blocks = Arc::new(Mutex::new(Vec::new()));
    let sim_thread = {
        let (tap, feed, chunk) = (dev.tap.clone(), dev.feed.clone(), s.chunk_blocks);
        let (control, start, blocks, near) = (
            control.clone(),
            start.clone(),
            blocks.clone(),
            near.to_vec(),
        );
        std::thread::spawn(move || {
            let mut pos = 0usize;
            let talker = move |i: u64, n: usize| {
                let s = start.load(Ordering::SeqCst);
                let t = (i as f64 - s as f64) / BPS;
                if i >= s && within(&NEAR, t) {
                    (0..n)
                        .map(|_| {
                            pos += 1;
                            near[pos % near.len()] * 0.5
                        })
                        .collect()
                } else {
                    vec![0.0; n]
                }
            };
            let record = move |b| blocks.lock().unwrap().push(b);
            let ends = sim::AlsaEnds {
                tap: &tap,
                feed: &feed,
                chunk_blocks: chunk,
            };
            sim::run_alsa(ends, room, control, talker, |_, _| {}, record)
        })
    };
    let since = Instant::now();
    let received = Arc::new(AtomicU64::new(0));
    while control.written.load(Ordering::SeqCst) < 20 {
        if sim_thread.is_finished() || since.elapsed() > Duration::from_secs(20) {
            control.stop.store(true, Ordering::SeqCst);
            return Err(match sim_thread.join() {
                Ok(Err(e)) => format!("the room simulator: {e}"),
                _ => "the room simulator never ran 200 ms".into(),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let stop_sim = || {
        control.stop.store(true, Ordering::SeqCst);
    };

    // The box's capture, as the engine builds it, with its mic on ALSA.
    let mut config = Config::default();
    config.media.video.source = VideoSource::None;
    config.media.audio.source = AudioSource::Alsa;
    config.media.audio.device = dev.mic.clone();
    config.media.audio.rate = RATE;
    config.media.audio.channels = 1;
    config.media.audio.processing = processing(Backend::Aec3).config();
    let mut capture = match roombox::media::pipeline::build(
        &config,
        None,
        Arc::new(AtomicBool::new(true)),
        false,
    ) {
        Ok(c) => c,
        Err(e) => {
            stop_sim();
            return Err(format!("the box's capture on {}: {e}", dev.mic));
        }
    };
    // The candidate (the config always asks for the default).
    EchoPath::shared().configure(Some(processing(backend)));
    let out = Arc::new(Mutex::new(Vec::<f32>::new()));
    // The simulator's samples written less the box's received, at each buffer: the smallest
    // is where the box's first sample sits among the simulator's (plus the least that was ever
    // in flight, a few ms: the mic's prefill and buffers).
    let lead = Arc::new(AtomicI64::new(i64::MAX));
    let tapped = {
        let (out, lead, written) = (out.clone(), lead.clone(), control.written.clone());
        let received = received.clone();
        roombox::media::pcm::tap_speech(&mut capture, RATE, move |chunk| {
            let x = chunk.samples;
            let got = received.fetch_add(x.len() as u64, Ordering::SeqCst) + x.len() as u64;
            let w = written.load(Ordering::SeqCst) * N as u64;
            lead.fetch_min(w as i64 - got as i64, Ordering::SeqCst);
            out.lock().unwrap().extend(x);
        })
    };
    if let Err(e) = tapped {
        stop_sim();
        return Err(format!("the box's capture: {e}"));
    }
    if let Err(e) = capture.play() {
        stop_sim();
        return Err(format!(
            "the box's capture on {} does not play: {e}",
            dev.mic
        ));
    }
    std::thread::sleep(Duration::from_millis(500));
    let box_from = (Instant::now(), received.load(Ordering::SeqCst));

    // The box's speaker: far-end speech into its real chain and its configured ALSA sink.
    // Live, as the room's playback is (remote audio into a live mixer): each block reaches the
    // sink LEAD before it is due, so the sink's buffer holds about that much, not its whole
    // 200 ms as it would for a file.
    let speaker = gst::Pipeline::with_name("far-end");
    let src = gst_app::AppSrc::builder()
        .caps(&roombox::media::element::s16_caps(RATE, 1))
        .format(gst::Format::Time)
        .is_live(true)
        .build();
    let built = roombox::room::playback::sink(&dev.sink, false, &dev.speaker)
        .map_err(|e| e.to_string())
        .and_then(|sink| {
            roombox::media::speaker::chain(sink, &EchoPath::shared()).map_err(|e| e.to_string())
        });
    let chain = match built {
        Ok(c) => c,
        Err(e) => {
            stop_sim();
            capture.release();
            return Err(format!("the box's speaker on {}: {e}", dev.speaker));
        }
    };
    let mut all: Vec<gst::Element> = vec![src.clone().upcast()];
    all.extend(chain);
    let started = speaker.add_many(&all).is_ok()
        && gst::Element::link_many(&all).is_ok()
        && speaker.set_state(gst::State::Playing).is_ok();
    let started_at = control.written.load(Ordering::SeqCst);
    start.store(started_at, Ordering::SeqCst);
    let total = (END * BPS) as u64;
    let mut pos = 0usize;
    const LEAD: Duration = Duration::from_millis(40);
    let clock = speaker.clock();
    let base = speaker.base_time().unwrap_or(gst::ClockTime::ZERO);
    let now = || {
        clock
            .as_ref()
            .map(|c| c.time())
            .map_or(gst::ClockTime::ZERO, |t| t.saturating_sub(base))
    };
    let first = now() + gst::ClockTime::from_mseconds(60);
    for i in 0..total {
        if !started {
            break;
        }
        let pts = first + gst::ClockTime::from_mseconds(i * 10);
        let ahead = gst::ClockTime::from_nseconds(LEAD.as_nanos() as u64);
        let wait = pts.saturating_sub(now() + ahead);
        if wait > gst::ClockTime::ZERO {
            std::thread::sleep(Duration::from_nanos(wait.nseconds()));
        }
        let secs = i as f64 / BPS;
        let frame: Vec<f32> = if within(&FAR, secs) {
            (0..N)
                .map(|_| {
                    pos += 1;
                    far[pos % far.len()]
                })
                .collect()
        } else {
            vec![0.0; N]
        };
        let mut bytes = vec![0u8; 2 * N];
        roombox::media::echo::frames::f32_to_s16(&frame, &mut bytes);
        let mut buf = gst::Buffer::from_slice(bytes);
        if let Some(b) = buf.get_mut() {
            b.set_pts(pts);
            b.set_duration(gst::ClockTime::from_mseconds(10));
        }
        if src.push_buffer(buf).is_err() {
            break;
        }
    }
    let _ = src.end_of_stream();
    // The speaker's last blocks through its buffer, the room and the box.
    std::thread::sleep(Duration::from_millis(1000));
    let box_pace = (received.load(Ordering::SeqCst) - box_from.1) as f64
        / f64::from(RATE)
        / box_from.0.elapsed().as_secs_f64();
    let sim_seconds = since.elapsed().as_secs_f64();
    stop_sim();
    let _ = speaker.set_state(gst::State::Null);
    let status = EchoPath::shared().status();
    capture.release();
    EchoPath::shared().configure(None);
    let sim_result = sim_thread.join();
    if !started {
        return Err(format!(
            "the box's speaker on {} did not start",
            dev.speaker
        ));
    }
    match sim_result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("the room simulator: {e}")),
        Err(_) => return Err("the room simulator panicked".into()),
    }

    let lead = lead.load(Ordering::SeqCst);
    let mut out = std::mem::take(&mut *out.lock().unwrap());
    let out = match usize::try_from(lead) {
        Ok(l) if lead != i64::MAX => {
            let mut aligned = vec![0.0; l];
            aligned.append(&mut out);
            aligned
        }
        _ => out.split_off((lead.unsigned_abs() as usize).min(out.len())),
    };
    let blocks = std::mem::take(&mut *blocks.lock().unwrap());
    let seconds = blocks.len() as f64 / BPS;
    Ok(Run {
        sim_pace: seconds / sim_seconds,
        box_pace,
        sim_ms_per_s: control.busy_us.load(Ordering::SeqCst) as f64 / 1000.0 / seconds.max(0.01),
        blocks,
        out,
        start: started_at as usize,
        status,
        xruns: control.xruns.load(Ordering::SeqCst),
        lead,
    })
}
