//! Echo cancellation in a simulated room (tier 1: no sound card): the box's real audio path,
//! the capture pipeline with its mic on a pipe and the speaker's chain with its sink on a pipe,
//! both ends met by `roombox::media::echo::sim` (a delay, a little loudspeaker saturation, a
//! room impulse response made with pyroomacoustics, noise and a near-end talker).
//!
//! `echo_is_cancelled_and_the_near_end_talker_kept` asserts what a listener at the far end
//! would check: the echo of far-end speech is taken down after convergence, a near-end talker
//! alone passes through, and in double talk the near-end talker keeps most of their level.
//! `bench_aec` (ignored; benches/aec.sh runs it in release) measures the candidates side by
//! side on the same harness and prints a markdown table; `bench_double_talk_captions` (also
//! run by benches/aec.sh) the live captions of the near-end talker with and without the far end
//! talking over them.
//!
//! One scenario runs at a time (`one_at_a_time`): the box has one echo path
//! (`EchoPath::shared`), as it has one speaker and one mic.
//!
//! The live captions decode the room from the canceller's linear output where the room talks
//! (`transcribe::linear`): `echo_is_cancelled_and_the_near_end_talker_kept` checks that the
//! captions' tap gets it, and `at_48_khz_the_linear_output_meets_the_captions_tap_in_time`
//! that it meets the tap in time at the box's own rate.

mod support;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use roombox::config::{AudioSource, Config, VideoSource};
use roombox::media::echo::sim::{self, db, energy, Block, Control, Room, RoomParams};
use roombox::media::echo::{Backend, EchoPath, Processing};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const RATE: u32 = 16_000;
/// Samples in one 10 ms block.
const N: usize = (RATE / 100) as usize;
/// Blocks per second.
const BPS: u64 = 100;

/// What happens when, in seconds from the first block the speaker plays.
#[derive(Debug, Clone)]
struct Timeline {
    /// Far-end speech plays over these spans.
    far: Vec<(f64, f64)>,
    /// The near-end talker talks over these.
    near: Vec<(f64, f64)>,
    /// The speaker is moved (the impulse response swapped) at this second.
    path_change: Option<f64>,
    /// The delay jumps by 50 ms at this second.
    delay_jump: Option<f64>,
    /// The box's speaker volume is set (`set-volume`) to this percent at this second.
    volume: Option<(f64, u32)>,
    /// The whole run.
    end: f64,
}

