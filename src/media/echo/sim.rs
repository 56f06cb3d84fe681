//! A room for the echo canceller's tests and benches, with no sound card: it takes what the box
//! plays on its speaker, delays it, drives a loudspeaker a little into saturation, convolves it
//! with a room impulse response, adds noise and a near-end talker, and gives the result to the
//! box as its microphone.
//!
//! [`Room`] is the pure signal path, 10 ms at a time. [`run_pipes`] drives a box through its two
//! plain ends: it reads the speaker's pipe (`[room.playback] audio_sink = "filesink
//! location=…"`, S16LE mono at the mic's rate) and writes the mic's pipe (`[media.audio] source
//! = "pipe"`). The impulse responses are `tests/data/room-ir-*-16k.f32` (little-endian f32,
//! 16 kHz, 0.25 s; how they were made is in `tests/data/README.md`).

use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Reads an impulse response file: little-endian f32 samples.
pub fn load_ir(path: &Path) -> std::io::Result<Vec<f32>> {
    let bytes = std::fs::read(path)?;
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// The room's settings.
#[derive(Debug, Clone)]
pub struct RoomParams {
    /// The mic's (and speaker's) rate.
    pub rate: u32,
    /// From the speaker's signal to the direct sound at the mic, ms (the sink's buffer and the
    /// air); 40 to 150 in the tests.
    pub delay_ms: u32,
    /// The room's impulse response at `rate`, peak 1.
    pub ir: Vec<f32>,
    /// Gain of the echo path (the speaker's loudness at the mic).
    pub echo_gain: f32,
    /// The loudspeaker's saturation: `tanh(drive·x)/drive`; 0 is linear.
    pub drive: f32,
    /// Noise at the mic, dBFS RMS.
    pub noise_dbfs: f32,
}

/// The room: the echo path and the noise. The near-end talker is added by the caller, who
/// knows what it says when.
pub struct Room {
    params: RoomParams,
    delay: VecDeque<f32>,
    conv: Convolver,
    seed: u32,
}

impl Room {
    /// A quiet room of `params`.
    pub fn new(params: RoomParams) -> Room {
        let block = (params.rate / 100) as usize;
        let delay = std::iter::repeat_n(0.0, Self::delay_samples(&params)).collect();
        Room {
            conv: Convolver::new(&params.ir, block),
            params,
            delay,
            seed: 0x1234_5678,
        }
    }

    fn delay_samples(p: &RoomParams) -> usize {
        (p.rate as usize * p.delay_ms as usize) / 1000
    }

    /// Moves the speaker and mic: a new impulse response, from the next block on.
    pub fn set_ir(&mut self, ir: &[f32]) {
        self.params.ir = ir.to_vec();
        self.conv.set_ir(ir);
    }

    /// Changes the delay at once (a sound card's buffer that jumped).
    pub fn set_delay_ms(&mut self, ms: u32) {
        let old = Self::delay_samples(&self.params);
        self.params.delay_ms = ms;
        let new = Self::delay_samples(&self.params);
        if new > old {
            for _ in old..new {
                self.delay.push_front(0.0);
            }
        } else {
            for _ in new..old {
                self.delay.pop_front();
            }
        }
    }

    /// The echo at the mic of one 10 ms block the speaker played.
    pub fn echo(&mut self, speaker: &[f32]) -> Vec<f32> {
        let d = self.params.drive;
        let g = self.params.echo_gain;
        let mut driven = Vec::with_capacity(speaker.len());
        for &x in speaker {
            self.delay.push_back(x);
            let y = self.delay.pop_front().unwrap_or(0.0);
            driven.push(if d > 0.0 { (d * y).tanh() / d } else { y } * g);
        }
        self.conv.process(&driven)
    }

    /// Noise for one block: uniform white noise at `noise_dbfs` RMS.
    pub fn noise(&mut self, n: usize) -> Vec<f32> {
        let rms = 10f32.powf(self.params.noise_dbfs / 20.0);
        // Uniform in -a..a has RMS a/√3.
        let a = rms * 3f32.sqrt();
        (0..n)
            .map(|_| {
                self.seed = self
                    .seed
                    .wrapping_mul(1_664_525)
                    .wrapping_add(1_013_904_223);
                ((self.seed >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0) * a
            })
            .collect()
    }
}

/// Overlap-add convolution of fixed blocks with an impulse response, by FFT.
struct Convolver {
    block: usize,
    n: usize,
    h: Vec<Complex32>,
    tail: Vec<f32>,
    fwd: Arc<dyn Fft<f32>>,
    inv: Arc<dyn Fft<f32>>,
    buf: Vec<Complex32>,
}

impl Convolver {
    fn new(ir: &[f32], block: usize) -> Convolver {
        let n = (block + ir.len()).next_power_of_two();
        let mut planner = FftPlanner::new();
        let mut c = Convolver {
            block,
            n,
            h: Vec::new(),
            tail: vec![0.0; n],
            fwd: planner.plan_fft_forward(n),
            inv: planner.plan_fft_inverse(n),
            buf: vec![Complex32::default(); n],
        };
        c.set_ir(ir);
        c
    }

    fn set_ir(&mut self, ir: &[f32]) {
        let mut h: Vec<Complex32> = ir
            .iter()
            .take(self.n - self.block)
            .map(|&v| Complex32::new(v, 0.0))
            .collect();
        h.resize(self.n, Complex32::default());
        self.fwd.process(&mut h);
        self.h = h;
    }

    fn process(&mut self, x: &[f32]) -> Vec<f32> {
        let len = x.len().min(self.block);
        for (i, b) in self.buf.iter_mut().enumerate() {
            *b = Complex32::new(if i < len { x[i] } else { 0.0 }, 0.0);
        }
        self.fwd.process(&mut self.buf);
        for (b, h) in self.buf.iter_mut().zip(&self.h) {
            *b *= h;
        }
        self.inv.process(&mut self.buf);
        let scale = 1.0 / self.n as f32;
        for (t, b) in self.tail.iter_mut().zip(&self.buf) {
            *t += b.re * scale;
        }
        let out = self.tail[..len].to_vec();
        self.tail.drain(..len);
        self.tail.resize(self.n, 0.0);
        out
    }
}

/// One 10 ms block as the simulator saw it, for the measurements.
#[derive(Debug, Clone, Default)]
pub struct Block {
    /// Its index since the simulator started (10 ms each).
    pub index: u64,
    /// The echo alone, as it reached the mic.
    pub echo: Vec<f32>,
    /// The near-end talker alone.
    pub near: Vec<f32>,
    /// What the mic heard: echo, near end and noise.
    pub mic: Vec<f32>,
}

/// The simulator's controls while it runs, from another thread.
#[derive(Clone, Default)]
pub struct Control {
    /// Set to end [`run_pipes`] after the block in hand.
    pub stop: Arc<AtomicBool>,
    /// Blocks written to the mic so far.
    pub written: Arc<AtomicU64>,
}

/// Runs `room` between the speaker's pipe and the mic's pipe until the speaker's writer goes
/// away or `control.stop` is set. `near(index, n)` gives the near-end talker's block `index`,
/// `events(index, room)` may change the room before a block (a moved speaker, a delay jump),
/// and `record` gets every block.
pub fn run_pipes(
    speaker: &Path,
    mic: &Path,
    mut room: Room,
    control: Control,
    mut near: impl FnMut(u64, usize) -> Vec<f32>,
    mut events: impl FnMut(u64, &mut Room),
    mut record: impl FnMut(Block),
) -> std::io::Result<()> {
    let n = (room.params.rate / 100) as usize;
    // The mic first: the box opens its mic at start, and its speaker only when it plays.
    let mut mic_out = std::fs::OpenOptions::new().write(true).open(mic)?;
    let mut spk = std::fs::File::open(speaker)?;
    let mut raw = vec![0u8; 2 * n];
    let mut out = vec![0u8; 2 * n];
    let mut index = 0u64;
    while !control.stop.load(Ordering::Relaxed) {
        if spk.read_exact(&mut raw).is_err() {
            break;
        }
        let mut played = vec![0f32; n];
        super::frames::s16_to_f32(&raw, &mut played);
        events(index, &mut room);
        let echo = room.echo(&played);
        let talker = near(index, n);
        let noise = room.noise(n);
        let heard: Vec<f32> = (0..n)
            .map(|i| echo[i] + talker.get(i).copied().unwrap_or(0.0) + noise[i])
            .collect();
        super::frames::f32_to_s16(&heard, &mut out);
        mic_out.write_all(&out)?;
        control.written.fetch_add(1, Ordering::Relaxed);
        record(Block {
            index,
            echo,
            near: talker,
            mic: heard,
        });
        index += 1;
    }
    Ok(())
}

/// Sum of squares.
pub fn energy(x: &[f32]) -> f64 {
    x.iter().map(|v| f64::from(*v) * f64::from(*v)).sum()
}

/// `10·log10(a/b)`.
pub fn db(a: f64, b: f64) -> f64 {
    10.0 * (a.max(1e-20) / b.max(1e-20)).log10()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(ir: Vec<f32>) -> RoomParams {
        RoomParams {
            rate: 16_000,
            delay_ms: 40,
            ir,
            echo_gain: 1.0,
            drive: 0.0,
            noise_dbfs: -200.0,
        }
    }

    #[test]
    fn an_impulse_comes_back_delayed_and_shaped_by_the_room() {
        let ir = vec![1.0, 0.0, 0.5, 0.0, 0.0, -0.25];
        let mut room = Room::new(params(ir.clone()));
        let mut out = Vec::new();
        let mut x = vec![0.0; 160];
        x[0] = 1.0;
        out.extend(room.echo(&x));
        for _ in 0..9 {
            out.extend(room.echo(&[0.0; 160]));
        }
        let at = 640; // 40 ms at 16 kHz
        for (k, h) in ir.iter().enumerate() {
            assert!((out[at + k] - h).abs() < 1e-4, "tap {k}: {}", out[at + k]);
        }
        let elsewhere: f64 = energy(&out[..at]) + energy(&out[at + ir.len()..]);
        assert!(elsewhere < 1e-8);
    }

    #[test]
    fn a_delay_jump_moves_the_echo() {
        let mut room = Room::new(params(vec![1.0]));
        room.set_delay_ms(90);
        let mut x = vec![0.0; 160];
        x[0] = 1.0;
        let mut out = room.echo(&x);
        for _ in 0..9 {
            out.extend(room.echo(&[0.0; 160]));
        }
        let peak = out
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i);
        assert_eq!(peak, Some(1440));
    }

    #[test]
    fn noise_has_the_level_asked_for() {
        let mut p = params(vec![1.0]);
        p.noise_dbfs = -40.0;
        let mut room = Room::new(p);
        let n = room.noise(16_000);
        let rms_db = db(energy(&n) / n.len() as f64, 1.0);
        assert!((rms_db + 40.0).abs() < 0.5, "{rms_db}");
    }
}
