//! WebRTC sessions with the webrtc crate (0.21, on the sans-I/O `rtc` core): the publisher
//! connection that sends the media engine's one encode, and one receiving connection per remote
//! participant.
//!
//! Signalling is non-trickle: a description is sent once ICE gathering has completed, so it
//! carries every candidate (Janus includes its own in its SDP too).

use super::rtcp::FeedbackForwarder;
use super::signaller::IceServer;
use crate::media::EncodedSample;
use crate::model::StreamKind;
use rtc::interceptor::Slot;
use rtc::media::Sample;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{PayloadType, SSRC};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use webrtc::data_channel::DataChannel;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceGatheringState, RTCIceServer,
    RTCPeerConnectionState, RTCSessionDescription, Registry, SettingEngineBuilder,
};
use webrtc::rtp_transceiver::{RTCRtpTransceiverDirection, RtpTransceiver};

/// H.264 constrained baseline, the profile every browser and Janus accept.
pub const H264_FMTP: &str =
    "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";
/// Payload type offered for H.264.
pub const H264_PT: PayloadType = 102;
/// Payload type offered for Opus.
pub const OPUS_PT: PayloadType = 111;
/// The data channel label Janus's own clients use.
pub const CHAT_LABEL: &str = "JanusDataChannel";
/// How long ICE gathering may take before a description is sent with what it has.
const GATHER_TIMEOUT: Duration = Duration::from_secs(5);

/// Something a connection reports to the session that owns it. `key` names the connection:
/// `publisher` or a subscription id.
#[derive(Clone)]
pub enum PcEvent {
    /// The connection changed state.
    State(String, RTCPeerConnectionState),
    /// A remote track arrived.
    Track(String, Arc<dyn TrackRemote>),
    /// The remote side opened a data channel.
    DataChannel(String, Arc<dyn DataChannel>),
}

struct Handler {
    key: String,
    events: mpsc::UnboundedSender<PcEvent>,
    gathered: mpsc::UnboundedSender<()>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(());
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.events.send(PcEvent::State(self.key.clone(), state));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.events.send(PcEvent::Track(self.key.clone(), track));
    }

    async fn on_data_channel(&self, dc: Arc<dyn DataChannel>) {
        let _ = self.events.send(PcEvent::DataChannel(self.key.clone(), dc));
    }
}

fn feedback() -> Vec<RTCPFeedback> {
    ["goog-remb", "ccm fir", "nack", "nack pli"]
        .iter()
        .map(|f| {
            let mut parts = f.splitn(2, ' ');
            RTCPFeedback {
                typ: parts.next().unwrap_or_default().to_string(),
                parameter: parts.next().unwrap_or_default().to_string(),
            }
        })
        .collect()
}

/// The H.264 codec this box sends and receives.
pub fn h264_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: "video/H264".into(),
        clock_rate: 90000,
        channels: 0,
        sdp_fmtp_line: H264_FMTP.into(),
        rtcp_feedback: feedback(),
    }
}

/// The Opus codec this box sends and receives.
pub fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: "audio/opus".into(),
        clock_rate: 48000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
        rtcp_feedback: vec![],
    }
}