fn within(spans: &[(f64, f64)], t: f64) -> bool {
    spans.iter().any(|(a, b)| t >= *a && t < *b)
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// espeak-ng saying `text` in `voice`, as a WAV file in `dir`.
fn espeak_wav(dir: &Path, voice: &str, text: &str) -> PathBuf {
    let wav = dir.join(format!("{voice}.wav"));
    let ok = std::process::Command::new("espeak-ng")
        .args(["-v", voice, "-s", "150", "-w"])
        .arg(&wav)
        .arg(text)
        .status()
        .expect("espeak-ng (scripts/setup.sh installs it)")
        .success();
    assert!(ok, "espeak-ng failed");
    wav
}

/// espeak-ng saying `text` in `voice`, as samples at [`RATE`].
fn speech(dir: &Path, voice: &str, text: &str) -> Vec<f32> {
    gst::init().expect("gstreamer");
    let wav = espeak_wav(dir, voice, text);
    let bytes = roombox::media::filemic::decode(&wav, RATE, 1).expect("decode");
    let mut x = vec![0f32; bytes.len() / 2];
    roombox::media::echo::frames::s16_to_f32(&bytes, &mut x);
    x
}

use roombox::media::echo::sim::{FAR_TEXT, NEAR_TEXT};

/// What one run gave: every block the simulator made, and the box's processed mic.
struct Run {
    blocks: Vec<Block>,
    /// The box's processed mic, aligned to the blocks.
    out: Vec<f32>,
    /// What the canceller said of itself at the end.
    status: roombox::media::echo::EchoStatus,
    /// The canceller's linear output beside `out`, as the live captions' tap takes it: (index
    /// into `out`, the chunk's).
    linear: Vec<(u64, roombox::media::echo::linear::Linear)>,
}

impl Run {
    fn block_out(&self, i: usize) -> &[f32] {
        let a = (i * N).min(self.out.len());
        let b = ((i + 1) * N).min(self.out.len());
        &self.out[a..b]
    }

    /// The linear output the captions' tap got, by sample of `out` (None: none for it).
    fn linear_dense(&self) -> Vec<Option<f32>> {
        let mut d = vec![None; self.out.len()];
        for (at, l) in &self.linear {
            for (k, x) in l.samples.iter().enumerate() {
                if let Some(slot) = d.get_mut(*at as usize + k) {
                    *slot = Some(*x);
                }
            }
        }
        d
    }

    /// The mic's energy over the linear output's, dB, over [a, b) s: what the canceller's
    /// linear filter took off. Counts only samples the tap had a linear output for.
    fn linear_erle(&self, a: f64, b: f64) -> f64 {
        let d = self.linear_dense();
        let (mut mic, mut lin) = (0.0, 0.0);
        for i in (a * BPS as f64) as usize..(b * BPS as f64) as usize {
            let (Some(blk), Some(l)) = (self.blocks.get(i), d.get(i * N..(i + 1) * N)) else {
                continue;
            };
            if l.iter().all(Option::is_some) {
                mic += energy(&blk.mic);
                lin += l
                    .iter()
                    .map(|x| f64::from(x.unwrap_or(0.0)).powi(2))
                    .sum::<f64>();
            }
        }
        db(mic, lin)
    }

    /// ERLE over [a, b) s: the mic's energy over the box's, far-end single talk.
    fn erle(&self, a: f64, b: f64) -> f64 {
        let (mut mic, mut out) = (0.0, 0.0);
        for i in (a * BPS as f64) as usize..(b * BPS as f64) as usize {
            if let Some(blk) = self.blocks.get(i) {
                mic += energy(&blk.mic);
                out += energy(self.block_out(i));
            }
        }
        db(mic, out)
    }

    /// The near-end talker's level out over in, dB, over [a, b) s (0: kept whole).
    fn near_kept(&self, a: f64, b: f64) -> f64 {
        let (mut near, mut out) = (0.0, 0.0);
        for i in (a * BPS as f64) as usize..(b * BPS as f64) as usize {
            if let Some(blk) = self.blocks.get(i) {
                near += energy(&blk.near);
                out += energy(self.block_out(i));
            }
        }
        db(out, near)
    }

    /// How far the box's output lags the mic over [a, b) s, ms, by the best cross-correlation
    /// within ±50 ms: the delay the processing puts into the samples (the harness meets the
    /// box's sample i with the simulator's sample i). Measure it where the near end talks alone.
    fn lag_ms(&self, a: f64, b: f64) -> f64 {
        let (from, to) = ((a * BPS as f64) as usize, (b * BPS as f64) as usize);
        let mic: Vec<f32> = self.blocks[from.min(self.blocks.len())..to.min(self.blocks.len())]
            .iter()
            .flat_map(|b| b.mic.iter().copied())
            .collect();
        let start = from * N;
        let out = |i: usize| self.out.get(start + i).copied().unwrap_or(0.0);
        let (lag, _) = best_lag(&mic, out, RATE as usize / 20);
        lag as f64 * 1000.0 / f64::from(RATE)
    }

    /// Seconds from `from` until the ERLE over 0.5 s windows of far-end speech (windows whose
    /// echo stands 20 dB over the noise) first reaches `target` dB; None if it never does
    /// before `until`.
    fn convergence(&self, from: f64, until: f64, target: f64) -> Option<f64> {
        let w = (BPS / 2) as usize;
        let start = (from * BPS as f64) as usize;
        let end = (until * BPS as f64) as usize;
        let mut i = start;
        while i + w <= end.min(self.blocks.len()) {
            let (mut mic, mut echo, mut out) = (0.0, 0.0, 0.0);
            for k in i..i + w {
                mic += energy(&self.blocks[k].mic);
                echo += energy(&self.blocks[k].echo);
                out += energy(self.block_out(k));
            }
            let noise = mic - echo;
            if echo > 100.0 * noise.max(1e-12) && db(mic, out) >= target {
                return Some((i + w - start) as f64 / BPS as f64);
            }
            i += w / 5;
        }
        None
    }
}

/// The capture as the engine builds it from `config`, with the live captions' tap on its speech
/// feed at `rate`: each buffer becomes a chunk as `PcmSink` makes it (with the canceller's
/// linear output beside it), handed to `chunk`. Playing.
fn tapped_capture(
    config: &Config,
    processing: Option<Processing>,
    rate: u32,
    chunk: impl FnMut(roombox::media::pcm::PcmChunk) + Send + 'static,
) -> roombox::media::pipeline::Capture {
    let mut capture =
        roombox::media::pipeline::build(config, None, Arc::new(AtomicBool::new(true)), false)
            .expect("capture");
    if let Some(p) = processing {
        // The candidate under test (the config always asks for the default).
        EchoPath::shared().configure(Some(p));
    }
    roombox::media::pcm::tap_speech(&mut capture, rate, chunk).expect("the speech tap");
    capture.play().expect("capture plays");
    capture
}

/// The lag of `y` behind `x` (samples, within ±`max`) at which the two correlate best, and that
/// correlation.
fn best_lag(x: &[f32], y: impl Fn(usize) -> f32, max: usize) -> (i64, f64) {
    let corr = |lag: i64| {
        let (mut xy, mut xx, mut yy) = (0f64, 0f64, 0f64);
        for (i, a) in x
            .iter()
            .enumerate()
            .skip(max)
            .take(x.len().saturating_sub(2 * max))
        {
            let b = f64::from(y((i as i64 + lag) as usize));
            xy += f64::from(*a) * b;
            xx += f64::from(*a).powi(2);
            yy += b * b;
        }
        xy / (xx * yy).sqrt().max(1e-12)
    };
    (-(max as i64)..=max as i64)
        .map(|l| (l, corr(l)))
        .fold((0, f64::MIN), |b, (l, c)| if c > b.1 { (l, c) } else { b })
}

/// The box has one echo path (`EchoPath::shared`): a test holds this while it uses it.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static PATH: Mutex<()> = Mutex::new(());
    PATH.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs the box's audio path through the simulated room along `timeline`, with `processing`.
fn run(dir: &Path, timeline: &Timeline, processing: Processing, far: &[f32], near: &[f32]) -> Run {
    gst::init().expect("gstreamer");
    let _path = one_at_a_time();
    // Pipes of this run's own: a reader left from the run before must not steal from it.
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let n = RUNS.fetch_add(1, Ordering::SeqCst);
    let mic_pipe = dir.join(format!("mic{n}.pcm"));
    let spk_pipe = dir.join(format!("speaker{n}.pcm"));
    for p in [&mic_pipe, &spk_pipe] {
        let _ = std::fs::remove_file(p);
        nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    }

    // The capture, as the engine builds it, with its mic on the pipe.
    let mut config = Config::default();
    config.media.video.source = VideoSource::None;
    config.media.audio.source = AudioSource::Pipe;
    config.media.audio.file = mic_pipe.clone();
    config.media.audio.rate = RATE;
    config.media.audio.processing = processing.config();
    let out = Arc::new(Mutex::new(Vec::<f32>::new()));
    let linear = Arc::new(Mutex::new(Vec::new()));
    let received = Arc::new(AtomicU64::new(0));
    let control = Control::default();
    // Blocks the simulator had written less blocks the box gave back: the smallest is how
    // many the capture never saw (pushed before it played).
    let lead = Arc::new(AtomicU64::new(u64::MAX));
    let capture = {
        let out = out.clone();
        let linear = linear.clone();
        let written = control.written.clone();
        let lead = lead.clone();
        tapped_capture(&config, Some(processing), RATE, move |chunk| {
            let x = chunk.samples;
            let at = received.fetch_add(x.len() as u64, Ordering::SeqCst);
            if let Some(l) = chunk.linear {
                linear.lock().unwrap().push((at, l));
            }
            let got = at + x.len() as u64;
            let w = written.load(Ordering::SeqCst) * N as u64;
            lead.fetch_min(w.saturating_sub(got), Ordering::SeqCst);
            out.lock().unwrap().extend(x);
        })
    };

    // The room, between the two pipes.
    let ir_a = sim::load_ir(&data("room-ir-a-16k.f32")).expect("IR a");
    let ir_b = sim::load_ir(&data("room-ir-b-16k.f32")).expect("IR b");
    let room = Room::new(RoomParams {
        rate: RATE,
        delay_ms: 80,
        ir: ir_a,
        echo_gain: 0.25,
        drive: 1.5,
        noise_dbfs: -65.0,
    });
    let events = {
        let t = timeline.clone();
        let (mut moved, mut jumped) = (false, false);
        move |i: u64, room: &mut Room| {
            let secs = i as f64 / BPS as f64;
            if t.path_change.is_some_and(|at| !moved && secs >= at) {
                room.set_ir(&ir_b);
                moved = true;
            }
            if t.delay_jump.is_some_and(|at| !jumped && secs >= at) {
                room.set_delay_ms(80 + 50);
                jumped = true;
            }
        }
    };
    let blocks = Arc::new(Mutex::new(Vec::new()));
    let sim_thread = {
        let (mic_pipe, spk_pipe) = (mic_pipe.clone(), spk_pipe.clone());
        let control = control.clone();
        let blocks = blocks.clone();
        let near = near.to_vec();
        let t = timeline.clone();
        std::thread::spawn(move || {
            let mut pos = 0usize;
            sim::run_pipes(
                &spk_pipe,
                &mic_pipe,
                room,
                control,
                move |i, n| {
                    let secs = i as f64 / BPS as f64;
                    if within(&t.near, secs) {
                        (0..n)
                            .map(|_| {
                                pos += 1;
                                near[pos % near.len()] * 0.5
                            })
                            .collect()
                    } else {
                        vec![0.0; n]
                    }
                },
                events,
                move |b| blocks.lock().unwrap().push(b),
            )
        })
    };

    // The speaker: far-end speech into the box's real speaker chain, its sink on the pipe.
    let speaker = gst::Pipeline::with_name("far-end");
    let src = gst_app::AppSrc::builder()
        .caps(
            &gst::Caps::builder("audio/x-raw")
                .field("format", "S16LE")
                .field("rate", RATE as i32)
                .field("channels", 1i32)
                .field("layout", "interleaved")
                .build(),
        )
        .format(gst::Format::Time)
        .max_bytes(4 * N as u64 * 2)
        .block(true)
        .build();
    let sink = gst::ElementFactory::make("filesink")
        .property("location", spk_pipe.to_str().unwrap())
        .property("sync", true)
        .property_from_str("buffer-mode", "unbuffered")
        .build()
        .unwrap();
    let chain = roombox::media::speaker::chain(sink, &EchoPath::shared()).expect("speaker");
    let mut all: Vec<gst::Element> = vec![src.clone().upcast()];
    all.extend(chain);
    speaker.add_many(&all).unwrap();
    gst::Element::link_many(&all).unwrap();
    speaker.set_state(gst::State::Playing).unwrap();
    let total = (timeline.end * BPS as f64) as u64;
    let mut pos = 0usize;
    let mut volume = timeline.volume;
    for i in 0..total {
        let secs = i as f64 / BPS as f64;
        if let Some((_, percent)) = volume.filter(|(at, _)| secs >= *at) {
            roombox::media::speaker::set_volume(percent);
            volume = None;
        }
        let frame: Vec<f32> = if within(&timeline.far, secs) {
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
        {
            let b = buf.get_mut().unwrap();
            b.set_pts(gst::ClockTime::from_mseconds(i * 10));
            b.set_duration(gst::ClockTime::from_mseconds(10));
        }
        if src.push_buffer(buf).is_err() {
            break;
        }
    }
    let _ = src.end_of_stream();
    // The speaker's last blocks through the room and the box.
    std::thread::sleep(Duration::from_millis(700));
    control.stop.store(true, Ordering::SeqCst);
    let _ = speaker.set_state(gst::State::Null);
    let _ = sim_thread.join();
    let status = EchoPath::shared().status();
    capture.release();
    EchoPath::shared().configure(None);
    roombox::media::speaker::set_volume(100);

    let lead = lead.load(Ordering::SeqCst);
    let lead = if lead == u64::MAX { 0 } else { lead as usize };
    let mut out = std::mem::take(&mut *out.lock().unwrap());
    // Samples the capture never saw come first: pad the box's side so block i meets block i.
    let mut aligned = vec![0.0; lead];
    aligned.append(&mut out);
    let blocks = std::mem::take(&mut *blocks.lock().unwrap());
    let linear = std::mem::take(&mut *linear.lock().unwrap())
        .into_iter()
        .map(|(at, l)| (at + lead as u64, l))
        .collect();
    Run {
        blocks,
        out: aligned,
        status,
        linear,
    }
}

fn processing(backend: Backend, noise_suppression: bool) -> Processing {
    Processing {
        backend,
        rate: RATE,
        channels: 1,
        echo_cancel: true,
        noise_suppression,
        gain_control: false,
        high_pass: false,
    }
}

/// Far end alone for 10 s, the near end alone for 4 s, then both for 4 s.
fn talk() -> Timeline {
    Timeline {
        far: vec![(1.0, 11.0), (15.0, 19.0)],
        near: vec![(11.0, 19.0)],
        path_change: None,
        delay_jump: None,
        volume: None,
        end: 19.0,
    }
}

#[test]
fn echo_is_cancelled_and_the_near_end_talker_kept() {
    let dir = tempfile::tempdir().unwrap();
    let far = speech(dir.path(), "en-us", FAR_TEXT);
    let near = speech(dir.path(), "en-gb+f3", NEAR_TEXT);
    // Halfway through the far end's talk the box turns its speaker down (`set-volume`): the
    // canceller's reference is after the volume, so the ERLE measured across it must hold.
    let timeline = Timeline {
        volume: Some((8.0, 40)),
        ..talk()
    };
    let r = run(
        dir.path(),
        &timeline,
        processing(Backend::Aec3, false),
        &far,
        &near,
    );
    let erle = r.erle(7.0, 11.0);
    let after_volume = r.erle(8.0, 11.0);
    let echo_level = |a: f64, b: f64| {
        let e: f64 = r.blocks[(a * 100.0) as usize..(b * 100.0) as usize]
            .iter()
            .map(|b| energy(&b.echo))
            .sum();
        db(e / ((b - a) * f64::from(RATE)), 1.0)
    };
    let (loud, quiet) = (echo_level(5.0, 8.0), echo_level(8.5, 11.0));
    let alone = r.near_kept(11.5, 14.5);
    let double = r.near_kept(15.5, 18.5);
    eprintln!(
        "echo at the mic {loud:.1} dBFS, {quiet:.1} dBFS once the volume is turned down at 8 s; ERLE {erle:.1} dB after 6 s of far-end speech, {after_volume:.1} dB after the volume change; near end alone {alone:+.1} dB; in double talk {double:+.1} dB; canceller: {:?}",
        r.status
    );
    assert!(
        r.status.render_frames > 1_000,
        "the canceller heard the speaker: {:?}",
        r.status
    );
    // Measured here: 31 to 38 dB with aec3 (0 dB with no canceller); the bound leaves room
    // for a loaded machine.
    assert!(erle >= 25.0, "ERLE {erle:.1} dB");
    assert!(quiet < loud - 3.0, "the speaker was turned down");
    // Measured here: 27.6 dB, where the echo, 8 dB quieter, stands only about 29 dB over the
    // room's noise (-65 dBFS), which bounds what any canceller can show.
    assert!(
        after_volume >= 20.0,
        "ERLE {after_volume:.1} dB after the volume change"
    );
    assert!(alone >= -1.0, "the near end alone lost {alone:.1} dB");

    // What the live captions decode the room from (`transcribe::linear`): the canceller's
    // linear output, at the tap, beside nearly every sample; taking the echo down in far-end
    // single talk, the near end alone through untouched.
    let d = r.linear_dense();
    let covered = d.iter().filter(|x| x.is_some()).count() as f64 / d.len().max(1) as f64;
    let (lin_erle, lin_alone) = (r.linear_erle(5.0, 8.0), r.linear_erle(11.5, 14.5));
    eprintln!(
        "linear output beside {:.1} % of the tap's samples; it took {lin_erle:.1} dB off the far end's echo, {lin_alone:+.1} dB off the near end alone",
        100.0 * covered
    );
    assert!(
        covered >= 0.9,
        "the captions' tap had the linear output for only {:.1} % of its samples",
        100.0 * covered
    );
    // Measured here: about 11 dB (this room's loudspeaker saturates; the suppressor takes the
    // rest), and 0.0 dB for the near end alone.
    assert!(
        lin_erle >= 6.0,
        "the linear output took {lin_erle:.1} dB off the echo"
    );
    assert!(
        lin_alone.abs() <= 1.0,
        "the linear output changed the near end alone by {lin_alone:+.1} dB"
    );
    // Measured here: -2.5 to -5.3 dB (the suppressor ducks the near end while the far end
    // talks).
    assert!(
        double >= -8.0,
        "in double talk the near end lost {double:.1} dB"
    );
}

/// The box's own rate (48 kHz): the captions' tap takes the mic at 16 kHz through a resampler,
/// and the canceller's linear output (16 kHz whatever the mic's rate) must meet it sample for
/// sample by the buffers' times. With no far end playing, the linear output is the mic, so it
/// must match what the tap got at (nearly) no lag.
#[test]
fn at_48_khz_the_linear_output_meets_the_captions_tap_in_time() {
    gst::init().expect("gstreamer");
    let _path = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let wav = espeak_wav(dir.path(), "en-us", NEAR_TEXT);
    let mut config = Config::default();
    config.media.video.source = VideoSource::None;
    config.media.audio.source = AudioSource::File;
    config.media.audio.file = wav;
    config.media.audio.rate = 48_000;
    config.media.audio.processing = processing(Backend::Aec3, false).config();
    let got = Arc::new(Mutex::new(Vec::new()));
    let capture = {
        let got = got.clone();
        tapped_capture(&config, None, 16_000, move |c| got.lock().unwrap().push(c))
    };
    // The speaker of a call where nobody else talks: silence, 10 ms at a time, as the room's
    // playback hands it over (with no render at all the canceller gives no linear output).
    let stop = Arc::new(AtomicBool::new(false));
    let speaker = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let t0 = std::time::Instant::now();
            let mut k = 0u32;
            while !stop.load(Ordering::SeqCst) {
                EchoPath::shared().render_s16(48_000, &[0u8; 960]);
                k += 1;
                if let Some(d) = (Duration::from_millis(10) * k).checked_sub(t0.elapsed()) {
                    std::thread::sleep(d);
                }
            }
        })
    };
    std::thread::sleep(Duration::from_secs(4));
    stop.store(true, Ordering::SeqCst);
    let _ = speaker.join();
    capture.release();
    EchoPath::shared().configure(None);

    let chunks = std::mem::take(&mut *got.lock().unwrap());
    let (mut tap, mut lin) = (Vec::new(), Vec::new());
    let mut without = 0;
    for c in &chunks {
        match &c.linear {
            Some(l) => {
                tap.extend_from_slice(&c.samples);
                lin.extend_from_slice(&l.samples);
            }
            None => without += 1,
        }
    }
    assert!(
        without * 10 <= chunks.len(),
        "{without} of {} chunks came without the linear output",
        chunks.len()
    );
    assert!(tap.len() >= 16_000 * 2, "{} samples with it", tap.len());
    // The lag (in samples at 16 kHz) at which the two match best, and how well.
    let (lag, best) = best_lag(&tap, |j| lin.get(j).copied().unwrap_or(0.0), 480);
    let e = |x: &[f32]| x.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / x.len() as f64;
    eprintln!(
        "tap {:.1} dBFS, linear {:.1} dBFS",
        db(e(&tap), 1.0),
        db(e(&lin), 1.0)
    );
    eprintln!(
        "{} chunks, {without} without; the tap and the linear output match best at a lag of {lag} samples ({:.2} ms), correlation {best:.3}",
        chunks.len(),
        lag as f64 / 16.0
    );
    assert!(
        best >= 0.9,
        "the linear output is not the mic: correlation {best:.3}"
    );
    // Measured here: the tap 4.5 ms behind, the delay of the resampler before it, which its
    // timestamps do not carry. Under a 10 ms frame moves an utterance's edges by nothing Whisper
    // hears.
    assert!(
        lag.abs() <= 160,
        "the linear output lags the tap by {lag} samples ({:.1} ms)",
        lag as f64 / 16.0
    );
}

