//! Congestion and keyframe feedback from the room server, turned into encoder actions.
//!
//! [`FeedbackForwarder`] is the last interceptor of the chain: it lets the keyframe requests (PLI,
//! FIR), the bandwidth estimates (REMB) and the receiver reports through to the application,
//! where [`Feedback`] decides what the one shared encoder should do.

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Passes PLI, FIR, REMB and receiver reports on to the application; drops other inbound RTCP.
#[derive(Default)]
pub struct FeedbackForwarder {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

fn wanted(p: &dyn rtc::rtcp::Packet) -> bool {
    let a = p.as_any();
    a.is::<PictureLossIndication>()
        || a.is::<FullIntraRequest>()
        || a.is::<ReceiverEstimatedMaximumBitrate>()
        || a.is::<ReceiverReport>()
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for FeedbackForwarder {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            let keep: Vec<Box<dyn rtc::rtcp::Packet>> = packets
                .iter()
                .filter(|p| wanted(p.as_ref()))
                .cloned()
                .collect();
            if keep.is_empty() {
                return Ok(());
            }
            msg.message.packet = Packet::Rtcp(keep);
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write.pop_front()
    }
}

impl Interceptor for FeedbackForwarder {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// What the encoder should do about some feedback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncoderRequest {
    /// Send a keyframe now.
    Keyframe,
    /// Aim for this bitrate, kbit/s (before the configured bounds are applied).
    Bitrate(u32),
}

/// Turns feedback into encoder requests: keyframe requests are coalesced (at most one per
/// `keyframe_gap`; one that comes inside the gap is deferred to its end, never dropped: a new
/// subscriber's request often follows the publisher's own by a few hundred ms, and dropping it
/// left that subscriber waiting for the next periodic keyframe), REMB caps the bitrate, and
/// loss in receiver reports backs it off (above 10 %) or lets it climb back (below 2 %).
#[derive(Debug, Clone)]
pub struct Feedback {
    /// When the last keyframe was asked of the encoder.
    last_keyframe: Option<Instant>,
    /// The least time between two keyframe requests.
    keyframe_gap: Duration,
    /// A request came inside the gap and is still owed.
    keyframe_owed: bool,
    remb_kbps: Option<u32>,
    target_kbps: u32,
    max_kbps: u32,
}

impl Feedback {
    /// Starts at `start_kbps`, never asking above `max_kbps`.
    pub fn new(start_kbps: u32, max_kbps: u32) -> Feedback {
        Feedback {
            last_keyframe: None,
            keyframe_gap: Duration::from_millis(250),
            keyframe_owed: false,
            remb_kbps: None,
            target_kbps: start_kbps,
            max_kbps,
        }
    }

    /// Takes one batch of RTCP at `now`; returns what to ask of the encoder.
    pub fn on_rtcp(
        &mut self,
        packets: &[Box<dyn rtc::rtcp::Packet>],
        now: Instant,
    ) -> Vec<EncoderRequest> {
        let mut out = Vec::new();
        let mut next = self.target_kbps;
        for p in packets {
            let a = p.as_any();
            if a.is::<PictureLossIndication>() || a.is::<FullIntraRequest>() {
                if self
                    .last_keyframe
                    .is_none_or(|t| now.duration_since(t) >= self.keyframe_gap)
                {
                    if !out.contains(&EncoderRequest::Keyframe) {
                        out.push(EncoderRequest::Keyframe);
                    }
                    self.last_keyframe = Some(now);
                    self.keyframe_owed = false;
                } else {
                    self.keyframe_owed = true;
                }
            } else if let Some(r) = a.downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
                if r.bitrate.is_finite() && r.bitrate > 0.0 {
                    let kbps = (r.bitrate / 1000.0).min(u32::MAX as f32) as u32;
                    self.remb_kbps = Some(kbps);
                    next = next.min(kbps);
                }
            } else if let Some(rr) = a.downcast_ref::<ReceiverReport>() {
                for rep in &rr.reports {
                    let loss = f64::from(rep.fraction_lost) / 256.0;
                    if loss > 0.10 {
                        next = ((f64::from(next) * (1.0 - loss / 2.0)) as u32).max(1);
                    } else if loss < 0.02 {
                        let cap = self.remb_kbps.unwrap_or(self.max_kbps).min(self.max_kbps);
                        next = (next + next / 20 + 1).min(cap).max(next.min(cap));
                    }
                }
            }
        }
        out.extend(self.on_timer(now));
        // Only changes worth a reconfiguration (5 %) go to the encoder.
        let diff = next.abs_diff(self.target_kbps);
        if diff > 0 && diff * 20 >= self.target_kbps.max(1) {
            self.target_kbps = next;
            out.push(EncoderRequest::Bitrate(next));
        }
        out
    }

