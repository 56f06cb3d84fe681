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

/// Whether the V4L2 capture device at `path` delivers a frame within `timeout`: a grabber with
/// no source plugged in opens and streams but delivers nothing, which is no signal (a black or
/// frozen picture is still a picture, so any frame counts). `Err` says why not, for people.
pub fn delivers_frames(path: &str, timeout: std::time::Duration) -> Result<(), String> {
    use v4l::io::traits::CaptureStream;
    let dev = v4l::Device::with_path(path).map_err(|e| format!("{path}: {e}"))?;
    let caps = dev
        .query_caps()
        .map_err(|e| format!("{path}: not a V4L2 device ({e})"))?;
    if !caps
        .capabilities
        .contains(v4l::capability::Flags::VIDEO_CAPTURE)
    {
        return Err(format!("{path}: not a video capture device"));
    }
    let mut stream = v4l::io::mmap::Stream::with_buffers(&dev, v4l::buffer::Type::VideoCapture, 2)
        .map_err(|e| format!("{path}: cannot stream ({e})"))?;
    stream.set_timeout(timeout);
    match stream.next() {
        Ok((data, _)) if !data.is_empty() => Ok(()),
        Ok(_) => Err(format!("{path}: an empty frame")),
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Err(format!(
            "{path}: no frames in {} s (no signal: is a source plugged into the grabber?)",
            timeout.as_secs()
        )),
        Err(e) => Err(format!("{path}: no frames ({e})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_not_a_capture_device_delivers_no_frames_and_says_why() {
        let t = std::time::Duration::from_millis(200);
        let e = delivers_frames("/nonexistent/video9", t).unwrap_err();
        assert!(e.contains("/nonexistent/video9"), "{e}");
        let e = delivers_frames("/dev/null", t).unwrap_err();
        assert!(e.contains("not a V4L2 device"), "{e}");
    }
}
