//! The playback pipeline's bus: errors logged, and each participant's audio level (the `level`
//! elements named `level|<participant>`) into the room's stats.

use crate::room::{RemoteStats, RoomStats};
use gstreamer as gst;
use gstreamer::prelude::*;
use std::sync::{Arc, Mutex};

pub(super) fn watch_bus(
    bus: gst::Bus,
    stats: Arc<Mutex<RoomStats>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(200)) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Error(e) => {
                tracing::warn!(error = %e.error(), debug = ?e.debug(), "playback: pipeline error");
            }
            gst::MessageView::Element(el) => {
                let Some(s) = el.structure() else { continue };
                if s.name() != "level" {
                    continue;
                }
                let Some(src) = msg.src() else { continue };
                let name = src.name();
                let Some(who) = name.strip_prefix("level|") else {
                    continue;
                };
                if let Some(db) = rms_db(s) {
                    if let Ok(mut st) = stats.lock() {
                        let e: &mut RemoteStats =
                            st.participants.entry(who.to_string()).or_default();
                        e.audio_dbfs = Some(db);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The loudest channel's RMS level, dBFS, from a `level` message.
pub(super) fn rms_db(s: &gst::StructureRef) -> Option<f64> {
    let list = s.get::<gst::glib::ValueArray>("rms").ok()?;
    list.iter()
        .filter_map(|v| v.get::<f64>().ok())
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
        .map(|v| if v.is_finite() { v } else { -120.0 })
}