    /// When a deferred keyframe request falls due, if one is owed.
    pub fn keyframe_due(&self) -> Option<Instant> {
        if !self.keyframe_owed {
            return None;
        }
        Some(
            self.last_keyframe
                .map_or(Instant::now(), |t| t + self.keyframe_gap),
        )
    }

    /// The deferred keyframe request, once its time has come (call at `keyframe_due`).
    pub fn on_timer(&mut self, now: Instant) -> Vec<EncoderRequest> {
        match self.keyframe_due() {
            Some(due) if now >= due => {
                self.keyframe_owed = false;
                self.last_keyframe = Some(now);
                vec![EncoderRequest::Keyframe]
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtcp::reception_report::ReceptionReport;

    fn pli() -> Box<dyn rtc::rtcp::Packet> {
        Box::new(PictureLossIndication {
            sender_ssrc: 1,
            media_ssrc: 2,
        })
    }

    #[test]
    fn keyframe_requests_are_coalesced() {
        let mut f = Feedback::new(2000, 4000);
        let t = Instant::now();
        assert_eq!(
            f.on_rtcp(&[pli(), pli()], t),
            vec![EncoderRequest::Keyframe]
        );
        // Inside the gap: owed, not dropped, and answered once, when the gap ends.
        assert!(f
            .on_rtcp(&[pli()], t + Duration::from_millis(100))
            .is_empty());
        assert!(f
            .on_rtcp(&[pli()], t + Duration::from_millis(150))
            .is_empty());
        let due = f.keyframe_due().expect("a keyframe is owed");
        assert_eq!(due, t + Duration::from_millis(250));
        assert!(f.on_timer(t + Duration::from_millis(200)).is_empty());
        assert_eq!(f.on_timer(due), vec![EncoderRequest::Keyframe]);
        assert_eq!(f.keyframe_due(), None);
        assert!(f.on_timer(due + Duration::from_secs(1)).is_empty());
        // After the gap, a request is answered at once.
        assert_eq!(
            f.on_rtcp(&[pli()], due + Duration::from_millis(300)),
            vec![EncoderRequest::Keyframe]
        );
        assert_eq!(f.keyframe_due(), None);
    }

    #[test]
    fn remb_caps_and_loss_backs_off() {
        let mut f = Feedback::new(2000, 4000);
        let t = Instant::now();
        let remb: Box<dyn rtc::rtcp::Packet> = Box::new(ReceiverEstimatedMaximumBitrate {
            sender_ssrc: 1,
            bitrate: 800_000.0,
            ssrcs: vec![2],
        });
        assert_eq!(f.on_rtcp(&[remb], t), vec![EncoderRequest::Bitrate(800)]);
        let lossy: Box<dyn rtc::rtcp::Packet> = Box::new(ReceiverReport {
            ssrc: 1,
            reports: vec![ReceptionReport {
                ssrc: 2,
                fraction_lost: 64, // 25 %
                ..Default::default()
            }],
            ..Default::default()
        });
        let out = f.on_rtcp(&[lossy], t);
        assert!(
            matches!(out[..], [EncoderRequest::Bitrate(k)] if k < 800),
            "{out:?}"
        );
        // A NaN estimate changes nothing.
        let nan: Box<dyn rtc::rtcp::Packet> = Box::new(ReceiverEstimatedMaximumBitrate {
            sender_ssrc: 1,
            bitrate: f32::NAN,
            ssrcs: vec![2],
        });
        assert!(f.on_rtcp(&[nan], t).is_empty());
    }
}
