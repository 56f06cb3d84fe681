//! The engine's side of the content share: starting and stopping its capture and encode in the
//! playing pipeline (the camera's elements are never touched), moving the program with it, and
//! reporting the grabber's signal.

use super::Task;
use crate::config::ProgramMode;
use crate::media::error::MediaError;
use crate::media::share::{is_share_element, ProgramSource};
use crate::media::{MediaNotice, ShareNotice};
use gstreamer as gst;
use std::time::Duration;
use tokio::time::Instant;

/// How long a stopped share may run on while the program waits for the camera's keyframe.
pub(super) const SHARE_HANDOVER: Duration = Duration::from_millis(500);
use gstreamer::prelude::*;

impl Task {
    /// `StartShare`: runs the share now if capture plays, else once it does.
    pub(super) fn start_share(&mut self) {
        if !self.config.media.share.configured() {
            self.notify(MediaNotice::Share(ShareNotice::Failed(
                MediaError::NoSource("share (media.share.source is \"none\")"),
            )));
            return;
        }
        self.share_wanted = true;
        if self.share_stop_at.take().is_some() {
            // Asked back during the handover: it never stopped.
            if let Some(c) = &self.capture {
                if self.config.media.share.program != ProgramMode::Camera {
                    c.program.want(ProgramSource::Share);
                }
            }
            return;
        }
        if self.state.playing() {
            self.run_share();
        }
    }

    /// Builds and starts the share's chain in the playing pipeline.
    pub(super) fn run_share(&mut self) {
        let Some(c) = self.capture.as_mut() else {
            return;
        };
        let started = match (c.share.as_mut(), c.spec) {
            (Some(share), _) if share.running() => return,
            (Some(share), Some(spec)) => share.start(&c.pipeline, spec.name, spec),
            _ => Err(MediaError::NoSource(
                "share (it needs the camera's encoder)",
            )),
        };
        match started {
            Ok(()) => {
                if self.config.media.share.program != ProgramMode::Camera {
                    c.program.want(ProgramSource::Share);
                }
                tracing::info!("share started");
                self.notify(MediaNotice::Share(ShareNotice::Started));
            }
            Err(e) => {
                tracing::warn!("share could not start: {e}");
                self.share_wanted = false;
                self.notify(MediaNotice::Share(ShareNotice::Failed(e)));
            }
        }
    }

    /// `StopShare`, or the share's source failed (`error`): the program goes back to the
    /// camera at its next keyframe, asked for now. On request the share runs on until that
    /// keyframe is on air (at most [`SHARE_HANDOVER`]), so the program never waits on a
    /// picture; a failed source stops at once.
    pub(super) fn stop_share(&mut self, error: Option<MediaError>) {
        self.share_wanted = false;
        let Some(c) = self.capture.as_mut() else {
            return self.share_stopped(error);
        };
        c.program.want(ProgramSource::Camera);
        c.request_keyframe();
        let running = c.share.as_ref().is_some_and(|s| s.running());
        if error.is_some() || !running || c.program.current() == ProgramSource::Camera {
            return self.share_stopped(error);
        }
        self.share_stop_at = Some(Instant::now() + SHARE_HANDOVER);
    }

    /// Ends a requested stop once the camera is on air again (or the handover ran out).
    pub(super) fn poll_share_stop(&mut self, deadline_passed: bool) {
        if self.share_stop_at.is_none() {
            return;
        }
        let on_air = self.capture.as_ref().map(|c| c.program.current());
        if deadline_passed || on_air != Some(ProgramSource::Share) {
            self.share_stopped(None);
        }
    }

    /// Takes the share's chain out and says so.
    fn share_stopped(&mut self, error: Option<MediaError>) {
        self.share_stop_at = None;
        if let Some(c) = self.capture.as_mut() {
            if let Some(share) = c.share.as_mut() {
                share.stop(&c.pipeline);
            }
        }
        let notice = match error {
            Some(e) => {
                tracing::warn!("share stopped: {e}");
                ShareNotice::Failed(e)
            }
            None => {
                tracing::info!("share stopped");
                ShareNotice::Stopped
            }
        };
        self.notify(MediaNotice::Share(notice));
    }

    /// Whether a bus message came from the share's chain.
    pub(super) fn is_share_message(msg: &gst::Message) -> bool {
        msg.src().is_some_and(|s| is_share_element(&s.name()))
    }

    /// Once a second: reports the grabber's signal when it changes (the agent's rules decide
    /// what `auto` makes of it).
    pub(super) fn watch_share_signal(&mut self) {
        let Some(share) = self.capture.as_mut().and_then(|c| c.share.as_mut()) else {
            return;
        };
        let (signal, why) = share.signal();
        if self.share_signal != Some(signal) {
            self.share_signal = Some(signal);
            if signal {
                tracing::info!("share: the grabber has a signal");
            } else {
                tracing::info!("share: no signal: {why}");
            }
            self.notify(MediaNotice::Share(ShareNotice::Signal(signal)));
        }
    }
}