async fn build(
    key: &str,
    events: mpsc::UnboundedSender<PcEvent>,
    ice_servers: &[IceServer],
) -> webrtc::error::Result<(Arc<dyn PeerConnection>, mpsc::UnboundedReceiver<()>)> {
    let mut me = MediaEngine::default();
    me.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: h264_codec(),
            payload_type: H264_PT,
        },
        RtpCodecKind::Video,
    )?;
    // Also accept plain Baseline from peers that offer it.
    me.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                sdp_fmtp_line:
                    "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f".into(),
                ..h264_codec()
            },
            payload_type: 104,
        },
        RtpCodecKind::Video,
    )?;
    me.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: opus_codec(),
            payload_type: OPUS_PT,
        },
        RtpCodecKind::Audio,
    )?;
    let registry = register_default_interceptors(Registry::new(), &mut me)?;
    // Last in the chain: keyframe requests and bandwidth feedback go on to the application.
    let registry = registry.with(Slot::from(14_000), FeedbackForwarder::default());
    let (gathered_tx, gathered) = mpsc::unbounded_channel();
    // No mDNS: room servers give IP candidates, and joining the multicast group fails on hosts
    // without a multicast route.
    // Connectivity checks every 50 ms (RFC 8445's Ta) instead of webrtc-rs's 200: the box
    // nominates its pair a tick after the first check succeeds, and 200 ms ticks put up to
    // 200 ms into every join. 28 attempts keep the default 1.4 s before a pair is given up.
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        .with_ice_connection_attempts(Some(Duration::from_millis(50)), Some(28))
        // Answer (subscriptions) as the DTLS server: Janus, the offerer, opens the handshake
        // once its own ICE is up. As the client, our ClientHello often reached Janus before
        // that, was dropped, and cost a 1 s retransmission before any remote media played.
        .with_answering_dtls_role(rtc::peer_connection::transport::RTCDtlsRole::Server)
        .build();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(
            RTCConfigurationBuilder::new()
                .with_ice_servers(
                    ice_servers
                        .iter()
                        .map(|s| RTCIceServer {
                            urls: vec![s.url.clone()],
                            username: s.username.clone().unwrap_or_default(),
                            credential: s.credential.clone().unwrap_or_default(),
                        })
                        .collect(),
                )
                .build(),
        )
        .with_setting_engine(settings)
        .with_media_engine(me)
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(Handler {
            key: key.to_string(),
            events,
            gathered: gathered_tx,
        }))
        // A wildcard binds one socket per non-loopback interface.
        .with_udp_addrs(vec!["0.0.0.0:0".to_string()])
        .build()
        .await?;
    Ok((Arc::new(pc), gathered))
}

async fn wait_gathered(gathered: &mut mpsc::UnboundedReceiver<()>) {
    let _ = tokio::time::timeout(GATHER_TIMEOUT, gathered.recv()).await;
}

/// One local track fed from the shared encode.
#[derive(Clone)]
pub struct LocalTrack {
    track: Arc<TrackLocalStaticSample>,
    ssrc: SSRC,
    /// Stays 0 until negotiated.
    pt: PayloadType,
}

impl LocalTrack {
    fn new(kind: StreamKind) -> webrtc::error::Result<LocalTrack> {
        let ssrc = rand::random::<u32>();
        let (rk, codec, name) = match kind {
            StreamKind::Audio => (RtpCodecKind::Audio, opus_codec(), "audio"),
            StreamKind::Share => (RtpCodecKind::Video, h264_codec(), "share"),
            StreamKind::Video => (RtpCodecKind::Video, h264_codec(), "video"),
        };
        let track = TrackLocalStaticSample::new(
            Instant::now(),
            MediaStreamTrack::new(
                "roombox".into(),
                format!("roombox-{name}"),
                format!("roombox-{name}"),
                rk,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(ssrc),
                        ..Default::default()
                    },
                    codec,
                    ..Default::default()
                }],
            ),
        )?;
        Ok(LocalTrack {
            track: Arc::new(track),
            ssrc,
            pt: 0,
        })
    }

    /// Packetizes and sends one encoded sample.
    pub async fn write(&self, s: &EncodedSample, duration: Duration) -> webrtc::error::Result<()> {
        if self.pt == 0 {
            return Ok(());
        }
        let sample = Sample {
            data: s.data.clone(),
            duration,
            ..Sample::new(Instant::now())
        };
        self.track
            .sample_writer(self.ssrc, self.pt)
            .write_sample(&sample)
            .await
    }

    /// The RTCP addressed to this track (keyframe requests, REMB, receiver reports), in order.
    pub async fn feedback(&self) -> Option<Vec<Box<dyn rtc::rtcp::Packet>>> {
        match self.track.poll().await? {
            TrackLocalEvent::OnRtcpPacket(p) => Some(p),
            _ => Some(Vec::new()),
        }
    }
}

