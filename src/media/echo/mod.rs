//! Room audio processing: the echo canceller (with noise suppression, gain control and a
//! high-pass filter) between the speaker and the microphone.
//!
//! ```text
//! playback: audiomixer → volume → S16LE at the mic's rate, mono → [reference tap] → speaker sink
//!                                                                       │ render()
//!                                                                       ▼
//! capture:  mic → convert → caps → 10 ms buffers → [EchoPath::capture] → volume(mute) → rawtee
//! ```
//!
//! Two pipelines meet here, not in GStreamer: remote audio plays in the room's own pipeline
//! (`room::playback`), made and dropped with each join, while capture restarts on its own
//! faults. Each side hands its 10 ms frames to the box's one [`EchoPath`], whose [`Canceller`]
//! runs on a thread of its own, driven as WebRTC's audio processing module is: render frames in
//! as they reach the speaker, capture frames in and out (the mic's thread waits for each, a
//! fraction of a millisecond) as the mic gives them. The reference
//! is taken on the speaker sink's own pad, after the mixer and the volume, so nothing changes
//! the signal between what the canceller hears and what the speaker plays; the delay between
//! the two (the sink's buffer, the air, the mic's buffer) is the canceller's to find.
//!
//! Everything the mic gives passes through here before the mute and the raw tee, so the room,
//! the recorder, the outputs and the transcriber all get the processed mic. The canceller's
//! linear output is kept beside it, by the capture buffers' times, for the live captions
//! ([`linear`]).

pub mod aec3;
pub mod frames;
pub mod linear;
#[cfg(feature = "test-util")]
pub mod sim;

use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::Duration;

pub use frames::{Framer, FRAME_MS};

/// What a canceller knows of how it is doing, with WebRTC's stats names where one exists.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EchoFigures {
    /// `echoReturnLoss`: how much quieter the echo is in the mic than the speaker's signal, dB.
    pub echo_return_loss: Option<f64>,
    /// `echoReturnLossEnhancement`: how much the canceller takes off the echo, dB.
    pub echo_return_loss_enhancement: Option<f64>,
    /// The speaker-to-mic delay the canceller has found, ms.
    pub delay_ms: Option<i32>,
}

/// One echo canceller: 10 ms frames of interleaved samples in -1..1, render (what the speaker
/// plays, mono) in, capture (the mic, its own channels) in and processed in place. It need not
/// be `Send` (the `aec3` crate's graph is not): the box runs it on a thread of its own.
pub trait Canceller {
    /// Its name in `check`, `probe`, the state and the benchmarks.
    fn name(&self) -> &'static str;
    /// One 10 ms frame the speaker is about to play.
    fn render(&mut self, frame: &[f32]);
    /// One 10 ms frame of the mic, replaced by the processed one.
    fn capture(&mut self, frame: &mut [f32]);
    /// The latest figures.
    fn figures(&self) -> EchoFigures;
    /// The linear filter's output for the last capture frame, mono at
    /// [`linear::LINEAR_RATE`], for speech recognition ([`linear`]); None from a canceller
    /// without one.
    fn linear(&self) -> Option<&[f32]> {
        None
    }
}

/// The cancellers behind [`Canceller`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// WebRTC's AEC3 through the `aec3` crate, with its noise suppressor, AGC2 and high-pass.
    #[default]
    Aec3,
    /// Nothing: the mic as it is. The benches' baseline.
    Passthrough,
}

impl Backend {
    /// The canceller's name in `check`, `probe`, the state and the benchmarks.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Aec3 => "aec3",
            Backend::Passthrough => "none",
        }
    }
}

/// The baseline: no processing at all.
pub struct Passthrough;

impl Canceller for Passthrough {
    fn name(&self) -> &'static str {
        "none"
    }
    fn render(&mut self, _: &[f32]) {}
    fn capture(&mut self, _: &mut [f32]) {}
    fn figures(&self) -> EchoFigures {
        EchoFigures::default()
    }
}

/// Which processing runs on the mic, resolved from `[media.audio.processing]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Processing {
    /// Which canceller runs the stages.
    pub backend: Backend,
    /// The mic's (and so the speaker's) sample rate.
    pub rate: u32,
    /// The mic's channels; the reference is mono.
    pub channels: u32,
    pub echo_cancel: bool,
    pub noise_suppression: bool,
    pub gain_control: bool,
    pub high_pass: bool,
}

