//! A remote participant on another WebRTC stack: GStreamer's webrtcbin (libnice, its own
//! DTLS/SRTP and RTP stack). It joins a Janus VideoRoom as a publisher (videotestsrc + tone,
//! H.264 constrained baseline + Opus), subscribes to one feed, decodes it, counts the frames and
//! measures the audio level with the `level` element.
//!
//! With [`PeerOptions`] it also publishes a data channel (chat, as Janus's own clients send it:
//! plain text), reads the data channel of the feed it subscribes to, and marks its Opus packets
//! with the RFC 6464 audio level (`urn:ietf:params:rtp-hdrext:ssrc-audio-level`) measured from
//! the tone it sends, so Janus's `talking` events see it.

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_sdp as gst_sdp;
use gstreamer_webrtc as gst_webrtc;
use roombox::room::janus::client::{Client, ClientEvent};
use roombox::room::janus::proto::{id_value, Incoming, Jsep};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

const PLUGIN: &str = "janus.plugin.videoroom";
/// The RFC 6464 client-to-mixer audio level header extension.
const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/// What the peer does beyond publishing audio and video.
#[derive(Debug, Clone, Copy, Default)]
pub struct PeerOptions {
    /// Publish a data channel (`JanusDataChannel`) for chat.
    pub data: bool,
    /// Send the RFC 6464 audio level of each Opus packet.
    pub audio_level: bool,
    /// Speak this WAV file (at real time, once through) instead of the test tone.
    pub speech: Option<&'static str>,
    /// The test tone's frequency, Hz (660 when None).
    pub tone_hz: Option<u32>,
    /// A solid colour (0xAARRGGBB) instead of the SMPTE bars.
    pub colour: Option<u32>,
    /// Width, height and frame rate of the picture, and its bitrate in kbit/s (320x240@15 at
    /// 400 when None).
    pub video: Option<(u32, u32, u32, u32)>,
}

/// What the peer decoded from the feed it subscribed to.
#[derive(Debug, Default, Clone)]
pub struct PeerStats {
    /// Decoded video frames.
    pub video_frames: u64,
    /// Decoded video frames by picture size (a camera and a share tell apart by size).
    pub video_sizes: std::collections::BTreeMap<(i32, i32), u64>,
    /// Last audio RMS level, dBFS.
    pub audio_dbfs: Option<f64>,
    /// Every audio RMS level measured (100 ms each), dBFS, with when it arrived.
    pub audio_levels: Vec<(std::time::Instant, f64)>,
    /// Decoded audio buffers.
    pub audio_buffers: u64,
    /// Glass-to-glass latencies, ms: for each decoded frame carrying a capture-time stamp (see
    /// `roombox::media::pipeline::STAMP_ENV`), the system clock now minus the stamp.
    pub latencies_ms: Vec<u32>,
    /// The stamp each of `latencies_ms` was read from, in the same order, so another
    /// subscriber's figure can be paired frame by frame.
    pub stamps_ms: Vec<u32>,
    /// Text messages received on the subscription's data channel, in order.
    pub chat: Vec<String>,
    /// The `videoroom` field of every asynchronous VideoRoom event on the publisher handle
    /// (`event`, `talking`, `destroyed`, ...), in order.
    pub room_events: Vec<String>,
    /// Feed ids Janus announced as publishing (its `publishers` lists), in order.
    pub publishers: Vec<String>,
    /// Every entry of those `publishers` lists with its streams, in order.
    pub feeds: Vec<FeedSeen>,
    /// Janus's `media` notices on the peer's handles: the kind and whether Janus receives it
    /// (on the publisher handle) or sends it (on a subscription), in order.
    pub media: Vec<(u64, String, bool)>,
    /// Every asynchronous event on any of the peer's handles: the handle, the plugin data and
    /// the type of the session description it carried, in order.
    pub events: Vec<(u64, Value, Option<String>)>,
}