/// The connection that publishes the box's camera, microphone and chat.
pub struct Publisher {
    /// The connection.
    pub pc: Arc<dyn PeerConnection>,
    /// The camera track, if published.
    pub video: Option<LocalTrack>,
    /// The microphone track, if published.
    pub audio: Option<LocalTrack>,
    /// The chat channel, if opened.
    pub chat: Option<Arc<dyn DataChannel>>,
    /// The camera track's transceiver, whose direction turns the video on and off.
    video_transceiver: Option<Arc<dyn RtpTransceiver>>,
    /// The content share: a second video track, added by the first share's renegotiation.
    pub share: Option<LocalTrack>,
    /// The share track's transceiver.
    share_transceiver: Option<Arc<dyn RtpTransceiver>>,
    /// The share's `mid`, from the offer that added it (an inactive section carries no
    /// `msid` to find it by).
    share_mid: Option<String>,
}

impl Publisher {
    /// Builds the connection with the wanted tracks and returns it with its SDP offer (after
    /// ICE gathering).
    ///
    /// The video is always offered sending, even with the camera off: an answer that rejects
    /// a media section (Janus rejects one offered inactive, with no codecs) leaves webrtc-rs
    /// 0.21's media engine with no video codec for the rest of the connection, and the camera
    /// could never come back. The session renegotiates it inactive once connected instead.
    pub async fn offer(
        events: mpsc::UnboundedSender<PcEvent>,
        audio: bool,
        video: bool,
        chat: bool,
        ice_servers: &[IceServer],
    ) -> webrtc::error::Result<(Publisher, String)> {
        let (pc, mut gathered) = build("publisher", events, ice_servers).await?;
        let mut p = Publisher {
            pc,
            video: None,
            audio: None,
            chat: None,
            video_transceiver: None,
            share: None,
            share_transceiver: None,
            share_mid: None,
        };
        if video {
            let t = LocalTrack::new(StreamKind::Video)?;
            let sender =
                p.pc.add_track(t.track.clone() as Arc<dyn TrackLocal>)
                    .await?;
            for tr in p.pc.get_transceivers().await {
                if rtc::rtp_transceiver::RTCRtpSenderId::from(tr.id()) == sender.id() {
                    p.video_transceiver = Some(tr);
                }
            }
            p.video = Some(t);
        }
        if audio {
            let t = LocalTrack::new(StreamKind::Audio)?;
            p.pc.add_track(t.track.clone() as Arc<dyn TrackLocal>)
                .await?;
            p.audio = Some(t);
        }
        if chat {
            p.chat = Some(p.pc.create_data_channel(CHAT_LABEL, None).await?);
        }
        let offer = p.pc.create_offer(None).await?;
        p.pc.set_local_description(offer).await?;
        wait_gathered(&mut gathered).await;
        let sdp =
            p.pc.local_description()
                .await
                .map(|d| d.sdp)
                .unwrap_or_default();
        Ok((p, sdp))
    }

    /// Turns the camera's media section on (`sendonly`) or off (`inactive`) and returns the
    /// offer that says so, for a renegotiation; `None` when nothing publishes video. The
    /// transport is already up, so the offer goes out at once (no gathering to wait for).
    ///
    /// Until [`Publisher::answer`] or [`Publisher::rollback`], the connection waits in
    /// have-local-offer; media keeps flowing on what was negotiated before.
    pub async fn video_offer(&mut self, on: bool) -> webrtc::error::Result<Option<String>> {
        let Some(tr) = self.video_transceiver.clone() else {
            return Ok(None);
        };
        tr.set_direction(sending(on)).await?;
        let offer = self.pc.create_offer(None).await?;
        self.pc.set_local_description(offer).await?;
        Ok(self.pc.local_description().await.map(|d| d.sdp))
    }