impl Processing {
    /// Whether anything runs at all.
    pub fn any(&self) -> bool {
        self.echo_cancel || self.noise_suppression || self.gain_control || self.high_pass
    }

    /// From the configuration.
    pub fn from_config(config: &crate::config::Config) -> Processing {
        let p = config.audio_processing();
        Processing {
            backend: Backend::Aec3,
            rate: config.media.audio.rate,
            channels: config.media.audio.channels,
            echo_cancel: p.echo_cancel,
            noise_suppression: p.noise_suppression,
            gain_control: p.gain_control,
            high_pass: p.high_pass,
        }
    }

    /// `[media.audio.processing]` that asks for exactly these stages (for a harness that builds
    /// the capture from a config and then configures a candidate).
    pub fn config(&self) -> crate::config::ProcessingConfig {
        crate::config::ProcessingConfig {
            echo_cancel: Some(self.echo_cancel),
            noise_suppression: Some(self.noise_suppression),
            gain_control: Some(self.gain_control),
            high_pass: Some(self.high_pass),
        }
    }

    /// The canceller these settings ask for.
    pub fn canceller(&self) -> Box<dyn Canceller> {
        match self.backend {
            Backend::Aec3 => Box::new(aec3::Aec3::new(*self)),
            Backend::Passthrough => Box::new(Passthrough),
        }
    }

    /// Samples in one 10 ms mono frame.
    pub fn frame_samples(&self) -> usize {
        (self.rate / 100) as usize
    }
}

/// How long the mic waits for its processed frame before it lets the frame pass as it is (and
/// counts it late). A frame takes well under a millisecond; on a loaded two-core machine the
/// canceller's thread may wait its turn for tens of them, and every frame that passes
/// unprocessed lets echo through, so this is generous: the mic's source buffers meanwhile.
const CAPTURE_WAIT: Duration = Duration::from_millis(200);

/// A processed capture frame, and the linear output beside it.
type Processed = (Vec<f32>, Option<Vec<f32>>);

enum Msg {
    Render(Vec<f32>),
    Capture(Vec<f32>, mpsc::SyncSender<Processed>),
}

/// The canceller on its own thread: render frames queue to it, capture frames go and come back.
/// The thread ends when the worker is dropped.
struct Worker {
    tx: mpsc::Sender<Msg>,
    figures: Arc<Mutex<EchoFigures>>,
}

impl Worker {
    fn spawn(p: Processing) -> Option<Worker> {
        let (tx, rx) = mpsc::channel::<Msg>();
        let figures = Arc::new(Mutex::new(EchoFigures::default()));
        let shown = figures.clone();
        let spawned = std::thread::Builder::new()
            .name("roombox-echo".into())
            .spawn(move || {
                let mut c = p.canceller();
                for msg in rx {
                    match msg {
                        Msg::Render(frame) => c.render(&frame),
                        Msg::Capture(mut frame, reply) => {
                            c.capture(&mut frame);
                            if let Ok(mut f) = shown.lock() {
                                *f = c.figures();
                            }
                            let linear = c.linear().map(<[f32]>::to_vec);
                            let _ = reply.send((frame, linear));
                        }
                    }
                }
            });
        match spawned {
            Ok(_) => Some(Worker { tx, figures }),
            Err(e) => {
                tracing::error!(error = %e, "echo: no thread for the canceller; the mic passes unprocessed");
                None
            }
        }
    }
}

struct Active {
    processing: Processing,
    worker: Option<Worker>,
    render: Framer,
    /// Render frames handed in, capture frames processed: the state shows both, and a box
    /// whose speaker plays but whose canceller sees no render is visibly broken.
    render_frames: u64,
    capture_frames: u64,
    /// Capture frames that came back too late and passed unprocessed.
    late_frames: u64,
    /// The linear output of the last seconds' capture frames.
    linear: linear::LinearRing,
}

/// Where the speaker's reference and the mic meet: the box's one canceller.
#[derive(Clone, Default)]
pub struct EchoPath {
    inner: Arc<Mutex<Option<Active>>>,
}

