//! The `aec3` crate's canceller: a pure-Rust port of WebRTC's AEC3 with its high-pass filter,
//! noise suppressor and AGC2, in WebRTC's order (high-pass → AEC3 → noise suppression → gain
//! control). Its delay estimator finds the speaker-to-mic delay by itself, so the reference
//! needs no timestamps.

use super::{Canceller, EchoFigures, Processing};
use aec3::graph::NodeControlState;
use aec3::nodes::audio::AudioFormat;
use aec3::pipelines::linear::{self, LinearPipeline};

/// The canceller, or, if the crate refused the settings (it should not, for the rates and
/// channels config allows), nothing: the mic then passes as it is and the failure is logged
/// once.
pub struct Aec3 {
    pipeline: Option<LinearPipeline>,
    out: Vec<f32>,
    figures: EchoFigures,
    /// The linear filter's output of the last capture frame (mono, 16 kHz), while the
    /// canceller runs.
    linear: Vec<f32>,
    has_linear: bool,
    channels: usize,
}

impl Aec3 {
    /// A canceller for `p`.
    pub fn new(p: Processing) -> Aec3 {
        let capture = AudioFormat::ten_ms(p.rate, p.channels as u16);
        let render = AudioFormat::ten_ms(p.rate, 1);
        let built = linear::builder(render, capture)
            .enable_high_pass_filter(p.high_pass)
            .enable_noise_suppression(p.noise_suppression)
            .enable_gain_controller2(p.gain_control)
            // The fullband post filter is a 48 kHz extra of this crate's, not WebRTC's; the
            // suppressor already shapes the residual.
            .enable_post_filter(false)
            .export_metrics(true)
            .export_linear_output(p.echo_cancel)
            .build();
        let pipeline = match built {
            Ok(mut pl) => {
                if !p.echo_cancel {
                    let id = pl.handles().aec3.node_id();
                    if let Err(e) = pl.set_node_state(id, NodeControlState::Bypassed) {
                        tracing::warn!(error = %e, "aec3: could not bypass the canceller");
                    }
                }
                Some(pl)
            }
            Err(e) => {
                tracing::error!(error = %e, "aec3: the canceller would not start; the mic passes unprocessed");
                None
            }
        };
        Aec3 {
            pipeline,
            out: vec![0.0; capture.sample_count()],
            figures: EchoFigures::default(),
            linear: Vec::new(),
            has_linear: false,
            channels: p.channels.max(1) as usize,
        }
    }
}