/// The candidates side by side on the same harness, with no canceller as the baseline.
/// Prints a markdown table (benches/aec.sh).
#[test]
#[ignore]
fn bench_aec() {
    let dir = tempfile::tempdir().unwrap();
    let far = speech(dir.path(), "en-us", FAR_TEXT);
    let near = speech(dir.path(), "en-gb+f3", NEAR_TEXT);
    let moves = Timeline {
        far: vec![(1.0, 31.0)],
        near: vec![],
        path_change: Some(11.0),
        delay_jump: Some(21.0),
        volume: None,
        end: 31.0,
    };
    println!("| canceller | ERLE, NS off (dB) | ERLE, NS on (dB) | to 20 dB (s) | to 20 dB after a path change (s) | to 20 dB after a 50 ms delay jump (s) | near end alone (dB) | near end in double talk (dB) | delay added (ms) | CPU at 48 kHz, all stages (% of a core) | mic frames that passed late, unprocessed |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    // The delay the processing adds: how far the box's output lags the mic while the near end
    // talks alone, over the same with no canceller.
    let mut baseline_lag = 0.0;
    for backend in [Backend::Passthrough, Backend::Aec3] {
        let off = run(dir.path(), &talk(), processing(backend, false), &far, &near);
        let on = run(dir.path(), &talk(), processing(backend, true), &far, &near);
        let m = run(dir.path(), &moves, processing(backend, false), &far, &near);
        let secs = |v: Option<f64>| v.map_or("never".to_string(), |s| format!("{s:.1}"));
        let lag = off.lag_ms(11.5, 14.5);
        if backend == Backend::Passthrough {
            baseline_lag = lag;
        }
        let cpu = 100.0
            * roombox::media::echo::cost(
                Processing {
                    rate: 48_000,
                    noise_suppression: true,
                    gain_control: true,
                    high_pass: true,
                    ..processing(backend, true)
                },
                5,
            );
        println!(
            "| {} | {:.1} | {:.1} | {} | {} | {} | {:+.1} | {:+.1} | {:.1} | {:.1} | {} |",
            match backend {
                Backend::Aec3 => "aec3 0.4 (the default)",
                Backend::Passthrough => "none (baseline)",
            },
            off.erle(7.0, 11.0),
            on.erle(7.0, 11.0),
            secs(off.convergence(1.0, 11.0, 20.0)),
            secs(m.convergence(11.0, 21.0, 20.0)),
            secs(m.convergence(21.0, 31.0, 20.0)),
            off.near_kept(11.5, 14.5),
            off.near_kept(15.5, 18.5),
            lag - baseline_lag,
            cpu,
            off.status.late_frames + on.status.late_frames + m.status.late_frames,
        );
    }

    // The box's defaults where a speaker plays: every stage on (noise suppression, gain
    // control, the high-pass), as in a real call. Gain control lifts what the canceller leaves.
    let all = Processing {
        noise_suppression: true,
        gain_control: true,
        high_pass: true,
        ..processing(Backend::Aec3, true)
    };
    let t = run(dir.path(), &talk(), all, &far, &near);
    let m = run(dir.path(), &moves, all, &far, &near);
    let secs = |v: Option<f64>| v.map_or("never".to_string(), |s| format!("{s:.1}"));
    println!();
    println!("| aec3, every stage on (the defaults) | ERLE (dB) | to 20 dB (s) | to 20 dB after a path change (s) | to 20 dB after a 50 ms delay jump (s) | near end alone (dB) | near end in double talk (dB) | delay added (ms) | mic frames that passed late |");
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| aec3 0.4, NS + AGC2 + high-pass | {:.1} | {} | {} | {} | {:+.1} | {:+.1} | {:.1} | {} |",
        t.erle(7.0, 11.0),
        secs(t.convergence(1.0, 11.0, 20.0)),
        secs(m.convergence(11.0, 21.0, 20.0)),
        secs(m.convergence(21.0, 31.0, 20.0)),
        t.near_kept(11.5, 14.5),
        t.near_kept(15.5, 18.5),
        t.lag_ms(11.5, 14.5) - baseline_lag,
        t.status.late_frames + m.status.late_frames,
    );
}