/// One entry of a `publishers` list as Janus sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedSeen {
    /// The feed (participant) id.
    pub id: String,
    /// Its streams: type (`audio`, `video`, `data`) and whether Janus marked it disabled.
    pub streams: Vec<(String, bool)>,
    /// Its streams that carry a `description` (a share): the description and whether Janus
    /// marked the stream disabled.
    pub descriptions: Vec<(String, bool)>,
}

impl FeedSeen {
    /// Whether the feed lists a stream of `kind` and it is `disabled`.
    pub fn has(&self, kind: &str, disabled: bool) -> bool {
        self.streams
            .iter()
            .any(|(k, d)| k == kind && *d == disabled)
    }
}

/// Reads the capture-time stamp (milliseconds on the system clock) from a decoded frame: two
/// rows of 32 blocks of 32x32 pixels, the bits then their complement. None if absent or garbled.
pub fn read_stamp(pad: &gst::Pad, buffer: &gst::BufferRef) -> Option<u32> {
    let caps = pad.current_caps()?;
    let vi = gstreamer_video::VideoInfo::from_caps(&caps).ok()?;
    if vi.width() < 1024 || vi.height() < 64 || !vi.format_info().is_yuv() {
        return None;
    }
    let map = buffer.map_readable().ok()?;
    let data = map.as_slice();
    let stride = vi.stride()[0] as usize;
    let offset = vi.offset()[0];
    let luma = |x: usize, y: usize| data.get(offset + y * stride + x).copied();
    let (mut bits, mut check) = (0u32, 0u32);
    for bit in 0..32usize {
        if luma(bit * 32 + 16, 16)? > 128 {
            bits |= 1 << bit;
        }
        if luma(bit * 32 + 16, 48)? > 128 {
            check |= 1 << bit;
        }
    }
    (bits == !check).then_some(bits)
}

/// The webrtcbin participant.
pub struct Peer {
    /// Janus session.
    pub client: Client,
    /// Its feed (participant) id.
    pub id: String,
    publisher: u64,
    pub_pipe: gst::Pipeline,
    sub_pipe: Option<gst::Pipeline>,
    /// What it decoded.
    pub stats: Arc<Mutex<PeerStats>>,
    /// The published data channel, with [`PeerOptions::data`].
    chat: Option<gst_webrtc::WebRTCDataChannel>,
    /// The subscription's own data channel, when the feed has data.
    sub_chat: Option<gst_webrtc::WebRTCDataChannel>,
    /// The subscription's jitter buffer, ms (webrtcbin's default 200 holds the first packet
    /// that long; a browser starts playing almost at once).
    pub jitter_ms: u32,
}

fn webrtcbin(pipe: &gst::Pipeline) -> gst::Element {
    pipe.by_name("wb").expect("webrtcbin")
}

async fn promise(
    wb: &gst::Element,
    signal: &str,
    field: &str,
) -> gst_webrtc::WebRTCSessionDescription {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let field = field.to_string();
    let p = gst::Promise::with_change_func(move |reply| {
        let desc = reply
            .ok()
            .flatten()
            .and_then(|s| s.value(field.as_str()).ok().cloned())
            .and_then(|v| v.get::<gst_webrtc::WebRTCSessionDescription>().ok());
        let _ = tx.send(desc);
    });
    wb.emit_by_name::<()>(signal, &[&None::<gst::Structure>, &p]);
    rx.recv()
        .await
        .flatten()
        .expect("webrtcbin made no description")
}