impl Canceller for Aec3 {
    fn name(&self) -> &'static str {
        "aec3"
    }

    fn render(&mut self, frame: &[f32]) {
        if let Some(pl) = self.pipeline.as_mut() {
            if let Err(e) = pl.handle_render_frame(frame) {
                tracing::debug!(error = %e, "aec3: render frame refused");
            }
        }
    }

    fn capture(&mut self, frame: &mut [f32]) {
        let Some(pl) = self.pipeline.as_mut() else {
            return;
        };
        if self.out.len() != frame.len() {
            return;
        }
        match pl.process_capture_frame(frame, &mut self.out) {
            Ok(true) => frame.copy_from_slice(&self.out),
            Ok(false) => {}
            Err(e) => tracing::debug!(error = %e, "aec3: capture frame refused"),
        }
        self.has_linear = false;
        while let Ok(Some(l)) = pl.try_pull_linear_output() {
            let x = l.payload().samples();
            self.linear.clear();
            self.linear.extend(
                x.chunks_exact(self.channels)
                    .map(|c| c.iter().sum::<f32>() / self.channels as f32),
            );
            self.has_linear = true;
        }
        // Metrics come with every capture frame; only the latest matters.
        while let Ok(Some(m)) = pl.try_pull_metrics() {
            let m = m.payload();
            self.figures = EchoFigures {
                echo_return_loss: Some(m.echo_return_loss),
                echo_return_loss_enhancement: Some(m.echo_return_loss_enhancement),
                delay_ms: Some(m.delay_ms),
            };
        }
    }

    fn figures(&self) -> EchoFigures {
        self.figures
    }

    fn linear(&self) -> Option<&[f32]> {
        self.has_linear.then_some(self.linear.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Backend;
    use super::*;

    fn on(rate: u32) -> Processing {
        Processing {
            backend: Backend::Aec3,
            rate,
            channels: 1,
            echo_cancel: true,
            noise_suppression: false,
            gain_control: false,
            high_pass: false,
        }
    }

    /// A 300 Hz-ish noise-like signal, deterministic.
    fn signal(n: usize, seed: u32) -> Vec<f32> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((x >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 0.5
            })
            .collect()
    }

    fn energy(x: &[f32]) -> f64 {
        x.iter().map(|v| f64::from(*v) * f64::from(*v)).sum()
    }

    #[test]
    fn a_delayed_echo_is_removed_and_a_lone_talker_passes() {
        let rate = 16_000;
        let n = (rate / 100) as usize;
        let mut c = Aec3::new(on(rate));
        let far = signal(n * 500, 1);
        let delay = n * 6; // 60 ms
        let (mut mic_e, mut out_e) = (0.0, 0.0);
        for (i, frame) in far.chunks(n).enumerate() {
            c.render(frame);
            let mut mic: Vec<f32> = (0..n)
                .map(|k| {
                    let j = i * n + k;
                    if j >= delay {
                        far[j - delay] * 0.3
                    } else {
                        0.0
                    }
                })
                .collect();
            let before = energy(&mic);
            c.capture(&mut mic);
            if i >= 300 {
                mic_e += before;
                out_e += energy(&mic);
            }
        }
        let erle = 10.0 * (mic_e / out_e.max(1e-12)).log10();
        assert!(erle > 20.0, "ERLE after 3 s of white far end: {erle:.1} dB");
        assert!(c.figures().delay_ms.is_some());

        let near = signal(n * 100, 7);
        let mut kept = (0.0, 0.0);
        for frame in near.chunks(n) {
            c.render(&vec![0.0; n]);
            let mut mic = frame.to_vec();
            c.capture(&mut mic);
            kept.0 += energy(frame);
            kept.1 += energy(&mic);
        }
        let loss = 10.0 * (kept.0 / kept.1).log10();
        assert!(loss < 1.0, "near end alone lost {loss:.1} dB");
    }

    #[test]
    fn the_linear_output_is_16_khz_mono_and_takes_the_echo_down() {
        let rate = 48_000;
        let n = (rate / 100) as usize;
        let mut c = Aec3::new(on(rate));
        let far = signal(n * 400, 3);
        let delay = n * 5;
        let (mut mic_e, mut lin_e) = (0.0, 0.0);
        for (i, frame) in far.chunks(n).enumerate() {
            c.render(frame);
            let mut mic: Vec<f32> = (0..n)
                .map(|k| (i * n + k).checked_sub(delay).map_or(0.0, |j| far[j] * 0.3))
                .collect();
            let before = energy(&mic);
            c.capture(&mut mic);
            let lin = c.linear().expect("a linear output with the canceller on");
            assert_eq!(lin.len(), 160, "10 ms at 16 kHz, whatever the mic's rate");
            if i >= 300 {
                mic_e += before / 3.0; // a third of the samples
                lin_e += energy(lin);
            }
        }
        let erle = 10.0 * (mic_e / lin_e.max(1e-12)).log10();
        assert!(erle > 10.0, "the linear filter's ERLE: {erle:.1} dB");
        // A lone talker (the speaker silent) comes through the linear output whole: tones under
        // 8 kHz, the linear output's band.
        let near: Vec<f32> = (0..n * 100)
            .map(|i| {
                let t = i as f32 / rate as f32;
                [300.0f32, 700.0, 1500.0]
                    .iter()
                    .map(|f| 0.1 * (std::f32::consts::TAU * f * t).sin())
                    .sum()
            })
            .collect();
        let (mut mic_e, mut lin_e) = (0.0, 0.0);
        for (i, frame) in near.chunks(n).enumerate() {
            c.render(&vec![0.0; n]);
            let mut mic = frame.to_vec();
            c.capture(&mut mic);
            if i >= 20 {
                mic_e += energy(frame) / 3.0;
                lin_e += energy(c.linear().expect("linear"));
            }
        }
        let kept = 10.0 * (lin_e / mic_e).log10();
        assert!(
            kept.abs() < 1.5,
            "the linear output kept the talker at {kept:+.1} dB"
        );

        let mut off = Aec3::new(Processing {
            echo_cancel: false,
            noise_suppression: true,
            ..on(rate)
        });
        let mut mic = vec![0.1; n];
        off.capture(&mut mic);
        assert_eq!(off.linear(), None, "no canceller, no linear output");
    }
}