    /// Abandons an offer the server did not answer (back to the last negotiated state) and
    /// puts the camera's preferred direction back to `on`, so the next offer starts from there.
    pub async fn rollback(&mut self, on: bool) -> webrtc::error::Result<()> {
        self.roll_back(self.video_transceiver.clone(), on).await
    }

    /// Abandons the unanswered offer, with `tr`'s direction back to `on`.
    async fn roll_back(
        &self,
        tr: Option<Arc<dyn RtpTransceiver>>,
        on: bool,
    ) -> webrtc::error::Result<()> {
        if let Some(tr) = tr {
            tr.set_direction(sending(on)).await?;
        }
        self.pc
            .set_local_description(RTCSessionDescription::rollback(None)?)
            .await
    }

    /// Applies the server's answer and learns the negotiated payload types.
    pub async fn answer(&mut self, sdp: String) -> webrtc::error::Result<()> {
        self.pc
            .set_remote_description(RTCSessionDescription::answer(sdp)?)
            .await?;
        let share_sender = self
            .share_transceiver
            .as_ref()
            .map(|t| rtc::rtp_transceiver::RTCRtpSenderId::from(t.id()));
        for sender in self.pc.get_senders().await {
            // A sender whose transceiver is inactive (camera off) has no parameters; it keeps
            // the payload type it had.
            let Ok(params) = sender.get_parameters().await else {
                continue;
            };
            let Some(codec) = params.rtp_parameters.codecs.first() else {
                continue;
            };
            let is_video = codec.rtp_codec.mime_type.eq_ignore_ascii_case("video/H264");
            let slot = if share_sender.as_ref() == Some(&sender.id()) {
                self.share.as_mut()
            } else if is_video {
                self.video.as_mut()
            } else {
                self.audio.as_mut()
            };
            if let Some(t) = slot {
                t.pt = codec.payload_type;
            }
        }
        Ok(())
    }
}

impl Publisher {
    /// Turns the share's media section on (`sendonly`; added as a second video m-line the
    /// first time) or off (`inactive`), and returns the offer for a renegotiation with the
    /// share's `mid` (for the room's `descriptions`). Like [`Publisher::video_offer`], the
    /// connection then waits for [`Publisher::answer`] or [`Publisher::share_rollback`].
    pub async fn share_offer(
        &mut self,
        on: bool,
    ) -> webrtc::error::Result<Option<(String, Option<String>)>> {
        if self.share_transceiver.is_none() {
            if !on {
                return Ok(None);
            }
            let t = LocalTrack::new(StreamKind::Share)?;
            let sender = self
                .pc
                .add_track(t.track.clone() as Arc<dyn TrackLocal>)
                .await?;
            for tr in self.pc.get_transceivers().await {
                if rtc::rtp_transceiver::RTCRtpSenderId::from(tr.id()) == sender.id() {
                    self.share_transceiver = Some(tr);
                }
            }
            self.share = Some(t);
        } else if let Some(tr) = &self.share_transceiver {
            tr.set_direction(sending(on)).await?;
        }
        let offer = self.pc.create_offer(None).await?;
        self.pc.set_local_description(offer).await?;
        let Some(sdp) = self.pc.local_description().await.map(|d| d.sdp) else {
            return Ok(None);
        };
        if self.share_mid.is_none() {
            self.share_mid = share_mid(&sdp);
        }
        Ok(Some((sdp, self.share_mid.clone())))
    }

    /// The share's `mid`, once a share was offered.
    pub fn share_mid(&self) -> Option<String> {
        self.share_mid.clone()
    }

    /// Abandons a share offer the server did not answer; the share's direction goes back to
    /// `on`.
    pub async fn share_rollback(&mut self, on: bool) -> webrtc::error::Result<()> {
        self.roll_back(self.share_transceiver.clone(), on).await
    }
}

/// A sending track's transceiver direction: send-only while `on`, else inactive.
fn sending(on: bool) -> RTCRtpTransceiverDirection {
    if on {
        RTCRtpTransceiverDirection::Sendonly
    } else {
        RTCRtpTransceiverDirection::Inactive
    }
}