async fn gathered(wb: &gst::Element) -> String {
    for _ in 0..100 {
        let st = wb.property::<gst_webrtc::WebRTCICEGatheringState>("ice-gathering-state");
        if st == gst_webrtc::WebRTCICEGatheringState::Complete {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let d = wb.property::<gst_webrtc::WebRTCSessionDescription>("local-description");
    d.sdp().as_text().expect("sdp text")
}

fn desc(kind: gst_webrtc::WebRTCSDPType, sdp: &str) -> gst_webrtc::WebRTCSessionDescription {
    let msg = gst_sdp::SDPMessage::parse_buffer(sdp.as_bytes()).expect("valid SDP from Janus");
    gst_webrtc::WebRTCSessionDescription::new(kind, msg)
}

impl Peer {
    /// Joins `room` on the Janus at `url` as `display` and publishes a 320x240 test pattern and a
    /// 440 Hz tone.
    pub async fn join(url: &str, room: &str, display: &str) -> Peer {
        Self::join_with(url, room, display, PeerOptions::default()).await
    }

    /// Like [`Peer::join`], with a data channel and/or audio levels (see [`PeerOptions`]).
    pub async fn join_with(url: &str, room: &str, display: &str, opts: PeerOptions) -> Peer {
        gst::init().expect("gst init");
        let (client, mut events) = Client::connect(url).await.expect("peer connects to janus");
        let stats: Arc<Mutex<PeerStats>> = Arc::default();
        let seen = stats.clone();
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                if let ClientEvent::Message(Incoming::Media {
                    sender,
                    kind,
                    receiving,
                }) = &ev
                {
                    if let Ok(mut s) = seen.lock() {
                        s.media.push((*sender, kind.clone(), *receiving));
                    }
                }
                let ClientEvent::Message(Incoming::Event {
                    sender, data, jsep, ..
                }) = ev
                else {
                    continue;
                };
                if let Ok(mut s) = seen.lock() {
                    s.events
                        .push((sender, data.clone(), jsep.as_ref().map(|j| j.kind.clone())));
                }
                if let Some(vr) = data.get("videoroom").and_then(Value::as_str) {
                    if let Ok(mut s) = seen.lock() {
                        s.room_events.push(vr.to_string());
                    }
                }
                let feeds = data.get("publishers").and_then(Value::as_array);
                for f in feeds.into_iter().flatten() {
                    if let (Some(id), Ok(mut s)) = (f.get("id"), seen.lock()) {
                        let id = id.to_string().trim_matches('"').to_string();
                        s.publishers.push(id.clone());
                        let streams = f
                            .get("streams")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                            .map(|st| {
                                (
                                    st.get("type")
                                        .and_then(Value::as_str)
                                        .unwrap_or("")
                                        .to_string(),
                                    st.get("disabled").and_then(Value::as_bool) == Some(true),
                                )
                            })
                            .collect();
                        let descriptions = f
                            .get("streams")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                            .filter_map(|st| {
                                Some((
                                    st.get("description")?.as_str()?.to_string(),
                                    st.get("disabled").and_then(Value::as_bool) == Some(true),
                                ))
                            })
                            .collect();
                        s.feeds.push(FeedSeen {
                            id,
                            streams,
                            descriptions,
                        });
                    }
                }
            }
        });
        let publisher = client.attach(PLUGIN).await.expect("attach");
        let (data, _) = client
            .message(
                publisher,
                json!({"request":"join","ptype":"publisher","room":id_value(room),"display":display}),
                None,
            )
            .await
            .expect("peer joins");
        let id = data
            .get("id")
            .map(|v| v.to_string().trim_matches('"').to_string())
            .expect("peer id");
        // A speech file is not live: `identity sync=true` paces it at real time on the clock.
        let audio_src = match opts.speech {
            Some(wav) => format!("filesrc location={wav} ! wavparse ! identity sync=true"),
            None => format!(
                "audiotestsrc is-live=true wave=sine freq={} volume=0.5",
                opts.tone_hz.unwrap_or(660)
            ),
        };
        let (w, h, fps, kbps) = opts.video.unwrap_or((320, 240, 15, 400));
        let pattern = match opts.colour {
            Some(c) => format!("pattern=solid-color foreground-color={c:#010x}"),
            None => "pattern=smpte".to_string(),
        };
        let pub_pipe = gst::parse::launch(&format!(
            "webrtcbin name=wb bundle-policy=max-bundle \
             videotestsrc is-live=true {pattern} ! video/x-raw,width={w},height={h},framerate={fps}/1 ! videoconvert ! \
             x264enc tune=zerolatency speed-preset=ultrafast bitrate={kbps} key-int-max={} ! \
             video/x-h264,profile=constrained-baseline ! rtph264pay config-interval=-1 pt=102 ! \
             application/x-rtp,media=video,encoding-name=H264,payload=102 ! wb. \
             {audio_src} ! volume name=pvol ! audioconvert ! audioresample ! \
             audio/x-raw,format=S16LE,rate=48000,channels=1 ! identity name=raw ! opusenc ! \
             rtpopuspay name=opay pt=111 ! application/x-rtp,media=audio,encoding-name=OPUS,payload=111 ! wb.",
            fps * 2
        ))
        .expect("publisher pipeline")
        .downcast::<gst::Pipeline>()
        .expect("pipeline");
        if opts.audio_level {
            mark_audio_levels(&pub_pipe);
        }
        let wb = webrtcbin(&pub_pipe);

        let (neg_tx, mut neg_rx) = mpsc::unbounded_channel();
        wb.connect("on-negotiation-needed", false, move |_| {
            let _ = neg_tx.send(());
            None
        });
        pub_pipe.set_state(gst::State::Playing).expect("play");
        // Before the offer, once webrtcbin is out of NULL.
        let chat = opts.data.then(|| {
            wb.emit_by_name::<Option<gst_webrtc::WebRTCDataChannel>>(
                "create-data-channel",
                &[&"JanusDataChannel", &None::<gst::Structure>],
            )
            .expect("webrtcbin made a data channel")
        });
        let _ = tokio::time::timeout(Duration::from_secs(5), neg_rx.recv()).await;
        let offer = promise(&wb, "create-offer", "offer").await;
        wb.emit_by_name::<()>("set-local-description", &[&offer, &None::<gst::Promise>]);
        let sdp = gathered(&wb).await;
        let (_, answer) = client
            .message(
                publisher,
                json!({"request":"publish","audio":true,"video":true,"data":opts.data}),
                Some(&Jsep {
                    kind: "offer".into(),
                    sdp,
                }),
            )
            .await
            .expect("peer publishes");
        let answer = answer.expect("janus answered");
        wb.emit_by_name::<()>(
            "set-remote-description",
            &[
                &desc(gst_webrtc::WebRTCSDPType::Answer, &answer.sdp),
                &None::<gst::Promise>,
            ],
        );
        Peer {
            client,
            id,
            publisher,
            pub_pipe,
            sub_pipe: None,
            jitter_ms: 200,
            stats,
            chat,
            sub_chat: None,
        }
    }

    /// Sends `text` on the published data channel once it is open (panics after `timeout`).
    pub async fn send_chat(&self, text: &str, timeout: Duration) {
        let dc = self.chat.as_ref().expect("joined with PeerOptions::data");
        let deadline = tokio::time::Instant::now() + timeout;
        while dc.ready_state() != gst_webrtc::WebRTCDataChannelState::Open {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the peer's data channel never opened: {:?}",
                dc.ready_state()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        dc.send_string_full(Some(text))
            .expect("send on the data channel");
    }

    /// Subscribes to `feed` and decodes it.
    pub async fn subscribe(&mut self, room: &str, feed: &str) {
        let handle = self.client.attach(PLUGIN).await.expect("attach");
        let (_, offer) = self
            .client
            .message(
                handle,
                json!({"request":"join","ptype":"subscriber","room":id_value(room),"streams":[{"feed":id_value(feed)}]}),
                None,
            )
            .await
            .expect("peer subscribes");
        let offer = offer.expect("janus offered");
        let pipe = gst::Pipeline::new();
        let wb = gst::ElementFactory::make("webrtcbin")
            .name("wb")
            .property_from_str("bundle-policy", "max-bundle")
            .property("latency", self.jitter_ms)
            .build()
            .expect("webrtcbin");
        pipe.add(&wb).expect("add");
        let chat = self.stats.clone();
        wb.connect("on-data-channel", false, move |args| {
            let dc = args
                .get(1)
                .and_then(|v| v.get::<gst_webrtc::WebRTCDataChannel>().ok())?;
            collect_chat(&dc, &chat);
            None
        });
        let stats = self.stats.clone();
        let pipe_weak = pipe.downgrade();
        wb.connect_pad_added(move |_, pad| {
            let Some(pipe) = pipe_weak.upgrade() else { return };
            let dec = gst::ElementFactory::make("decodebin").build().expect("decodebin");
            pipe.add(&dec).expect("add decodebin");
            let stats = stats.clone();
            let pipe_weak = pipe.downgrade();
            dec.connect_pad_added(move |_, dpad| {
                let Some(pipe) = pipe_weak.upgrade() else { return };
                let caps = dpad.current_caps().or_else(|| Some(dpad.query_caps(None)));
                let is_video = caps
                    .and_then(|c| c.structure(0).map(|s| s.name().starts_with("video")))
                    .unwrap_or(false);
                let chain = if is_video {
                    "videoconvert ! fakesink name=vs sync=false"
                } else {
                    "audioconvert ! level name=lvl interval=100000000 post-messages=true ! fakesink sync=false"
                };
                let bin = gst::parse::bin_from_description(chain, true).expect("chain");
                pipe.add(&bin).expect("add chain");
                bin.sync_state_with_parent().expect("sync");
                dpad.link(&bin.static_pad("sink").expect("ghost")).expect("link decoded");
                if !is_video {
                    let stats = stats.clone();
                    dpad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                        if let Ok(mut s) = stats.lock() {
                            s.audio_buffers += 1;
                        }
                        gst::PadProbeReturn::Ok
                    });
                }
                if is_video {
                    let stats = stats.clone();
                    dpad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
                        let now = gst::SystemClock::obtain().time().mseconds() as u32;
                        let stamp = info.buffer().and_then(|b| read_stamp(pad, b));
                        let size = pad.current_caps().and_then(|c| {
                            let st = c.structure(0)?;
                            Some((st.get::<i32>("width").ok()?, st.get::<i32>("height").ok()?))
                        });
                        if let Ok(mut s) = stats.lock() {
                            s.video_frames += 1;
                            if let Some(size) = size {
                                *s.video_sizes.entry(size).or_default() += 1;
                            }
                            if let Some(t) = stamp {
                                let l = now.wrapping_sub(t);
                                if l < 10_000 {
                                    s.latencies_ms.push(l);
                                    s.stamps_ms.push(t);
                                }
                            }
                        }
                        gst::PadProbeReturn::Ok
                    });
                }
            });
            dec.sync_state_with_parent().expect("sync decodebin");
            pad.link(&dec.static_pad("sink").expect("sink")).expect("link to decodebin");
        });
        let stats = self.stats.clone();
        let bus = pipe.bus().expect("bus");
        std::thread::spawn(move || {
            for msg in bus.iter_timed(gst::ClockTime::NONE) {
                if let gst::MessageView::Element(e) = msg.view() {
                    let Some(s) = e.structure() else { continue };
                    if s.name() != "level" {
                        continue;
                    }
                    let Ok(rms) = s.get::<gst::glib::ValueArray>("rms") else {
                        continue;
                    };
                    let db = rms
                        .iter()
                        .filter_map(|v| v.get::<f64>().ok())
                        .fold(-200.0f64, f64::max);
                    if let Ok(mut st) = stats.lock() {
                        st.audio_dbfs = Some(db.max(-200.0));
                        st.audio_levels
                            .push((std::time::Instant::now(), db.max(-200.0)));
                    }
                }
                if let gst::MessageView::Eos(_) = msg.view() {
                    break;
                }
            }
        });
        pipe.set_state(gst::State::Playing).expect("play");
        let (tx, mut rx) = mpsc::unbounded_channel();
        let p = gst::Promise::with_change_func(move |_| {
            let _ = tx.send(());
        });
        wb.emit_by_name::<()>(
            "set-remote-description",
            &[&desc(gst_webrtc::WebRTCSDPType::Offer, &offer.sdp), &p],
        );
        rx.recv().await;
        // Like janus.js, open a data channel of our own when the feed has one: Janus relays
        // a publisher's messages only to subscribers whose channel is open.
        let sub_chat = offer.sdp.contains("m=application").then(|| {
            let dc = wb
                .emit_by_name::<Option<gst_webrtc::WebRTCDataChannel>>(
                    "create-data-channel",
                    &[&"JanusDataChannel", &None::<gst::Structure>],
                )
                .expect("webrtcbin made a data channel");
            collect_chat(&dc, &self.stats);
            dc
        });
        let answer = promise(&wb, "create-answer", "answer").await;
        // Answer DTLS passive, as the box does: Janus opens its DTLS only once its own ICE is
        // up and drops a ClientHello that comes earlier, which cost a 1 s retransmission on
        // many subscriptions.
        let text = answer
            .sdp()
            .as_text()
            .expect("sdp text")
            .replace("a=setup:active", "a=setup:passive");
        let answer = desc(gst_webrtc::WebRTCSDPType::Answer, &text);
        wb.emit_by_name::<()>("set-local-description", &[&answer, &None::<gst::Promise>]);
        let sdp = gathered(&wb).await;
        self.client
            .message(
                handle,
                json!({"request":"start"}),
                Some(&Jsep {
                    kind: "answer".into(),
                    sdp,
                }),
            )
            .await
            .expect("start subscription");
        self.sub_pipe = Some(pipe);
        self.sub_chat = sub_chat;
    }

    /// Turns the published video off (its transceiver inactive) or on (sendonly) the way a
    /// browser's Janus client does: a new offer sent with a VideoRoom `configure`, and Janus's
    /// answer applied.
    pub async fn set_video(&self, on: bool) {
        let wb = webrtcbin(&self.pub_pipe);
        let video = (0..8)
            .filter_map(|i| {
                wb.emit_by_name::<Option<gst_webrtc::WebRTCRTPTransceiver>>(
                    "get-transceiver",
                    &[&i],
                )
            })
            .find(|t| t.property::<gst_webrtc::WebRTCKind>("kind") == gst_webrtc::WebRTCKind::Video)
            .expect("the peer publishes video");
        video.set_property(
            "direction",
            if on {
                gst_webrtc::WebRTCRTPTransceiverDirection::Sendonly
            } else {
                gst_webrtc::WebRTCRTPTransceiverDirection::Inactive
            },
        );
        let offer = promise(&wb, "create-offer", "offer").await;
        let sdp = offer.sdp().as_text().expect("sdp text");
        wb.emit_by_name::<()>("set-local-description", &[&offer, &None::<gst::Promise>]);
        let (_, answer) = self
            .client
            .message(
                self.publisher,
                json!({"request":"configure"}),
                Some(&Jsep {
                    kind: "offer".into(),
                    sdp,
                }),
            )
            .await
            .expect("janus takes the peer's new offer");
        let answer = answer.expect("janus answered the new offer");
        wb.emit_by_name::<()>(
            "set-remote-description",
            &[
                &desc(gst_webrtc::WebRTCSDPType::Answer, &answer.sdp),
                &None::<gst::Promise>,
            ],
        );
    }

    /// Mutes (false) or restores (true) the tone the peer publishes; packets keep flowing.
    pub fn set_tone(&self, on: bool) {
        let vol = self.pub_pipe.by_name("pvol").expect("volume element");
        vol.set_property("mute", !on);
    }

    /// Ends the room for everyone (VideoRoom `destroy`, with the room's secret if it has one),
    /// as another participant or a moderator would; returns Janus's refusal, if any.
    pub async fn destroy_room(&self, room: &str, secret: Option<&str>) -> Result<(), String> {
        let mut body = json!({"request":"destroy","room":id_value(room)});
        if let Some(s) = secret {
            body["secret"] = json!(s);
        }
        self.client
            .request(self.publisher, body)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// A copy of the counters.
    pub fn stats(&self) -> PeerStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Leaves the room.
    pub async fn leave(mut self) {
        let _: Result<(Value, _), _> = self
            .client
            .message(self.publisher, json!({"request":"leave"}), None)
            .await;
        let _ = self.client.destroy().await;
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.pub_pipe.set_state(gst::State::Null);
        if let Some(p) = self.sub_pipe.take() {
            if let Some(bus) = p.bus() {
                let _ = bus.post(gst::message::Eos::new());
            }
            let _ = p.set_state(gst::State::Null);
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Measures the RMS level of each raw audio buffer (S16LE) and attaches it, as RFC 6464 -dBov,
/// to the encoded buffers the payloader packs, where its header extension reads it.
fn mark_audio_levels(pipe: &gst::Pipeline) {
    // The payloader adds the extension named in its downstream caps; the field must read as
    // the extension itself writes it (direction, URI, attributes).
    let pay = pipe.by_name("opay").expect("opus payloader");
    let filter = pay
        .static_pad("src")
        .and_then(|p| p.peer())
        .and_then(|p| p.parent_element())
        .expect("caps filter after the payloader");
    let caps = gst::Caps::builder("application/x-rtp")
        .field("media", "audio")
        .field("encoding-name", "OPUS")
        .field("payload", 111i32)
        .field("extmap-1", gst::Array::new(["", AUDIO_LEVEL_URI, "vad=on"]))
        .build();
    filter.set_property("caps", &caps);
    let level = Arc::new(std::sync::atomic::AtomicU8::new(127));
    let measured = level.clone();
    let raw = pipe.by_name("raw").expect("raw audio tap");
    raw.static_pad("src")
        .expect("src")
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(map) = info.buffer().and_then(|b| b.map_readable().ok()) {
                let samples: Vec<f64> = map
                    .as_slice()
                    .chunks_exact(2)
                    .map(|c| f64::from(i16::from_le_bytes([c[0], c[1]])) / 32768.0)
                    .collect();
                if !samples.is_empty() {
                    let rms =
                        (samples.iter().map(|x| x * x).sum::<f64>() / samples.len() as f64).sqrt();
                    let dbov = if rms > 0.0 {
                        -20.0 * rms.log10()
                    } else {
                        127.0
                    };
                    measured.store(
                        dbov.clamp(0.0, 127.0) as u8,
                        std::sync::atomic::Ordering::Relaxed,
                    );
                }
            }
            gst::PadProbeReturn::Ok
        });
    pay.static_pad("sink")
        .expect("sink")
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(gst::PadProbeData::Buffer(b)) = info.data.as_mut() {
                let l = level.load(std::sync::atomic::Ordering::Relaxed);
                gstreamer_audio::AudioLevelMeta::add(b.make_mut(), l, l < 127);
            }
            gst::PadProbeReturn::Ok
        });
}

