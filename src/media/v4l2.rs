//! V4L2 capture behaviour that has to be chosen before GStreamer starts.
//!
//! When a `v4l2src` stops, GStreamer 1.22 "orphans" its buffer pool wherever the driver allows
//! orphaned buffers (videobuf2 drivers: vivid, uvcvideo, ...): the pool is left to die with its
//! last buffer instead of being drained. On a camera that has vanished that went wrong: the pool
//! stayed alive for good, with its duplicate of the device's file descriptor and a reference to
//! the element (and its poll sockets). Measured in the `hw-tests/` rig (test
//! `62-agent-camera-hotplug`): after one unplug and replug the agent held 37 fds instead of 31,
//! one of them on the deleted `/dev/video0`, and the camera came back as `/dev/video1` because
//! the old node was still held. `GST_V4L2_FORCE_DRAIN` makes v4l2src drain and free its pool
//! instead; with it the count after the replug equals the count before, and the camera returns
//! under its old node. Orphaning only saves time when a running capture renegotiates its caps,
//! which roombox never does: it rebuilds the pipeline.

/// The variable GStreamer's v4l2 plugin reads (`gst_v4l2_buffer_pool_orphan`).
pub const FORCE_DRAIN: &str = "GST_V4L2_FORCE_DRAIN";

/// Makes every v4l2 buffer pool drain on stop, unless the environment already says otherwise.
/// Call it first thing in `main`, before any thread exists: the environment is shared with C
/// code that reads it unsynchronised.
pub fn drain_pools_on_stop() {
    if std::env::var_os(FORCE_DRAIN).is_none() {
        std::env::set_var(FORCE_DRAIN, "1");
    }
}