/// The `mid` of the media section that carries the share track (`msid` names
/// `roombox-share`).
pub fn share_mid(sdp: &str) -> Option<String> {
    let mut mid = None;
    let mut share = false;
    for line in sdp.lines().map(str::trim) {
        if line.starts_with("m=") {
            if share {
                break;
            }
            mid = None;
        } else if let Some(m) = line.strip_prefix("a=mid:") {
            mid = Some(m.to_string());
        } else if line.contains("roombox-share") {
            share = true;
        }
    }
    mid.filter(|_| share)
}

/// A receiving connection for one remote participant.
pub struct Subscribed {
    /// The connection.
    pub pc: Arc<dyn PeerConnection>,
    /// The SDP answer (after ICE gathering).
    pub answer: String,
    /// The data channel the participant's chat arrives on, when the offer carries data.
    pub chat: Option<Arc<dyn DataChannel>>,
}

/// Answers a server's offer for one remote participant's media.
///
/// When the offer carries a data channel, the answerer opens one of its own (as Janus's
/// clients do): Janus relays a publisher's messages only to subscribers whose data channel is
/// open, and sends them on that channel's label.
pub async fn subscribe(
    key: &str,
    offer: String,
    events: mpsc::UnboundedSender<PcEvent>,
    ice_servers: &[IceServer],
) -> webrtc::error::Result<Subscribed> {
    let has_data = offer.lines().any(|l| l.starts_with("m=application"));
    let (pc, mut gathered) = build(key, events, ice_servers).await?;
    pc.set_remote_description(RTCSessionDescription::offer(offer)?)
        .await?;
    let chat = if has_data {
        Some(pc.create_data_channel(CHAT_LABEL, None).await?)
    } else {
        None
    };
    let answer = pc.create_answer(None).await?;
    pc.set_local_description(answer).await?;
    wait_gathered(&mut gathered).await;
    let answer = pc
        .local_description()
        .await
        .map(|d| d.sdp)
        .unwrap_or_default();
    Ok(Subscribed { pc, answer, chat })
}

/// Answers a server's new offer on a running receiving connection (the participant turned a
/// stream off or on). The transport is up, so the answer needs no gathering.
pub async fn reanswer(
    pc: &Arc<dyn PeerConnection>,
    offer: String,
) -> webrtc::error::Result<String> {
    pc.set_remote_description(RTCSessionDescription::offer(offer)?)
        .await?;
    let answer = pc.create_answer(None).await?;
    pc.set_local_description(answer).await?;
    Ok(pc
        .local_description()
        .await
        .map(|d| d.sdp)
        .unwrap_or_default())
}

/// A receive-only offer for one participant's audio and video (WHEP), after ICE gathering,
/// with the connection it belongs to; [`apply_answer`] completes it.
pub async fn receive_offer(
    key: &str,
    events: mpsc::UnboundedSender<PcEvent>,
    ice_servers: &[IceServer],
) -> webrtc::error::Result<(Arc<dyn PeerConnection>, String)> {
    let (pc, mut gathered) = build(key, events, ice_servers).await?;
    for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
        let init = webrtc::rtp_transceiver::RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Recvonly,
            streams: Vec::new(),
            send_encodings: Vec::new(),
        };
        if let Err(e) = pc.add_transceiver_from_kind(kind, Some(init)).await {
            let _ = pc.close().await;
            return Err(e);
        }
    }
    let offer = pc.create_offer(None).await?;
    pc.set_local_description(offer).await?;
    wait_gathered(&mut gathered).await;
    let sdp = pc
        .local_description()
        .await
        .map(|d| d.sdp)
        .unwrap_or_default();
    Ok((pc, sdp))
}

/// Applies the server's answer to an offer the box made with [`receive_offer`].
pub async fn apply_answer(
    pc: &Arc<dyn PeerConnection>,
    answer: String,
) -> webrtc::error::Result<()> {
    pc.set_remote_description(RTCSessionDescription::answer(answer)?)
        .await
}
