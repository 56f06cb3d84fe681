//! A room for the echo canceller's tests and benches, with no sound card: it takes what the box
//! plays on its speaker, delays it, drives a loudspeaker a little into saturation, convolves it
//! with a room impulse response, adds noise and a near-end talker, and gives the result to the
//! box as its microphone.
//!
//! [`Room`] is the pure signal path, 10 ms at a time. [`run_pipes`] drives a box through its two
//! plain ends: it reads the speaker's pipe (`[room.playback] audio_sink = "filesink
//! location=…"`, S16LE mono at the mic's rate) and writes the mic's pipe (`[media.audio] source
//! = "pipe"`). [`run_alsa`] does the same through two ALSA devices (`[room.playback]
//! audio_sink = "alsa"` on one side of a loopback pair, `[media.audio] source = "alsa"` on the
//! other's), with the sound card's clocks and buffers: the rig's `snd-aloop` (hw-tests/) or a
//! cable from a line-out to a line-in. The impulse responses are `tests/data/room-ir-*-16k.f32`
//! (little-endian f32, 16 kHz, 0.25 s; how they were made is in `tests/data/README.md`).

use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// What the far end says in the simulated room's scripted calls (tier 1 and tier 2).
pub const FAR_TEXT: &str = "Good morning everyone. Can you all hear me in the meeting room? \
    I wanted to go over the quarterly numbers before we talk about the launch. \
    Sales in the northern region were up eleven percent, and the south held steady.";
