//! Whether the share's HDMI grabber has a signal, for `[media.share] auto = true`.
//!
//! A USB grabber is plugged in long before anyone plugs a laptop into it: its device exists and
//! streams, but delivers no frames until a source is connected. So the signal is "it delivers
//! frames" (a black or frozen picture still counts: it is a picture), not "it exists". While no
//! share runs, a thread of its own opens the device every [`EVERY`] and waits up to [`WAIT`]
//! for one frame (`media::v4l2::delivers_frames`); while the share runs it holds the device,
//! and the share's own frames say whether the signal stays.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often an idle grabber is tried.
pub const EVERY: Duration = Duration::from_secs(2);
/// How long a try waits for a frame.
pub const WAIT: Duration = Duration::from_secs(1);
/// A running share whose frames stopped this long ago has lost its signal.
pub const LOST_AFTER: Duration = Duration::from_secs(3);

#[derive(Debug, Default)]
struct Seen {
    /// Frames came on the last try.
    signal: bool,
    /// Why not, for people.
    why: String,
    /// A share holds the device: no tries.
    paused: bool,
}

/// The prober: a thread trying the idle grabber, stopped when this is dropped.
pub struct GrabberSignal {
    seen: Arc<Mutex<Seen>>,
    /// Held for the length of a try, so a share never opens the device in the middle of one.
    trying: Arc<Mutex<()>>,
    stop: Arc<AtomicBool>,
    /// The running share's frame count when it last changed, and when.
    flow: Option<(u64, Instant)>,
}

impl GrabberSignal {
    /// Starts trying the grabber at `device`.
    pub fn spawn(device: String) -> GrabberSignal {
        let seen = Arc::new(Mutex::new(Seen {
            why: "not tried yet".into(),
            ..Seen::default()
        }));
        let trying = Arc::new(Mutex::new(()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, t, st) = (seen.clone(), trying.clone(), stop.clone());
        let spawned = std::thread::Builder::new()
            .name("grabber-signal".into())
            .spawn(move || {
                while !st.load(Ordering::Relaxed) {
                    {
                        let _trying = crate::sync::lock(&t);
                        if !crate::sync::lock(&s).paused {
                            let result = if std::path::Path::new(&device).exists() {
                                super::v4l2::delivers_frames(&device, WAIT)
                            } else {
                                Err(format!("{device} is not plugged in"))
                            };
                            let mut seen = crate::sync::lock(&s);
                            // A share that started meanwhile decides from its own frames.
                            if !seen.paused {
                                seen.signal = result.is_ok();
                                seen.why = result.err().unwrap_or_default();
                            }
                        }
                    }
                    std::thread::sleep(EVERY);
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("share: cannot watch the grabber's signal: {e}");
        }
        GrabberSignal {
            seen,
            trying,
            stop,
            flow: None,
        }
    }

    /// A share is about to open the device (true) or has closed it (false). Waits for a try
    /// under way to end, so the device is free.
    pub fn hold(&mut self, held: bool) {
        let _trying = crate::sync::lock(&self.trying);
        let mut seen = crate::sync::lock(&self.seen);
        seen.paused = held;
        if held {
            // It had a signal to be started by it; the share's frames say from now on.
            seen.signal = true;
            self.flow = Some((0, Instant::now()));
        } else {
            self.flow = None;
        }
    }

    /// The signal now, with why not: from the share's `frames` while it runs, else from the
    /// last try.
    pub fn now(&mut self, frames: u64) -> (bool, String) {
        if let Some((count, at)) = self.flow.as_mut() {
            if frames != *count {
                (*count, *at) = (frames, Instant::now());
            }
            let flowing = at.elapsed() < LOST_AFTER;
            let why = if flowing {
                String::new()
            } else {
                format!("no share frames for {} s", at.elapsed().as_secs())
            };
            return (flowing, why);
        }
        let seen = crate::sync::lock(&self.seen);
        (seen.signal, seen.why.clone())
    }
}

impl Drop for GrabberSignal {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_that_is_not_a_grabber_has_no_signal_and_says_why() {
        let mut g = GrabberSignal::spawn("/dev/null".into());
        let t0 = Instant::now();
        while crate::sync::lock(&g.seen).why == "not tried yet" {
            assert!(t0.elapsed() < Duration::from_secs(5), "never tried");
            std::thread::sleep(Duration::from_millis(20));
        }
        let (on, why) = g.now(0);
        assert!(!on && why.contains("not a V4L2 device"), "{why}");
        let mut gone = GrabberSignal::spawn("/nonexistent/grabber".into());
        std::thread::sleep(Duration::from_millis(200));
        assert!(gone.now(0).1.contains("not plugged in"));
    }

    #[test]
    fn a_running_share_keeps_its_signal_while_frames_come() {
        let mut g = GrabberSignal::spawn("/nonexistent/grabber".into());
        g.hold(true);
        assert!(g.now(0).0, "just started");
        assert!(g.now(5).0);
        // Frames stop: the signal is lost once they have been still for LOST_AFTER.
        g.flow = Some((5, Instant::now() - LOST_AFTER));
        let (on, why) = g.now(5);
        assert!(!on && why.starts_with("no share frames"), "{why}");
        assert!(g.now(6).0, "they came back");
        g.hold(false);
        // Released: the signal stays as it was until the next try (a share stopped by hand
        // with the source still there is no lost signal), which finds nothing here.
        let t0 = Instant::now();
        while g.now(6).0 {
            assert!(t0.elapsed() < EVERY * 3, "the tries never took over again");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