/// What the state and the telemetry show of the mic's processing (`media.audioProcessing`),
/// with WebRTC's stats names for the canceller's figures.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProcessingReport {
    /// The canceller running the stages (`aec3`).
    pub canceller: String,
    /// The rate it runs at, Hz.
    pub rate: u32,
    pub echo_cancel: bool,
    pub noise_suppression: bool,
    pub gain_control: bool,
    pub high_pass: bool,
    /// `echoReturnLoss`, dB.
    pub echo_return_loss: Option<f64>,
    /// `echoReturnLossEnhancement`, dB.
    pub echo_return_loss_enhancement: Option<f64>,
    /// The speaker-to-mic delay the canceller found, ms.
    pub delay_ms: Option<i32>,
    /// The speaker's 10 ms frames the canceller has heard: none while the box plays, and the
    /// reference is not reaching it.
    pub render_frames: u64,
    /// The mic's 10 ms frames processed.
    pub capture_frames: u64,
}

/// What [`EchoPath::status`] reports.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EchoStatus {
    /// The canceller running, if any.
    pub canceller: Option<&'static str>,
    /// What it runs.
    pub processing: Option<Processing>,
    pub figures: EchoFigures,
    pub render_frames: u64,
    pub capture_frames: u64,
    pub late_frames: u64,
}

impl EchoPath {
    /// The box's one path. A box has one speaker and one mic, and they live in two pipelines
    /// with lives of their own (the capture's restarts, the room's joins), so they meet here
    /// rather than through every constructor between `run` and the two.
    pub fn shared() -> EchoPath {
        static SHARED: OnceLock<EchoPath> = OnceLock::new();
        SHARED.get_or_init(EchoPath::default).clone()
    }

    /// Runs `processing` from now on (a new canceller, converged afresh), or nothing.
    /// Unchanged settings keep the running canceller and what it has learned of the room.
    pub fn configure(&self, processing: Option<Processing>) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let processing = processing.filter(Processing::any);
        if inner.as_ref().map(|a| a.processing) == processing {
            return;
        }
        *inner = processing.map(|p| Active {
            processing: p,
            worker: Worker::spawn(p),
            render: Framer::new(p.frame_samples()),
            render_frames: 0,
            capture_frames: 0,
            late_frames: 0,
            linear: linear::LinearRing::default(),
        });
    }

    /// The rate the speaker must play at for its signal to be the reference: the mic's, while
    /// processing runs.
    pub fn rate(&self) -> Option<u32> {
        self.inner
            .lock()
            .ok()
            .and_then(|i| i.as_ref().map(|a| a.processing.rate))
    }

    /// Mono S16LE samples at [`EchoPath::rate`] that the speaker is about to play. Ignored while
    /// nothing runs, or when `rate` is not the mic's.
    pub fn render_s16(&self, rate: u32, bytes: &[u8]) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let Some(a) = inner.as_mut().filter(|a| a.processing.rate == rate) else {
            return;
        };
        let Active {
            worker: Some(worker),
            render,
            render_frames,
            processing,
            ..
        } = a
        else {
            return;
        };
        if !processing.echo_cancel {
            return;
        }
        render.push_s16(bytes, |frame| {
            let _ = worker.tx.send(Msg::Render(frame.to_vec()));
            *render_frames += 1;
        });
    }

    /// Processes the mic's interleaved S16LE samples in place, whole 10 ms frames at a time
    /// (the capture splits its buffers to 10 ms before this); a partial frame passes as it is.
    pub fn capture_s16(&self, bytes: &mut [u8]) {
        self.capture_s16_at(bytes, None)
    }

    /// [`EchoPath::capture_s16`] of a buffer presented at `pts` (ns): the canceller's linear
    /// output of its frames is kept for [`EchoPath::linear`].
    pub fn capture_s16_at(&self, bytes: &mut [u8], pts: Option<u64>) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let Some(a) = inner.as_mut() else {
            return;
        };
        let Some(worker) = a.worker.as_ref() else {
            return;
        };
        let n = a.processing.frame_samples() * a.processing.channels as usize;
        for (k, chunk) in bytes.chunks_exact_mut(2 * n).enumerate() {
            let mut frame = vec![0f32; n];
            frames::s16_to_f32(chunk, &mut frame);
            let mic_power = frame.iter().map(|x| x * x).sum::<f32>() / n.max(1) as f32;
            let (reply, back) = mpsc::sync_channel(1);
            if worker.tx.send(Msg::Capture(frame, reply)).is_err() {
                return;
            }
            match back.recv_timeout(CAPTURE_WAIT) {
                Ok((done, lin)) => {
                    frames::f32_to_s16(&done, chunk);
                    a.capture_frames += 1;
                    if let (Some(pts), Some(lin)) = (pts, lin) {
                        a.linear.push(linear::LinearFrame {
                            pts: pts + k as u64 * 1_000_000 * u64::from(FRAME_MS),
                            linear: lin,
                            mic_power,
                        });
                    }
                }
                Err(_) => a.late_frames += 1,
            }
        }
    }

    /// The canceller's linear output for `n` samples at [`linear::LINEAR_RATE`] of the mic
    /// presented from `pts` (ns), with the mic's power over them; None unless the canceller
    /// processed every frame of it.
    pub fn linear(&self, pts: u64, n: usize) -> Option<linear::Linear> {
        let inner = self.inner.lock().ok()?;
        inner.as_ref()?.linear.take(pts, n)
    }

    /// What runs, for the state; None while nothing does.
    pub fn report(&self) -> Option<ProcessingReport> {
        let s = self.status();
        let p = s.processing?;
        Some(ProcessingReport {
            canceller: p.backend.name().to_string(),
            rate: p.rate,
            echo_cancel: p.echo_cancel,
            noise_suppression: p.noise_suppression,
            gain_control: p.gain_control,
            high_pass: p.high_pass,
            echo_return_loss: s.figures.echo_return_loss,
            echo_return_loss_enhancement: s.figures.echo_return_loss_enhancement,
            delay_ms: s.figures.delay_ms,
            render_frames: s.render_frames,
            capture_frames: s.capture_frames,
        })
    }

    /// What runs and how it is doing.
    pub fn status(&self) -> EchoStatus {
        let Ok(inner) = self.inner.lock() else {
            return EchoStatus::default();
        };
        match inner.as_ref() {
            None => EchoStatus::default(),
            Some(a) => EchoStatus {
                canceller: Some(a.processing.backend.name()),
                processing: Some(a.processing),
                figures: a
                    .worker
                    .as_ref()
                    .and_then(|w| w.figures.lock().ok().map(|f| *f))
                    .unwrap_or_default(),
                render_frames: a.render_frames,
                capture_frames: a.capture_frames,
                late_frames: a.late_frames,
            },
        }
    }
}