/// The live captions of the near-end talker (the box's real capture and processing, then the
/// captions' own decoding: `worker::transcribe_pcm_linear`, tiny.en) alone and with the far end
/// talking over them, with the canceller and without; word error rate against what they said.
/// Prints a markdown table (benches/aec.sh).
#[test]
#[ignore]
fn bench_double_talk_captions() {
    use roombox::transcribe::linear::LinearTrack;
    use roombox::transcribe::vad::VadConfig;
    use roombox::transcribe::whisper::Whisper;
    use roombox::transcribe::worker;
    use support::speech::{errors, words};
    let Some(model) = support::speech::model() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let far = speech(dir.path(), "en-us", FAR_TEXT);
    let near = speech(dir.path(), "en-gb+f3", NEAR_TEXT);
    let len = near.len() as f64 / f64::from(RATE);
    // The far end talks from 1 s (the canceller has 3 s before the near end starts), over the
    // whole of the near end's passage, looping.
    let (from, to) = (4.0, 4.0 + len);
    let timeline = |double: bool| Timeline {
        far: if double {
            vec![(1.0, to + 1.5)]
        } else {
            vec![]
        },
        near: vec![(from, to)],
        path_change: None,
        delay_jump: None,
        volume: None,
        end: to + 1.5,
    };
    let mut engine = Whisper::load(&model, "en", 1).expect("the model loads");
    let reference = words(NEAR_TEXT);
    // As the live captions decode the room's mic: cut by the VAD on the processed mic, each
    // utterance decoded from the canceller's linear output unless it is mostly echo
    // (`transcribe::linear`); or (`linear` false) from the processed mic, as before.
    let mut caption = |r: &Run, linear: bool| {
        let a = ((from - 0.3) * f64::from(RATE)) as usize;
        let b = (((to + 1.0) * f64::from(RATE)) as usize).min(r.out.len());
        let pcm = &r.out[a.min(b)..b];
        let mut track = LinearTrack::default();
        if linear {
            for (at, l) in &r.linear {
                if *at as usize >= a {
                    track.push(*at - a as u64, Some(l.clone()));
                }
            }
        }
        let pieces = worker::transcribe_pcm_linear(&mut engine, &VadConfig::default(), pcm, &track)
            .expect("transcribed");
        let text: Vec<String> = pieces.into_iter().map(|p| p.text).collect();
        let text = text.join(" ");
        let wer = 100.0 * errors(&reference, &words(&text)) as f64 / reference.len() as f64;
        (wer, text)
    };
    let mut rows = Vec::new();
    // (what, canceller, far end, near end, captions from the linear output where it is the room)
    for (what, backend, far_on, near_on, linear) in [
        (
            "near end alone, aec3, as the live captions decode (the baseline)",
            Backend::Aec3,
            false,
            true,
            true,
        ),
        (
            "double talk, aec3, as the live captions decode (the default)",
            Backend::Aec3,
            true,
            true,
            true,
        ),
        (
            "double talk, no canceller",
            Backend::Passthrough,
            true,
            true,
            false,
        ),
        (
            "far end alone, aec3, as the live captions decode",
            Backend::Aec3,
            true,
            false,
            true,
        ),
    ] {
        let mut t = timeline(far_on);
        if !near_on {
            t.near.clear();
        }
        let r = run(dir.path(), &t, processing(backend, true), &far, &near);
        let (wer, text) = caption(&r, linear);
        let kept = r.near_kept(from + 0.5, to - 0.5);
        rows.push((what, wer, kept, text));
        if backend == Backend::Aec3 && far_on && near_on && linear {
            // The processed mic alone, of the same run: the captions before the linear output.
            let (wer, text) = caption(&r, false);
            rows.push((
                "double talk, aec3, the processed mic alone (the same run)",
                wer,
                kept,
                text,
            ));
        }
    }
    let alone = rows[0].1;
    println!("| captions of the room's mic | WER of the near-end talker | points over alone | near end kept (dB) | target |");
    println!("|---|---|---|---|---|");
    for (i, (what, wer, kept, text)) in rows.iter().enumerate() {
        let (wer, points, kept) = if what.starts_with("far end alone") {
            let n = words(text).len();
            let t = if n == 0 {
                "no words: **met**"
            } else {
                "**not met**"
            };
            println!("| {what} | {n} words captioned | | | none of the far end's: {t} |");
            continue;
        } else {
            (*wer, wer - alone, *kept)
        };
        let target = match i {
            1 if points <= 10.0 => "≤ 10 points: **met**",
            1 => "≤ 10 points: **not met**",
            _ => "",
        };
        println!("| {what} | {wer:.1} % | {points:+.1} | {kept:+.1} | {target} |");
    }
    println!();
    for (what, _, _, text) in &rows {
        println!("- {what}: \"{text}\"");
    }
}