/// What the near-end talker says over it.
pub const NEAR_TEXT: &str = "Yes, we can hear you. Before you go on, the projector in this room \
    keeps switching off, so we will only see the slides on the screen by the window. \
    Could you send the deck by mail as well?";

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

    /// The same room convolving `samples` at a time, for [`Room::echo`] blocks of up to that:
    /// fewer, larger FFTs for a simulator short of CPU (an unoptimised build in an emulated
    /// guest), at the cost of reading that much of the speaker before the echo of its start.
    pub fn with_block(mut self, samples: usize) -> Room {
        self.conv = Convolver::new(&self.params.ir, samples.max(1));
        self
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

    /// The echo at the mic of one block the speaker played (10 ms, or up to
    /// [`Room::with_block`]'s).
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
    ir_len: usize,
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
            ir_len: 0,
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
        self.ir_len = ir.len().min(self.n - self.block);
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
        for (b, &v) in self.buf.iter_mut().zip(&x[..len]) {
            *b = Complex32::new(v, 0.0);
        }
        self.buf[len..].fill(Complex32::default());
        self.fwd.process(&mut self.buf);
        for (b, h) in self.buf.iter_mut().zip(&self.h) {
            *b *= h;
        }
        self.inv.process(&mut self.buf);
        let scale = 1.0 / self.n as f32;
        // Only the block and the response's length are non-zero: the rest is the FFT's padding.
        let reach = (len + self.ir_len).min(self.n);
        for (t, b) in self.tail[..reach].iter_mut().zip(&self.buf) {
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
    /// ALSA over- and underruns [`run_alsa`] recovered from (each one shifts the echo's delay).
    pub xruns: Arc<AtomicU64>,
    /// CPU time [`run_alsa`] spent making the mic's blocks (not waiting on the devices), µs.
    pub busy_us: Arc<AtomicU64>,
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

/// The ALSA buffers [`run_alsa`] asks for, in 10 ms blocks, and the silence it keeps ahead in
/// the mic's beyond one chunk (written before the room's first block and after an underrun), so
/// that a simulator late on a loaded machine (an emulated guest) neither starves the box's mic
/// nor loses the speaker.
pub const ALSA_BUFFER_BLOCKS: usize = 50;
pub const ALSA_MARGIN_BLOCKS: usize = 2;

fn alsa_err(device: &str, what: &str, e: alsa::Error) -> std::io::Error {
    std::io::Error::other(format!("{device}: {what}: {e}"))
}

/// Opens `device` for 16-bit mono at `rate` in 10 ms periods, exactly: a loopback pair must
/// agree on the format, so a rate ALSA would only approximate is an error here.
fn open_pcm(
    device: &str,
    dir: alsa::Direction,
    rate: u32,
    start: usize,
) -> std::io::Result<alsa::PCM> {
    use alsa::pcm::{Access, Format, HwParams};
    let what = if dir == alsa::Direction::Capture {
        "capture"
    } else {
        "playback"
    };
    let pcm = alsa::PCM::new(device, dir, false)
        .map_err(|e| alsa_err(device, &format!("cannot open for {what}"), e))?;
    let block = alsa::pcm::Frames::from(rate / 100);
    {
        let hw = HwParams::any(&pcm).map_err(|e| alsa_err(device, "no parameters", e))?;
        let set = |r: alsa::Result<()>, what: &str| {
            r.map_err(|e| {
                alsa_err(
                    device,
                    &format!("{what} refused (the other side of a loopback pair may be open at another format)"),
                    e,
                )
            })
        };
        set(hw.set_access(Access::RWInterleaved), "interleaved access")?;
        set(hw.set_format(Format::s16()), "S16")?;
        set(hw.set_channels(1), "mono")?;
        set(
            hw.set_rate(rate, alsa::ValueOr::Nearest),
            &format!("{rate} Hz"),
        )?;
        hw.set_period_size_near(block, alsa::ValueOr::Nearest)
            .map_err(|e| alsa_err(device, "10 ms periods", e))?;
        hw.set_buffer_size_near(block * ALSA_BUFFER_BLOCKS as alsa::pcm::Frames)
            .map_err(|e| alsa_err(device, "buffer size", e))?;
        pcm.hw_params(&hw)
            .map_err(|e| alsa_err(device, "cannot set 16-bit mono", e))?;
    }
    let got = pcm
        .hw_params_current()
        .and_then(|h| h.get_rate())
        .map_err(|e| alsa_err(device, "rate", e))?;
    if got != rate {
        return Err(std::io::Error::other(format!(
            "{device}: runs at {got} Hz, not {rate}"
        )));
    }
    if dir == alsa::Direction::Playback {
        let sw = pcm
            .sw_params_current()
            .map_err(|e| alsa_err(device, "software parameters", e))?;
        sw.set_start_threshold(start as alsa::pcm::Frames)
            .and_then(|_| pcm.sw_params(&sw))
            .map_err(|e| alsa_err(device, "start threshold", e))?;
    }
    Ok(pcm)
}

/// Writes all of `samples` to the mic's device; an underrun is counted, the device prepared
/// again and the prefill written before `samples`.
fn write_mic(
    pcm: &alsa::PCM,
    device: &str,
    samples: &[i16],
    prefill: usize,
    xruns: &AtomicU64,
) -> std::io::Result<()> {
    let io = pcm.io_i16().map_err(|e| alsa_err(device, "i/o", e))?;
    let mut at = 0;
    while at < samples.len() {
        match io.writei(&samples[at..]) {
            Ok(n) => at += n,
            Err(e) if e.errno() == libc::EPIPE => {
                xruns.fetch_add(1, Ordering::Relaxed);
                pcm.prepare().map_err(|e| alsa_err(device, "underrun", e))?;
                io.writei(&vec![0i16; prefill])
                    .map_err(|e| alsa_err(device, "prefill", e))?;
            }
            Err(e) => {
                pcm.try_recover(e, true)
                    .map_err(|e| alsa_err(device, "write", e))?;
            }
        }
    }
    Ok(())
}

/// The two ALSA ends [`run_alsa`] works between, and how much it takes at a time.
#[derive(Debug, Clone, Copy)]
pub struct AlsaEnds<'a> {
    /// Where the box's speaker is heard (capture), e.g. `hw:Loopback,1,1`.
    pub tap: &'a str,
    /// What the box's mic hears (playback), e.g. `hw:Loopback,0,0`.
    pub feed: &'a str,
    /// 10 ms blocks read, convolved and written at a time.
    pub chunk_blocks: usize,
}

/// Runs `room` between the speaker's ALSA capture end `tap` (where the box's speaker device is
/// heard, e.g. `hw:Loopback,1,1` when the box plays into `hw:Loopback,0,1`) and the mic's ALSA
/// playback end `feed` (heard by the box's mic, e.g. `hw:Loopback,0,0` for a box capturing
/// `hw:Loopback,1,0`), 16-bit mono at the room's rate, until `control.stop` is set. The tap's
/// clock drives it: every read becomes as much written, so before the box plays anything the
/// mic gets the room's noise (and the near end) in real time. It works `chunk_blocks` 10 ms
/// blocks at a time (the room convolving them at once: fewer, larger FFTs for a machine short
/// of floating point, such as an emulated guest), with a chunk and [`ALSA_MARGIN_BLOCKS`] of
/// silence ahead in the mic's buffer; both add to the echo's delay. The other arguments are
/// [`run_pipes`]'s. Open it before the box opens its two ends: a loopback pair takes the format
/// of the side opened first.
pub fn run_alsa(
    ends: AlsaEnds<'_>,
    room: Room,
    control: Control,
    mut near: impl FnMut(u64, usize) -> Vec<f32>,
    mut events: impl FnMut(u64, &mut Room),
    mut record: impl FnMut(Block),
) -> std::io::Result<()> {
    let AlsaEnds {
        tap,
        feed,
        chunk_blocks,
    } = ends;
    let n = (room.params.rate / 100) as usize;
    let chunk_blocks = chunk_blocks.clamp(1, ALSA_BUFFER_BLOCKS / 4);
    let chunk = n * chunk_blocks;
    let mut room = room.with_block(chunk);
    let prefill = chunk + n * ALSA_MARGIN_BLOCKS;
    let mic = open_pcm(feed, alsa::Direction::Playback, room.params.rate, prefill)?;
    let spk = open_pcm(tap, alsa::Direction::Capture, room.params.rate, 1)?;
    write_mic(&mic, feed, &vec![0i16; prefill], prefill, &control.xruns)?;
    let spk_io = spk.io_i16().map_err(|e| alsa_err(tap, "i/o", e))?;
    let mut raw = vec![0i16; chunk];
    let mut out = vec![0i16; chunk];
    let mut index = 0u64;
    while !control.stop.load(Ordering::Relaxed) {
        let mut got = 0;
        while got < chunk {
            match spk_io.readi(&mut raw[got..]) {
                Ok(k) => got += k,
                Err(e) => {
                    control.xruns.fetch_add(1, Ordering::Relaxed);
                    spk.try_recover(e, true)
                        .map_err(|e| alsa_err(tap, "read", e))?;
                }
            }
        }
        let busy = thread_cpu_us();
        let played: Vec<f32> = raw.iter().map(|&v| f32::from(v) / 32768.0).collect();
        events(index, &mut room);
        let echo = room.echo(&played);
        let mut blocks = Vec::with_capacity(chunk_blocks);
        for (k, (echo, o)) in echo.chunks(n).zip(out.chunks_mut(n)).enumerate() {
            let talker = near(index + k as u64, n);
            let noise = room.noise(n);
            let heard: Vec<f32> = (0..n)
                .map(|i| echo[i] + talker.get(i).copied().unwrap_or(0.0) + noise[i])
                .collect();
            for (o, h) in o.iter_mut().zip(&heard) {
                *o = (h * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
            }
            blocks.push(Block {
                index: index + k as u64,
                echo: echo.to_vec(),
                near: talker,
                mic: heard,
            });
        }
        control
            .busy_us
            .fetch_add(thread_cpu_us().saturating_sub(busy), Ordering::Relaxed);
        write_mic(&mic, feed, &out, prefill, &control.xruns)?;
        control
            .written
            .fetch_add(chunk_blocks as u64, Ordering::Relaxed);
        blocks.into_iter().for_each(&mut record);
        index += chunk_blocks as u64;
    }
    Ok(())
}

fn thread_cpu_us() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(|t| std::time::Duration::from(t).as_micros() as u64)
        .unwrap_or(0)
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
    fn a_room_convolving_larger_blocks_gives_the_same_echo() {
        let ir: Vec<f32> = (0..900)
            .map(|i| (-(i as f32) / 200.0).exp() * ((i % 7) as f32 - 3.0) / 3.0)
            .collect();
        let mut small = Room::new(params(ir.clone()));
        let mut large = Room::new(params(ir)).with_block(640);
        let x: Vec<f32> = (0..6400)
            .map(|i| ((i * 37 % 101) as f32 / 50.0 - 1.0) * 0.5)
            .collect();
        let a: Vec<f32> = x.chunks(160).flat_map(|c| small.echo(c)).collect();
        let b: Vec<f32> = x.chunks(640).flat_map(|c| large.echo(c)).collect();
        assert_eq!(a.len(), b.len());
        let worst = a
            .iter()
            .zip(&b)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f32::max);
        assert!(worst < 1e-4, "{worst}");
        assert!(energy(&a) > 1.0, "the echo is there");
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