/// What one canceller costs on this machine: the share of one core it takes to process
/// `seconds` of audio (render and capture) at `p`, by this thread's CPU time.
pub fn cost(p: Processing, seconds: u32) -> f64 {
    let mut c = p.canceller();
    let n = p.frame_samples();
    let frames = seconds * 100;
    let mut x = 1u32;
    let mut noise = move || {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        ((x >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 0.2
    };
    let start = thread_cpu();
    for _ in 0..frames {
        let render: Vec<f32> = (0..n).map(|_| noise()).collect();
        c.render(&render);
        let mut capture: Vec<f32> = (0..n * p.channels as usize).map(|_| noise()).collect();
        c.capture(&mut capture);
    }
    (thread_cpu() - start).as_secs_f64() / f64::from(seconds.max(1))
}

fn thread_cpu() -> std::time::Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(std::time::Duration::from)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Processing {
        Processing {
            backend: Backend::Aec3,
            rate: 16_000,
            channels: 1,
            echo_cancel: true,
            noise_suppression: false,
            gain_control: false,
            high_pass: false,
        }
    }

    #[test]
    fn nothing_configured_leaves_the_mic_untouched() {
        let path = EchoPath::default();
        path.configure(Some(Processing {
            echo_cancel: false,
            ..settings()
        }));
        let mut bytes: Vec<u8> = (0..640u32).map(|i| (i * 7) as u8).collect();
        let before = bytes.clone();
        path.capture_s16(&mut bytes);
        assert_eq!(bytes, before);
        assert_eq!(path.status().canceller, None);
    }

    #[test]
    fn render_at_another_rate_is_not_taken_as_the_reference() {
        let path = EchoPath::default();
        path.configure(Some(settings()));
        path.render_s16(48_000, &[0u8; 960]);
        assert_eq!(path.status().render_frames, 0);
        path.render_s16(16_000, &[0u8; 960]);
        assert_eq!(
            path.status().render_frames,
            3,
            "480 samples are three 10 ms frames"
        );
    }

    #[test]
    fn the_same_settings_keep_the_canceller_and_new_ones_replace_it() {
        let path = EchoPath::default();
        path.configure(Some(settings()));
        path.render_s16(16_000, &[0u8; 640]);
        path.configure(Some(settings()));
        assert_eq!(path.status().render_frames, 2);
        path.configure(Some(Processing {
            noise_suppression: true,
            ..settings()
        }));
        assert_eq!(path.status().render_frames, 0);
        path.configure(None);
        assert_eq!(path.status(), EchoStatus::default());
    }
}