/// Records every message arriving on `dc` in `stats.chat`.
fn collect_chat(dc: &gst_webrtc::WebRTCDataChannel, stats: &Arc<Mutex<PeerStats>>) {
    let strings = stats.clone();
    dc.connect_on_message_string(move |_, text| {
        if let (Some(t), Ok(mut s)) = (text, strings.lock()) {
            s.chat.push(t.to_string());
        }
    });
    let bytes = stats.clone();
    dc.connect_on_message_data(move |_, data| {
        if let (Some(d), Ok(mut s)) = (data, bytes.lock()) {
            s.chat.push(String::from_utf8_lossy(d).to_string());
        }
    });
}

/// Creates `room` on the Janus at `url` for H.264 (constrained baseline) and Opus, six
/// publishers, its video capped at `cap_kbps` when given.
pub async fn create_room(url: &str, room: &str, cap_kbps: Option<u32>) {
    let (client, _events) = roombox::room::janus::client::Client::connect(url)
        .await
        .expect("connect to janus");
    let handle = client
        .attach("janus.plugin.videoroom")
        .await
        .expect("attach");
    let mut body = serde_json::json!({
        "request": "create",
        "room": roombox::room::janus::proto::id_value(room),
        "publishers": 6,
        "audiocodec": "opus",
        "videocodec": "h264",
        "h264_profile": "42e01f",
    });
    if let Some(kbps) = cap_kbps {
        body["bitrate"] = serde_json::json!(kbps * 1000);
    }
    client.request(handle, body).await.expect("create the room");
}
